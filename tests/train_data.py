"""Real aligned facesets of two people for the model and training tests, cached.

A: Linus Torvalds talking to camera (kphotoalbum demo movie.avi, 68 frames).
B: Barack Obama (face_recognition 1.3.0 test images obama.jpg, obama2.jpg, obama3.jpg),
   each photo also mirrored, so B has a few more real poses.
Faces are found, landmarked and aligned with `renderer.faces` (the same code `doppel
extract` uses) and written with `renderer.faceset`. Cache: .cache/train_facesets/<name>-<size>/.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import cv2
import numpy as np

from renderer.model import ModelConfig

from renderer.atomic import sha256_file
from renderer.faces.align import crop, make_face
from renderer.faces.detect import detect
from renderer.faces.landmarks import landmarks
from renderer.faceset import Faceset, FaceRecord, load_faceset, save_faceset_index
from tests import face_data

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "train_facesets"
COVERAGE = 0.375


def _build(name: str, identity: str, items: list[tuple[Path, int, np.ndarray]], crop_size: int) -> Path:
    final = CACHE / f"{name}-{crop_size}"
    if (final / "faceset.json").is_file():
        return final
    tmp = CACHE / f".{name}-{uuid.uuid4().hex[:8]}"
    (tmp / "faces").mkdir(parents=True)
    records = []
    digests: dict[Path, str] = {}
    for src, frame, rgb in items:
        found = detect(rgb, "hog", min_size=40)
        if not found:
            continue
        det = found[0]
        lms = landmarks(rgb, det.box, 68)
        face = make_face(lms, det.box, det.score, crop_size=crop_size, coverage=COVERAGE)
        file = f"faces/{len(records):05d}.png"
        cv2.imwrite(str(tmp / file), cv2.cvtColor(crop(rgb, face), cv2.COLOR_RGB2BGR))
        digests.setdefault(src, sha256_file(src))
        records.append(FaceRecord(file, str(src), digests[src], frame, face.box, face.score, face.landmarks,
                                  face.crop_from_frame, float(cv2.Laplacian(rgb, cv2.CV_64F).var())))
    save_faceset_index(Faceset(tmp, crop_size, COVERAGE, 68, tuple(records), identity=identity))
    try:
        tmp.rename(final)
    except OSError:  # another process won the race
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def faceset_linus(crop_size: int = 64) -> Path:
    """Faceset dir of one person from a real video (about 60 aligned frames)."""
    from renderer.media import read_frames

    movie = face_data.kphotoalbum_file(face_data.MOVIE)
    items = []
    for idx, rgb in read_frames(movie, 0, 67):
        big = cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # HOG misses faces under ~80 px
        items.append((movie, idx, big))
    return _build("linus", "linus", items, crop_size)


def faceset_obama(crop_size: int = 64) -> Path:
    """Faceset dir of a second person from real photos (mirrored too)."""
    folder = face_data.face_recognition_images()
    items = []
    for name in ("obama.jpg", "obama2.jpg", "obama3.jpg"):
        rgb = face_data.read_rgb(folder / name)
        items.append((folder / name, 0, rgb))
        items.append((folder / name, 0, np.ascontiguousarray(rgb[:, ::-1])))
    return _build("obama", "obama", items, crop_size)


def copy_faceset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


if __name__ == "__main__":
    for fn in (faceset_linus, faceset_obama):
        fs = load_faceset(fn())
        print(fs.root, len(fs), hashlib.sha256((fs.root / "faceset.json").read_bytes()).hexdigest()[:12])


def tiny_config(**overrides: object) -> ModelConfig:
    """A 32 px network small enough to train dozens of iterations in seconds on 2 CPU cores."""

    base = dict(arch="lite", input_size=32, encoder_widths=(16, 32, 64), bottleneck=64, latent_channels=32,
                encoder_upscale=32, decoder_widths=(32, 16), separable=True)
    base.update(overrides)
    return ModelConfig(**base)  # type: ignore[arg-type]
