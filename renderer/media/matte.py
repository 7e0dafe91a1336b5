"""The matte pass: the blend mask a render used (and the unblended face plate) as ProRes 4444 clips.

Why ProRes 4444 with alpha in .mov (not FFV1 grey in .mkv): it is the matte format Nuke, DaVinci
Resolve / Fusion, After Effects and Premiere all read natively, with the alpha channel picked up
as such; its alpha is coded losslessly (here 10 bits: FFmpeg's ProRes encoders take yuva444p10le, its
decoder hands it back as 12 bits by bit replication, so `code >> 2` is exactly what was written;
encoded with `prores_aw`, FFmpeg's faster ProRes encoder: see MATTE_CODEC);
a .mov carries a `tmcd` timecode track the way the rendered media does; and C2PA embeds into MOV,
so the matte is signed like the output. FFV1 is lossless too, but Nuke does not open .mkv.

Both clips have the rendered output's frame count, frame timing (VFR pts included), start timecode
and display rotation, and no audio:

    matte  alpha = round(mask * 1023), the mask `paste_face` blended with (faces over each other
           combined as `over` does: 1 - (1 - a1)(1 - a2)); luma = the same mask, white on black
           (limited range), for tools that key on luma; chroma neutral. Zero on frames where
           nothing was swapped (stream-copied GOPs included).
    plate  RGB = the swapped face as blended (warped, colour-matched), straight (not premultiplied)
           alpha = the matte's alpha; black and transparent elsewhere. Colour tags: the output's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import av
import numpy as np

from renderer.errors import InputError, MediaError
from renderer.media.encode import CodecProfile, VideoWriter
from renderer.media.info import ColorTags, MediaInfo, effective_color, shift_timecode

MATTE_PIX_FMT = "yuva444p10le"
# FFmpeg's other ProRes encoder (prores_aw): the same ProRes 4444 bitstream (ap4h) with lossless
# alpha, at a fraction of prores_ks's CPU time on these mostly-flat pictures (bench/results/matte.md).
MATTE_CODEC = CodecProfile("prores_4444_matte", "prores_aw", (MATTE_PIX_FMT,), (".mov",),
                           {"profile": "4", "vendor": "apl0"}, "ProRes 4444 with alpha (prores_aw), mov")
MATTE_SUFFIX = ".matte.mov"
PLATE_SUFFIX = ".plate.mov"
ALPHA_MAX = 1023  # 10-bit alpha
_MATTE_COLOR = ColorTags("bt709", "bt709", "bt709", "tv")

# One swapped face on one frame: the box's top-left corner (x0, y0), its alpha (h, w) float32 in
# [0, 1] and the unblended face (h, w, 3) float32 RGB in 0..255 (None when no plate is written).
Region = tuple[int, int, np.ndarray, np.ndarray | None]


def matte_paths(output: Path) -> tuple[Path, Path]:
    """(matte, plate) beside `output`: `shot.doppel.mov` -> `shot.doppel.matte.mov`, `shot.doppel.plate.mov`.
    An image sequence's are sequences in folders of their own beside its folder, same kind and
    padding: `out/A001/A001.%04d.exr` -> `out/A001.matte/A001.matte.%04d.exr`, `out/A001.plate/...`."""
    from renderer.media.sequence import is_sequence_path

    output = Path(output)
    if is_sequence_path(output) and not output.is_dir():
        from renderer.media.matte_sequence import sequence_pass_path

        return sequence_pass_path(output, "matte"), sequence_pass_path(output, "plate")
    return output.with_name(output.stem + MATTE_SUFFIX), output.with_name(output.stem + PLATE_SUFFIX)


def open_matte_writer(info: MediaInfo, first: int, last: int, *, matte: Path | None, plate: Path | None = None,
                      **kwargs: Any) -> Any:
    """The matte pass writer for these paths: a `SequenceMatteWriter` when they are image sequence
    patterns (the output is a sequence), else a `MatteWriter` (ProRes 4444 clips)."""
    from renderer.media.sequence import is_sequence_path

    if any(p is not None and is_sequence_path(p) for p in (matte, plate)):
        from renderer.media.matte_sequence import SequenceMatteWriter

        return SequenceMatteWriter(info, first, last, matte=matte, plate=plate, **kwargs)
    return MatteWriter(info, first, last, matte=matte, plate=plate, **kwargs)


def combine_regions(index: int, regions: Sequence[Region], plate: bool
                    ) -> tuple[np.ndarray | None, np.ndarray | None, tuple[int, int, int, int] | None]:
    """One frame's faces combined over the union of their boxes, in paste order: (alpha (h, w) float32
    in [0, 1], faces `over` each other as 1 - (1 - a1)(1 - a2); premultiplied colour (h, w, 3) float32
    0..255 when `plate`, else None; the union box (x0, y0, x1, y1)). All None without regions."""
    if not regions:
        return None, None, None
    union = (min(r[0] for r in regions), min(r[1] for r in regions),
             max(r[0] + r[2].shape[1] for r in regions), max(r[1] + r[2].shape[0] for r in regions))
    ux0, uy0, ux1, uy1 = union
    alpha = np.zeros((uy1 - uy0, ux1 - ux0), np.float32)
    colour = np.zeros((*alpha.shape, 3), np.float32) if plate else None
    for x0, y0, a, face in regions:
        box = (slice(y0 - uy0, y0 - uy0 + a.shape[0]), slice(x0 - ux0, x0 - ux0 + a.shape[1]))
        if colour is not None:
            if face is None:
                raise InputError(f"matte frame {index}: a plate needs each region's face, got None")
            # Premultiplied `over`, in paste order: the later face covers the earlier one.
            colour[box] = face * a[..., None] + colour[box] * (1.0 - a[..., None])
        alpha[box] = a + alpha[box] * (1.0 - a)
    return alpha, colour, union


def decode_matte(path: Path, first: int = 0, last: int | None = None) -> list[np.ndarray]:
    """The matte's alpha as written, frames first..last (inclusive): a list of (H, W) uint16 in 0..1023."""
    out: list[np.ndarray] = []
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n < first:
                continue
            if last is not None and n > last:
                break
            if not frame.format.name.startswith("yuva444p"):
                raise MediaError(f"{path} frame {n} is {frame.format.name}, not a matte with alpha (yuva444p*)")
            depth = int(frame.format.name[len("yuva444p"):].removesuffix("le") or 8)
            if depth != 10:  # FFmpeg's ProRes decoder gives 12 bits (10 replicated): rescale to 10
                frame = frame.reformat(format="yuva444p16le")
            plane = frame.planes[3]
            alpha = np.frombuffer(plane, np.uint16).reshape(plane.height, plane.line_size // 2)[:, :plane.width]
            out.append((alpha >> 6 if depth != 10 else alpha).astype(np.uint16))
    return out


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """Writable (H, W) uint16 views of a yuva444p10le frame's Y, U, V, A planes."""
    return [np.frombuffer(p, np.uint16).reshape(p.height, p.line_size // 2)[:, :p.width] for p in frame.planes]


class _PassWriter:
    """What the movie and the sequence matte writers share: the source range first..last, the
    in-order frame cursor (`write`, `fill_to`, `frames_written`), and the context manager that
    opens the matte / plate writers and discards both unless every frame first..last was written.
    A subclass sets `_matte` / `_plate` (context managers, or None) and writes one frame in
    `_write_frame`."""

    _matte: Any = None
    _plate: Any = None

    def __init__(self, info: MediaInfo, first: int, last: int) -> None:
        if not 0 <= first <= last < info.frames:
            raise InputError(f"matte range {first}-{last} is outside the source (allowed: 0-{info.frames - 1})")
        self.info, self.first, self.last = info, first, last
        self.next = first
        self.width, self.height = info.width, info.height
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Self:
        with contextlib.ExitStack() as stack:
            for w in (self._matte, self._plate):
                if w is not None:
                    stack.enter_context(w)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None and self.next != self.last + 1:
            err = MediaError(f"matte stopped at source frame {self.next} of {self.first}-{self.last}; discarded")
            self._stack.__exit__(MediaError, err, None)
            raise err
        self._stack.__exit__(exc_type, exc, tb)

    @property
    def writes_plate(self) -> bool:
        """True when a plate is written: the swap stage must then keep each face's unblended pixels."""
        return self._plate is not None

    @property
    def frames_written(self) -> int:
        return self.next - self.first

    def fill_to(self, end: int) -> None:
        """Write empty (black, transparent) frames for source frames self.next..end-1."""
        while self.next < end:
            self.write(self.next, ())

    def write(self, index: int, regions: Sequence[Region]) -> None:
        """Source frame `index`'s matte (and plate) from its swapped faces, in paste order."""
        if index != self.next or index > self.last:
            raise MediaError(f"matte frame {index} out of order: expected source frame {self.next} "
                             f"(range {self.first}-{self.last})")
        self._write_frame(index, regions)
        self.next += 1

    def _write_frame(self, index: int, regions: Sequence[Region]) -> None:
        raise NotImplementedError


class MatteWriter(_PassWriter):
    """Write the matte (and optionally the plate) of one rendered output, frame by frame, in order.

        with MatteWriter(info, first, last, matte=path, plate=None, metadata=label) as mw:
            mw.write(i, regions)          # source frame i, its swapped faces (none: a black matte)
            mw.fill_to(j)                 # frames up to j (exclusive) with nothing swapped

    Output frame k is source frame first + k, as for the rendered output; `write` refuses a frame
    out of order, and the clips land under their names (atomically, via VideoWriter) only if all
    frames first..last were written. `timecode` is the output's start timecode (default: the
    source's shifted by `first`); `color` the output's colour tags (the plate's RGB is converted
    with them). `metadata`: container tags of the matte (and of the plate unless `plate_metadata`).
    """

    def __init__(self, info: MediaInfo, first: int, last: int, *, matte: Path | None, plate: Path | None = None,
                 metadata: dict[str, str] | None = None, plate_metadata: dict[str, str] | None = None,
                 color: ColorTags | None = None, timecode: str | None = None) -> None:
        if matte is None and plate is None:
            raise InputError("MatteWriter: neither a matte nor a plate path was given")
        super().__init__(info, first, last)
        self.color = color or _MATTE_COLOR
        tc = timecode if timecode is not None else (
            shift_timecode(info.timecode, first, info.fps) if info.timecode else None)
        common: dict[str, Any] = dict(width=info.width, height=info.height, fps=info.fps, codec=MATTE_CODEC,
                                      timecode=tc, pix_fmt=MATTE_PIX_FMT, rotation=info.rotation,
                                      time_base=info.time_base if info.vfr else None)
        self._matte = VideoWriter(matte, color=_MATTE_COLOR, metadata=metadata, **common) if matte else None
        self._plate = (VideoWriter(plate, color=self.color, metadata=plate_metadata or metadata, **common)
                       if plate else None)

    def _pts(self, index: int) -> int | None:
        return self.info.pts[index] - self.info.pts[self.first] if self.info.vfr else None

    def _write_frame(self, index: int, regions: Sequence[Region]) -> None:
        # Work over the union of the faces' boxes only: the rest of the frame is a constant.
        alpha, colour, union = combine_regions(index, regions, self._plate is not None)
        pts = self._pts(index)
        if self._matte is not None:
            self._matte.write_av(self._matte_frame(alpha, union), pts=pts)
        if self._plate is not None:
            self._plate.write_av(self._plate_frame(alpha, colour, union), pts=pts)

    def _matte_frame(self, alpha: np.ndarray | None, union: tuple[int, int, int, int] | None) -> av.VideoFrame:
        frame = av.VideoFrame(self.width, self.height, MATTE_PIX_FMT)
        y, u, v, a = _planes(frame)
        u[...] = 512
        v[...] = 512
        y[...] = 64  # limited-range luma: 64 black .. 940 white
        a[...] = 0
        if alpha is not None and union is not None:
            box = (slice(union[1], union[3]), slice(union[0], union[2]))
            a[box] = np.rint(alpha * ALPHA_MAX)
            y[box] = 64 + np.rint(alpha * 876.0)
        return frame

    def _plate_frame(self, alpha: np.ndarray | None, colour: np.ndarray | None,
                     union: tuple[int, int, int, int] | None) -> av.VideoFrame:
        rgb = np.zeros((self.height, self.width, 3), np.uint16)
        box = (slice(union[1], union[3]), slice(union[0], union[2])) if union is not None else None
        if alpha is not None and colour is not None and box is not None:
            straight = np.divide(colour, alpha[..., None], out=np.zeros_like(colour), where=alpha[..., None] > 0)
            rgb[box] = np.clip(np.rint(straight), 0, 255).astype(np.uint16) * 257  # 8-bit face, 16-bit container
        matrix, rng = effective_color(self.color, self.width, self.height, MATTE_PIX_FMT)
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(
            format=MATTE_PIX_FMT, src_colorspace=matrix, dst_colorspace=matrix, src_color_range="JPEG",
            dst_color_range=rng)
        planes = _planes(frame)
        planes[3][...] = 0
        if alpha is not None and box is not None:
            planes[3][box] = np.rint(alpha * ALPHA_MAX)
        return frame

__all__ = ["ALPHA_MAX", "MATTE_CODEC", "MATTE_PIX_FMT", "MATTE_SUFFIX", "MatteWriter", "PLATE_SUFFIX", "Region",
           "combine_regions", "decode_matte", "matte_paths", "open_matte_writer"]

