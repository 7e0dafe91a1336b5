"""Farm benchmark: one edit with 4 marked clips through `doppel farm run` at 1 and 2 workers,
per-task figures, pre-roll overhead per chunk size, and the h264 chunked-vs-unchunked difference.

    .venv/bin/python bench/bench_farm.py            # writes bench/results/farm.md

Real face clip (tests.model_fixtures.face_clip, 480x360) and the small trained test model
(tests.model_fixtures.trained_model), lossless ffv1 output. Every figure is measured in this run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import opentimelineio as otio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from renderer import farm, media  # noqa: E402
from renderer.presets import parse_preset  # noqa: E402
from renderer.swap import SEGMENT_FRAMES, render_range, swap_settings  # noqa: E402
from tests.model_fixtures import face_clip, trained_model  # noqa: E402

OUT = ROOT / "bench" / "out" / "farm"
RESULT = ROOT / "bench" / "results" / "farm.md"
FPS = Fraction(25)
TC = "01:00:00:00"
SOURCE_FRAMES = 120
CLIPS = [(0, 24), (30, 24), (60, 24), (90, 24)]  # (first source frame, frames) of the 4 marked clips
PRESET = """\
description: bench (lossless, stateful smoothing)
detector: hog
blend: alpha
colour: mean
smoothing: {landmarks: true, temporal: 0.5}
detect_every: 2
handles: 0
output: {codec: ffv1, container: mkv, audio: none, name: "{clip}.doppel"}
"""


def make_edit(src: Path) -> Path:
    rate, origin = float(FPS), media.timecode_to_frame(TC, FPS)
    tl = otio.schema.Timeline(name="bench")
    track = otio.schema.Track()
    for k, (first, frames) in enumerate(CLIPS):
        clip = otio.schema.Clip(name=f"shot{k}", media_reference=otio.schema.ExternalReference(
            target_url=src.resolve().as_uri(), available_range=otio.opentime.TimeRange(
                otio.opentime.RationalTime(origin, rate), otio.opentime.RationalTime(SOURCE_FRAMES, rate))),
            source_range=otio.opentime.TimeRange(otio.opentime.RationalTime(origin + first, rate),
                                                 otio.opentime.RationalTime(frames, rate)))
        clip.markers.append(otio.schema.Marker(name="FACESWAP", marked_range=otio.opentime.TimeRange(
            otio.opentime.RationalTime(origin + first, rate), otio.opentime.RationalTime(0, rate))))
        track.append(clip)
    tl.tracks.append(track)
    path = OUT / "bench.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


def timed_render(src: Path, out: Path, model: Path, settings, first: int, last: int, origin: int,
                 codec: str = "ffv1", gop: int | None = None) -> float:
    t0 = time.perf_counter()
    render_range(src, out, model_dir=model, settings=settings, first=first, last=last, swap_ranges=[(origin, last)],
                 codec=codec, audio=False, origin=origin, gop=gop)
    return time.perf_counter() - t0


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    os.environ["DOPPEL_KEYS_DIR"] = str(OUT / "no-keys")
    model = trained_model()
    src = face_clip(OUT / "face.mov", SOURCE_FRAMES, FPS, TC, "h264")
    edit = make_edit(src)
    preset = OUT / "bench.yaml"
    preset.write_text(PRESET)
    lines = ["## Render farm (`doppel farm run`)", "",
             f"Command: `.venv/bin/python bench/bench_farm.py`. Machine: {os.cpu_count()}-core CPU "
             f"({platform.machine()}), no GPU, shared with other work while measured. Source: real face clip "
             f"480x360 h264, 25 fps; model: the small trained test model; output ffv1 (lossless).", ""]

    # 1. one edit, 4 clips x 24 frames, 24-frame chunks: 4 Render tasks + Publish, at 1 and 2 workers
    bundle = farm.export_bundle(edit, preset, OUT / "bundle", model=model, chunk_frames=24)
    runs = {}
    for workers in (1, 2):
        result = farm.run_bundle(bundle.path, workers=workers, out_dir=OUT / f"out-w{workers}")
        assert not result.failed, result.failed
        runs[workers] = result
    w1, w2 = runs[1].seconds, runs[2].seconds
    lines += ["### Wall time, one edit, 4 marked clips x 24 frames (4 Render tasks + Publish)", "",
              "| workers | wall s | ratio to 1 worker |", "|---|---|---|",
              f"| 1 | {w1:.1f} | 1.00 |", f"| 2 | {w2:.1f} | {w2 / w1:.2f} (ideal on 2 cores: 0.50) |", ""]
    render_tasks = [t for t in runs[1].tasks if t.step == "Render"]
    publish_s = next(t.seconds for t in runs[1].tasks if t.step == "Publish")
    mean_task = sum(t.seconds for t in render_tasks) / len(render_tasks)

    # 2. in-process cost per frame (no process start) and per pre-roll frame
    settings = swap_settings(parse_preset(PRESET, name="bench", path=str(preset)))
    base = SEGMENT_FRAMES  # a segment start: no pre-roll
    n = 24
    full = timed_render(src, OUT / "a.mkv", model, settings, base, base + n - 1, origin=base)
    later_no_pre = timed_render(src, OUT / "b.mkv", model, settings, base + n, base + 2 * n - 1, origin=base + n)
    later_pre = timed_render(src, OUT / "c.mkv", model, settings, base + n, base + 2 * n - 1, origin=base)
    t_frame = full / n
    t_pre = max(later_pre - later_no_pre, 0.0) / n
    startup = max(mean_task - 24 * t_frame, 0.0)
    lines += ["### Per task", "",
              f"- Render task of 24 frames (process start, model load, render, record): mean {mean_task:.1f} s "
              f"-> {3600 / mean_task:.0f} tasks/hour per worker ({3600 / mean_task * 24:.0f} frames/hour).",
              f"- In-process render: {t_frame * 1000:.0f} ms per frame; pre-roll (decode + track, discarded): "
              f"{t_pre * 1000:.0f} ms per frame; so a task's fixed cost (process start, imports, model load) is "
              f"about {startup:.1f} s.",
              f"- Publish (join 4 clips' chunks by packet copy, write the return edit and render.json): "
              f"{publish_s:.1f} s.", ""]

    # 3. pre-roll overhead vs chunk size, over a 2400-frame clip (chunks as OpenJD cuts them)
    length = 2400
    lines += ["### Pre-roll overhead by chunk size (2400-frame clip; from the per-frame figures above)", "",
              "| chunk frames | tasks | pre-roll frames | pre-roll share of chunk time | + task start share | "
              "clip wall on 1 worker, s | same, clip starting at frame 12: pre-roll share |",
              "|---|---|---|---|---|---|---|"]
    for chunk in (24, 48, 96, 240):
        spans = farm.chunk_spans(0, length - 1, chunk)
        pre = sum(a % SEGMENT_FRAMES for a, _ in spans)
        work = length * t_frame
        pre_s = pre * t_pre
        start_s = len(spans) * startup
        total = work + pre_s + start_s
        shifted = farm.chunk_spans(12, 12 + length - 1, chunk)
        pre12 = sum(a - max(12, a - a % SEGMENT_FRAMES) for a, _ in shifted) * t_pre
        lines.append(f"| {chunk} | {len(spans)} | {pre} | {pre_s / (work + pre_s):.1%} | "
                     f"{(pre_s + start_s) / total:.1%} | {total:.0f} | {pre12 / (work + pre12):.1%} |")
    lines += ["", f"Tracking state restarts every {SEGMENT_FRAMES} absolute frames, so a chunk starting k frames "
              f"after a restart decodes k pre-roll frames (at most {SEGMENT_FRAMES - 1}). A clip starting on a "
              f"restart with chunks that are multiples of {SEGMENT_FRAMES} (48, 96, 240) decodes none; 24-frame "
              f"chunks start every other chunk mid-segment; a clip starting elsewhere (frame 12) pays pre-roll on "
              f"every chunk, less as chunks grow. On a farm with W workers the clip takes about "
              f"(tasks / W) x task time; the fixed task cost dominates short chunks.", ""]

    # 4. h264: chunked (closed GOP per chunk, packet-joined) vs one piece, decoded pixels
    first, last = 0, 71
    one = OUT / "h264-one.mp4"
    render_range(src, one, model_dir=model, settings=settings, first=first, last=last, swap_ranges=[(first, last)],
                 codec="h264", audio=False)
    parts, offsets = [], []
    for a, b in farm.chunk_spans(first, last, 24):
        p = OUT / f"h264-{a}.mp4"
        render_range(src, p, model_dir=model, settings=settings, first=a, last=b, swap_ranges=[(first, last)],
                     codec="h264", audio=False, origin=first, gop=b - a + 1)
        parts.append(p)
        offsets.append(a - first)
    joined = media.concat(parts, OUT / "h264-joined.mp4", time_base=1 / FPS, offsets=offsets, fps=FPS)
    ffv1_one = OUT / "ffv1-one.mkv"
    render_range(src, ffv1_one, model_dir=model, settings=settings, first=first, last=last,
                 swap_ranges=[(first, last)], codec="ffv1", audio=False)
    a_frames = [f for _, f in media.read_frames(one, 0, last - first)]
    b_frames = [f for _, f in media.read_frames(OUT / "h264-joined.mp4", 0, joined.frames - 1)]
    truth = [f for _, f in media.read_frames(ffv1_one, 0, last - first)]
    diff = max(int(np.abs(x.astype(int) - y.astype(int)).max()) for x, y in zip(a_frames, b_frames))
    lines += ["### h264: 3 chunks of 24 (closed GOPs, joined) vs one piece, 72 frames", "",
              f"- max abs pixel difference between the two decodes: {diff} (of 255); PSNR chunked vs one piece "
              f"{np.mean([psnr(x, y) for x, y in zip(a_frames, b_frames)]):.1f} dB.",
              f"- PSNR against the lossless render of the same frames: one piece "
              f"{np.mean([psnr(x, t) for x, t in zip(a_frames, truth)]):.1f} dB, chunked "
              f"{np.mean([psnr(y, t) for y, t in zip(b_frames, truth)]):.1f} dB (crf 18).", ""]
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    main()
