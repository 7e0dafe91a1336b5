"""Training augmentation from the original deepfakes recipe, batched in torch.

Convention: images are (B, 3, S, S) float32 RGB in [0, 1]; masks are (B, C, S, S)
float32 in [0, 1]. Every random draw comes from the explicit `torch.Generator`
passed in, so a seed (and a saved generator state) reproduces a run exactly.

Per sample: a random similarity (rotation, zoom, shift, horizontal flip) applied
identically to the input, the target and the target's masks; a random grid warp
applied to the *input only* (the network must learn to undo it: this is what makes
the swap work); and a colour jitter in CIE Lab applied to input and target alike.
Both transforms are one `F.affine_grid` + `F.grid_sample` per batch, no Python loops
over pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class AugmentConfig:
    """rotation: max degrees; zoom, shift: max fractions of the crop; flip: probability;
    warp: std of the 5x5 control-point offsets in normalised [-1, 1] units (0.05 ~ the
    original's 5 px on a 160 px face); lab_l, lab_ab: max Lab shifts (L in 0..100);
    occluders: probability that a face gets a random occluder pasted over its input, cut out
    of its target masks (`renderer.occluders`; needs `learn_mask`), 0 = off.
    """

    rotation: float = 10.0
    zoom: float = 0.05
    shift: float = 0.05
    flip: float = 0.5
    warp: float = 0.05
    lab_l: float = 8.0
    lab_ab: float = 6.0
    occluders: float = 0.0


# ---------------------------------------------------------------- masks from landmarks

def face_masks(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(N, K, 2) float landmarks in pixels of a size x size crop -> (N, 2, size, size) uint8 {0, 1}.

    Channel 0: the face, from `renderer.faces.align.mask_polygon` (68 points: hull with the
    brows lifted to the forehead line; 5 points: the mean-face ellipse), the same polygon the
    compositor blends with. Channel 1: eyes and mouth (68 points: their dilated polygons;
    5 points: discs around each point), weighted extra in the loss.
    """
    from renderer.faces.align import mask_polygon

    n, k = landmarks.shape[:2]
    out = np.zeros((n, 2, size, size), np.uint8)
    r = max(1, int(round(size * 0.04)))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    for i in range(n):
        pts = landmarks[i].astype(np.float64)
        hull_img = np.zeros((size, size), np.uint8)
        feat = np.zeros((size, size), np.uint8)
        cv2.fillPoly(hull_img, [np.round(mask_polygon(pts)).astype(np.int32)], 1)
        if k >= 68:
            for a, b in ((36, 42), (42, 48), (48, 60)):
                cv2.fillConvexPoly(feat, cv2.convexHull(np.round(pts[a:b]).astype(np.int32)), 1)
            feat = cv2.dilate(feat, kernel)
        else:
            for p in pts:
                cv2.circle(feat, (int(round(p[0])), int(round(p[1]))), 2 * r, 1, -1)
        out[i, 0] = hull_img
        out[i, 1] = feat & hull_img
    return out


# ---------------------------------------------------------------- colour (sRGB <-> CIE Lab, D65)

_RGB2XYZ = torch.tensor([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]])
_WHITE = torch.tensor([0.950456, 1.0, 1.088754])


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """(B, 3, H, W) sRGB [0, 1] -> (B, 3, H, W) Lab (L 0..100, a/b about -128..127)."""
    lin = torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).clamp_min(0) ** 2.4, rgb / 12.92)
    xyz = torch.einsum("ij,bjhw->bihw", _RGB2XYZ.to(rgb), lin) / _WHITE.to(rgb).view(1, 3, 1, 1)
    f = torch.where(xyz > 0.008856, xyz.clamp_min(1e-12) ** (1 / 3), 7.787 * xyz + 16 / 116)
    return torch.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], 1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """Inverse of `rgb_to_lab`, clamped to [0, 1]."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], 1)
    xyz = torch.where(f > 0.206893, f**3, (f - 16 / 116) / 7.787) * _WHITE.to(lab).view(1, 3, 1, 1)
    lin = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB2XYZ).to(lab), xyz).clamp(0, 1)
    rgb = torch.where(lin > 0.0031308, 1.055 * lin.clamp_min(1e-12) ** (1 / 2.4) - 0.055, 12.92 * lin)
    return rgb.clamp(0, 1)


# ---------------------------------------------------------------- geometry

def _uniform(n: int, limit: float, gen: torch.Generator) -> Tensor:
    return (torch.rand(n, generator=gen) * 2 - 1) * limit


def random_similarity(n: int, cfg: AugmentConfig, gen: torch.Generator) -> Tensor:
    """(n, 2, 3) `F.affine_grid` matrices (output -> input, normalised coordinates):
    rotation +-cfg.rotation deg, zoom +-cfg.zoom, shift +-cfg.shift (fraction of the crop), flip."""
    ang = _uniform(n, math.radians(cfg.rotation), gen)
    scale = 1 + _uniform(n, cfg.zoom, gen)
    shift = torch.stack([_uniform(n, cfg.shift, gen), _uniform(n, cfg.shift, gen)], 1) * 2  # crop width is 2
    flip = torch.where(torch.rand(n, generator=gen) < cfg.flip, -1.0, 1.0)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip, cos
    theta[:, :, 2] = shift
    return theta


def random_warp_offsets(n: int, size: int, std: float, gen: torch.Generator) -> Tensor:
    """(n, size, size, 2) smooth offsets for a sampling grid: 5x5 Gaussian control points, bicubic upsampled.

    The border control points stay put (as in the original), so the warp bends the face, not the frame."""
    ctrl = torch.randn(n, 2, 5, 5, generator=gen) * std
    ctrl[:, :, 0, :] = 0
    ctrl[:, :, -1, :] = 0
    ctrl[:, :, :, 0] = 0
    ctrl[:, :, :, -1] = 0
    dense = F.interpolate(ctrl, size=(size, size), mode="bicubic", align_corners=True)
    return dense.permute(0, 2, 3, 1)


def augment_batch(
    faces: Tensor, masks: Tensor, cfg: AugmentConfig, gen: torch.Generator
) -> tuple[Tensor, Tensor, Tensor]:
    """One augmented training batch.

    faces: (B, 3, S, S) uint8 RGB (on the training device); masks: (B, C, S, S) uint8 {0, 1}.
    Returns (warped input (B, 3, S, S), target (B, 3, S, S), target masks (B, C, S, S)),
    float32 in [0, 1] on the faces' device. Random numbers are drawn on the CPU from
    `gen` (device-independent streams), then moved.
    """
    b, _, s, _ = faces.shape
    dev = faces.device
    theta = random_similarity(b, cfg, gen)
    warp = random_warp_offsets(b, s, cfg.warp, gen) if cfg.warp > 0 else None
    dl = _uniform(b, cfg.lab_l, gen)
    da = _uniform(b, cfg.lab_ab, gen)
    db = _uniform(b, cfg.lab_ab, gen)

    img = faces.float() / 255.0
    if cfg.lab_l > 0 or cfg.lab_ab > 0:
        lab = rgb_to_lab(img) + torch.stack([dl, da, db], 1).to(dev).view(b, 3, 1, 1)
        img = lab_to_rgb(lab)
    grid = F.affine_grid(theta.to(dev), [b, 3, s, s], align_corners=False)  # (B, S, S, 2)
    both = torch.cat([img, masks.float()], 1)
    target_all = F.grid_sample(both, grid, mode="bilinear", padding_mode="border", align_corners=False)
    target, target_masks = target_all[:, :3], target_all[:, 3:]
    if warp is not None:
        warped = F.grid_sample(img, grid + warp.to(dev), mode="bilinear", padding_mode="border", align_corners=False)
    else:
        warped = target
    return warped.clamp(0, 1), target.clamp(0, 1), target_masks.clamp(0, 1)
