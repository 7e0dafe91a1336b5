"""Media facts: MediaInfo and `probe` (pts index by demuxing), colour tags, timecode."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from renderer.errors import InputError, MediaError


class CorruptMediaError(MediaError, InputError):
    """The media is damaged or truncated: what was decodable was decoded, then this (exit 2)."""


# --------------------------------------------------------------------------------------------
# Data


@dataclass(frozen=True)
class ColorTags:
    """FFmpeg names of a stream's colour tags; None when untagged. e.g. bt709, bt709, bt709, tv."""

    primaries: str | None
    transfer: str | None
    matrix: str | None
    range: str | None


HDR_CODECS = ("h265",)  # output codecs that write HDR10 static metadata (x265 SEI)


@dataclass(frozen=True)
class HdrMetadata:
    """HDR10 static metadata of a stream, in the units the HEVC SEI and x265 use.

    mastering: the mastering display, or None: ((gx, gy), (bx, by), (rx, ry), (wx, wy)) chromaticities
    in 1/50000, then (max, min) luminance in 1/10000 cd/m2 (SMPTE ST 2086). max_cll, max_fall: content
    light level in cd/m2 (CTA-861.3), or None.
    """

    mastering: tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]] | None
    max_cll: int | None = None
    max_fall: int | None = None

    def x265_params(self) -> str:
        """The x265 options that write this metadata as SEI (hdr10 signalling on)."""
        parts = ["hdr10=1"]
        if self.mastering:
            (gx, gy), (bx, by), (rx, ry), (wx, wy), (lmax, lmin) = self.mastering
            parts.append(f"master-display=G({gx},{gy})B({bx},{by})R({rx},{ry})WP({wx},{wy})L({lmax},{lmin})")
        if self.max_cll is not None:
            parts.append(f"max-cll={self.max_cll},{self.max_fall or 0}")
        return ":".join(parts)


def _hdr_metadata(frame: av.VideoFrame) -> HdrMetadata | None:
    """HDR10 static metadata from a decoded frame's side data (AVMasteringDisplayMetadata and
    AVContentLightMetadata, read as the C structs they are), or None when it has none."""
    import struct

    from av.sidedata.sidedata import Type

    # Iterating the container yields the SideData objects (its .values() fails in PyAV 18.1).
    sides = {sd.type: bytes(sd) for sd in frame.side_data}
    mastering = None
    raw = sides.get(Type.MASTERING_DISPLAY_METADATA)
    if raw is not None and len(raw) >= 88:
        v = struct.unpack_from("<20i2i", raw)
        q = [(v[k], v[k + 1]) for k in range(0, 20, 2)]  # (num, den): R x,y  G x,y  B x,y  WP x,y  min  max
        has_primaries, has_luminance = v[20], v[21]

        def units(r: tuple[int, int], scale: int) -> int:
            return round(r[0] * scale / r[1]) if r[1] else 0

        if has_primaries or has_luminance:
            (rx, ry, gx, gy, bx, by, wx, wy) = (units(r, 50000) for r in q[:8])
            mastering = ((gx, gy), (bx, by), (rx, ry), (wx, wy), (units(q[9], 10000), units(q[8], 10000)))
    cll = sides.get(Type.CONTENT_LIGHT_LEVEL)
    max_cll = max_fall = None
    if cll is not None and len(cll) >= 8:
        max_cll, max_fall = struct.unpack_from("<2I", cll)
    if mastering is None and max_cll is None:
        return None
    return HdrMetadata(mastering, max_cll, max_fall)


@dataclass(frozen=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None


@dataclass(frozen=True)
class VideoStreamInfo:
    """A video stream other than the one Doppel reads (named by probe; never carried)."""

    index: int
    codec: str
    width: int
    height: int


# FFmpeg's AVFieldOrder names: tt = top field first (coded and shown), bb = bottom first,
# tb / bt = coded one way, shown the other.
FIELD_ORDERS = {1: "progressive", 2: "tt", 3: "bb", 4: "tb", 5: "bt"}


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` found. `pts` is the presentation-ordered pts of every frame in `time_base`,
    exactly the frames FFmpeg presents: packets an MP4/MOV edit list hides (`discarded`: the
    pre-roll of a B-frame delay or of a `-c copy` cut, a tail past the edit's end) and frames
    the decoder drops because their references are missing (`undecodable`: a file that starts
    mid-GOP) are not frames. `keyframes` are frame indices (into `pts`) of keyframes; `fps` is
    the nominal rate (for VFR media: the mean rate over the clip). `truncated` is True when the
    container declares more frames than could be demuxed (a cut-off or damaged file).
    `field_order` is FFmpeg's name (progressive, tt, bb, tb, bt) or None when not signalled;
    `other_video` lists video streams besides the one read (they are not carried)."""

    path: Path
    container: str
    codec: str
    width: int
    height: int
    pix_fmt: str
    fps: Fraction
    time_base: Fraction
    frames: int
    pts: tuple[int, ...]
    vfr: bool
    timecode: str | None
    drop_frame: bool
    color: ColorTags
    rotation: int
    audio: tuple[AudioInfo, ...]
    start_pts: int
    keyframes: tuple[int, ...]
    video_index: int = 0
    declared_frames: int | None = None
    truncated: bool = False
    discarded: int = 0
    undecodable: int = 0
    field_order: str | None = None
    other_video: tuple[VideoStreamInfo, ...] = ()
    sequence: Any = None  # a SequenceInfo (renderer.media.sequence) when the media is an image sequence
    hdr: HdrMetadata | None = None  # mastering display / content light level of the first frame

    @property
    def interlaced(self) -> bool:
        return self.field_order in ("tt", "bb", "tb", "bt")

    def warnings(self, codec: str | None = None) -> list[str]:
        """What a render of this source (to output `codec`, when given) does not carry over, one sentence each."""
        out = [f"{self.path.name}: video stream #{v.index} ({v.codec} {v.width}x{v.height}) is not carried; "
               f"only stream #{self.video_index} is read and written" for v in self.other_video]
        if self.sequence is not None and self.sequence.exr is not None:
            extra = [c for c in self.sequence.exr.channels if c not in ("R", "G", "B", "A")]
            if extra:
                out.append(f"{self.path.name}: EXR channels {', '.join(extra[:6])}{' ...' if len(extra) > 6 else ''} "
                           f"are not carried; only R, G, B (and A) are read and written")
        if self.hdr is not None and codec is not None and codec not in HDR_CODECS:
            out.append(f"{self.path.name}: its HDR10 mastering display / content light metadata is not carried by "
                       f"{codec} output (only {', '.join(HDR_CODECS)} writes it); the colour tags are")
        return out

    @property
    def duration_s(self) -> float:
        """Presentation length: first pts to the end of the last frame, in seconds."""
        return float(self.end_time - self.pts[0] * self.time_base) if self.frames else 0.0

    @property
    def end_time(self) -> Fraction:
        """End of the last frame, in seconds from the stream's time zero."""
        return self.frame_end_time(self.frames - 1)

    def frame_time(self, index: int) -> Fraction:
        """Start time of frame `index`, seconds from the stream's time zero (exact).

        Past the last indexed frame (a truncated file's declared frames) it extrapolates at `fps`."""
        if index >= self.frames:
            return self.pts[-1] * self.time_base + (index - self.frames + 1) / self.fps
        return self.pts[index] * self.time_base

    def frame_end_time(self, index: int) -> Fraction:
        """End time of frame `index` (start of the next one; last frame: one nominal frame long)."""
        return self.frame_time(index + 1)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: fractions as "num/den" strings, path as str."""
        out = asdict(dataclasses.replace(self, sequence=None))
        out["sequence"] = self.sequence.to_json() if self.sequence is not None else None
        out["path"] = str(self.path)
        out["fps"] = _frac_str(self.fps)
        out["time_base"] = _frac_str(self.time_base)
        out["pts"] = list(self.pts)
        out["keyframes"] = list(self.keyframes)
        out["audio"] = [asdict(a) for a in self.audio]
        out["other_video"] = [asdict(v) for v in self.other_video]
        out["interlaced"] = self.interlaced
        out["duration_s"] = self.duration_s
        return out


# FFmpeg's names for the AVColor* enums (libavutil/pixfmt.h).
_PRIMARIES = {1: "bt709", 4: "bt470m", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "film", 9: "bt2020",
              10: "smpte428", 11: "smpte431", 12: "smpte432", 22: "ebu3213"}
_TRANSFER = {1: "bt709", 4: "gamma22", 5: "gamma28", 6: "smpte170m", 7: "smpte240m", 8: "linear", 9: "log100",
             10: "log316", 11: "iec61966-2-4", 12: "bt1361e", 13: "iec61966-2-1", 14: "bt2020-10", 15: "bt2020-12",
             16: "smpte2084", 17: "smpte428", 18: "arib-std-b67"}
_MATRIX = {0: "gbr", 1: "bt709", 4: "fcc", 5: "bt470bg", 6: "smpte170m", 7: "smpte240m", 8: "ycgco", 9: "bt2020nc",
           10: "bt2020c", 14: "ictcp"}
_RANGE = {1: "tv", 2: "pc"}
# swscale only knows these matrices.
_SWS_MATRIX = {"bt709": "ITU709", "fcc": "FCC", "bt470bg": "ITU601", "smpte170m": "ITU601",
               "smpte240m": "SMPTE240M", "bt2020nc": "BT2020", "bt2020c": "BT2020"}
_STANDARD_RATES = (Fraction(24000, 1001), Fraction(24), Fraction(25), Fraction(30000, 1001), Fraction(30),
                   Fraction(48), Fraction(50), Fraction(60000, 1001), Fraction(60), Fraction(120))


def _frac_str(f: Fraction) -> str:
    return f"{f.numerator}/{f.denominator}"


def _inv(table: dict[int, str]) -> dict[str, int]:
    return {v: k for k, v in table.items()}


# --------------------------------------------------------------------------------------------
# Timecode


def _tc_nominal(fps: Fraction) -> int:
    return int(round(fps))


def _drop_count(fps: Fraction) -> int:
    """Frame numbers dropped per minute (except every tenth) for drop-frame timecode."""
    nominal = _tc_nominal(fps)
    if fps.denominator == 1001 and nominal % 30 == 0:
        return 2 * (nominal // 30)
    raise InputError(f"drop-frame timecode needs a 30000/1001 or 60000/1001 rate; got {_frac_str(fps)}")


def frame_to_timecode(frame: int, fps: Fraction, drop_frame: bool = False) -> str:
    """SMPTE timecode of frame count `frame` (HH:MM:SS:FF, or HH:MM:SS;FF when drop-frame).

    Wraps at 24 hours. Drop-frame (29.97/59.94) skips frame numbers 0,1 (0-3 at 59.94) at every
    minute except each tenth."""
    nominal = _tc_nominal(Fraction(fps))
    if frame < 0:
        raise InputError(f"timecode of a negative frame count: {frame}")
    if drop_frame:
        drop = _drop_count(Fraction(fps))
        per_10min = nominal * 600 - drop * 9
        per_min = nominal * 60 - drop
        tens, rem = divmod(frame, per_10min)
        extra = drop * 9 * tens
        if rem > drop:
            extra += drop * ((rem - drop) // per_min)
        frame += extra
    frame %= nominal * 86400
    ff = frame % nominal
    ss = frame // nominal % 60
    mm = frame // (nominal * 60) % 60
    hh = frame // (nominal * 3600)
    sep = ";" if drop_frame else ":"
    return f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:02d}"


def timecode_to_frame(tc: str, fps: Fraction) -> int:
    """Frame count of SMPTE timecode `tc` at `fps`; ';' or '.' before the frames means drop-frame."""
    text = tc.strip()
    drop = ";" in text or "." in text
    parts = text.replace(";", ":").replace(".", ":").split(":")
    nominal = _tc_nominal(Fraction(fps))
    try:
        hh, mm, ss, ff = (int(p) for p in parts)
    except ValueError:
        raise InputError(f"timecode {tc!r} is not HH:MM:SS:FF (or HH:MM:SS;FF for drop-frame)") from None
    if len(parts) != 4 or not (0 <= mm < 60 and 0 <= ss < 60 and 0 <= ff < nominal and hh >= 0):
        raise InputError(f"timecode {tc!r} is out of range for {_frac_str(Fraction(fps))} fps (frames 0..{nominal - 1})")
    total_min = hh * 60 + mm
    frames = ((hh * 3600) + mm * 60 + ss) * nominal + ff
    if drop:
        d = _drop_count(Fraction(fps))
        if ss == 0 and ff < d and mm % 10 != 0:
            raise InputError(f"timecode {tc!r} does not exist in drop-frame (frames 0..{d - 1} are skipped)")
        frames -= d * (total_min - total_min // 10)
    return frames


def shift_timecode(tc: str, frames: int, fps: Fraction) -> str:
    """`tc` moved on by `frames` frames, keeping its drop-frame style."""
    drop = ";" in tc or "." in tc
    return frame_to_timecode(timecode_to_frame(tc, fps) + frames, fps, drop)


# --------------------------------------------------------------------------------------------
# Probe


def _open_input(path: Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.exists():
        raise InputError(f"media not found: {path}")
    if not path.is_file():
        raise InputError(f"media is not a file: {path}")
    try:
        return av.open(str(path), "r")
    except (av.error.FFmpegError, ValueError) as err:
        raise InputError(f"not a readable media file: {path} ({err}); expected a video such as .mov, .mp4, .mkv, .mxf") from err


def _video_streams(container: av.container.InputContainer) -> list[av.video.stream.VideoStream]:
    """The container's video streams, cover art (attached pictures) left out."""
    return [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    streams = _video_streams(container)
    if not streams:
        kinds = ", ".join(s.type for s in container.streams) or "no streams"
        raise InputError(f"no video stream in {path} (found: {kinds}); expected a video file")
    return streams[0]


def _color_tags(cc: Any) -> ColorTags:
    return ColorTags(_PRIMARIES.get(int(cc.color_primaries)), _TRANSFER.get(int(cc.color_trc)),
                     _MATRIX.get(int(cc.colorspace)), _RANGE.get(int(cc.color_range)))


def _find_timecode(container: av.container.InputContainer, video: Any, first_s: Fraction,
                   fps: Fraction) -> str | None:
    """The timecode of the first presented frame.

    A mov/mp4 `tmcd` track has its own edit list: its sample names the timecode at the track's
    start, so a video track that starts later (an empty edit) or earlier is moved on by the
    difference, counted in frames. Other containers tag the first frame's timecode directly."""
    for data in (s for s in container.streams if s.type == "data"):
        tc = data.metadata.get("timecode")
        if tc:
            start = Fraction(data.start_time or 0) * Fraction(data.time_base) if data.time_base else Fraction(0)
            return _shift_wrapping(str(tc), int(round((first_s - start) * fps)), fps)
    for meta in (video.metadata, container.metadata):
        for key in ("timecode", "TIMECODE"):
            if meta.get(key):
                return str(meta[key])
    return None


def _shift_wrapping(tc: str, frames: int, fps: Fraction) -> str:
    """`tc` moved by `frames` (either way), wrapping at 24 hours as a timecode clock does."""
    if not frames:
        return tc
    with contextlib.suppress(InputError):
        day = _tc_nominal(fps) * 86400
        if ";" in tc or "." in tc:
            day -= 86400 // 60 * _drop_count(fps) - 86400 // 600 * _drop_count(fps)
        n = (timecode_to_frame(tc, fps) + frames) % day
        return frame_to_timecode(n, fps, ";" in tc or "." in tc)
    return tc


def _nominal_rate(pts: list[int], tb: Fraction, hints: list[Fraction]) -> tuple[Fraction, bool]:
    """(rate, vfr): the first candidate rate whose grid fits every pts within rounding, else mean rate."""
    if len(pts) < 2:
        return (next((h for h in hints if h), Fraction(25)), False)
    span = (pts[-1] - pts[0]) * tb
    mean = Fraction(len(pts) - 1) / span if span > 0 else next((h for h in hints if h), Fraction(25))
    candidates = [h for h in hints if h] + list(_STANDARD_RATES) + [mean.limit_denominator(1001)]
    arr = np.asarray(pts, dtype=np.float64) - pts[0]
    idx = np.arange(len(pts), dtype=np.float64)
    for rate in candidates:
        if abs(rate - mean) / mean > Fraction(1, 200):
            continue
        ticks = float(1 / (rate * tb))
        tolerance = max(1.0, 0.02 * ticks)
        if np.all(np.abs(arr - idx * ticks) <= tolerance):
            return rate, False
    return mean.limit_denominator(1001), True


def probe(path: Path | str, rate: Fraction | float | None = None) -> MediaInfo:
    """Describe a media file: the first video stream's format, exact frame count, pts index,
    VFR flag, timecode, colour, field order, rotation, audio streams, other video streams.

    The index holds the frames FFmpeg presents (what `ffprobe -count_frames` counts and an
    NLE shows): built by demuxing packets, leaving out those an MP4/MOV edit list marks
    discard; where the file starts mid-GOP (or with leading pictures whose references are
    missing), its head is decoded to learn which of those frames the decoder drops.

    An image sequence (a pattern such as shot.%04d.exr, or its folder) is described by
    `renderer.media.sequence.probe_sequence` at `rate` (files carry none; ignored for movies).

    Raises InputError for a missing file, a non-media file or one without video.
    """
    path = Path(path)
    from renderer.media.sequence import is_sequence_path, probe_sequence

    if is_sequence_path(path):
        return probe_sequence(path, rate)
    with _open_input(path) as container:
        video = _video_stream(container, path)
        tb = Fraction(video.time_base)
        packets: list[tuple[int, bool, bool]] = []  # (pts, keyframe, discard) in decode order
        demux_failed = False
        try:
            for packet in container.demux(video):
                if packet.size == 0:
                    continue
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None:
                    continue
                packets.append((int(pts), bool(packet.is_keyframe), bool(packet.is_discard)))
        except av.error.FFmpegError:
            demux_failed = True
        shown = [(pts, key) for pts, key, discard in packets if not discard]
        if not shown:
            raise InputError(f"no video frames could be read from {path}")
        dropped = _undecodable_head(path, video.index, packets)
        if dropped:
            shown = [(pts, key) for pts, key in shown if pts not in dropped]
        if not shown:
            raise InputError(f"no video frame of {path} decodes (the stream never reaches a keyframe)")
        shown.sort(key=lambda e: e[0])
        pts = [e[0] for e in shown]
        keyframes = tuple(n for n, (_, key) in enumerate(shown) if key)
        cc = video.codec_context
        hints = [Fraction(r) for r in (video.average_rate, video.guessed_rate, video.base_rate) if r]
        fps, vfr = _nominal_rate(pts, tb, hints)
        timecode = _find_timecode(container, video, pts[0] * tb, fps)
        rotation, hdr = 0, None
        # Rotation lives in the display-matrix side data, HDR10 metadata in mastering-display and
        # content-light side data (HEVC SEI); the first decoded frame carries them.
        with contextlib.suppress(av.error.FFmpegError, StopIteration):
            container.seek(pts[keyframes[0] if keyframes else 0], stream=video, backward=True)
            first = next(container.decode(video))
            rotation = int(round(first.rotation or 0)) % 360
            hdr = _hdr_metadata(first)
        audio = tuple(
            AudioInfo(
                index=s.index,
                codec=s.codec_context.name,
                sample_rate=int(s.codec_context.sample_rate or s.rate or 0),
                channels=int(s.codec_context.channels),
                duration_s=(float(s.duration * s.time_base) if s.duration else
                            (float(container.duration / av.time_base) if container.duration else None)),
            )
            for s in container.streams.audio
        )
        others = tuple(VideoStreamInfo(s.index, s.codec_context.name, int(s.codec_context.width),
                                       int(s.codec_context.height))
                       for s in _video_streams(container) if s.index != video.index)
        discarded = len(packets) - sum(1 for e in packets if not e[2])
        # mov's sample count includes the samples its edit list hides; several edits can list a
        # sample twice (more packets than samples), and then the count says nothing about frames.
        declared = int(video.frames) - discarded if video.frames and len(packets) <= int(video.frames) else None
        if declared is None and container.duration and not vfr:
            # Matroska and others declare a duration in the header, written when the file was finished.
            start_s = Fraction(container.start_time or 0, av.time_base)
            declared_end = start_s + Fraction(container.duration, av.time_base)
            missing = (declared_end - (pts[-1] * tb + 1 / fps)) * fps
            if missing >= Fraction(3, 2):
                declared = len(pts) + len(dropped) + int(round(missing))
        if declared is not None:
            declared -= len(dropped)
        truncated = demux_failed or (declared is not None and declared > len(pts))
        pix_fmt = cc.format.name if cc.format else (cc.pix_fmt or "unknown")
        return MediaInfo(
            path=path, container=container.format.name, codec=cc.name, width=int(cc.width), height=int(cc.height),
            pix_fmt=pix_fmt, fps=fps, time_base=tb, frames=len(pts), pts=tuple(pts), vfr=vfr,
            timecode=timecode, drop_frame=bool(timecode and (";" in timecode or "." in timecode)),
            color=_color_tags(cc), rotation=rotation, audio=audio, start_pts=pts[0], keyframes=keyframes,
            video_index=video.index, declared_frames=declared, truncated=truncated, discarded=discarded,
            undecodable=len(dropped), field_order=FIELD_ORDERS.get(int(cc.field_order)), other_video=others,
            hdr=hdr,
        )


def _undecodable_head(path: Path, index: int, packets: list[tuple[int, bool, bool]]) -> set[int]:
    """pts of shown packets at the head of the stream that FFmpeg's decoder never outputs.

    Only the head can hold such frames: packets before the first keyframe in decode order (a
    stream cut mid-GOP, a transport stream joined late) and leading pictures whose pts is
    before that keyframe's (an open GOP cut at its I-frame) reference pictures that are not
    in the file. Whether the decoder shows them depends on the codec (H.264 conceals some,
    HEVC skips RASL pictures), so the head is decoded until it has passed them; every other
    file is answered from the packets alone."""
    first_key = next((n for n, e in enumerate(packets) if e[1]), None)
    if first_key is None:
        return set()  # no keyframe at all: nothing decides; decoding reports the damage
    key_pts = packets[first_key][0]
    doubtful = {pts for n, (pts, _, discard) in enumerate(packets)
                if not discard and (n < first_key or pts < key_pts)}
    if not doubtful:
        return set()
    last = max(doubtful)
    seen: set[int] = set()
    with contextlib.suppress(av.error.FFmpegError), av.open(str(path), "r") as container:
        video = container.streams[index]
        for frame in container.decode(video):
            if frame.pts is not None:
                seen.add(int(frame.pts))
                if frame.pts > last:
                    break
    return doubtful - seen


# --------------------------------------------------------------------------------------------
# Colour conversion


def effective_color(info_or_tags: MediaInfo | ColorTags, width: int, height: int, pix_fmt: str = "yuv420p") -> tuple[str, str]:
    """(swscale matrix name, range name "MPEG"|"JPEG") used to convert this source to and from RGB.

    Untagged: BT.709 for HD (width >= 1280 or height >= 720), BT.601 below; limited range
    unless the pixel format is a full-range (yuvj*) one."""
    tags = info_or_tags.color if isinstance(info_or_tags, MediaInfo) else info_or_tags
    matrix = _SWS_MATRIX.get(tags.matrix or "")
    if matrix is None:
        matrix = "ITU709" if (width >= 1280 or height >= 720) else "ITU601"
    if tags.range == "pc" or pix_fmt.startswith("yuvj"):
        rng = "JPEG"
    else:
        rng = "MPEG"
    return matrix, rng

