"""A training run's state beside its weights: the model config it builds (a new model's from the
preset and the facesets, or the `--init` model's, checked against it, with the lineage entry for the
new card), the optimizer state saved with every checkpoint (Adam moments, the training RNG, the loss
history) and the loss summary of the model card. Split from `renderer.train`, which runs the loop."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from renderer.atomic import sha256_file
from renderer.checkpoint import model_files
from renderer.errors import ModelError
from renderer.faceset import Faceset
from renderer.model import ModelConfig, SwapAutoencoder
from renderer.modelcard import InitRef, LossSummary

if TYPE_CHECKING:
    from renderer.train import TrainConfig


def optimizer_tensors(opt: torch.optim.Optimizer, gen: torch.Generator, history: list[tuple[float, float]]) -> dict[str, Tensor]:
    sd = opt.state_dict()
    out: dict[str, Tensor] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            out[f"state.{idx}.{key}"] = torch.as_tensor(val).detach().to("cpu").contiguous()
    out["rng.train"] = gen.get_state()
    out["loss.history"] = torch.tensor(history, dtype=torch.float64).reshape(-1, 2)
    return out


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], groups: list[dict[str, Any]]) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for name, val in tensors.items():
        if name.startswith("state."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    sd = opt.state_dict()
    for g_saved, g in zip(groups, sd["param_groups"]):
        g.update({k: v for k, v in g_saved.items() if k != "params"})
    opt.load_state_dict({"state": state, "param_groups": sd["param_groups"]})


def loss_summary(history: list[tuple[float, float]]) -> LossSummary:
    if not history:
        return LossSummary()
    h = np.asarray(history, dtype=np.float64)
    win = max(1, min(50, len(h) // 10 or 1))
    smooth = np.stack([np.convolve(h[:, i], np.ones(win) / win, mode="valid") for i in (0, 1)], 1)
    return LossSummary(
        first_a=float(h[:win, 0].mean()), first_b=float(h[:win, 1].mean()),
        last_a=float(h[-win:, 0].mean()), last_b=float(h[-win:, 1].mean()),
        best_a=float(smooth[:, 0].min()), best_b=float(smooth[:, 1].min()),
    )


def resolve_model_config(cfg: TrainConfig, fa: Faceset) -> ModelConfig:
    base = cfg.model_config or ModelConfig.for_arch(cfg.model or "lite")
    return dataclasses.replace(
        base, learn_mask=cfg.learn_mask or base.learn_mask, coverage=fa.coverage,
        landmark_points=fa.landmark_points, crop_size=fa.crop_size,
    )


def config_diff(want: ModelConfig, have: ModelConfig) -> list[str]:
    return [f"{f.name}: requested {getattr(want, f.name)!r}, model has {getattr(have, f.name)!r}"
            for f in dataclasses.fields(ModelConfig) if getattr(want, f.name) != getattr(have, f.name)]


def init_from(cfg: TrainConfig, fa: Faceset, requested: ModelConfig) -> tuple[SwapAutoencoder, InitRef]:
    """The model named by --init (weights checked against its card) and the lineage entry for the new
    card. ModelError when its config is not the one this run would build (arch, widths, mask, and the
    facesets' coverage, landmark points and crop size): the weights would not fit, or would be used
    on crops cut another way."""
    from renderer.model import WEIGHTS_NAME, load_model

    init = Path(cfg.init)  # type: ignore[arg-type]
    try:
        model, card = load_model(init, device="cpu")
    except ModelError as err:
        raise ModelError(f"--init {init}: {err}") from err
    have = card.config
    if cfg.model is None and cfg.model_config is None:  # no architecture asked for: the init model's own
        requested = dataclasses.replace(have, learn_mask=cfg.learn_mask or have.learn_mask, coverage=fa.coverage,
                                        landmark_points=fa.landmark_points, crop_size=fa.crop_size)
    diff = [d.replace("model has", "--init model has") for d in config_diff(requested, have)]
    if diff:
        raise ModelError(f"--init {init}: its config differs from this run's (facesets {fa.root}; {'; '.join(diff)}); "
                         f"nothing was written")
    sha = sha256_file(model_files(init) / WEIGHTS_NAME)
    ref = InitRef(path=str(init.resolve()), name_a=card.name_a, name_b=card.name_b, rights=card.rights,
                  weights_sha256=sha, iterations=card.iterations, initialised_from=card.initialised_from,
                  crossed=cfg.init_crossed)
    return model, ref


def init_weights(model: SwapAutoencoder, crossed: bool = False) -> dict[str, Any]:
    """The --init model's state dict for the new model: as it is, or `crossed` (its decoder A's weights
    under decoder_b and its B's under decoder_a: the person this run puts in is the one that model
    rebuilt as A, e.g. a model trained presenter -> astronaut reused for carphone -> presenter). The
    shared encoder is the same either way."""
    state = model.state_dict()
    if not crossed:
        return state
    swap = {"decoder_a.": "decoder_b.", "decoder_b.": "decoder_a."}
    return {next((to + k[len(fr):] for fr, to in swap.items() if k.startswith(fr)), k): v for k, v in state.items()}


__all__ = ["config_diff", "init_from", "init_weights", "loss_summary", "optimizer_tensors", "resolve_model_config", "restore_optimizer"]
