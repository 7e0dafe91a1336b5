"""Occlusion augmentation: random occluders pasted over training faces, so the learned mask learns to leave them out.

Convention as `renderer.augment`: images (B, 3, S, S) float32 RGB in [0, 1], masks (B, C, S, S)
float32 in [0, 1]; every random number comes from the explicit `torch.Generator`, so a seed
reproduces a run.

With probability `AugmentConfig.occluders` a face gets one occluder: a shape (ellipse, rotated
rectangle, a thin bar like a microphone boom or a glasses arm, a polygon like a hand's
outline) filled with a texture (a flat colour, smooth noise, or a patch cut from photos with
no face in them: `occluder_photos`, e.g. kphotoalbum's snow/skagen/sunset). It is pasted over
the *input* only: the RGB target stays the clean face (the decoder learns to draw the face
behind it, which is also what lets `occlusion: reconstruction` see it), and every target mask
loses the occluder (mask target = face mask x (1 - occluder)), which teaches the learned-mask
channel to exclude it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from renderer.errors import InputError

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
SHAPES = ("ellipse", "rectangle", "bar", "polygon")


def occluder_bank(paths: Sequence[Path | str], size: int) -> Tensor | None:
    """(N, 3, 2*size, 2*size) uint8 texture tiles cut from the photos in `paths` (files or folders), or
    None when none are given. Each photo is scaled so its short side is 2*size and centre-cropped.

    InputError names a path that is missing, holds no photo, or is not readable as an image.
    """
    files: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in PHOTO_SUFFIXES)
            if not found:
                raise InputError(f"occluder_photos: folder {p} holds no photos (allowed: {', '.join(PHOTO_SUFFIXES)})")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"occluder_photos: {p} does not exist (give photo files or folders of photos without faces)")
    if not files:
        return None
    side = 2 * size
    tiles = []
    for f in files:
        bgr = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if bgr is None:
            raise InputError(f"occluder_photos: {f} is not a readable image (allowed: jpg, png, ...)")
        h, w = bgr.shape[:2]
        k = side / min(h, w)
        img = cv2.resize(bgr, (max(side, round(w * k)), max(side, round(h * k))), interpolation=cv2.INTER_AREA)
        y0, x0 = (img.shape[0] - side) // 2, (img.shape[1] - side) // 2
        tiles.append(cv2.cvtColor(img[y0:y0 + side, x0:x0 + side], cv2.COLOR_BGR2RGB))
    return torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()


def shape_alpha(kind: str, size: int, r: Tensor) -> np.ndarray:
    """(size, size) float32 [0, 1] anti-aliased alpha of one shape; r: 8 uniform [0, 1) numbers."""
    s = float(size)
    cx, cy = s * (0.2 + 0.6 * float(r[0])), s * (0.25 + 0.65 * float(r[1]))  # biased to the lower face (mouth, chin)
    ang = 180.0 * float(r[2])
    big = s * (0.15 + 0.3 * float(r[3]))
    small = s * (0.08 + 0.2 * float(r[4]))
    shift = 4
    k = float(1 << shift)
    img = np.zeros((size, size), np.uint8)
    centre = (int(cx * k), int(cy * k))
    if kind == "ellipse":
        cv2.ellipse(img, centre, (int(big * k / 2), int(small * k / 2)), ang, 0, 360, 255, -1, cv2.LINE_AA, shift)
    elif kind in ("rectangle", "bar"):
        w, h = (big, small) if kind == "rectangle" else (s * (0.5 + 0.6 * float(r[3])), s * (0.03 + 0.05 * float(r[4])))
        box = cv2.boxPoints(((cx, cy), (w, h), ang))
        cv2.fillConvexPoly(img, np.round(box * k).astype(np.int32), 255, cv2.LINE_AA, shift)
    else:
        n = 3 + int(4 * float(r[5]))
        angles = np.sort(np.linspace(0, 2 * math.pi, n, endpoint=False) + float(r[6]) * 2 * math.pi / n)
        radii = big / 2 * (0.6 + 0.4 * np.cos(angles * (1 + 3 * float(r[7]))) ** 2)
        pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
        cv2.fillPoly(img, [np.round(pts * k).astype(np.int32)], 255, cv2.LINE_AA, shift)
    return img.astype(np.float32) / 255.0


def texture(kind: int, size: int, bank: Tensor | None, gen: torch.Generator) -> Tensor:
    """(3, size, size) float32 [0, 1]: 0 flat colour, 1 smooth noise, 2 a photo patch (flat colour without a bank)."""
    if kind == 2 and bank is not None and len(bank):
        i = int(torch.randint(len(bank), (1,), generator=gen))
        side = bank.shape[-1]
        y, x = (int(v) for v in torch.randint(side - size + 1, (2,), generator=gen))
        return bank[i, :, y:y + size, x:x + size].float() / 255.0
    if kind == 1:
        coarse = torch.rand(1, 3, 4, 4, generator=gen)
        return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)[0].clamp(0, 1)
    return torch.rand(3, 1, 1, generator=gen).expand(3, size, size)


def paste_occluders(warped: Tensor, masks: Tensor, probability: float, gen: torch.Generator,
                    bank: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Paste one random occluder over each face with `probability`; return (input, masks) with it.

    warped: (B, 3, S, S) float32 [0, 1] augmented inputs; masks: (B, C, S, S) float32 [0, 1] target
    masks (all channels lose the occluder). Nothing changes (and nothing is drawn from `gen`)
    when probability is 0. Random numbers are drawn on the CPU from `gen`, then moved to the
    inputs' device.
    """
    if probability <= 0:
        return warped, masks
    b, _, s, _ = warped.shape
    draws = torch.rand(b, 11, generator=gen)  # per face: [apply, shape, texture, 8 shape numbers]
    alpha = np.zeros((b, 1, s, s), np.float32)
    textures = torch.zeros(b, 3, s, s)
    for i in range(b):
        if float(draws[i, 0]) >= probability:
            continue
        kind = SHAPES[min(len(SHAPES) - 1, int(float(draws[i, 1]) * len(SHAPES)))]
        alpha[i, 0] = shape_alpha(kind, s, draws[i, 3:])
        textures[i] = texture(min(2, int(float(draws[i, 2]) * 3)), s, bank, gen)
    a = torch.from_numpy(alpha).to(warped.device)
    out = warped * (1 - a) + textures.to(warped.device) * a
    return out, masks * (1 - a)


__all__ = ["PHOTO_SUFFIXES", "SHAPES", "occluder_bank", "paste_occluders", "shape_alpha", "texture"]
