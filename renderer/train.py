"""Training the swap model: one readable loop inside `train(cfg)`.

Convention: faces live in memory as (N, 3, S, S) uint8 RGB tensors on the training
device, decoded and resized to the model input size once; masks beside them as
(N, 2, S, S) uint8 (face hull, eyes+mouth). A step draws a batch of A and of B, augments
them (`renderer.augment`), runs A through decoder_a and B through decoder_b (the encoder
is shared, so it learns a code common to both faces) and takes one Adam step on the sum
of both losses.

MODEL_DIR after training (each file a link into the current checkpoint, `renderer.checkpoint`):
    model.safetensors      weights (safetensors, never pickle)
    model.yaml             the model card (`renderer.modelcard`)
    optimizer.safetensors  Adam moments, the training RNG state, the loss history
    train_state.json       iteration, optimizer hyper-parameters, batch, threads, seconds trained
    preview.png            rows: A, A->A, A->B, B, B->B, B->A
    loss.png               loss curves of both halves
Saved every `save_every` iterations, at the end and on Ctrl-C / SIGTERM (after the
iteration in progress), all of them as one atomic step, so `--resume` continues exactly
where the last checkpoint left off (same numbers as an uninterrupted run) and a kill at
any moment leaves the last complete checkpoint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from renderer.atomic import check_writable, sha256_file
from renderer.augment import AugmentConfig, augment_batch
from renderer.occluders import occluder_bank, paste_occluders
from renderer.errors import InputError, ModelError, TrainingError, closest
from renderer.faceset import INDEX_NAME
from renderer.checkpoint import holds_model, model_files
from renderer.model import ModelConfig, SwapAutoencoder, build_model, pick_device
from renderer.modelcard import (
    FacesetRef, ModelCard, Validation, now_utc, read_model_card, software_version,
    validate_rights,
)
from renderer.loss import LossConfig, ssim, ssim_map, swap_loss  # noqa: F401 (ssim, ssim_map: public here too)
from renderer.previews import loss_curve_image, png_bytes, preview_grid
from renderer.train_state import (
    config_diff, init_from, init_weights, loss_summary, optimizer_tensors, resolve_model_config, restore_optimizer,
)
from renderer.train_data import (  # noqa: F401 (public here too)
    VALIDATE_EVERY, collapsed_output, held_out_ssim, load_training_faces, open_facesets, split_holdout,
)

OPTIMIZER_NAME = "optimizer.safetensors"
STATE_NAME = "train_state.json"
# The 2017 recipe for original/hd; lite's was measured (bench/results/train.md): at lr 5e-4 and
# batch 8 it reaches held-out SSIM 0.80 in a fraction of the CPU time lr 2e-4 / batch 16 takes,
# and at 2e-3 it collapsed to a flat output, so 5e-4 keeps a 4x margin.
DEFAULT_LR = {"original": 5e-5, "hd": 5e-5, "lite": 5e-4}
DEFAULT_BATCH = {"original": 16, "hd": 16, "lite": 8}


@dataclass(frozen=True)
class TrainConfig:
    """One training run. `model` names an architecture ('original', 'lite', 'hd'; default
    'lite', or the existing model's on --resume); `model_config` gives the network
    explicitly instead (coverage, landmark_points, crop_size are taken from the facesets).
    `iterations` is the total the model should reach (a resumed run continues up to it);
    `minutes` bounds this run's wall time; either or both. `lr` None: 5e-5 (the 2017
    setting) for original/hd, 5e-4 for lite. `batch` None: 16 for original/hd, 8 for lite.
    On --resume, `lr` and `batch` left None continue with the model's own."""

    faceset_a: Path
    faceset_b: Path
    out: Path
    rights: str
    name_a: str | None = None
    name_b: str | None = None
    model: str | None = None
    model_config: ModelConfig | None = None
    iterations: int | None = None
    minutes: float | None = None
    batch: int | None = None
    lr: float | None = None
    beta1: float = 0.5
    beta2: float = 0.999
    seed: int = 0
    device: str | None = None
    save_every: int = 250
    resume: bool = False
    init: Path | None = None  # start from this model's weights (a fine-tune): same config, fresh optimizer and RNG
    init_crossed: bool = False  # with init: its decoder A becomes this model's decoder B and its B this one's A
    learn_mask: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    preview_faces: int = 6
    holdout: int | None = None  # every Nth face kept out of training to measure quality (None: 0, or the model's own)
    target_ssim: float | None = None  # stop once every held-out SSIM reaches this
    threads: int | None = None  # CPU threads (None: torch's default, or the model's own on --resume); restored afterwards
    occluder_photos: tuple[str, ...] = ()  # photos (files or folders) without faces: textures for augment.occluders


@dataclass(frozen=True)
class TrainResult:
    model_dir: Path
    iterations: int
    iterations_this_run: int
    seconds: float
    faces_per_second: float
    loss_a: float
    loss_b: float
    card: ModelCard

# ---------------------------------------------------------------- presets (`train:` section)

_PRESET_SCALARS: dict[str, type | tuple[type, ...]] = {
    "model": str, "iterations": int, "minutes": (int, float), "batch": int, "lr": (int, float),
    "beta1": (int, float), "beta2": (int, float), "seed": int, "save_every": int, "learn_mask": bool,
    "device": str, "name_a": str, "name_b": str, "preview_faces": int, "threads": int, "holdout": int,
    "target_ssim": (int, float), "occluder_photos": str,
}
_PRESET_NESTED = {"augment": AugmentConfig, "loss": LossConfig}


def load_train_preset(path: Path | str) -> dict[str, Any]:
    """The validated `train:` section of a YAML preset as TrainConfig keyword arguments.

    Other top-level sections (render settings) are left to their owners. InputError
    names the file, the key, the value received and what is allowed.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except FileNotFoundError as err:
        raise InputError(f"--preset {path}: file not found") from err
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"--preset {path}: not readable YAML ({err})") from err
    if not isinstance(data, dict) or "train" not in data:
        raise InputError(f"--preset {path}: has no `train:` section (top-level keys: {list(data or {})})")
    values = parse_train_section(data["train"], str(path))
    if "occluder_photos" in values:  # relative to the preset's folder, like the preset's other paths
        values["occluder_photos"] = tuple(str(path.parent / Path(p).expanduser()) for p in values["occluder_photos"])
    return values


def parse_train_section(section: Any, where: str) -> dict[str, Any]:
    if not isinstance(section, dict):
        raise InputError(f"{where}: `train:` must be a mapping, got {type(section).__name__}")
    allowed = list(_PRESET_SCALARS) + list(_PRESET_NESTED)
    out: dict[str, Any] = {}
    for key, value in section.items():
        if key in _PRESET_NESTED:
            cls = _PRESET_NESTED[key]
            if not isinstance(value, dict):
                raise InputError(f"{where}: train.{key} must be a mapping, got {value!r}")
            names = [f.name for f in dataclasses.fields(cls)]
            for sub, v in value.items():
                if sub not in names:
                    raise InputError(f"{where}: unknown key train.{key}.{sub} (allowed: {', '.join(names)}){closest(str(sub), names)}")
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                    raise InputError(f"{where}: train.{key}.{sub} must be a number >= 0, got {v!r}")
            out[key] = cls(**{k: float(v) for k, v in value.items()})
        elif key in _PRESET_SCALARS:
            kind = _PRESET_SCALARS[key]
            if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
                names = kind.__name__ if isinstance(kind, type) else "number"
                raise InputError(f"{where}: train.{key} must be a {names}, got {value!r}")
            if isinstance(value, float) and not math.isfinite(value):  # NaN passes every < and > test
                raise InputError(f"{where}: train.{key} must be a finite number, got {value!r}")
            out[key] = (value,) if key == "occluder_photos" else value
        else:
            raise InputError(f"{where}: unknown key train.{key} (allowed: {', '.join(allowed)}){closest(str(key), allowed)}")
    return out


def check_train_config(cfg: TrainConfig) -> None:
    """InputError for values no run could use."""
    if cfg.model is not None and cfg.model not in DEFAULT_LR:
        raise InputError(f"--model {cfg.model!r} is not known (available: original, lite, hd){closest(cfg.model, list(DEFAULT_LR))}")
    if cfg.resume and cfg.init is not None:
        raise InputError(f"--resume and --init {cfg.init} together: --resume continues the model in --out, --init "
                         f"starts a new one from another model's weights; give one of them")
    if cfg.init_crossed and cfg.init is None:
        raise InputError("--init-crossed needs --init MODEL_DIR: it says how that model's decoders map onto this "
                         "model's people")
    if cfg.iterations is not None and cfg.iterations < 1:
        raise InputError(f"--iterations must be >= 1, got {cfg.iterations}")
    if cfg.minutes is not None and not (math.isfinite(cfg.minutes) and cfg.minutes > 0):
        raise InputError(f"--minutes must be a number > 0, got {cfg.minutes}")
    if cfg.batch is not None and cfg.batch < 1:
        raise InputError(f"--batch must be >= 1, got {cfg.batch}")
    if cfg.threads is not None and cfg.threads < 1:
        raise InputError(f"--threads must be >= 1, got {cfg.threads}")
    if cfg.save_every < 1:
        raise InputError(f"--save-every must be >= 1, got {cfg.save_every}")
    if cfg.holdout is not None and cfg.holdout != 0 and cfg.holdout < 2:
        raise InputError(f"--holdout must be 0 (off) or >= 2 (every Nth face held out), got {cfg.holdout}")
    if cfg.target_ssim is not None and not 0 < cfg.target_ssim < 1:
        raise InputError(f"--target-ssim must be in (0, 1), got {cfg.target_ssim}")
    if cfg.lr is not None and not 0 < cfg.lr < 1:
        raise InputError(f"lr must be in (0, 1), got {cfg.lr}")
    if not (0 <= cfg.beta1 < 1 and 0 <= cfg.beta2 < 1):
        raise InputError(f"Adam betas must be in [0, 1), got {cfg.beta1}, {cfg.beta2}")
    if not 0 <= cfg.augment.occluders <= 1:
        raise InputError(f"augment.occluders is the probability that a face gets an occluder: a number from 0 to 1, "
                         f"got {cfg.augment.occluders}")
    if cfg.augment.occluders > 0 and not cfg.learn_mask:
        raise InputError("augment.occluders teaches the learned mask to leave occluders out: it needs learn_mask: true "
                         "(--learn-mask)")
    validate_rights(cfg.rights, "doppel train --rights")


def _held_out_scores(v: Validation | None) -> dict[str, float]:
    """{'a': SSIM, 'b': SSIM} for the decoders that had held-out faces to rebuild."""
    if v is None:
        return {}
    return {k: score for k, score in (("a", v.ssim_a), ("b", v.ssim_b)) if score is not None}


# ---------------------------------------------------------------- one step's pieces

def make_optimizer(model: SwapAutoencoder, lr: float, betas: tuple[float, float]) -> torch.optim.Adam:
    """Adam over all parameters. The fused kernel (CPU and CUDA) updates every tensor in one
    pass instead of a dozen elementwise ops per tensor: about 2.5x less optimizer time on the
    82M-parameter `original`, same update up to float32 rounding."""
    return torch.optim.Adam(model.parameters(), lr=lr, betas=betas, fused=True)


def forward_pair(model: SwapAutoencoder, warped_a: Tensor, warped_b: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 3, S, S) A and B float32 [0, 1] -> (decoder_a(A), decoder_b(B)), each (B, 3|4, S, S).

    One encoder pass over A and B together: same maths as two passes, larger GEMMs. The
    batch goes channels-last (NHWC), the layout oneDNN convolves without reordering; on the
    CPU the weights stay as they are (converting them too made each step copy gradients).
    """
    n = warped_a.shape[0]
    x = torch.cat([warped_a, warped_b]).contiguous(memory_format=torch.channels_last)  # (2B, 3, S, S)
    z = model.encoder(x)  # (2B, C, 8, 8)
    return model.decoder_a(z[:n]), model.decoder_b(z[n:])


# ---------------------------------------------------------------- the loop

StepHook = Callable[[int, SwapAutoencoder], bool]


def train(cfg: TrainConfig, progress: bool = True, hooks: Sequence[StepHook] = ()) -> TrainResult:
    """Train (or resume) a swap model into `cfg.out`; returns what was done.

    `hooks` run after every iteration with (iteration, model); one returning True ends the
    run there (checkpointed as usual). Benchmarks use this to measure held-out quality.

    InputError / ModelError (exit 2) before anything is written: empty or mismatched
    facesets, missing rights, an existing model without `resume`, a resume into a model
    of a different config. On Ctrl-C the last completed iteration is checkpointed.
    """
    check_train_config(cfg)
    threads_before = torch.get_num_threads()
    try:
        return _train(cfg, progress, tuple(hooks))
    finally:
        torch.set_num_threads(threads_before)


@contextlib.contextmanager
def stop_between_iterations() -> Iterator[list[int]]:
    """While training, SIGINT and SIGTERM only ask the loop to stop (the list gets the signal number):
    the iteration in progress finishes and is checkpointed. An exception in the middle of a step would
    save an RNG already advanced for it, or half-updated weights, and the resumed run would differ.
    A second Ctrl-C interrupts at once (the last checkpoint stays, whole). Main thread only."""
    asked: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield asked
        return

    def ask(signum: int, frame: Any) -> None:
        if asked and signum == signal.SIGINT:
            raise KeyboardInterrupt
        asked.append(signum)

    wanted = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
    previous = {s: signal.signal(s, ask) for s in wanted}
    try:
        yield asked
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _out_of_memory(err: RuntimeError) -> bool:
    return isinstance(err, torch.OutOfMemoryError) or "can't allocate memory" in str(err)


def _train(cfg: TrainConfig, progress: bool, hooks: tuple[StepHook, ...]) -> TrainResult:
    from safetensors.torch import load as st_load
    from safetensors.torch import save as st_save
    from tqdm import tqdm

    out = Path(cfg.out)
    check_writable(out, "--out", is_dir=True)  # read-only, or a file in the way: exit 2 before any work
    fa, fb = open_facesets(Path(cfg.faceset_a), Path(cfg.faceset_b))
    device = pick_device(cfg.device)

    # ---- what model: new, or the one on disk
    prior: ModelCard | None = None
    if cfg.resume:
        try:
            src = model_files(out)  # the last complete checkpoint, resolved once
        except ModelError as err:
            raise ModelError(f"cannot resume: {err}") from err
        prior = read_model_card(src)  # ModelError when there is nothing to resume
        want = resolve_model_config(dataclasses.replace(cfg, model=cfg.model or prior.config.arch,
                                                         learn_mask=cfg.learn_mask or prior.config.learn_mask), fa)
        if cfg.model is None and cfg.model_config is None:
            want = dataclasses.replace(prior.config, coverage=fa.coverage, landmark_points=fa.landmark_points,
                                       crop_size=fa.crop_size)
        diff = config_diff(want, prior.config)
        if diff:
            raise ModelError(f"cannot resume {out}: its config differs from this run ({'; '.join(diff)}); "
                             f"the existing model was left untouched")
        mcfg = prior.config
    else:
        if holds_model(out):
            raise InputError(f"--out {out} already holds a model; pass --resume to continue it or choose another --out")
        mcfg = resolve_model_config(cfg, fa)
    init_model, init_ref = init_from(cfg, fa, mcfg) if cfg.init is not None else (None, None)
    if init_model is not None:
        mcfg = init_model.config
    lr = cfg.lr if cfg.lr is not None else DEFAULT_LR[mcfg.arch]
    batch = cfg.batch or DEFAULT_BATCH[mcfg.arch]
    holdout = cfg.holdout or 0
    threads = cfg.threads

    # ---- model, optimizer, RNG
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # weight init only; the caller's global RNG is left as it was
        model = build_model(mcfg)
    if init_model is not None:  # a fine-tune: the other model's weights, this run's own optimizer and RNG
        model.load_state_dict(init_weights(init_model, crossed=cfg.init_crossed))
        del init_model
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[tuple[float, float]] = []
    start_iter, seconds_before = 0, 0.0
    opt = make_optimizer(model, lr, (cfg.beta1, cfg.beta2))
    if prior is not None:
        from renderer.model import load_model

        loaded, _ = load_model(src, device="cpu")
        model.load_state_dict(loaded.state_dict())
        state_path, opt_path = src / STATE_NAME, src / OPTIMIZER_NAME
        if not state_path.is_file() or not opt_path.is_file():
            raise ModelError(f"cannot resume {out}: {STATE_NAME} or {OPTIMIZER_NAME} is missing "
                             f"(the model can be used for swapping, but not continued exactly)")
        try:
            st = json.loads(state_path.read_text("utf-8"))
            tensors = st_load(opt_path.read_bytes())
        except Exception as err:  # any unreadable state is one clear error
            raise ModelError(f"cannot resume {out}: training state is unreadable ({err})") from err
        if int(st["iteration"]) != prior.iterations:
            raise ModelError(f"cannot resume {out}: training state is at iteration {st['iteration']} but the "
                             f"card says {prior.iterations} (interrupted save?)")
        model.to(device)
        if cfg.lr is None:  # like the batch: a resumed run keeps the model's own unless told otherwise
            lr = float(st["param_groups"][0]["lr"])
        batch = cfg.batch or int(st.get("batch", batch))
        # the thread count changes float rounding in the kernels: keep the model's own for an identical resume
        threads = cfg.threads or st.get("threads")
        trained_holdout = int(st.get("holdout", 0))
        if cfg.holdout is not None and cfg.holdout != trained_holdout:
            raise InputError(f"cannot resume {out} with --holdout {cfg.holdout}: it was trained with --holdout "
                             f"{trained_holdout}, so other faces would be held out than before (and some of them "
                             f"already trained on); leave --holdout out to keep {trained_holdout}")
        opt = make_optimizer(model, lr, (cfg.beta1, cfg.beta2))
        restore_optimizer(opt, {k: v.to(device) if k.startswith("state.") and v.dim() > 0 else v
                                 for k, v in tensors.items()}, st["param_groups"])
        for g in opt.param_groups:  # this run's hyper-parameters win (they may be changed on resume)
            g["lr"], g["betas"] = lr, (cfg.beta1, cfg.beta2)
        gen.set_state(tensors["rng.train"])
        history = [tuple(r) for r in tensors["loss.history"].tolist()]  # type: ignore[misc]
        start_iter, seconds_before = int(st["iteration"]), float(st.get("seconds", 0.0))
        holdout = trained_holdout
    if threads:
        # Small models on a shared CPU lose far more to spinning OpenMP threads than they gain.
        torch.set_num_threads(threads)
    model.to(device).train()

    cuda = device.type == "cuda"
    if cuda:
        model.to(memory_format=torch.channels_last)  # tensor cores want NHWC convolutions
    amp_dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
    scaler = torch.amp.GradScaler("cuda", enabled=cuda and amp_dtype == torch.float16)
    if prior is not None and scaler.is_enabled() and "grad_scaler" in st:
        scaler.load_state_dict(st["grad_scaler"])

    # ---- data, decoded once
    size = mcfg.input_size
    faces_a, masks_a, held_a = split_holdout(*(t.to(device) for t in load_training_faces(fa, size)), holdout)
    faces_b, masks_b, held_b = split_holdout(*(t.to(device) for t in load_training_faces(fb, size)), holdout)
    bank = occluder_bank(cfg.occluder_photos, size) if cfg.augment.occluders > 0 else None
    if cfg.target_ssim is not None and not (len(held_a) or len(held_b)):
        raise InputError(f"--target-ssim needs held-out faces: --holdout {holdout or 'is not set'}, and facesets of "
                         f"{len(fa)} (A) and {len(fb)} (B) faces hold none out (set --holdout N, N <= faces)")
    n_prev = max(1, min(cfg.preview_faces, len(faces_a), len(faces_b)))
    prev_a = faces_a[torch.linspace(0, len(faces_a) - 1, n_prev).round().long().to(device)]
    prev_b = faces_b[torch.linspace(0, len(faces_b) - 1, n_prev).round().long().to(device)]
    validation: Validation | None = prior.validation if prior and holdout else None

    def validate(iteration: int) -> Validation:
        return Validation(holdout, iteration, len(held_a), len(held_b),
                          held_out_ssim(model, "a", held_a), held_out_ssim(model, "b", held_b))

    target = cfg.iterations if cfg.iterations is not None else (None if cfg.minutes else 10_000)
    if target is not None and target <= start_iter:
        raise InputError(f"--iterations {target}: the model in {out} already has {start_iter} iterations")
    deadline = time.monotonic() + cfg.minutes * 60 if cfg.minutes else math.inf
    created = prior.created if prior else now_utc()
    name_a = cfg.name_a or (prior.name_a if prior else None) or fa.identity or fa.root.name
    name_b = cfg.name_b or (prior.name_b if prior else None) or fb.identity or fb.root.name
    refs = (FacesetRef("a", str(fa.root.resolve()), sha256_file(fa.root / INDEX_NAME), len(fa)),
            FacesetRef("b", str(fb.root.resolve()), sha256_file(fb.root / INDEX_NAME), len(fb)))

    def checkpoint(iteration: int, seconds: float) -> ModelCard:
        """Save the whole set as one generation of `out` (renderer.checkpoint): all of it, or the last one stays."""
        from renderer.model import save_model

        card = ModelCard(
            config=mcfg, name_a=name_a, name_b=name_b, rights=cfg.rights.strip(), facesets=refs,
            iterations=iteration, loss=loss_summary(history), software=software_version(),
            created=created, updated=now_utc(), train_seconds=seconds, device=str(device), validation=validation,
            working_space=fa.colour_space, colour_config=fa.colour_config,
            initialised_from=prior.initialised_from if prior else init_ref,
        )
        groups = [{k: v for k, v in g.items() if k != "params"} for g in opt.state_dict()["param_groups"]]
        state = {"iteration": iteration, "seconds": seconds, "param_groups": groups, "seed": cfg.seed,
                 "batch": batch, "holdout": holdout, "threads": threads,
                 **({"grad_scaler": scaler.state_dict()} if scaler.is_enabled() else {})}
        extra = {
            OPTIMIZER_NAME: st_save(optimizer_tensors(opt, gen, history)),
            STATE_NAME: (json.dumps(state, indent=2, default=list) + "\n").encode(),
            "preview.png": png_bytes(preview_grid(model, prev_a, prev_b)),
            "loss.png": png_bytes(loss_curve_image(history)),
        }
        try:
            folder = save_model(out, model, card, extra_files=extra, label=f"{iteration:08d}")
        except OSError as err:
            saved = last_saved()
            kept = f"the checkpoint of iteration {saved} is kept" if saved else "nothing was saved"
            raise TrainingError(f"cannot save the checkpoint of iteration {iteration} to {out}: {err.strerror}"
                                f"{f' ({err.filename})' if err.filename else ''}; {kept}") from err
        return read_model_card(folder)

    def last_saved() -> int | None:
        return card.iterations if card else (start_iter if prior else None)

    it = start_iter
    t0 = time.monotonic()
    bar = tqdm(total=target, initial=start_iter, disable=not progress, unit="it", dynamic_ncols=True,
               desc=f"train {mcfg.arch}")
    card: ModelCard | None = None
    with stop_between_iterations() as stop_asked:
        try:
            while (target is None or it < target) and time.monotonic() < deadline and not stop_asked:
                try:
                    ia = torch.randint(len(faces_a), (batch,), generator=gen).to(device)
                    ib = torch.randint(len(faces_b), (batch,), generator=gen).to(device)
                    warped_a, target_a, tmask_a = augment_batch(faces_a[ia], masks_a[ia], cfg.augment, gen)
                    warped_b, target_b, tmask_b = augment_batch(faces_b[ib], masks_b[ib], cfg.augment, gen)
                    if cfg.augment.occluders > 0:
                        warped_a, tmask_a = paste_occluders(warped_a, tmask_a, cfg.augment.occluders, gen, bank)
                        warped_b, tmask_b = paste_occluders(warped_b, tmask_b, cfg.augment.occluders, gen, bank)
                    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
                        pred_a, pred_b = forward_pair(model, warped_a, warped_b)
                        loss_a = swap_loss(pred_a, target_a, tmask_a, cfg.loss)
                        loss_b = swap_loss(pred_b, target_b, tmask_b, cfg.loss)
                    la, lb = float(loss_a.detach()), float(loss_b.detach())
                except RuntimeError as err:
                    if not _out_of_memory(err):
                        raise
                    saved = last_saved()
                    kept = f"{out} keeps the checkpoint of iteration {saved}" if saved else f"nothing was saved to {out}"
                    raise TrainingError(
                        f"out of memory on {device} at batch {batch} (faces per person per iteration, iteration "
                        f"{it + 1}): {str(err).splitlines()[0][:160]}; lower --batch (or `batch:` in the preset); {kept}"
                    ) from err
                diverged = "" if math.isfinite(la + lb) else f"diverged: loss A {la}, loss B {lb}"
                if not diverged and (collapsed_output(pred_a, warped_a) or collapsed_output(pred_b, warped_b)):
                    diverged = "collapsed: a decoder gives one and the same picture for every face (saturated output)"
                if diverged:  # checked before the step, so a broken network is never saved over a good checkpoint
                    saved = last_saved()
                    kept = f"{out} keeps the checkpoint of iteration {saved}" if saved else f"nothing was saved to {out}"
                    raise TrainingError(
                        f"training {diverged}, at iteration {it + 1} (lr {lr:g}, batch {batch}); {kept}. "
                        f"Lower --lr (and --resume), or check the facesets for broken crops"
                    )
                opt.zero_grad(set_to_none=True)
                scaler.scale(loss_a + loss_b).backward()
                scaler.step(opt)
                scaler.update()
                it += 1
                history.append((la, lb))
                bar.update(1)
                if holdout and (it % VALIDATE_EVERY == 0 or it % cfg.save_every == 0):
                    validation = validate(it)
                held_ssim = _held_out_scores(validation)
                bar.set_postfix(loss_a=f"{la:.4f}", loss_b=f"{lb:.4f}",
                                **{f"val_{k}": f"{v:.3f}" for k, v in held_ssim.items()}, refresh=False)
                reached = (cfg.target_ssim is not None and validation is not None and validation.iteration == it
                           and all(v >= cfg.target_ssim for v in held_ssim.values()))
                if it % cfg.save_every == 0:
                    card = checkpoint(it, seconds_before + time.monotonic() - t0)
                if any([hook(it, model) for hook in hooks]) or reached:  # a list: every hook sees every iteration
                    break
        finally:
            bar.close()
        elapsed = time.monotonic() - t0
        if holdout and (validation is None or validation.iteration != it):
            validation = validate(it)
        if it > start_iter and (card is None or card.iterations != it):
            card = checkpoint(it, seconds_before + elapsed)
    if stop_asked:  # the last whole iteration is checkpointed: --resume continues exactly. Now the signal
        signal.raise_signal(stop_asked[0])  # does what it would have done (the CLI's Ctrl-C / SIGTERM exit)
        raise KeyboardInterrupt
    if card is None:  # stopped before the first iteration (an immediate deadline): the model as it was
        card = prior or checkpoint(it, seconds_before)
    done = it - start_iter
    tail = history[-min(len(history), 20):] or [(math.nan, math.nan)]
    return TrainResult(
        model_dir=out, iterations=it, iterations_this_run=done, seconds=elapsed,
        faces_per_second=2 * batch * done / elapsed if elapsed > 0 else 0.0,
        loss_a=float(np.mean([h[0] for h in tail])), loss_b=float(np.mean([h[1] for h in tail])), card=card,
    )
