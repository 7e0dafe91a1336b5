"""Model card: YAML round trip, rights required, validation, digest."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from renderer.errors import ModelError
from renderer.modelcard import (
    CARD_NAME, FacesetRef, LossSummary, ModelCard, Validation, card_sha256, load_model_card, save_model_card,
)
from tests.train_data import tiny_config

RIGHTS = "Presenter and astronaut test faces from public registry packages; tests only"


def _card() -> ModelCard:
    return ModelCard(
        config=tiny_config(), name_a="presenter", name_b="astronaut", rights=RIGHTS,
        facesets=(FacesetRef("a", "/f/a", "ab" * 32, 68), FacesetRef("b", "/f/b", "cd" * 32, 6)),
        iterations=20, loss=LossSummary(first_a=0.5, first_b=0.6, last_a=0.2, last_b=0.3, best_a=0.2, best_b=0.25),
        software="doppel test", created="2026-11-28T00:00:00+00:00", weights_sha256="ef" * 32,
    )


def test_round_trip(tmp_path: Path) -> None:
    save_model_card(tmp_path, _card())
    back = load_model_card(tmp_path)
    assert back == _card()
    data = yaml.safe_load((tmp_path / CARD_NAME).read_text())
    assert data["rights"] == RIGHTS and data["identities"] == {"a": "presenter", "b": "astronaut"}
    assert data["synthetic_media"] is True
    assert data["facesets"][0] == {"role": "a", "path": "/f/a", "sha256": "ab" * 32, "faces": 68}


def test_validation_round_trip_and_absence(tmp_path: Path) -> None:
    import dataclasses

    assert "validation" not in yaml.safe_load(_saved(tmp_path / "plain", _card()))  # older cards have none either
    v = Validation(holdout=5, iteration=20, faces_a=13, faces_b=0, ssim_a=0.812345678, ssim_b=None)
    data = yaml.safe_load(_saved(tmp_path / "v", dataclasses.replace(_card(), validation=v)))
    assert data["validation"] == {"holdout": 5, "iteration": 20, "faces_a": 13, "faces_b": 0, "ssim_a": 0.812346,
                                  "ssim_b": None}
    assert load_model_card(tmp_path / "v").validation == dataclasses.replace(v, ssim_a=0.812346)


def _saved(folder: Path, card: ModelCard) -> str:
    folder.mkdir()
    save_model_card(folder, card)
    return (folder / CARD_NAME).read_text()


def test_nan_losses_are_written_as_null(tmp_path: Path) -> None:
    import dataclasses

    save_model_card(tmp_path, dataclasses.replace(_card(), loss=LossSummary()))
    assert yaml.safe_load((tmp_path / CARD_NAME).read_text())["loss"]["last_a"] is None
    assert load_model_card(tmp_path).loss.last_a != load_model_card(tmp_path).loss.last_a  # NaN again


def test_rights_are_required(tmp_path: Path) -> None:
    import dataclasses

    with pytest.raises(ModelError, match="rights statement is required"):
        save_model_card(tmp_path, dataclasses.replace(_card(), rights="  "))
    assert not (tmp_path / CARD_NAME).exists()
    save_model_card(tmp_path, _card())
    data = yaml.safe_load((tmp_path / CARD_NAME).read_text())
    del data["rights"]
    (tmp_path / CARD_NAME).write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match="rights statement is required"):
        load_model_card(tmp_path)


def test_bad_cards(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no model.yaml"):
        load_model_card(tmp_path)
    with pytest.raises(ModelError, match=r"model folder .*missing-model does not exist"):
        load_model_card(tmp_path / "missing-model")  # not "no model.yaml": the folder itself is not there
    (tmp_path / CARD_NAME).write_text("kind: [unclosed\n")
    with pytest.raises(ModelError, match="unreadable"):
        load_model_card(tmp_path)
    (tmp_path / CARD_NAME).write_text("schema: 1\nkind: something-else\n")
    with pytest.raises(ModelError, match="not a Doppel model card"):
        load_model_card(tmp_path)
    data = _card().to_dict()
    data["config"]["input_size"] = 48
    (tmp_path / CARD_NAME).write_text(yaml.safe_dump(data))
    with pytest.raises(ModelError, match="power of two"):
        load_model_card(tmp_path)


def test_card_sha256_tracks_content(tmp_path: Path) -> None:
    import dataclasses

    save_model_card(tmp_path, _card())
    first = card_sha256(tmp_path)
    assert len(first) == 64 and first == card_sha256(tmp_path)
    save_model_card(tmp_path, dataclasses.replace(_card(), iterations=21))
    assert card_sha256(tmp_path) != first


def test_a_python_tag_in_the_card_is_one_line_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    save_model_card(tmp_path, _card())
    text = (tmp_path / CARD_NAME).read_text()
    (tmp_path / CARD_NAME).write_text(text + f"extra: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ModelError) as err:
        load_model_card(tmp_path)
    msg = str(err.value)
    assert "\n" not in msg, msg  # PyYAML's own text is four lines
    line = len(text.splitlines()) + 1
    assert f"line {line}: tag !!python/object/apply:os.system is not allowed" in msg and CARD_NAME in msg
    assert not marker.exists()
