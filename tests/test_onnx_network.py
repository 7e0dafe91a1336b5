"""renderer.onnx_network: the swap network as an ONNX graph on OpenVINO and on ONNX Runtime gives
torch's outputs within float32 rounding for every architecture's layers (OpenVINO's bf16 as close to
them as torch's own bf16), each face's output the same bits whatever batch it came in; refuses
weights that are not the card's; a swap on either renders torch's frames but for a few values that
cross a rounding step; `runtime` chooses them where they can run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from renderer.errors import InputError, ModelError
from renderer.model_config import WEIGHTS_NAME, ModelConfig
from renderer.model_process import decode_batches, native_bf16, resolve_runtime
from renderer.onnx_network import OnnxNetwork, OpenVinoNetwork
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


def _torch_and_graph(cfg: ModelConfig, engine: str = "onnxruntime", precision: str = "fp32"):
    import torch

    from renderer.model import build_model

    torch.manual_seed(3)
    net = build_model(cfg).eval()
    for p in net.parameters():  # trained-looking weights: biases and scales away from their init
        p.data.add_(torch.randn_like(p) * 0.02)
    weights = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    return net, (OpenVinoNetwork if engine == "openvino" else OnnxNetwork)(cfg, weights, precision)


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_outputs_are_torchs_within_float32_rounding(name: str, engine: str) -> None:
    import torch

    cfg = CONFIGS[name]
    net, onnx = _torch_and_graph(cfg, engine)
    crops = _crops(11, cfg.input_size)  # a full batch of 8 and a zero-padded one of 3
    torch.set_num_threads(1)
    want = decode_batches(net, torch.device("cpu"), crops, "ba", 8, cfg.learn_mask)
    got = decode_batches(onnx, "cpu", crops, "ba", 8, cfg.learn_mask, threads=1)
    assert len(got) == len(want) == (4 if cfg.learn_mask else 2)
    for g, w in zip(got, want):
        assert g.dtype == np.float32 and g.shape == w.shape and g.flags.c_contiguous
        assert np.abs(g - w).max() < 2e-6, np.abs(g - w).max()
    assert np.abs(want[0] - want[-2 if cfg.learn_mask else -1]).max() > 0.01  # the two decoders differ


bf16_cpu = pytest.mark.skipif(not native_bf16("cpu"), reason="this CPU has neither AVX512-BF16 nor AMX-BF16")


@bf16_cpu
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_openvino_bf16_is_as_close_to_fp32_as_torchs_bf16(name: str) -> None:
    """OpenVINO's bf16 (every layer, its output layer too) against torch's fp32, beside torch's own
    bf16 (`model_process.load_network`: bf16 but for the decoders' output layers): the same order
    of error, and far from another decoder's face."""
    import torch

    cfg = CONFIGS[name]
    net, ov = _torch_and_graph(cfg, "openvino", "bf16")
    crops = _crops(11, cfg.input_size)
    torch.set_num_threads(1)
    want = decode_batches(net, torch.device("cpu"), crops, "ba", 8, cfg.learn_mask)
    half = net.to(torch.bfloat16).to(memory_format=torch.channels_last)
    for decoder in (half.decoder_a, half.decoder_b):
        decoder.out.float()
    torch_bf16 = decode_batches(half, torch.device("cpu"), crops, "ba", 8, cfg.learn_mask)
    got = decode_batches(ov, "cpu", crops, "ba", 8, cfg.learn_mask, threads=1)
    for g, w, t in zip(got, want, torch_bf16):
        err, torch_err = np.abs(g - w), np.abs(t - w)
        assert 1e-5 < err.max() < 0.05 and err.mean() < 2 * torch_err.mean() + 1e-4, (err.max(), err.mean(),
                                                                                     torch_err.mean())
    assert np.abs(got[0] - got[-2 if cfg.learn_mask else -1]).max() > 0.01


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=bf16_cpu)])
def test_openvino_gives_a_face_the_same_bits_in_any_batch(precision: str) -> None:
    """A farm's chunk and a one-piece render batch a shot's faces differently; each face's output
    must not depend on its batch's size, its place in the batch or the faces beside it."""
    cfg = CONFIGS["lite"]
    _, ov = _torch_and_graph(cfg, "openvino", precision)
    crops = _crops(11, cfg.input_size)
    whole = decode_batches(ov, "cpu", crops, "b", 8, False, threads=1)[0]
    for batch in (1, 3):
        assert np.array_equal(decode_batches(ov, "cpu", crops, "b", batch, False, threads=1)[0], whole), batch
    shifted = decode_batches(ov, "cpu", np.concatenate([crops[5:], crops[:5]]), "b", 8, False, threads=1)[0]
    assert np.array_equal(np.concatenate([shifted[6:], shifted[:6]]), whole)
    assert np.array_equal(decode_batches(ov, "cpu", crops, "b", 8, False, threads=2)[0], whole)  # 2 threads


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
    ov_net, ov_device, _, ov_precision = load_network(folder, "cpu", card, False, "fp32", runtime="openvino")
    assert isinstance(ov_net, OpenVinoNetwork) and (ov_device, ov_precision) == ("cpu", "fp32")
    assert precision == "fp32" and model_files(folder).is_dir()
    crops = _real_crops(9)
    want = decode_batches(torch_net, device, crops, "ab", 8, card.config.learn_mask)
    for net in (onnx_net, ov_net):
        for g, w in zip(decode_batches(net, "cpu", crops, "ab", 8, card.config.learn_mask, 1), want):
            assert np.abs(g - w).max() < 2e-6
    auto_net, _, _, auto_precision = load_network(folder, "cpu", card, False, "auto", runtime="auto")
    assert isinstance(auto_net, OpenVinoNetwork) and auto_precision == ("bf16" if native_bf16("cpu") else "fp32")


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
    bf16_here = "openvino" if native_bf16("cpu") else "torch"  # OpenVINO does not emulate bf16
    assert resolve_runtime("torch", "cpu", "fp32", False) == "torch"
    assert resolve_runtime("auto", "cpu", "fp32", False) == "openvino"
    assert resolve_runtime("auto", "cpu", "bf16", False) == bf16_here
    assert resolve_runtime("openvino", "cpu", "fp32", False) == "openvino"
    assert resolve_runtime("onnxruntime", "cpu", "fp32", False) == "onnxruntime"
    assert resolve_runtime("auto", "cpu", "fp32", True) == "torch"  # B's face upscaler runs on torch
    assert resolve_runtime("auto", "cuda", "fp32", False) == "torch"
    with pytest.raises(InputError, match=r"runtime='tensorrt' is not allowed \(allowed: auto, torch, openvino, "
                                         r"onnxruntime\)"):
        resolve_runtime("tensorrt", "cpu", "fp32", False)
    with pytest.raises(InputError, match="runtime onnxruntime cannot run this swap.*precision bf16"):
        resolve_runtime("onnxruntime", "cpu", "bf16", False)
    for runtime in ("openvino", "onnxruntime"):
        with pytest.raises(InputError, match=f"runtime {runtime} cannot run this swap.*upscaler on"):
            resolve_runtime(runtime, "cpu", "fp32", True)
        with pytest.raises(InputError, match=f"runtime {runtime} cannot run this swap.*device cuda"):
            resolve_runtime(runtime, "cuda", "fp32", False)


def test_auto_falls_back_to_onnx_runtime_then_torch_where_openvino_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from renderer import onnx_network

    installed = {"openvino"}
    monkeypatch.setattr(onnx_network, "available", lambda engine="onnxruntime": engine not in installed)
    assert resolve_runtime("auto", "cpu", "fp32", False) == "onnxruntime"
    assert resolve_runtime("auto", "cpu", "bf16", False) == "torch"
    with pytest.raises(InputError, match=r"runtime openvino cannot run this swap: it is not installed \(pip install "
                                         r"openvino\); use runtime torch or auto"):
        resolve_runtime("openvino", "cpu", "fp32", False)
    installed.add("onnxruntime")
    assert resolve_runtime("auto", "cpu", "fp32", False) == "torch"


@pytest.mark.parametrize("engine", ["openvino", "onnxruntime"])
def test_a_swap_on_a_graph_runtime_is_torchs_but_for_rounding_steps(tmp_path: Path, engine: str) -> None:
    from renderer import media
    from renderer.swap import SwapModel, SwapSettings, render_range

    clip = face_clip(tmp_path / "face.mkv", frames=10, codec="ffv1")
    frames = {}
    for runtime in ("torch", engine):
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
    diff = np.abs(frames["torch"] - frames[engine])
    # The network's 2e-6 moves a value across a rounding step here and there, and the steps after it
    # (colour statistics, blend, encode) carry that on: measured 88 of 5.2 M values, 24 by more than one.
    assert (diff > 0).mean() < 1e-4 and diff.max() <= 3, ((diff > 0).sum(), diff.max())
    assert np.abs(frames["torch"] - source).max() > 20  # both swapped the face


def test_openvino_is_imported_without_its_telemetry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`import openvino` sends a usage event and counts imports under ~/intel (openvino-telemetry);
    the model process imports it with that package blocked: OpenVINO's no-op stub takes its place,
    nothing is written under HOME, and the process ends with its render (the sender's fork once
    outlived it)."""
    import subprocess
    import sys

    from renderer.model_process import ModelProcess
    from renderer.modelcard import load_model_card

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)  # the telemetry's own opt-out for CI jobs must not be what passes this
    probe = subprocess.run([sys.executable, "-c", "import sys\nfrom renderer.onnx_network import import_openvino\n"
                            "import_openvino()\nimport openvino.tools.ovc as ovc\n"
                            "print(type(ovc.telemetry).__module__, 'openvino_telemetry' in sys.modules)"],
                           capture_output=True, text=True, timeout=120, check=True)
    assert probe.stdout.split() == ["openvino.tools.ovc.telemetry_stub", "False"], probe.stdout + probe.stderr
    card = load_model_card(trained_model())
    proc = ModelProcess.spawn("openvino", "fp32", "cpu")
    try:
        ready = proc.load(trained_model(), "cpu", card, False, 8, "fp32", "openvino").ready()
        assert ready["runtime"] == "openvino"
        (out,) = proc.result(proc.decode(_crops(3, card.config.input_size), "b", 1))
        assert out.shape == (3, card.config.input_size, card.config.input_size, 3)
    finally:
        proc.close()
    assert proc._proc.wait(timeout=30) == 0
    assert list(tmp_path.iterdir()) == []  # no ~/intel (consent, client id, usage count)
