"""Image sequences as media: EXR, DPX, TIFF and PNG frames numbered in their file names.

A sequence is named by a pattern (`plates/shot.%04d.exr`, `plates/shot.####.exr`) or by the
folder that holds it (one sequence per folder). Frame identity stays what it is for movies:
an integer index 0..frames-1 into the frames on disk in number order; `SequenceInfo.numbers`
maps each index to its file's frame number (the sequence's own start frame and step), and
every output keeps those numbers.

Image files carry no frame rate (EXR may: `framesPerSecond`): the rate comes from the edit
(OTIO `ImageSequenceReference.rate`), a preset or a `--rate` flag, else the EXR attribute,
else DEFAULT_RATE, and `SequenceInfo.rate_source` says which.

Decoding is PyAV's (FFmpeg's exr/dpx/tiff/png decoders), one file per frame. Half-float EXR
decodes as gbrpf16le, which swscale cannot write back into: frames are handed on as
gbr(a)pf32le (exact: every half is a float). Writing: DPX, TIFF and PNG through PyAV's encoders
in the source's pixel format; EXR through the `openexr` package, which writes half or float,
RGB or RGBA, any compression and header attributes (FFmpeg's exr encoder has no PIZ/DWA and
no attributes).

A sequence is written as its own folder, atomically (`sequence_write.SequenceWriter`): the
frames go into a hidden temporary folder beside it (`atomic.temp_dir_for`), renamed to the final
name when the last frame is written. A kill leaves no half sequence under the final name;
`atomic.remove_stale_partials` clears the leftover folder on the next run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from renderer.errors import InputError

# suffix -> FFmpeg codec name (decoder and encoder)
SEQUENCE_KINDS: dict[str, str] = {".exr": "exr", ".dpx": "dpx", ".tif": "tiff", ".tiff": "tiff", ".png": "png"}
DEFAULT_RATE = Fraction(24)
_PRINTF = re.compile(r"%(0?(\d+))?d")
_HASHES = re.compile(r"#+")
_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<digits>\d+)(?P<suffix>\.[A-Za-z]+)$")


# --------------------------------------------------------------------------------------------
# Naming


@dataclass(frozen=True)
class SequencePattern:
    """Where a sequence's frames are: folder / prefix + number (zero-padded to `padding`) + suffix."""

    folder: Path
    prefix: str
    suffix: str
    padding: int  # 0: not padded (%d)

    @property
    def kind(self) -> str:
        """FFmpeg's codec name for the frames: exr, dpx, tiff or png."""
        return SEQUENCE_KINDS[self.suffix.lower()]

    def name(self, number: int) -> str:
        return f"{self.prefix}{number:0{self.padding}d}{self.suffix}"

    def file(self, number: int) -> Path:
        return self.folder / self.name(number)

    @property
    def printf(self) -> Path:
        """The pattern as FFmpeg's image2 takes it: folder/shot.%04d.exr."""
        return self.folder / f"{self.prefix}%{f'0{self.padding}' if self.padding else ''}d{self.suffix}"

    @property
    def hashes(self) -> str:
        """The file name with the number as #### (what compositors show)."""
        return f"{self.prefix}{'#' * max(self.padding, 1)}{self.suffix}"

    @property
    def sidecar(self) -> Path:
        """The C2PA sidecar of the sequence, inside its folder: shot.c2pa for shot.####.exr."""
        return self.folder / f"{self.prefix.rstrip('._-') or 'sequence'}.c2pa"

    def with_folder(self, folder: Path) -> SequencePattern:
        return SequencePattern(Path(folder), self.prefix, self.suffix, self.padding)

    def scan(self) -> dict[int, Path]:
        """{frame number: file} of the files in the folder that this pattern names (other files ignored)."""
        found: dict[int, Path] = {}
        if not self.folder.is_dir():
            return found
        rx = re.compile(re.escape(self.prefix) + r"(\d+)" + re.escape(self.suffix) + "$")
        for entry in os.scandir(self.folder):
            m = rx.match(entry.name)
            if m and not entry.name.startswith(".") and self.name(int(m.group(1))) == entry.name:
                found[int(m.group(1))] = Path(entry.path)
        return dict(sorted(found.items()))


def is_sequence_path(path: Path | str) -> bool:
    """True for a sequence pattern (`%04d`, `####` before an image suffix) or a folder of numbered images."""
    path = Path(path)
    if path.suffix.lower() in SEQUENCE_KINDS and (_PRINTF.search(path.name) or "#" in path.name):
        return True
    return path.is_dir() and folder_sequences(path) != []


def folder_sequences(folder: Path) -> list[SequencePattern]:
    groups: dict[tuple[str, str], list[str]] = {}
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            m = _NUMBERED.match(entry.name)
            if m and not entry.name.startswith(".") and m.group("suffix").lower() in SEQUENCE_KINDS:
                groups.setdefault((m.group("prefix"), m.group("suffix")), []).append(m.group("digits"))
    out = []
    for (prefix, suffix), digits in sorted(groups.items()):
        lengths = {len(d) for d in digits}
        # padded when every number has the same width, or the narrow ones start with a zero
        pad = min(lengths) if (len(lengths) == 1 or any(d.startswith("0") for d in digits)) else 0
        out.append(SequencePattern(folder, prefix, suffix, pad))
    return out


def parse_sequence(path: Path | str) -> SequencePattern:
    """The pattern a path names: `shot.%04d.exr`, `shot.%d.exr`, `shot.####.exr`, or a folder holding one
    sequence. InputError for anything else, saying what is accepted."""
    path = Path(path)
    suffix = path.suffix
    if path.is_dir() and not (_PRINTF.search(path.name) or "#" in path.name):
        found = folder_sequences(path)
        if not found:
            raise InputError(f"no image sequence in the folder {path} (expected numbered frames such as "
                             f"shot.1001.exr; kinds: {', '.join(SEQUENCE_KINDS)})")
        if len(found) > 1:
            raise InputError(f"the folder {path} holds {len(found)} image sequences ("
                             f"{', '.join(p.hashes for p in found)}); name one as a pattern, e.g. "
                             f"{found[0].printf}")
        return found[0]
    if suffix.lower() not in SEQUENCE_KINDS:
        raise InputError(f"{path} is not an image sequence pattern (expected e.g. shot.%04d.exr or shot.####.exr; "
                         f"suffixes: {', '.join(SEQUENCE_KINDS)})")
    stem = path.name[: -len(suffix)]
    m = _PRINTF.search(stem)
    if m:
        prefix, rest, padding = stem[: m.start()], stem[m.end():], int(m.group(2) or 0)
    else:
        h = _HASHES.search(stem)
        if not h:
            raise InputError(f"{path} names no frame number (expected %04d or #### in the file name, "
                             f"e.g. shot.%04d.exr)")
        prefix, rest, padding = stem[: h.start()], stem[h.end():], len(h.group(0))
        padding = 0 if padding == 1 else padding
    if rest or "%" in prefix or "#" in prefix:
        raise InputError(f"{path}: the frame number must come right before the suffix {suffix} "
                         f"and only once (e.g. shot.%04d{suffix})")
    return SequencePattern(path.parent, prefix, suffix, padding)


# --------------------------------------------------------------------------------------------
# Facts


@dataclass(frozen=True)
class ExrLayout:
    """What an EXR sequence's first frame holds, so that it is written back alike."""

    pixel_type: str  # "half" | "float" | "uint"
    compression: str  # OpenEXR's name, e.g. ZIP_COMPRESSION
    channels: tuple[str, ...]
    attributes: Mapping[str, Any] = field(default_factory=dict)  # carried header attributes


@dataclass(frozen=True)
class SequenceInfo:
    """An image sequence on disk: its pattern, the frame number of each frame index, its step."""

    pattern: SequencePattern
    numbers: tuple[int, ...]
    step: int
    rate_source: str  # "given", "exr framesPerSecond" or "default"
    source_pix_fmt: str  # as the decoder gives it (gbrpf16le for half EXR)
    exr: ExrLayout | None = None

    @property
    def first_number(self) -> int:
        return self.numbers[0]

    def number(self, index: int) -> int:
        return self.numbers[index]

    def to_json(self) -> dict[str, Any]:
        return {"pattern": str(self.pattern.printf), "folder": str(self.pattern.folder),
                "name": self.pattern.hashes, "kind": self.pattern.kind, "start_frame": self.first_number,
                "end_frame": self.numbers[-1], "frame_step": self.step, "padding": self.pattern.padding,
                "rate_source": self.rate_source, "source_pix_fmt": self.source_pix_fmt,
                "exr": None if self.exr is None else {
                    "pixel_type": self.exr.pixel_type, "compression": self.exr.compression,
                    "channels": list(self.exr.channels), "timecode": self.timecode,
                    "attributes": {k: str(v) for k, v in self.exr.attributes.items() if k != "timeCode"}}}

    @property
    def timecode(self) -> str | None:
        """The first frame's EXR timeCode attribute as HH:MM:SS:FF, None without one."""
        value = self.exr.attributes.get("timeCode") if self.exr is not None else None
        return _timecode_text(value) if value is not None else None


def _exr_layout(path: Path) -> ExrLayout | None:
    try:
        import OpenEXR
    except ImportError:  # pragma: no cover - a dependency; without it EXR is read, written as float
        return None
    try:
        header = OpenEXR.File(str(path), header_only=True).header()
    except Exception as err:  # noqa: BLE001 - the library raises plain RuntimeError for damaged files
        raise InputError(f"{path} is not a readable EXR file: {err}") from err
    kinds = _exr_channel_types(path)  # the binding gives channel types only with the pixels read
    names = tuple(kinds)
    pixel_type = kinds.get("R") or next(iter(kinds.values()), "half")
    compression = str(header.get("compression", "ZIP_COMPRESSION")).rsplit(".", 1)[-1]
    return ExrLayout(pixel_type, compression, names, exr_attributes(header))


# Header attributes that describe the file's layout (written anew), not the picture (carried).
_EXR_STRUCTURAL = frozenset({"channels", "compression", "dataWindow", "displayWindow", "lineOrder", "type",
                             "chunkCount", "tiles", "writer"})


def exr_attributes(header: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of an EXR header that a copy of the picture carries (timeCode, framesPerSecond,
    chromaticities, owner, the writer's own: everything but the layout)."""
    return {k: v for k, v in header.items() if k not in _EXR_STRUCTURAL}


def exr_frame_attributes(path: Path) -> dict[str, Any]:
    """`exr_attributes` of one EXR file's header ({} when it cannot be read)."""
    import OpenEXR

    try:
        return exr_attributes(OpenEXR.File(str(path), header_only=True).header())
    except Exception:  # noqa: BLE001 - a damaged frame was refused when it was decoded
        return {}


def _timecode_text(value: Any) -> str | None:
    """An EXR timeCode attribute as HH:MM:SS:FF (';' before the frames when drop-frame)."""
    try:
        sep = ";" if getattr(value, "dropFrame", False) else ":"
        return f"{int(value.hours):02d}:{int(value.minutes):02d}:{int(value.seconds):02d}{sep}{int(value.frame):02d}"
    except (AttributeError, TypeError, ValueError):
        return None


def _exr_channel_types(path: Path) -> dict[str, str]:
    """{channel name: "uint" | "half" | "float"} from an EXR file's `channels` header attribute
    (OpenEXR file layout: magic, version, then name\\0 type\\0 int32 size value ... \\0)."""
    import struct

    with open(path, "rb") as fh:
        data = fh.read(1 << 16)
    if data[:4] != b"\x76\x2f\x31\x01":
        raise InputError(f"{path} is not an EXR file (no OpenEXR magic number)")
    pos = 8
    while pos < len(data) and data[pos] != 0:
        name_end = data.index(b"\0", pos)
        type_end = data.index(b"\0", name_end + 1)
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        value = data[type_end + 5: type_end + 5 + size]
        if data[pos:name_end] == b"channels":
            out: dict[str, str] = {}
            at = 0
            while at < len(value) and value[at] != 0:
                end = value.index(b"\0", at)
                (kind,) = struct.unpack_from("<i", value, end + 1)
                out[value[at:end].decode("latin-1")] = {0: "uint", 1: "half", 2: "float"}.get(kind, "half")
                at = end + 1 + 16
            return out
        pos = type_end + 5 + size
    return {}


def _exr_rate(layout: ExrLayout | None) -> Fraction | None:
    fps = layout.attributes.get("framesPerSecond") if layout else None
    if isinstance(fps, Fraction):
        return fps if fps > 0 else None
    try:
        num, den = (int(x) for x in np.asarray(fps).ravel()[:2])
        return Fraction(num, den) if num > 0 and den > 0 else None
    except (TypeError, ValueError):
        return None


def _decode_file(path: Path) -> av.VideoFrame:
    """The one picture of an image file, half floats widened to float32 (exact)."""
    try:
        with av.open(str(path), "r") as container:
            frame = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration, ValueError, IndexError) as err:
        raise _corrupt(f"{path} does not decode as an image ({err})") from err
    if frame.format.name in ("gbrpf16le", "gbrapf16le"):
        frame = _widen_half(frame)
    return frame


def _widen_half(frame: av.VideoFrame) -> av.VideoFrame:
    """gbr(a)pf16le -> gbr(a)pf32le, exactly: numpy widens each half (swscale's conversion rounds)."""
    g, b, r, *a = [np.frombuffer(p, np.float16).reshape(p.height, p.line_size // 2)[:, : p.width] for p in frame.planes]
    rgb = np.stack([r, g, b, *a], axis=-1).astype(np.float32)  # (H, W, 3|4) in RGB(A) order
    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="gbrapf32le" if a else "gbrpf32le")
    out.color_trc, out.color_primaries = frame.color_trc, frame.color_primaries
    return out


def _corrupt(message: str) -> Exception:
    from renderer.media.info import CorruptMediaError

    return CorruptMediaError(message)


def probe_sequence(path: Path | str, rate: Fraction | float | None = None) -> Any:
    """`MediaInfo` of an image sequence (pattern or folder): frame count, size and pixel format
    (of its first frame), rate (`rate`, else EXR framesPerSecond, else DEFAULT_RATE), and
    `sequence` (frame numbers, step, pattern, EXR layout). Frames are intra: every one a keyframe,
    pts = frame index in 1/rate.

    InputError for no frames; CorruptMediaError for frames missing inside the run of numbers
    (named), or a first frame that does not decode.
    """
    from renderer.media.info import ColorTags, CorruptMediaError, MediaInfo

    pattern = parse_sequence(path)
    files = pattern.scan()
    if not files:
        raise InputError(f"no frames of {pattern.printf} found in {pattern.folder}"
                         + ("" if pattern.folder.is_dir() else " (the folder does not exist)"))
    numbers = tuple(files)
    diffs = [b - a for a, b in zip(numbers, numbers[1:])]
    step = int(np.gcd.reduce(diffs)) if diffs else 1
    missing = [n for n in range(numbers[0], numbers[-1] + 1, step) if n not in files]
    if missing:
        shown = ", ".join(str(n) for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
        raise CorruptMediaError(
            f"image sequence {pattern.printf} is missing {len(missing)} frame(s) between {numbers[0]} and "
            f"{numbers[-1]} (step {step}): {shown}; a sequence must be complete to be read frame-exact")
    first = _decode_file(files[numbers[0]])
    exr = _exr_layout(files[numbers[0]]) if pattern.kind == "exr" else None
    if rate is not None:
        fps, source = Fraction(rate).limit_denominator(1001), "given"
    elif (from_exr := _exr_rate(exr)) is not None:
        fps, source = from_exr, "exr framesPerSecond"
    else:
        fps, source = DEFAULT_RATE, "default"
    if fps <= 0:
        raise InputError(f"frame rate {rate} for {pattern.printf} is not positive")
    with av.open(str(files[numbers[0]]), "r") as container:
        source_pix_fmt = container.streams.video[0].codec_context.format.name
    n = len(numbers)
    return MediaInfo(
        path=pattern.printf, container="image2", codec=pattern.kind, width=first.width, height=first.height,
        pix_fmt=first.format.name, fps=fps, time_base=1 / fps, frames=n, pts=tuple(range(n)), vfr=False,
        timecode=None, drop_frame=False, color=ColorTags(None, None, None, "pc"), rotation=0, audio=(),
        start_pts=0, keyframes=tuple(range(n)), sequence=SequenceInfo(pattern, numbers, step, source,
                                                                      source_pix_fmt, exr),
    )


def read_sequence_frames(info: Any, start: int, end: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """Yield (index, frame) for frames start..end of a probed sequence, each decoded from its file.

    CorruptMediaError names the frame (index and number) of a file that is gone, does not decode
    or has another size than the first."""
    seq: SequenceInfo = info.sequence
    for i in range(start, end + 1):
        number = seq.numbers[i]
        path = seq.pattern.file(number)
        if not path.is_file():
            raise _corrupt(f"frame {number} of {seq.pattern.printf} (index {i}) is gone: {path} "
                           f"(last good frame {seq.numbers[i - 1] if i > start else 'none'})")
        frame = _decode_file(path)
        if (frame.width, frame.height) != (info.width, info.height):
            raise _corrupt(f"frame {number} of {seq.pattern.printf} is {frame.width}x{frame.height}; the sequence "
                           f"is {info.width}x{info.height} (its first frame)")
        frame.pts = i
        yield i, frame


# --------------------------------------------------------------------------------------------
# Hashing (provenance, resume)


def frame_list(pattern: SequencePattern) -> bytes:
    """The sequence as one byte string: `<number> <file name> <sha256>` per frame, in number order.

    What a sequence's C2PA sidecar is bound to (a data hash over these bytes): a changed frame
    changes its line, a missing or extra frame removes or adds one."""
    lines = []
    for number, path in pattern.scan().items():
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            while block := fh.read(1 << 20):
                digest.update(block)
        lines.append(f"{number} {path.name} {digest.hexdigest()}\n")
    return "".join(lines).encode("utf-8")


def sequence_sha256(pattern: SequencePattern) -> str:
    """SHA-256 of `frame_list`: one hash over every frame's bytes, in order."""
    return hashlib.sha256(frame_list(pattern)).hexdigest()


def sequence_fingerprint(pattern: SequencePattern) -> dict[str, Any]:
    """Cheap identity of a sequence for resume checks: frames, total size, newest mtime."""
    stats = [p.stat() for p in pattern.scan().values()]
    return {"path": str(pattern.printf.resolve()), "frames": len(stats), "size": sum(s.st_size for s in stats),
            "mtime_ns": max((s.st_mtime_ns for s in stats), default=0)}
