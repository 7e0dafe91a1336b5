"""The model side of a swap: a loaded model and the decoder it renders through."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from renderer.swap.settings import MODEL_BATCH


class SwapModel:
    """A loaded swap model and the decoder it renders through.

    `__call__` takes (N, S, S, 3) uint8 aligned crops and returns ((N, S, S, 3) float32
    RGB in [0, 1], (N, S, S) float32 learned masks or None). Batches are always run at
    `MODEL_BATCH` rows (zero-padded), so a face's output never depends on how many other
    faces shared its batch.
    """

    def __init__(self, model_dir: Path, direction: str, device: str | None = None) -> None:
        from renderer.model import load_model, pick_device

        self.device = pick_device(device)
        self.model, self.card = load_model(model_dir, self.device)
        self.config = self.card.config
        self.size = int(self.config.input_size)
        self.decoder = "b" if direction == "a2b" else "a"
        self.source_decoder = "a" if self.decoder == "b" else "b"  # the person in the frame, rebuilt
        self.learns_mask = bool(self.config.learn_mask)
        # B's face upscaler (`renderer.upscale`), when the card has one and the swap decodes to B:
        # it learned B's detail, so a b2a swap has none.
        self.upscaler = None
        if self.card.upscaler is not None and self.decoder == "b":
            from renderer.checkpoint import model_files
            from renderer.upscale import load_upscaler

            self.upscaler = load_upscaler(model_files(model_dir), self.card.upscaler, self.card.weights_sha256,
                                          self.device)

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, S, S, 3) uint8 crops -> the swap, (N, S, S, 3) float32 in [0, 1], and the learned
        mask (N, S, S) float32, or None when the model learns none."""
        return self._decode(crops, (self.decoder,))[0]

    def swap_and_rebuild(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray | None]:
        """(swapped, learned mask, rebuilt, rebuilt's learned mask): the swap as `__call__`, plus
        the same crops through the source person's own decoder (A->A for a2b), for finding
        occluders (`renderer.composite.occlusion`). One encoder pass feeds both decoders:
        the cost over `__call__` is one decoder pass. Shapes as for `__call__`."""
        (swapped, learned), (rebuilt, rebuilt_mask) = self._decode(crops, (self.decoder, self.source_decoder))
        return swapped, learned, rebuilt, rebuilt_mask

    def _decode(self, crops: np.ndarray, names: tuple[str, ...]) -> list[tuple[np.ndarray, np.ndarray | None]]:
        """The crops through the encoder once and through each named decoder, in fixed-shape batches
        of MODEL_BATCH (zero-padded), so a face's output does not depend on the faces beside it."""
        n = len(crops)
        outs = [(np.empty((n, self.size, self.size, 3), np.float32),
                 np.empty((n, self.size, self.size), np.float32) if self.learns_mask else None) for _ in names]
        decoders = {"a": self.model.decoder_a, "b": self.model.decoder_b}
        with torch.inference_mode():
            for lo in range(0, n, MODEL_BATCH):
                part = crops[lo:lo + MODEL_BATCH]
                batch = np.zeros((MODEL_BATCH, self.size, self.size, 3), np.uint8)
                batch[: len(part)] = part
                x = torch.from_numpy(batch).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)  # (B, 3, S, S)
                z = self.model.encoder(x)  # (B, C, 8, 8)
                for (rgb, mask), name in zip(outs, names):
                    y = decoders[name](z).float().cpu()  # (B, 3|4, S, S) in [0, 1]
                    rgb[lo:lo + len(part)] = y[: len(part), :3].permute(0, 2, 3, 1).numpy()
                    if mask is not None:
                        mask[lo:lo + len(part)] = y[: len(part), 3].numpy()
        return outs


