"""Training on real aligned faces of two people: loss falls, seeds repeat, resume is exact, bad input is refused."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from renderer.augment import AugmentConfig, augment_batch, face_masks, lab_to_rgb, rgb_to_lab
from renderer.cli import main
from renderer.errors import InputError, ModelError, TrainingError
from renderer.faceset import load_faceset
from renderer.model import load_model
from renderer.modelcard import load_model_card
from renderer.train import DEFAULT_BATCH, TrainConfig, load_training_faces, ssim, train
from tests.train_data import copy_faceset, faceset_astronaut, faceset_presenter, tiny_config

RIGHTS = "Public test media (kphotoalbum demo video, GPL-2+; NASA astronaut portrait, public domain); tests only"


@pytest.fixture(scope="module")
def facesets() -> tuple[Path, Path]:
    return faceset_presenter(64), faceset_astronaut(64)


def _cfg(facesets: tuple[Path, Path], out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(model_config=tiny_config(), batch=8, save_every=1000, lr=1e-3, seed=1, device="cpu", threads=1)
    base.update(kw)
    return TrainConfig(faceset_a=facesets[0], faceset_b=facesets[1], out=out, rights=RIGHTS, **base)  # type: ignore[arg-type]


def _weights(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / "model.safetensors"))


def _history(model_dir: Path) -> np.ndarray:
    return load_file(str(model_dir / "optimizer.safetensors"))["loss.history"].numpy()


# ---------------------------------------------------------------- data and augmentation

def test_training_faces_and_masks(facesets: tuple[Path, Path]) -> None:
    fs = load_faceset(facesets[0])
    faces, masks = load_training_faces(fs, 32)
    assert faces.shape == (len(fs), 3, 32, 32) and faces.dtype == torch.uint8
    assert masks.shape == (len(fs), 2, 32, 32) and masks.dtype == torch.uint8
    hull = masks[:, 0].float().mean(dim=(1, 2))
    assert bool(((hull > 0.2) & (hull < 0.9)).all())  # a face, not the whole crop or nothing
    feats = masks[:, 1].float().sum(dim=(1, 2))
    assert bool((feats > 0).all()) and bool((masks[:, 1] <= masks[:, 0]).all())
    # landmarks of eyes lie inside the feature mask
    lm = fs.landmarks_in_crop()[0] * 32 / fs.crop_size
    x, y = np.round(lm[36:42].mean(0)).astype(int)
    assert masks[0, 1, y, x] == 1
    five = face_masks(lm[[36, 39, 45, 42, 33]][None], 32)  # 5-point layout still makes a face-sized ellipse
    assert 0.2 < five[0, 0].mean() < 0.9


def test_augmentation_is_batched_and_keeps_the_target_unwarped(facesets: tuple[Path, Path]) -> None:
    faces, masks = load_training_faces(load_faceset(facesets[0]), 32)
    faces, masks = faces[:8], masks[:8]
    still = AugmentConfig(rotation=0, zoom=0, shift=0, flip=0, warp=0, lab_l=0, lab_ab=0)
    warped, target, tmask = augment_batch(faces, masks, still, torch.Generator().manual_seed(0))
    assert torch.allclose(target, faces.float() / 255, atol=1e-5) and torch.equal(warped, target)
    assert torch.allclose(tmask, masks.float())

    only_warp = dataclasses.replace(still, warp=0.05)
    warped, target, _ = augment_batch(faces, masks, only_warp, torch.Generator().manual_seed(0))
    assert torch.allclose(target, faces.float() / 255, atol=1e-5)  # the target is never warped
    assert float((warped - target).abs().mean()) > 0.005

    flip = dataclasses.replace(still, flip=1.0)
    _, target, tmask = augment_batch(faces, masks, flip, torch.Generator().manual_seed(0))
    assert torch.allclose(target, faces.float().flip(-1) / 255, atol=1e-5)
    assert torch.allclose(tmask, masks.float().flip(-1), atol=1e-5)  # masks follow the target

    full = AugmentConfig()
    a = augment_batch(faces, masks, full, torch.Generator().manual_seed(5))
    b = augment_batch(faces, masks, full, torch.Generator().manual_seed(5))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert all(0 <= float(t.min()) and float(t.max()) <= 1 for t in a)


def test_lab_round_trip_and_ssim() -> None:
    rgb = torch.rand(2, 3, 16, 16)
    lab = rgb_to_lab(rgb)
    assert float(lab[:, 0].min()) >= 0 and float(lab[:, 0].max()) <= 100.5
    assert torch.allclose(lab_to_rgb(lab), rgb, atol=2e-3)
    white = rgb_to_lab(torch.ones(1, 3, 1, 1)).flatten()
    assert torch.allclose(white, torch.tensor([100.0, 0.0, 0.0]), atol=0.05)
    x = torch.rand(3, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(3), atol=1e-5)
    assert float(ssim(x, torch.rand(3, 3, 32, 32)).max()) < 0.2


@pytest.mark.parametrize("size", [16, 64])
def test_ssim_map_equals_the_textbook_gaussian_window(size: int) -> None:
    """The matrix-product blur gives the SSIM of an 11x11 Gaussian window (sigma 1.5) over reflect-padded images."""
    import torch.nn.functional as F

    from renderer.train import ssim_map

    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    y = (x + 0.2 * torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(2))).clamp(0, 1)
    win = min(11, size // 2 * 2 - 1)
    t = torch.arange(win, dtype=torch.float32) - win // 2
    g = torch.exp(-(t**2) / (2 * 1.5**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(3, 1, win, win)

    def blur(img: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(img, (win // 2,) * 4, mode="reflect"), kernel, groups=3)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    want = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    assert torch.allclose(ssim_map(x, y), want, atol=1e-4)


# ---------------------------------------------------------------- the loop

def test_loss_falls_on_real_faces_and_outputs_are_written(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "model"
    result = train(_cfg(facesets, out, iterations=60, save_every=30, learn_mask=True, batch=None), progress=False)
    assert result.iterations == 60 and result.iterations_this_run == 60 and result.faces_per_second > 0
    h = _history(out)
    assert h.shape == (60, 2)
    first, last = h[:5].mean(0), h[-10:].mean(0)
    assert (last < 0.75 * first).all(), (first, last)  # both halves learn
    card = result.card
    assert card.iterations == 60 and card.rights == RIGHTS and card.config.learn_mask
    assert card.config.crop_size == 64 and card.config.coverage == 0.375 and card.config.landmark_points == 68
    assert card.identities == ("presenter", "astronaut")
    assert [f.faces for f in card.facesets] == [len(load_faceset(p)) for p in facesets]
    assert card.loss.last_a < card.loss.first_a
    model, _ = load_model(out, device="cpu")
    with torch.no_grad():
        assert model(torch.rand(1, 3, 32, 32), "b").shape == (1, 4, 32, 32)
    preview = cv2.imread(str(out / "preview.png"))
    assert preview.shape[0] == 6 * 128 and preview.shape[1] > 128  # rows: A, A->A, A->B, B, B->B, B->A
    assert cv2.imread(str(out / "loss.png")) is not None
    state = json.loads((out / "train_state.json").read_text())
    assert state["iteration"] == 60 and state["batch"] == DEFAULT_BATCH["lite"]  # no --batch: the arch's default
    assert not list(out.glob(".*partial*"))


def test_same_seed_same_model_other_seed_other_model(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    for name, seed in (("one", 4), ("two", 4), ("three", 5)):
        train(_cfg(facesets, tmp_path / name, iterations=5, seed=seed), progress=False)
    one, two, three = (_weights(tmp_path / n) for n in ("one", "two", "three"))
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert not all(torch.equal(one[k], three[k]) for k in one)
    assert np.array_equal(_history(tmp_path / "one"), _history(tmp_path / "two"))


def test_resume_equals_an_uninterrupted_run(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    # batch 5 and lr 1e-3 are no architecture's defaults: the resumed run, given neither, must continue with the model's own
    train(_cfg(facesets, tmp_path / "straight", iterations=20, batch=5), progress=False)
    train(_cfg(facesets, tmp_path / "split", iterations=10, batch=5), progress=False)
    result = train(_cfg(facesets, tmp_path / "split", iterations=20, resume=True, model_config=None, batch=None,
                        lr=None), progress=False)
    assert result.iterations == 20 and result.iterations_this_run == 10
    state = json.loads((tmp_path / "split" / "train_state.json").read_text())
    assert state["batch"] == 5 and state["param_groups"][0]["lr"] == 1e-3
    straight, split = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert all(torch.equal(straight[k], split[k]) for k in straight)
    assert np.array_equal(_history(tmp_path / "straight"), _history(tmp_path / "split"))
    opt_a = load_file(str(tmp_path / "straight" / "optimizer.safetensors"))
    opt_b = load_file(str(tmp_path / "split" / "optimizer.safetensors"))
    assert opt_a.keys() == opt_b.keys() and all(torch.equal(opt_a[k], opt_b[k]) for k in opt_a)


# ---------------------------------------------------------------- bad input

def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def test_bad_input_is_refused_and_the_model_left_untouched(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "model"
    train(_cfg(facesets, out, iterations=2), progress=False)
    before = _snapshot(out)

    with pytest.raises(InputError, match="already holds a model; pass --resume"):
        train(_cfg(facesets, out, iterations=4), progress=False)
    with pytest.raises(ModelError, match="config differs.*bottleneck: requested 128, model has 64"):
        train(_cfg(facesets, out, iterations=4, resume=True, model_config=tiny_config(bottleneck=128)), progress=False)
    with pytest.raises(ModelError, match="config differs.*arch"):
        train(_cfg(facesets, out, iterations=4, resume=True, model_config=None, model="original"), progress=False)
    with pytest.raises(ModelError, match="rights statement is required"):
        train(dataclasses.replace(_cfg(facesets, out, iterations=4, resume=True), rights=""), progress=False)
    with pytest.raises(InputError, match="already has 2 iterations"):
        train(_cfg(facesets, out, iterations=2, resume=True, model_config=None), progress=False)
    assert _snapshot(out) == before

    with pytest.raises(ModelError, match=r"cannot resume: model folder .*fresh does not exist"):
        train(_cfg(facesets, tmp_path / "fresh", iterations=2, resume=True), progress=False)

    empty = copy_faceset(facesets[1], tmp_path / "empty")
    index = json.loads((empty / "faceset.json").read_text())
    (empty / "faceset.json").write_text(json.dumps({**index, "faces": []}))
    with pytest.raises(InputError, match=r"faceset B \(.*empty\) holds no faces"):
        train(_cfg((facesets[0], empty), tmp_path / "m2", iterations=2), progress=False)

    other = copy_faceset(facesets[1], tmp_path / "other")
    (other / "faceset.json").write_text(json.dumps({**index, "crop_size": 96}))
    with pytest.raises(InputError, match="crop_size is 64 in A .* but 96 in B"):
        train(_cfg((facesets[0], other), tmp_path / "m3", iterations=2), progress=False)
    assert not (tmp_path / "m2").exists() and not (tmp_path / "m3").exists()


# ---------------------------------------------------------------- CLI

def test_cli_train_json_preset_and_errors(facesets: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    a, b = (str(p) for p in facesets)
    preset = tmp_path / "p.yaml"
    preset.write_text("render:\n  codec: prores\ntrain:\n  batch: 4\n  lr: 0.001\n  seed: 2\n"
                      "  augment:\n    rotation: 5\n  loss:\n    ssim: 0.25\n")
    # the preset cannot name a tiny network; the smallest shipped one (lite) at batch 4 for 3 iterations is quick
    argv = ["train", "--a", a, "--b", b, "--out", str(tmp_path / "m"), "--rights", RIGHTS, "--preset", str(preset),
            "--iterations", "3", "--device", "cpu", "--threads", "1", "--json", "--no-progress"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["iterations"] == 3 and summary["arch"] == "lite" and summary["identities"] == {"a": "presenter", "b": "astronaut"}
    assert math.isfinite(summary["loss_a"])
    assert json.loads((tmp_path / "m" / "train_state.json").read_text())["batch"] == 4

    assert main(argv[:7] + argv[9:]) == 2  # no --rights
    assert "a rights statement is required" in capsys.readouterr().err

    preset.write_text("train:\n  batchsize: 4\n")
    assert main(argv[:-8] + ["--out", str(tmp_path / "m4"), "--iterations", "3", "--preset", str(preset)]) == 2
    err = capsys.readouterr().err
    assert "unknown key train.batchsize" in err and "did you mean 'batch'" in err
    preset.write_text("train:\n  augment:\n    warp: -1\n")
    assert main(argv[:-8] + ["--out", str(tmp_path / "m4"), "--iterations", "3", "--preset", str(preset)]) == 2
    assert "train.augment.warp must be a number >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "m4").exists()


def test_hooks_see_every_iteration_and_can_stop_the_run(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    seen: list[int] = []

    def record(it: int, model: torch.nn.Module) -> bool:
        seen.append(it)
        assert model.training  # the live model, mid-training
        return False

    def stop_at_3(it: int, model: torch.nn.Module) -> bool:
        return it == 3

    result = train(_cfg(facesets, tmp_path / "m", iterations=10), progress=False, hooks=[record, stop_at_3])
    assert seen == [1, 2, 3]
    assert result.iterations == 3 and result.card.iterations == 3  # stopped there and checkpointed
    assert json.loads((tmp_path / "m" / "train_state.json").read_text())["iteration"] == 3
    assert _history(tmp_path / "m").shape == (3, 2)


def test_a_diverged_run_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
        facesets: tuple[Path, Path], tmp_path: Path) -> None:
    def blow_up_after_4(it: int, model: torch.nn.Module) -> bool:
        if it == 4:  # what a too-high learning rate does, made certain: the weights turn NaN
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return False

    out = tmp_path / "m"
    with pytest.raises(TrainingError, match=r"diverged: loss A nan.*at iteration 5 .*keeps the checkpoint of iteration 4"):
        train(_cfg(facesets, out, iterations=10, save_every=2), progress=False, hooks=[blow_up_after_4])
    model, card = load_model(out, device="cpu")
    assert card.iterations == 4
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert main(["train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out", str(out), "--rights", RIGHTS,
                 "--resume", "--iterations", "6", "--threads", "1", "--no-progress"]) == 0  # and it goes on from there
    assert load_model(out, device="cpu")[1].iterations == 6


def test_a_collapsed_run_stops_with_a_clear_error(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    """A far too high lr saturates the sigmoid: every face gets the same flat picture and no gradient flows back."""
    out = tmp_path / "m"
    with pytest.raises(TrainingError, match="collapsed: a decoder gives one and the same picture for every face"):
        train(_cfg(facesets, out, iterations=300, lr=0.05), progress=False)
    assert not (out / "model.safetensors").exists()  # nothing broken was saved
    result = train(_cfg(facesets, tmp_path / "fresh", iterations=3), progress=False)  # a fresh network (outputs
    assert result.iterations == 3  # near 0.5, alike for every face) is not mistaken for a collapsed one


@pytest.mark.parametrize("name", ["cpu", "gpu"])
def test_shipped_train_presets_are_valid(name: str) -> None:
    from renderer.presets import PRESETS_DIR
    from renderer.train import load_train_preset

    values = load_train_preset(PRESETS_DIR / "train" / f"{name}.yaml")
    assert values["model"] == {"cpu": "lite", "gpu": "hd"}[name]
    assert values["device" if name == "gpu" else "threads"] == {"cpu": 1, "gpu": "cuda"}[name]


def test_the_cpu_train_preset_trains(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    from renderer.presets import PRESETS_DIR

    out = tmp_path / "m"
    code = main(["train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out", str(out), "--rights", RIGHTS,
                 "--preset", str(PRESETS_DIR / "train" / "cpu.yaml"), "--iterations", "2", "--no-progress"])
    assert code == 0
    state = json.loads((out / "train_state.json").read_text())
    assert state["batch"] == 8 and state["param_groups"][0]["lr"] == 0.0005
    assert load_model(out, device="cpu")[1].config.arch == "lite"


# ---------------------------------------------------------------- held-out quality

def test_holdout_measures_unseen_faces_and_target_ssim_stops_the_run(facesets: tuple[Path, Path], tmp_path: Path) -> None:
    from renderer.train import VALIDATE_EVERY, split_holdout

    faces = torch.arange(12).view(12, 1, 1, 1).expand(12, 3, 2, 2).to(torch.uint8)
    train_f, _, held = split_holdout(faces, faces[:, :2], 5)
    assert held[:, 0, 0, 0].tolist() == [4, 9] and len(train_f) == 10  # every 5th face, never both
    assert len(split_holdout(faces[:3], faces[:3, :2], 5)[2]) == 0  # too few faces: nothing held out

    out = tmp_path / "m"
    result = train(_cfg(facesets, out, iterations=30, holdout=5), progress=False)
    v = result.card.validation
    n_a = len(load_faceset(facesets[0]))
    assert v is not None and v.holdout == 5 and v.iteration == 30
    assert v.faces_a == n_a // 5 and v.faces_b == 0 and v.ssim_b is None  # B has 4 faces, fewer than 5: none held out
    assert 0 < v.ssim_a < 1
    assert load_model_card(out).validation == v  # written to the card
    assert json.loads((out / "train_state.json").read_text())["holdout"] == 5

    # a bar every measurement passes stops the run at the first measurement
    stopped = train(_cfg(facesets, tmp_path / "t", iterations=500, holdout=5, target_ssim=0.01), progress=False)
    assert stopped.iterations == VALIDATE_EVERY and stopped.card.validation.iteration == VALIDATE_EVERY

    with pytest.raises(InputError, match="cannot resume .* with --holdout 4: it was trained with --holdout 5"):
        train(_cfg(facesets, out, iterations=40, resume=True, model_config=None, holdout=4), progress=False)
    resumed = train(_cfg(facesets, out, iterations=40, resume=True, model_config=None), progress=False)
    assert resumed.card.validation.holdout == 5 and resumed.card.validation.iteration == 40
    with pytest.raises(InputError, match="--target-ssim needs held-out faces"):
        train(_cfg(facesets, tmp_path / "n", iterations=5, target_ssim=0.5), progress=False)
    with pytest.raises(InputError, match="--holdout must be 0"):
        train(_cfg(facesets, tmp_path / "n", iterations=5, holdout=1), progress=False)


def test_cli_holdout_reports_held_out_ssim(facesets: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out", str(tmp_path / "m"),
                 "--rights", RIGHTS, "--iterations", "3", "--threads", "1", "--holdout", "4", "--json", "--no-progress"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    v = summary["validation"]
    assert v["holdout"] == 4 and v["iteration"] == 3
    assert v["faces_a"] == len(load_faceset(facesets[0])) // 4 and v["faces_b"] == 1  # B's 4 faces: the 4th
    assert 0 < v["ssim_a"] < 1 and 0 < v["ssim_b"] < 1


# ---------------------------------------------------------------- faults, produced for real

def _cli(facesets: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    return ["train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out", str(out), "--rights", RIGHTS,
            "--iterations", "2", "--threads", "1", "--no-progress", *extra]


def test_a_read_only_out_is_one_line_exit_2_and_nothing_is_written(
        facesets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.faults import tmpfs

    with tmpfs(tmp_path / "ro", read_only=True) as ro:  # root writes through chmod 0555; a read-only mount stops it
        assert main(_cli(facesets, ro / "models" / "m")) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"--out {ro}/models/m: cannot write into {ro}: Read-only file system" in err
        assert list(ro.iterdir()) == []
    (tmp_path / "a-file").write_text("x")
    assert main(_cli(facesets, tmp_path / "a-file" / "m")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a-file is a file, not a folder" in err


def test_a_disk_that_fills_while_checkpointing_keeps_the_last_checkpoint(facesets: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    from tests.faults import tmpfs

    # a tiny model's checkpoint is about 2.9 MB: the first fits in 4 MB, the second cannot be written beside it
    with tmpfs(tmp_path / "small", size="4m") as small:
        out = small / "m"
        with pytest.raises(TrainingError) as err:
            train(_cfg(facesets, out, iterations=6, save_every=2), progress=False)
        msg = str(err.value)
        assert "\n" not in msg and f"cannot save the checkpoint of iteration 4 to {out}: No space left on device" in msg
        assert "the checkpoint of iteration 2 is kept" in msg
        model, card = load_model(out, device="cpu")
        assert card.iterations == 2 and len(list((out / "checkpoints").iterdir())) == 1  # the half one is removed
        assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_a_batch_too_big_for_memory_says_out_of_memory_and_names_the_batch(
        facesets: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preset = tmp_path / "huge.yaml"
    preset.write_text("train:\n  batch: 100000000\n")
    out = tmp_path / "m"
    assert main(_cli(facesets, out, "--preset", str(preset))) == 1  # failed while working
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "out of memory on cpu at batch 100000000" in err and "lower --batch" in err
    assert "nothing was saved" in err and not out.exists()


@pytest.mark.parametrize("bad", ["minutes: .nan", "lr: .nan", "augment:\n    warp: .nan", "loss:\n    ssim: .inf",
                                 "target_ssim: .nan", "beta1: .nan"])
def test_nan_and_infinite_train_preset_values_are_refused(bad: str, facesets: tuple[Path, Path], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    preset = tmp_path / "p.yaml"
    preset.write_text(f"train:\n  {bad}\n")
    assert main(_cli(facesets, tmp_path / "m", "--preset", str(preset))) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(preset) in err and ("nan" in err or "inf" in err), err
    assert not (tmp_path / "m").exists()
