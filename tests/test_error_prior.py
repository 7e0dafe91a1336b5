"""The expected-error prior of `occlusion: reconstruction` (renderer/error_prior.py): measured on faceset A,
stored with the model (safetensors + the card's section), loaded by the swap, and a model without one
(or `occlusion_prior: off`) swaps bit-identically to before."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from renderer import media
from renderer.checkpoint import model_files
from renderer.cli import main as cli_main
from renderer.composite import OcclusionSettings
from renderer.composite.occlusion import PRIOR_MIN, normalise_by_prior, occluded_by_error, occlusion_keep
from renderer.error_prior import PRIOR_NAME, add_error_prior, load_error_prior
from renderer.errors import InputError, ModelError
from renderer.modelcard import load_model_card
from renderer.presets import load_preset, parse_preset
from renderer.swap import SwapModel, SwapSettings, render_range, swap_settings
from tests.model_fixtures import facesets, movie_frames, trained_model

FRAMES = 4


@pytest.fixture(scope="module")
def with_prior(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("prior") / "model"
    shutil.copytree(trained_model(), dst, symlinks=True)
    add_error_prior(dst, facesets()[0], threads=1)
    return dst


def test_the_prior_is_saved_with_its_card_and_loads_back(with_prior: Path) -> None:
    card = load_model_card(with_prior)
    ep = card.error_prior
    assert ep is not None and ep.decoder == "a" and ep.size == card.config.input_size
    assert ep.swap_weights_sha256 == card.weights_sha256 and len(ep.faceset_sha256) == 64 and ep.faces > 0
    prior = load_error_prior(model_files(with_prior), ep, card.weights_sha256)
    assert prior.shape == (ep.size, ep.size) and prior.dtype == np.float32
    assert np.all(np.isfinite(prior)) and prior.min() >= 0.0 and 0.0 < ep.median < 0.5
    assert prior.max() > 1.5 * ep.median, "the prior is flat: it says nothing about where the decoder misses"
    assert card.rights  # the model's own card still stands
    swap = SwapModel(with_prior, "a2b", "cpu")
    assert swap.error_prior is not None and np.array_equal(swap.error_prior, prior)
    assert SwapModel(with_prior, "b2a", "cpu").error_prior is None  # decoder B's source pass has no prior
    again = with_prior.parent / "again"
    shutil.copytree(trained_model(), again, symlinks=True)
    add_error_prior(again, facesets()[0], threads=1)
    assert load_model_card(again).error_prior.weights_sha256 == ep.weights_sha256  # deterministic


def test_a_replaced_prior_or_one_of_another_shape_is_refused(with_prior: Path, tmp_path: Path) -> None:
    import dataclasses

    card = load_model_card(with_prior)
    folder = tmp_path / "files"
    shutil.copytree(model_files(with_prior), folder)
    (folder / PRIOR_NAME).write_bytes((folder / PRIOR_NAME).read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ModelError, match="does not match the SHA-256"):
        load_error_prior(folder, card.error_prior, card.weights_sha256)
    with pytest.raises(ModelError, match="other swap weights"):
        load_error_prior(model_files(with_prior), card.error_prior, "0" * 64)
    wrong = dataclasses.replace(card.error_prior, size=32)
    with pytest.raises(ModelError, match=r"\(32, 32\) float32"):
        load_error_prior(model_files(with_prior), wrong, card.weights_sha256)
    (folder / PRIOR_NAME).unlink()
    with pytest.raises(ModelError, match="is missing"):
        load_error_prior(folder, card.error_prior, card.weights_sha256)


def test_a_hard_region_needs_more_disagreement_and_a_flat_prior_changes_nothing() -> None:
    s = 64
    face = np.zeros((s, s), np.float32)
    face[8:56, 8:56] = 1.0
    crop = np.full((s, s, 3), 0.5, np.float32)
    rebuilt = crop.copy()
    rebuilt += np.random.default_rng(0).normal(0, 0.02, crop.shape).astype(np.float32)  # the decoder's usual error
    rebuilt[20:28, 16:30] += 0.3  # a miss at the "eye"
    settings = OcclusionSettings("reconstruction")
    plain = occluded_by_error(crop, rebuilt, face, settings)
    assert plain[24, 22], "without a prior the miss is an occluder"
    prior = np.full((s, s), 0.02, np.float32)
    assert np.array_equal(occluded_by_error(crop, rebuilt, face, settings, prior), plain)  # flat: as before
    prior[18:30, 14:32] = 0.4  # the decoder always misses there
    assert not occluded_by_error(crop, rebuilt, face, settings, prior)[20:28, 16:30].any()
    big = np.kron(prior, np.ones((2, 2), np.float32))  # a prior of another size is resized to the crop
    assert normalise_by_prior(np.ones((s // 2, s // 2), np.float32), big, face[::2, ::2] > 0).shape == (s // 2, s // 2)
    tiny = np.full((s, s), 0.02, np.float32)
    tiny[0, 0] = 0.0  # never rebuilt worse than PRIOR_MIN of the median counts
    assert normalise_by_prior(np.ones((s, s), np.float32), tiny, face > 0)[0, 0] == pytest.approx(1 / PRIOR_MIN)
    off = OcclusionSettings("reconstruction", prior="off")
    assert np.array_equal(occlusion_keep(off, face, crop, rebuilt, prior=prior), occlusion_keep(off, face, crop, rebuilt))


def _render(src: Path, out: Path, model: SwapModel, settings: SwapSettings) -> dict[int, np.ndarray]:
    render_range(src, out, model_dir=Path(), model=model, settings=settings, first=0, last=FRAMES - 1,
                 swap_ranges=[(0, FRAMES - 1)], codec="ffv1", pix_fmt="yuv444p")
    return dict(media.read_frames(out, 0, FRAMES - 1))


def test_prior_off_or_absent_swaps_bit_identically_to_before(with_prior: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    frames = movie_frames(3)[40:40 + FRAMES]
    h, w = frames[0].shape[:2]
    clip = tmp_path / "clip.mkv"
    with media.VideoWriter(clip, width=w, height=h, fps=25, codec="ffv1", pix_fmt="yuv444p") as wr:
        for f in frames:
            wr.write(f)
    shipped = SwapModel(trained_model(), "a2b", "cpu")
    assert shipped.card.error_prior is None and shipped.error_prior is None
    before = _render(clip, tmp_path / "before.mkv", shipped, SwapSettings())
    prior_model = SwapModel(with_prior, "a2b", "cpu")
    off = _render(clip, tmp_path / "off.mkv", prior_model,
                  SwapSettings(occlusion=OcclusionSettings("reconstruction", prior="off")))
    assert all(np.array_equal(before[i], off[i]) for i in range(FRAMES))
    # The swap stage hands the model's prior to the mask (on its own training footage the measured prior may
    # change no pixel: the rebuild error stays under the absolute floor everywhere).
    import renderer.swap.faces as stage

    seen: list[object] = []
    real = stage.occlusion_keep

    def spy(settings, face, crop=None, rebuilt=None, learned_source=None, prior=None):  # type: ignore[no-untyped-def]
        seen.append(prior)
        return real(settings, face, crop, rebuilt, learned_source, prior)

    monkeypatch.setattr(stage, "occlusion_keep", spy)
    _render(clip, tmp_path / "auto.mkv", prior_model, SwapSettings())
    assert seen and all(p is prior_model.error_prior for p in seen)


def test_the_preset_key_and_the_command(with_prior: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert load_preset("review").occlusion_prior == "auto"
    assert swap_settings(parse_preset('occlusion_prior: "off"\n', name="x", path="x.yaml")).occlusion.prior == "off"
    with pytest.raises(InputError, match="occlusion_prior"):
        parse_preset("occlusion_prior: maybe\n", name="x", path="x.yaml")
    marked = load_preset("review").with_overrides({"occlusion_prior": "off"}, "marker 'FACESWAP'")
    assert swap_settings(marked).occlusion.prior == "off"
    model = tmp_path / "m"
    shutil.copytree(trained_model(), model, symlinks=True)
    assert cli_main(["error-prior", str(model), "--a", str(facesets()[0]), "--json", "--threads", "1"]) == 0
    assert '"decoder": "a"' in capsys.readouterr().out and load_model_card(model).error_prior is not None
    assert cli_main(["error-prior", str(tmp_path / "none"), "--a", str(facesets()[0])]) == 2
