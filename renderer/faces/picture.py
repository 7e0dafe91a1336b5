"""What the face stages read a frame through: the whole RGB array, or only the regions they ask for.

A `Picture` is an (H, W, 3) uint8 RGB frame that need not be all there: `region(x0, y0, x1, y1)`
hands back the frame-sized array with at least that box (clipped to the frame) holding the
frame's pixels, `whole()` the array with every pixel there. Tracking a face reads only around
it (landmarks, the template, a search near its box; `FaceTracker`), so a video frame is
converted from YUV a region at a time (`renderer.media.RegionRGB`) and a full conversion runs
only on the frames that search the whole frame. A plain RGB array is a picture that is all
there (`DensePicture`).

Convention: boxes are (x0, y0, x1, y1) int frame pixels, end exclusive.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Picture(Protocol):
    """An RGB frame read region by region (module doc)."""

    shape: tuple[int, ...]  # (H, W, 3)

    def region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """(H, W, 3) uint8 RGB, the frame's pixels at least inside the box (clipped to the frame)."""
        ...

    def whole(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB, every pixel the frame's."""
        ...


class DensePicture:
    """A picture that is all there: an (H, W, 3) uint8 RGB array."""

    def __init__(self, rgb: np.ndarray) -> None:
        self.rgb = rgb
        self.shape = rgb.shape

    def region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        return self.rgb

    def whole(self) -> np.ndarray:
        return self.rgb


def as_picture(frame: np.ndarray | Picture) -> Picture:
    """`frame` itself when it is a Picture, else the RGB array wrapped as one."""
    return frame if isinstance(frame, Picture) else DensePicture(frame)  # type: ignore[arg-type]


def warp_footprint(dst_from_src: np.ndarray, dsize: tuple[int, int], frame_shape: tuple[int, ...],
                   margin: int = 2) -> tuple[int, int, int, int]:
    """The frame box a `cv2.warpAffine(frame, dst_from_src, dsize)` reads (bilinear, any border
    mode that copies frame pixels): the source points of the output's corner pixels, grown by
    `margin` (2 covers the bilinear neighbours and rounding), clipped to the frame."""
    m = np.vstack([np.asarray(dst_from_src, np.float64)[:2], (0.0, 0.0, 1.0)])
    w, h = dsize
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64)
    src = (np.linalg.inv(m) @ corners.T)[:2]
    fh, fw = frame_shape[:2]
    # Clipped so that a box wholly off the frame still holds the edge pixels that BORDER_REPLICATE repeats.
    x0 = min(max(0, math.floor(src[0].min()) - margin), fw - 1)
    y0 = min(max(0, math.floor(src[1].min()) - margin), fh - 1)
    x1 = max(min(fw, math.ceil(src[0].max()) + margin + 1), x0 + 1)
    y1 = max(min(fh, math.ceil(src[1].max()) + margin + 1), y0 + 1)
    return x0, y0, x1, y1
