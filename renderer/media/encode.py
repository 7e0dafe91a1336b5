"""Encoding: codec profiles, `VideoWriter` (atomic, colour-tagged, timecode, audio carried), `trim`."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from renderer.atomic import temp_path_for
from renderer.pipeline import prefetch
from renderer.errors import InputError, MediaError, closest
from renderer.media.audio import AudioCarry
from renderer.media.decode import _check_range, _plane_arrays, pix_fmt_depth, read_av_frames
from renderer.media.info import (
    _MATRIX,
    _PRIMARIES,
    _RANGE,
    _SWS_MATRIX,
    _TRANSFER,
    FIELD_ORDERS,
    ColorTags,
    HdrMetadata,
    MediaInfo,
    _inv,
    effective_color,
    probe,
    shift_timecode,
    timecode_to_frame,
)


# Whole-frame swscale conversions run unsliced. FFmpeg 8's sliced swscale gives rows that differ
# from the unsliced result, and from run to run, when the width is no multiple of its SIMD step:
# rgb24 -> yuv422p10le and -> yuv420p at 720x486, 1000x1080, 1998x1080, 202x100 all differed
# (1920, 1280, 1440, 2048 and 3840 wide did not). One render must give one output.
SWS_THREADS = 1


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
    "h265": CodecProfile("h265", "libx265", ("yuv420p", "yuv422p", "yuv444p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                                             "yuv420p12le", "yuv422p12le", "yuv444p12le"),
                         (".mp4", ".mov", ".mkv"), {"preset": "medium", "crf": "16", "x265-params": "log-level=error"},
                         "HEVC (libx265, crf 16) 8/10/12-bit, mp4/mov/mkv; HDR10 mastering metadata carried as SEI"),
    "prores_hq": CodecProfile("prores_hq", "prores_ks", ("yuv422p10le",), (".mov",),
                              {"profile": "3", "vendor": "apl0"}, "ProRes 422 HQ (prores_ks), mov"),
    "prores_4444": CodecProfile("prores_4444", "prores_ks", ("yuv444p10le", "yuva444p10le"), (".mov",),
                                {"profile": "4", "vendor": "apl0"}, "ProRes 4444 (prores_ks, 10-bit input; decodes as 12-bit), mov"),
    "prores_xq": CodecProfile("prores_xq", "prores_ks", ("yuv444p10le", "yuva444p10le"), (".mov",),
                              {"profile": "5", "vendor": "apl0"}, "ProRes 4444 XQ (prores_ks, 10-bit input; decodes as 12-bit), mov"),
    "dnxhr_hq": CodecProfile("dnxhr_hq", "dnxhd", ("yuv422p",), (".mxf", ".mov"),
                             {"profile": "dnxhr_hq"}, "DNxHR HQ 8-bit (dnxhd), mxf/mov, PCM audio"),
    "dnxhr_hqx": CodecProfile("dnxhr_hqx", "dnxhd", ("yuv422p10le",), (".mxf", ".mov"),
                              {"profile": "dnxhr_hqx"}, "DNxHR HQX 10-bit 4:2:2 (dnxhd), mxf/mov, PCM audio"),
    "dnxhr_444": CodecProfile("dnxhr_444", "dnxhd", ("yuv444p10le", "gbrp10le"), (".mxf", ".mov"),
                              {"profile": "dnxhr_444"}, "DNxHR 444 10-bit (dnxhd), mxf/mov, PCM audio"),
    "ffv1": CodecProfile("ffv1", "ffv1", ("yuv444p", "yuv420p", "yuv422p", "yuv420p10le", "yuv422p10le", "yuv444p10le",
                                          "yuv420p12le", "yuv422p12le", "yuv444p12le", "yuv420p16le", "yuv422p16le",
                                          "yuv444p16le", "yuva444p10le", "yuva444p12le", "yuva444p16le", "bgr0",
                                          "gbrp10le", "gbrp12le", "gbrp16le", "gbrap16le"),
                         (".mkv",), {"level": "3", "slicecrc": "1", "g": "1"},
                         "FFV1 level 3 (lossless) 8-16-bit YUV or RGB, mkv"),
}


def _layout(pix_fmt: str) -> str:
    """'rgb', or the YUV chroma layout ('420', '422', '444', ...) with 'a' for alpha."""
    if pix_fmt.startswith(("gbr", "bgr", "rgb")):
        return "rgb"
    rest = pix_fmt.removeprefix("yuv").removeprefix("j")
    return ("a" if rest.startswith("a") else "") + rest.lstrip("a")[:3]


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
            # Keep the source's chroma layout and at least its bit depth (the nearest depth the
            # profile has, never fewer bits when more are on offer) when the profile allows it.
            depth, layout = pix_fmt_depth(wanted), _layout(wanted)
            same = [c for c in profile.pix_fmts if _layout(c) == layout]
            if same:
                fmt = min(same, key=lambda c: (pix_fmt_depth(c) < depth, abs(pix_fmt_depth(c) - depth)))
            elif depth > 8:
                fmt = min(profile.pix_fmts, key=lambda c: (pix_fmt_depth(c) < depth, abs(pix_fmt_depth(c) - depth)))
    odd_w, odd_h = width % 2 == 1, height % 2 == 1
    if (odd_w and ("420" in fmt or "422" in fmt)) or (odd_h and "420" in fmt):
        # Odd sizes cannot be chroma-subsampled without padding or cropping: code them 4:4:4.
        full = [c for c in profile.pix_fmts if "444" in c or c.startswith(("bgr", "gbr"))]
        if not full:
            raise InputError(
                f"{profile.name} cannot code an odd size {width}x{height} without padding or cropping "
                f"(its pixel formats: {', '.join(profile.pix_fmts)}); use ffv1, h264 or prores_4444")
        fmt = min(full, key=lambda c: (pix_fmt_depth(c) < pix_fmt_depth(fmt), abs(pix_fmt_depth(c) - pix_fmt_depth(fmt))))
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
    padded with silence where the source audio is shorter); `audio_info`: that source's probe
    when the caller has it (not probed again).

    hdr (`MediaInfo.hdr`): HDR10 mastering display and content light level, written by the h265
    profile as SEI (what ffprobe -show_frames reads back); `carries_hdr` says whether this
    profile can. Colour tags (bt2020 / smpte2084 or arib-std-b67) go with `color` as always.

    field_order (`MediaInfo.field_order`: tt, bb, tb, bt) codes the pictures as interlaced
    (H.264 and ProRes code the fields; DNxHR and FFV1 code whole frames) and writes the field
    order to the stream and the container (mov `fiel`, mkv FieldOrder). The encoders take which field comes first
    from each frame's own flags: decoded frames handed to `write_av` keep the source's.
    """

    def __init__(self, path: Path | str, *, width: int, height: int, fps: Fraction, codec: str | CodecProfile = "h264",
                 timecode: str | None = None, color: ColorTags | None = None, metadata: dict[str, str] | None = None,
                 audio_from: tuple[Path, int, int] | None = None, pix_fmt: str | None = None,
                 time_base: Fraction | None = None, rotation: int = 0, options: dict[str, str] | None = None,
                 field_order: str | None = None, hdr: HdrMetadata | None = None,
                 audio_info: MediaInfo | None = None) -> None:
        self.path = Path(path)
        self._audio_info = audio_info
        self.profile = codec if isinstance(codec, CodecProfile) else resolve_codec(codec)
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
        if field_order is not None and field_order not in _FIELD_ORDER_IDS:
            raise InputError(f"field order {field_order!r} is not one of {', '.join(_FIELD_ORDER_IDS)}")
        self.field_order = field_order
        self.options = {**self.profile.options, **(options or {})}
        self.hdr = hdr
        if hdr is not None and self.profile.encoder == "libx265":
            # x265 writes the mastering display / content light level SEI itself; PyAV has no way
            # to hand FFmpeg stream-level side data, so the other encoders cannot carry them.
            given = self.options.get("x265-params")
            self.options["x265-params"] = ":".join(p for p in (given, hdr.x265_params()) if p)
        self.frames_written = 0
        self._tmp: Path | None = None
        self._out: Any = None
        self._stream: Any = None
        self._audio: AudioCarry | None = None
        self._last_pts: int | None = None

    @property
    def carries_hdr(self) -> bool:
        """Whether the HDR10 metadata given (if any) reaches the output file."""
        return self.hdr is None or self.profile.encoder == "libx265"

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
        if self.profile.encoder == "ffv1":
            # Lossless output is meant to be reproducible to the byte: without bitexact the Matroska
            # muxer writes a random SegmentUID (and its version string), so two identical renders differ.
            out.flags |= av.container.Flags.bitexact.value
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
        if self.field_order:
            cc.field_order = _FIELD_ORDER_IDS[self.field_order]
            # DNxHR profiles have no interlaced coding (FFmpeg refuses it); ffv1 codes frames whole: for
            # both, the field order still goes to the stream and the container.
            if self.field_order != "progressive" and self.profile.encoder in ("libx264", "prores_ks"):
                cc.flags |= av.codec.context.Flags.interlaced_dct | av.codec.context.Flags.interlaced_me
        self._stream = stream
        self._matrix, self._range = effective_color(self.color, self.width, self.height, self.pix_fmt)
        if self.audio_from is not None:
            src, first, last = self.audio_from
            known = self._audio_info if self._audio_info is not None and self._audio_info.path == Path(src) else None
            self._audio = AudioCarry(out, Path(src), int(first), int(last), self.path.suffix.lower(), info=known)

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
            frame = frame.reformat(format=self.pix_fmt, threads=SWS_THREADS)
        else:
            frame = frame.reformat(format=self.pix_fmt, src_colorspace=self._matrix, dst_colorspace=self._matrix,
                                   src_color_range="JPEG", dst_color_range=self._range, threads=SWS_THREADS)
        self._encode(frame, pts)

    def write_av(self, frame: av.VideoFrame, pts: int | None = None, source_color: ColorTags | None = None) -> None:
        """Encode a decoded frame as it came (reformatted only if its pixel format differs)."""
        self._encode(self.convert_av(frame, source_color), pts)

    def convert_av(self, frame: av.VideoFrame, source_color: ColorTags | None = None) -> av.VideoFrame:
        """`frame` in this writer's pixel format, as `write_av` converts it (the frame itself when it
        already is). Touches no writer state, so another thread (a decoder's) may call it once the
        writer is open."""
        if frame.width != self.width or frame.height != self.height:
            raise InputError(f"frame is {frame.width}x{frame.height}; {self.path.name} is {self.width}x{self.height}")
        if frame.format.name == self.pix_fmt:
            return frame
        src_matrix, src_range = effective_color(source_color or self.color, frame.width, frame.height,
                                                frame.format.name)
        if (self.pix_fmt == "yuv422p10le" and self.profile.encoder in _NO_FRAME_SIDE_DATA
                and src_matrix == self._matrix and src_range == self._range == "MPEG"):
            widened = widen_420_to_422p10(frame)
            if widened is not None:
                return widened
        return frame.reformat(format=self.pix_fmt, src_colorspace=src_matrix, dst_colorspace=self._matrix,
                              src_color_range=src_range, dst_color_range=self._range, threads=SWS_THREADS)

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


_FIELD_ORDER_IDS = {name: value for value, name in FIELD_ORDERS.items()}


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


def open_writer(out: Path | str, *, source: MediaInfo, first: int = 0, **kwargs: Any) -> Any:
    """The writer for `out`: a `SequenceWriter` when `out` is an image sequence pattern, else a
    `VideoWriter(out, **kwargs)`.

    A sequence takes its frame numbers from `source`: output frame k is numbered like source frame
    first + k (a source sequence's own numbers and step; a movie's frame index), and keeps a source
    sequence's EXR pixel type, compression and attributes. `kwargs` that only movies have (codec,
    timecode, colour tags, audio, rotation, field order, encoder options) are not used for it.
    """
    from renderer.media.sequence import is_sequence_path
    from renderer.media.sequence_write import SequenceWriter

    if not is_sequence_path(out):
        return VideoWriter(out, audio_info=source, **kwargs)
    seq = source.sequence
    number = seq.numbers[first] if seq is not None else first
    step = seq.step if seq is not None else 1
    return SequenceWriter(out, width=kwargs["width"], height=kwargs["height"], fps=kwargs["fps"],
                          first_number=number, step=step, like=seq, metadata=kwargs.get("metadata"))


# Encoders that read nothing of a frame but its samples, pts and colour tags (no side data): the
# 4:2:0 -> 4:2:2 10-bit shortcut (`widen_420_to_422p10`) feeds only these.
_NO_FRAME_SIDE_DATA = ("prores_ks", "prores_aw", "dnxhd", "ffv1")


def widen_420_to_422p10(frame: av.VideoFrame) -> av.VideoFrame | None:
    """A limited-range 8-bit 4:2:0 frame as 4:2:2 10-bit (ProRes' input), or None where this does not apply.

    The same pixels as swscale's bilinear conversion (PyAV's reformat, the ffmpeg CLI with
    `-sws_flags bilinear`), bit for bit (tests/media/test_encode_sws.py), at ~1.4 ms a 1080p frame
    against its ~6 ms: luma is shifted up two bits (Y10 = 4 Y8, exact for limited
    range); each chroma row is interpolated at 3/4 : 1/4 between the two source rows nearest it
    (MPEG-2 vertical siting), which times 4 is the integer 3 C[k] + C[k -/+ 1], edge rows repeated.
    None (swscale then converts) for other formats, odd sizes and interlaced frames. The frame has
    only the source's pts and time base, not its flags and side data as swscale's copy has
    (av_frame_copy_props): `VideoWriter` takes it only for encoders that read no side data
    (_NO_FRAME_SIDE_DATA; libx264 reads captions and user SEI from it). Reading `frame.side_data`
    to decide is no way out: in PyAV 18 the container and the frame refer to each other, so every
    decoded frame asked stays alive until Python's cycle collector runs (a 1080p trim grew from
    220 to 690 MiB).
    """
    if frame.format.name != "yuv420p" or frame.width % 2 or frame.height % 2 or frame.interlaced_frame:
        return None
    out = av.VideoFrame(frame.width, frame.height, "yuv422p10le")
    out.pts = frame.pts
    if frame.time_base is not None:
        out.time_base = frame.time_base
    sources, targets = _plane_arrays(frame), _plane_arrays(out)
    np.left_shift(sources[0], 2, out=targets[0], dtype=np.uint16)
    for src, dst in zip(sources[1:], targets[1:]):
        three = np.multiply(src, 3, dtype=np.uint16)
        np.add(three[1:], src[:-1], out=dst[2::2])  # rows 2k: 3 C[k] + C[k-1]
        np.add(three[:-1], src[1:], out=dst[1:-1:2])  # rows 2k+1: 3 C[k] + C[k+1]
        np.left_shift(src[0], 2, out=dst[0], dtype=np.uint16)
        np.left_shift(src[-1], 2, out=dst[-1], dtype=np.uint16)
    return out


def trim(src: Path | str, start: int, end: int, out: Path | str, codec: str = "h264",
         on_frame: Callable[[int], None] | None = None, info: MediaInfo | None = None) -> MediaInfo:
    """Frame-accurate re-encode of frames start..end (inclusive, 0-based) of `src` into `out`.

    Decoded frames go to the encoder as they came (no RGB round trip); the source's colour
    tags, HDR10 metadata (h265 output), frame timing (VFR pts included), rotation, field order and first audio stream over
    the same range are carried (further video streams are not: `MediaInfo.warnings`); the start timecode is shifted by `start` frames. Returns `probe(out)`.
    `src` and `out` may be image sequences (`renderer.media.sequence`): an output sequence keeps
    the source frames' numbers (trimming frames 2-4 of shot.1001.exr... gives 1003-1005) and is
    written as its own folder, atomically; `codec` is then not used.
    `on_frame(index)` is called after each frame is encoded (progress bars).
    """
    from renderer.media.sequence import is_sequence_path

    out = Path(out)
    to_sequence = is_sequence_path(out)
    if not to_sequence:
        check_output(out, resolve_codec(codec))
    info = info or probe(src)
    _check_range(info, start, end)
    if out.resolve() == Path(info.path).resolve() or (
            to_sequence and info.sequence is not None and out.parent.resolve() == info.sequence.pattern.folder.resolve()):
        raise InputError(f"output {out} is the source itself; the source is never written")
    if to_sequence:  # same numbers as the source's frames, the source's kind of file unless OUT names another
        with open_writer(out, source=info, first=start, width=info.width, height=info.height, fps=info.fps) as writer:
            for i, frame in read_av_frames(src, start, end, info):
                writer.write_av(frame, source_color=info.color)
                if on_frame is not None:
                    on_frame(i)
        return probe(out, rate=info.fps)
    if info.audio and out.suffix.lower() == ".mxf" and info.audio[0].channels > 8:
        raise InputError(f"{src} has {info.audio[0].channels} audio channels; mxf takes at most 8")
    timecode = shift_timecode(info.timecode, start, info.fps) if info.timecode else None
    color = output_color(info)
    base = info.pts[start]
    with VideoWriter(out, width=info.width, height=info.height, fps=info.fps, codec=codec, timecode=timecode,
                     color=color, audio_from=(Path(src), start, end) if info.audio else None,
                     pix_fmt=info.pix_fmt, time_base=info.time_base if info.vfr else None,
                     rotation=info.rotation, field_order=info.field_order, hdr=info.hdr) as writer:
        # Decoding runs on its own thread, a few frames ahead: the FFmpeg CLI (5.1) decodes and
        # encodes in turn on one thread; here the decoder's work overlaps the encoder's calls. The
        # pixel format conversion (e.g. 4:2:0 8-bit to ProRes' 4:2:2 10-bit; unsliced, SWS_THREADS)
        # runs on that thread too.
        converted = ((i, writer.convert_av(f, info.color)) for i, f in read_av_frames(src, start, end, info))
        with contextlib.closing(prefetch(converted, TRIM_PREFETCH)) as frames:
            for i, frame in frames:
                writer.write_av(frame, pts=(info.pts[i] - base) if info.vfr else None, source_color=info.color)
                if on_frame is not None:
                    on_frame(i)
    return probe(out)


TRIM_PREFETCH = 4  # decoded frames queued ahead of the encoder (bounded: flat memory)


