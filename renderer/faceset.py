"""Aligned face crops on disk and their metadata.

Layout of a faceset directory:

    FACESET_DIR/faceset.json     schema-versioned index (below)
    FACESET_DIR/faces/<id>.png   lossless RGB crops, crop_size x crop_size

`faceset.json`:
    {"schema": 1, "crop_size": 256, "coverage": 0.375, "landmark_points": 68,
     "identity": "jane" | null,
     "faces": [{"file": "faces/<id>.png", "source": "...", "source_sha256": "...",
                "frame": 0, "box": [x0, y0, x1, y1], "score": 1.0,
                "landmarks": [[x, y], ...],            # frame pixels
                "crop_from_frame": [[a, b, c], [d, e, f]],
                "blur": 123.4, "embedding": [...] | null}],
     "rejects": [{"source": "...", "frame": 3 | null, "reason": "..."}],
     "sources": [{"path": "...", "sha256": "...", "kind": "image" | "video" | "other",
                  "frames": 68, "faces": 12}],          # sources finished (resume, idempotence)
     "settings": {"detector": "hog", "every": 1, ...},  # the extract settings that made it
     "colour": {"space": "Rec.1886 Rec.709 - Display", "config": "ocio://studio-config-latest"} | null}
                                                        # the OCIO space the crops are in; null: not
                                                        # declared (display RGB as decoded, unmanaged)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from renderer.atomic import write_json_atomic
from renderer.errors import InputError

SCHEMA_VERSION = 1
INDEX_NAME = "faceset.json"


@dataclass(frozen=True, eq=False)
class FaceRecord:
    file: str
    source: str
    source_sha256: str
    frame: int
    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray  # (K, 2) float64, frame pixels
    crop_from_frame: np.ndarray  # (2, 3) float64
    blur: float
    embedding: np.ndarray | None = None  # (128,) float32

    def landmarks_in_crop(self) -> np.ndarray:
        """(K, 2) float64 landmark positions in aligned-crop pixels."""
        pts = np.asarray(self.landmarks, dtype=np.float64)
        return pts @ self.crop_from_frame[:, :2].T + self.crop_from_frame[:, 2]

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "source": self.source,
            "source_sha256": self.source_sha256,
            "frame": int(self.frame),
            "box": [float(v) for v in self.box],
            "score": float(self.score),
            "landmarks": np.asarray(self.landmarks, dtype=float).round(3).tolist(),
            "crop_from_frame": np.asarray(self.crop_from_frame, dtype=float).tolist(),
            "blur": float(self.blur),
            "embedding": None if self.embedding is None else np.asarray(self.embedding, dtype=float).round(6).tolist(),
        }

    @staticmethod
    def from_json(entry: dict[str, Any]) -> "FaceRecord":
        emb = entry.get("embedding")
        return FaceRecord(
            file=str(entry["file"]),
            source=str(entry["source"]),
            source_sha256=str(entry["source_sha256"]),
            frame=int(entry["frame"]),
            box=tuple(float(v) for v in entry["box"]),  # type: ignore[arg-type]
            score=float(entry["score"]),
            landmarks=np.asarray(entry["landmarks"], dtype=np.float64),
            crop_from_frame=np.asarray(entry["crop_from_frame"], dtype=np.float64),
            blur=float(entry["blur"]),
            embedding=None if emb is None else np.asarray(emb, dtype=np.float32),
        )


@dataclass(frozen=True, eq=False)
class Faceset:
    root: Path
    crop_size: int
    coverage: float
    landmark_points: int
    records: tuple[FaceRecord, ...]
    rejects: tuple[dict[str, Any], ...] = field(default=())
    identity: str | None = None
    sources: tuple[dict[str, Any], ...] = field(default=())
    settings: dict[str, Any] | None = None
    colour_space: str | None = None  # OCIO space of the crops; None: undeclared (display RGB as decoded)
    colour_config: str | None = None  # the OCIO config that names it

    @property
    def colour_label(self) -> str:
        """The crops' colour space for messages: "'ACEScct' (ocio://...)" or "undeclared (display RGB as decoded)"."""
        if self.colour_space is None:
            return "undeclared (display RGB as decoded)"
        return f"{self.colour_space!r} ({self.colour_config})"

    def __len__(self) -> int:
        return len(self.records)

    def load_images(self) -> np.ndarray:
        """All crops as one (N, S, S, 3) uint8 RGB array (decoded once, held in memory)."""
        out = np.empty((len(self.records), self.crop_size, self.crop_size, 3), dtype=np.uint8)
        for i, rec in enumerate(self.records):
            path = self.root / rec.file
            bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if bgr is None or bgr.shape[:2] != (self.crop_size, self.crop_size):
                raise InputError(
                    f"faceset {self.root}: crop {rec.file} is unreadable or not "
                    f"{self.crop_size}x{self.crop_size}; re-run `doppel extract`"
                )
            out[i] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return out

    def landmarks_in_crop(self) -> np.ndarray:
        """(N, K, 2) float32 landmarks in crop pixels."""
        if not self.records:
            return np.zeros((0, self.landmark_points, 2), np.float32)
        return np.stack([r.landmarks_in_crop() for r in self.records]).astype(np.float32)

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "crop_size": self.crop_size,
            "coverage": self.coverage,
            "landmark_points": self.landmark_points,
            "identity": self.identity,
            "faces": [r.to_json() for r in self.records],
            "rejects": list(self.rejects),
            "sources": list(self.sources),
            "settings": self.settings,
            "colour": None if self.colour_space is None else {"space": self.colour_space, "config": self.colour_config},
        }


def save_faceset_index(faceset: Faceset) -> Path:
    """Write `faceset.json` atomically; the crops must already be on disk."""
    path = Path(faceset.root) / INDEX_NAME
    write_json_atomic(path, faceset.to_json())
    return path


def load_faceset(root: Path | str) -> Faceset:
    """Read a faceset directory made by `doppel extract`; InputError names what is wrong."""
    root = Path(root)
    index = root / INDEX_NAME
    if not index.is_file():
        raise InputError(f"not a faceset: {root} has no {INDEX_NAME} (make one with `doppel extract`)")
    try:
        data = json.loads(index.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"faceset index {index} is unreadable: {err}") from err
    schema = data.get("schema")
    if schema != SCHEMA_VERSION:
        raise InputError(f"faceset {index}: schema {schema!r} is not supported (supported: {SCHEMA_VERSION})")
    try:
        records = tuple(FaceRecord.from_json(e) for e in data["faces"])
        return Faceset(
            root=root,
            crop_size=int(data["crop_size"]),
            coverage=float(data["coverage"]),
            landmark_points=int(data["landmark_points"]),
            records=records,
            rejects=tuple(data.get("rejects", ())),
            identity=data.get("identity"),
            sources=tuple(data.get("sources", ())),
            settings=data.get("settings"),
            colour_space=None if not data.get("colour") else str(data["colour"]["space"]),
            colour_config=None if not data.get("colour") else str(data["colour"].get("config") or ""),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"faceset {index}: malformed entry ({err!r})") from err


def check_faceset_for_model(fs: Faceset, config: Any, where: Path | str, hint: str) -> None:
    """Refuse a faceset a model's step cannot use: other crop coverage or landmark points than
    `config` (a ModelConfig) was trained on, or no faces. `hint` says what to give instead."""
    for what, want in (("coverage", config.coverage), ("landmark_points", config.landmark_points)):
        if getattr(fs, what) != want:
            raise InputError(f"faceset {where}: {what} is {getattr(fs, what)}, the model was trained on {want}; {hint}")
    if len(fs) == 0:
        raise InputError(f"faceset {where} holds no faces; {hint}")
