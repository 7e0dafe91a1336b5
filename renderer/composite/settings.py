"""Composite settings and the checks every compositing entry point runs on its arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from renderer.colour import COLOUR_METHODS
from renderer.composite.grain import DETAIL_MAX, GRAIN_MODES
from renderer.errors import InputError, closest

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
    grain: "off", or "match": measure the source's grain just outside the mask and add the
        missing grain inside (`renderer.composite.grain`).
    detail: unsharp-mask strength applied to the swapped crop before paste-back, 0 to 2 (0: off).
    """

    mask: str = "hull"
    erode: float = 0.02
    feather: float = 0.06
    forehead: float = 0.0
    colour: str = "rct"
    blend: str = "alpha"
    grain: str = "off"
    detail: float = 0.0

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("mask", self.mask, MASK_KINDS),
            ("colour", self.colour, tuple(COLOUR_METHODS)),
            ("blend", self.blend, BLEND_METHODS),
            ("grain", self.grain, GRAIN_MODES),
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
            ("detail", self.detail, 0.0, DETAIL_MAX),
        ):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
                raise InputError(
                    f"composite settings: {key}={value!r} is not allowed; allowed: a number from {lo} to {hi} "
                    + ("(an unsharp-mask strength)" if key == "detail" else "(a fraction of the crop side)")
                )


# ---------------------------------------------------------------- validation

def _describe(arr: object) -> str:
    if isinstance(arr, np.ndarray):
        return f"shape {arr.shape} dtype {arr.dtype}"
    return type(arr).__name__


def _check_frame(frame: object, deep: bool = False) -> np.ndarray:
    """A (H, W, 3) uint8 RGB frame, or with `deep` also a float32 one (a deep box, `media.read_box`)."""
    ok = isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3
    if not ok or not (frame.dtype == np.uint8 or (deep and frame.dtype == np.float32)):  # type: ignore[union-attr]
        allowed = "uint8 or float32" if deep else "uint8"
        raise InputError(f"composite: frame must be a (H, W, 3) {allowed} RGB array; got {_describe(frame)}")
    return frame  # type: ignore[return-value]


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


