"""Training data: the two facesets checked to match, their faces loaded once as tensors, the held-out
split, and the measures taken on it (held-out SSIM, a collapsed decoder)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor

from renderer.augment import face_masks
from renderer.errors import InputError
from renderer.faceset import Faceset, load_faceset
from renderer.loss import ssim
from renderer.model import SwapAutoencoder


def open_facesets(a: Path, b: Path) -> tuple[Faceset, Faceset]:
    """Both facesets, checked to be non-empty and aligned alike."""
    fa, fb = load_faceset(a), load_faceset(b)
    for role, fs in (("A", fa), ("B", fb)):
        if len(fs) == 0:
            raise InputError(f"faceset {role} ({fs.root}) holds no faces; extract more with `doppel extract`")
    for what in ("crop_size", "coverage", "landmark_points"):
        va, vb = getattr(fa, what), getattr(fb, what)
        if va != vb:
            raise InputError(
                f"facesets were aligned differently: {what} is {va} in A ({fa.root}) but {vb} in B ({fb.root}); "
                f"re-extract one of them with the other's settings"
            )
    if (fa.colour_space, fa.colour_config) != (fb.colour_space, fb.colour_config):
        raise InputError(
            f"facesets were cut in different colour spaces: A ({fa.root}) is {fa.colour_label}, B ({fb.root}) is "
            f"{fb.colour_label}; a model learns in one space: re-extract one of them with "
            f"`doppel extract --colour-space SRC --working-space SPACE` so both are in the same space"
        )
    return fa, fb


def load_training_faces(fs: Faceset, size: int) -> tuple[Tensor, Tensor]:
    """(N, 3, size, size) uint8 RGB faces and (N, 2, size, size) uint8 masks, resized once."""
    images = fs.load_images()  # (N, S, S, 3) uint8
    interp = cv2.INTER_AREA if fs.crop_size > size else cv2.INTER_CUBIC
    small = np.stack([cv2.resize(im, (size, size), interpolation=interp) for im in images])
    lms = fs.landmarks_in_crop() * (size / fs.crop_size)
    masks = face_masks(lms, size)
    return torch.from_numpy(small).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(masks)


VALIDATE_EVERY = 25  # iterations between held-out measurements when --holdout is set


def split_holdout(faces: Tensor, masks: Tensor, every: int) -> tuple[Tensor, Tensor, Tensor]:
    """(training faces, their masks, held-out faces): every `every`-th face (indices every-1, 2*every-1, ...)
    is held out; none when `every` is 0 or the faceset has fewer faces than `every`."""
    n = len(faces)
    if not every or n < every:
        return faces, masks, faces[:0]
    held = torch.arange(n, device=faces.device) % every == every - 1
    return faces[~held], masks[~held], faces[held]


def held_out_ssim(model: SwapAutoencoder, decoder: Literal["a", "b"], faces: Tensor, chunk: int = 64) -> float | None:
    """Mean SSIM of `decoder` rebuilding `faces` ((N, 3, S, S) uint8, unaugmented); None when N is 0."""
    if not len(faces):
        return None
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(faces), chunk):
            x = faces[i:i + chunk].float() / 255
            total += float(ssim(model(x, decoder)[:, :3].float(), x).sum())
    model.train(was_training)
    return total / len(faces)


def collapsed_output(pred: Tensor, inputs: Tensor) -> bool:
    """True when a decoder answered clearly different faces with the same saturated picture (every pixel
    equal to 1e-4 across the batch, and on average within 0.05 of 0 or 1): its sigmoid no longer passes
    a gradient, so training cannot recover (a too-high lr does this). A fresh network, whose outputs sit
    near 0.5, is not flagged."""
    if len(inputs) < 2:
        return False
    rgb = pred[:, :3].detach().float()
    # the output test first: it fails on every healthy step, so the other two are rarely computed
    return (float(rgb.std(0).amax()) < 1e-4 and float((rgb - 0.5).abs().mean()) > 0.45
            and float(inputs.std(0).amax()) > 0.05)
