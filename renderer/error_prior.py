"""The expected-error prior of `occlusion: reconstruction` (issue 17): where decoder A misses on its own faces.

The reconstruction mask flags a pixel as occluded where the source decoder's rebuild disagrees with
the crop. Some regions are hard for any decoder (eyes, mouth, teeth, the hairline): there a held-out
pose disagrees without anything in front of the face, and the mask kept the source's own eyes and
mouth. The prior is the per-pixel rebuild error decoder A makes on its own training faces (faceset A),
in aligned-crop pixels at the model's input size:

    prior[y, x] = mean over faceset A of rebuild_error(crop, decoder_a(encoder(crop)))[y, x]

computed once (`doppel error-prior MODEL_DIR --a FACESET_A`) and stored with the model
(MODEL_DIR/error_prior.safetensors, tensor "prior" (S, S) float32; the card's `error_prior:` section
names the faceset, its SHA-256 and the file's). At convert time the rebuild error is divided by the
prior over its own median on the face (`renderer.composite.occlusion.occluded_by_error`), so a region
the decoder always gets 3x worse needs 3x the disagreement to count as occluded. A model without the
section swaps exactly as before; `occlusion_prior: off` in a preset ignores it.

Retraining the model (`doppel train --resume`) drops the prior with the upscaler: compute it again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from renderer.errors import InputError, ModelError

PRIOR_NAME = "error_prior.safetensors"


@dataclass(frozen=True)
class ErrorPriorCard:
    """The model card's `error_prior:` section."""

    decoder: str  # "a": the decoder whose own-face error it holds (the source decoder of an a2b swap)
    size: int  # S: the prior is (S, S), the model's input size
    faceset: str  # path of the faceset it was measured on
    faceset_sha256: str  # SHA-256 of that faceset's faceset.json
    faces: int
    median: float  # median of the prior over the face masks of those crops (mean |error| over RGB, 0..1)
    weights_sha256: str  # of error_prior.safetensors
    swap_weights_sha256: str  # the swap weights whose decoder made the rebuilds
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(data: Any) -> "ErrorPriorCard":
        if not isinstance(data, dict):
            raise ValueError(f"error_prior must be a mapping, got {data!r}")
        return ErrorPriorCard(**data)


def compute_error_prior(model: Any, faces: Any, masks: Any, decoder: str = "a", batch: int = 16) -> tuple[np.ndarray, float]:
    """(S, S) float32 mean rebuild error of `decoder` over `faces`, and its median inside the face masks.

    model: a SwapAutoencoder (eval); faces: (N, 3, S, S) uint8 tensor (`train_data.load_training_faces`);
    masks: (N, 2, S, S) uint8, channel 0 the face mask. The error is `occlusion.rebuild_error`'s
    (mean |crop - rebuilt| over RGB, blurred sigma S/64), the same measure the mask thresholds."""
    import torch

    from renderer.composite.occlusion import rebuild_error

    n, _, s, _ = faces.shape
    total = np.zeros((s, s), np.float64)
    with torch.inference_mode():
        for lo in range(0, n, batch):
            x = faces[lo:lo + batch].float().div_(255.0)  # (b, 3, S, S)
            y = model(x, decoder)[:, :3].float().clamp_(0, 1)
            xs, ys = x.permute(0, 2, 3, 1).numpy(), y.permute(0, 2, 3, 1).numpy()
            for crop, rebuilt in zip(xs, ys):
                total += rebuild_error(crop, rebuilt)
    prior = (total / max(n, 1)).astype(np.float32)
    face = masks[:, 0].numpy().max(axis=0) > 0
    median = float(np.median(prior[face])) if face.any() else float(np.median(prior))
    return prior, median


def prior_bytes(prior: np.ndarray) -> bytes:
    import torch
    from safetensors.torch import save as st_save

    return st_save({"prior": torch.from_numpy(np.ascontiguousarray(prior, np.float32))},
                   metadata={"format": "doppel-error-prior"})


def load_error_prior(folder: Path, card: ErrorPriorCard, swap_weights_sha256: str) -> np.ndarray:
    """The (S, S) float32 prior in a model's files folder, checked against its card section.
    ModelError when the file is missing, corrupt, of another shape, or from other swap weights."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as np_load

    from renderer.checkpoint import read_beside_model

    redo = "compute it again with `doppel error-prior`"
    blob = read_beside_model(folder, PRIOR_NAME, card.weights_sha256, "an error_prior", redo)
    if swap_weights_sha256 and card.swap_weights_sha256 != swap_weights_sha256:
        raise ModelError(f"model {folder}: the error prior was measured with other swap weights ({redo})")
    try:
        prior = np_load(blob)["prior"]
    except (SafetensorError, KeyError) as err:
        raise ModelError(f"model {folder}: {PRIOR_NAME} holds no 'prior' tensor ({err}; {redo})") from err
    if prior.shape != (card.size, card.size) or prior.dtype != np.float32:
        raise ModelError(f"model {folder}: {PRIOR_NAME} is {prior.shape} {prior.dtype}, the card says "
                         f"({card.size}, {card.size}) float32 ({redo})")
    return prior


def add_error_prior(model_dir: Path, faceset_a: Path, threads: int | None = None) -> ErrorPriorCard:
    """Measure decoder A's own-face error on FACESET_A and save it with MODEL_DIR (one atomic generation)."""
    import torch

    from renderer.atomic import sha256_file
    from renderer.checkpoint import save_beside_model
    from renderer.faceset import INDEX_NAME, check_faceset_for_model, load_faceset
    from renderer.model import load_model
    from renderer.modelcard import card_text, now_utc
    from renderer.train_data import load_training_faces

    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads {threads}: allowed: an integer >= 1")
        torch.set_num_threads(threads)
    model, card = load_model(model_dir, "cpu")
    fs = load_faceset(faceset_a)
    cfg = card.config
    check_faceset_for_model(fs, cfg, faceset_a, "give person A's faceset the model was trained on")
    size = int(cfg.input_size)
    faces, masks = load_training_faces(fs, size)
    prior, median = compute_error_prior(model, faces, masks, "a")
    blob = prior_bytes(prior)
    pcard = ErrorPriorCard(decoder="a", size=size, faceset=str(Path(faceset_a).resolve()),
                           faceset_sha256=sha256_file(Path(faceset_a) / INDEX_NAME), faces=len(fs),
                           median=round(median, 6), weights_sha256=hashlib.sha256(blob).hexdigest(),
                           swap_weights_sha256=card.weights_sha256, created=now_utc())
    card = dataclasses.replace(card, error_prior=pcard)
    save_beside_model(model_dir, {PRIOR_NAME: blob}, card_text(card).encode("utf-8"),
                      f"{card.iterations:08d}-error-prior")
    return pcard


__all__ = ["ErrorPriorCard", "PRIOR_NAME", "add_error_prior", "compute_error_prior", "load_error_prior", "prior_bytes"]
