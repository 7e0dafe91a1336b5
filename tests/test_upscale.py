"""The per-identity face upscaler (renderer/upscale.py): network, training, the model card's section,
the `upscale` preset key and the swap stage that pastes the larger face."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F_

from renderer import media
from renderer.checkpoint import model_files
from renderer.cli import main as cli_main
from renderer.composite import warp_mask_to_frame
from renderer.errors import InputError, ModelError
from renderer.model import load_model, save_model
from renderer.modelcard import load_model_card
from renderer.presets import load_preset
from renderer.swap import SwapModel, SwapSettings, render_range
from renderer.upscale import UPSCALER_NAME, Upscaler, UpscalerConfig, UpscaleTrainConfig, load_upscaler, train_upscaler
from tests.model_fixtures import face_clip, facesets, trained_model

FRAMES = 6


@pytest.mark.parametrize("scale", [2, 4])
def test_shapes_and_a_fresh_net_is_plain_bicubic(scale: int) -> None:
    net = Upscaler(UpscalerConfig(scale=scale, channels=8, blocks=1)).eval()
    x = torch.rand(2, 3, 16, 16)
    y = net(x)
    assert y.shape == (2, 3, 16 * scale, 16 * scale) and y.dtype == torch.float32
    want = F_.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    assert torch.equal(y, want)  # the head starts at zero: training only adds detail


def test_bad_scale_is_refused() -> None:
    with pytest.raises(InputError, match="scale 3 is not allowed"):
        Upscaler(UpscalerConfig(scale=3))


def _model_copy(tmp: Path) -> Path:
    dst = tmp / "model"
    shutil.copytree(trained_model(), dst)
    return dst


def _train(model: Path, iterations: int = 3, lr: float = 1e-3) -> object:
    return train_upscaler(UpscaleTrainConfig(model_dir=model, faceset_b=facesets()[1], iterations=iterations,
                                             batch=2, lr=lr, channels=8, blocks=1, threads=1), progress=False)


@pytest.fixture(scope="module")
def upscaled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = _model_copy(tmp_path_factory.mktemp("up"))
    _train(model)
    return model


def test_training_is_seeded_and_saved_with_its_card(upscaled: Path, tmp_path: Path) -> None:
    card = load_model_card(upscaled)
    up = card.upscaler
    assert up is not None and up.iterations == 3 and up.config.scale == 2 and up.faces == 1
    assert up.swap_weights_sha256 == card.weights_sha256 and "L1" in up.loss and len(up.faceset_sha256) == 64
    assert card.rights  # the swap model's rights still stand on the card
    blob = (model_files(upscaled) / UPSCALER_NAME).read_bytes()
    assert blob[8:9] == b"{"  # safetensors: an 8-byte header length, then its JSON header
    again = _model_copy(tmp_path)
    _train(again)
    assert load_model_card(again).upscaler.weights_sha256 == up.weights_sha256  # same seed, same weights
    model, _ = load_model(upscaled, "cpu")  # the swap model itself still loads
    assert model.config.input_size == 64


def test_load_round_trip_and_corrupt_weights_refused(upscaled: Path, tmp_path: Path) -> None:
    card = load_model_card(upscaled)
    net = load_upscaler(model_files(upscaled), card.upscaler, card.weights_sha256)
    x = torch.rand(1, 3, 64, 64)
    assert net(x).shape == (1, 3, 128, 128)
    assert torch.equal(net(x), load_upscaler(model_files(upscaled), card.upscaler, card.weights_sha256)(x))
    bad = tmp_path / "bad"
    shutil.copytree(upscaled, bad, symlinks=True)
    target = model_files(bad) / UPSCALER_NAME
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.unlink()
    target.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="upscaler.safetensors does not match"):
        SwapModel(bad, "a2b", "cpu", background=False)  # the network (and upscaler) load here
    with pytest.raises(ModelError, match="other swap weights"):
        load_upscaler(model_files(upscaled), card.upscaler, "0" * 64)


def test_saving_new_swap_weights_drops_the_stale_upscaler(upscaled: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(upscaled, copy, symlinks=True)
    model, card = load_model(copy, "cpu")
    save_model(copy, model, card, label="retrained")
    assert load_model_card(copy).upscaler is None


def test_faceset_too_small_for_the_scale_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="needs 256 px"):
        train_upscaler(UpscaleTrainConfig(model_dir=trained_model(), faceset_b=facesets()[1], iterations=1,
                                          scale=4), progress=False)


def test_cli_help_and_bad_model_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ex:
        cli_main(["train-upscaler", "--help"])
    assert ex.value.code == 0 and "upscale: auto" in capsys.readouterr().out
    assert cli_main(["train-upscaler", str(tmp_path / "none"), "--b", str(facesets()[1]), "--iterations", "1"]) == 2


def test_preset_key_is_validated() -> None:
    review = load_preset("review")
    assert review.upscale == "auto"
    assert review.with_overrides({"upscale": "off"}, "marker").upscale == "off"
    with pytest.raises(InputError, match=r"upscale.*auto, on, off"):
        review.with_overrides({"upscale": "yes"}, "marker 'FACESWAP upscale=yes'")


@contextlib.contextmanager
def recording_masks(used: dict[int, np.ndarray], sizes: list[int]) -> Iterator[None]:
    import renderer.swap.faces as stage

    real = stage.paste_face

    def paste(frame, swapped, frame_from_crop, crop_mask, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(swapped.shape[0])
        m = warp_mask_to_frame(crop_mask, frame_from_crop, frame.shape[:2])
        idx = int(kwargs["seed"][0])
        used[idx] = np.maximum(used.get(idx, m), m)
        return real(frame, swapped, frame_from_crop, crop_mask, *args, **kwargs)

    stage.paste_face = paste
    try:
        yield
    finally:
        stage.paste_face = real


def _render(clip: Path, model: Path, out: Path, upscale: str) -> tuple[list[np.ndarray], dict[int, np.ndarray], list[int]]:
    used: dict[int, np.ndarray] = {}
    sizes: list[int] = []
    with recording_masks(used, sizes):
        render_range(clip, out, model_dir=model, settings=SwapSettings(upscale=upscale, temporal=0.0), first=0,
                     last=FRAMES - 1, swap_ranges=[(0, FRAMES - 1)], codec="ffv1", audio=False)
    return [rgb for _, rgb in media.read_frames(out, 0, FRAMES - 1)], used, sizes


def test_swap_with_the_upscaler_keeps_outside_the_mask_and_the_face_aligned(tmp_path: Path) -> None:
    clip = face_clip(tmp_path / "face.mkv", frames=FRAMES, codec="ffv1")
    src = [rgb for _, rgb in media.read_frames(clip, 0, FRAMES - 1)]
    # An upscaler with lr 0 stays plain bicubic: its swap must land where the 64 px one does.
    model = _model_copy(tmp_path)
    _train(model, iterations=1, lr=0.0)
    off, used_off, sizes_off = _render(clip, model, tmp_path / "off.mkv", "off")
    up, used_up, sizes_up = _render(clip, model, tmp_path / "up.mkv", "auto")
    assert set(sizes_off) == {64} and set(sizes_up) == {128}
    assert sorted(used_up) == list(range(FRAMES))
    for i in range(FRAMES):
        outside = used_up[i] == 0
        assert np.array_equal(src[i][outside], up[i][outside]), f"frame {i}: a pixel outside the mask changed"
        inside = used_up[i] > 0.9
        assert np.abs(src[i][inside].astype(int) - up[i][inside]).mean() > 3.0, f"frame {i}: face barely changed"
        # aligned: the upscaled mask covers the same pixels, and the faces agree to a bicubic-vs-bilinear difference
        both = (used_off[i] > 0.9) & inside
        assert both.sum() > 0.95 * inside.sum()
        d = np.abs(off[i][both].astype(int) - up[i][both]).mean()
        assert d < 2.5, f"frame {i}: the upscaled face is off the 64 px one by {d:.2f} levels on average"


def test_upscale_on_without_an_upscaler_is_refused(tmp_path: Path) -> None:
    clip = face_clip(tmp_path / "face.mkv", frames=2, codec="ffv1")
    with pytest.raises(InputError, match="upscale=on needs a model with a face upscaler"):
        render_range(clip, tmp_path / "o.mkv", model_dir=trained_model(), settings=SwapSettings(upscale="on"),
                     first=0, last=1, swap_ranges=[(0, 1)], codec="ffv1", audio=False)
    assert not (tmp_path / "o.mkv").exists()


def test_a_model_loaded_with_upscale_off_refuses_a_swap_that_upscales(upscaled: Path, tmp_path: Path) -> None:
    """`SwapModel(upscale="off")` loads no upscaler; handing it to a render whose settings upscale is
    an InputError before any frame is written, not a swap without the upscaler."""
    clip = face_clip(tmp_path / "face.mkv", frames=2, codec="ffv1")
    model = SwapModel(upscaled, "a2b", "cpu", upscale="off")
    assert model.has_upscaler and not model.loads_upscaler
    with pytest.raises(InputError, match="loaded with upscale off"):
        render_range(clip, tmp_path / "o.mkv", model_dir=upscaled, model=model, settings=SwapSettings(upscale="auto"),
                     first=0, last=1, swap_ranges=[(0, 1)], codec="ffv1", audio=False)
    assert not (tmp_path / "o.mkv").exists()


def test_doppel_swap_upscale_flag(upscaled: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--upscale off on a model with an upscaler renders exactly what the same model without one does;
    --upscale on with a model that has none exits 2 with nothing written."""
    clip = face_clip(tmp_path / "face.mkv", frames=2, codec="ffv1")
    outs = {name: tmp_path / f"{name}.mkv" for name in ("auto", "off", "plain")}
    for name, model, flag in (("auto", upscaled, []), ("off", upscaled, ["--upscale", "off"]),
                              ("plain", trained_model(), [])):
        code = cli_main(["swap", str(clip), "--model", str(model), "--out", str(outs[name]), "--codec", "ffv1",
                         "--no-progress", *flag])
        assert code == 0, capsys.readouterr().err
    frames = {name: dict(media.read_frames(path, 0, 1)) for name, path in outs.items()}
    assert all(np.array_equal(frames["off"][i], frames["plain"][i]) for i in range(2))
    assert any(np.any(frames["auto"][i] != frames["plain"][i]) for i in range(2)), "auto did not use the upscaler"
    capsys.readouterr()
    code = cli_main(["swap", str(clip), "--model", str(trained_model()), "--out", str(tmp_path / "on.mkv"),
                     "--upscale", "on", "--no-progress"])
    assert code == 2 and "upscale=on needs a model with a face upscaler" in capsys.readouterr().err
    assert not (tmp_path / "on.mkv").exists()
