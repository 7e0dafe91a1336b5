"""The swap model: one shared encoder, one decoder per identity.

Convention: images are (B, 3, S, S) float32 RGB in [0, 1], S = `ModelConfig.input_size`.
A decoder returns (B, 3, S, S) in [0, 1], or (B, 4, S, S) when `learn_mask` is set:
channel 3 is the learned face mask in [0, 1]. Encoding face A and decoding it with
decoder "b" is the swap.

Architectures (`ModelConfig.for_arch`):
  original  the 2017 "deepfakes" network, faithfully: 64x64 input, four 5x5 stride-2
            convolutions (128, 256, 512, 1024), Dense(1024), Dense(4*4*1024), reshape,
            pixel-shuffle upscale to 8x8x512; decoders: three upscales (256, 128, 64)
            and a 5x5 convolution with sigmoid. 82,062,470 parameters.
  lite      the same idea for CPUs: depthwise-separable encoder, small bottleneck,
            narrow decoders. 3,845,846 parameters (14.7 MiB of float32 weights).
  hd        128x128 for GPUs: five stride-2 convolutions, two more decoder upscales.

Weights on disk are safetensors only (`save_model` / `load_model`); the model card
(`renderer.modelcard`) beside them stores this config, so a model loads itself.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from renderer.errors import InputError, ModelError
from renderer.model_config import ARCHS, WEIGHTS_NAME, ModelConfig  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from renderer.modelcard import ModelCard


def _act() -> nn.Module:
    # In place: every activation follows a convolution whose output nothing else reads,
    # and LeakyReLU's backward needs only its result, so one (B, C, H, W) buffer is saved per layer.
    return nn.LeakyReLU(0.1, inplace=True)


GEMM_MAX_PIXELS = 16


class Conv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, same state_dict) that runs tiny output maps as one GEMM on the CPU.

    oneDNN is slow on the 2017 network's 4x4 layers (1024 -> 2048 channels at 4x4 is a
    512 x 9216 x 2048 matrix product it tiles poorly): there an explicit im2col (`F.unfold`)
    and one `addmm` is about 1.2-2x faster, forward and backward. Same maths, float32 rounding
    only. Returns (B, cout, Ho, Wo) with channels-last strides on that path.
    """

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        kh, kw = self.kernel_size
        (sh, sw), (dh, dw) = self.stride, self.dilation
        pad = self.padding
        if x.device.type != "cpu" or self.groups != 1 or self.padding_mode != "zeros" or isinstance(pad, str):
            return super().forward(x)
        ho = (h + 2 * pad[0] - dh * (kh - 1) - 1) // sh + 1
        wo = (w + 2 * pad[1] - dw * (kw - 1) - 1) // sw + 1
        if ho * wo > GEMM_MAX_PIXELS:
            return super().forward(x)
        cols = F.unfold(x, self.kernel_size, self.dilation, pad, self.stride)  # (B, cin*kh*kw, Ho*Wo)
        cols = cols.transpose(1, 2).reshape(b * ho * wo, -1)  # (B*Ho*Wo, cin*kh*kw)
        weight = self.weight.reshape(self.out_channels, -1).t()  # (cin*kh*kw, cout); a copy for channels-last (bf16) weights
        y = torch.mm(cols, weight) if self.bias is None else torch.addmm(self.bias, cols, weight)
        return y.view(b, ho, wo, self.out_channels).permute(0, 3, 1, 2)  # (B, cout, Ho, Wo)


def conv(cin: int, cout: int, k: int, stride: int, separable: bool) -> nn.Module:
    """k x k convolution with 'same'-style padding; depthwise + pointwise when `separable`."""
    if not separable or cin < 8:
        return Conv2d(cin, cout, k, stride, padding=k // 2)
    return nn.Sequential(
        Conv2d(cin, cin, k, stride, padding=k // 2, groups=cin),
        Conv2d(cin, cout, 1),
    )


class Upscale(nn.Module):
    """conv3x3 to 4*cout, LeakyReLU 0.1, PixelShuffle(2): (B, cin, H, W) -> (B, cout, 2H, 2W)."""

    def __init__(self, cin: int, cout: int, separable: bool = False) -> None:
        super().__init__()
        self.conv = conv(cin, cout * 4, 3, 1, separable)
        self.act = _act()
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        return self.shuffle(self.act(self.conv(x)))


class Encoder(nn.Module):
    """(B, 3, S, S) in [0, 1] -> (B, encoder_upscale, 8, 8) shared code."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for width in cfg.encoder_widths:  # S -> S/2 -> ... -> 4
            layers += [conv(cin, width, 5, 2, cfg.separable), _act()]
            cin = width
        self.convs = nn.Sequential(*layers)
        self.latent_channels = cfg.latent_channels
        self.dense1 = nn.Linear(cin * 4 * 4, cfg.bottleneck)
        self.dense2 = nn.Linear(cfg.bottleneck, 4 * 4 * cfg.latent_channels)
        self.upscale = Upscale(cfg.latent_channels, cfg.encoder_upscale, cfg.separable)

    def forward(self, x: Tensor) -> Tensor:
        x = self.convs(x)  # (B, C, 4, 4)
        # Keras flattened channels-last (H, W, C); the order is irrelevant to what the layer can learn.
        x = self.dense2(self.dense1(x.flatten(1)))  # (B, 4*4*latent)
        x = x.view(-1, self.latent_channels, 4, 4)
        return self.upscale(x)  # (B, encoder_upscale, 8, 8)


class Decoder(nn.Module):
    """(B, encoder_upscale, 8, 8) -> (B, 3 or 4, S, S) in [0, 1] (channel 3: mask)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        ups: list[nn.Module] = []
        cin = cfg.encoder_upscale
        for width in cfg.decoder_widths:  # 8 -> 16 -> ... -> S
            ups.append(Upscale(cin, width))
            cin = width
        self.ups = nn.Sequential(*ups)
        self.out = Conv2d(cin, cfg.out_channels, 5, padding=2)

    def forward(self, z: Tensor) -> Tensor:
        x = self.ups(z)
        # The output layer may run wider than the rest (bf16 inference keeps it float32: the face's
        # code values are not rounded to bfloat16's 8 bits); a no-op cast otherwise.
        return torch.sigmoid(self.out(x.to(self.out.weight.dtype)))


class SwapAutoencoder(nn.Module):
    """encoder shared by both identities; decoder_a rebuilds A, decoder_b rebuilds B."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.config = cfg
        self.encoder = Encoder(cfg)
        self.decoder_a = Decoder(cfg)
        self.decoder_b = Decoder(cfg)

    def forward(self, x: Tensor, decoder: Literal["a", "b"]) -> Tensor:
        """x (B, 3, S, S) float32 RGB [0, 1] -> (B, 3 or 4, S, S) [0, 1] through decoder `decoder`."""
        if decoder == "a":
            return self.decoder_a(self.encoder(x))
        if decoder == "b":
            return self.decoder_b(self.encoder(x))
        raise ValueError(f"decoder must be 'a' or 'b', got {decoder!r}")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def build_model(cfg: ModelConfig) -> SwapAutoencoder:
    """A freshly initialised model (PyTorch's default init, drawn from the global RNG)."""
    cfg.validate()
    return SwapAutoencoder(cfg)


def pick_device(flag: str | None = None) -> torch.device:
    """`flag` when given (InputError when unavailable), else cuda > mps > cpu."""
    if flag:
        if flag not in ("cpu", "cuda", "mps") and not flag.startswith("cuda:"):
            raise InputError(f"--device {flag!r} is not known (allowed: cpu, cuda, cuda:N, mps)")
        if flag.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"--device {flag}: no CUDA device is available on this machine (try --device cpu)")
        if flag == "mps" and not (torch.backends.mps.is_available()):
            raise InputError("--device mps: Apple MPS is not available on this machine (try --device cpu)")
        return torch.device(flag)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def save_model(
    model_dir: Path | str,
    model: SwapAutoencoder,
    card: "ModelCard",
    extra_files: dict[str, bytes] | None = None,
    label: str | None = None,
) -> Path:
    """Save weights, card and `extra_files` (name -> bytes: optimizer state, previews) as one
    checkpoint generation of MODEL_DIR (`renderer.checkpoint.save_files`): all or nothing.

    The card records the weights' SHA-256, so a card is never paired with other weights.
    `label` names the generation (default: the card's iteration). Returns its folder.
    """
    from renderer.checkpoint import safetensors_bytes, save_files
    from renderer.modelcard import CARD_NAME, card_text, validate_rights

    validate_rights(card.rights, f"model card for {model_dir}")  # before anything is written
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    blob = safetensors_bytes(tensors, {"format": "doppel-swap-autoencoder", "arch": model.config.arch})
    import hashlib

    from renderer.error_prior import PRIOR_NAME
    from renderer.segmenter import SEGMENTER_NAME
    from renderer.upscale import UPSCALER_NAME

    # New swap weights make what later steps added stale (an upscaler and an error prior learned from the
    # old decoders; the segmenter is dropped with them, as its docs say): each section goes unless the
    # save carries its file (the steps that add one save through `checkpoint.save_beside_model`).
    extra = extra_files or {}
    card = dataclasses.replace(card, weights_sha256=hashlib.sha256(blob).hexdigest(), config=model.config,
                               upscaler=card.upscaler if UPSCALER_NAME in extra else None,
                               error_prior=card.error_prior if PRIOR_NAME in extra else None,
                               segmenter=card.segmenter if SEGMENTER_NAME in extra else None)
    files = {WEIGHTS_NAME: blob, **(extra_files or {}), CARD_NAME: card_text(card).encode("utf-8")}
    return save_files(model_dir, files, label or f"{card.iterations:08d}")


def load_model(
    model_dir: Path | str, device: str | torch.device | None = None
) -> tuple[SwapAutoencoder, "ModelCard"]:
    """Load weights and card; eval mode on `device` (default: `pick_device()`).

    ModelError (exit 2) names the problem: missing folder, missing card, a card
    without rights, missing or corrupt weights, weights that do not match the card.
    """
    from safetensors import SafetensorError
    from safetensors.torch import load as st_load

    from renderer.atomic import sha256_file
    from renderer.checkpoint import model_files
    from renderer.modelcard import read_model_card

    model_dir = Path(model_dir)
    files = model_files(model_dir)  # resolved once: card and weights come from the same save
    card = read_model_card(files)
    weights = files / WEIGHTS_NAME
    if not weights.is_file():
        raise ModelError(f"model {model_dir}: {WEIGHTS_NAME} is missing (the card is there; was training interrupted?)")
    if card.weights_sha256 and sha256_file(weights) != card.weights_sha256:
        raise ModelError(
            f"model {model_dir}: {WEIGHTS_NAME} does not match the SHA-256 recorded in model.yaml "
            f"(corrupt or replaced weights; re-save or retrain)"
        )
    try:
        state = st_load(weights.read_bytes())
    except (SafetensorError, OSError, ValueError) as err:
        raise ModelError(f"model {model_dir}: {WEIGHTS_NAME} is not a readable safetensors file ({err})") from err
    card.config.validate()
    # Built on the meta device (no memory, no init drawn from the global RNG) and given the
    # loaded tensors as its parameters: a random init that the weights overwrite cost a
    # swap's start-up about 0.4 s (init plus the copy).
    with torch.device("meta"):
        model = SwapAutoencoder(card.config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    bad_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or bad_shape:
        raise ModelError(
            f"model {model_dir}: weights do not fit the config in model.yaml (arch {card.config.arch}): "
            f"missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {bad_shape[:3]}"
        )
    model.load_state_dict(state, assign=True)
    dev = pick_device(None) if device is None else torch.device(device)
    model.to(dev).eval()
    return model, card
