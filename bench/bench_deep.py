"""Benchmark the deep (no 8-bit step) paste against the 8-bit one, per face on a 1080p frame.

    .venv/bin/python bench/bench_deep.py [--repeats 30]

Writes bench/results/deep.md. Frames are made by the ffmpeg CLI (testsrc2, 1920x1080): an 8-bit
4:2:0 H.264 one and a 10-bit 4:2:2 ProRes HQ one. One face: a 64 px model crop (smooth random
colours) under a feathered elliptical mask, warped to about 320 px. Cases, each the work the swap
stage does per face once the frame is decoded and converted for tracking:

  8-bit source, 8-bit path     paste_face into the uint8 RGB frame + patch_regions (rgb24 box)
  10-bit source, 8-bit path    the same on the 10-bit frame: what Doppel did before deep sources
                               (baseline of the ratio, measured in the same run)
  10-bit source, deep path     read_box (float32 box at depth) + paste_face in float32 +
                               patch_regions writing the float box back at 10 bits
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from renderer import media  # noqa: E402
from renderer.atomic import write_text_atomic  # noqa: E402
from renderer.composite import CompositeSettings, paste_box, paste_face  # noqa: E402

COMMAND = ".venv/bin/python bench/bench_deep.py"


def _clip(path: Path, args: list[str]) -> Path:
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=s=1920x1080", "-frames:v", "1",
                    *args, str(path)], check=True)
    return path


def _face(size: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    crop = cv2.GaussianBlur(rng.random((size, size, 3), dtype=np.float32), (0, 0), 3.0)
    crop = np.clip((crop - crop.min()) / (crop.max() - crop.min()), 0, 1).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    mask = np.clip(1.25 - np.hypot((xx - 31.5) / 27, (yy - 31.5) / 30), 0, 1).astype(np.float32)
    frame_from_crop = np.array([[5.0, 0.4, 800.0], [-0.4, 5.0, 380.0]])
    return crop, mask, frame_from_crop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=30, help="timed calls per case (default 30)")
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as in a render (swap.run.FACE_THREADS on 2 cores)
    crop, mask, frame_from_crop = _face()
    settings = CompositeSettings()  # alpha blend, rct colour, as the swap's defaults
    with tempfile.TemporaryDirectory() as tmp:
        clips = {"8-bit": _clip(Path(tmp) / "h264.mp4", ["-pix_fmt", "yuv420p", "-c:v", "libx264", "-crf", "10"]),
                 "10-bit": _clip(Path(tmp) / "prores.mov", ["-pix_fmt", "yuv422p10le", "-c:v", "prores_ks",
                                                             "-profile:v", "3"])}
        decoded = {}
        for name, path in clips.items():
            info = media.probe(path)
            matrix, rng = media.effective_color(info, info.width, info.height, info.pix_fmt)
            frame = next(media.read_av_frames(path, 0, 0, info))[1]
            decoded[name] = (frame, media.frame_to_rgb(frame, matrix, rng), matrix, rng, info.pix_fmt)

        def eight_bit(name: str) -> None:
            frame, rgb0, matrix, rng, _ = decoded[name]
            rgb = rgb0.copy()  # (not timed separately: the same copy in every case)
            patch = paste_face(rgb, crop, frame_from_crop, mask, settings)
            media.patch_regions(frame, rgb, [(patch.x0, patch.y0, patch.changed)], matrix, rng)

        def deep(name: str) -> None:
            frame, rgb0, matrix, rng, _ = decoded[name]
            rgb0.copy()
            x0, y0, x1, y1 = paste_box(mask, frame_from_crop, rgb0.shape[:2])
            x0, y0, x1, y1 = max(0, x0 - 2), max(0, y0 - 2), min(frame.width, x1 + 2), min(frame.height, y1 + 2)
            box = media.read_box(frame, (x0, y0, x1, y1), matrix, rng)
            m = frame_from_crop.copy()
            m[:, 2] -= (x0, y0)
            patch = paste_face(box, crop, m, mask, settings)
            media.patch_regions(frame, box, [(x0 + patch.x0, y0 + patch.y0, patch.changed)], matrix, rng,
                                origin=(x0, y0))

        cases = [("8-bit source (yuv420p), 8-bit path", lambda: eight_bit("8-bit")),
                 ("10-bit source (yuv422p10le), 8-bit path (before)", lambda: eight_bit("10-bit")),
                 ("10-bit source (yuv422p10le), deep path", lambda: deep("10-bit"))]
        times = {}
        for _round in range(3):  # interleaved rounds, best of each: the cores are shared
            for label, fn in cases:
                fn()
                t0 = time.perf_counter()
                for _ in range(args.repeats):
                    fn()
                ms = (time.perf_counter() - t0) / args.repeats * 1000.0
                times[label] = min(times.get(label, ms), ms)
    base = times[cases[1][0]]
    box = paste_box(mask, frame_from_crop, (1080, 1920))
    lines = [
        "## Deep sources: paste without the 8-bit step (renderer/composite/paste.py, renderer/media/decode.py)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared, no GPU; OpenCV {cv2.__version__} "
        f"(1 thread, as in a render); load average {os.getloadavg()[0]:.1f} at the end (other jobs share the "
        "cores: absolute times are noisy, ratios are same-run, best of 3 interleaved rounds). Command:",
        "",
        f"  {COMMAND} --repeats {args.repeats}",
        "",
        f"One face: a 64 px crop pasted into a {box[2] - box[0]}x{box[3] - box[1]} px box of a 1920x1080 frame "
        "(ffmpeg CLI testsrc2), alpha blend, rct colour. Per face: paste_face and patch_regions (and read_box "
        "for the deep path); the full-frame RGB conversion for tracking is not included (it runs on the decode "
        "thread in every case). Baseline: the 8-bit path on the same 10-bit frame, what Doppel did before.",
        "",
        "| case | ms per face | x baseline |",
        "|---|---:|---:|",
    ]
    lines += [f"| {label} | {times[label]:.2f} | {times[label] / base:.2f} |" for label, _ in cases]
    lines.append("")
    out = ROOT / "bench" / "results" / "deep.md"
    write_text_atomic(out, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
