"""Alignment: landmarks -> similarity transform onto a mean face -> square crop.

The aligned crop is the original deepfakes crop: a Umeyama similarity fit
(rotation, uniform scale, translation; no shear) of the landmarks to a mean
face laid out in a unit square, then scaled so that `coverage` of the crop
side is margin around that square (0.375 -> 48 px each side at 256 px, the
deepfakes `padding=48`). The swap stage calls the same `align_matrices` with
the `coverage` and `landmark_points` stored in faceset.json, so it crops
frames exactly as extract did.

Convention: landmarks (K, 2) float64 frame pixels, K = 68 or 5.
`crop_from_frame` (2, 3) float64 maps frame pixels to crop pixels;
`frame_from_crop` is its inverse. Crops are (S, S, 3) uint8 RGB.
"""

from __future__ import annotations

import cv2
import numpy as np

from renderer.errors import InputError
from renderer.faces import Face

DEFAULT_COVERAGE = 0.375
DEFAULT_CROP_SIZE = 256

# Mean face (dlib/OpenFace layout) for the 51 non-jaw points of the 68-point
# markup (points 17..67), in a unit square: the table the original deepfakes
# `umeyama(landmarks[17:], mean_face)` alignment used.
_MEAN_FACE_X = (
    0.000213256, 0.0752622, 0.18113, 0.29077, 0.393397, 0.586856, 0.689483, 0.799124,
    0.904991, 0.98004, 0.490127, 0.490127, 0.490127, 0.490127, 0.36688, 0.426036,
    0.490127, 0.554217, 0.613373, 0.121737, 0.187122, 0.265825, 0.334606, 0.260918,
    0.182743, 0.645647, 0.714428, 0.793132, 0.858516, 0.79751, 0.719335, 0.254149,
    0.340985, 0.428858, 0.490127, 0.551395, 0.639268, 0.726104, 0.642159, 0.556721,
    0.490127, 0.423532, 0.338094, 0.290379, 0.428096, 0.490127, 0.552157, 0.689874,
    0.553364, 0.490127, 0.42689,
)
_MEAN_FACE_Y = (
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891,
    0.0187482, 0.038915, 0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326,
    0.609345, 0.628106, 0.609345, 0.587326, 0.216423, 0.178758, 0.179852, 0.231733,
    0.245099, 0.244077, 0.231733, 0.179852, 0.178758, 0.216423, 0.244077, 0.245099,
    0.780233, 0.745405, 0.727388, 0.742578, 0.727388, 0.745405, 0.780233, 0.864805,
    0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746, 0.785343, 0.778746,
    0.784792, 0.824182, 0.831803, 0.824182,
)
MEAN_FACE_51 = np.stack([_MEAN_FACE_X, _MEAN_FACE_Y], axis=1)  # (51, 2) unit square

# The 5-point model's points (image-right eye outer, inner; image-left eye
# outer, inner; base of nose) in the same unit square. Not copied from the
# 68-point table: measured as the mean position of dlib's 5-point output after
# aligning each face with its 68 points (faces from the kphotoalbum demo photos
# and video, and the face_recognition test images), so a 5-point crop frames a
# face like a 68-point crop does.
MEAN_FACE_5 = np.array(
    [[0.8620, 0.2141], [0.6475, 0.2202], [0.1201, 0.2176], [0.3314, 0.2185], [0.4906, 0.6141]],
    dtype=np.float64,
)

# Ellipse that holds the face (brows to chin, cheek to cheek) in the unit
# square: the extent of the same faces' mean 68-point shape (x 0.49 +- 0.62,
# y 0.64 +- 0.59), raised a little to take in the forehead line. The 5-point mask.
FACE_ELLIPSE_CENTRE = (0.4863, 0.60)
FACE_ELLIPSE_AXES = (0.62, 0.64)  # semi-axes (x, y)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(3, 3) least-squares similarity taking `src` (N, 2) onto `dst` (N, 2) (Umeyama 1991)."""
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s_c, d_c = src - mu_s, dst - mu_d
    cov = d_c.T @ s_c / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    var_s = (s_c**2).sum() / len(src)
    scale = float((sig * d).sum() / var_s) if var_s > 0 else 1.0
    out = np.eye(3)
    out[:2, :2] = scale * rot
    out[:2, 2] = mu_d - scale * rot @ mu_s
    return out


def _alignment_points(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] not in (68, 5):
        raise InputError(f"landmarks must be (68, 2) or (5, 2); got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise InputError("landmarks contain NaN or infinite values")
    return (pts[17:], MEAN_FACE_51) if len(pts) == 68 else (pts, MEAN_FACE_5)


def unit_from_frame(landmarks: np.ndarray) -> np.ndarray:
    """(3, 3) similarity from frame pixels to the mean face's unit square."""
    src, dst = _alignment_points(landmarks)
    return umeyama(src, dst)


def align_matrices(
    landmarks: np.ndarray, crop_size: int = DEFAULT_CROP_SIZE, coverage: float = DEFAULT_COVERAGE
) -> tuple[np.ndarray, np.ndarray]:
    """(crop_from_frame, frame_from_crop), each (2, 3) float64.

    coverage: fraction of the crop side that is margin around the mean face's
    unit square, both sides together (0.375 = 48 px each side at 256 px).
    """
    if not 0.0 <= coverage < 1.0:
        raise InputError(f"coverage must be in [0, 1); got {coverage}")
    if crop_size < 8:
        raise InputError(f"crop size must be at least 8 px; got {crop_size}")
    unit = unit_from_frame(landmarks)
    crop_from_unit = np.array(
        [[crop_size * (1 - coverage), 0, crop_size * coverage / 2],
         [0, crop_size * (1 - coverage), crop_size * coverage / 2],
         [0, 0, 1]]
    )
    full = crop_from_unit @ unit
    return full[:2].copy(), np.linalg.inv(full)[:2].copy()


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine to (N, 2) points -> (N, 2) float64."""
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def make_face(
    landmarks: np.ndarray,
    box: tuple[float, float, float, float],
    score: float,
    crop_size: int = DEFAULT_CROP_SIZE,
    coverage: float = DEFAULT_COVERAGE,
) -> Face:
    """A `Face` with its alignment matrices computed from `landmarks`."""
    c_f, f_c = align_matrices(landmarks, crop_size, coverage)
    return Face(
        box=tuple(float(v) for v in box),  # type: ignore[arg-type]
        score=float(score),
        landmarks=np.asarray(landmarks, dtype=np.float64),
        crop_from_frame=c_f,
        frame_from_crop=f_c,
        crop_size=int(crop_size),
    )


def crop(frame_rgb: np.ndarray, face: Face) -> np.ndarray:
    """(S, S, 3) uint8 aligned crop of `face` (S = face.crop_size); edges replicate."""
    s = int(face.crop_size)
    return cv2.warpAffine(
        frame_rgb, face.crop_from_frame, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def mask_polygon(landmarks: np.ndarray, points_on_ellipse: int = 48) -> np.ndarray:
    """(M, 2) float64 polygon in frame pixels enclosing the face.

    68 points: the convex hull of all landmarks (jaw, brows; brows raised by a
    tenth of the face height to take in the forehead line).
    5 points: an ellipse fixed in the mean-face square, placed by the 5-point
    similarity (the only mask available to the commercially usable model).
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if len(pts) == 68:
        lifted = pts.copy()
        height = pts[:, 1].max() - pts[:, 1].min()
        up = pts[8] - pts[27]  # chin minus nose bridge: "down" in face orientation
        up = up / (np.linalg.norm(up) + 1e-9)
        lifted[17:27] -= up * 0.1 * height
        hull = cv2.convexHull(np.concatenate([pts, lifted[17:27]]).astype(np.float32))
        return hull.reshape(-1, 2).astype(np.float64)
    _alignment_points(pts)
    t = np.linspace(0, 2 * np.pi, points_on_ellipse, endpoint=False)
    cx, cy = FACE_ELLIPSE_CENTRE
    ax, ay = FACE_ELLIPSE_AXES
    unit = np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)
    frame_from_unit = np.linalg.inv(unit_from_frame(pts))[:2]
    return apply_affine(frame_from_unit, unit)
