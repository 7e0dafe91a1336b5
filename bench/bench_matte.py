"""Benchmark the matte pass: what `doppel swap --matte` (and `--matte --plate`) costs over a plain swap.

Source: bench_swap's 1080p clip of the real talking head with a ~200 px face over a panned
landscape photo (H.264 + AAC, 24000/1001, 48-frame GOP), every frame swapped, H.264 out
(libx264 medium crf 18). Per pair, three child processes back to back: plain, --matte,
--matte --plate (Python start and model load included); --repeats pairs, interleaved. Ratios are
per pair (matte wall / plain wall), then averaged. Writes bench/results/matte.md.

    .venv/bin/python bench/bench_matte.py [--frames 96] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_swap import CACHE, doppel_swap, face_video, timed  # noqa: E402
from tests.model_fixtures import trained_model  # noqa: E402

MODES = {"plain": [], "matte": ["--matte"], "matte+plate": ["--matte", "--plate"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    model = trained_model()
    src = face_video(CACHE / f"swap-200-{args.frames}.mp4", args.frames, (1920, 1080), 48, audio=True, face_px=200)
    rows: dict[str, list] = {m: [] for m in MODES}
    loads = []
    with tempfile.TemporaryDirectory(prefix="doppel-bench-matte-") as tmp:
        for _ in range(args.repeats):
            for mode, extra in MODES.items():
                run = timed(doppel_swap(src, model, Path(tmp) / f"{mode}.mp4") + extra)
                rows[mode].append((run, json.loads(run.stdout)))
                print(mode, f"{run.wall:.1f} s wall, {run.cpu:.1f} s CPU", flush=True)
            loads.append(os.getloadavg()[0])
    plain = rows["plain"]
    lines = [
        "## Matte pass: `doppel swap --matte` / `--matte --plate` against a plain swap", "",
        f"Command: `.venv/bin/python bench/bench_matte.py --frames {args.frames} --repeats {args.repeats}`",
        f"Machine: {platform.machine()} {os.cpu_count()}-core CPU, no GPU, shared with other engineers' jobs "
        f"(1-min load average after each pair: {', '.join(f'{x:.1f}' for x in loads)}).",
        f"Source: 1080p, 1 face of ~200 px, {args.frames} frames, every frame swapped, H.264 out; matte and plate are "
        f"ProRes 4444 (yuva444p10le) 1920x1080 beside it.", "",
        "| mode | wall (s), per pair | CPU (s), per pair | peak RSS (MiB) | **x plain wall** | x plain CPU |",
        "|---|---|---|---:|---:|---:|",
    ]
    for mode, runs in rows.items():
        wall = sum(r.wall / p.wall for (r, _), (p, _) in zip(runs, plain)) / len(runs)
        cpu = sum(r.cpu / p.cpu for (r, _), (p, _) in zip(runs, plain)) / len(runs)
        lines.append(f"| {mode} | {' / '.join(f'{r.wall:.1f}' for r, _ in runs)} | "
                     f"{' / '.join(f'{r.cpu:.1f}' for r, _ in runs)} | {max(r.rss_mib for r, _ in runs):.0f} | "
                     f"**{wall:.2f}** | {cpu:.2f} |")
    out = ROOT / "bench" / "results" / "matte.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
