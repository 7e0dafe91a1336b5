"""`doppel train --init MODEL_DIR`: a new model started from another's weights (tiny config, real faces, seconds).

The first step's loss is the init model's own loss on that step's batch (computed here independently),
a mismatched config or --resume with --init is refused in one line with nothing written, the card names
whose faces the weights came from (and their lineage), and the checkpoint guarantees stay as they are.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from renderer.augment import augment_batch
from renderer.cli import main
from renderer.errors import InputError, ModelError, TrainingError
from renderer.faceset import load_faceset
from renderer.loss import swap_loss
from renderer.model import load_model
from renderer.modelcard import load_model_card
from renderer.train import TrainConfig, forward_pair, load_training_faces, train
from tests.train_data import faceset_astronaut, faceset_presenter, tiny_config

RIGHTS = "Public test media (kphotoalbum demo video, GPL-2+; NASA astronaut portrait, public domain); tests only"
BASE_RIGHTS = "Base model for the --init tests: kphotoalbum demo video (GPL-2+) and the NASA astronaut portrait"


@pytest.fixture(scope="module")
def facesets() -> tuple[Path, Path]:
    return faceset_presenter(64), faceset_astronaut(64)


@pytest.fixture(scope="module")
def base(facesets: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model trained from random weights: what the others start from."""
    out = tmp_path_factory.mktemp("init") / "base"
    train(dataclasses.replace(_cfg(facesets, out, iterations=6, seed=1), rights=BASE_RIGHTS, name_a="base-a",
                              name_b="base-b"), progress=False)
    return out


def _cfg(facesets: tuple[Path, Path], out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = dict(model_config=tiny_config(), batch=8, save_every=1000, lr=1e-3, seed=1, device="cpu",
                                   threads=1)
    base.update(kw)
    return TrainConfig(faceset_a=facesets[0], faceset_b=facesets[1], out=out, rights=RIGHTS, **base)  # type: ignore[arg-type]


def _history(model_dir: Path) -> np.ndarray:
    return load_file(str(model_dir / "optimizer.safetensors"))["loss.history"].numpy()


def _first_step_loss(model_dir: Path, facesets: tuple[Path, Path], seed: int, batch: int = 8,
                     crossed: bool = False) -> tuple[float, float]:
    """Loss of MODEL_DIR's weights on the batch a run seeded `seed` draws first (the loop's own sampling);
    `crossed`: with its two decoders exchanged (decoder A rebuilding faceset B's faces and B faceset A's)."""
    model, card = load_model(model_dir, device="cpu")
    if crossed:
        model.decoder_a, model.decoder_b = model.decoder_b, model.decoder_a
    model.train()
    gen = torch.Generator().manual_seed(seed)
    size = card.config.input_size
    fa, ma = load_training_faces(load_faceset(facesets[0]), size)
    fb, mb = load_training_faces(load_faceset(facesets[1]), size)
    ia, ib = torch.randint(len(fa), (batch,), generator=gen), torch.randint(len(fb), (batch,), generator=gen)
    cfg = _cfg(facesets, model_dir)
    wa, ta, tma = augment_batch(fa[ia], ma[ia], cfg.augment, gen)
    wb, tb, tmb = augment_batch(fb[ib], mb[ib], cfg.augment, gen)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            pa, pb = forward_pair(model, wa, wb)
            return float(swap_loss(pa, ta, tma, cfg.loss)), float(swap_loss(pb, tb, tmb, cfg.loss))
    finally:
        torch.set_num_threads(before)


def test_init_starts_from_the_other_models_weights_with_its_own_optimizer_and_seed(
        facesets: tuple[Path, Path], base: Path, tmp_path: Path) -> None:
    tuned, fresh = tmp_path / "tuned", tmp_path / "fresh"
    result = train(_cfg(facesets, tuned, iterations=3, seed=7, init=base), progress=False)
    train(_cfg(facesets, fresh, iterations=3, seed=7), progress=False)
    expected = _first_step_loss(base, facesets, seed=7)
    np.testing.assert_allclose(_history(tuned)[0], expected, rtol=1e-5)  # step 0: the init model's loss
    assert not np.allclose(_history(fresh)[0], expected, rtol=1e-2)  # random weights lose differently
    # the run's own: iteration count from 0, a fresh Adam (3 steps, not 6 + 3), its own seed
    assert result.iterations == 3 and result.iterations_this_run == 3
    opt = load_file(str(tuned / "optimizer.safetensors"))
    assert {float(v) for k, v in opt.items() if k.endswith(".step")} == {3.0}
    state = json.loads((tuned / "train_state.json").read_text())
    assert state["seed"] == 7 and state["iteration"] == 3


def test_init_crossed_starts_each_decoder_from_the_other_persons_and_the_card_says_so(
        facesets: tuple[Path, Path], base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    crossed = tmp_path / "crossed"
    train(_cfg(facesets, crossed, iterations=1, seed=7, init=base, init_crossed=True), progress=False)
    expected = _first_step_loss(base, facesets, seed=7, crossed=True)
    np.testing.assert_allclose(_history(crossed)[0], expected, rtol=1e-5)  # B's faces went through base's decoder A
    assert not np.allclose(expected, _first_step_loss(base, facesets, seed=7), rtol=1e-2)  # the mapping matters
    card = load_model_card(crossed)
    assert card.initialised_from is not None and card.initialised_from.crossed
    assert "decoders: crossed" in (crossed / "model.yaml").read_text()
    straight = tmp_path / "straight"
    train(_cfg(facesets, straight, iterations=1, init=base), progress=False)
    assert not load_model_card(straight).initialised_from.crossed  # type: ignore[union-attr]
    assert "decoders:" not in (straight / "model.yaml").read_text()

    with pytest.raises(InputError, match="--init-crossed needs --init"):
        train(_cfg(facesets, tmp_path / "none", iterations=1, init_crossed=True), progress=False)
    assert not (tmp_path / "none").exists()
    cli = ["train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out", str(tmp_path / "cli"), "--rights", RIGHTS,
           "--iterations", "1", "--threads", "1", "--device", "cpu", "--no-progress", "--init-crossed"]
    assert main(cli) == 2 and "--init-crossed needs --init" in capsys.readouterr().err


def test_the_card_says_whose_faces_the_weights_learned(facesets: tuple[Path, Path], base: Path,
                                                        tmp_path: Path) -> None:
    base_card = load_model_card(base)
    one, two = tmp_path / "one", tmp_path / "two"
    train(_cfg(facesets, one, iterations=2, init=base, name_a="one-a"), progress=False)
    train(_cfg(facesets, two, iterations=2, init=one, name_a="two-a"), progress=False)
    card = load_model_card(two)  # parsed back from model.yaml
    assert card.name_a == "two-a"
    first = card.initialised_from
    assert first is not None and (first.name_a, first.name_b) == ("one-a", "astronaut")
    assert first.weights_sha256 == load_model_card(one).weights_sha256 and first.path == str(one.resolve())
    assert first.rights == RIGHTS and first.iterations == 2
    second = first.initialised_from  # the base's faces are still in there, two models down
    assert second is not None and (second.name_a, second.name_b, second.rights) == ("base-a", "base-b", BASE_RIGHTS)
    assert second.weights_sha256 == base_card.weights_sha256 and second.initialised_from is None
    assert [r.name_a for r in first.lineage] == ["one-a", "base-a"]
    text = (two / "model.yaml").read_text()
    assert "initialised_from:" in text and base_card.weights_sha256 in text and "base-b" in text
    assert load_model_card(base).initialised_from is None and "initialised_from" not in (base / "model.yaml").read_text()


def test_a_mismatched_config_or_resume_with_init_is_refused_in_one_line(
        facesets: tuple[Path, Path], base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "m"
    with pytest.raises(ModelError, match=rf"--init {base}: its config differs .*bottleneck: requested 128, "
                                         r"--init model has 64\); nothing was written"):
        train(_cfg(facesets, out, iterations=2, init=base, model_config=tiny_config(bottleneck=128)), progress=False)
    with pytest.raises(InputError, match="--resume and --init .* together"):
        train(_cfg(facesets, out, iterations=2, init=base, resume=True), progress=False)
    assert not out.exists()

    cli = ["train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out", str(out), "--rights", RIGHTS,
           "--iterations", "2", "--threads", "1", "--device", "cpu", "--no-progress", "--init", str(base)]
    assert main(cli + ["--model", "original"]) == 2  # the shipped arch vs the init's tiny one: both named
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--init {base}: its config differs" in err and "arch: requested 'original', --init model has 'lite'" in err
    assert "encoder_widths: requested" in err and f"facesets {facesets[0]}" in err
    assert main(cli + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--resume and --init" in err
    assert main(cli[:-1] + [str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--init {tmp_path / 'nowhere'}:" in err
    assert not out.exists()
    # with no architecture given, the init model's own is used: the tiny network, not the default lite
    assert main(cli[:cli.index("--init")] + ["--init", str(base)]) == 0
    assert load_model_card(out).config == load_model_card(base).config


def test_an_initialised_run_resumes_exactly_and_keeps_its_lineage_on_a_full_disk(
        facesets: tuple[Path, Path], base: Path, tmp_path: Path) -> None:
    from tests.faults import tmpfs

    straight, split = tmp_path / "straight", tmp_path / "split"
    train(_cfg(facesets, straight, iterations=8, init=base, seed=3), progress=False)
    train(_cfg(facesets, split, iterations=4, init=base, seed=3), progress=False)
    train(_cfg(facesets, split, iterations=8, resume=True, model_config=None, seed=3), progress=False)
    a, b = load_file(str(straight / "model.safetensors")), load_file(str(split / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_model_card(split).initialised_from == load_model_card(straight).initialised_from is not None

    with tmpfs(tmp_path / "small", size="4m") as small:  # a tiny checkpoint is ~2.9 MB: the second cannot fit
        out = small / "m"
        with pytest.raises(TrainingError, match="the checkpoint of iteration 2 is kept"):
            train(_cfg(facesets, out, iterations=6, save_every=2, init=base), progress=False)
        _, card = load_model(out, device="cpu")
        assert card.iterations == 2 and card.initialised_from is not None
        assert card.initialised_from.weights_sha256 == load_model_card(base).weights_sha256


def test_doppel_train_ends_with_the_error_prior_of_its_own_weights(
        facesets: tuple[Path, Path], base: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The command measures decoder A's expected-error prior on faceset A after its last save (the
    reconstruction occlusion mask divides by it); --no-error-prior leaves it out."""
    from renderer.checkpoint import model_files
    from renderer.error_prior import load_error_prior

    def cli(out: Path, *extra: str) -> dict:
        assert main(["train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out", str(out), "--rights", RIGHTS,
                     "--iterations", "2", "--threads", "1", "--device", "cpu", "--no-progress", "--json",
                     "--init", str(base), *extra]) == 0
        return json.loads(capsys.readouterr().out)

    summary = cli(tmp_path / "with")
    card = load_model_card(tmp_path / "with")
    assert card.error_prior is not None and card.error_prior.swap_weights_sha256 == card.weights_sha256
    assert card.error_prior.faces == len(load_faceset(facesets[0])) == summary["error_prior"]["faces"]
    prior = load_error_prior(model_files(tmp_path / "with"), card.error_prior, card.weights_sha256)
    assert prior.shape == (card.config.input_size,) * 2 and np.isfinite(prior).all() and prior.max() > prior.min()
    summary = cli(tmp_path / "without", "--no-error-prior")
    assert summary["error_prior"] is None and load_model_card(tmp_path / "without").error_prior is None
