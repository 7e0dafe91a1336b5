"""Faces from media: detect -> landmarks -> align -> track -> identity.

The `Face` record is what every later stage consumes.

Convention: landmarks and boxes are float64 pixel coordinates in the *frame*
(x right, y down, pixel centres at integers). `crop_from_frame` maps frame
pixels to aligned-crop pixels as a 2x3 affine; `frame_from_crop` is its inverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class Face:
    """One face in one frame.

    box: (x0, y0, x1, y1) float, frame pixels.
    score: detector confidence (detector-specific scale; higher is surer).
    landmarks: (K, 2) float64, frame pixels; K is 68 or 5.
    crop_from_frame, frame_from_crop: (2, 3) float64 similarity transforms.
    crop_size: side of the square aligned crop in pixels.
    embedding: (128,) float32 identity vector, or None when not computed.
    """

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray
    crop_from_frame: np.ndarray
    frame_from_crop: np.ndarray
    crop_size: int
    embedding: np.ndarray | None = field(default=None)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> float:
        return max(0.0, self.width) * max(0.0, self.height)
