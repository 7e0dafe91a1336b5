"""Occlusion: what stands in front of the face (a hand, a microphone, glasses frames, hair) stays in front.

Convention: crops are (S, S, 3) float32 RGB in [0, 1], masks (S, S) float32 in [0, 1], all in
aligned-crop pixels (see `renderer.composite`). A *keep* mask is 1 where the swapped face may
be pasted and 0 over an occluder; the compositor multiplies its blend mask by it.

Modes (preset key `occlusion`):
  auto            (the default) learned when the model has an occluder segmenter, else reconstruction
                  (`OcclusionSettings.resolved`): on held-out footage the segmenter kept more of the
                  occluders and held back less of a clean face (bench/results/quality.md).
  off             the blend mask is the face mask alone.
  reconstruction  at convert time the crop also goes through the decoder of the person in the
                  frame (A->A for an a2b swap; one more decoder pass, the encoder pass is shared).
                  That decoder only ever learned to draw that face, so where its rebuild disagrees
                  with the crop far beyond the face's typical error (median over the face mask),
                  something else is there. The disagreement is cleaned (open, close, small specks
                  dropped), grown a little and feathered, and excluded. With the model's expected-error
                  prior (`renderer.error_prior`: decoder A's mean rebuild error on its own faces) the
                  error is first divided by the prior over its median on the face, so regions the
                  decoder always rebuilds worse (eyes, mouth) need more disagreement (`occlusion_prior`).
  learned         the model's occluder segmenter (`renderer.segmenter`, trained by `doppel
                  train-segmenter` on the model's own faces with occluders pasted over them): a
                  small U-Net that reads the crop itself, so no decoder pass. Where it sees an
                  occluder inside the face mask is excluded; cleaned and feathered the same way.
                  A model without one but trained with `learn_mask` uses the source decoder's
                  learned-mask channel instead (which did not learn occluders in 40 CPU minutes,
                  bench/results/occlusion.md).
  matte           only the external hold-out matte (below).
Whatever the mode, a hold-out matte given for the shot (`occlusion_matte`, or `holdout=` on a
FACESWAP marker) is always respected, in frame pixels: blend alpha *= (1 - holdout)
(`renderer.composite.paste.paste_face`), so a pixel the matte covers fully is never changed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from renderer.composite.masks import _erode_feather
from renderer.errors import InputError, closest

OCCLUSION_MODES = ("auto", "learned", "reconstruction", "matte", "off")
PRIOR_MODES = ("auto", "off")
# The prior's relative value is floored here: a pixel the decoder rebuilt almost perfectly on every
# training face must not make the noise of a new frame an occluder.
PRIOR_MIN = 0.25


@dataclass(frozen=True)
class OcclusionSettings:
    """How occluders are found in a crop.

    mode: one of OCCLUSION_MODES ("auto" is resolved per model by `resolved`).
    threshold: reconstruction: a pixel is occluded where its rebuild error exceeds this many
        times the median error over the face mask ...
    floor: ... and at least this absolute error (mean over RGB, 0..1), so a nearly perfect
        rebuild does not flag its noise.
    clean: radius of the morphological open/close, fraction of the crop side (removes specks
        and thin disagreements at eyes and lips, fills pinholes in an occluder).
    grow: the occluded region is dilated by this fraction of the crop side (its soft edge).
    feather: the keep mask ramps 0 -> 1 over this fraction of the crop side, outside the grown
        occluder, so the occluder's own pixels keep weight 0.
    prior: reconstruction: "auto" normalises the rebuild error by the model's expected-error prior
        when the model has one (`doppel error-prior`), "off" ignores it (the mask as before the prior).
    """

    mode: str = "auto"  # learned with a segmenter, else reconstruction: bench/results/occlusion.md, quality.md
    threshold: float = 2.0
    floor: float = 0.08
    clean: float = 0.03
    grow: float = 0.02
    feather: float = 0.03
    prior: str = "auto"

    def __post_init__(self) -> None:
        if self.prior not in PRIOR_MODES:
            raise InputError(f"occlusion_prior={self.prior!r} is not allowed; allowed: {', '.join(PRIOR_MODES)}")
        if self.mode not in OCCLUSION_MODES:
            raise InputError(f"occlusion={self.mode!r} is not allowed; allowed: {', '.join(OCCLUSION_MODES)}"
                             f"{closest(str(self.mode), OCCLUSION_MODES)}")
        for key, value, lo, hi in (("threshold", self.threshold, 1.0, 100.0), ("floor", self.floor, 0.0, 1.0),
                                   ("clean", self.clean, 0.0, 0.25), ("grow", self.grow, 0.0, 0.25),
                                   ("feather", self.feather, 0.0, 0.25)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not lo <= value <= hi:
                raise InputError(f"occlusion settings: {key}={value!r} is not allowed; allowed: a number from {lo} to {hi}")


    def resolved(self, has_segmenter: bool) -> OcclusionSettings:
        """These settings with "auto" made concrete for a model: learned when it has an occluder
        segmenter, else reconstruction; any other mode as it is."""
        if self.mode != "auto":
            return self
        return dataclasses.replace(self, mode="learned" if has_segmenter else "reconstruction")


def _disc(radius_px: float) -> np.ndarray | None:
    r = int(round(radius_px))
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)) if r >= 1 else None


def rebuild_error(crop: np.ndarray, rebuilt: np.ndarray) -> np.ndarray:
    """(S, S) float32 per-pixel error, mean |crop - rebuilt| over RGB, lightly blurred (sigma S/64)
    so single noisy pixels (compression, the rebuild's blur) do not decide."""
    if crop.dtype == rebuilt.dtype == np.float32:
        # np.abs(crop - rebuilt).mean(axis=2), summed in the same order from channel planes:
        # 0.04 ms on a 64 px crop, numpy's mean over the 3-wide last axis 0.11.
        r, g, b = cv2.split(cv2.absdiff(np.ascontiguousarray(crop), np.ascontiguousarray(rebuilt)))
        err = (r + g + b) / np.float32(3)
    else:
        err = np.abs(crop - rebuilt).mean(axis=2).astype(np.float32)
    return cv2.GaussianBlur(err, (0, 0), sigmaX=max(0.5, crop.shape[0] / 64.0))


def normalise_by_prior(err: np.ndarray, prior: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """err / (prior / median(prior over `inside`)), the relative prior floored at PRIOR_MIN; the prior
    (P, P) float32 is resized to err's (S, S) when the crop size differs from the model's input."""
    if prior.shape != err.shape:
        prior = cv2.resize(prior, (err.shape[1], err.shape[0]), interpolation=cv2.INTER_LINEAR)
    med = float(np.median(prior[inside]))
    if not med > 0:
        return err
    return (err / np.maximum(prior / np.float32(med), np.float32(PRIOR_MIN))).astype(np.float32)


def occluded_by_error(crop: np.ndarray, rebuilt: np.ndarray, face: np.ndarray, settings: OcclusionSettings,
                      prior: np.ndarray | None = None) -> np.ndarray:
    """(S, S) bool: where the rebuild disagrees with the crop beyond the robust threshold, inside `face`.

    crop, rebuilt: (S, S, 3) float32 [0, 1]; face: (S, S) float32 blend mask (> 0 is the face).
    The threshold is max(threshold x median error over the unoccluded face, floor): relative to
    how well this model rebuilds this face, so a well trained and a barely trained model flag
    alike. The median is taken again without the pixels flagged so far (twice): a hand over a
    third of the face raises the plain median enough to hide half of the hand.
    prior: the model's expected-error prior (`renderer.error_prior`), or None: today's test.
    """
    err = rebuild_error(crop, rebuilt)
    inside = face > 0
    if not inside.any():
        return np.zeros(face.shape, bool)
    if prior is not None:
        err = normalise_by_prior(err, prior, inside)
    values = err[inside]
    limit = max(settings.threshold * float(np.median(values)), settings.floor)
    for _ in range(2):
        below = values[values <= limit]
        if below.size == 0:
            break
        limit = max(settings.threshold * float(np.median(below)), settings.floor)
    return (err > limit) & inside


def occluded_by_learned(learned: np.ndarray, face: np.ndarray) -> np.ndarray:
    """(S, S) bool: inside `face`, where the source decoder's learned mask says "not face" (< 0.5)."""
    return (learned < 0.5) & (face > 0)


def keep_mask(occluded: np.ndarray, settings: OcclusionSettings) -> np.ndarray:
    """(S, S) float32 keep mask from a binary occluded map: open, close, drop specks, grow, feather.

    Specks are components under (2 x clean)^2 of the crop: a lone disagreement the open missed.
    """
    size = occluded.shape[0]
    occ = occluded.astype(np.uint8)
    disc = _disc(settings.clean * size)
    if disc is not None:
        occ = cv2.morphologyEx(occ, cv2.MORPH_OPEN, disc)
        occ = cv2.morphologyEx(occ, cv2.MORPH_CLOSE, disc)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(occ, connectivity=8)
    min_area = (2 * settings.clean * size) ** 2
    for k in range(1, n):
        if stats[k, cv2.CC_STAT_AREA] < min_area:
            occ[labels == k] = 0
    grow = _disc(settings.grow * size)
    if grow is not None and occ.any():
        occ = cv2.dilate(occ, grow)
    if not occ.any():
        return np.ones(occluded.shape, np.float32)
    # _erode_feather ramps inside the region it is given: give it the non-occluded part, so the
    # ramp lies outside the occluder and every occluder pixel keeps exactly 0.
    return _erode_feather(1.0 - occ.astype(np.float32), 0.0, settings.feather * size)


def occlusion_keep(
    settings: OcclusionSettings,
    face: np.ndarray,
    crop: np.ndarray | None = None,
    rebuilt: np.ndarray | None = None,
    learned_source: np.ndarray | None = None,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """The (S, S) float32 keep mask for one face under `settings.mode` (all ones for off / matte).

    face: the blend mask (`face_mask`); crop: the frame's crop (S, S, 3) float32 [0, 1];
    rebuilt: the source decoder's rebuild of it (reconstruction); learned_source: (learned) where the
    face is visible, 1 - the segmenter's occluder probability, or the source decoder's learned mask; prior: the model's expected-error prior (reconstruction; used
    unless settings.prior is "off").
    """
    mode = settings.mode
    if mode == "auto":
        raise InputError("occlusion=auto is resolved per model before a keep mask is made (OcclusionSettings.resolved)")
    if mode == "reconstruction":
        if crop is None or rebuilt is None:
            raise InputError("occlusion=reconstruction needs the crop and its rebuild by the source decoder")
        used = prior if settings.prior == "auto" else None
        return keep_mask(occluded_by_error(crop, rebuilt, face, settings, used), settings)
    if mode == "learned":
        if learned_source is None:
            raise InputError("occlusion=learned needs the face map of an occluder segmenter (`doppel train-segmenter`) "
                             "or of a model trained with a learned mask; none was given (allowed here: reconstruction, "
                             "matte, off)")
        return keep_mask(occluded_by_learned(learned_source, face), settings)
    return np.ones(face.shape, np.float32)


def apply_holdout(alpha: np.ndarray, holdout: np.ndarray) -> np.ndarray:
    """alpha * (1 - holdout), both (h, w) float32 in [0, 1] over the same frame box."""
    return alpha * (np.float32(1.0) - holdout)


__all__ = [
    "OCCLUSION_MODES", "OcclusionSettings", "PRIOR_MODES", "apply_holdout", "keep_mask",
    "normalise_by_prior", "occluded_by_error", "occluded_by_learned", "occlusion_keep", "rebuild_error",
]
