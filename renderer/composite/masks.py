"""Face masks in aligned-crop pixels: landmark hull or ellipse, learned mask, erosion and feather."""

from __future__ import annotations

import cv2
import numpy as np

from renderer.composite.settings import CompositeSettings, LANDMARK_KINDS, _BROWS, _JAW, _check_landmarks, _check_mask
from renderer.errors import InputError, closest
from renderer.faces.align import FACE_ELLIPSE_AXES, FACE_ELLIPSE_CENTRE, unit_from_frame

# ---------------------------------------------------------------- transforms

def landmarks_to_crop(landmarks: np.ndarray, crop_from_frame: np.ndarray) -> np.ndarray:
    """(K, 2) frame-pixel landmarks -> (K, 2) float64 crop pixels via `crop_from_frame` (2, 3)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    m = np.asarray(crop_from_frame, dtype=np.float64)
    return pts @ m[:, :2].T + m[:, 2]


def resize_crop_transform(crop_from_frame: np.ndarray, from_size: int, to_size: int) -> np.ndarray:
    """The (2, 3) crop_from_frame for the same crop resampled from `from_size` to `to_size` pixels.

    Pixel centres sit at integers, so the crop's edges are at -0.5 and size-0.5:
    u_to = (u_from + 0.5) * to/from - 0.5, the mapping `cv2.resize` uses.
    """
    k = to_size / from_size
    m = np.asarray(crop_from_frame, dtype=np.float64) * k
    m[:, 2] += 0.5 * k - 0.5
    return m


# ---------------------------------------------------------------- masks

def _ellipse_params(landmarks_crop: np.ndarray) -> tuple[tuple[float, float], tuple[float, float], float]:
    """cv2-style ((cx, cy), (full_w, full_h), angle_deg) of the face ellipse in crop pixels.

    The ellipse is the one `renderer.faces.align` fixes in the mean-face unit
    square (the extract stage's 5-point mask), placed by the same Umeyama fit
    of these landmarks (68 or 5) to the mean face, so masks agree with crops.
    """
    crop_from_unit = np.linalg.inv(unit_from_frame(landmarks_crop))
    a = crop_from_unit[:2, :2]
    scale = float(np.sqrt(abs(np.linalg.det(a))))
    angle = float(np.degrees(np.arctan2(a[1, 0], a[0, 0])))
    cx, cy = a @ np.array(FACE_ELLIPSE_CENTRE) + crop_from_unit[:2, 2]
    ax, ay = FACE_ELLIPSE_AXES
    return (float(cx), float(cy)), (2 * ax * scale, 2 * ay * scale), angle


def landmark_mask(landmarks_crop: np.ndarray, size: int, kind: str = "hull", forehead: float = 0.0) -> np.ndarray:
    """Binary face region from landmarks, as (size, size) float32 in {0, 1}.

    landmarks_crop: (68, 2) or (5, 2) float crop pixels.
    kind: "hull" needs 68 points (convex hull of jaw and brows, the brows raised
        by `forehead` x the chin-to-brow distance); "ellipse" works with 68
        or 5 points (dlib's order): the mean-face ellipse of
        `renderer.faces.align`, placed by the Umeyama fit of the landmarks.
    Polygons are filled with 8x sub-pixel precision, so the region does not
    snap to whole pixels at small sizes.
    """
    pts = _check_landmarks(landmarks_crop)
    if kind not in LANDMARK_KINDS:
        raise InputError(f"face mask: kind={kind!r} is not allowed; allowed: hull, ellipse{closest(str(kind), LANDMARK_KINDS)}")
    if not isinstance(size, (int, np.integer)) or size < 8:
        raise InputError(f"face mask: size must be an integer >= 8 pixels; got {size!r}")
    shift = 3  # cv2 fixed-point fractional bits
    scale = float(1 << shift)
    out = np.zeros((int(size), int(size)), np.uint8)
    if kind == "hull":
        if pts.shape[0] != 68:
            raise InputError(f"face mask: kind 'hull' needs 68 landmarks; got {pts.shape[0]} (use 'ellipse' for 5-point faces)")
        brows = pts[_BROWS].copy()
        if forehead > 0.0:
            up = brows.mean(axis=0) - pts[8]  # chin -> brow centre
            brows += forehead * up
        hull = cv2.convexHull(np.round(np.concatenate([pts[_JAW], brows]) * scale).astype(np.int32))
        cv2.fillConvexPoly(out, hull, 1, lineType=cv2.LINE_8, shift=shift)
    else:
        (cx, cy), (w, h), angle = _ellipse_params(pts)
        centre = (int(round(cx * scale)), int(round(cy * scale)))
        axes = (max(1, int(round(w / 2 * scale))), max(1, int(round(h / 2 * scale))))
        cv2.ellipse(out, centre, axes, angle, 0, 360, 1, thickness=-1, lineType=cv2.LINE_8, shift=shift)
    return out.astype(np.float32)


def _erode_feather(region: np.ndarray, erode_px: float, feather_px: float) -> np.ndarray:
    """Erode a binary (S, S) region by `erode_px` (may be negative) and ramp over `feather_px`.

    Uses the signed Euclidean distance to the region's edge, so radii are
    fractional (a 1.3 px erosion at S=64 is the same relative erosion as
    5.2 px at S=256) and the feather ramp lies entirely inside the eroded edge:
    nothing outside the region ever gets weight. The ramp is a smoothstep.
    """
    binary = (region > 0.5).astype(np.uint8)
    inside = cv2.distanceTransform(binary, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform(1 - binary, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    # Distance to the edge between pixel centres: +0.5 inside, -0.5 just outside.
    signed = np.where(binary > 0, inside - 0.5, 0.5 - outside) - erode_px
    if feather_px <= 0.0:
        return (signed > 0).astype(np.float32)
    t = np.clip(signed / feather_px, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def _outline(binary: np.ndarray) -> np.ndarray:
    """(S, S) float32 {0, 1}: the region inside the outer contours of `binary`, holes filled.

    Holes in a learned mask (an occluding hand) are kept out of the eroded
    outline so they are not feathered twice; the learned values handle them.
    """
    contours, _ = cv2.findContours(binary.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    out = np.zeros(binary.shape, np.uint8)
    cv2.drawContours(out, contours, -1, 1, thickness=cv2.FILLED)
    return out.astype(np.float32)


def face_mask(
    landmarks_crop: np.ndarray,
    size: int,
    settings: CompositeSettings,
    learned: np.ndarray | None = None,
) -> np.ndarray:
    """The blend mask for one face, (size, size) float32 in [0, 1], in crop pixels.

    landmarks_crop: (68, 2) or (5, 2) crop pixels (see `landmarks_to_crop`).
    learned: the model's (size, size) float32 mask in [0, 1], required for the
        "learned" kinds. The outline of its region (>= 0.5, holes filled) is
        eroded/feathered like a landmark region, and the result is capped by
        the learned values themselves, so spots the model marked low inside
        the face (an occluding hand) keep the model's values.
    """
    kind = settings.mask
    if "learned" in kind:
        if learned is None:
            raise InputError(f"face mask: mask={kind!r} needs the model's learned mask, but this model gives none; use 'hull' or 'ellipse'")
        learned = _check_mask("learned mask", learned, size)
    region: np.ndarray | None = None
    if kind != "learned":
        pts = _check_landmarks(landmarks_crop)
        shape = "hull" if kind in ("hull", "hull+learned") and pts.shape[0] == 68 else "ellipse"
        region = landmark_mask(pts, size, shape, settings.forehead)
    if learned is not None:
        learned_region = _outline(learned >= 0.5)
        region = learned_region if region is None else np.minimum(region, learned_region)
    assert region is not None
    mask = _erode_feather(region, settings.erode * size, settings.feather * size)
    if learned is not None:
        mask = np.minimum(mask, learned)
    return mask


