"""A per-identity face upscaler learned from person B's own faceset (issue 17 item 2).

The swap model's decoder gives S px (64 for lite) spread over a 150-650 px face: too soft.
Pretrained face enhancers cannot be downloaded here, so Doppel trains its own, for one
identity, on B's aligned crops (the faceset keeps crops bigger than S):

    input  = decoder B's own reconstruction of B's (augmented) crop, downscaled to S:
             (N, 3, S, S), what the upscaler sees at swap time (blurrier than a plain downscale)
    target = the same augmented crop at S * scale: (N, 3, S*scale, S*scale)

Network (`Upscaler`): a few 3x3 convolutions at S, a pixel shuffle to S*scale, added to a
bicubic upsample of the input (the network learns only the missing detail). ~40 k parameters.

On disk: MODEL_DIR/upscaler.safetensors beside the swap model, saved in the same atomic
generation as a model card with an `upscaler:` section (`UpscalerCard`: which faceset and
its SHA-256, iterations, loss, scale, the swap weights it was trained on). Retraining the
swap model drops it (a new decoder gives other outputs; the card's section is not carried).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from renderer.errors import InputError, ModelError

UPSCALER_NAME = "upscaler.safetensors"
SCALES = (2, 4)


@dataclass(frozen=True)
class UpscalerConfig:
    """scale: output side / input side (2 or 4); channels: width of the hidden convolutions; blocks:
    hidden 3x3 convolutions after the first."""

    scale: int = 2
    channels: int = 32
    blocks: int = 3

    def validate(self) -> None:
        if self.scale not in SCALES:
            raise InputError(f"upscaler scale {self.scale!r} is not allowed (allowed: {', '.join(map(str, SCALES))})")
        if not 4 <= self.channels <= 128 or not 0 <= self.blocks <= 16:
            raise InputError(f"upscaler: channels {self.channels} (allowed 4-128) or blocks {self.blocks} "
                             f"(allowed 0-16) out of range")


@dataclass(frozen=True)
class UpscalerCard:
    """The model card's `upscaler:` section."""

    config: UpscalerConfig
    faceset: str  # path of B's faceset it learned from
    faceset_sha256: str  # SHA-256 of that faceset's faceset.json
    faces: int
    iterations: int
    loss_first: float
    loss_last: float
    loss: str  # what was minimised
    weights_sha256: str  # of upscaler.safetensors
    swap_weights_sha256: str  # the swap model's weights whose decoder B made its inputs
    train_seconds: float = 0.0
    created: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["config"] = dataclasses.asdict(self.config)
        return d

    @staticmethod
    def from_dict(data: Any) -> "UpscalerCard":
        if not isinstance(data, dict):
            raise ValueError(f"upscaler must be a mapping, got {data!r}")
        kw = dict(data)
        kw["config"] = UpscalerConfig(**kw["config"])
        return UpscalerCard(**kw)


class Upscaler(nn.Module):
    """(B, 3, S, S) float32 RGB [0, 1] -> (B, 3, S*r, S*r) [0, 1]: bicubic(x) + learned detail."""

    def __init__(self, cfg: UpscalerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        c, r = cfg.channels, cfg.scale
        layers: list[nn.Module] = [nn.Conv2d(3, c, 3, padding=1), nn.LeakyReLU(0.1, inplace=True)]
        for _ in range(cfg.blocks):
            layers += [nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.1, inplace=True)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(c, 3 * r * r, 3, padding=1)
        self.shuffle = nn.PixelShuffle(r)
        nn.init.zeros_(self.head.weight)  # starts as plain bicubic: training only ever adds detail to it
        nn.init.zeros_(self.head.bias)

    def forward(self, x: Tensor) -> Tensor:
        r = self.config.scale
        # bicubic with align_corners=False: pixel centres as cv2.resize and resize_crop_transform place them
        base = F.interpolate(x, scale_factor=r, mode="bicubic", align_corners=False)  # (B, 3, S*r, S*r)
        detail = self.shuffle(self.head(self.body(x)))  # (B, 3*r*r, S, S) -> (B, 3, S*r, S*r)
        return (base + detail).clamp(0.0, 1.0)


def upscale_crops(net: Upscaler, crops: np.ndarray, batch: int = 8) -> np.ndarray:
    """(N, S, S, 3) float32 [0, 1] -> (N, S*r, S*r, 3) float32 [0, 1], in fixed batches of `batch`
    (zero-padded) so a face's output does not depend on the faces beside it."""
    n, s = len(crops), crops.shape[1]
    r = net.config.scale
    out = np.empty((n, s * r, s * r, 3), np.float32)
    dev = next(net.parameters()).device
    with torch.inference_mode():
        for lo in range(0, n, batch):
            part = crops[lo:lo + batch]
            x = np.zeros((batch, s, s, 3), np.float32)
            x[: len(part)] = part
            t = torch.from_numpy(x).to(dev).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
            y = net(t)[: len(part)].permute(0, 2, 3, 1).float().cpu().numpy()  # (n, S*r, S*r, 3)
            out[lo:lo + len(part)] = y
    return out


# ---------------------------------------------------------------- save / load

def upscaler_bytes(net: Upscaler) -> bytes:
    from renderer.checkpoint import safetensors_bytes

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    return safetensors_bytes(tensors, {"format": "doppel-face-upscaler", "scale": str(net.config.scale)})


def load_upscaler(folder: Path, card: UpscalerCard, swap_weights_sha256: str,
                  device: str | torch.device = "cpu") -> Upscaler:
    """The upscaler in a model's files folder (`checkpoint.model_files`), checked against its card section.
    ModelError when the file is missing, corrupt, or was trained on other swap weights."""
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    from renderer.checkpoint import read_beside_model

    blob = read_beside_model(folder, UPSCALER_NAME, card.weights_sha256, "an upscaler",
                             "retrain it with `doppel train-upscaler`")
    if swap_weights_sha256 and card.swap_weights_sha256 != swap_weights_sha256:
        raise ModelError(f"model {folder}: the upscaler was trained on other swap weights (sha256 "
                         f"{card.swap_weights_sha256[:12]}, the model's are {swap_weights_sha256[:12]}); "
                         f"retrain it with `doppel train-upscaler`")
    try:
        state = st_load(blob)
        net = Upscaler(card.config)
        net.load_state_dict(state)
    except (SafetensorError, RuntimeError, ValueError) as err:
        raise ModelError(f"model {folder}: {UPSCALER_NAME} does not fit its card ({err})") from err
    return net.to(device).to(memory_format=torch.channels_last).eval()


# ---------------------------------------------------------------- training

@dataclass(frozen=True)
class UpscaleTrainConfig:
    model_dir: Path
    faceset_b: Path
    iterations: int | None = None  # None with minutes None: 2000
    minutes: float | None = None
    batch: int = 8
    lr: float = 1e-3
    seed: int = 0
    threads: int | None = None
    scale: int | None = None  # None: the largest allowed that the faceset's crops hold
    channels: int = 32
    blocks: int = 3
    ssim: float = 0.5  # weight of (1 - SSIM) beside L1


@dataclass(frozen=True)
class UpscaleTrainResult:
    model_dir: Path
    card: UpscalerCard
    seconds: float
    bicubic_l1: float  # L1 of plain bicubic on the last batch, for comparison with card.loss_last


def train_upscaler(cfg: UpscaleTrainConfig, progress: bool = True) -> UpscaleTrainResult:
    """Train an upscaler for MODEL_DIR's person B and save it with the model (one atomic generation)."""
    from tqdm import tqdm

    from renderer.atomic import sha256_file
    from renderer.augment import AugmentConfig, augment_batch
    from renderer.checkpoint import save_beside_model
    from renderer.faceset import INDEX_NAME, check_faceset_for_model, load_faceset
    from renderer.loss import LossConfig, swap_loss
    from renderer.model import load_model
    from renderer.modelcard import card_text, now_utc
    from renderer.train_data import load_training_faces

    if cfg.iterations is not None and cfg.iterations < 1:
        raise InputError(f"--iterations {cfg.iterations}: allowed: an integer >= 1")
    if cfg.minutes is not None and not cfg.minutes > 0:
        raise InputError(f"--minutes {cfg.minutes}: allowed: a number > 0")
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise InputError(f"--threads {cfg.threads}: allowed: an integer >= 1")
        torch.set_num_threads(cfg.threads)
    model, card = load_model(cfg.model_dir, "cpu")
    fs = load_faceset(cfg.faceset_b)
    check_faceset_for_model(fs, card.config, cfg.faceset_b, "extract B again with the model's settings")
    s = card.config.input_size
    # Default: the largest scale whose output B's crops still hold (a bigger target would be an upsampled copy).
    scale = cfg.scale or max((r for r in SCALES if s * r <= fs.crop_size), default=SCALES[0])
    ucfg = UpscalerConfig(scale, cfg.channels, cfg.blocks)
    ucfg.validate()
    size = s * scale
    if size > fs.crop_size:
        raise InputError(f"faceset {cfg.faceset_b}: crops are {fs.crop_size} px; a x{scale} upscaler of this {s} px "
                         f"model needs {size} px (extract B with `doppel extract --size {size}`)")
    faces, masks = load_training_faces(fs, size)  # (N, 3, T, T) uint8, (N, 2, T, T) uint8
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    net = Upscaler(ucfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    aug = AugmentConfig(warp=0.0)  # the same similarity and colour jitter as training; no warp: input and target align
    loss_cfg = LossConfig(ssim=cfg.ssim)
    target_it = cfg.iterations if cfg.iterations is not None else (None if cfg.minutes else 2000)
    deadline = time.monotonic() + cfg.minutes * 60 if cfg.minutes else math.inf
    history: list[float] = []
    t0 = time.monotonic()
    bar = tqdm(total=target_it, disable=not progress, unit="it", dynamic_ncols=True, desc=f"upscaler x{scale}")
    it = 0
    bicubic = float("nan")
    with bar:
        while (target_it is None or it < target_it) and time.monotonic() < deadline:
            idx = torch.randint(len(faces), (cfg.batch,), generator=gen)
            _, target, tmasks = augment_batch(faces[idx], masks[idx], aug, gen)  # (B, 3, T, T) [0, 1]
            with torch.no_grad():
                small = F.avg_pool2d(target, scale)  # (B, 3, S, S): INTER_AREA's exact integer downscale
                recon = model(small, "b")[:, :3].float()  # decoder B's own rebuild, as at swap time
            pred = net(recon.contiguous(memory_format=torch.channels_last))
            loss = swap_loss(pred, target, tmasks, loss_cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            it += 1
            bar.update(1)
            if it % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(history[-20:]):.4f}")
        with torch.no_grad():
            bicubic = float((F.interpolate(recon, scale_factor=scale, mode="bicubic",
                                           align_corners=False).clamp(0, 1) - target).abs().mean())
    if not history:
        raise InputError("train-upscaler: the time limit ended before the first iteration")
    seconds = time.monotonic() - t0
    blob = upscaler_bytes(net.eval())
    ucard = UpscalerCard(
        config=ucfg, faceset=str(Path(cfg.faceset_b).resolve()),
        faceset_sha256=sha256_file(Path(cfg.faceset_b) / INDEX_NAME), faces=len(fs), iterations=it,
        loss_first=round(float(np.mean(history[:20])), 6), loss_last=round(float(np.mean(history[-20:])), 6),
        loss=f"face-weighted L1 + {cfg.ssim:g} x (1 - SSIM) against B's crops at {size} px",
        weights_sha256=hashlib.sha256(blob).hexdigest(), swap_weights_sha256=card.weights_sha256,
        train_seconds=round(seconds, 3), created=now_utc(),
    )
    card = dataclasses.replace(card, upscaler=ucard)
    save_beside_model(cfg.model_dir, {UPSCALER_NAME: blob}, card_text(card).encode("utf-8"),
                      f"{card.iterations:08d}-upscaler")
    return UpscaleTrainResult(Path(cfg.model_dir), ucard, seconds, bicubic)

