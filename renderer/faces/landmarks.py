"""Facial landmarks: (frame, box) -> (K, 2) points, K = 68 or 5 (dlib shape predictors).

The 68-point model follows the iBUG 300-W markup (jaw 0-16, brows 17-26, nose
27-35, eyes 36-47, mouth 48-67). Its training data's terms restrict commercial
use; the 5-point model (2 corners per eye + base of the nose, trained by dlib on
its own CC0 data) is the complete alternative: alignment and masks work with it.

Convention: frame (H, W, 3) uint8 RGB; box (x0, y0, x1, y1) float frame pixels;
result (K, 2) float64 frame pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from renderer.errors import InputError, ModelError
from renderer.faces import models

POINT_COUNTS = (68, 5)


class LandmarkModel:
    """A dlib shape predictor for `points` landmarks (68 or 5); cheap to build, model shared.

    It runs as the evaluator of the cached model arrays (models.shape_model: the same points, loaded
    without holding the GIL for most of a second; its cascade loop in C where the install built it,
    else in numpy), or as dlib's own predictor where the model file cannot be parsed into them."""

    def __init__(self, points: int = 68) -> None:
        if points not in POINT_COUNTS:
            raise InputError(f"landmark points must be 68 or 5; got {points!r}")
        self.points = points
        try:
            self._arrays = models.shape_model(points)
        except ModelError:
            self._arrays = None
            self._predictor = models.shape_predictor(points)

    def __call__(self, frame_rgb: np.ndarray, box: Sequence[float],
                 window: tuple[int, int, int, int] | None = None) -> np.ndarray:
        """(K, 2) float64 landmarks in frame pixels for the face inside `box`.

        window: (x0, y0, x1, y1) int frame pixels; the predictor then reads only that part of
        the frame (pixels outside it read as off the picture). The predictors read within about
        0.2 box sides around the box, so a window that wide gives the same points as the whole
        frame, for a copy of the window instead of the frame.
        """
        if self._arrays is not None:
            return self._arrays(frame_rgb, _rect(box), window)
        return self._dlib(frame_rgb, _rect(box), window)

    def many(self, frame_rgb: np.ndarray, boxes: Sequence[Sequence[float]],
             windows: Sequence[tuple[int, int, int, int] | None]) -> list[np.ndarray]:
        """The landmarks of several faces of one frame, each as `__call__` gives them (in one pass
        over the model for all of them: ~1.9 ms a face for three, against ~3 ms one at a time)."""
        if self._arrays is None or len(boxes) < 2:
            return [self(frame_rgb, b, w) for b, w in zip(boxes, windows)]
        return self._arrays.many(frame_rgb, [_rect(b) for b in boxes], windows)

    def _dlib(self, frame_rgb: np.ndarray, box: tuple[int, int, int, int],  # `_rect`: inclusive corners
              window: tuple[int, int, int, int] | None) -> np.ndarray:
        import dlib

        left, top, right, bottom = box
        ox = oy = 0
        if window is not None:
            ox, oy, wx1, wy1 = window
            frame_rgb = frame_rgb[oy:wy1, ox:wx1]
        rect = dlib.rectangle(left - ox, top - oy, right - ox, bottom - oy)
        shape = self._predictor(np.ascontiguousarray(frame_rgb), rect)
        return np.array([(p.x + ox, p.y + oy) for p in shape.parts()], dtype=np.float64)


def _rect(box: Sequence[float]) -> tuple[int, int, int, int]:
    """dlib's rectangle of a frame-pixel box: whole pixels, right and bottom inclusive."""
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    return x0, y0, x1 - 1, y1 - 1


def landmarks(frame_rgb: np.ndarray, box: Sequence[float], points: int = 68) -> np.ndarray:
    """(K, 2) float64 frame-pixel landmarks (K = `points`) of the face in `box`."""
    return LandmarkModel(points)(frame_rgb, box)


def to_dlib_shape(landmarks_xy: np.ndarray, box: Sequence[float] | None = None):  # -> dlib.full_object_detection
    """dlib.full_object_detection from (K, 2) points (used by the recognition model)."""
    import dlib

    pts = np.asarray(landmarks_xy, dtype=np.float64)
    if box is None:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        box = (lo[0], lo[1], hi[0], hi[1])
    rect = dlib.rectangle(round(box[0]), round(box[1]), round(box[2]), round(box[3]))
    return dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in pts])
