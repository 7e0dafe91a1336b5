"""Model shapes, parameter counts, device choice, safetensors round trip and load errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from renderer.errors import InputError, ModelError
from renderer.checkpoint import model_files
from renderer.model import ModelConfig, build_model, load_model, pick_device, save_model
from renderer.modelcard import CARD_NAME, ModelCard
from tests.train_data import tiny_config


def _card(cfg: ModelConfig) -> ModelCard:
    return ModelCard(config=cfg, name_a="presenter", name_b="astronaut", rights="test faces from public registry packages")


def test_original_is_the_2017_network_with_82m_parameters() -> None:
    model = build_model(ModelConfig.for_arch("original"))
    assert model.num_parameters() == 82_062_470
    convs = [m for m in model.encoder.convs if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [
        (128, (5, 5), (2, 2)), (256, (5, 5), (2, 2)), (512, (5, 5), (2, 2)), (1024, (5, 5), (2, 2))]
    assert (model.encoder.dense1.out_features, model.encoder.dense2.out_features) == (1024, 4 * 4 * 1024)
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64)
        z = model.encoder(x)
        assert z.shape == (1, 512, 8, 8)
        for dec in ("a", "b"):
            y = model(x, dec)
            assert y.shape == (1, 3, 64, 64) and y.dtype == torch.float32
            assert 0 <= float(y.min()) and float(y.max()) <= 1


@pytest.mark.parametrize("arch", ["lite", "hd"])
def test_other_archs_shapes_and_sizes(arch: str) -> None:
    cfg = ModelConfig.for_arch(arch, learn_mask=True)
    model = build_model(cfg)
    s = cfg.input_size
    with torch.no_grad():
        y = model(torch.rand(2, 3, s, s), "b")
    assert y.shape == (2, 4, s, s)
    assert 0 <= float(y.min()) and float(y.max()) <= 1
    if arch == "lite":
        assert s == 64
        assert model.num_parameters() * 4 < 16 * 2**20  # a useful demo model stays well under 20 MiB
        assert model.num_parameters() < build_model(ModelConfig.for_arch("original")).num_parameters() / 15
    else:
        assert s == 128


def test_config_validation_names_the_problem() -> None:
    with pytest.raises(InputError, match="did you mean 'lite'"):
        ModelConfig.for_arch("lit")
    with pytest.raises(InputError, match="needs 4 encoder convolutions"):
        ModelConfig.for_arch("original", encoder_widths=(8, 16))
    with pytest.raises(InputError, match="no field 'widths'"):
        ModelConfig.for_arch("lite", widths=3)
    with pytest.raises(ModelError, match="unknown fields"):
        ModelConfig.from_dict({**tiny_config().to_dict(), "colour": 1})
    assert ModelConfig.from_dict(tiny_config().to_dict()) == tiny_config()


def test_pick_device() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(None).type in ("cpu", "cuda", "mps")
    with pytest.raises(InputError, match="not known"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA device"):
            pick_device("cuda")


def test_safetensors_round_trip(tmp_path: Path) -> None:
    cfg = tiny_config(learn_mask=True)
    torch.manual_seed(3)
    model = build_model(cfg)
    save_model(tmp_path / "m", model, _card(cfg))
    assert not list((tmp_path / "m").glob(".*partial*"))  # no temp files left behind
    loaded, card = load_model(tmp_path / "m", device="cpu")
    assert card.config == cfg and card.identities == ("presenter", "astronaut")
    assert not loaded.training
    for (k, v), (k2, v2) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.eval()(x, "a"), loaded(x, "a"))
    head = (tmp_path / "m" / "model.safetensors").read_bytes()[:200]
    assert b"pickle" not in head and b"torch" not in head[:8]


def test_load_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope")
    cfg = tiny_config()
    model_dir = tmp_path / "m"
    save_model(model_dir, build_model(cfg), _card(cfg))
    weights = model_dir / "model.safetensors"
    good = weights.read_bytes()

    weights.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        load_model(model_dir, device="cpu")

    # corrupt bytes with the card's digest updated: the safetensors reader itself refuses
    weights.write_bytes(b"\x00garbage" * 10)
    text = (model_dir / CARD_NAME).read_text()
    import hashlib
    import re

    new = re.sub(r"weights_sha256: \w+", f"weights_sha256: {hashlib.sha256(weights.read_bytes()).hexdigest()}", text)
    (model_dir / CARD_NAME).write_text(new)
    with pytest.raises(ModelError, match="not a readable safetensors file"):
        load_model(model_dir, device="cpu")

    # weights of another config under this card
    other = build_model(dataclasses.replace(cfg, bottleneck=48))
    save_model(tmp_path / "other", other, _card(other.config))
    (model_dir / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    (model_dir / CARD_NAME).write_text(re.sub(
        r"weights_sha256: \w+", f"weights_sha256: {hashlib.sha256(weights.read_bytes()).hexdigest()}", text))
    with pytest.raises(ModelError, match="do not fit the config"):
        load_model(model_dir, device="cpu")

    files = model_files(model_dir)  # the current checkpoint's folder (model.safetensors above is a link into it)
    (files / "model.safetensors").unlink()
    with pytest.raises(ModelError, match="model.safetensors is missing"):
        load_model(model_dir, device="cpu")
    (files / CARD_NAME).unlink()
    with pytest.raises(ModelError, match="no model.yaml"):
        load_model(model_dir, device="cpu")
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ModelError, match="a-file is a file, not a model folder"):
        load_model(tmp_path / "a-file", device="cpu")


@pytest.mark.parametrize("shape", [(4, 64, 8, 8, 96, 5, 2), (4, 96, 4, 4, 128, 3, 1), (2, 16, 32, 32, 24, 3, 1)])
def test_gemm_conv_matches_torch_conv_forward_and_backward(shape: tuple[int, ...]) -> None:
    from renderer.model import GEMM_MAX_PIXELS, Conv2d

    b, cin, h, w, cout, k, stride = shape
    torch.manual_seed(0)
    ours = Conv2d(cin, cout, k, stride, padding=k // 2)
    ref = torch.nn.Conv2d(cin, cout, k, stride, padding=k // 2)
    ref.load_state_dict(ours.state_dict())  # same parameters, same names
    for layout in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(b, cin, h, w).contiguous(memory_format=layout)
        x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
        y1, y2 = ours(x1), ref(x2)
        assert y1.shape == y2.shape and torch.allclose(y1, y2, atol=1e-4, rtol=1e-4)
        g = torch.randn_like(y2)
        y1.backward(g)
        y2.backward(g)
        assert torch.allclose(x1.grad, x2.grad, atol=1e-4, rtol=1e-4)  # type: ignore[arg-type]
        assert torch.allclose(ours.weight.grad, ref.weight.grad, atol=1e-3, rtol=1e-4)  # type: ignore[arg-type]
        assert torch.allclose(ours.bias.grad, ref.bias.grad, atol=1e-3, rtol=1e-4)  # type: ignore[arg-type]
        ours.zero_grad()
        ref.zero_grad()
    on_gemm_path = (h // stride) * (w // stride) <= GEMM_MAX_PIXELS
    assert on_gemm_path == (shape[2] <= 8)  # the cases above cover both paths


def test_gemm_conv_runs_bf16_channels_last_weights_as_a_bf16_render_loads_them() -> None:
    """`model_process.load_network` at bf16 makes the weights bfloat16 and channels-last; the GEMM
    path's weight matrix must then be a copy in (cin, kh, kw) order, not a view (an hd model's 4x4
    layers once raised there)."""
    from renderer.model import Conv2d

    torch.manual_seed(1)
    ours = Conv2d(32, 48, 3, 1, padding=1)
    x = torch.randn(2, 32, 4, 4)
    want = ours(x)
    half = ours.to(torch.bfloat16).to(memory_format=torch.channels_last)
    assert not half.weight.is_contiguous()
    got = half(x.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)).float()
    assert got.shape == want.shape and torch.allclose(got, want.detach(), atol=0.1, rtol=0.02)


def test_original_state_dict_layout_is_unchanged() -> None:
    # Checkpoints of every architecture must keep loading: names and shapes of the plain nn modules.
    model = build_model(ModelConfig.for_arch("lite"))
    sd = model.state_dict()
    assert len(sd) == 38 and sd["encoder.convs.0.weight"].shape == (32, 3, 5, 5)
    assert sd["encoder.convs.2.0.weight"].shape == (32, 1, 5, 5) and sd["decoder_b.out.weight"].shape == (3, 24, 5, 5)
    assert sd["encoder.upscale.conv.1.weight"].shape == (640, 256, 1, 1)
    assert sum(v.numel() for v in sd.values()) == 3_845_846
    demo = Path(__file__).resolve().parents[1] / "models" / "demo"
    if (demo / "model.safetensors").is_file():  # the shipped demo model loads into today's modules
        loaded, card = load_model(demo, device="cpu")
        assert card.config.arch == "lite"
        with torch.no_grad():
            assert loaded(torch.rand(1, 3, 64, 64), "a").shape[1] in (3, 4)
