"""The swap model's config: what rebuilds the network and how its faces were aligned.

Kept apart from `renderer.model` (the torch modules) so that reading a model card, or
checking one, never imports torch (over a second of a process's start-up).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from renderer.errors import InputError, ModelError, closest

ARCHS = ("original", "lite", "hd")
WEIGHTS_NAME = "model.safetensors"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild the network, plus how its training faces were aligned.

    encoder_widths: channels of the stride-2 convolutions; input_size / 2**len == 4.
    bottleneck: width of the first dense layer (the shared code).
    latent_channels: channels of the 4x4 map the second dense layer is reshaped to.
    encoder_upscale: channels after the encoder's pixel-shuffle upscale to 8x8.
    decoder_widths: channels of each decoder upscale; 8 * 2**len == input_size.
    separable: depthwise-separable convolutions (the `lite` trick) instead of dense ones.
    coverage, landmark_points, crop_size: copied from the training facesets, so the
        swap stage aligns faces exactly as the model saw them.
    """

    arch: Literal["original", "lite", "hd"] = "original"
    input_size: int = 64
    encoder_widths: tuple[int, ...] = (128, 256, 512, 1024)
    bottleneck: int = 1024
    latent_channels: int = 1024
    encoder_upscale: int = 512
    decoder_widths: tuple[int, ...] = (256, 128, 64)
    separable: bool = False
    learn_mask: bool = False
    coverage: float = 0.375
    landmark_points: int = 68
    crop_size: int = 256

    @staticmethod
    def for_arch(arch: str, **overrides: Any) -> "ModelConfig":
        """The named architecture with optional field overrides; InputError for unknown names."""
        presets: dict[str, dict[str, Any]] = {
            "original": {},
            "lite": dict(
                input_size=64, encoder_widths=(32, 64, 128, 256), bottleneck=256,
                latent_channels=256, encoder_upscale=160, decoder_widths=(96, 48, 24), separable=True,
            ),
            "hd": dict(
                input_size=128, encoder_widths=(128, 256, 512, 768, 1024), bottleneck=1024,
                latent_channels=1024, encoder_upscale=512, decoder_widths=(384, 256, 128, 64),
            ),
        }
        if arch not in presets:
            raise InputError(f"model architecture {arch!r} is not known (available: {', '.join(ARCHS)}){closest(arch, ARCHS)}")
        fields = {f.name for f in dataclasses.fields(ModelConfig)}
        for key in overrides:
            if key not in fields:
                raise InputError(f"model config has no field {key!r} (fields: {', '.join(sorted(fields))})")
        cfg = ModelConfig(arch=arch, **{**presets[arch], **overrides})  # type: ignore[arg-type]
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """InputError when the widths do not fit the input size."""
        if self.arch not in ARCHS:
            raise InputError(f"model config: arch {self.arch!r} is not one of {ARCHS}")
        s = self.input_size
        if s < 16 or s & (s - 1):
            raise InputError(f"model config: input_size {s} must be a power of two >= 16")
        if s != 4 * 2 ** len(self.encoder_widths):
            raise InputError(
                f"model config: input_size {s} needs {int(math.log2(s)) - 2} encoder convolutions "
                f"(to reach 4x4), got {len(self.encoder_widths)}: {self.encoder_widths}"
            )
        if s != 8 * 2 ** len(self.decoder_widths):
            raise InputError(
                f"model config: input_size {s} needs {int(math.log2(s)) - 3} decoder upscales "
                f"(from 8x8), got {len(self.decoder_widths)}: {self.decoder_widths}"
            )
        if not 0.0 <= self.coverage < 1.0:
            raise InputError(f"model config: coverage {self.coverage} must be in [0, 1)")

    @property
    def out_channels(self) -> int:
        return 4 if self.learn_mask else 3

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["encoder_widths"] = list(self.encoder_widths)
        d["decoder_widths"] = list(self.decoder_widths)
        return d

    @staticmethod
    def from_dict(data: dict[str, Any]) -> "ModelConfig":
        """Inverse of `to_dict`; ModelError names an unknown or malformed field."""
        fields = {f.name for f in dataclasses.fields(ModelConfig)}
        unknown = set(data) - fields
        if unknown:
            raise ModelError(f"model config has unknown fields {sorted(unknown)} (known: {sorted(fields)})")
        try:
            kw = dict(data)
            for key in ("encoder_widths", "decoder_widths"):
                if key in kw:
                    kw[key] = tuple(int(v) for v in kw[key])
            cfg = ModelConfig(**kw)
            cfg.validate()
        except (TypeError, ValueError) as err:
            raise ModelError(f"model config is malformed: {err}") from err
        return cfg
