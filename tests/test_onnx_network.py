"""renderer.onnx_network: the swap network as an ONNX graph on ONNX Runtime gives torch's outputs
within float32 rounding for every architecture's layers, refuses weights that are not the card's,
and a swap on it renders torch's frames but for a few values that cross a rounding step; `runtime` chooses it where it can run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from renderer.errors import InputError, ModelError
from renderer.model_config import WEIGHTS_NAME, ModelConfig
from renderer.model_process import decode_batches, resolve_runtime
from renderer.onnx_network import OnnxNetwork
from tests.model_fixtures import face_clip, trained_model

CONFIGS = {  # small versions of each architecture's layers: dense or separable, 64 or 128 px, 3 or 4 channels out
    "original+mask": ModelConfig.for_arch("original", encoder_widths=(16, 32, 64, 128), bottleneck=64,
                                          latent_channels=64, encoder_upscale=64, decoder_widths=(32, 16, 8),
                                          learn_mask=True),
    "lite": ModelConfig.for_arch("lite", encoder_widths=(16, 32, 64, 128), bottleneck=64, latent_channels=64,
                                 encoder_upscale=48, decoder_widths=(32, 16, 8)),
    "hd": ModelConfig.for_arch("hd", encoder_widths=(8, 16, 32, 64, 64), bottleneck=64, latent_channels=64,
                               encoder_upscale=64, decoder_widths=(32, 16, 16, 8)),
}


def _crops(n: int, size: int) -> np.ndarray:
    return np.random.default_rng(11).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def _torch_and_onnx(cfg: ModelConfig):
    import torch

    from renderer.model import build_model

    torch.manual_seed(3)
    net = build_model(cfg).eval()
    for p in net.parameters():  # trained-looking weights: biases and scales away from their init
        p.data.add_(torch.randn_like(p) * 0.02)
    weights = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    return net, OnnxNetwork(cfg, weights)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_outputs_are_torchs_within_float32_rounding(name: str) -> None:
    import torch

    cfg = CONFIGS[name]
    net, onnx = _torch_and_onnx(cfg)
    crops = _crops(11, cfg.input_size)  # a full batch of 8 and a zero-padded one of 3
    torch.set_num_threads(1)
    want = decode_batches(net, torch.device("cpu"), crops, "ba", 8, cfg.learn_mask)
    got = decode_batches(onnx, "cpu", crops, "ba", 8, cfg.learn_mask, threads=1)
    assert len(got) == len(want) == (4 if cfg.learn_mask else 2)
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and g.shape == w.shape and g.flags.c_contiguous
        assert np.abs(g - w).max() < 2e-6, np.abs(g - w).max()
    assert np.abs(want[0] - want[-2 if cfg.learn_mask else -1]).max() > 0.01  # the two decoders differ


def test_the_trained_model_through_its_load_path() -> None:
    """The shipped model, loaded both ways as a render loads it, on A's real aligned crops."""
    from renderer.checkpoint import model_files
    from renderer.model_process import load_network
    from renderer.modelcard import read_model_card
    from tests.test_model_process import _real_crops

    folder = trained_model()
    card = read_model_card(folder)
    torch_net, device, _, precision = load_network(folder, "cpu", card, False, "fp32", runtime="torch")
    onnx_net, onnx_device, upscaler, onnx_precision = load_network(folder, "cpu", card, False, "fp32",
                                                                  runtime="onnxruntime")
    assert isinstance(onnx_net, OnnxNetwork) and (onnx_device, upscaler, onnx_precision) == ("cpu", None, "fp32")
    assert precision == "fp32" and model_files(folder).is_dir()
    crops = _real_crops(9)
    for g, w in zip(decode_batches(onnx_net, "cpu", crops, "ab", 8, card.config.learn_mask, 1),
                    decode_batches(torch_net, device, crops, "ab", 8, card.config.learn_mask)):
        assert np.abs(g - w).max() < 2e-6


def test_weights_that_are_not_the_cards_are_refused(tmp_path: Path) -> None:
    import shutil

    from renderer.checkpoint import model_files
    from renderer.modelcard import read_model_card

    card = read_model_card(trained_model())
    folder = tmp_path / "model"
    shutil.copytree(model_files(trained_model()), folder)
    weights = folder / WEIGHTS_NAME
    blob = weights.read_bytes()
    weights.write_bytes(blob[:-10] + bytes(10))  # changed bytes: not the SHA-256 on the card
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        OnnxNetwork.load(folder, card.weights_sha256, card.config)
    weights.write_bytes(b"not safetensors")
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        OnnxNetwork.load(folder, None, card.config)
    weights.unlink()
    with pytest.raises(ModelError, match="missing or unreadable"):
        OnnxNetwork.load(folder, None, card.config)
    weights.write_bytes(blob)
    with pytest.raises(ModelError, match="do not fit the config"):  # another architecture's names
        OnnxNetwork.load(folder, None, CONFIGS["original+mask"])
    other = ModelConfig.from_dict({**card.config.to_dict(), "decoder_widths": [64, 32, 16]})
    with pytest.raises(ModelError, match="do not fit the config"):  # the same names, other shapes
        OnnxNetwork.load(folder, None, other)


def test_runtime_choice() -> None:
    assert resolve_runtime("torch", "cpu", "fp32", False) == "torch"
    assert resolve_runtime("auto", "cpu", "fp32", False) == "onnxruntime"
    assert resolve_runtime("onnxruntime", "cpu", "fp32", False) == "onnxruntime"
    assert resolve_runtime("auto", "cpu", "fp32", True) == "torch"  # B's face upscaler runs on torch
    assert resolve_runtime("auto", "cpu", "bf16", False) == "torch"
    assert resolve_runtime("auto", "cuda", "fp32", False) == "torch"
    with pytest.raises(InputError, match=r"runtime='tensorrt' is not allowed \(allowed: auto, torch, onnxruntime\)"):
        resolve_runtime("tensorrt", "cpu", "fp32", False)
    with pytest.raises(InputError, match="cannot run this swap.*precision bf16"):
        resolve_runtime("onnxruntime", "cpu", "bf16", False)
    with pytest.raises(InputError, match="cannot run this swap.*upscaler on"):
        resolve_runtime("onnxruntime", "cpu", "fp32", True)


def test_a_swap_on_onnx_runtime_is_torchs_but_for_rounding_steps(tmp_path: Path) -> None:
    from renderer import media
    from renderer.swap import SwapModel, SwapSettings, render_range

    clip = face_clip(tmp_path / "face.mkv", frames=10, codec="ffv1")
    frames = {}
    for runtime in ("torch", "onnxruntime"):
        out = tmp_path / f"{runtime}.mkv"
        model = SwapModel(trained_model(), "a2b", "cpu", process=True, precision="fp32", runtime=runtime)
        try:
            stats = render_range(clip, out, model_dir=Path(), model=model, settings=SwapSettings(precision="fp32"),
                                 first=0, last=9, swap_ranges=[(0, 9)], codec="ffv1")
        finally:
            model.close()
        assert stats.swapped == 10 and stats.runtime == runtime
        frames[runtime] = np.stack([f for _, f in media.read_frames(out, 0, 9)]).astype(np.int16)
    source = np.stack([f for _, f in media.read_frames(clip, 0, 9)]).astype(np.int16)
    diff = np.abs(frames["torch"] - frames["onnxruntime"])
    # The network's 2e-6 moves a value across a rounding step here and there, and the steps after it
    # (colour statistics, blend, encode) carry that on: measured 88 of 5.2 M values, 24 by more than one.
    assert (diff > 0).mean() < 1e-4 and diff.max() <= 3, ((diff > 0).sum(), diff.max())
    assert np.abs(frames["torch"] - source).max() > 20  # both swapped the face
