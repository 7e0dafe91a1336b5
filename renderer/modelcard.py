"""The model card: MODEL_DIR/model.yaml, what a trained swap model is and whose faces it learned.

Every model carries one. It holds the network config (so the model rebuilds itself),
the two identities, the `rights` statement given at train time (who the faces belong
to and on what basis they may be used; a card without it is refused), the facesets
trained on (path + SHA-256 of their index), iterations, a loss summary, the software
that trained it and when. Read with `yaml.safe_load`, validated into frozen dataclasses.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from renderer.atomic import sha256_file, write_text_atomic
from renderer.checkpoint import model_files
from renderer.errors import ModelError
from renderer.error_prior import ErrorPriorCard  # torch-free: the card's section only
from renderer.segmenter import SegmenterCard  # torch-free too
from renderer.model_config import ModelConfig

if TYPE_CHECKING:
    from renderer.upscale import UpscalerCard

CARD_NAME = "model.yaml"
CARD_SCHEMA = 1


@dataclass(frozen=True)
class FacesetRef:
    """One training faceset: role ('a' or 'b'), where it was, the SHA-256 of its faceset.json, face count."""

    role: str
    path: str
    sha256: str
    faces: int


@dataclass(frozen=True)
class LossSummary:
    """Loss of each half: first and last logged value (mean over the last log window), best."""

    first_a: float = float("nan")
    first_b: float = float("nan")
    last_a: float = float("nan")
    last_b: float = float("nan")
    best_a: float = float("nan")
    best_b: float = float("nan")


@dataclass(frozen=True)
class Validation:
    """Held-out reconstruction quality: mean SSIM of each decoder rebuilding faces it never trained on
    (every `holdout`-th face of its faceset) at `iteration`. None where a faceset held nothing out."""

    holdout: int
    iteration: int
    faces_a: int
    faces_b: int
    ssim_a: float | None
    ssim_b: float | None


@dataclass(frozen=True)
class InitRef:
    """The model a model was started from (`doppel train --init`): its weights, and so the faces they
    learned, live on in this one. Whose faces (identities), under what rights, which weights (SHA-256),
    and that model's own lineage (None: it was trained from random weights)."""

    path: str
    name_a: str
    name_b: str
    rights: str
    weights_sha256: str
    iterations: int
    initialised_from: InitRef | None = None
    crossed: bool = False  # its decoder A started this model's decoder B, its B this one's A (--init-crossed)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "identities": {"a": self.name_a, "b": self.name_b}, "rights": self.rights,
                "weights_sha256": self.weights_sha256, "iterations": int(self.iterations),
                **({"decoders": "crossed"} if self.crossed else {}),
                **({"initialised_from": self.initialised_from.to_dict()} if self.initialised_from else {})}

    @property
    def lineage(self) -> tuple[InitRef, ...]:
        """This model and every one before it, the nearest first."""
        return (self,) + (self.initialised_from.lineage if self.initialised_from else ())


@dataclass(frozen=True)
class ModelCard:
    config: ModelConfig
    name_a: str
    name_b: str
    rights: str
    facesets: tuple[FacesetRef, ...] = ()
    iterations: int = 0
    loss: LossSummary = field(default_factory=LossSummary)
    software: str = ""
    created: str = ""
    updated: str = ""
    train_seconds: float = 0.0
    device: str = ""
    weights_sha256: str = ""
    validation: Validation | None = None
    synthetic_media: bool = True  # this model makes synthetic media; the render stage labels its output
    working_space: str | None = None  # the OCIO space its facesets were in; None: undeclared (display RGB)
    colour_config: str | None = None  # the OCIO config naming it
    initialised_from: InitRef | None = None  # `doppel train --init`: the model whose weights this one started from
    upscaler: UpscalerCard | None = None  # B's face upscaler (`renderer.upscale`), when one was trained
    error_prior: ErrorPriorCard | None = None  # decoder A's own-face rebuild error (`renderer.error_prior`)
    segmenter: SegmenterCard | None = None  # the occluder segmenter of `occlusion: learned` (`renderer.segmenter`)

    @property
    def identities(self) -> tuple[str, str]:
        return (self.name_a, self.name_b)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": CARD_SCHEMA,
            "kind": "doppel-swap-model",
            "identities": {"a": self.name_a, "b": self.name_b},
            "rights": self.rights,
            "synthetic_media": self.synthetic_media,
            "config": self.config.to_dict(),
            "facesets": [dataclasses.asdict(f) for f in self.facesets],
            "iterations": int(self.iterations),
            "loss": {k: _num(v) for k, v in dataclasses.asdict(self.loss).items()},
            "software": self.software,
            "created": self.created,
            "updated": self.updated,
            "train_seconds": round(float(self.train_seconds), 3),
            "device": self.device,
            "weights_sha256": self.weights_sha256,
            "colour": ({"working_space": self.working_space, "config": self.colour_config} if self.working_space else
                       {"working_space": None, "note": "undeclared: faces learned as decoded (display RGB, e.g. "
                                                       "Rec.709 video or sRGB photos)"}),
            **({"validation": {k: (_num(v) if isinstance(v, float) else v)
                               for k, v in dataclasses.asdict(self.validation).items()}} if self.validation else {}),
            **({"initialised_from": self.initialised_from.to_dict()} if self.initialised_from else {}),
            **({"upscaler": self.upscaler.to_dict()} if self.upscaler else {}),
            **({"error_prior": self.error_prior.to_dict()} if self.error_prior else {}),
            **({"segmenter": self.segmenter.to_dict()} if self.segmenter else {}),
        }


def _upscaler_card(data: Any) -> UpscalerCard | None:
    """The card's `upscaler:` section; renderer.upscale (torch) is imported only for a card that has one."""
    if data is None:
        return None
    from renderer.upscale import UpscalerCard

    return UpscalerCard.from_dict(data)


def _num(v: float) -> float | None:
    return None if v != v else round(float(v), 6)  # NaN -> null keeps the YAML portable


def software_version() -> str:
    import torch

    from renderer import __version__

    return f"doppel {__version__}; torch {torch.__version__}"


def now_utc() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def validate_rights(rights: str | None, where: str) -> str:
    """The stripped rights statement; ModelError when it is missing or too short to say anything."""
    text = (rights or "").strip()
    if len(text) < 8:
        raise ModelError(
            f"{where}: a rights statement is required (who the faces belong to and on what basis they "
            f"may be used, e.g. --rights \"Both people filmed with written consent for project X\"); "
            f"got {rights!r}"
        )
    return text


def card_text(card: ModelCard) -> str:
    """MODEL_DIR/model.yaml's text for `card`."""
    header = "# Doppel model card. This model makes synthetic media: renders are labelled as such.\n"
    return header + yaml.safe_dump(card.to_dict(), sort_keys=False, allow_unicode=True)


def save_model_card(model_dir: Path | str, card: ModelCard) -> Path:
    """Write model.yaml atomically into MODEL_DIR's current files (after validating the rights statement)."""
    validate_rights(card.rights, f"model card for {model_dir}")
    folder = model_files(model_dir) if Path(model_dir).is_dir() else Path(model_dir)
    path = folder / CARD_NAME
    write_text_atomic(path, card_text(card))
    return path


def model_card_from_dict(data: Any, where: str) -> ModelCard:
    """Validate a parsed model.yaml; ModelError names the missing or malformed key."""
    if not isinstance(data, dict):
        raise ModelError(f"{where}: expected a mapping, got {type(data).__name__}")
    if data.get("schema") != CARD_SCHEMA or data.get("kind") != "doppel-swap-model":
        raise ModelError(
            f"{where}: not a Doppel model card (schema {data.get('schema')!r}, kind {data.get('kind')!r}; "
            f"expected schema {CARD_SCHEMA}, kind 'doppel-swap-model')"
        )
    rights = validate_rights(data.get("rights"), where)
    try:
        ids = data["identities"]
        loss = {k: float("nan") if v is None else float(v) for k, v in (data.get("loss") or {}).items()}
        known_loss = {f.name for f in dataclasses.fields(LossSummary)}
        return ModelCard(
            config=ModelConfig.from_dict(data["config"]),
            name_a=str(ids["a"]),
            name_b=str(ids["b"]),
            rights=rights,
            facesets=tuple(FacesetRef(**f) for f in data.get("facesets") or ()),
            iterations=int(data.get("iterations", 0)),
            loss=LossSummary(**{k: v for k, v in loss.items() if k in known_loss}),
            software=str(data.get("software", "")),
            created=str(data.get("created", "")),
            updated=str(data.get("updated", "")),
            train_seconds=float(data.get("train_seconds", 0.0)),
            device=str(data.get("device", "")),
            weights_sha256=str(data.get("weights_sha256") or ""),
            validation=_validation(data.get("validation")),
            synthetic_media=bool(data.get("synthetic_media", True)),
            working_space=_colour(data, "working_space"),
            colour_config=_colour(data, "config"),
            initialised_from=_init_ref(data.get("initialised_from")),
            upscaler=_upscaler_card(data.get("upscaler")),
            error_prior=(ErrorPriorCard.from_dict(data["error_prior"]) if data.get("error_prior") is not None
                         else None),
            segmenter=(SegmenterCard.from_dict(data["segmenter"]) if data.get("segmenter") is not None else None),
        )
    except ModelError as err:
        raise ModelError(f"{where}: {err}") from err
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"{where}: malformed model card ({err!r})") from err


def _colour(data: dict[str, Any], key: str) -> str | None:
    colour = data.get("colour") or {}
    if not isinstance(colour, dict):
        raise ValueError(f"colour must be a mapping, got {colour!r}")
    value = colour.get(key)
    return None if value is None else str(value)


def _init_ref(data: Any) -> InitRef | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"initialised_from must be a mapping, got {data!r}")
    ids = data["identities"]
    return InitRef(path=str(data["path"]), name_a=str(ids["a"]), name_b=str(ids["b"]),
                   rights=validate_rights(data.get("rights"), "initialised_from"),
                   weights_sha256=str(data["weights_sha256"]), iterations=int(data.get("iterations", 0)),
                   initialised_from=_init_ref(data.get("initialised_from")), crossed=_decoders(data.get("decoders")))


def _decoders(value: Any) -> bool:
    """initialised_from.decoders: absent (straight: A started A) or "crossed"."""
    if value is None or value == "straight":
        return False
    if value == "crossed":
        return True
    raise ValueError(f"initialised_from.decoders must be 'straight' or 'crossed', got {value!r}")


def _validation(data: Any) -> Validation | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ValueError(f"validation must be a mapping, got {data!r}")

    def ssim(v: Any) -> float | None:
        return None if v is None else float(v)

    return Validation(holdout=int(data["holdout"]), iteration=int(data["iteration"]), faces_a=int(data["faces_a"]),
                      faces_b=int(data["faces_b"]), ssim_a=ssim(data.get("ssim_a")), ssim_b=ssim(data.get("ssim_b")))


def yaml_error_line(err: yaml.YAMLError) -> str:
    """One line for a YAML error: 'line N: what' (PyYAML's own text spans several lines)."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    tag = problem.split("for the tag ", 1)[1].strip("'") if "for the tag " in problem else None
    if tag:
        problem = f"tag {tag.replace('tag:yaml.org,2002:', '!!')} is not allowed (plain YAML only; no object is ever built from a tag)"
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


def read_model_card(folder: Path) -> ModelCard:
    """Read and validate FOLDER/model.yaml, FOLDER being a model's files (`renderer.checkpoint.model_files`)."""
    path = folder / CARD_NAME
    if not path.is_file():
        raise ModelError(f"model {folder}: no {CARD_NAME} model card (train one with `doppel train`)")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as err:
        raise ModelError(f"model card {path} is unreadable: {yaml_error_line(err)}") from err
    except (OSError, UnicodeDecodeError) as err:
        raise ModelError(f"model card {path} is unreadable: {err}") from err
    return model_card_from_dict(data, str(path))


def load_model_card(model_dir: Path | str) -> ModelCard:
    """Read and validate MODEL_DIR's model card; ModelError (exit 2) when the folder does not exist, or the
    card is missing, malformed or without rights."""
    return read_model_card(model_files(model_dir))


def card_sha256(model_dir: Path | str) -> str:
    """Hex SHA-256 of MODEL_DIR's model.yaml (what provenance manifests cite)."""
    path = model_files(model_dir) / CARD_NAME
    if not path.is_file():
        raise ModelError(f"model {model_dir}: no {CARD_NAME} model card")
    return sha256_file(path)
