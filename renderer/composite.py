"""Compositing: face masks, colour transfer, blending and paste-back into the frame.

Convention:
    frame         (H, W, 3) uint8 RGB, the source frame (written only if passed as `out`).
    swapped crop  (S, S, 3) float32 RGB in [0, 1], the model output for one face's
                  aligned crop; S is the model's size (e.g. 64), not necessarily
                  `Face.crop_size` (use `resize_crop_transform`).
    crop mask     (S, S) float32 in [0, 1], in the same aligned-crop pixels.
    crop_from_frame / frame_from_crop  (2, 3) float64 affines for *that* S: the
                  crop was `cv2.warpAffine(frame, crop_from_frame, (S, S))`.
    Pixel centres are at integer coordinates in both spaces (OpenCV's convention).

A swap stage is a few lines:

    crop_from_frame = resize_crop_transform(face.crop_from_frame, face.crop_size, S)
    crop = cv2.warpAffine(frame, crop_from_frame, (S, S))      # model input
    swapped, learned = model(crop)                              # (S, S, 3), (S, S) or None
    frame, mask = composite_face(frame, face.landmarks, crop_from_frame, swapped, settings, learned)

(or the parts: `face_mask`, `transfer_colour`, `composite`). Any crop_from_frame
works as long as the model's crop was made with the same matrix; note that
`resize_crop_transform` (matches `cv2.resize` of a stored 256 px crop) and
`align_matrices(landmarks, S)` (scales the unit square by S) differ by
0.5 * (1 - S/256) px.

Erosion and feather are fractions of the crop side, so a mask looks the same
relative to the face at S=64 and S=256, and for a small or a large face.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from renderer.colour import COLOUR_METHODS, transfer_colour
from renderer.errors import InputError, closest
from renderer.faces.align import FACE_ELLIPSE_AXES, FACE_ELLIPSE_CENTRE, unit_from_frame

MASK_KINDS = ("hull", "ellipse", "learned", "hull+learned")
BLEND_METHODS = ("alpha", "poisson")
LANDMARK_KINDS = ("hull", "ellipse")

# 68-point (iBUG/dlib) index ranges.
_JAW = slice(0, 17)
_BROWS = slice(17, 27)


@dataclass(frozen=True)
class CompositeSettings:
    """How a swapped face goes back into its frame.

    mask: "hull" (68-point jaw+brow convex hull; 5-point faces get the ellipse),
        "ellipse" (align's mean-face ellipse placed by the landmarks), "learned" (the model's mask), or
        "hull+learned" (their intersection).
    erode: fraction of the crop side to shrink the mask by (negative grows it).
    feather: fraction of the crop side over which the mask ramps 0 -> 1, inside
        the (eroded) edge; 0 gives a hard edge.
    forehead: raise the brow points of the hull by this fraction of the
        chin-to-brow distance, to cover the forehead (0 = at the brows).
    colour: "none", "mean", "rct" (Reinhard in Lab) or "histogram".
    blend: "alpha" (feathered alpha) or "poisson" (cv2.seamlessClone, then
        feathered alpha over it so the edge stays soft and pixels outside the
        mask stay untouched; a face cut by the frame edge is handled by
        mirror-padding the frame, never by falling back to alpha).
    """

    mask: str = "hull"
    erode: float = 0.02
    feather: float = 0.06
    forehead: float = 0.0
    colour: str = "rct"
    blend: str = "alpha"

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("mask", self.mask, MASK_KINDS),
            ("colour", self.colour, tuple(COLOUR_METHODS)),
            ("blend", self.blend, BLEND_METHODS),
        ):
            if value not in allowed:
                raise InputError(
                    f"composite settings: {key}={value!r} is not allowed; allowed: {', '.join(allowed)}"
                    f"{closest(str(value), allowed)}"
                )
        for key, value, lo, hi in (
            ("erode", self.erode, -0.5, 0.5),
            ("feather", self.feather, 0.0, 0.5),
            ("forehead", self.forehead, 0.0, 1.0),
        ):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
                raise InputError(
                    f"composite settings: {key}={value!r} is not allowed; allowed: a number from {lo} to {hi} "
                    "(a fraction of the crop side)"
                )


# ---------------------------------------------------------------- validation

def _describe(arr: object) -> str:
    if isinstance(arr, np.ndarray):
        return f"shape {arr.shape} dtype {arr.dtype}"
    return type(arr).__name__


def _check_frame(frame: object) -> np.ndarray:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise InputError(f"composite: frame must be a (H, W, 3) uint8 RGB array; got {_describe(frame)}")
    return frame


def _check_crop(name: str, crop: object) -> np.ndarray:
    ok = isinstance(crop, np.ndarray) and crop.ndim == 3 and crop.shape[2] == 3 and crop.shape[0] == crop.shape[1]
    if not ok or crop.dtype != np.float32:  # type: ignore[union-attr]
        raise InputError(f"composite: {name} must be a (S, S, 3) float32 RGB array in [0, 1]; got {_describe(crop)}")
    return _check_unit_range(name, crop)  # type: ignore[arg-type]


def _check_mask(name: str, mask: object, size: int) -> np.ndarray:
    if not isinstance(mask, np.ndarray) or mask.shape != (size, size) or mask.dtype != np.float32:
        raise InputError(
            f"composite: {name} must be a ({size}, {size}) float32 array in [0, 1] (the crop's size); "
            f"got {_describe(mask)}"
        )
    return _check_unit_range(name, mask)


def _check_unit_range(name: str, arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min(initial=0.0)), float(arr.max(initial=0.0))
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < -1e-3 or hi > 1.0 + 1e-3:
        raise InputError(
            f"composite: {name} values must lie in [0, 1]; got min {lo:.4g}, max {hi:.4g}"
            + (" (0-255 values? divide by 255)" if hi > 2.0 else "")
        )
    return arr if lo >= 0.0 and hi <= 1.0 else np.clip(arr, 0.0, 1.0)


def _check_affine(name: str, matrix: object) -> np.ndarray:
    m = np.asarray(matrix, dtype=np.float64) if isinstance(matrix, np.ndarray) else None
    if m is None or m.shape != (2, 3) or not np.all(np.isfinite(m)) or abs(np.linalg.det(m[:, :2])) < 1e-12:
        raise InputError(f"composite: {name} must be a finite invertible (2, 3) affine matrix; got {_describe(matrix)}")
    return m


def _check_landmarks(landmarks: object) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64) if isinstance(landmarks, np.ndarray) else None
    if pts is None or pts.ndim != 2 or pts.shape[1] != 2 or pts.shape[0] not in (5, 68) or not np.all(np.isfinite(pts)):
        raise InputError(f"face mask: landmarks must be a (68, 2) or (5, 2) finite array in crop pixels; got {_describe(landmarks)}")
    return pts


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


# ---------------------------------------------------------------- paste-back

def _warp_box(crop_mask: np.ndarray, frame_from_crop: np.ndarray, frame_hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Frame-pixel box (x0, y0, x1, y1), exclusive end, covering the warped mask's support."""
    ys, xs = np.nonzero(crop_mask > 0)
    if xs.size == 0:
        return None
    # Bilinear sampling spreads a crop pixel over +-1 frame pixel in each direction.
    u0, u1, v0, v1 = xs.min() - 1.0, xs.max() + 1.0, ys.min() - 1.0, ys.max() + 1.0
    corners = np.array([[u0, v0], [u1, v0], [u0, v1], [u1, v1]]) @ frame_from_crop[:, :2].T + frame_from_crop[:, 2]
    h, w = frame_hw
    x0 = max(0, int(np.floor(corners[:, 0].min())) - 1)
    y0 = max(0, int(np.floor(corners[:, 1].min())) - 1)
    x1 = min(w, int(np.ceil(corners[:, 0].max())) + 2)
    y1 = min(h, int(np.ceil(corners[:, 1].max())) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    return x0, y0, x1, y1


def _box_from_crop(frame_from_crop: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    m = frame_from_crop.copy()
    m[:, 2] -= (box[0], box[1])
    return m


def warp_mask_to_frame(crop_mask: np.ndarray, frame_from_crop: np.ndarray, frame_hw: tuple[int, int]) -> np.ndarray:
    """The crop mask in frame pixels, (H, W) float32 in [0, 1] (for measurement, e.g. `mask_flicker`)."""
    m = _check_affine("frame_from_crop", frame_from_crop)
    out = np.zeros(frame_hw, np.float32)
    box = _warp_box(crop_mask, m, frame_hw)
    if box is not None:
        x0, y0, x1, y1 = box
        out[y0:y1, x0:x1] = cv2.warpAffine(
            crop_mask, _box_from_crop(m, box), (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
    return out


def _poisson(region: np.ndarray, face_u8: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """cv2.seamlessClone of the warped face into the frame box; all (h, w[, 3]) box-sized, uint8 out.

    seamlessClone erodes its mask by 3 pixels and zeroes its outer ring, taking
    the frame's values there, so a face cut by the frame edge would stop short
    of the edge. Faces near the edge are handled by *padding*, never by falling
    back to alpha: frame, face and mask are all mirrored outward by 8 pixels
    (BORDER_REFLECT_101) so the mask runs on past the frame edge, and the result
    is cropped back. Away from the frame edge the box already has a margin
    where the mask is 0, so the mirrored pixels play no part there.
    """
    pad = 8
    def grow(img: np.ndarray) -> np.ndarray:
        return cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
    dst, src = grow(region), grow(face_u8)
    mask = grow((alpha > 0).astype(np.uint8) * 255)
    bx, by, bw, bh = cv2.boundingRect(mask)
    # seamlessClone places the mask's bounding-rect centre (integer halves) at `center`.
    cloned = cv2.seamlessClone(src, dst, mask, (bx + bw // 2, by + bh // 2), cv2.NORMAL_CLONE)
    return cloned[pad:-pad, pad:-pad]


def crop_of_frame(frame: np.ndarray, frame_from_crop: np.ndarray, size: int) -> np.ndarray:
    """The frame's own pixels under the crop, (size, size, 3) float32 in [0, 1]."""
    crop_from_frame = cv2.invertAffineTransform(frame_from_crop)
    crop = cv2.warpAffine(frame, crop_from_frame, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return crop.astype(np.float32) * np.float32(1.0 / 255.0)


@dataclass(frozen=True)
class Patch:
    """Where `paste_face` changed a frame: the box (x0, y0) .. (x0 + w, y0 + h), exclusive end, and
    `changed`, (h, w) bool, True at every pixel whose value changed. Pixels outside it kept theirs."""

    x0: int
    y0: int
    changed: np.ndarray

    @property
    def box(self) -> tuple[int, int, int, int]:
        h, w = self.changed.shape
        return self.x0, self.y0, self.x0 + w, self.y0 + h


def paste_face(
    frame: np.ndarray,
    swapped_crop: np.ndarray,
    frame_from_crop: np.ndarray,
    crop_mask: np.ndarray,
    settings: CompositeSettings,
    original_crop: np.ndarray | None = None,
) -> Patch | None:
    """Blend one swapped face into `frame` in place; the working part of `composite`.

    frame: (H, W, 3) uint8 RGB, written inside the face's box only.
    swapped_crop, frame_from_crop, crop_mask, original_crop: as for `composite`.
    Returns the Patch of pixels that changed (None when the warped mask misses the frame).

    Cost does not grow with the frame, and at frame pixels only with the face's box: the mask,
    colour statistics and colour transfer work at crop resolution (S x S); the box sees one
    float32 warp of the face and one of the mask (OpenCV, multithreaded), one blend
    (`cv2.blendLinear`) and a per-pixel "changed" test. Rounding is to nearest (ties to even),
    so a pixel can differ by at most one code value from a float64 `base + a * (face - base)`
    rounded half up; where the warped mask is 0 the frame is never written.
    """
    frame = _check_frame(frame)
    swapped_crop = _check_crop("swapped_crop", swapped_crop)
    size = swapped_crop.shape[0]
    crop_mask = _check_mask("crop_mask", crop_mask, size)
    m = _check_affine("frame_from_crop", frame_from_crop)
    box = _warp_box(crop_mask, m, frame.shape[:2])
    if box is None:
        return None
    if settings.colour != "none":
        target = (
            _check_crop("original_crop", original_crop) if original_crop is not None else crop_of_frame(frame, m, size)
        )
        if target.shape != swapped_crop.shape:
            raise InputError(f"composite: original_crop shape {target.shape} differs from swapped_crop shape {swapped_crop.shape}")
        swapped_crop = transfer_colour(swapped_crop, target, crop_mask, settings.colour)

    x0, y0, x1, y1 = box
    box_from_crop = _box_from_crop(m, box)
    dsize = (x1 - x0, y1 - y0)
    alpha = cv2.warpAffine(crop_mask, box_from_crop, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    # Scale to 0..255 at crop resolution (S x S), not over the box: warping is linear.
    face = cv2.warpAffine(swapped_crop * np.float32(255.0), box_from_crop, dsize, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    region = frame[y0:y1, x0:x1]  # a view: written below, only where the face changed it
    inside = cv2.compare(alpha, 0.0, cv2.CMP_GT)  # (h, w) uint8 0/255
    if settings.blend == "poisson" and cv2.countNonZero(inside):
        face_u8 = cv2.convertScaleAbs(face)
        face = _poisson(region.copy(), face_u8, alpha).astype(np.float32)
    # dst = (face * a + base * (1 - a)) / (1 + 1e-5): one multithreaded pass; the 1e-5 moves a
    # value by at most 0.003 of a code value.
    blended = cv2.blendLinear(face, region.astype(np.float32), alpha, 1.0 - alpha)
    result = cv2.convertScaleAbs(blended)  # round to nearest, saturate to uint8
    diff = cv2.split(cv2.absdiff(result, region))
    changed = cv2.bitwise_and(cv2.max(cv2.max(diff[0], diff[1]), diff[2]), inside)  # (h, w) uint8, 0 = same
    masked_copy(region, result, changed)
    return Patch(x0, y0, changed > 0)


def masked_copy(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> None:
    """dst[mask != 0] = src[mask != 0] in place; dst may be a view into a bigger image.

    mask: uint8 (h, w) for (h, w[, C]) arrays. cv2.copyTo writes straight into the view (a
    broadcast `np.copyto(where=...)` over a face box was sixty times slower); should OpenCV
    ever hand back a new array instead, numpy does the copy.
    """
    if cv2.copyTo(src, mask, dst) is not dst:
        np.copyto(dst, src, where=(mask != 0)[..., None] if dst.ndim == 3 else mask != 0)


def composite(
    frame: np.ndarray,
    swapped_crop: np.ndarray,
    frame_from_crop: np.ndarray,
    crop_mask: np.ndarray,
    settings: CompositeSettings,
    original_crop: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Paste one swapped face back into a copy of the frame.

    frame: (H, W, 3) uint8 RGB; not modified (unless it is also `out`).
    swapped_crop: (S, S, 3) float32 RGB in [0, 1].
    frame_from_crop: (2, 3) float64 affine, crop pixels -> frame pixels, for size S.
    crop_mask: (S, S) float32 in [0, 1] (from `face_mask`).
    original_crop: the frame's pixels under the crop, (S, S, 3) float32 in
        [0, 1], if the caller already has it (colour transfer needs it);
        otherwise it is resampled from the frame.
    out: where to write the result (same shape, uint8); may be `frame` itself
        to paste several faces without copying the frame each time.
    Returns `out`, or a new (H, W, 3) uint8 frame. Only the frame box under the warped
    mask is touched; the blend is computed in float32 and rounded to nearest.
    Every pixel where the warped mask is exactly 0 is bit-identical to `frame`.
    A pipeline that needs to know what changed calls `paste_face` instead.
    """
    frame = _check_frame(frame)
    if out is None:
        out = frame.copy()
    elif out is not frame:
        if not isinstance(out, np.ndarray) or out.shape != frame.shape or out.dtype != np.uint8:
            raise InputError(f"composite: out must be a {frame.shape} uint8 array like the frame; got {_describe(out)}")
        out[...] = frame
    paste_face(out, swapped_crop, frame_from_crop, crop_mask, settings, original_crop)
    return out


def composite_face(
    frame: np.ndarray,
    landmarks: np.ndarray,
    crop_from_frame: np.ndarray,
    swapped_crop: np.ndarray,
    settings: CompositeSettings,
    learned_mask: np.ndarray | None = None,
    original_crop: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One face, start to end: mask from landmarks (and learned mask), colour, paste-back.

    landmarks: (K, 2) frame pixels (`Face.landmarks`).
    crop_from_frame: the (2, 3) matrix that made the model's (S, S) input crop.
    swapped_crop, learned_mask, original_crop, out: as for `face_mask` / `composite`.
    Returns (new frame (H, W, 3) uint8, crop mask (S, S) float32 used).
    """
    m = _check_affine("crop_from_frame", crop_from_frame)
    swapped_crop = _check_crop("swapped_crop", swapped_crop)
    size = swapped_crop.shape[0]
    mask = face_mask(landmarks_to_crop(_check_landmarks_frame(landmarks), m), size, settings, learned_mask)
    frame_from_crop = cv2.invertAffineTransform(m)
    return composite(frame, swapped_crop, frame_from_crop, mask, settings, original_crop, out), mask


def _check_landmarks_frame(landmarks: object) -> np.ndarray:
    if not isinstance(landmarks, np.ndarray) or landmarks.ndim != 2 or landmarks.shape[1] != 2:
        raise InputError(f"composite: landmarks must be a (68, 2) or (5, 2) array of frame pixels; got {_describe(landmarks)}")
    return landmarks


# ---------------------------------------------------------------- stability

class TemporalBlend:
    """Exponential moving average of successive arrays per tracked face, to damp flicker.

    `strength` in [0, 1): the weight of the past; 0 disables blending. Call
    `update(track_id, frame_index, crop)` once per face per frame with the
    swapped crop (or mask) in aligned-crop space; a track whose previous update
    was not the immediately preceding frame (track lost, skipped frame) starts
    afresh, and `reset()` clears everything (call it at cuts). State lives in
    the instance, one per render job; nothing is global.
    """

    def __init__(self, strength: float) -> None:
        if not isinstance(strength, (int, float)) or isinstance(strength, bool) or not 0.0 <= strength < 1.0:
            raise InputError(f"temporal blend: strength must be a number in [0, 1); got {strength!r}")
        self.strength = float(strength)
        self._state: dict[object, tuple[int, np.ndarray]] = {}

    def reset(self) -> None:
        """Forget every track (a cut)."""
        self._state.clear()

    def update(self, track_id: object, frame_index: int, crop: np.ndarray) -> np.ndarray:
        """Blend `crop` (any float32 array, e.g. (S, S, 3) in [0, 1]) with this track's history."""
        # Drop tracks not seen on the previous frame: they are lost, and keeping them grows memory.
        self._state = {k: v for k, v in self._state.items() if v[0] >= frame_index - 1}
        prev = self._state.get(track_id)
        if prev is None or prev[0] != frame_index - 1 or prev[1].shape != crop.shape or self.strength == 0.0:
            blended = crop.astype(np.float32, copy=True)
        else:
            s = np.float32(self.strength)
            blended = s * prev[1] + (np.float32(1.0) - s) * crop
        self._state[track_id] = (frame_index, blended)
        return blended


def mask_flicker(frames: Sequence[np.ndarray], masks: Sequence[np.ndarray] | np.ndarray) -> float:
    """Mean absolute frame-to-frame difference inside the mask, in 8-bit levels.

    frames: N >= 2 frames, (H, W, 3) uint8. masks: one (H, W) float mask in
    [0, 1] for all frames, or N of them. Each consecutive pair is weighted by the
    smaller of its two masks; the result is the weighted mean |f[t] - f[t-1]|
    over all pairs and channels. On a still source this is the flicker the
    swap adds (0 means perfectly stable).
    """
    if len(frames) < 2:
        raise InputError(f"mask_flicker: needs at least 2 frames; got {len(frames)}")
    single = isinstance(masks, np.ndarray) and masks.ndim == 2
    if not single and len(masks) != len(frames):
        raise InputError(f"mask_flicker: got {len(frames)} frames but {len(masks)} masks; give one mask or one per frame")
    total, weight = 0.0, 0.0
    for t in range(1, len(frames)):
        a, b = frames[t - 1], frames[t]
        if a.shape != b.shape or a.ndim != 3:
            raise InputError(f"mask_flicker: frame {t} has shape {b.shape}, frame {t - 1} has {a.shape}; all must be the same (H, W, 3)")
        w = masks if single else np.minimum(masks[t - 1], masks[t])  # type: ignore[index]
        if w.shape != a.shape[:2]:
            raise InputError(f"mask_flicker: mask shape {w.shape} does not match frame shape {a.shape[:2]}")
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16)).mean(axis=2)
        total += float((diff * w).sum())
        weight += float(w.sum())
    if weight <= 0.0:
        raise InputError("mask_flicker: the masks are empty; nothing to measure")
    return total / weight
