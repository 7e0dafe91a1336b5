"""Paste-back: warp a swapped face into its frame box, colour-match and blend it, and say which pixels changed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from renderer.colour import transfer_colour
from renderer.composite.grain import (RING, ROUNDING_ONLY, add_detail, grain_levels, haar_hh, match_grain,
                                     ring_region)
from renderer.composite.masks import face_mask, landmarks_to_crop
from renderer.composite.occlusion import apply_holdout
from renderer.composite.settings import CompositeSettings, _check_affine, _check_crop, _check_frame, _check_mask, _describe
from renderer.errors import InputError

if TYPE_CHECKING:
    from renderer.colour_management import ColourManagement

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


def paste_box(crop_mask: np.ndarray, frame_from_crop: np.ndarray, frame_hw: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The frame box (x0, y0, x1, y1), exclusive end, that `paste_face` may write for this mask and
    matrix (None when the warped mask misses the frame): what a deep source reads at depth."""
    return _warp_box(crop_mask, _check_affine("frame_from_crop", frame_from_crop), frame_hw)


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
    """The frame's own pixels under the crop, (size, size, 3) float32 in [0, 1] (uint8 or float32 frame)."""
    crop_from_frame = cv2.invertAffineTransform(frame_from_crop)
    crop = cv2.warpAffine(frame, crop_from_frame, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if frame.dtype == np.float32:
        return np.clip(crop, 0.0, 1.0)
    return crop.astype(np.float32) * np.float32(1.0 / 255.0)


@dataclass(frozen=True)
class Patch:
    """Where `paste_face` changed a frame: the box (x0, y0) .. (x0 + w, y0 + h), exclusive end, and
    `changed`, (h, w) bool, True at every pixel whose value changed. Pixels outside it kept theirs.

    For the matte pass (`renderer.media.MatteWriter`): `alpha`, (h, w) float32 in [0, 1], the
    warped mask the blend used (a pixel can change only where it is > 0), and `face`, (h, w, 3)
    float32 RGB in 0..255, the unblended face it was blended with (colour-matched, warped; after
    seamlessClone for poisson), kept only when `paste_face(..., plate=True)`: under colour management
    it costs one more conversion of the box."""

    x0: int
    y0: int
    changed: np.ndarray
    alpha: np.ndarray | None = None
    face: np.ndarray | None = None

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
    colour: ColourManagement | None = None,
    seed: Sequence[int] | int = 0,
    holdout: np.ndarray | None = None,
    plate: bool = False,
    noise_after: tuple[np.ndarray, float] = ROUNDING_ONLY,
) -> Patch | None:
    """Blend one swapped face into `frame` in place; the working part of `composite`.

    frame: (H, W, 3) uint8 RGB, written inside the face's box only; or float32 RGB (0..1 = black
        ..white, e.g. a deep source's face box from `media.read_box`, frame_from_crop then mapping
        into that box), blended and kept in float32: no 8-bit step anywhere inside the mask.
    swapped_crop, frame_from_crop, crop_mask, original_crop: as for `composite`.
    holdout: (h, w) float32 [0, 1] hold-out matte over the same pixels as `frame` (the whole frame,
        or the deep box `frame` is): blend alpha *= (1 - holdout), so a pixel it covers fully is
        left as it was.
    colour: managed colour (`renderer.colour_management`): `frame` is in its source space,
        `swapped_crop` and `original_crop` in its working space; the face's box is converted
        to the working space, colour-matched and blended there, and converted back. Pixels
        where the warped mask is 0 are never written, so no conversion reaches them.
    seed: the grain's seed when settings.grain == "match" (the swap stage passes the absolute
        frame index and track, so chunked renders give the same pixels). Grain is measured on
        `frame` as given (its source space; for a deep box, within that box only).
    noise_after: 8-bit path, grain match: the noise levels the face picks up after the blend on its
        way into the output frame (`grain.output_noise` of the frame's coded format; default: the
        rounding to 8 bits alone, an RGB frame's), taken off the grain added.
    Returns the Patch of pixels that changed (None when the warped mask misses the frame).

    Cost does not grow with the frame, and at frame pixels only with the face's box: the mask,
    colour statistics and colour transfer work at crop resolution (S x S); the box sees one
    float32 warp of the face and one of the mask (OpenCV, multithreaded), one blend
    (`cv2.blendLinear`) and a per-pixel "changed" test. Rounding is to nearest (ties to even),
    so a pixel can differ by at most one code value from a float64 `base + a * (face - base)`
    rounded half up; where the warped mask is 0 the frame is never written.
    """
    frame = _check_frame(frame, deep=True)
    swapped_crop = _check_crop("swapped_crop", swapped_crop)
    size = swapped_crop.shape[0]
    crop_mask = _check_mask("crop_mask", crop_mask, size)
    m = _check_affine("frame_from_crop", frame_from_crop)
    box = _warp_box(crop_mask, m, frame.shape[:2])
    if box is None:
        return None
    if settings.colour != "none":
        if original_crop is not None:
            target = _check_crop("original_crop", original_crop)
        else:
            target = crop_of_frame(frame, m, size)
            target = np.clip(colour.to_working(target), 0.0, 1.0) if colour is not None else target
        if target.shape != swapped_crop.shape:
            raise InputError(f"composite: original_crop shape {target.shape} differs from swapped_crop shape {swapped_crop.shape}")
        swapped_crop = transfer_colour(swapped_crop, target, crop_mask, settings.colour)
    swapped_crop = add_detail(swapped_crop, settings.detail)

    x0, y0, x1, y1 = box
    box_from_crop = _box_from_crop(m, box)
    dsize = (x1 - x0, y1 - y0)
    alpha = cv2.warpAffine(crop_mask, box_from_crop, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if holdout is not None:
        alpha = apply_holdout(alpha, _check_holdout(holdout, frame.shape[:2])[y0:y1, x0:x1])
    # The source's grain around the face, in 8-bit levels (a deep frame is 0..1).
    levels = _ring_levels(frame, crop_mask, m, box, colour) if settings.grain == "match" else None
    if frame.dtype == np.float32:
        if levels is not None:
            levels = (levels[0] * 255.0, levels[1] * 255.0)
        return _paste_deep(frame[y0:y1, x0:x1], swapped_crop, box_from_crop, alpha, settings, x0, y0, colour,
                           levels, seed, plate)
    # Scale to 0..255 at crop resolution (S x S), not over the box: warping is linear.
    face = cv2.warpAffine(swapped_crop * np.float32(255.0), box_from_crop, dsize, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    region = frame[y0:y1, x0:x1]  # a view: written below, only where the face changed it
    inside = cv2.compare(alpha, 0.0, cv2.CMP_GT)  # (h, w) uint8 0/255
    base = region.astype(np.float32)
    if colour is not None:  # the box into the working space, 0..255 like the face
        base = colour.to_working(base * np.float32(1.0 / 255.0)) * np.float32(255.0)
    if settings.blend == "poisson" and cv2.countNonZero(inside):
        face_u8 = cv2.convertScaleAbs(face)
        face = _poisson(cv2.convertScaleAbs(base), face_u8, alpha).astype(np.float32)
    if levels is not None:
        face = match_grain(face, alpha, levels, seed, noise_after)
    # dst = (face * a + base * (1 - a)) / (1 + 1e-5): one multithreaded pass; the 1e-5 moves a
    # value by at most 0.003 of a code value.
    blended = cv2.blendLinear(face, base, alpha, 1.0 - alpha)
    if colour is not None:  # back to the source space; only pixels inside the mask are kept below
        blended = colour.to_source(blended * np.float32(1.0 / 255.0)) * np.float32(255.0)
    result = cv2.convertScaleAbs(blended)  # round to nearest, saturate to uint8
    diff = cv2.split(cv2.absdiff(result, region))
    changed = cv2.bitwise_and(cv2.max(cv2.max(diff[0], diff[1]), diff[2]), inside)  # (h, w) uint8, 0 = same
    masked_copy(region, result, changed)
    if not plate:
        return Patch(x0, y0, changed > 0, alpha)
    if colour is not None:  # the matte pass's plate is laid over the source: in the source's space
        face = colour.to_source(face * np.float32(1.0 / 255.0)) * np.float32(255.0)
    return Patch(x0, y0, changed > 0, alpha, face)


def _check_holdout(holdout: object, frame_hw: tuple[int, int]) -> np.ndarray:
    if not isinstance(holdout, np.ndarray) or holdout.shape != frame_hw or holdout.dtype != np.float32:
        raise InputError(f"composite: holdout must be a {frame_hw} float32 matte in [0, 1] (the frame's size); "
                         f"got {_describe(holdout)}")
    return holdout


def _paste_deep(region: np.ndarray, swapped_crop: np.ndarray, box_from_crop: np.ndarray, alpha: np.ndarray,
                settings: CompositeSettings, x0: int, y0: int, colour: ColourManagement | None = None,
                levels: tuple[np.ndarray, float] | None = None, seed: Sequence[int] | int = 0,
                plate: bool = False) -> Patch:
    """`paste_face` on a float32 box (a view, written where the face changed it): the same warp and
    blend as the 8-bit path, with no rounding to code values.

    Poisson blending: OpenCV's seamlessClone works in uint8 only, so it runs on the 8-bit face and
    box, and only what it adds (the smooth membrane that matches the face to its surroundings) is
    taken from it, blurred a little to remove its 8-bit steps, and added to the float face: the
    face's own detail keeps its depth. With `colour`, the blend runs on the box converted to the
    working space, and the result is converted back (as in the 8-bit path).
    """
    dsize = (region.shape[1], region.shape[0])
    base = colour.to_working(region) if colour is not None else region
    face = cv2.warpAffine(swapped_crop, box_from_crop, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.compare(alpha, 0.0, cv2.CMP_GT)  # (h, w) uint8 0/255
    if settings.blend == "poisson" and cv2.countNonZero(inside):
        face_u8 = cv2.convertScaleAbs(face, alpha=255.0)
        region_u8 = cv2.convertScaleAbs(np.clip(base, 0.0, 1.0), alpha=255.0)
        cloned = _poisson(region_u8, face_u8, alpha)
        offset = cv2.GaussianBlur(cloned.astype(np.float32) - face_u8.astype(np.float32), (0, 0), 2.0)
        face = face + offset * np.float32(1.0 / 255.0)
    if levels is not None:  # grain in 8-bit levels, on the face scaled to 0..255 and back
        face = match_grain(face * np.float32(255.0), alpha, levels, seed) * np.float32(1.0 / 255.0)
    # base + alpha * (face - base), (h, w, 3) float32: OpenCV's per-element ops are ~4x numpy's here.
    blended = cv2.add(base, cv2.multiply(cv2.merge([alpha, alpha, alpha]), cv2.subtract(face, base)))
    if colour is not None:
        blended = colour.to_source(blended)
    # The largest channel difference per pixel; cv2.reduce over (h*w, 3) is ~14x faster than numpy's max(axis=2).
    diff = cv2.reduce(cv2.absdiff(blended, region).reshape(-1, 3), 1, cv2.REDUCE_MAX).reshape(alpha.shape)
    changed = (diff > 0) & (inside > 0)  # (h, w) bool
    masked_copy(region, blended, changed.view(np.uint8))
    if not plate:
        return Patch(x0, y0, changed, alpha)
    face = colour.to_source(face) if colour is not None else face  # the matte pass's plate, source space
    return Patch(x0, y0, changed, alpha, face * np.float32(255.0))  # face in 0..255, as the 8-bit path's


def _ring_levels(frame: np.ndarray, crop_mask: np.ndarray, frame_from_crop: np.ndarray,
                 box: tuple[int, int, int, int],
                 colour: ColourManagement | None = None) -> tuple[np.ndarray, float] | None:
    """The source's grain levels (`grain.grain_levels`) in a ring just outside the warped mask,
    RING x the box's larger side wide, capped by the levels of the face being replaced (a ring over
    textured background reads edges as grain); None when the ring is too small to measure.
    With `colour` the levels are measured on the region converted to the working space, where
    the grain is added (a log picture's grain is several times smaller in code values)."""
    x0, y0, x1, y1 = box
    h, w = frame.shape[:2]
    margin = max(2, int(round(RING * max(x1 - x0, y1 - y0))))
    big = (max(0, x0 - margin), max(0, y0 - margin), min(w, x1 + margin), min(h, y1 + margin))
    alpha_big = cv2.warpAffine(crop_mask, _box_from_crop(frame_from_crop, big), (big[2] - big[0], big[3] - big[1]),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    source = frame[big[1]:big[3], big[0]:big[2]]
    if colour is not None:  # read only: the frame itself is never converted here
        scale = np.float32(255.0 if frame.dtype == np.uint8 else 1.0)
        source = colour.to_working(source.astype(np.float32) / scale) * scale
    hh = haar_hh(source)
    ring = grain_levels(source, ring_region(alpha_big, margin), hh)
    face = grain_levels(source, alpha_big > 0.5, hh)
    if ring is None or face is None:
        return ring
    return np.minimum(ring[0], face[0]), min(ring[1], face[1])


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


