"""The training loss: mask-weighted L1 + SSIM of a decoder's output against the unwarped target.

Convention: images (B, C, H, W) float32 in [0, 1]; masks (B, 2, S, S) [face hull, eyes+mouth] in {0, 1}.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class LossConfig:
    """Loss = weighted L1 + ssim * (1 - weighted SSIM) [+ mask * L1 of the mask channel].

    Per-pixel weight = 1 + face * hull + features * (eyes and mouth), normalised to mean 1.
    """

    ssim: float = 0.5
    face: float = 2.0
    features: float = 3.0
    mask: float = 0.5


@functools.lru_cache(maxsize=8)
def _blur_matrix(n: int, window: int, sigma: float = 1.5) -> Tensor:
    """(n, n) matrix M with M @ v = 1-D Gaussian blur of v (window taps, reflect-padded edges).

    Blurring as two small matrix products (M_h @ img @ M_w^T) instead of a depthwise
    convolution: the same numbers (float32 rounding), 3.4x less CPU time forward and backward
    for a lite training step's 16 faces at 64x64 (bench/results/train.md).
    """
    x = torch.arange(window, dtype=torch.float64) - window // 2
    taps = torch.exp(-(x**2) / (2 * sigma**2))
    taps = taps / taps.sum()
    rows = torch.arange(n)[:, None].expand(n, window)
    cols = rows + torch.arange(window)[None, :] - window // 2  # source index per tap
    cols = cols.abs()  # reflect at 0 ...
    cols = torch.where(cols > n - 1, 2 * (n - 1) - cols, cols)  # ... and at n - 1
    m = torch.zeros(n, n, dtype=torch.float64)
    m.index_put_((rows.reshape(-1), cols.reshape(-1)), taps.repeat(n), accumulate=True)
    return m.float()


def ssim_map(x: Tensor, y: Tensor, window: int = 11) -> Tensor:
    """(B, C, H, W) in [0, 1] -> (B, C, H, W) local SSIM (Gaussian window, sigma 1.5, reflect edges)."""
    c, h, w = x.shape[1:]
    win = min(window, min(h, w) // 2 * 2 - 1)
    blur_h, blur_w = _blur_matrix(h, win).to(x), _blur_matrix(w, win).to(x)
    moments = blur_h @ torch.cat([x, y, x * x, y * y, x * y], dim=1) @ blur_w.t()  # (B, 5C, H, W)
    mx, my, exx, eyy, exy = moments.split(c, dim=1)
    sxx, syy, sxy = exx - mx * mx, eyy - my * my, exy - mx * my
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def ssim(x: Tensor, y: Tensor) -> Tensor:
    """Mean SSIM per image: (B, C, H, W) in [0, 1] -> (B,)."""
    return ssim_map(x, y).mean(dim=(1, 2, 3))


def swap_loss(pred: Tensor, target: Tensor, masks: Tensor, cfg: LossConfig) -> Tensor:
    """pred (B, 3|4, S, S), target (B, 3, S, S), masks (B, 2, S, S) [hull, eyes+mouth] -> scalar."""
    w = 1 + cfg.face * masks[:, :1] + cfg.features * masks[:, 1:2]
    w = w / w.mean(dim=(2, 3), keepdim=True)  # (B, 1, S, S), mean 1 per image
    rgb = pred[:, :3].float()
    loss = (w * (rgb - target).abs()).mean()
    if cfg.ssim > 0:
        loss = loss + cfg.ssim * (1 - (w * ssim_map(rgb, target)).mean())
    if pred.shape[1] == 4 and cfg.mask > 0:
        loss = loss + cfg.mask * (pred[:, 3:].float() - masks[:, :1]).abs().mean()
    return loss
