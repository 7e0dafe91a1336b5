"""The occluder segmenter (renderer/segmenter.py, renderer/train_segmenter.py): its ONNX graph against
torch, the synthetic occluders it learns from, training and the card's section, the checks on the weights
file and on whose faces it learns, and `occlusion: learned` in a real swap."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from renderer import media
from renderer.checkpoint import model_files
from renderer.cli import main as cli_main
from renderer.composite import OcclusionSettings
from renderer.errors import InputError, ModelError
from renderer.model import load_model, save_model
from renderer.modelcard import load_model_card
from renderer.segmenter import SEGMENTER_NAME, SegmenterConfig, SegmenterRuntime, load_segmenter, read_weights
from renderer.swap import SwapModel, SwapSettings, render_range
from renderer.train_segmenter import Segmenter, SegmenterTrainConfig, occluded_batch, segmenter_bytes, train_segmenter
from tests import face_data as F
from tests.model_fixtures import face_clip, facesets, trained_model

RIGHTS = "the test facesets' faces: kphotoalbum demo video (GPL-2+) and the NASA astronaut portrait (public domain)"


def _crops(n: int, size: int = 64) -> np.ndarray:
    """(n, size, size, 3) uint8: real aligned faces of the presenter faceset."""
    from renderer.faceset import load_faceset

    import cv2

    images = load_faceset(facesets()[0]).load_images()[:n]
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


@pytest.mark.parametrize("size,widths", [(64, (16, 32, 48, 64)), (128, (8, 8, 16, 16))])
def test_onnx_graph_matches_torch(size: int, widths: tuple[int, int, int, int]) -> None:
    torch.manual_seed(1)
    cfg = SegmenterConfig(size, widths)
    net = Segmenter(cfg).eval()
    with torch.no_grad():  # a head with real contrast: a fresh net's outputs sit near 0.5
        net.convs["head"].weight.mul_(100.0)
    crops = _crops(11, size)
    got = SegmenterRuntime(cfg, net.state_arrays())(crops)
    with torch.no_grad():
        want = torch.sigmoid(net(torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0))[:, 0].numpy()
    assert got.shape == (11, size, size) and got.dtype == np.float32
    assert np.abs(got - want).max() < 1e-5
    assert want.std() > 0.05  # the comparison sees outputs that vary
    alone = SegmenterRuntime(cfg, net.state_arrays())(crops[9:10])
    assert np.abs(alone[0] - got[9]).max() < 1e-6  # a face's map does not depend on the faces batched with it


def test_bad_config_is_refused() -> None:
    with pytest.raises(InputError, match="multiple of 8"):
        Segmenter(SegmenterConfig(60))
    with pytest.raises(InputError, match="widths"):
        Segmenter(SegmenterConfig(64, (16, 32, 48)))  # type: ignore[arg-type]


def test_synthetic_occluders_mark_what_they_cover() -> None:
    gen = torch.Generator().manual_seed(0)
    img = torch.from_numpy(_crops(8)).permute(0, 3, 1, 2).float() / 255.0
    x, alpha = occluded_batch(img, 1.0, gen, None)
    assert x.shape == img.shape and alpha.shape == (8, 1, 64, 64)
    for i in range(8):
        cover = alpha[i, 0] > 0.99
        assert 20 < int(cover.sum()) < 64 * 64  # every face got an occluder, none covers the whole crop
        # where an occluder lies the input changed far more than the blur and noise change the rest
        diff = (x[i] - img[i]).abs().mean(0)
        assert float(diff[cover].mean()) > 2 * float(diff[alpha[i, 0] == 0].mean())
    x0, alpha0 = occluded_batch(img, 0.0, torch.Generator().manual_seed(0), None)
    assert float(alpha0.abs().max()) == 0.0  # no occluders: nothing marked
    again = occluded_batch(img, 1.0, torch.Generator().manual_seed(0), None)
    assert torch.equal(again[0], x) and torch.equal(again[1], alpha)  # seeded


def _model_copy(tmp: Path) -> Path:
    dst = tmp / "model"
    shutil.copytree(trained_model(), dst)
    return dst


def _train(model: Path, iterations: int = 4, **kw: object) -> object:
    photos = (F.kphotoalbum_file("snow.jpg"),)
    cfg = SegmenterTrainConfig(model_dir=model, facesets=facesets(), photos=photos, iterations=iterations, batch=4,
                               threads=1, widths=(8, 8, 16, 16), rights=RIGHTS, **kw)  # type: ignore[arg-type]
    return train_segmenter(cfg, progress=False)


@pytest.fixture(scope="module")
def segmented(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = _model_copy(tmp_path_factory.mktemp("seg"))
    _train(model)
    return model


def test_training_is_seeded_and_saved_with_its_card(segmented: Path, tmp_path: Path) -> None:
    card = load_model_card(segmented)
    seg = card.segmenter
    assert seg is not None and seg.iterations == 4 and seg.config == SegmenterConfig(64, (8, 8, 16, 16))
    assert seg.faces == 69 and len(seg.facesets) == 2 and all(len(h) == 64 for h in seg.facesets_sha256)
    assert seg.photos == ("snow.jpg",) and seg.rights == RIGHTS and 0.0 <= seg.synthetic_iou <= 1.0
    assert card.rights and card.weights_sha256  # the swap model's card stands as it was
    again = _model_copy(tmp_path)
    _train(again)
    # Same seed, same batches, the same weights up to float rounding: oneDNN's convolutions do not promise
    # the same bits from run to run (on a loaded machine two different SHA-256s were seen), so compare values.
    twin = read_weights(model_files(again), load_model_card(again).segmenter)
    for name, value in read_weights(model_files(segmented), seg).items():
        assert np.allclose(twin[name], value, rtol=0, atol=1e-5), name
    net = load_segmenter(model_files(segmented), seg)
    assert net(_crops(2)).shape == (2, 64, 64)
    model, _ = load_model(segmented, "cpu")  # the swap model itself still loads
    assert model.config.input_size == 64


def test_training_lowers_the_loss(tmp_path: Path) -> None:
    result = _train(_model_copy(tmp_path), iterations=60)
    assert result.card.loss_last < 0.8 * result.card.loss_first  # type: ignore[attr-defined]


def test_faces_the_card_does_not_list_need_rights(tmp_path: Path) -> None:
    model = _model_copy(tmp_path)
    with pytest.raises(InputError, match="is not one this model was trained on.*--rights"):
        train_segmenter(SegmenterTrainConfig(model_dir=model, facesets=facesets(), iterations=1), progress=False)
    assert load_model_card(model).segmenter is None and not (model_files(model) / SEGMENTER_NAME).exists()
    # the shipped card's faceset paths are relative to where it was trained: the default cannot find them
    with pytest.raises(InputError, match="not where its card says"):
        train_segmenter(SegmenterTrainConfig(model_dir=model, iterations=1), progress=False)


def test_corrupt_or_mismatched_weights_are_refused(segmented: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(segmented, bad, symlinks=True)
    target = model_files(bad) / SEGMENTER_NAME
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.unlink()
    target.write_bytes(bytes(data))
    card = load_model_card(bad).segmenter
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        read_weights(model_files(bad), card)
    # a file of another net whose SHA-256 the card was given: the shapes are checked too
    other = segmenter_bytes(Segmenter(SegmenterConfig(64, (8, 8, 8, 8))))
    target.unlink()
    target.write_bytes(other)
    import dataclasses
    import hashlib

    forged = dataclasses.replace(card, weights_sha256=hashlib.sha256(other).hexdigest())
    with pytest.raises(ModelError, match="does not fit its card: e2.down.weight"):
        read_weights(model_files(bad), forged)
    target.unlink()
    with pytest.raises(ModelError, match="segmenter.safetensors is missing"):
        read_weights(model_files(bad), card)


def test_saving_new_swap_weights_drops_the_segmenter(segmented: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m"
    shutil.copytree(segmented, copy, symlinks=True)
    model, card = load_model(copy, "cpu")
    save_model(copy, model, card, label="retrained")
    assert load_model_card(copy).segmenter is None


def _with_head_bias(model: Path, bias: float, tmp: Path) -> Path:
    """A copy of `model` whose segmenter says `sigmoid(bias)` everywhere (a real file, its card updated)."""
    import dataclasses
    import hashlib

    from renderer.checkpoint import save_beside_model
    from renderer.modelcard import card_text

    out = tmp / f"bias{bias:+g}"
    shutil.copytree(model, out, symlinks=True)
    card = load_model_card(out)
    weights = read_weights(model_files(out), card.segmenter)
    net = Segmenter.from_arrays(card.segmenter.config, weights)
    with torch.no_grad():
        net.convs["head"].weight.zero_()
        net.convs["head"].bias.fill_(bias)
    blob = segmenter_bytes(net)
    card = dataclasses.replace(card, segmenter=dataclasses.replace(card.segmenter,
                                                                   weights_sha256=hashlib.sha256(blob).hexdigest()))
    save_beside_model(out, {SEGMENTER_NAME: blob}, card_text(card).encode(), "bias")
    return out


def _swap(clip: Path, model: Path, out: Path, mode: str, n: int) -> list[np.ndarray]:
    settings = SwapSettings(occlusion=OcclusionSettings(mode), temporal=0.0)
    render_range(clip, out, model_dir=model, settings=settings, first=0, last=n - 1, swap_ranges=[(0, n - 1)],
                 codec="ffv1", audio=False)
    return [rgb for _, rgb in media.read_frames(out, 0, n - 1)]


def test_learned_occlusion_in_a_real_swap(segmented: Path, tmp_path: Path) -> None:
    """A segmenter that sees an occluder everywhere keeps every frame as it was; one that sees none swaps
    exactly as occlusion=off; the swap sends no source decoder pass (the segmenter replaces it); and the
    default, auto, is learned for a model with a segmenter."""
    n = 3
    clip = face_clip(tmp_path / "face.mkv", frames=n, codec="ffv1")
    src = [rgb for _, rgb in media.read_frames(clip, 0, n - 1)]
    everywhere = _swap(clip, _with_head_bias(segmented, 20.0, tmp_path), tmp_path / "all.mkv", "learned", n)
    nowhere = _swap(clip, _with_head_bias(segmented, -20.0, tmp_path), tmp_path / "none.mkv", "learned", n)
    off = _swap(clip, segmented, tmp_path / "off.mkv", "off", n)
    for i in range(n):
        assert np.array_equal(everywhere[i], src[i]), f"frame {i}: an occluder everywhere, yet pixels changed"
        assert np.array_equal(nowhere[i], off[i]), f"frame {i}: no occluder seen, yet not the plain swap"
        assert np.abs(off[i].astype(int) - src[i]).sum() > 1000  # the plain swap does change the face
    asked: list[bool] = []
    real_submit = SwapModel.submit

    def spy(self: SwapModel, crops: np.ndarray, rebuild: bool):  # type: ignore[no-untyped-def]
        asked.append(rebuild)
        return real_submit(self, crops, rebuild)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SwapModel, "submit", spy)
        learned = _swap(clip, segmented, tmp_path / "learned.mkv", "learned", n)
        learned_asks = list(asked)
        asked.clear()
        auto = _swap(clip, segmented, tmp_path / "auto.mkv", "auto", n)  # the default: learned, with a segmenter
        auto_asks = list(asked)
        asked.clear()
        _swap(clip, segmented, tmp_path / "recon.mkv", "reconstruction", n)
    assert learned_asks and not any(learned_asks) and auto_asks and not any(auto_asks) and asked and all(asked)
    assert all(np.array_equal(a, b) for a, b in zip(auto, learned))


def test_cli_help_json_and_bad_input(segmented: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as ex:
        cli_main(["train-segmenter", "--help"])
    assert ex.value.code == 0 and "occlusion: learned" in capsys.readouterr().out
    model = _model_copy(tmp_path)
    a, b = facesets()
    code = cli_main(["train-segmenter", str(model), "--faces", str(a), "--faces", str(b), "--rights", RIGHTS,
                     "--iterations", "2", "--batch", "2", "--threads", "1", "--json", "--no-progress"])
    out = capsys.readouterr().out
    import json

    summary = json.loads(out)
    assert code == 0 and summary["iterations"] == 2 and summary["faces"] == 69 and summary["rights"] == RIGHTS
    assert load_model_card(model).segmenter is not None
    assert cli_main(["train-segmenter", str(tmp_path / "none"), "--iterations", "1"]) == 2
    assert cli_main(["train-segmenter", str(model), "--faces", str(a), "--iterations", "0", "--rights", "x"]) == 2
