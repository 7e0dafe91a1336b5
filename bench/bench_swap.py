"""Benchmark `doppel swap`: throughput against an `ffmpeg` re-encode, and smart render's cost.

1. Throughput. Source: the real talking head (tests/model_fixtures) scaled to 1440x1080 and
   centred on a 1920x1080 frame, 24000/1001, one face, H.264 (48-frame GOP) + AAC, --frames long.
   `doppel swap` swaps every frame with the `lite` model from tests.model_fixtures.trained_model
   (the shipped demo model when present), H.264 out (libx264 medium crf 18); baseline: Debian's
   `ffmpeg` re-encoding the same clip with the same codec settings. Ratio = doppel / ffmpeg wall.
   Per-stage seconds come from the --json summary (SwapStats.seconds; the stages overlap in
   threads, so they are busy time per stage, not a split of the wall time).
2. Smart render. A --long-frame 480x360 H.264 clip (48-frame GOP); `doppel swap --frames`
   on 24 frames in its middle (stream copy of everything else) against `doppel swap` of a clip
   holding just those 24 frames. Ratio = long / short wall.

Each job runs in a child process (Python start, model load included). Writes bench/results/swap.md.

    .venv/bin/python bench/bench_swap.py [--frames 240] [--long 2400]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from renderer import media  # noqa: E402
from tests.media_factory import cached_clip  # noqa: E402
from tests.model_fixtures import movie_frames, paint_number, trained_model  # noqa: E402

PY = sys.executable
NTSC = Fraction(24000, 1001)
CACHE = ROOT / ".cache" / "bench"


def timed(cmd: list[str]) -> tuple[float, str]:
    """(wall seconds, stdout) of a child process; exits with its stderr when it fails."""
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return wall, done.stdout


def face_video(path: Path, frames: int, size: tuple[int, int], gop: int, audio: bool) -> Path:
    """The talking head, ping-pong, scaled to fit `size` (centred on grey), numbered; cached."""
    if path.exists():
        return path
    w, h = size
    src = movie_frames(1)  # (68, 120, 160, 3)
    scale = min(w / src.shape[2], h / src.shape[1])
    fw, fh = int(src.shape[2] * scale) // 2 * 2, int(src.shape[1] * scale) // 2 * 2
    x0, y0 = (w - fw) // 2, (h - fh) // 2
    order = np.concatenate([np.arange(len(src)), np.arange(len(src) - 2, 0, -1)])
    tone = (cached_clip("bench-swap-tone", frames=frames, width=64, height=48, fps=NTSC, codec="h264", audio=True,
                        suffix=".mov"), 0, frames - 1) if audio else None
    tmp = path.with_name(f".{path.name}.{os.getpid()}{path.suffix}")
    canvas = np.full((h, w, 3), 96, np.uint8)
    with media.VideoWriter(tmp, width=w, height=h, fps=NTSC, codec="h264", timecode="01:00:00:00", audio_from=tone,
                           options={"preset": "veryfast", "g": str(gop), "keyint_min": str(gop),
                                    "sc_threshold": "0"}) as writer:
        for n in range(frames):
            canvas[y0:y0 + fh, x0:x0 + fw] = cv2.resize(src[order[n % len(order)]], (fw, fh),
                                                        interpolation=cv2.INTER_CUBIC)
            paint_number(canvas, n)
            writer.write(canvas)
    os.replace(tmp, path)
    return path


def doppel_swap(src: Path, model: Path, out: Path, frames: str | None = None) -> list[str]:
    cmd = [PY, "-m", "renderer.cli", "swap", str(src), "--model", str(model), "--out", str(out),
           "--codec", "h264", "--json", "--no-progress"]
    return cmd + (["--frames", frames] if frames else [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=240, help="frames of the 1080p throughput clip")
    ap.add_argument("--long", type=int, default=2400, help="frames of the smart-render clip")
    args = ap.parse_args()
    if not shutil.which("ffmpeg"):
        raise SystemExit("ffmpeg CLI not found (apt-get install ffmpeg)")
    ffver = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    model = trained_model()
    load = [os.getloadavg()[0]]

    # 1. throughput at 1080p
    src = face_video(CACHE / f"swap-1080-{args.frames}.mp4", args.frames, (1920, 1080), 48, audio=True)
    ours, stdout = timed(doppel_swap(src, model, out_dir / "swap-doppel-h264.mp4"))
    summary = json.loads(stdout)
    theirs, _ = timed(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:v", "libx264", "-preset", "medium",
                       "-crf", "18", "-pix_fmt", "yuv420p", "-c:a", "aac", str(out_dir / "swap-ffmpeg-h264.mp4")])
    load.append(os.getloadavg()[0])
    print("throughput", ours, theirs, summary["seconds"], flush=True)

    # 2. smart render: 24 frames in the middle of a long clip vs those 24 frames alone
    long_src = face_video(CACHE / f"swap-long-{args.long}.mp4", args.long, (480, 360), 48, audio=False)
    lo = args.long // 2 - 10
    hi = lo + 23
    short_src = CACHE / f"swap-short-{args.long}-{lo}.mp4"
    if not short_src.exists():
        media.trim(long_src, lo, hi, short_src, codec="h264")
    smart, smart_out = timed(doppel_swap(long_src, model, out_dir / "swap-smart.mp4", f"{lo}-{hi}"))
    alone, alone_out = timed(doppel_swap(short_src, model, out_dir / "swap-alone.mp4"))
    smart_s, alone_s = json.loads(smart_out), json.loads(alone_out)
    load.append(os.getloadavg()[0])
    print("smart", smart, alone, smart_s["path"], smart_s["spans"], flush=True)

    card = (model / "model.yaml").read_text()
    arch_name = next((line.split(":", 1)[1].strip() for line in card.splitlines() if line.strip().startswith("arch:")),
                     "?")
    secs = summary["seconds"]
    n = summary["frames"]
    lines = [
        "## Swap: `doppel swap` throughput vs `ffmpeg`, and smart render",
        "",
        f"Command: `.venv/bin/python bench/bench_swap.py --frames {args.frames} --long {args.long}`",
        f"Machine: {platform.machine()} {os.cpu_count()}-core CPU, no GPU, shared with other engineers' jobs "
        f"(1-min load average {', '.join(f'{x:.1f}' for x in load)} at start / after part 1 / after part 2); "
        f"PyAV's bundled FFmpeg (libx264) vs Debian `{ffver}`.",
        f"Model: `{model.relative_to(ROOT) if model.is_relative_to(ROOT) else model}` (arch {arch_name}), "
        "default swap settings (HOG every 8th frame near the tracked face, whole frame every 2nd key frame, 68 landmarks every frame, hull mask, RCT colour).",
        "",
        f"### 1. Throughput: 1920x1080 24000/1001, {n} frames, one face, H.264 + AAC -> H.264 (medium, crf 18) + AAC",
        "",
        "| job | wall (s) | frames/s | x ffmpeg |",
        "|---|---:|---:|---:|",
        f"| ffmpeg re-encode (baseline) | {theirs:.1f} | {n / theirs:.2f} | 1.00 |",
        f"| doppel swap, every frame ({summary['swapped']} swapped, path {summary['path']}) | {ours:.1f} | "
        f"{n / ours:.2f} | {ours / theirs:.2f} |",
        "",
        f"Goal: ratio <= 2.0 — {'met' if ours / theirs <= 2.0 else 'NOT met'} ({ours / theirs:.2f}).",
        "",
        "Per stage (busy seconds from the --json summary; decode and encode run on their own threads, "
        "so stages overlap):",
        "",
        "| stage | seconds | frames/s |",
        "|---|---:|---:|",
    ]
    for stage in ("decode", "track", "model", "composite", "encode", "total"):
        s = secs.get(stage, 0.0)
        lines.append(f"| {stage} | {s:.1f} | {n / s if s else float('inf'):.1f} |")
    lines += [
        "",
        f"### 2. Smart render: 24 frames ({lo}-{hi}) of a {args.long}-frame 480x360 H.264 clip (48-frame GOP)",
        "",
        "| job | wall (s) | path | re-encoded | stream-copied | x alone |",
        "|---|---:|---|---:|---:|---:|",
        f"| doppel swap of a clip of just those 24 frames (baseline) | {alone:.1f} | {alone_s['path']} | "
        f"{alone_s['frames_encoded']} | {alone_s['frames_copied']} | 1.00 |",
        f"| doppel swap --frames {lo}-{hi} of the {args.long}-frame clip | {smart:.1f} | {smart_s['path']} | "
        f"{smart_s['frames_encoded']} | {smart_s['frames_copied']} | {smart / alone:.2f} |",
        "",
        f"Re-encoded spans: {smart_s['spans']} (the swap range grown to whole GOPs). "
        f"Goal: <= 1.5x — {'met' if smart / alone <= 1.5 else 'NOT met'} ({smart / alone:.2f}).",
        "",
        "Times include process start and model load; both ratios compare jobs run back to back in the same "
        "run on the same loaded machine, so treat single figures as noisy.",
    ]
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "swap.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
