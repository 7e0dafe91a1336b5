"""Temporal stability: a per-track moving average of swapped crops, and the in-mask flicker measure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from renderer.errors import InputError

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
