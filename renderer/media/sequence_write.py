"""Writing image sequences: `SequenceWriter` (atomic, one folder per sequence) and replacing an old one.

See `renderer.media.sequence` for what a sequence is. DPX, TIFF and PNG frames are encoded by
PyAV in the source's pixel format; EXR frames are written by the `openexr` package (half or
float, RGB or RGBA, the source's compression and header attributes, `framesPerSecond`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from renderer.atomic import temp_dir_for
from renderer.errors import InputError, MediaError
from renderer.media.sequence import SequenceInfo, exr_frame_attributes, folder_sequences, parse_sequence

# Pixel formats each encoder writes (first: the fallback when a frame's own format is not among them).
# The grey formats are the matte pass's (`matte_sequence`): asked for by `pix_fmt`, never a fallback.
_WRITE_FORMATS: dict[str, tuple[str, ...]] = {
    "dpx": ("gbrp10le", "rgb24", "rgba", "rgb48le", "rgba64le", "gbrp12le", "gray16le"),
    "tiff": ("rgb24", "rgb48le", "rgba", "rgba64le", "gray16le"),
    "png": ("rgb24", "rgba", "rgb48be", "rgba64be", "gray16be"),
}
# EXR compressions that give back exactly what was written (the others round: DWA, B44, PXR24).
LOSSLESS_EXR = frozenset({"NO_COMPRESSION", "RLE_COMPRESSION", "ZIPS_COMPRESSION", "ZIP_COMPRESSION",
                          "PIZ_COMPRESSION"})



class SequenceWriter:
    """Write frames as an image sequence into its own folder, atomically; a context manager with
    `VideoWriter`'s frame interface (`write(rgb)`, `write_av(frame)`, `frames_written`).

    path: the output pattern (`out/shot/shot.%04d.exr`); its suffix picks the kind. Frame k gets
    number `first_number + k * step`. `like` (a source's SequenceInfo) keeps the source's EXR pixel
    type, compression and attributes; `pix_fmt` the pixel format for DPX/TIFF/PNG (default: each
    frame's own when the encoder takes it). EXR frames are labelled with `metadata` (header
    attributes) and `framesPerSecond`.

    The folder must not exist or be empty (the caller replaces an old one: `replace_sequence_folder`);
    frames go into a hidden folder beside it, renamed to it on a clean close; on an exception the
    hidden folder is deleted.
    """

    def __init__(self, path: Path | str, *, width: int, height: int, fps: Fraction, first_number: int = 0,
                 step: int = 1, like: SequenceInfo | None = None, pix_fmt: str | None = None,
                 metadata: Mapping[str, str] | None = None, lossless: bool = False) -> None:
        self.pattern = parse_sequence(path)
        self.lossless = lossless  # EXR: never a lossy compression (a matte must come back as written)
        self.path = self.pattern.printf
        if width <= 0 or height <= 0:
            raise InputError(f"frame size {width}x{height} is not positive")
        if first_number < 0 or step < 1:
            raise InputError(f"sequence numbering from {first_number} step {step}: numbers must be >= 0, step >= 1")
        self.width, self.height, self.fps = int(width), int(height), Fraction(fps)
        self.first_number, self.step = int(first_number), int(step)
        self.exr = like.exr if like is not None and self.pattern.kind == "exr" else None
        self.like = like if self.exr is not None and like.pattern.kind == "exr" else None
        self.pix_fmt = pix_fmt
        self.metadata = dict(metadata or {})
        self.frames_written = 0
        self._work: Path | None = None

    def __enter__(self) -> SequenceWriter:
        folder = self.pattern.folder
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise InputError(f"output folder {folder} already exists and is not empty; a sequence is written "
                             f"as its own new folder (pass --force to replace an old sequence)")
        folder.parent.mkdir(parents=True, exist_ok=True)
        self._work = temp_dir_for(folder)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        work, self._work = self._work, None
        if work is None:
            return
        if exc_type is None and self.frames_written == 0:
            shutil.rmtree(work, ignore_errors=True)
            raise MediaError(f"no frames were written to {self.path}")
        if exc_type is not None:
            shutil.rmtree(work, ignore_errors=True)
            return
        try:
            _fsync_dir(work)
            os.chmod(work, 0o777 & ~_umask())  # mkdtemp made it private; the sequence is not
            folder = self.pattern.folder
            if folder.is_dir():
                folder.rmdir()  # empty (checked on entry): a rename cannot replace a folder
            os.replace(work, folder)
            _fsync_dir(folder.parent)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Write one RGB uint8 (H, W, 3) frame (converted to the output's pixel format)."""
        if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.shape != (self.height, self.width, 3):
            got = f"{getattr(rgb, 'dtype', type(rgb).__name__)} {getattr(rgb, 'shape', '')}"
            raise InputError(f"frame for {self.path.name} must be uint8 ({self.height}, {self.width}, 3); got {got}")
        self.write_av(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24"))

    def write_av(self, frame: av.VideoFrame, pts: int | None = None, source_color: Any = None) -> None:
        """Write a decoded frame as the next file of the sequence (`pts` is accepted for
        `VideoWriter`'s interface: numbering follows the frame count). A YUV frame (from a movie)
        is converted to RGB with `source_color`'s matrix and range."""
        if self._work is None:
            raise MediaError(f"{self.path}: write outside the writer's `with` block")
        if frame.width != self.width or frame.height != self.height:
            raise InputError(f"frame is {frame.width}x{frame.height}; {self.path.name} is {self.width}x{self.height}")
        if frame.format.name.startswith(("yuv", "nv")):  # a movie's frame: to RGB with its own matrix
            from renderer.media.info import ColorTags, effective_color

            tags = source_color or ColorTags(None, None, None, None)
            matrix, rng = effective_color(tags, frame.width, frame.height, frame.format.name)
            deep = any(d in frame.format.name for d in ("10", "12", "16"))
            frame = frame.reformat(format="rgb48le" if deep else "rgb24", src_colorspace=matrix,
                                   dst_colorspace=matrix, src_color_range=rng, dst_color_range="JPEG")
        if self.pattern.kind == "exr":
            self._write_file(lambda target, number: self._write_exr(frame, target, number))
        else:
            self._write_file(lambda target, number: target.write_bytes(self._encode(frame)))

    def _encode(self, frame: av.VideoFrame) -> bytes:
        kind = self.pattern.kind
        formats = _WRITE_FORMATS[kind]
        fmt = self.pix_fmt if self.pix_fmt in formats else frame.format.name if frame.format.name in formats else None
        if fmt is None:  # e.g. float into DPX: keep as much depth as the encoder takes
            deep = any(d in frame.format.name for d in ("10", "12", "16", "f32", "48", "64"))
            alpha = "a" in frame.format.name.replace("gbr", "")[:2] or frame.format.name.startswith("rgba")
            wants = [f for f in formats if (("48" in f or "64" in f or "10" in f) == deep) and (("a" in f) == alpha)]
            fmt = wants[0] if wants else formats[0]
        if frame.format.name != fmt:
            frame = frame.reformat(format=fmt)
        cc = av.CodecContext.create(kind, "w")
        cc.width, cc.height, cc.pix_fmt = self.width, self.height, fmt
        cc.time_base = 1 / self.fps
        frame.pts = None
        packets = list(cc.encode(frame)) + list(cc.encode(None))
        return b"".join(bytes(p) for p in packets)

    def write_exr_channels(self, channels: Mapping[str, np.ndarray]) -> None:
        """Write the next frame of an EXR sequence from named (H, W) channels as given (their dtype,
        float16 or float32, is the pixel type of each), with the header `_write_exr` gives a frame."""
        if self._work is None:
            raise MediaError(f"{self.path}: write outside the writer's `with` block")
        if self.pattern.kind != "exr":
            raise InputError(f"{self.path.name} is not an EXR sequence; named channels are written only into EXR")
        for name, plane in channels.items():
            if plane.shape != (self.height, self.width) or plane.dtype not in (np.float16, np.float32):
                raise InputError(f"EXR channel {name} for {self.path.name} must be float16/float32 "
                                 f"({self.height}, {self.width}); got {plane.dtype} {plane.shape}")
        self._write_file(lambda target, number: self._exr_file(
            {k: np.ascontiguousarray(v) for k, v in channels.items()}, target, number))

    def _write_file(self, write: Any) -> None:
        number = self.first_number + self.frames_written * self.step
        try:
            write(self._work / self.pattern.name(number), number)
        except (av.error.FFmpegError, OSError, RuntimeError, ValueError) as err:
            raise MediaError(f"writing frame {number} of {self.path} failed: {err}") from err
        self.frames_written += 1

    def _write_exr(self, frame: av.VideoFrame, target: Path, number: int) -> None:
        alpha = frame.format.name.startswith(("gbrap", "rgba", "ya"))
        fmt = "gbrapf32le" if alpha else "gbrpf32le"
        pixels = (frame if frame.format.name == fmt else frame.reformat(format=fmt)).to_ndarray()  # (H, W, 3|4) RGB(A)
        layout = self.exr
        pixels = pixels.astype(np.float16 if layout is None or layout.pixel_type == "half" else np.float32)
        self._exr_file({"RGBA" if alpha else "RGB": np.ascontiguousarray(pixels)}, target, number)

    def _exr_file(self, channels: dict[str, np.ndarray], target: Path, number: int) -> None:
        import OpenEXR

        layout = self.exr
        name = layout.compression if layout and (not self.lossless or layout.compression in LOSSLESS_EXR) else None
        compression = getattr(OpenEXR, name, OpenEXR.ZIP_COMPRESSION) if name else OpenEXR.ZIP_COMPRESSION
        # Each frame carries its own source frame's attributes (same number: its timeCode, a renderer's
        # per-frame notes), the first frame's where the source has no such number.
        source = self.like.pattern.file(number) if self.like is not None else None
        header: dict[str, Any] = (exr_frame_attributes(source) if source is not None and source.is_file()
                                  else dict(layout.attributes) if layout else {})
        header.update({"compression": compression, "type": OpenEXR.scanlineimage,
                       "framesPerSecond": (self.fps.numerator, self.fps.denominator)})
        for key, value in self.metadata.items():
            header.update(_short_attributes(key, str(value)))
        OpenEXR.File(header, channels).write(str(target))


EXR_STRING_LIMIT = 255  # bytes: FFmpeg 5.1's EXR reader fails on a longer string attribute (measured)


def _short_attributes(key: str, text: str) -> dict[str, str]:
    """{key: text} split into `key`, `key.2`, ... of at most EXR_STRING_LIMIT bytes each, so that
    every EXR reader here (Debian's FFmpeg 5.1 among them) still opens the frame."""
    data, out, n = text.encode("utf-8"), {}, 1
    while data or n == 1:
        cut = min(len(data), EXR_STRING_LIMIT)
        while cut < len(data) and (data[cut] & 0xC0) == 0x80:  # never split a UTF-8 character
            cut -= 1
        out[key if n == 1 else f"{key}.{n}"] = data[:cut].decode("utf-8")
        data, n = data[cut:], n + 1
    return out


def _umask() -> int:
    """The process umask, read without setting it (os.umask would change it for every thread)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    return 0o022


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def sequence_folder_only(folder: Path) -> bool:
    """True when `folder` holds nothing but one image sequence (and its .c2pa sidecar): safe to replace."""
    if not folder.is_dir():
        return False
    found = folder_sequences(folder)
    if len(found) != 1:
        return False
    frames = {p.name for p in found[0].scan().values()} | {found[0].sidecar.name}
    return all(e.name in frames for e in folder.iterdir())


def replace_sequence_folder(folder: Path) -> None:
    """Remove an old output sequence folder before it is written again (`--force`); InputError when
    the folder holds anything else, which is never deleted."""
    folder = Path(folder)
    if not folder.exists():
        return
    if not sequence_folder_only(folder):
        raise InputError(f"{folder} holds other files than one image sequence; it is not replaced (give a new "
                         f"folder for the output sequence)")
    shutil.rmtree(folder)


def join_sequences(parts: list[Path], out: Path, numbers: tuple[int, ...] | list[int],
                   metadata: Mapping[str, str] | None = None) -> int:
    """Assemble the frames of the sequences `parts` (patterns, disjoint frame numbers, e.g. farm
    chunks) as the sequence `out` (a pattern whose folder is created here: the caller publishes it
    atomically, `provenance.signed_output`). The frames must be exactly `numbers`, in order; no frame
    is decoded: DPX, TIFF and PNG files are hard-linked (copied across file systems), EXR frames
    copied with their label attributes set to `metadata` (`exr_header.relabel_exr`, chunks byte for
    byte). Returns the number of frames; MediaError naming missing, doubled or extra frames."""
    from renderer.media.exr_header import relabel_exr

    target = parse_sequence(out)
    found: dict[int, Path] = {}
    doubled = []
    for part in parts:
        for number, path in parse_sequence(part).scan().items():
            if number in found:
                doubled.append(number)
            found[number] = path
    want = list(numbers)
    missing = [n for n in want if n not in found]
    extra = sorted(set(found) - set(want))
    if missing or extra or doubled:
        def show(ns: list[int]) -> str:
            return ", ".join(str(n) for n in ns[:10]) + (" ..." if len(ns) > 10 else "")
        raise MediaError(f"joining {len(parts)} part(s) into {target.hashes}: "
                         + "; ".join(f"{what} frame(s) {show(ns)}" for what, ns in
                                     (("missing", missing), ("extra", extra), ("doubled", sorted(doubled))) if ns))
    target.folder.mkdir(parents=True, exist_ok=False)
    for number in want:
        src, dst = found[number], target.file(number)
        if target.kind == "exr" and metadata:
            relabel_exr(src, dst, metadata)
            continue
        try:
            os.link(src, dst)
        except OSError:  # another file system, or links not allowed: a plain copy
            shutil.copyfile(src, dst)
    _fsync_dir(target.folder)
    return len(want)
