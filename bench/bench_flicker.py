"""In-mask flicker of swapped faces on a still source, with and without the temporal blend (issue 5).

    .venv/bin/python bench/bench_flicker.py [--frames 24]

A still source (one real frame of the talking-head video, 3x, repeated; once exact, once with
sensor-like grain) is swapped with the
shipped model at `smoothing.temporal` 0 and 0.5 (the review preset's value); flicker is the mean
absolute frame-to-frame difference inside the blend mask (`composite.mask_flicker`, 8-bit
levels). Any flicker on a still source comes from the pipeline itself: landmark noise, tracking
and the model. Writes bench/results/flicker.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from renderer import media  # noqa: E402
from renderer.composite import CompositeSettings, face_mask, landmarks_to_crop, mask_flicker, warp_mask_to_frame  # noqa: E402
from renderer.faces.track import find_faces  # noqa: E402
from renderer.swap import SwapSettings, render_range  # noqa: E402
from tests.model_fixtures import movie_frames, trained_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=24)
    args = ap.parse_args()
    model = trained_model()
    still = movie_frames()[20]
    rows = []
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
      for noise in (0.0, 2.0):
        src = Path(tmp) / f"still-{noise}.mkv"
        with media.VideoWriter(src, width=still.shape[1], height=still.shape[0], fps=25, codec="ffv1") as w:
            for _ in range(args.frames):
                grain = rng.normal(0.0, noise, still.shape) if noise else 0.0
                w.write(np.clip(still + grain, 0, 255).astype(np.uint8))
        face = find_faces(still)[0]
        settings = CompositeSettings()
        crop_mask = face_mask(landmarks_to_crop(face.landmarks, face.crop_from_frame), face.crop_size, settings)
        mask = warp_mask_to_frame(crop_mask, face.frame_from_crop, still.shape[:2]) > 0
        masks = np.repeat(mask[None], args.frames, axis=0)
        source = [rgb for _, rgb in media.read_frames(src, 0, args.frames - 1)]
        for temporal in (0.0, 0.5):
            out = Path(tmp) / f"out-{noise}-{temporal}.mkv"
            render_range(src, out, model_dir=model, settings=SwapSettings(temporal=temporal, detect_every=8),
                         first=0, last=args.frames - 1, swap_ranges=[(0, args.frames - 1)], codec="ffv1")
            frames = [rgb for _, rgb in media.read_frames(out, 0, args.frames - 1)]
            rows.append((noise, mask_flicker(source, masks), temporal, mask_flicker(frames, masks)))
    lines = [
        "## Flicker inside the mask on a still source",
        "",
        f"Command: `.venv/bin/python bench/bench_flicker.py --frames {args.frames}`",
        f"Machine: {os.cpu_count()}-core CPU, no GPU; model `{os.path.relpath(model, ROOT)}`; source: frame 20 of the "
        "kphotoalbum talking-head video (3x, 480x360) repeated, FFV1 in and out; default swap settings.",
        "",
        "Sensor grain: Gaussian noise of the given sigma added to each copy of the frame (a real still "
        "shot is never bit-identical from frame to frame).",
        "",
        "| grain sigma | source flicker | temporal blend | swapped flicker (8-bit levels, mean abs frame-to-frame "
        "difference in the mask) |",
        "|---:|---:|---:|---:|",
        *[f"| {n:.1f} | {sf:.3f} | {t:.1f} | {f:.3f} |" for n, sf, t, f in rows],
        "",
        "Reading: on a still source the swapped face flickers less than the source's own grain (the model's "
        "output is smooth and the tracked landmarks are steady), and the temporal blend does not lower it "
        "further here; it is kept as an option for moving shots, not as a fix for stills.",
        "",
    ]
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "flicker.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
