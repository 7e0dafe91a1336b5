"""Occluder preservation per `occlusion` mode on real face footage (issue 17 item 1).

    .venv/bin/python bench/bench_occlusion.py [--minutes 10] [--eval-first 48]

Footage: kphotoalbum's talking head (movie.avi, 68 frames, 160x120; the video the tests use),
split by time: models are trained on frames 0..eval_first-1 and judged on the rest, upscaled 3x
(480x360), with one synthetic occluder pasted per frame (in turn: a grey bar over the mouth, a
microphone, a hand-like blob cut from sunset.jpg, a snow.jpg patch over an eye; none of them the
training augmentation's shapes), written FFV1 4:4:4 lossless.

Models:
  demo    the shipped model (lite, no learned mask; trained on every frame of the video, so
          its "held-out" frames are not unseen: noted in the table)
  plain   lite + learned mask, trained here for --minutes on the first part, no occluders
  occ     the same with occlusion augmentation (augment.occluders 0.5, textures from
          kphotoalbum's snow/skagen/sunset)
Figures per model and mode, each from a real `render_range` of the clip:
  occluder IoU   share of the occluder's pixels the swap left bit-identical (goal >= 0.9)
  face swapped   on the same frames *without* occluders: share of the pixels `off` changes that
                 the mode changes too (1.0 = the mode takes nothing away from a clean face)
  model s/face   the model stage's time per face (the extra decoder pass of reconstruction /
                 learned), and a direct timing of SwapModel.__call__ vs swap_and_rebuild.
Writes bench/results/occlusion.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from renderer import media  # noqa: E402
from renderer.augment import AugmentConfig  # noqa: E402
from renderer.composite import OcclusionSettings  # noqa: E402
from renderer.faces.track import find_faces  # noqa: E402
from renderer.swap import SwapModel, SwapSettings, render_range  # noqa: E402
from tests import face_data as F  # noqa: E402
from tests.model_fixtures import RIGHTS, SHIPPED_MODEL, facesets, movie_frames  # noqa: E402

OUT = ROOT / "bench" / "results" / "occlusion.md"
WORK = ROOT / ".cache" / "bench" / "occlusion"


def occluder(kind: int, img: np.ndarray, lm: np.ndarray, photos: dict[str, np.ndarray]) -> np.ndarray:
    """Paste occluder `kind` (0..3) over `img` in place, placed by the 68 landmarks; return its (H, W) bool mask."""
    h, w = img.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    face_w = float(lm[16, 0] - lm[0, 0])
    mouth = lm[48:68]
    (mx0, my0), (mx1, my1) = mouth.min(0), mouth.max(0)
    if kind == 0:  # grey bar over the mouth
        cv2.rectangle(mask, (int(mx0 - 0.3 * (mx1 - mx0)), int(my0 - 6)), (int(mx1 + 0.3 * (mx1 - mx0)), int(my1 + 6)), 1, -1)
        tex = np.full_like(img, 128)
    elif kind == 1:  # a microphone: a ball head at the mouth corner and its handle down out of frame
        cx, cy, r = int(mx1), int((my0 + my1) / 2), int(0.12 * face_w)
        cv2.circle(mask, (cx, cy), r, 1, -1)
        cv2.line(mask, (cx, cy), (cx + int(0.2 * face_w), h), 1, max(3, int(0.07 * face_w)))
        tex = np.full_like(img, 40)
        tex[..., 2] = 50
    elif kind == 2:  # a hand-like blob over the cheek, textured with sunset.jpg
        cx, cy = int(lm[3, 0] + 0.1 * face_w), int(lm[3, 1])
        cv2.ellipse(mask, (cx, cy), (int(0.2 * face_w), int(0.28 * face_w)), 15, 0, 360, 1, -1)
        for k in range(4):  # fingers
            a = np.radians(-60 + 25 * k)
            tip = (int(cx + 0.45 * face_w * np.cos(a)), int(cy + 0.45 * face_w * np.sin(a) - 0.1 * face_w))
            cv2.line(mask, (cx, cy), tip, 1, max(3, int(0.08 * face_w)))
        tex = cv2.resize(photos["sunset.jpg"], (w, h))
    else:  # a patch of snow.jpg over the left eye (a cap's brim, a hand holding paper)
        ex, ey = lm[36:42].mean(0)
        cv2.rectangle(mask, (int(ex - 0.22 * face_w), int(ey - 0.15 * face_w)), (int(ex + 0.18 * face_w), int(ey + 0.12 * face_w)), 1, -1)
        tex = cv2.resize(photos["snow.jpg"], (w, h))
    m = mask.astype(bool)
    img[m] = tex[m]
    return m


def write_clip(path: Path, frames: np.ndarray) -> Path:
    h, w = frames.shape[1:3]
    with media.VideoWriter(path, width=w, height=h, fps=15, codec="ffv1", pix_fmt="yuv444p") as writer:
        for img in frames:
            writer.write(img)
    return path


def train_model(out: Path, faceset_a: Path, faceset_b: Path, minutes: float, occluders: float) -> Path:
    """A lite + learned-mask model trained for `minutes` in all (a cached one shorter than that is resumed)."""
    from renderer.model import WEIGHTS_NAME
    from renderer.modelcard import read_model_card
    from renderer.checkpoint import model_files
    from renderer.train import TrainConfig, train

    done = read_model_card(model_files(out)).train_seconds if (out / WEIGHTS_NAME).is_file() else 0.0
    if done >= minutes * 60 - 30:
        return out
    photos = tuple(str(F.kphotoalbum_file(n)) for n in F.NO_FACE)
    cfg = TrainConfig(faceset_a=faceset_a, faceset_b=faceset_b, out=out, rights=RIGHTS, model="lite" if not done else None,
                      minutes=minutes - done / 60, resume=done > 0, learn_mask=True, threads=1, seed=0, device="cpu",
                      save_every=100000, augment=AugmentConfig(occluders=occluders),
                      occluder_photos=photos if occluders else ())
    result = train(cfg, progress=False)
    (out / "bench.txt").write_text(f"{result.iterations} iterations in {result.card.train_seconds:.0f} s\n")
    return out


def segmented_demo(out: Path, faceset_a: Path, faceset_b: Path, iterations: int) -> Path:
    """A copy of the shipped model with an occluder segmenter trained on frames 0..eval_first-1 and the astronaut
    (`doppel train-segmenter`, textures from scikit-image's coffee and rocket: not the judged occluders' photos)."""
    import shutil

    from renderer.checkpoint import model_files
    from renderer.modelcard import load_model_card
    from renderer.segmenter import SEGMENTER_NAME
    from renderer.train_segmenter import SegmenterTrainConfig, train_segmenter
    from quality_timesplit import segmenter_photos

    card = load_model_card(out) if (out / "model.yaml").exists() else None
    if card is not None and card.segmenter is not None and card.segmenter.iterations == iterations \
            and (model_files(out) / SEGMENTER_NAME).is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(SHIPPED_MODEL, out)
    rights = (f"{load_model_card(out).rights} The segmenter learned from a re-extraction of the same two people's "
              "faces (the first frames of the same video, the same portrait).")
    train_segmenter(SegmenterTrainConfig(model_dir=out, facesets=(faceset_a, faceset_b), photos=tuple(segmenter_photos()),
                                         iterations=iterations, threads=1, rights=rights), progress=False)
    return out


def render(src: Path, out: Path, model: SwapModel, mode: str, matte: Path | None, n: int) -> tuple[dict[int, np.ndarray], float]:
    settings = SwapSettings(occlusion=OcclusionSettings(mode), holdout=matte if mode == "matte" else None)
    stats = render_range(src, out, model_dir=Path(), model=model, settings=settings, first=0, last=n - 1,
                         swap_ranges=[(0, n - 1)], codec="ffv1", pix_fmt="yuv444p")
    return dict(media.read_frames(out, 0, n - 1)), stats.seconds["model"] / max(1, stats.faces)


def direct_timing(model: SwapModel, crops: np.ndarray, repeats: int) -> tuple[float, float]:
    """Seconds per batch of `crops` for the swap alone and for swap + rebuild (best of `repeats`)."""
    import torch

    from renderer.swap import FACE_THREADS

    before = torch.get_num_threads()
    torch.set_num_threads(FACE_THREADS)  # as a render runs the model
    best = [np.inf, np.inf]
    for _ in range(repeats):
        for k, fn in enumerate((model.__call__, model.swap_and_rebuild)):
            t = time.perf_counter()
            fn(crops)
            best[k] = min(best[k], time.perf_counter() - t)
    torch.set_num_threads(before)
    return best[0], best[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=40.0,
                    help="training minutes per bench model, in all (a cached shorter one is resumed; default 40)")
    ap.add_argument("--eval-first", type=int, default=48, help="first frame judged; models train on the frames before")
    ap.add_argument("--models", default="demo,plain,occ",
                    help="which models to judge, of demo, plain, occ, seg (default demo,plain,occ)")
    ap.add_argument("--segmenter-iterations", type=int, default=6000,
                    help="seg: iterations of the occluder segmenter added to a copy of the demo model (default 6000)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"the report (default {OUT.relative_to(ROOT)})")
    args = ap.parse_args()
    load_start = os.getloadavg()
    t_start = time.time()
    WORK.mkdir(parents=True, exist_ok=True)
    frames = movie_frames(3)
    eval_frames = frames[args.eval_first:]
    n = len(eval_frames)
    photos = {name: F.read_rgb(F.kphotoalbum_file(name)) for name in F.NO_FACE}
    occluded = eval_frames.copy()
    truth = np.zeros(occluded.shape[:3], bool)
    for i, img in enumerate(occluded):
        found = find_faces(eval_frames[i])
        if found:
            truth[i] = occluder(i % 4, img, found[0].landmarks, photos)

    wanted = args.models.split(",")
    models: dict[str, tuple[Path, str]] = {}
    if "demo" in wanted:
        models["demo"] = (SHIPPED_MODEL, "shipped; trained on every frame (judged frames seen in training)")
    if any(m in wanted for m in ("plain", "occ", "seg")):
        from renderer.extract import extract

        first_part = WORK / f"first{args.eval_first}.mkv"
        if not first_part.is_file():
            media.trim(F.kphotoalbum_file(F.MOVIE), 0, args.eval_first - 1, first_part, codec="ffv1")
        fa = WORK / f"faceset-first{args.eval_first}"
        if not (fa / "faceset.json").is_file():
            extract([first_part], fa, size=128, dedupe_bits=-1, progress=False)
        _, fb = facesets()
        for name, occ in (("plain", 0.0), ("occ", 0.5)):
            if name in wanted:
                d = train_model(WORK / f"model-{name}-first{args.eval_first}", fa, fb, args.minutes, occ)
                models[name] = (d, f"lite + learned mask, {'occluders 0.5' if occ else 'no occluders'}, "
                                   f"{(d / 'bench.txt').read_text().strip()} on frames 0-{args.eval_first - 1}")
        if "seg" in wanted:
            from renderer.modelcard import load_model_card

            d = segmented_demo(WORK / f"model-demo-seg-first{args.eval_first}", fa, fb, args.segmenter_iterations)
            sc = load_model_card(d).segmenter
            models["seg"] = (d, f"the shipped model with an occluder segmenter: {sc.iterations} iterations in "
                                f"{sc.train_seconds:.0f} s on frames 0-{args.eval_first - 1} and the astronaut, textures "
                                f"{' and '.join(sc.photos)} (IoU {sc.synthetic_iou:.3f} on held-out synthetic occluders)")

    rows = []
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        occ_clip = write_clip(tmpd / "occluded.mkv", occluded)
        clean_clip = write_clip(tmpd / "clean.mkv", eval_frames)
        matte_clip = write_clip(tmpd / "matte.mkv", np.repeat(truth[..., None], 3, axis=3).astype(np.uint8) * 255)
        src_occ = dict(media.read_frames(occ_clip, 0, n - 1))
        src_clean = dict(media.read_frames(clean_clip, 0, n - 1))
        for name, (path, note) in models.items():
            model = SwapModel(path, "a2b", "cpu")
            modes = (["off", "reconstruction"] + (["learned"] if model.learns_mask or model.has_segmenter else [])
                     + (["matte"] if name == "demo" else []))
            clean_off, _ = render(clean_clip, tmpd / "c-off.mkv", model, "off", None, n)
            off_changed = {i: np.any(src_clean[i] != clean_off[i], axis=2) for i in range(n)}
            for mode in modes:
                out, per_face = render(occ_clip, tmpd / f"{name}-{mode}.mkv", model, mode, matte_clip, n)
                kept = sum(int(np.all(src_occ[i] == out[i], axis=2)[truth[i]].sum()) for i in range(n))
                iou = kept / max(1, int(truth.sum()))
                per_kind = []
                for k in range(4):
                    idx = [i for i in range(n) if i % 4 == k]
                    tot = sum(int(truth[i].sum()) for i in idx)
                    per_kind.append(sum(int(np.all(src_occ[i] == out[i], axis=2)[truth[i]].sum()) for i in idx) / max(1, tot))
                if mode == "off":
                    swapped = 1.0
                elif mode == "matte":
                    swapped = float("nan")  # the matte holds back what it covers, by design
                else:
                    clean, _ = render(clean_clip, tmpd / f"c-{mode}.mkv", model, mode, matte_clip if mode == "matte" else None, n)
                    both = sum(int((np.any(src_clean[i] != clean[i], axis=2) & off_changed[i]).sum()) for i in range(n))
                    swapped = both / max(1, sum(int(off_changed[i].sum()) for i in range(n)))
                rows.append((name, note, mode, iou, per_kind, swapped, per_face))
                print(f"{name:6s} {mode:15s} IoU {iou:.3f} {np.round(per_kind, 3)} swapped {swapped:.3f} "
                      f"model {1000 * per_face:.1f} ms/face", flush=True)
            crops = np.stack([cv2.warpAffine(eval_frames[i], f.crop_from_frame, (model.size, model.size))
                              for i in range(8) for f in find_faces(eval_frames[i], crop_size=model.size,
                                                                    coverage=model.config.coverage)[:1]])
            a, b = direct_timing(model, crops, 20)
            timings.append((name, len(crops), a, b))
    load_end = os.getloadavg()

    lines = [
        "## Occlusion: occluders left in front of the face, per `occlusion` mode",
        "",
        f"Command: `.venv/bin/python bench/bench_occlusion.py --minutes {args.minutes:g} --eval-first {args.eval_first}"
        + (f" --models {args.models}" if args.models != "demo,plain,occ" else "")
        + (f" --out {os.path.relpath(args.out, ROOT)}" if args.out != OUT else "") + "`",
        f"Machine: {os.cpu_count()}-core CPU, no GPU, shared with other jobs: load average {load_start[0]:.1f} at the "
        f"start, {load_end[0]:.1f} at the end; {time.time() - t_start:.0f} s in all (training included; a model "
        f"already in .cache/bench/occlusion with that much training is reused, not retrained).",
        f"Footage: kphotoalbum's talking head (movie.avi), 3x (480x360); frames {args.eval_first}-67 judged "
        f"({n} frames), one synthetic occluder per frame in turn: grey bar over the mouth, microphone, "
        "hand-like blob (sunset.jpg texture), snow.jpg patch over an eye. FFV1 4:4:4 in and out.",
        "",
        "Occluder IoU: share of the occluder's pixels the swap left bit-identical (goal >= 0.9). Face swapped: on the same "
        "frames without occluders, share of the pixels `off` changes that this mode changes too (1.0: nothing of a clean "
        "face is held back). Model ms/face: the render's model stage (encoder + decoders) per face.",
        "",
        "| model | mode | occluder IoU | bar / mic / hand / patch | face swapped (clean frames) | model ms/face |",
        "|---|---|---:|---|---:|---:|",
    ]
    for name, _, mode, iou, per_kind, swapped, per_face in rows:
        shown = "n/a (holds back what it covers)" if np.isnan(swapped) else f"{swapped:.3f}"
        lines.append(f"| {name} | {mode} | **{iou:.3f}** | {' / '.join(f'{v:.2f}' for v in per_kind)} | {shown} | "
                     f"{1000 * per_face:.1f} |")
    lines += ["", "Models:", ""] + [f"- {name}: {note}" for name, (_, note) in models.items()]
    lines += ["", "Cost of the source decoder pass, timed directly (best of 20, one batch of real crops, torch threads as in a "
              "render):", "",
              "| model | faces | swap only (ms) | swap + rebuild (ms) | ratio |", "|---|---:|---:|---:|---:|"]
    for name, faces, a, b in timings:
        lines.append(f"| {name} | {faces} | {1000 * a:.1f} | {1000 * b:.1f} | {b / a:.2f}x |")
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
