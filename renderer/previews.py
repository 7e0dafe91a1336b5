"""What a training run shows of itself: the preview grid and the loss curve, drawn with cv2.

    preview_grid(model, faces_a, faces_b)   rows A, A->A, A->B, B, B->B, B->A
    loss_curve_image(history)               both halves' losses, log scale
"""

from __future__ import annotations


import cv2
import numpy as np
import torch
from torch import Tensor

from renderer.errors import ModelError
from renderer.model import SwapAutoencoder


def _to_tile(t: Tensor, size: int) -> np.ndarray:
    img = (t[:3].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return cv2.resize(img, (size, size), interpolation=cv2.INTER_NEAREST if img.shape[0] < size else cv2.INTER_AREA)


@torch.no_grad()
def preview_grid(model: SwapAutoencoder, faces_a: Tensor, faces_b: Tensor, tile: int = 128) -> np.ndarray:
    """(rows*tile, label+cols*tile, 3) uint8 RGB. Rows: A, A->A, A->B, B, B->B, B->A; faces (n, 3, S, S) uint8."""
    was_training = model.training
    model.eval()
    a, b = faces_a.float() / 255, faces_b.float() / 255
    rows = [("A", a), ("A->A", model(a, "a")), ("A->B", model(a, "b")),
            ("B", b), ("B->B", model(b, "b")), ("B->A", model(b, "a"))]
    model.train(was_training)
    label_w = 80
    lines = []
    for name, batch in rows:
        tiles = [_to_tile(t, tile) for t in batch]
        label = np.full((tile, label_w, 3), 32, np.uint8)
        cv2.putText(label, name, (6, tile // 2 + 6), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
        lines.append(np.concatenate([label, *tiles], 1))
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0))) for line in lines]
    return np.concatenate(lines, 0)


def loss_curve_image(history: list[tuple[float, float]], size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """(H, W, 3) uint8 RGB plot of both losses (log scale, smoothed), drawn with cv2."""
    w, h = size
    img = np.full((h, w, 3), 255, np.uint8)
    m = 40
    cv2.rectangle(img, (m, 10), (w - 10, h - m), (0, 0, 0), 1)
    if len(history) >= 2:
        arr = np.log10(np.maximum(np.asarray(history, np.float64), 1e-6))
        win = max(1, len(arr) // 100)
        arr = np.stack([np.convolve(arr[:, i], np.ones(win) / win, mode="valid") for i in (0, 1)], 1)
        lo, hi = arr.min(), arr.max() + 1e-9
        xs = m + (np.arange(len(arr)) / max(1, len(arr) - 1)) * (w - 10 - m)
        for i, colour in ((0, (220, 60, 40)), (1, (40, 90, 220))):
            ys = (h - m) - (arr[:, i] - lo) / (hi - lo) * (h - m - 10)
            pts = np.stack([xs, ys], 1).round().astype(np.int32)
            cv2.polylines(img, [pts], False, colour, 1, cv2.LINE_AA)
        cv2.putText(img, f"{10**hi:.4f}", (2, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{10**lo:.4f}", (2, h - m), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, f"loss A (red), B (blue), log scale; {len(history)} iterations", (m, h - 12),
                cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return img


def png_bytes(rgb: np.ndarray) -> bytes:
    """(H, W, 3) uint8 RGB as PNG bytes."""
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ModelError(f"could not encode a {rgb.shape} image as PNG")
    return buf.tobytes()

