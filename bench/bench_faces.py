"""Detect + landmarks + align, ms per 1080p frame with one face: HOG per frame, HOG with tracking, MTCNN.

Frames: a real photo (scikit-image's astronaut) moved along a known path at
1920x1080, face about a third of the frame height (tests/face_data.py).
Writes bench/results/faces.md.

    .venv/bin/python bench/bench_faces.py [--frames 40]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from renderer.faces.track import FaceTracker, find_faces  # noqa: E402
from tests import face_data as F  # noqa: E402


def per_frame(fn, frames) -> tuple[float, float]:
    """(CPU ms, wall ms) per frame. CPU time is the figure to compare: the 2-core machine is shared."""
    fn(0, frames[0])  # warm-up: model loading is not per-frame work
    t, w = time.process_time(), time.perf_counter()
    for i, f in enumerate(frames):
        assert len(fn(i, f)) == 1, f"frame {i}: face not found"
    return (time.process_time() - t) / len(frames) * 1000, (time.perf_counter() - w) / len(frames) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=40)
    n = ap.parse_args().frames
    frames, _ = F.moving_photo_frames(F.astronaut(), n, (1920, 1080))
    hog, hog_w = per_frame(lambda i, f: find_faces(f, detector="hog"), frames)
    tracker = FaceTracker(detector="hog", detect_every=10, fps=25)
    tracked, tracked_w = per_frame(lambda i, f: tracker.update(i, f), frames)
    mtcnn, mtcnn_w = per_frame(lambda i, f: find_faces(f, detector="mtcnn"), frames[: max(5, n // 4)])
    cmd = "python bench/bench_faces.py " + " ".join(sys.argv[1:])
    md = f"""## Faces: detect + landmarks + align per 1080p frame

Command: `{cmd.strip()}` — machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU.
Frames: astronaut photo moved along a known path at 1920x1080 (face ~360 px), {n} frames; 68 landmarks, 256 px crop matrices.

| pipeline | CPU ms / frame | wall ms / frame | CPU vs HOG every frame |
|---|---|---|---|
| HOG every frame (frame downscaled so a 135 px face is 80 px) | {hog:.1f} | {hog_w:.1f} | 1.00x |
| HOG + tracking (detect every 10 frames, landmarks + One Euro every frame) | {tracked:.1f} | {tracked_w:.1f} | {hog / tracked:.2f}x faster |
| MTCNN every frame | {mtcnn:.1f} | {mtcnn_w:.1f} | {hog / mtcnn:.2f}x |

CPU time is this process's (all its threads summed); other jobs shared the 2 cores during the run, so
wall time includes waiting for them.

Goal with tracking: <= 15 ms per 1080p frame: {"met" if tracked <= 15 else "NOT met"} ({tracked:.1f} ms).
"""
    out = Path(__file__).parent / "results" / "faces.md"
    out.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
