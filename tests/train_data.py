"""Real aligned facesets of two people for the model and training tests, cached.

A: the presenter talking to camera in kphotoalbum's demo movie.avi (68 frames; GPL-2+ demo data).
B: Eileen Collins in scikit-image's astronaut.png (NASA, public domain), the photo, its mirror
   image and two slightly turned copies, so B has a few poses. The same two people as the
   shipped demo model: tests never train on anyone else's face.
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


def faceset_presenter(crop_size: int = 64) -> Path:
    """Faceset dir of one person from a real video (about 60 aligned frames)."""
    from renderer.media import read_frames

    movie = face_data.kphotoalbum_file(face_data.MOVIE)
    items = []
    for idx, rgb in read_frames(movie, 0, 67):
        big = cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # HOG misses faces under ~80 px
        items.append((movie, idx, big))
    return _build("presenter", "presenter", items, crop_size)


def faceset_astronaut(crop_size: int = 64) -> Path:
    """Faceset dir of a second person from one real photo (mirrored and turned +-6 degrees too)."""
    photo = face_data.astronaut()
    rgb = face_data.read_rgb(photo)
    items = []
    for image in (rgb, np.ascontiguousarray(rgb[:, ::-1])):
        h, w = image.shape[:2]
        for angle in (0.0, 6.0):
            turn = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
            items.append((photo, 0, cv2.warpAffine(image, turn, (w, h), borderMode=cv2.BORDER_REFLECT)))
    return _build("astronaut", "astronaut", items, crop_size)


def copy_faceset(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


if __name__ == "__main__":
    for fn in (faceset_presenter, faceset_astronaut):
        fs = load_faceset(fn())
        print(fs.root, len(fs), hashlib.sha256((fs.root / "faceset.json").read_bytes()).hexdigest()[:12])


def tiny_config(**overrides: object) -> ModelConfig:
    """A 32 px network small enough to train dozens of iterations in seconds on 2 CPU cores."""

    base = dict(arch="lite", input_size=32, encoder_widths=(16, 32, 64), bottleneck=64, latent_channels=32,
                encoder_upscale=32, decoder_widths=(32, 16), separable=True)
    base.update(overrides)
    return ModelConfig(**base)  # type: ignore[arg-type]
