"""All of Doppel's PyAV code: probe, frame index, exact-range decode, encode, audio, timecode, colour.

Frame identity is an integer frame index (0-based, presentation order) into the pts index
that `probe` builds by demuxing packets (no decode). Times are pts in a stream's time base,
never float seconds.

Convention for pictures handed in and out: RGB uint8 (H, W, 3), 0..255, converted with the
source's matrix and range (untagged HD -> BT.709, untagged SD -> BT.601, untagged YUV -> limited
range), and the same conversion on the way back, so an untouched pixel keeps its colour.

Untouched frames should not go through RGB at all: `read_av_frames` + `VideoWriter.write_av`
hand decoded frames straight to the encoder (PITFALLS: a full-frame rgb round trip costs
about half an encode). `trim` works that way.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from renderer.atomic import temp_path_for
from renderer.errors import InputError, MediaError, closest


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


@dataclass(frozen=True)
class AudioInfo:
    index: int
    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None


@dataclass(frozen=True)
class MediaInfo:
    """What `probe` found. `pts` is the presentation-ordered pts of every frame in `time_base`;
    `keyframes` are frame indices (into `pts`) of keyframes; `fps` is the nominal rate
    (for VFR media: the mean rate over the clip). `truncated` is True when the container
    declares more frames than could be demuxed (a cut-off or damaged file)."""

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
        out = asdict(self)
        out["path"] = str(self.path)
        out["fps"] = _frac_str(self.fps)
        out["time_base"] = _frac_str(self.time_base)
        out["pts"] = list(self.pts)
        out["keyframes"] = list(self.keyframes)
        out["audio"] = [asdict(a) for a in self.audio]
        out["duration_s"] = self.duration_s
        return out


@dataclass(frozen=True)
class CodecProfile:
    """An output codec: encoder, pixel formats it takes (first = default), containers, options."""

    name: str
    encoder: str
    pix_fmts: tuple[str, ...]
    containers: tuple[str, ...]
    options: dict[str, str] = field(default_factory=dict)
    description: str = ""


CODECS: dict[str, CodecProfile] = {
    "h264": CodecProfile("h264", "libx264", ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le"),
                         (".mp4", ".mov", ".mkv"), {"preset": "medium", "crf": "18"},
                         "H.264 (libx264, crf 18), mp4/mov/mkv; odd sizes are coded 4:4:4"),
    "prores_hq": CodecProfile("prores_hq", "prores_ks", ("yuv422p10le",), (".mov",),
                              {"profile": "3", "vendor": "apl0"}, "ProRes 422 HQ (prores_ks), mov"),
    "prores_4444": CodecProfile("prores_4444", "prores_ks", ("yuv444p10le", "yuva444p10le"), (".mov",),
                                {"profile": "4", "vendor": "apl0"}, "ProRes 4444 (prores_ks), mov"),
    "dnxhr_hq": CodecProfile("dnxhr_hq", "dnxhd", ("yuv422p",), (".mxf", ".mov"),
                             {"profile": "dnxhr_hq"}, "DNxHR HQ 8-bit (dnxhd), mxf/mov, PCM audio"),
    "ffv1": CodecProfile("ffv1", "ffv1", ("yuv444p", "yuv420p", "yuv422p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                                          "yuv444p16le", "bgr0"),
                         (".mkv",), {"level": "3", "slicecrc": "1", "g": "1"}, "FFV1 level 3 (lossless), mkv"),
}

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


def _video_stream(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream:
    streams = [s for s in container.streams.video if not (s.disposition & av.stream.Disposition.attached_pic)]
    if not streams:
        kinds = ", ".join(s.type for s in container.streams) or "no streams"
        raise InputError(f"no video stream in {path} (found: {kinds}); expected a video file")
    return streams[0]


def _color_tags(cc: Any) -> ColorTags:
    return ColorTags(_PRIMARIES.get(int(cc.color_primaries)), _TRANSFER.get(int(cc.color_trc)),
                     _MATRIX.get(int(cc.colorspace)), _RANGE.get(int(cc.color_range)))


def _find_timecode(container: av.container.InputContainer, video: Any) -> str | None:
    for meta in [video.metadata] + [s.metadata for s in container.streams if s.type == "data"] + [container.metadata]:
        for key in ("timecode", "TIMECODE"):
            if meta.get(key):
                return str(meta[key])
    return None


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


def probe(path: Path | str) -> MediaInfo:
    """Describe a media file: the first video stream's format, exact frame count, pts index
    (built by demuxing packets, no decode), VFR flag, timecode, colour, rotation, audio streams.

    Raises InputError for a missing file, a non-media file or one without video.
    """
    path = Path(path)
    with _open_input(path) as container:
        video = _video_stream(container, path)
        tb = Fraction(video.time_base)
        pts_key: list[tuple[int, bool]] = []
        demux_failed = False
        try:
            for packet in container.demux(video):
                if packet.size == 0:
                    continue
                pts = packet.pts if packet.pts is not None else packet.dts
                if pts is None:
                    continue
                pts_key.append((int(pts), bool(packet.is_keyframe)))
        except av.error.FFmpegError:
            demux_failed = True
        if not pts_key:
            raise InputError(f"no video frames could be read from {path}")
        order = sorted(range(len(pts_key)), key=lambda i: pts_key[i][0])
        pts = [pts_key[i][0] for i in order]
        keyframes = tuple(n for n, i in enumerate(order) if pts_key[i][1])
        cc = video.codec_context
        hints = [Fraction(r) for r in (video.average_rate, video.guessed_rate, video.base_rate) if r]
        fps, vfr = _nominal_rate(pts, tb, hints)
        timecode = _find_timecode(container, video)
        rotation = 0
        # Rotation lives in the display-matrix side data; the first decoded frame carries it.
        with contextlib.suppress(av.error.FFmpegError, StopIteration):
            container.seek(pts[keyframes[0] if keyframes else 0], stream=video, backward=True)
            first = next(container.decode(video))
            rotation = int(round(first.rotation or 0)) % 360
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
        declared = int(video.frames) if video.frames else None
        if declared is None and container.duration and not vfr:
            # Matroska and others declare a duration in the header, written when the file was finished.
            start_s = Fraction(container.start_time or 0, av.time_base)
            declared_end = start_s + Fraction(container.duration, av.time_base)
            missing = (declared_end - (pts[-1] * tb + 1 / fps)) * fps
            if missing >= Fraction(3, 2):
                declared = len(pts) + int(round(missing))
        truncated = demux_failed or (declared is not None and declared > len(pts))
        pix_fmt = cc.format.name if cc.format else (cc.pix_fmt or "unknown")
        return MediaInfo(
            path=path, container=container.format.name, codec=cc.name, width=int(cc.width), height=int(cc.height),
            pix_fmt=pix_fmt, fps=fps, time_base=tb, frames=len(pts), pts=tuple(pts), vfr=vfr,
            timecode=timecode, drop_frame=bool(timecode and (";" in timecode or "." in timecode)),
            color=_color_tags(cc), rotation=rotation, audio=audio, start_pts=pts[0], keyframes=keyframes,
            video_index=video.index, declared_frames=declared, truncated=truncated,
        )


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


def frame_to_rgb(frame: av.VideoFrame, matrix: str, rng: str) -> np.ndarray:
    """RGB uint8 (H, W, 3) of a decoded frame, converted with the given matrix and range."""
    if frame.format.name in ("rgb24",):
        return frame.to_ndarray()
    if frame.format.name.startswith(("gbr", "bgr", "rgb")):
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", src_colorspace=matrix, dst_colorspace=matrix,
                            src_color_range=rng, dst_color_range="JPEG")


# --------------------------------------------------------------------------------------------
# Exact-range decode


def _check_range(info: MediaInfo, start: int, end: int) -> None:
    """InputError unless 0 <= start <= end < frames (a truncated file: < the declared frames)."""
    limit = max(info.frames, info.declared_frames or 0) if info.truncated else info.frames
    if not (isinstance(start, int) and isinstance(end, int)) or start < 0 or end < start or end >= limit:
        raise InputError(
            f"frame range {start}-{end} is outside {info.path} (allowed: 0-{info.frames - 1}, inclusive, 0-based, "
            f"start <= end)")


def read_av_frames(path: Path | str, start: int, end: int, info: MediaInfo | None = None) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (frame_index, decoded av.VideoFrame) for exactly frames start..end inclusive.

    Seeks to the keyframe at or before frame `start` (by its pts), decodes forward, drops
    frames before the target and maps each decoded pts to its index in the pts index, so it
    is exact for long GOPs, B-frames, open GOPs, VFR and non-zero start times. Where the
    demuxer's seek lands after the target (byte-seeking formats such as MPEG-TS), it decodes
    from the start of the file instead. The frames are for `VideoWriter.write_av`
    (pass-through) or `frame_to_rgb`.

    Raises InputError for a range outside the media; CorruptMediaError when decoding fails or
    the file ends early, naming the last good frame.
    """
    info = info or probe(path)
    _check_range(info, start, end)
    if start >= info.frames:  # only reachable for a truncated file
        raise CorruptMediaError(
            f"{info.path} ended early: it declares {info.declared_frames} frames but the last good frame is "
            f"{info.frames - 1}; asked {start}-{end}")
    index_of = {p: i for i, p in enumerate(info.pts)}
    last_good = start - 1
    for seek in (True, False):
        with _open_input(Path(path)) as container:
            video = container.streams[info.video_index]
            video.thread_type = "AUTO"
            if seek:
                container.seek(info.pts[start], stream=video, backward=True)
            expected = None  # the next index to yield once the first target frame was seen
            try:
                for frame in container.decode(video):
                    i = index_of.get(frame.pts) if frame.pts is not None else None
                    if i is None or i < start:
                        continue  # pre-roll before the target (or a frame demuxing never listed)
                    if expected is None and i > start:
                        break  # landed after the target: decode from the file's start instead
                    if i != (expected if expected is not None else start):
                        raise CorruptMediaError(
                            f"{info.path} is damaged: frame {i} came after frame {last_good} "
                            f"(last good frame {last_good}; asked {start}-{end})")
                    yield i, frame
                    last_good, expected = i, i + 1
                    if i == end:
                        return
                    if i == info.frames - 1:
                        break  # a truncated file: no more frames to come
            except av.error.FFmpegError as err:
                raise CorruptMediaError(
                    f"{info.path} is damaged: decoding failed after frame {last_good} (last good frame {last_good}; "
                    f"asked {start}-{end}): {err}") from err
            if expected is not None or not seek:
                break
    raise CorruptMediaError(
        f"{info.path} ended early: the last good frame is {last_good} but frames up to {end} were asked "
        f"({info.frames} frames readable" + (f" of {info.declared_frames} declared)" if info.truncated else ")"))


def read_frames(path: Path | str, start: int, end: int, info: MediaInfo | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (frame_index, rgb) for exactly frames start..end inclusive (0-based).

    rgb: uint8 (H, W, 3), 0..255, converted with the source's matrix and range (see module doc).
    """
    info = info or probe(path)
    matrix, rng = effective_color(info, info.width, info.height, info.pix_fmt)
    for i, frame in read_av_frames(path, start, end, info):
        yield i, frame_to_rgb(frame, matrix, rng)


def iter_packets(path: Path | str, info: MediaInfo | None = None) -> Iterator[tuple[int | None, av.Packet]]:
    """Yield (frame_index, packet) of the video stream in decode order, for stream copy of
    untouched GOPs (boundaries: `MediaInfo.keyframes`). frame_index is None for packets
    without a pts."""
    info = info or probe(path)
    index_of = {p: i for i, p in enumerate(info.pts)}
    with _open_input(Path(path)) as container:
        video = container.streams[info.video_index]
        for packet in container.demux(video):
            if packet.size == 0:
                continue
            yield (index_of.get(packet.pts) if packet.pts is not None else None), packet


# --------------------------------------------------------------------------------------------
# Writing


def resolve_codec(codec: str) -> CodecProfile:
    """The profile named `codec`, or InputError listing the allowed names."""
    if codec not in CODECS:
        raise InputError(f"unknown codec {codec!r} (allowed: {', '.join(CODECS)}){closest(codec, list(CODECS))}")
    return CODECS[codec]


def check_output(path: Path, profile: CodecProfile) -> None:
    """InputError unless `path` has a container suffix this profile writes."""
    if Path(path).suffix.lower() not in profile.containers:
        raise InputError(
            f"output {path} has suffix {Path(path).suffix or '(none)'!r}, which {profile.name} cannot be written to "
            f"(allowed: {', '.join(profile.containers)})")


def _choose_pix_fmt(profile: CodecProfile, width: int, height: int, wanted: str | None) -> str:
    if wanted and wanted in profile.pix_fmts:
        fmt = wanted
    else:
        fmt = profile.pix_fmts[0]
        if wanted:
            # Keep the source's bit depth and chroma layout when the profile allows something close.
            depth10 = "10" in wanted or "12" in wanted or "16" in wanted
            for cand in profile.pix_fmts:
                if ("10" in cand) == depth10 and cand[:6] == wanted[:6]:
                    fmt = cand
                    break
    odd_w, odd_h = width % 2 == 1, height % 2 == 1
    if (odd_w and ("420" in fmt or "422" in fmt)) or (odd_h and "420" in fmt):
        # Odd sizes cannot be chroma-subsampled without padding or cropping: code them 4:4:4.
        full = [c for c in profile.pix_fmts if "444" in c or c.startswith(("bgr", "gbr"))]
        if not full:
            raise InputError(
                f"{profile.name} cannot code an odd size {width}x{height} without padding or cropping "
                f"(its pixel formats: {', '.join(profile.pix_fmts)}); use ffv1, h264 or prores_4444")
        fmt = next((c for c in full if ("10" in c) == ("10" in fmt)), full[0])
    return fmt


class VideoWriter:
    """Encode frames to `path` with a codec profile; a context manager.

    Writes to a hidden temporary name beside `path` and renames it on a clean close; on an
    exception the temporary file is deleted and nothing appears under `path`.

    Frames go in with `write(rgb, pts=None)` (RGB uint8 (H, W, 3), converted with `color`'s
    matrix/range) or `write_av(frame, pts=None)` (a decoded frame from `read_av_frames`, passed
    to the encoder as it came, reformatted only if its pixel format differs). `pts` is in
    `time_base` (default 1/fps, then the default pts is the frame count so far).

    audio_from = (source, first_frame, last_frame) carries that source's first audio stream over
    exactly the time of those video frames, sample-accurate (PCM in mov/mxf/mkv, AAC in mp4;
    padded with silence where the source audio is shorter).
    """

    def __init__(self, path: Path | str, *, width: int, height: int, fps: Fraction, codec: str = "h264",
                 timecode: str | None = None, color: ColorTags | None = None, metadata: dict[str, str] | None = None,
                 audio_from: tuple[Path, int, int] | None = None, pix_fmt: str | None = None,
                 time_base: Fraction | None = None, rotation: int = 0, options: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        self.profile = resolve_codec(codec)
        check_output(self.path, self.profile)
        if width <= 0 or height <= 0:
            raise InputError(f"frame size {width}x{height} is not positive")
        self.width, self.height = int(width), int(height)
        self.fps = Fraction(fps)
        self.time_base = Fraction(time_base) if time_base else 1 / self.fps
        self.timecode = timecode
        if timecode:
            timecode_to_frame(timecode, self.fps)  # validate early
        self.color = color or ColorTags("bt709", "bt709", "bt709", "tv")
        self.metadata = dict(metadata or {})
        self.audio_from = audio_from
        self.pix_fmt = _choose_pix_fmt(self.profile, self.width, self.height, pix_fmt)
        self.rotation = rotation
        self.options = {**self.profile.options, **(options or {})}
        self.frames_written = 0
        self._tmp: Path | None = None
        self._out: Any = None
        self._stream: Any = None
        self._audio: _AudioCarry | None = None
        self._last_pts: int | None = None

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> VideoWriter:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = temp_path_for(self.path)
        try:
            self._open()
        except BaseException:
            self._discard()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            self._finish()
        except BaseException:
            self._discard()
            raise
        os.replace(self._tmp, self.path)

    def _open(self) -> None:
        fmt = {".mxf": "mxf", ".mkv": "matroska", ".mov": "mov", ".mp4": "mp4"}[self.path.suffix.lower()]
        self._out = av.open(str(self._tmp), "w", format=fmt)
        out = self._out
        for key, value in self.metadata.items():
            out.metadata[key] = value
        if self.timecode:
            out.metadata["timecode"] = self.timecode  # mov/mp4: a tmcd track; mxf: the material package
        stream = out.add_stream(self.profile.encoder, rate=self.fps, options=dict(self.options))
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, self.pix_fmt
        stream.codec_context.time_base = self.time_base
        stream.time_base = self.time_base
        stream.thread_type = "AUTO"
        if self.timecode:
            stream.metadata["timecode"] = self.timecode  # matroska keeps it as a stream tag
        cc = stream.codec_context
        tags = self._tag_ints()
        cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = tags
        if self.rotation:
            stream.set_display_rotation(self.rotation)
        self._stream = stream
        self._matrix, self._range = effective_color(self.color, self.width, self.height, self.pix_fmt)
        if self.audio_from is not None:
            src, first, last = self.audio_from
            self._audio = _AudioCarry(out, Path(src), int(first), int(last), self.path.suffix.lower())

    def _tag_ints(self) -> tuple[int, int, int, int]:
        c = self.color
        return (_inv(_PRIMARIES).get(c.primaries or "", 2), _inv(_TRANSFER).get(c.transfer or "", 2),
                _inv(_MATRIX).get(c.matrix or "", 2), _inv(_RANGE).get(c.range or "", 0))

    # -- frames ---------------------------------------------------------------------------
    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Encode one RGB uint8 (H, W, 3) frame at `pts` (in `time_base`; default: next frame)."""
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.shape != (self.height, self.width, 3):
            got = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
            raise InputError(f"frame for {self.path.name} must be uint8 ({self.height}, {self.width}, 3); got {got}")
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        if self.pix_fmt.startswith(("gbr", "bgr", "rgb")):
            frame = frame.reformat(format=self.pix_fmt)
        else:
            frame = frame.reformat(format=self.pix_fmt, src_colorspace=self._matrix, dst_colorspace=self._matrix,
                                   src_color_range="JPEG", dst_color_range=self._range)
        self._encode(frame, pts)

    def write_av(self, frame: av.VideoFrame, pts: int | None = None, source_color: ColorTags | None = None) -> None:
        """Encode a decoded frame as it came (reformatted only if its pixel format differs)."""
        if frame.width != self.width or frame.height != self.height:
            raise InputError(f"frame is {frame.width}x{frame.height}; {self.path.name} is {self.width}x{self.height}")
        if frame.format.name != self.pix_fmt:
            src_matrix, src_range = effective_color(source_color or self.color, frame.width, frame.height,
                                                    frame.format.name)
            frame = frame.reformat(format=self.pix_fmt, src_colorspace=src_matrix, dst_colorspace=self._matrix,
                                   src_color_range=src_range, dst_color_range=self._range)
        self._encode(frame, pts)

    def _encode(self, frame: av.VideoFrame, pts: int | None) -> None:
        if pts is None:
            pts = round(self.frames_written / self.fps / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:
            raise InputError(f"frame pts {pts} for {self.path.name} is not after the previous one ({self._last_pts})")
        frame.pts = pts
        frame.time_base = self.time_base
        # prores_ks ignores the codec context's colour tags: they must be on every frame.
        frame.color_primaries, frame.color_trc, frame.colorspace, frame.color_range = self._tag_ints()
        frame.pict_type = av.video.frame.PictureType.NONE
        try:
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
        except av.error.FFmpegError as err:
            raise MediaError(f"encoding frame {self.frames_written} of {self.path} with {self.profile.name} failed: {err}") from err
        self._last_pts = pts
        self.frames_written += 1
        if self._audio is not None:
            self._audio.pump_until((pts * self.time_base) + 1 / self.fps)

    def _finish(self) -> None:
        if self.frames_written == 0:
            raise MediaError(f"no frames were written to {self.path}")
        try:
            for packet in self._stream.encode():
                self._out.mux(packet)
            if self._audio is not None:
                self._audio.finish()
        except av.error.FFmpegError as err:
            raise MediaError(f"finishing {self.path} failed: {err}") from err
        self._out.close()
        self._out = None
        if self._audio is not None:
            self._audio.close()

    def _discard(self) -> None:
        if self._audio is not None:
            with contextlib.suppress(Exception):
                self._audio.close()
        if self._out is not None:
            with contextlib.suppress(Exception):
                self._out.close()
            self._out = None
        if self._tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                self._tmp.unlink()


class _AudioCarry:
    """Decode a source's first audio stream over a video frame range and encode it, sample-exact.

    The range is [start of first_frame, end of last_frame) in the video's clock; samples are
    cut at round(t * rate). Encoded in step with the video (`pump_until`) so the muxer never
    buffers a whole file of video waiting for audio.
    """

    def __init__(self, out: Any, source: Path, first: int, last: int, suffix: str) -> None:
        info = probe(source)
        _check_range(info, first, last)
        if not info.audio:
            raise InputError(f"audio was asked from {source}, which has no audio stream")
        a = info.audio[0]
        self.rate = 48000 if suffix == ".mxf" else a.sample_rate
        self.channels = a.channels
        self.start_t = info.frame_time(first)
        self.end_t = info.frame_end_time(last)
        self.total = int(round((self.end_t - self.start_t) * self.rate))
        if suffix == ".mp4":
            codec, self.fmt = "aac", "fltp"
        else:
            codec, self.fmt = "pcm_s24le", "s32"
        self.stream = out.add_stream(codec, rate=self.rate)
        self.stream.codec_context.layout = av.AudioLayout(self.channels).name if self.channels != 2 else "stereo"
        self.stream.codec_context.format = self.fmt
        self.stream.codec_context.time_base = Fraction(1, self.rate)
        self.stream.time_base = Fraction(1, self.rate)
        if codec == "aac":
            self.stream.codec_context.bit_rate = 96000 * self.channels
        self.layout = self.stream.codec_context.layout.name
        self.out = out
        self.frame_size = 1024  # AAC needs exactly this per frame but the last; PCM takes any
        self.encoded = 0
        self.pending = np.zeros((self.channels, 0), np.float32)
        self._src = av.open(str(source), "r")
        self._astream = self._src.streams.audio[0]
        self._resampler = av.AudioResampler(format="fltp", layout=self.layout, rate=self.rate)
        self._decoded = self._decode_samples()

    def _decode_samples(self) -> Iterator[np.ndarray]:
        """float32 (channels, n) chunks starting exactly at start_t, then silence forever."""
        src, stream = self._src, self._astream
        stb = Fraction(stream.time_base)
        # Seek half a second early: audio packets are small and decoders need pre-roll.
        src.seek(max(0, int(math.floor((self.start_t - Fraction(1, 2)) / stb))), stream=stream, backward=True)
        skip: int | None = None  # samples still to drop before start_t (negative: silence to add)

        def cut(data: np.ndarray) -> Iterator[np.ndarray]:
            nonlocal skip
            assert skip is not None
            if skip < 0:  # the source's audio starts after the range start: lead with silence
                yield np.zeros((self.channels, -skip), np.float32)
                skip = 0
            if skip >= data.shape[1]:
                skip -= data.shape[1]
                return
            out, skip = data[:, skip:], 0
            yield out.astype(np.float32, copy=False)

        try:
            for packet in src.demux(stream):
                for frame in packet.decode():
                    if skip is None:
                        t0 = Fraction(frame.pts) * stb if frame.pts is not None else Fraction(0)
                        skip = int(round((self.start_t - t0) * self.rate))
                    for rf in self._resampler.resample(frame):
                        yield from cut(rf.to_ndarray())
            if skip is not None:
                for rf in self._resampler.resample(None):
                    yield from cut(rf.to_ndarray())
        except av.error.FFmpegError:
            pass  # a damaged audio tail: the rest is silence; the video decides success
        while True:
            yield np.zeros((self.channels, 4096), np.float32)

    def pump_until(self, t: Fraction) -> None:
        """Encode audio up to output time `t` (seconds after the range start)."""
        want = min(self.total, int(round(t * self.rate)))
        self._encode_upto(want, final=False)

    def _encode_upto(self, want: int, final: bool) -> None:
        while self.encoded + self.pending.shape[1] < want:
            self.pending = np.concatenate([self.pending, next(self._decoded)], axis=1)
        while want - self.encoded >= self.frame_size or (final and self.encoded < want):
            n = min(self.frame_size, want - self.encoded)
            chunk, self.pending = self.pending[:, :n], self.pending[:, n:]
            frame = _to_audio_frame(chunk, self.fmt, self.layout)
            frame.sample_rate = self.rate
            frame.pts = self.encoded
            frame.time_base = Fraction(1, self.rate)
            for packet in self.stream.encode(frame):
                self.out.mux(packet)
            self.encoded += n

    def finish(self) -> None:
        self._encode_upto(self.total, final=True)
        for packet in self.stream.encode():
            self.out.mux(packet)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._src.close()


def _to_audio_frame(samples: np.ndarray, fmt: str, layout: str) -> av.AudioFrame:
    """An AudioFrame from float32 (channels, n) in -1..1."""
    if fmt == "fltp":
        return av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32), format="fltp", layout=layout)
    scaled = np.clip(np.round(samples.astype(np.float64) * 2147483648.0), -2147483648, 2147483647).astype(np.int32)
    return av.AudioFrame.from_ndarray(np.ascontiguousarray(scaled.T.reshape(1, -1)), format="s32", layout=layout)


# --------------------------------------------------------------------------------------------
# Trim


def output_color(info: MediaInfo) -> ColorTags:
    """The colour tags to write for media derived from `info`: the source's own tags, with an
    untagged matrix/range filled in as `effective_color` decodes them, so players agree with us."""
    c = info.color
    color = ColorTags(c.primaries or None, c.transfer or None, c.matrix, c.range)
    if color.matrix is None or color.range is None:
        matrix, rng = effective_color(info, info.width, info.height, info.pix_fmt)
        inv = {v: k for k, v in _SWS_MATRIX.items() if k not in ("smpte170m", "bt2020c")}
        color = ColorTags(color.primaries, color.transfer, color.matrix or inv.get(matrix),
                          color.range or ("pc" if rng == "JPEG" else "tv"))
    return color


def trim(src: Path | str, start: int, end: int, out: Path | str, codec: str = "h264",
         on_frame: Callable[[int], None] | None = None, info: MediaInfo | None = None) -> MediaInfo:
    """Frame-accurate re-encode of frames start..end (inclusive, 0-based) of `src` into `out`.

    Decoded frames go to the encoder as they came (no RGB round trip); the source's colour
    tags, frame timing (VFR pts included), rotation and first audio stream over the same
    range are carried; the start timecode is shifted by `start` frames. Returns `probe(out)`.
    `on_frame(index)` is called after each frame is encoded (progress bars).
    """
    profile = resolve_codec(codec)
    out = Path(out)
    check_output(out, profile)
    info = info or probe(src)
    _check_range(info, start, end)
    if out.resolve() == Path(src).resolve():
        raise InputError(f"output {out} is the source itself; the source is never written")
    if info.audio and out.suffix.lower() == ".mxf" and info.audio[0].channels > 8:
        raise InputError(f"{src} has {info.audio[0].channels} audio channels; mxf takes at most 8")
    timecode = shift_timecode(info.timecode, start, info.fps) if info.timecode else None
    color = output_color(info)
    base = info.pts[start]
    with VideoWriter(out, width=info.width, height=info.height, fps=info.fps, codec=codec, timecode=timecode,
                     color=color, audio_from=(Path(src), start, end) if info.audio else None,
                     pix_fmt=info.pix_fmt, time_base=info.time_base if info.vfr else None,
                     rotation=info.rotation) as writer:
        for i, frame in read_av_frames(src, start, end, info):
            writer.write_av(frame, pts=(info.pts[i] - base) if info.vfr else None, source_color=info.color)
            if on_frame is not None:
                on_frame(i)
    return probe(out)


# --------------------------------------------------------------------------------------------
# Concatenation (render-farm chunks)


def concat(parts: list[Path], out: Path | str, *, time_base: Fraction, offsets: list[int],
           fps: Fraction, timecode: str | None = None, metadata: dict[str, str] | None = None,
           audio_from: tuple[Path, int, int] | None = None) -> MediaInfo:
    """Join the video of encoded `parts` into `out` packet by packet (no re-encode); return `probe(out)`.

    Every part must be the same codec, size and pixel format, each starting on a keyframe of
    a closed GOP (intra codecs, or h264 encoded with a forced GOP), as farm chunks are. Part
    k's timestamps are moved to start at `offsets[k]` in `time_base` (the writer's time base:
    1/fps, or the source's for VFR), so the output carries exactly the timing an unchunked
    encode of the same frames would; `fps` is the nominal rate (the timecode track needs it). `audio_from` = (source, first, last) encodes the source's
    audio over that frame range beside the copied video, as `VideoWriter` does (chunks carry
    no audio: separately encoded AAC does not join without gaps). Written under a temporary
    name, renamed when complete; MediaError names the part that does not fit.
    """
    out = Path(out)
    if not parts or len(parts) != len(offsets):
        raise InputError(f"concat needs one offset per part; got {len(parts)} part(s), {len(offsets)} offset(s)")
    fmt = {".mxf": "mxf", ".mkv": "matroska", ".mov": "mov", ".mp4": "mp4"}.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"output {out} has suffix {out.suffix or '(none)'!r} (allowed: .mov, .mp4, .mkv, .mxf)")
    tb = Fraction(time_base)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    audio: _AudioCarry | None = None
    try:
        with av.open(str(tmp), "w", format=fmt) as container:
            for key, value in (metadata or {}).items():
                container.metadata[key] = value
            if timecode:
                container.metadata["timecode"] = timecode
            stream: Any = None
            shape: tuple[str, int, int, str] | None = None
            last_dts: int | None = None
            for part, offset in zip(parts, offsets):
                with _open_input(Path(part)) as src:
                    video = _video_stream(src, Path(part))
                    here = (video.codec_context.name, video.codec_context.width, video.codec_context.height,
                            video.codec_context.format.name if video.codec_context.format else "")
                    if stream is None:
                        shape = here
                        stream = container.add_stream_from_template(video)
                        stream.time_base = tb
                        stream.codec_context.framerate = Fraction(fps)
                        if timecode:
                            stream.metadata["timecode"] = timecode
                        if audio_from is not None:
                            audio = _AudioCarry(container, Path(audio_from[0]), int(audio_from[1]),
                                                int(audio_from[2]), out.suffix.lower())
                    elif here != shape:
                        raise MediaError(f"cannot join {part}: it is {here}, the first part is {shape} "
                                         f"(codec, width, height, pixel format must match)")
                    in_tb = Fraction(video.time_base)
                    first = True
                    for packet in src.demux(video):
                        if packet.size == 0:
                            continue
                        if first and not packet.is_keyframe:
                            raise MediaError(f"cannot join {part}: it does not start on a keyframe")
                        first = False
                        # Rescale to the writer's time base (exact: chunk pts are whole ticks of it), then shift.
                        pts = None if packet.pts is None else round(packet.pts * in_tb / tb) + offset
                        dts = None if packet.dts is None else round(packet.dts * in_tb / tb) + offset
                        if dts is not None and last_dts is not None and dts <= last_dts:
                            raise MediaError(f"cannot join {part}: its timestamps overlap the part before "
                                             f"(dts {dts} after {last_dts} in {tb})")
                        last_dts = dts if dts is not None else last_dts
                        duration = round(packet.duration * in_tb / tb) if packet.duration else 0
                        packet.pts, packet.dts, packet.duration = pts, dts, duration
                        packet.time_base = tb
                        packet.stream = stream
                        container.mux(packet)
                        if audio is not None and pts is not None:
                            audio.pump_until((pts - offsets[0] + max(duration, 1)) * tb)
            if audio is not None:
                audio.finish()
        os.replace(tmp, out)
    except av.error.FFmpegError as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise MediaError(f"joining {len(parts)} part(s) into {out} failed: {err}") from err
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        if audio is not None:
            audio.close()
    return probe(out)


# --------------------------------------------------------------------------------------------
# Patching decoded frames (convert only what changed)


def _plane_arrays(frame: av.VideoFrame) -> list[np.ndarray]:
    """Writable views (height, width) of each plane of a planar frame (8- or 16-bit samples)."""
    out = []
    for plane in frame.planes:
        itemsize = 2 if frame.format.name.endswith(("le", "be")) else 1
        dtype = np.uint16 if itemsize == 2 else np.uint8
        arr = np.frombuffer(plane, dtype=dtype).reshape(plane.height, plane.line_size // itemsize)
        out.append(arr[:, : plane.width])
    return out


def patch_frame(frame: av.VideoFrame, rgb: np.ndarray, changed: np.ndarray, matrix: str, rng: str) -> av.VideoFrame:
    """A copy of decoded `frame` that takes `rgb`'s values where `changed`, in the frame's own format.

    rgb: uint8 (H, W, 3); changed: bool (H, W). Only the bounding box of `changed` is
    converted from RGB (with the source's matrix/range); every other coded sample is
    copied as it was decoded, so untouched pixels stay bit-identical through a lossless
    encode and the full-frame colour conversion is skipped. A chroma sample is replaced
    when any luma pixel it covers changed. Packed or exotic formats fall back to a full
    conversion of `rgb`.
    """
    fmt = frame.format.name
    ys, xs = np.nonzero(changed)
    if ys.size == 0:
        return frame
    planar = len(frame.planes) == 3 and (fmt[3:6].isdigit() if fmt.startswith("yuv4") else fmt.startswith("yuvj4"))
    out = av.VideoFrame(frame.width, frame.height, fmt)
    if not planar:
        full = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        out = full.reformat(format=fmt, src_colorspace=matrix, dst_colorspace=matrix,
                            src_color_range="JPEG", dst_color_range=rng)
        return _same_timing(out, frame)
    for dst, src in zip(_plane_arrays(out), _plane_arrays(frame)):
        dst[...] = src
    # Box aligned to the chroma grid (2x2 covers every subsampling yuv4xxp uses).
    y0, y1 = int(ys.min()) & ~1, min(frame.height, (int(ys.max()) + 2) & ~1)
    x0, x1 = int(xs.min()) & ~1, min(frame.width, (int(xs.max()) + 2) & ~1)
    box = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb[y0:y1, x0:x1]), format="rgb24")
    box = box.reformat(format=fmt, src_colorspace=matrix, dst_colorspace=matrix,
                       src_color_range="JPEG", dst_color_range=rng)
    region = changed[y0:y1, x0:x1]
    for dst, new in zip(_plane_arrays(out), _plane_arrays(box)):
        sy, sx = (y1 - y0) // new.shape[0], (x1 - x0) // new.shape[1]  # subsampling of this plane
        mask = region if (sy, sx) == (1, 1) else region.reshape(new.shape[0], sy, new.shape[1], sx).any(axis=(1, 3))
        view = dst[y0 // sy: y0 // sy + new.shape[0], x0 // sx: x0 // sx + new.shape[1]]
        view[mask] = new[mask]
    return _same_timing(out, frame)


def _same_timing(out: av.VideoFrame, frame: av.VideoFrame) -> av.VideoFrame:
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    return out


# --------------------------------------------------------------------------------------------
# Smart render: stream-copy untouched GOPs, splice re-encoded spans in

SMART_CODECS = ("h264", "prores", "dnxhd", "ffv1")  # codecs Doppel re-encodes to splice back in
_IDR_NAL, _SPS_NAL, _PPS_NAL = 5, 7, 8


class SpliceError(MediaError):
    """A re-encoded span does not fit the source's stream (the caller re-encodes everything instead)."""


@dataclass(frozen=True)
class CutPoints:
    """Where a video stream can be cut for stream copy, by frame index.

    `cuts` holds every frame c where the packets before c in decode order are exactly frames
    0..c-1 and frame c opens a closed GOP (h264: an IDR access unit; intra codecs: every
    frame), plus 0 and `frames`. Packets can be swapped between two cuts without any other
    packet referencing them. `reason` says why smart render is impossible (None: possible).
    """

    cuts: tuple[int, ...]
    frames: int
    reason: str | None = None


@dataclass(frozen=True)
class SpliceResult:
    """What `splice` wrote: frames stream-copied from the source and frames taken from spans.

    `parameter_sets_at`: source frames whose copied packet got the source's SPS/PPS prepended
    in-band (h264: the first copied keyframe after a re-encoded span); its bytes are otherwise
    the source packet's."""

    copied: int
    encoded: int
    parameter_sets_at: tuple[int, ...]
    info: MediaInfo


def _avcc(extradata: bytes | None) -> tuple[int, list[bytes]] | None:
    """(NAL length size, [SPS..., PPS...]) of an avcC record; None when not avcC (Annex B)."""
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    length_size = (extradata[4] & 3) + 1
    nals: list[bytes] = []
    pos = 5
    for count_mask in (0x1F, 0xFF):
        count = extradata[pos] & count_mask
        pos += 1
        for _ in range(count):
            n = int.from_bytes(extradata[pos:pos + 2], "big")
            nals.append(bytes(extradata[pos + 2:pos + 2 + n]))
            pos += 2 + n
    return length_size, nals


def _nal_types(data: bytes, length_size: int) -> list[int]:
    """NAL unit types of one length-prefixed (avcC) h264 access unit."""
    types, pos = [], 0
    while pos + length_size <= len(data):
        n = int.from_bytes(data[pos:pos + length_size], "big")
        if pos + length_size < len(data):
            types.append(data[pos + length_size] & 0x1F)
        pos += length_size + n
    return types


def _length_prefixed(nals: list[bytes], length_size: int) -> bytes:
    return b"".join(len(n).to_bytes(length_size, "big") + n for n in nals)


def cut_points(info: MediaInfo) -> CutPoints:
    """Find where `info`'s video can be cut for stream copy (demuxes packets, no decode).

    Open GOPs (leading B-frames that reference the GOP before), non-IDR h264 keyframes and
    Annex B h264 give no cut; a source Doppel cannot encode, or a damaged one, gives a reason.
    """
    if info.codec not in SMART_CODECS:
        return CutPoints((0, info.frames), info.frames,
                         f"source codec {info.codec} is not one Doppel encodes (smart render: {', '.join(SMART_CODECS)})")
    if info.truncated:
        return CutPoints((0, info.frames), info.frames, "the source is truncated")
    cuts = [0]
    length_size = 4
    with _open_input(info.path) as container:
        video = container.streams[info.video_index]
        if info.codec == "h264":
            avcc = _avcc(video.codec_context.extradata)
            if avcc is None:
                return CutPoints((0, info.frames), info.frames, "h264 without avcC parameter sets (Annex B stream)")
            length_size = avcc[0]
    seen_max, n = -1, 0
    for index, packet in iter_packets(info.path, info):
        if index is None:
            return CutPoints((0, info.frames), info.frames, "a video packet without a timestamp")
        if n > 0 and seen_max == n - 1 and packet.is_keyframe and (
                info.codec != "h264" or _IDR_NAL in _nal_types(bytes(packet), length_size)):
            cuts.append(n)
        seen_max = max(seen_max, index)
        n += 1
    if n != info.frames:
        return CutPoints((0, info.frames), info.frames, f"demuxed {n} video packets for {info.frames} frames")
    cuts.append(info.frames)
    return CutPoints(tuple(sorted(set(cuts))), info.frames)


def gop_spans(cuts: CutPoints, ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Inclusive frame spans to re-encode so that every frame of `ranges` (inclusive) is inside one.

    Each range grows to the cut at or before its first frame and to just before the cut
    after its last frame; overlapping or touching spans merge. Sorted."""
    spans: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if not 0 <= lo <= hi < cuts.frames:
            raise InputError(f"swap range {lo}-{hi} is outside the video (allowed: 0-{cuts.frames - 1})")
        g0 = max(c for c in cuts.cuts if c <= lo)
        g1 = min(c for c in cuts.cuts if c > hi) - 1
        if spans and g0 <= spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], max(spans[-1][1], g1))
        else:
            spans.append((g0, g1))
    return spans


def _check_span(info: MediaInfo, src_video: Any, g0: int, g1: int, part: Path) -> MediaInfo:
    """SpliceError unless `part` codes frames g0..g1 the way the source stream does."""
    p = probe(part)
    problems = []
    if p.frames != g1 - g0 + 1:
        problems.append(f"{p.frames} frames for span {g0}-{g1}")
    for what, mine, theirs in (("codec", p.codec, info.codec), ("size", (p.width, p.height), (info.width, info.height)),
                               ("pixel format", p.pix_fmt, info.pix_fmt)):
        if mine != theirs:
            problems.append(f"{what} {mine} (source: {theirs})")
    if p.keyframes[:1] != (0,):
        problems.append("it does not start on a keyframe")
    with _open_input(part) as container:
        cc, sc = container.streams.video[0].codec_context, src_video.codec_context
        if info.codec == "h264":
            mine_avcc, src_avcc = _avcc(cc.extradata), _avcc(sc.extradata)
            if mine_avcc is None or src_avcc is None or mine_avcc[0] != src_avcc[0]:
                problems.append("its NAL length size differs from the source's")
        elif info.codec == "ffv1" and bytes(cc.extradata or b"") != bytes(sc.extradata or b""):
            problems.append("its FFV1 configuration record differs from the source's (version, slices, coder)")
        elif info.codec in ("prores", "dnxhd") and (cc.codec_tag, cc.profile) != (sc.codec_tag, sc.profile):
            problems.append(f"profile {cc.codec_tag} {cc.profile} (source: {sc.codec_tag} {sc.profile})")
    if problems:
        raise SpliceError(f"re-encoded span {g0}-{g1} ({part.name}) does not fit the source: {'; '.join(problems)}")
    return p


def splice(src: Path | str, out: Path | str, parts: list[tuple[int, int, Path]], *, info: MediaInfo | None = None,
           metadata: dict[str, str] | None = None, progress: Callable[[int], None] | None = None) -> SpliceResult:
    """Write `out`: the source's video packets stream-copied, except frames g0..g1 of each
    (g0, g1, part) taken from `part` (a re-encode of exactly those frames, same codec).

    Spans must lie between `cut_points`; each part's timestamps are moved onto the source's
    frames (pts of output frame i == source pts of frame i), and decode timestamps are
    re-derived for the whole stream so they stay monotonic across spans whose B-frame delay
    differs. h264 parameter sets travel in-band: each part's first packet carries its own
    SPS/PPS and the first copied keyframe after a part the source's (the avcC record stays
    the source's). Audio packets are copied as they are; timecode, colour tags, rotation and
    `metadata` (container tags, e.g. the synthetic-media label) are kept. Written under a
    temporary name and renamed when complete. Raises SpliceError when a part does not fit.
    `progress(frames_done)` is called as frames are written.
    """
    src, out = Path(src), Path(out)
    info = info or probe(src)
    parts = sorted(parts)
    fmt = {".mxf": "mxf", ".mkv": "matroska", ".mov": "mov", ".mp4": "mp4"}.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"output {out} has suffix {out.suffix or '(none)'!r} (allowed: .mov, .mp4, .mkv, .mxf)")
    if out.resolve() == src.resolve():
        raise InputError(f"output {out} is the source itself; the source is never written")
    span_of: dict[int, int] = {}
    for k, (g0, g1, _) in enumerate(parts):
        for i in range(g0, g1 + 1):
            if i in span_of:
                raise InputError(f"spans overlap at frame {i}")
            span_of[i] = k
    index_of = {p: i for i, p in enumerate(info.pts)}
    with _open_input(src) as container:
        src_video = container.streams[info.video_index]
        part_infos = [_check_span(info, src_video, g0, g1, Path(p)) for g0, g1, p in parts]
        src_avcc = _avcc(src_video.codec_context.extradata) if info.codec == "h264" else None
        # Decode order of the output, as frame indices, to derive its decode timestamps.
        order: list[int] = []
        part_orders: list[list[int]] = []
        for (g0, _, p), pinfo in zip(parts, part_infos):
            p_index = {q: i for i, q in enumerate(pinfo.pts)}
            part_orders.append([g0 + p_index[pk.pts] for pk in _video_packets(Path(p))])
        emitted: set[int] = set()
        for packet in container.demux(src_video):
            if packet.size == 0:
                continue
            i = index_of[packet.pts]
            k = span_of.get(i)
            if k is None:
                order.append(i)
            elif k not in emitted:
                emitted.add(k)
                order.extend(part_orders[k])
    if sorted(order) != list(range(info.frames)):
        raise SpliceError(f"spliced stream of {src.name} would not hold every frame exactly once")
    delay = max(n - i for n, i in enumerate(order))
    step = round(1 / info.fps / info.time_base) or 1

    def dts_at(n: int) -> int:
        j = n - delay
        return info.pts[j] if j >= 0 else info.pts[0] + j * step

    def duration_of(i: int) -> int:
        return (info.pts[i + 1] - info.pts[i]) if i + 1 < info.frames else step

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(out)
    copied = encoded = 0
    param_at: list[int] = []
    try:
        with _open_input(src) as container, av.open(str(tmp), "w", format=fmt) as dst:
            src_video = container.streams[info.video_index]
            for key, value in (metadata or {}).items():
                dst.metadata[key] = value
            if info.timecode:
                dst.metadata["timecode"] = info.timecode
            vout = dst.add_stream_from_template(src_video)
            vout.time_base = info.time_base
            vout.codec_context.framerate = info.fps  # mov writes its timecode track only with a rate
            if info.timecode:
                vout.metadata["timecode"] = info.timecode
            if info.rotation:
                vout.set_display_rotation(info.rotation)
            audio_map = {}
            for a in container.streams.audio:
                try:
                    audio_map[a.index] = dst.add_stream_from_template(a)
                except (av.error.FFmpegError, ValueError) as err:
                    raise SpliceError(f"audio stream {a.index} ({a.codec_context.name}) cannot be copied into "
                                      f"{out.suffix}: {err}") from err
            n = 0
            emitted = set()
            needs_src_params = False

            def mux_video(packet: av.Packet, i: int) -> None:
                nonlocal n
                packet.pts, packet.dts, packet.duration = info.pts[i], dts_at(n), duration_of(i)
                packet.time_base = info.time_base
                packet.stream = vout
                dst.mux(packet)
                n += 1
                if progress is not None:
                    progress(n)

            for packet in container.demux(src_video, *container.streams.audio):
                if packet.size == 0:
                    continue
                if packet.stream.type == "audio":
                    packet.stream = audio_map[packet.stream_index]
                    dst.mux(packet)
                    continue
                i = index_of[packet.pts]
                k = span_of.get(i)
                if k is None:
                    if needs_src_params and src_avcc is not None:
                        if _SPS_NAL not in _nal_types(bytes(packet), src_avcc[0]):
                            data = _length_prefixed(src_avcc[1], src_avcc[0]) + bytes(packet)
                            packet = _packet_like(packet, data)
                            param_at.append(i)
                    needs_src_params = False
                    mux_video(packet, i)
                    copied += 1
                    continue
                if k in emitted:
                    continue
                emitted.add(k)
                g0, _, part = parts[k]
                p_index = {q: j for j, q in enumerate(part_infos[k].pts)}
                with _open_input(Path(part)) as pc:
                    pv = pc.streams.video[0]
                    p_avcc = _avcc(pv.codec_context.extradata) if info.codec == "h264" else None
                    first = True
                    for pp in pc.demux(pv):
                        if pp.size == 0:
                            continue
                        if first and p_avcc is not None and _SPS_NAL not in _nal_types(bytes(pp), p_avcc[0]):
                            pp = _packet_like(pp, _length_prefixed(p_avcc[1], p_avcc[0]) + bytes(pp))
                        first = False
                        mux_video(pp, g0 + p_index[pp.pts])
                        encoded += 1
                needs_src_params = True
        os.replace(tmp, out)
    except av.error.FFmpegError as err:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise MediaError(f"splicing {len(parts)} span(s) into {src.name} -> {out} failed: {err}") from err
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    return SpliceResult(copied=copied, encoded=encoded, parameter_sets_at=tuple(param_at), info=probe(out))


def _video_packets(path: Path) -> Iterator[av.Packet]:
    """The first video stream's packets of `path`, in decode order (empty flush packets skipped)."""
    with _open_input(path) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                yield packet


def _packet_like(packet: av.Packet, data: bytes) -> av.Packet:
    """A new packet holding `data`, with `packet`'s timing and keyframe flag."""
    new = av.Packet(data)
    new.pts, new.dts, new.duration, new.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
    new.is_keyframe = packet.is_keyframe
    return new
