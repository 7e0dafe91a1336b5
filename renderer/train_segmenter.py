"""Training the occluder segmenter (`renderer.segmenter`) on a model's own facesets.

Each batch is the model's aligned faces (A's and B's by default: every face the card's rights cover)
through the training augmentation's similarity and colour jitter (no warp: input and target align),
then with probability `occluded` one or two occluders pasted over a face:

    shape    `renderer.occluders.shape_alpha`: ellipse, rectangle, thin bar, polygon (biased to the
             lower face, where microphones, hands and food go)
    texture  a flat colour, smooth noise, a patch of a face-free photo (`--photos`), or skin: the
             middle of another face of the batch, so that a hand (skin in front of skin) is learned
             by its outline, not its colour
    target   the occluders' alpha; the face itself, eyes and mouth included, is 0

and then the video it will meet: a Gaussian blur of 0-1.5 px and noise of 0-5 levels over the whole
crop (occluder edges included). Loss: binary cross-entropy of the logits, weighted 1 inside the face
mask and 0.25 outside (the keep mask is only used inside the face), occluder pixels x2 (they are the
rarer class). At the end the IoU (probability > 0.5 against the truth, inside the face) is measured on
256 held-out synthetic faces drawn with another seed, and recorded on the card.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from renderer.errors import InputError
from renderer.segmenter import DEFAULT_ITERATIONS, SEGMENTER_NAME, SegmenterCard, SegmenterConfig

SKIN = 3  # texture kind: the middle of another face of the batch (renderer.occluders.texture has 0-2)
EVAL_FACES = 256


class Segmenter(nn.Module):
    """(B, 3, S, S) float32 RGB [0, 1] -> (B, 1, S, S) occluder logits; the layers of `SegmenterConfig.layers`."""

    def __init__(self, cfg: SegmenterConfig) -> None:
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.convs = nn.ModuleDict({name.replace(".", "_"): nn.Conv2d(cin, cout, 3, stride, 1)
                                    for name, cin, cout, stride in cfg.layers()})

    def _conv(self, x: Tensor, name: str, act: bool = True) -> Tensor:
        y = self.convs[name.replace(".", "_")](x)
        return F.leaky_relu(y, 0.1) if act else y

    def forward(self, x: Tensor) -> Tensor:
        skips = [self._conv(x, "e0")]
        for i in (1, 2, 3):
            skips.append(self._conv(self._conv(skips[-1], f"e{i}.down"), f"e{i}.conv"))
        y = skips[3]
        for i in (2, 1, 0):
            up = F.pixel_shuffle(self._conv(y, f"d{i}.up"), 2)
            y = self._conv(torch.cat([up, skips[i]], 1), f"d{i}.conv")
        return self._conv(y, "head", act=False)

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The weights under the file's names (`<layer>.weight`, `<layer>.bias`), float32 numpy."""
        out = {}
        for name, _, _, _ in self.config.layers():
            conv = self.convs[name.replace(".", "_")]
            out[f"{name}.weight"] = conv.weight.detach().cpu().float().numpy().copy()
            out[f"{name}.bias"] = conv.bias.detach().cpu().float().numpy().copy()
        return out

    @classmethod
    def from_arrays(cls, cfg: SegmenterConfig, weights: dict[str, np.ndarray]) -> Segmenter:
        net = cls(cfg)
        with torch.no_grad():
            for name, _, _, _ in cfg.layers():
                conv = net.convs[name.replace(".", "_")]
                conv.weight.copy_(torch.from_numpy(weights[f"{name}.weight"]))
                conv.bias.copy_(torch.from_numpy(weights[f"{name}.bias"]))
        return net.eval()


def segmenter_bytes(net: Segmenter) -> bytes:
    from safetensors.numpy import save

    return save(net.state_arrays(), metadata={"format": "doppel-occluder-segmenter", "size": str(net.config.size)})


# ---------------------------------------------------------------- synthetic occluders

def _skin(img: Tensor, i: int, gen: torch.Generator) -> Tensor:
    """(3, S, S): the middle of a face of the batch other than i (cheeks, nose), shifted, scaled up 2x."""
    b, _, s, _ = img.shape
    j = (i + 1 + int(torch.randint(max(1, b - 1), (1,), generator=gen))) % b
    half = s // 2
    y, x = (int(v) for v in torch.randint(s // 8, s // 2 - s // 8 + 1, (2,), generator=gen))
    patch = img[j:j + 1, :, y:y + half, x:x + half]
    return F.interpolate(patch, size=(s, s), mode="bilinear", align_corners=False)[0]


def occluded_batch(img: Tensor, occluded: float, gen: torch.Generator, bank: Tensor | None) -> tuple[Tensor, Tensor]:
    """(input (B, 3, S, S), occluder alpha (B, 1, S, S)) from augmented faces `img` (B, 3, S, S) [0, 1]:
    one or two occluders over each face with probability `occluded`, then blur and noise over the crop."""
    from renderer.occluders import SHAPES, shape_alpha, texture

    b, _, s, _ = img.shape
    out, alpha = img.clone(), torch.zeros(b, 1, s, s)
    draws = torch.rand(b, 4, generator=gen)  # per face: [occluded?, two occluders?, blur, noise]
    for i in range(b):
        if float(draws[i, 0]) >= occluded:
            continue
        for _ in range(2 if float(draws[i, 1]) < 0.3 else 1):
            r = torch.rand(10, generator=gen)
            a = torch.from_numpy(shape_alpha(SHAPES[min(len(SHAPES) - 1, int(float(r[0]) * len(SHAPES)))], s, r[2:]))
            kind = min(SKIN, int(float(r[1]) * (SKIN + 1)))
            tex = _skin(img, i, gen) if kind == SKIN and b > 1 else texture(min(kind, 2), s, bank, gen)
            tex = (tex * (0.6 + 0.8 * float(torch.rand(1, generator=gen)))).clamp(0, 1)  # lit differently
            out[i] = out[i] * (1 - a) + tex * a
            alpha[i, 0] = torch.maximum(alpha[i, 0], a)
    arr = out.permute(0, 2, 3, 1).numpy().copy()  # (B, S, S, 3): the blur is cv2's, per face
    for i in range(b):
        sigma = 1.5 * float(draws[i, 2])
        if sigma > 0.2:
            arr[i] = cv2.GaussianBlur(arr[i], (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    noise = torch.randn(b, s, s, 3, generator=gen) * (draws[:, 3] * 5.0 / 255.0).view(b, 1, 1, 1)
    return (torch.from_numpy(arr) + noise).clamp(0, 1).permute(0, 3, 1, 2).contiguous(), alpha


def segmenter_loss(logits: Tensor, alpha: Tensor, face: Tensor) -> Tensor:
    """Weighted BCE: 1 inside the face mask, 0.25 outside, occluder pixels x2 (see the module doc)."""
    weight = (0.25 + 0.75 * face) * (1.0 + alpha)
    return F.binary_cross_entropy_with_logits(logits, alpha, weight=weight)


# ---------------------------------------------------------------- training

@dataclass(frozen=True)
class SegmenterTrainConfig:
    model_dir: Path
    facesets: tuple[Path, ...] = ()  # (): every faceset the model card lists (A's and B's)
    photos: tuple[Path, ...] = ()  # face-free photos (files or folders) for occluder textures
    iterations: int | None = None  # None with minutes None: DEFAULT_ITERATIONS
    minutes: float | None = None
    batch: int = 16
    lr: float = 2e-3
    seed: int = 0
    threads: int | None = None
    rights: str = ""  # whose faces and under what rights, for --faces that the model card does not list
    occluded: float = 0.7  # share of training faces that get occluders
    widths: tuple[int, int, int, int] = (16, 32, 48, 64)


@dataclass(frozen=True)
class SegmenterTrainResult:
    model_dir: Path
    card: SegmenterCard
    seconds: float


def _model_facesets(cfg: SegmenterTrainConfig, card: object) -> list[Path]:
    """The facesets to learn from: the card's own (A, B) by default; any given must be one of them."""
    from renderer.atomic import sha256_file
    from renderer.faceset import INDEX_NAME

    refs = card.facesets  # type: ignore[attr-defined]
    if not cfg.facesets:
        paths = [Path(r.path) for r in refs]
        missing = [str(p) for p in paths if not (p / INDEX_NAME).is_file()]
        if missing or not paths:
            raise InputError(f"train-segmenter: the model's facesets are not where its card says ({', '.join(missing) or 'none listed'}); "
                             f"give them with --faces FACESET (A's and/or B's)")
        return paths
    known = {r.sha256 for r in refs}
    for p in cfg.facesets:
        index = Path(p) / INDEX_NAME
        if not index.is_file():
            raise InputError(f"train-segmenter: {p} is not a faceset (no {INDEX_NAME}; make one with `doppel extract`)")
        if sha256_file(index) not in known and not cfg.rights.strip():
            raise InputError(f"train-segmenter: faceset {p} is not one this model was trained on (its card lists "
                             f"{', '.join(r.path for r in refs) or 'none'}), so the card's rights do not cover its "
                             f"faces; say whose faces they are and under what rights with --rights TEXT")
    return [Path(p) for p in cfg.facesets]


def train_segmenter(cfg: SegmenterTrainConfig, progress: bool = True) -> SegmenterTrainResult:
    """Train MODEL_DIR's occluder segmenter and save it with the model (one atomic generation)."""
    from tqdm import tqdm

    from renderer.atomic import sha256_file
    from renderer.augment import AugmentConfig, augment_batch
    from renderer.checkpoint import model_files, save_beside_model
    from renderer.faceset import INDEX_NAME, check_faceset_for_model, load_faceset
    from renderer.modelcard import card_text, load_model_card, now_utc
    from renderer.occluders import occluder_bank
    from renderer.train_data import load_training_faces

    if cfg.iterations is not None and cfg.iterations < 1:
        raise InputError(f"--iterations {cfg.iterations}: allowed: an integer >= 1")
    if cfg.minutes is not None and not cfg.minutes > 0:
        raise InputError(f"--minutes {cfg.minutes}: allowed: a number > 0")
    if cfg.batch < 2:
        raise InputError(f"--batch {cfg.batch}: allowed: an integer >= 2")
    if cfg.threads is not None:
        if cfg.threads < 1:
            raise InputError(f"--threads {cfg.threads}: allowed: an integer >= 1")
        torch.set_num_threads(cfg.threads)
    card = load_model_card(cfg.model_dir)
    model_files(cfg.model_dir)  # ModelError for a folder that is no saved model
    s = int(card.config.input_size)
    scfg = SegmenterConfig(s, cfg.widths)
    scfg.validate()
    paths = _model_facesets(cfg, card)
    faces_list, masks_list = [], []
    for p in paths:
        fs = load_faceset(p)
        check_faceset_for_model(fs, card.config, p, "give the model's own facesets")
        f, m = load_training_faces(fs, s)
        faces_list.append(f)
        masks_list.append(m)
    faces, masks = torch.cat(faces_list), torch.cat(masks_list)
    bank = occluder_bank(cfg.photos, s)
    gen = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    net = Segmenter(scfg)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    aug = AugmentConfig(rotation=15.0, zoom=0.1, shift=0.08, warp=0.0, lab_l=12.0, lab_ab=8.0)
    target_it = cfg.iterations if cfg.iterations is not None else (None if cfg.minutes else DEFAULT_ITERATIONS)
    schedule = target_it or DEFAULT_ITERATIONS  # the learning rate's cosine decay spans this many iterations
    deadline = time.monotonic() + cfg.minutes * 60 if cfg.minutes else math.inf
    history: list[float] = []
    t0 = time.monotonic()
    it = 0
    with tqdm(total=target_it, disable=not progress, unit="it", dynamic_ncols=True, desc="segmenter") as bar:
        while (target_it is None or it < target_it) and time.monotonic() < deadline:
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, it / schedule)))
            idx = torch.randint(len(faces), (cfg.batch,), generator=gen)
            _, img, tmasks = augment_batch(faces[idx], masks[idx], aug, gen)
            x, alpha = occluded_batch(img, cfg.occluded, gen, bank)
            loss = segmenter_loss(net(x), alpha, tmasks[:, :1])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            it += 1
            bar.update(1)
            if it % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(history[-20:]):.4f}")
    if not history:
        raise InputError("train-segmenter: the time limit ended before the first iteration")
    seconds = time.monotonic() - t0
    net.eval()
    iou = held_out_iou(net, faces, masks, aug, bank, cfg.seed + 1)
    blob = segmenter_bytes(net)
    scard = SegmenterCard(
        config=scfg, facesets=tuple(str(p.resolve()) for p in paths),
        facesets_sha256=tuple(sha256_file(p / INDEX_NAME) for p in paths), faces=len(faces),
        photos=tuple(sorted({q.name for p in cfg.photos for q in ([Path(p)] if Path(p).is_file() else sorted(Path(p).iterdir()))})),
        iterations=it, loss_first=round(float(np.mean(history[:20])), 6), loss_last=round(float(np.mean(history[-20:])), 6),
        loss="BCE of occluder logits (1 inside the face mask, 0.25 outside, occluder pixels x2) on synthetic occluders",
        synthetic_iou=round(iou, 4), rights=cfg.rights.strip(), weights_sha256=hashlib.sha256(blob).hexdigest(),
        train_seconds=round(seconds, 3), created=now_utc())
    card = dataclasses.replace(card, segmenter=scard)
    save_beside_model(cfg.model_dir, {SEGMENTER_NAME: blob}, card_text(card).encode("utf-8"),
                      f"{card.iterations:08d}-segmenter")
    return SegmenterTrainResult(Path(cfg.model_dir), scard, seconds)


def held_out_iou(net: Segmenter, faces: Tensor, masks: Tensor, aug: object, bank: Tensor | None, seed: int) -> float:
    """IoU over EVAL_FACES synthetic faces drawn with `seed` (not the training stream), every face occluded."""
    from renderer.augment import augment_batch

    gen = torch.Generator().manual_seed(seed)
    inter = union = 0
    with torch.inference_mode():
        for _ in range(EVAL_FACES // 16):
            idx = torch.randint(len(faces), (16,), generator=gen)
            _, img, tmasks = augment_batch(faces[idx], masks[idx], aug, gen)  # type: ignore[arg-type]
            x, alpha = occluded_batch(img, 1.0, gen, bank)
            inside = tmasks[:, :1] > 0.5
            p, t = (torch.sigmoid(net(x)) > 0.5) & inside, (alpha > 0.5) & inside
            inter += int((p & t).sum())
            union += int((p | t).sum())
    return 1.0 if union == 0 else inter / union


__all__ = ["Segmenter", "SegmenterTrainConfig", "SegmenterTrainResult", "held_out_iou", "occluded_batch",
           "segmenter_bytes", "segmenter_loss", "train_segmenter"]
