"""Occlusion augmentation on real faces: occluders cut out of the mask targets, reproducible, wired into training."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from renderer.augment import AugmentConfig, augment_batch
from renderer.errors import InputError
from renderer.faceset import load_faceset
from renderer.model import load_model
from renderer.occluders import occluder_bank, paste_occluders
from renderer.train import TrainConfig, load_train_preset, load_training_faces, train
from tests import face_data
from tests.train_data import faceset_astronaut, faceset_presenter, tiny_config

RIGHTS = "Public test media (kphotoalbum demo video, GPL-2+; NASA astronaut portrait, public domain); tests only"


@pytest.fixture(scope="module")
def photos() -> list[Path]:
    return [face_data.kphotoalbum_file(name) for name in face_data.NO_FACE]


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    faces, masks = load_training_faces(load_faceset(faceset_presenter(64)), 64)
    warped, target, tmask = augment_batch(faces[:8], masks[:8], AugmentConfig(), torch.Generator().manual_seed(3))
    return warped, target, tmask


def test_occluders_are_cut_out_of_the_mask_targets(batch: tuple[torch.Tensor, ...], photos: list[Path]) -> None:
    warped, _, tmask = batch
    bank = occluder_bank(photos, 64)
    assert bank is not None and bank.shape == (3, 3, 128, 128) and bank.dtype == torch.uint8
    out, masks = paste_occluders(warped, tmask, 1.0, torch.Generator().manual_seed(0), bank)
    assert out.shape == warped.shape and masks.shape == tmask.shape
    assert 0 <= float(out.min()) and float(out.max()) <= 1 and 0 <= float(masks.min()) and float(masks.max()) <= 1
    pasted = (out - warped).abs().amax(1) > 1e-3  # (B, S, S): where an occluder changed the input
    for i in range(len(out)):
        assert pasted[i].any(), f"face {i}: no occluder pasted at probability 1"
        face = tmask[i, 0] > 0.5
        # the mask target is the face minus the occluder: lower wherever the occluder covers the face ...
        assert bool((masks[i, 0][pasted[i] & face] < tmask[i, 0][pasted[i] & face]).all())
        # ... and unchanged where it does not (at most the anti-aliased rim differs from exactly 1)
        assert torch.equal(masks[i][:, ~pasted[i]], tmask[i][:, ~pasted[i]]) or \
            float((masks[i] - tmask[i]).abs()[:, ~pasted[i]].max()) < 1e-2
    assert float(masks[:, 0].sum()) < float(tmask[:, 0].sum())


def test_occluders_are_reproducible_and_off_at_probability_zero(batch: tuple[torch.Tensor, ...]) -> None:
    warped, _, tmask = batch
    a = paste_occluders(warped, tmask, 0.5, torch.Generator().manual_seed(7))
    b = paste_occluders(warped, tmask, 0.5, torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    gen = torch.Generator().manual_seed(7)
    state = gen.get_state()
    same = paste_occluders(warped, tmask, 0.0, gen)
    assert same[0] is warped and same[1] is tmask and torch.equal(gen.get_state(), state)


def test_bad_occluder_photos_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        occluder_bank([tmp_path / "nope"], 64)
    with pytest.raises(InputError, match="holds no photos"):
        occluder_bank([tmp_path], 64)
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match="not a readable image"):
        occluder_bank([tmp_path], 64)


def test_training_with_occluders_runs_and_needs_a_learned_mask(photos: list[Path], tmp_path: Path) -> None:
    cfg = TrainConfig(faceset_a=faceset_presenter(64), faceset_b=faceset_astronaut(64), out=tmp_path / "m",
                      rights=RIGHTS, model_config=tiny_config(), iterations=2, batch=4, seed=1, device="cpu",
                      threads=1, learn_mask=True, augment=AugmentConfig(occluders=0.5),
                      occluder_photos=tuple(str(p) for p in photos))
    train(cfg, progress=False)
    model, card = load_model(tmp_path / "m", device="cpu")
    assert card.config.learn_mask and card.iterations == 2
    with pytest.raises(InputError, match="needs learn_mask"):
        train(dataclasses.replace(cfg, out=tmp_path / "n", learn_mask=False), progress=False)
    with pytest.raises(InputError, match="a number from 0 to 1"):
        train(dataclasses.replace(cfg, out=tmp_path / "n", augment=AugmentConfig(occluders=1.5)), progress=False)


def test_the_train_preset_turns_occluders_on(tmp_path: Path) -> None:
    preset = tmp_path / "occ.yaml"
    preset.write_text("train:\n  learn_mask: true\n  augment:\n    occluders: 0.5\n  occluder_photos: photos\n")
    values = load_train_preset(preset)
    assert values["augment"].occluders == 0.5 and values["learn_mask"] is True
    assert values["occluder_photos"] == (str(tmp_path / "photos"),)
    preset.write_text("train:\n  augment:\n    occluder: 0.5\n")
    with pytest.raises(InputError, match="unknown key train.augment.occluder .*occluders"):
        load_train_preset(preset)
