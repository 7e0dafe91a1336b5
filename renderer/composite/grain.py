"""Detail and grain match: make the pasted face as sharp and as noisy as the frame around it.

The model's face is a 64 px (or 128 px) decoder output spread over a face box of a few hundred
frame pixels: smooth, and without the sensor grain or compression noise every real frame has.
Two steps close the gap, both only where the blend mask is above zero:

    detail   unsharp mask of the swapped crop at crop resolution, before the warp:
             crop + strength * (crop - blur(crop, 1 crop px)); boosts what the decoder did
             resolve, which the warp then spreads (cheap: S x S, not the box).
    grain    the noise level of the source measured in a ring of frame pixels just outside
             the mask, the face's own level measured inside it, and Gaussian grain of the
             difference (in quadrature) added inside, in frame pixels.

Convention: box images are (h, w, 3) float32 in 0..255 (paste-back's working values), alpha
is (h, w) float32 in [0, 1]. Noise levels are standard deviations in 8-bit levels.

Noise level (`noise_sigma`): the finest Haar diagonal band HH = (a - b - c + d) / 2 over the
2x2 blocks lying wholly inside the region; for white Gaussian noise of std s it has std s exactly.
Like Donoho's median(|HH|) / 0.6745 the estimate ignores the blocks that straddle an edge, but
as a trimmed RMS (the 90 % of blocks with the smallest |HH|, rescaled by the truncated normal's
variance, 0.623): on 8-bit video with grain of one or two levels the median of |HH| can only take
a few values (0, 0.5, 1, ...), and the trimmed RMS averages over them.

Grain colour: each channel's level and the level of their mean (grey) are both measured; the
added grain is one field shared by the three channels (luma grain, as 4:2:0 video has) plus one
field per channel (chroma grain), mixed so that every channel's and the grey level match.

Determinism: the grain is a window of a fixed 512 px table of Gaussian noise, at an offset drawn
by `numpy.random.default_rng(seed)` with the seed built by the caller from the absolute frame index
and the track, so frame N gets the same grain in a chunked render as in an unchunked one (see
`renderer.swap`'s chunk-invariance note), and successive frames get different grain.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import cv2
import numpy as np

GRAIN_MODES = ("off", "match")
DETAIL_MAX = 2.0
_TRIM = 0.9  # share of the smallest |HH| kept
_TRIM_VAR = 0.6223  # E[x^2 | |x| < z_0.95] for x ~ N(0, 1): 1 - 2 * 1.645 * phi(1.645) / 0.9
_MIN_BLOCKS = 32  # fewer 2x2 blocks than this: no usable estimate
MAX_BLOCKS = 20_000  # blocks sampled for one estimate
_ROUNDING = 12 ** -0.5  # std of rounding to whole 8-bit levels
NOISE_TILE = 512  # side of the grain table; a face box larger than this sees it repeat, far apart
RING = 0.15  # measuring ring around the mask, as a fraction of the face box's larger side


def haar_hh(img: np.ndarray) -> np.ndarray:
    """(h // 2, w // 2, C) float32 finest Haar diagonal band (a - b - c + d) / 2 of every 2x2 block."""
    x = np.asarray(img)
    if x.ndim == 2:
        x = x[..., None]
    h2, w2 = x.shape[0] - x.shape[0] % 2, x.shape[1] - x.shape[1] % 2
    a, b = x[0:h2:2, 0:w2:2].astype(np.float32), x[0:h2:2, 1:w2:2].astype(np.float32)
    c, d = x[1:h2:2, 0:w2:2].astype(np.float32), x[1:h2:2, 1:w2:2].astype(np.float32)
    return (a - b - c + d) * np.float32(0.5)


def _hh_in(hh: np.ndarray, region: np.ndarray) -> np.ndarray | None:
    """(N, C) HH values of the blocks wholly inside `region` (h, w bool), at most about MAX_BLOCKS of
    them (an even spread: the estimate needs thousands, a 1080p face box has a hundred thousand)."""
    bh, bw = hh.shape[:2]
    r = region[:2 * bh, :2 * bw]
    keep = r[0::2, 0::2] & r[0::2, 1::2] & r[1::2, 0::2] & r[1::2, 1::2]
    idx = np.flatnonzero(keep)
    if idx.size < _MIN_BLOCKS:
        return None
    step = max(1, idx.size // MAX_BLOCKS)
    return hh.reshape(-1, hh.shape[2])[idx[::step]]


def _hh(img: np.ndarray, region: np.ndarray) -> np.ndarray | None:
    return _hh_in(haar_hh(img), region) if min(region.shape) >= 2 else None


def _trimmed_sigma(hh: np.ndarray) -> np.ndarray:
    """(C,) noise std from (N, C) HH values: RMS of the smallest _TRIM of |HH|, rescaled."""
    k = max(1, int(_TRIM * hh.shape[0]))
    sq = np.partition(np.square(hh, dtype=np.float64), k - 1, axis=0)[:k]
    return np.sqrt(sq.mean(axis=0) / _TRIM_VAR)


def noise_sigma(img: np.ndarray, region: np.ndarray) -> np.ndarray | None:
    """Per-channel noise level of `img` inside `region`, (C,) float64 8-bit levels, or None.

    img: (h, w) or (h, w, C) float32/uint8; region: (h, w) bool. Only 2x2 blocks wholly inside
    `region` count; None when fewer than 32 such blocks exist.
    """
    hh = _hh(img, region)
    return None if hh is None else _trimmed_sigma(hh)


def grain_levels(img: np.ndarray, region: np.ndarray, hh: np.ndarray | None = None) -> tuple[np.ndarray, float] | None:
    """(per-channel levels (3,), grey level) of an (h, w, 3) image inside `region`, or None.
    Grey is the mean of the channels; HH is linear, so its band is the mean of theirs.
    hh: `haar_hh(img)` when the caller measures several regions of one image."""
    sel = _hh_in(haar_hh(img) if hh is None else hh, region) if min(region.shape) >= 2 else None
    if sel is None:
        return None
    return _trimmed_sigma(sel), float(_trimmed_sigma(sel.mean(axis=1, keepdims=True))[0])


def grain_mix(need: np.ndarray, need_grey: float) -> tuple[float, np.ndarray]:
    """(shared std a, per-channel stds b (3,)) so a shared field plus independent fields give
    channel variances `need**2` and grey variance `need_grey**2`.

    grey = mean of the channels: var = a^2 + sum(b^2) / 9 with b_c^2 = need_c^2 - a^2, so
    a^2 = 1.5 * (need_grey^2 - sum(need^2) / 9), clipped to [0, min(need^2)].
    """
    v = np.maximum(np.asarray(need, np.float64), 0.0) ** 2
    a2 = float(np.clip(1.5 * (max(need_grey, 0.0) ** 2 - v.sum() / 9.0), 0.0, float(v.min())))
    return float(np.sqrt(a2)), np.sqrt(np.maximum(v - a2, 0.0))


def add_detail(crop: np.ndarray, strength: float) -> np.ndarray:
    """Unsharp mask of an (S, S, 3) float32 [0, 1] crop: crop + strength * (crop - blur_1px(crop)), clipped."""
    if strength <= 0.0:
        return crop
    blur = cv2.GaussianBlur(crop, (0, 0), 1.0, borderType=cv2.BORDER_REFLECT)
    return np.clip(crop + np.float32(strength) * (crop - blur), 0.0, 1.0)


def ring_region(alpha_big: np.ndarray, margin: int) -> np.ndarray:
    """(h, w) bool: pixels where the mask is 0 but within `margin` pixels of where it is not."""
    outside = (alpha_big <= 0).astype(np.uint8)
    dist = cv2.distanceTransform(outside, cv2.DIST_L2, 3)  # 0 inside the mask
    return (outside > 0) & (dist <= margin)


ROUNDING_ONLY = (np.full(3, _ROUNDING), _ROUNDING / np.sqrt(3.0))  # `output_noise` of an 8-bit RGB frame


def output_noise(round_trip: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, float]:
    """The noise levels (per channel, grey) a blended float face picks up before it is seen in a frame:
    the paste's rounding to 8 bits, then `round_trip` (uint8 RGB -> the frame's coded format -> RGB,
    `media.round_trip_rgb`: its quantisation and chroma subsampling). Measured with the grain's own
    estimator on a smooth field sent that way (its own high frequencies are ~0, so what the band sees
    is the noise). For 8-bit RGB this is ROUNDING_ONLY (0.31 levels by this estimator, uniform rounding
    not being Gaussian); 8-bit 4:2:0 YUV 0.39 a channel, 4:4:4 0.57-0.74 (its chroma's quantisation at full
    resolution)."""
    rng = np.random.default_rng(0x51)
    field = cv2.GaussianBlur(rng.random((256, 256, 3), dtype=np.float32), (0, 0), 12.0)
    lo, hi = field.min(axis=(0, 1)), field.max(axis=(0, 1))
    field = np.float32(40.0) + (field - lo) / (hi - lo) * np.float32(170.0)  # 40..210: no clipping anywhere
    seen = round_trip(cv2.convertScaleAbs(field)).astype(np.float32)
    levels = grain_levels(seen - field, np.ones(field.shape[:2], bool))
    assert levels is not None  # 128 x 128 blocks
    return levels


def match_grain(face: np.ndarray, alpha: np.ndarray, source_levels: tuple[np.ndarray, float],
                seed: Sequence[int] | int, noise_after: tuple[np.ndarray, float] = ROUNDING_ONLY) -> np.ndarray:
    """Add grain to `face` (h, w, 3) float32 0..255 so that inside `alpha` (> 0.5) its noise level
    reaches `source_levels` (from `grain_levels` of the frame's ring) once the face is in the frame.
    Returns a new array.

    The face's own level is measured first and only the difference (in quadrature) is added; a
    face already as noisy as its surroundings gets nothing. Grain is drawn for the whole box
    (deterministic in `seed`); the caller's blend keeps it inside the mask.
    noise_after: the levels the face picks up after this, on its way into the frame (`output_noise`):
    the paste's rounding to 8 bits (the default), and the coded format's quantisation. The source's
    measured level holds these once already, so they are taken off what is added: on a clean 4:2:0
    source (grain ~0.7 levels) leaving out the format's share made the face 1.26x as grainy.
    """
    inner = alpha > 0.5
    own = grain_levels(face, inner)
    per, grey = source_levels
    if own is None:
        own = (np.zeros(3), 0.0)
    after, after_grey = noise_after
    need = np.sqrt(np.maximum(per ** 2 - own[0] ** 2 - np.asarray(after, np.float64) ** 2, 0.0))
    need_grey = float(np.sqrt(max(grey ** 2 - own[1] ** 2 - float(after_grey) ** 2, 0.0)))
    shared, indep = grain_mix(need, need_grey)
    if shared <= 0.0 and not np.any(indep > 0.0):
        return face
    oy, ox = np.random.default_rng(seed).integers(0, NOISE_TILE, 2)
    noise = _window(_noise_tile(), int(oy), int(ox), *alpha.shape)  # (h, w, 4): shared, R, G, B fields
    mix = np.zeros((3, 4), np.float32)
    mix[:, 0] = shared
    mix[[0, 1, 2], [1, 2, 3]] = indep
    return cv2.add(face, cv2.transform(noise, mix))


@functools.lru_cache(maxsize=1)
def _noise_tile() -> np.ndarray:
    """(NOISE_TILE, NOISE_TILE, 4) float32 standard normal, from a fixed seed: a constant table, the
    same in every process. Each face's grain is a window of it at an offset drawn from its seed (a
    wrap-around window; drawing fresh normals for a large face box cost several times the blend)."""
    return np.random.default_rng(0x6A41).standard_normal((NOISE_TILE, NOISE_TILE, 4), dtype=np.float32)


def _window(tile: np.ndarray, oy: int, ox: int, h: int, w: int) -> np.ndarray:
    """(h, w, C) window of the periodic extension of `tile`, starting at (oy, ox)."""
    size = tile.shape[0]
    out = np.empty((h, w, tile.shape[2]), tile.dtype)
    y = 0
    while y < h:
        ty = (oy + y) % size
        dy = min(size - ty, h - y)
        x = 0
        while x < w:
            tx = (ox + x) % size
            dx = min(size - tx, w - x)
            out[y:y + dy, x:x + dx] = tile[ty:ty + dy, tx:tx + dx]
            x += dx
        y += dy
    return out


__all__ = ["DETAIL_MAX", "GRAIN_MODES", "RING", "ROUNDING_ONLY", "add_detail", "grain_levels", "grain_mix",
           "match_grain", "noise_sigma", "output_noise", "ring_region"]
