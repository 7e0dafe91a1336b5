"""The matte pass of an image-sequence render: the blend mask (and the face plate) as image sequences.

A render written as an image sequence gets its matte pass as sequences too, each in a folder of
its own beside the render's (`out/A001/A001.%04d.exr` -> `out/A001.matte/A001.matte.%04d.exr`,
`out/A001.plate/A001.plate.%04d.exr`): the same kind of file, frame numbers, step and padding as
the render, written atomically like it (`SequenceWriter`: a hidden folder renamed when complete).

    EXR    matte  channels Y and A, both the mask, float32: the exact blend mask `paste_face` used
                  (Nuke reads A as alpha, Y as luminance; FFmpeg decodes it as ya/gray with alpha).
           plate  RGBA float32: R, G, B the unblended face in the frame's own values (a deep or
                  scene-linear frame's, not clipped), straight alpha = the mask.
           Both keep the source's lossless compression (else ZIP) and carry each source frame's
           header attributes (timeCode ...), `framesPerSecond` and the synthetic-media label.
    DPX, TIFF, PNG
           matte  16-bit grey (gray16le; PNG gray16be): round(mask * 65535).
           plate  16-bit RGBA (rgba64le; PNG rgba64be): the face (0..255 scaled by 257, as the
                  movie plate codes it), alpha round(mask * 65535).

Frames where nothing was swapped are zero (black, transparent), as in the movie matte.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import av
import numpy as np

from renderer.errors import InputError
from renderer.media.info import MediaInfo
from renderer.media.matte import Region, _PassWriter, combine_regions
from renderer.media.sequence import SequencePattern, parse_sequence
from renderer.media.sequence_write import SequenceWriter

GREY_MAX = 65535  # 16-bit grey and alpha of DPX, TIFF and PNG passes
_GREY = {"dpx": "gray16le", "tiff": "gray16le", "png": "gray16be"}
_RGBA = {"dpx": "rgba64le", "tiff": "rgba64le", "png": "rgba64be"}


def sequence_pass_path(output: Path, kind: str) -> Path:
    """The pattern of an image-sequence render's `kind` ("matte" or "plate") pass: its own folder
    beside the render's, named after it, same suffix and padding (`out/A001/A001.%04d.exr` ->
    `out/A001.matte/A001.matte.%04d.exr`)."""
    pattern = parse_sequence(output)
    stem = pattern.prefix.rstrip("._-")
    sep = pattern.prefix[len(stem):] or "."
    prefix = f"{stem}.{kind}{sep}" if stem else f"{kind}."
    folder = pattern.folder.parent / f"{pattern.folder.name}.{kind}"
    return SequencePattern(folder, prefix, pattern.suffix, pattern.padding).printf


class SequenceMatteWriter(_PassWriter):
    """`MatteWriter`'s interface (`write`, `fill_to`, `writes_plate`, `frames_written`, a context
    manager) for a render written as an image sequence: `matte` / `plate` are sequence patterns.

    Frame k (source frame first + k) is numbered like the render's frame k: a source sequence's
    own number of frame first + k (and its step), a movie source's frame index. `metadata` /
    `plate_metadata` label EXR frames (header attributes); `color` and `timecode` are accepted for
    MatteWriter's interface (a sequence's frames carry the source frame's own EXR timeCode).
    """

    def __init__(self, info: MediaInfo, first: int, last: int, *, matte: Path | None, plate: Path | None = None,
                 metadata: dict[str, str] | None = None, plate_metadata: dict[str, str] | None = None,
                 color: Any = None, timecode: str | None = None) -> None:
        if matte is None and plate is None:
            raise InputError("SequenceMatteWriter: neither a matte nor a plate pattern was given")
        super().__init__(info, first, last)
        seq = info.sequence
        number, step = (seq.numbers[first], seq.step) if seq is not None else (first, 1)

        def writer(path: Path, labels: dict[str, str] | None, pix: dict[str, str]) -> SequenceWriter:
            kind = parse_sequence(path).kind
            return SequenceWriter(path, width=info.width, height=info.height, fps=info.fps, first_number=number,
                                  step=step, like=seq, pix_fmt=pix.get(kind), metadata=labels, lossless=True)

        self._matte = writer(matte, metadata, _GREY) if matte is not None else None
        self._plate = writer(plate, plate_metadata or metadata, _RGBA) if plate is not None else None

    def _write_frame(self, index: int, regions: Sequence[Region]) -> None:
        alpha_box, colour_box, union = combine_regions(index, regions, self._plate is not None)
        alpha = np.zeros((self.height, self.width), np.float32)  # (H, W) float32 in [0, 1]
        box = (slice(union[1], union[3]), slice(union[0], union[2])) if union is not None else None
        if box is not None and alpha_box is not None:
            alpha[box] = alpha_box
        if self._matte is not None:
            self._write_matte(self._matte, alpha)
        if self._plate is not None:
            straight = np.zeros((self.height, self.width, 3), np.float32)  # (H, W, 3) 0..255 face, straight
            if box is not None and alpha_box is not None and colour_box is not None:
                straight[box] = np.divide(colour_box, alpha_box[..., None], out=np.zeros_like(colour_box),
                                          where=alpha_box[..., None] > 0)
            self._write_plate(self._plate, alpha, straight)

    @staticmethod
    def _write_matte(writer: SequenceWriter, alpha: np.ndarray) -> None:
        kind = writer.pattern.kind
        if kind == "exr":
            writer.write_exr_channels({"Y": alpha, "A": alpha})
            return
        grey = np.rint(alpha * GREY_MAX).astype(np.uint16)
        writer.write_av(av.VideoFrame.from_ndarray(grey, format=_GREY[kind]))

    @staticmethod
    def _write_plate(writer: SequenceWriter, alpha: np.ndarray, straight: np.ndarray) -> None:
        kind = writer.pattern.kind
        if kind == "exr":  # the face in frame values (0..1 = black..white, as `paste_face` scaled it)
            rgb = straight * np.float32(1.0 / 255.0)
            writer.write_exr_channels({"R": rgb[..., 0], "G": rgb[..., 1], "B": rgb[..., 2], "A": alpha})
            return
        rgba = np.empty((*alpha.shape, 4), np.uint16)
        rgba[..., :3] = np.rint(np.clip(straight, 0.0, 255.0) * 257.0)
        rgba[..., 3] = np.rint(alpha * GREY_MAX)
        writer.write_av(av.VideoFrame.from_ndarray(rgba, format=_RGBA[kind]))


def read_sequence_matte(pattern: Path) -> dict[int, np.ndarray]:
    """{frame number: (H, W) float32 mask in [0, 1]} of a matte sequence as written (EXR's A channel,
    else the 16-bit grey / 65535), read with OpenEXR (EXR) or FFmpeg (DPX, TIFF, PNG)."""
    seq = parse_sequence(pattern)
    out: dict[int, np.ndarray] = {}
    for number, path in seq.scan().items():
        if seq.kind == "exr":
            import OpenEXR

            with OpenEXR.File(str(path)) as f:
                out[number] = np.asarray(f.channels()["A"].pixels, np.float32)
        else:
            with av.open(str(path)) as c:
                frame = next(c.decode(video=0))
            out[number] = frame.to_ndarray(format="gray16le").astype(np.float32) / GREY_MAX
    return out


__all__ = ["GREY_MAX", "SequenceMatteWriter", "read_sequence_matte", "sequence_pass_path"]
