"""Real-face clips and trained swap models for the swap, render, farm and plugin tests.

`face_clip` turns the real talking-head video from the kphotoalbum demo (one presenter,
160x120, 68 frames) into a test clip: upscaled 3x so the HOG detector finds the face,
played forwards then backwards to any length, with the frame number painted top-left in
the binary code `tests.media_factory.read_frame_number` reads.

`trained_model` returns a model directory: the shipped demo model (`models/demo`, person A
= the presenter in that video, person B = Eileen Collins in scikit-image's public-domain
astronaut portrait) when it is in the checkout, else a small model trained here on the
same two people by `renderer.train` and cached under `.cache/models/`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

from renderer import media
from renderer.demo import talking_head_frames
from tests import face_data as F
from tests.media_factory import paint_number

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".cache"
SHIPPED_MODEL = ROOT / "models" / "demo"
RIGHTS = ("Person A: KPhotoAlbum demo video (Debian package kphotoalbum, GPL-2+ demo data). Person B: NASA "
          "portrait of Eileen Collins (public domain, shipped in scikit-image). Used only to test Doppel")


def movie_frames(scale: int = 3) -> np.ndarray:
    """(68, 120*scale, 160*scale, 3) uint8 RGB frames of the real talking-head video."""
    movie = F.kphotoalbum_file(F.MOVIE)
    return talking_head_frames(movie, media.probe(movie).frames, (160 * scale, 120 * scale))


def face_clip(path: Path, frames: int = 24, fps: Fraction = Fraction(25), timecode: str | None = None,
              codec: str = "h264", scale: int = 3) -> Path:
    """Write a clip of the real talking head (ping-pong to any length) with painted frame numbers."""
    source = talking_head_frames(F.kphotoalbum_file(F.MOVIE), frames, (160 * scale, 120 * scale))
    h, w = source.shape[1:3]
    with media.VideoWriter(path, width=w, height=h, fps=fps, codec=codec, timecode=timecode) as writer:
        for n, img in enumerate(source):
            paint_number(img, n)
            writer.write(img)
    return path


def facesets() -> tuple[Path, Path]:
    """Facesets of person A (every frame of the video) and B (the astronaut), extracted once and cached."""
    from renderer.extract import extract

    out = CACHE / "facesets"
    a, b = out / "presenter", out / "astronaut"
    if not (a / "faceset.json").is_file():
        extract([F.kphotoalbum_file(F.MOVIE)], a, size=128, dedupe_bits=-1, progress=False)
    if not (b / "faceset.json").is_file():
        extract([F.astronaut()], b, size=128, progress=False)
    return a, b


def trained_model(iterations: int = 40) -> Path:
    """A trained model directory: the shipped demo model, else a small one trained and cached."""
    if (SHIPPED_MODEL / "model.safetensors").is_file() and os.environ.get("DOPPEL_TEST_TRAIN") != "1":
        return SHIPPED_MODEL
    from renderer.train import TrainConfig, train

    a, b = facesets()
    key = hashlib.sha256(f"{a.name}-{b.name}-{iterations}".encode()).hexdigest()[:10]
    final = CACHE / "models" / f"tiny-{key}"
    if (final / "model.safetensors").is_file():
        return final
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:6]}")
    train(TrainConfig(faceset_a=a, faceset_b=b, out=tmp, rights=RIGHTS, iterations=iterations,
                      batch=8, seed=0, save_every=iterations), progress=False)
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
