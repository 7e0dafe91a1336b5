"""Benchmark the matte pass: what `doppel swap --matte` (and `--matte --plate`) costs over a plain swap.

Source: bench_swap's 1080p clip of the real talking head with a ~200 px face over a panned
landscape photo (H.264 + AAC, 24000/1001, 48-frame GOP), every frame swapped, H.264 out
(libx264 medium crf 18). Per pair, three child processes back to back: plain, --matte,
--matte --plate (Python start and model load included); --repeats pairs, interleaved. Ratios are
per pair (matte wall / plain wall), then averaged. Then the matte encoder alone: FFmpeg's two
ProRes encoders (prores_ks, prores_aw) on the same 1080p matte frames (a 300x300 face box of
alpha, the rest flat), CPU seconds of this process (FFmpeg's threads included) per frame, and
whether the alpha decodes back bit-exact. Writes bench/results/matte.md.

    .venv/bin/python bench/bench_matte.py [--frames 96] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_swap import CACHE, doppel_swap, face_video, timed  # noqa: E402
from tests.model_fixtures import trained_model  # noqa: E402

MODES = {"plain": [], "matte": ["--matte"], "matte+plate": ["--matte", "--plate"]}


def encoder_cost(encoder: str, path: Path, frames: int = 24) -> tuple[float, bool]:
    """(CPU s per frame, alpha bit-exact) of `encoder` coding 1080p yuva444p10le matte frames."""
    w, h = 1920, 1080
    alpha = np.zeros((h, w), np.uint16)
    alpha[300:600, 800:1100] = np.arange(300 * 300).reshape(300, 300) % 1024
    t0 = time.process_time()
    with av.open(str(path), "w") as out:
        s = out.add_stream(encoder, rate=25, options={"profile": "4", "vendor": "apl0"})
        s.width, s.height, s.pix_fmt, s.thread_type = w, h, "yuva444p10le", "AUTO"
        for i in range(frames):
            f = av.VideoFrame(w, h, "yuva444p10le")
            planes = [np.frombuffer(p, np.uint16).reshape(p.height, p.line_size // 2)[:, :p.width] for p in f.planes]
            for plane, value in zip(planes, (64, 512, 512)):
                plane[...] = value
            planes[3][...] = alpha
            f.pts = i
            for pk in s.encode(f):
                out.mux(pk)
        for pk in s.encode():
            out.mux(pk)
    cpu = (time.process_time() - t0) / frames
    with av.open(str(path)) as c:
        f = next(c.decode(video=0)).reformat(format="yuva444p16le")
        p = f.planes[3]
        back = np.frombuffer(p, np.uint16).reshape(p.height, p.line_size // 2)[:, :p.width] >> 6
    return cpu, bool(np.array_equal(back, alpha))


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
    lines += ["", "Matte encoder alone (24 frames of 1080p yuva444p10le, a 300x300 alpha box, the rest flat; "
              "MatteWriter uses prores_aw):", "",
              "| encoder | CPU ms per frame | x prores_ks | alpha bit-exact |", "|---|---:|---:|---|"]
    with tempfile.TemporaryDirectory(prefix="doppel-bench-matte-") as tmp:
        costs = {enc: encoder_cost(enc, Path(tmp) / f"{enc}.mov") for enc in ("prores_ks", "prores_aw")}
    for enc, (cpu, exact) in costs.items():
        lines.append(f"| {enc} | {cpu * 1000:.0f} | {cpu / costs['prores_ks'][0]:.2f} | {'yes' if exact else 'NO'} |")
    out = ROOT / "bench" / "results" / "matte.md"
    out.write_text("\n".join(lines) + "\n")
    print(out.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
