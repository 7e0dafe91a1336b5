"""Benchmark `doppel swap`: the cost table (face size, faces, resolution) against an `ffmpeg`
re-encode, and smart render's cost.

1. Cost table. Sources: the real talking head (kphotoalbum's movie.avi, tests/model_fixtures)
   scaled so its face is about 100, 200, 400 and 650 px tall in a 1920x1080 frame (one face),
   200 px with 3 and 6 faces side by side (the same video, each copy 11 frames apart), and a
   3840x2160 frame with a 650 px face; around the video's own window, a slow pan over a real
   landscape photo (no faces) fills the frame; 24000/1001, H.264 (48-frame GOP) + AAC. The face height
   in the table is measured on frame 0 with Doppel's own HOG + 68 landmarks (brow top to chin).
   `doppel swap` swaps every frame with the `lite` model from tests.model_fixtures.trained_model
   (the shipped demo model when present), H.264 out (libx264 medium crf 18); baseline: Debian's
   `ffmpeg` re-encoding the same clip with the same codec settings, run just before it. The two
   goal rows (650 and 200 px at 1080p) run --repeats interleaved pairs (ffmpeg, doppel, ffmpeg,
   doppel); their ratio is the mean of the pairs. Per-stage figures come from the --json summary
   (SwapStats.seconds: busy time per stage; the stages overlap in threads), as ms per frame and
   as a share of the render's wall time. CPU seconds (user + sys of the child, with the model
   process it starts and reaps) come from wait4; doppel's peak RSS is the sum of its two processes'
   peaks (`peak_rss_mib` in --json: the render's and the model process's VmHWM), an upper bound of
   what they held at once; ffmpeg's from wait4.
2. Smart render (skipped with --long 0: the previous section is kept). A --long-frame 480x360
   H.264 clip (48-frame GOP); `doppel swap --frames` on 24 frames in its middle (stream copy of
   everything else) against `doppel swap` of a clip holding just those 24 frames. Ratio = long /
   short wall.

Each job runs in a child process (Python start, model load included). Writes bench/results/swap.md.

    .venv/bin/python bench/bench_swap.py [--frames 240] [--frames-2160 48] [--repeats 2] [--long 2400]
        [--only 650,200]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from renderer import media  # noqa: E402
from tests import face_data as F  # noqa: E402
from tests.media_factory import cached_clip  # noqa: E402
from tests.model_fixtures import movie_frames, paint_number, trained_model  # noqa: E402

PY = sys.executable
NTSC = Fraction(24000, 1001)
CACHE = ROOT / ".cache" / "bench"
# movie.avi (160x120): the presenter's face is about 50 px from brow to chin, centred near (92, 57).
FACE_PX_IN_MOVIE = 50.0
FACE_CENTRE_IN_MOVIE = (92.0, 57.0)
GRIDS = {1: (1, 1), 2: (2, 1), 3: (3, 1), 4: (2, 2), 6: (3, 2)}


@dataclass(frozen=True)
class Case:
    """One row of the cost table."""

    key: str
    width: int
    height: int
    face_px: float
    faces: int
    goal: float | None = None

    @property
    def label(self) -> str:
        return f"{self.height}p, {self.faces} face{'s' if self.faces > 1 else ''} of ~{self.face_px:.0f} px"


CASES = (
    Case("100", 1920, 1080, 100, 1),
    Case("200", 1920, 1080, 200, 1, goal=1.3),
    Case("400", 1920, 1080, 400, 1),
    Case("650", 1920, 1080, 650, 1, goal=1.5),
    Case("200x3", 1920, 1080, 200, 3),
    Case("200x6", 1920, 1080, 200, 6),
    Case("2160-650", 3840, 2160, 650, 1),
)


@dataclass(frozen=True)
class Run:
    wall: float
    cpu: float
    rss_mib: float
    stdout: str


def timed(cmd: list[str], cwd: Path | None = None) -> Run:
    """Wall seconds, CPU seconds (user + sys), peak RSS and stdout of a child process (run in `cwd`);
    exits with its stderr when it fails."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, text=True, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err.read()[-3000:]}")
        return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read())


def face_video(path: Path, frames: int, size: tuple[int, int], gop: int, audio: bool,
               face_px: float | None = None, faces: int = 1) -> Path:
    """The talking head, ping-pong, numbered, cached. face_px None: the whole video scaled to fit
    `size` (centred on grey); else scaled so the face is about face_px tall, `faces` copies in a
    grid of cells (each 11 frames further on), every cell showing the video's window around its
    face, over a slow pan across a real landscape photo (kphotoalbum's skagen.jpg, no faces), so
    the encoder has a full picture to code, as in a wide shot, not a flat grey frame."""
    if path.exists():
        return path
    w, h = size
    src = movie_frames(1)  # (68, 120, 160, 3)
    cols, rows = GRIDS[faces]
    cw, ch = w // cols, h // rows
    s = face_px / FACE_PX_IN_MOVIE if face_px else min(cw / src.shape[2], ch / src.shape[1])
    sw, sh = int(round(src.shape[2] * s)) // 2 * 2, int(round(src.shape[1] * s)) // 2 * 2
    # Window of the scaled video shown in a cell: centred on the face (fit: the whole video centred).
    cx, cy = (FACE_CENTRE_IN_MOVIE[0] * s, FACE_CENTRE_IN_MOVIE[1] * s) if face_px else (sw / 2, sh / 2)
    ox, oy = int(round(cx - cw / 2)), int(round(cy - ch / 2))
    sx0, sy0, sx1, sy1 = max(0, ox), max(0, oy), min(sw, ox + cw), min(sh, oy + ch)
    order = np.concatenate([np.arange(len(src)), np.arange(len(src) - 2, 0, -1)])
    tone = (cached_clip("bench-swap-tone", frames=frames, width=64, height=48, fps=NTSC, codec="h264", audio=True,
                        suffix=".mov"), 0, frames - 1) if audio else None
    background = None
    if face_px:
        photo = cv2.cvtColor(cv2.imread(str(F.kphotoalbum_file("skagen.jpg"))), cv2.COLOR_BGR2RGB)
        pan = 2 * frames  # 2 px per frame to the right
        k = max((w + pan) / photo.shape[1], h / photo.shape[0])
        background = cv2.resize(photo, (int(np.ceil(photo.shape[1] * k)), int(np.ceil(photo.shape[0] * k))),
                                interpolation=cv2.INTER_CUBIC)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{path.suffix}")
    canvas = np.full((h, w, 3), 96, np.uint8)
    with media.VideoWriter(tmp, width=w, height=h, fps=NTSC, codec="h264", timecode="01:00:00:00", audio_from=tone,
                           options={"preset": "veryfast", "g": str(gop), "keyint_min": str(gop),
                                    "sc_threshold": "0"}) as writer:
        for n in range(frames):
            if background is not None:
                canvas[:] = background[:h, 2 * n:2 * n + w]
            for k in range(faces):
                big = cv2.resize(src[order[(n + 11 * k) % len(order)]], (sw, sh), interpolation=cv2.INTER_CUBIC)
                x, y = (k % cols) * cw - ox, (k // cols) * ch - oy
                canvas[y + sy0:y + sy1, x + sx0:x + sx1] = big[sy0:sy1, sx0:sx1]
            paint_number(canvas, n)
            writer.write(canvas)
    os.replace(tmp, path)
    return path


def measured_faces(clip: Path) -> list[float]:
    """Brow-to-chin heights (px) of the faces Doppel finds on frame 0, cached beside the clip."""
    cache = clip.with_suffix(".faces.json")
    if cache.exists():
        return json.loads(cache.read_text())
    from renderer.faces.track import find_faces

    _, rgb = next(media.read_frames(clip, 0, 0))
    heights = sorted(float(np.ptp(f.landmarks[:, 1])) for f in find_faces(rgb))
    cache.write_text(json.dumps(heights))
    return heights


def ffmpeg_reencode(src: Path, out: Path) -> list[str]:
    return ["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c:v", "libx264", "-preset", "medium", "-crf", "18",
            "-pix_fmt", "yuv420p", "-c:a", "aac", str(out)]


def doppel_swap(src: Path, model: Path, out: Path, frames: str | None = None) -> list[str]:
    cmd = [PY, "-m", "renderer.cli", "swap", str(src), "--model", str(model), "--out", str(out),
           "--codec", "h264", "--json", "--no-progress", "--force"]
    return cmd + (["--frames", frames] if frames else [])


STAGES = ("decode", "track", "model", "composite", "encode", "model_process")


def run_case(case: Case, frames: int, model: Path, out_dir: Path, pairs: int) -> dict:
    """Make (or reuse) the case's clip, then `pairs` interleaved (ffmpeg, doppel) runs."""
    src = face_video(CACHE / f"swap-{case.key}-{frames}.mp4", frames, (case.width, case.height), 48, audio=True,
                     face_px=case.face_px, faces=case.faces)
    heights = measured_faces(src)
    runs = []
    for _ in range(pairs):
        theirs = timed(ffmpeg_reencode(src, out_dir / "swap-ffmpeg-h264.mp4"))
        ours = timed(doppel_swap(src, model, out_dir / "swap-doppel-h264.mp4"))
        runs.append((theirs, ours, json.loads(ours.stdout), os.getloadavg()[0]))
        print(case.key, f"ffmpeg {theirs.wall:.1f}s doppel {ours.wall:.1f}s", runs[-1][2]["seconds"], flush=True)
    return {"case": case, "frames": frames, "heights": heights, "runs": runs}


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def doppel_rss(run: Run, stats: dict) -> float:
    """Peak RSS (MiB) of a swap: its processes' peaks added up (--json), else wait4's figure."""
    peaks = stats.get("peak_rss_mib") or {}
    return sum(peaks.values()) if "render" in peaks else run.rss_mib


def table_lines(results: list[dict]) -> list[str]:
    lines = [
        "| case | faces found (brow-chin px) | ffmpeg wall (s) | doppel wall (s) | **x ffmpeg wall** | x ffmpeg CPU "
        "| doppel CPU (s) | doppel peak RSS (MiB, render + model process) | ffmpeg peak RSS (MiB) | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        runs = r["runs"]
        wall_ratio = mean([o.wall / t.wall for t, o, _, _ in runs])
        cpu_ratio = mean([o.cpu / t.cpu for t, o, _, _ in runs])
        found = ", ".join(f"{h:.0f}" for h in r["heights"]) or "none"
        lines.append(
            f"| {r['case'].label}, {r['frames']} frames | {found} | "
            f"{' / '.join(f'{t.wall:.1f}' for t, _, _, _ in runs)} | {' / '.join(f'{o.wall:.1f}' for _, o, _, _ in runs)} | "
            f"**{wall_ratio:.2f}** | {cpu_ratio:.2f} | {mean([o.cpu for _, o, _, _ in runs]):.1f} | "
            f"{max(doppel_rss(o, st) for _, o, st, _ in runs):.0f} | {max(t.rss_mib for t, _, _, _ in runs):.0f} | "
            f"{' / '.join(f'{x:.1f}' for *_, x in runs)} |")
    lines += [
        "",
        "Per stage, ms per frame of busy time (mean over the runs) and, in brackets, that busy time as a share "
        "of the render's wall time (`seconds.total`: decode thread, main thread and encode thread overlap, so "
        "shares add up to more than 100 %; the stage nearest 100 % is the critical path). `model` is the "
        "main thread's part (cutting crops, waiting for answers, temporal blend); `model process` is the "
        "network's own time in its process, beside the main thread:",
        "",
        "| case | " + " | ".join(k.replace("_", " ") for k in STAGES) + " | render wall | main thread (track+model+composite) |",
        "|---|" + "---:|" * (len(STAGES) + 2),
    ]
    for r in results:
        n = r["frames"]
        secs = {k: mean([s["seconds"].get(k, 0.0) for _, _, s, _ in r["runs"]]) for k in (*STAGES, "total")}
        total = secs["total"] or 1e-9
        main = secs["track"] + secs["model"] + secs["composite"]
        cells = [f"{secs[k] / n * 1000:.0f} ({secs[k] / total:.0%})" for k in STAGES]
        lines.append(f"| {r['case'].label} | " + " | ".join(cells)
                     + f" | {total / n * 1000:.0f} | {main / n * 1000:.0f} ({main / total:.0%}) |")
    return lines


def kept_analyses(previous: str, drop: set[str]) -> list[str]:
    """The earlier run's hand-written analysis sections (`### 1a.`, `### 1b.`, ...: A/B runs of one change
    against the code before it, profiles), kept as they were unless named in `drop`; each states its own
    command and machine state."""
    parts = re.split(r"(?m)^(?=### )", previous)
    kept = [p.rstrip("\n") for p in parts if (m := re.match(r"### (1[a-z])\. ", p)) and m.group(1) not in drop]
    return [line for p in kept for line in (p, "")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=240, help="frames of each 1080p clip")
    ap.add_argument("--frames-2160", type=int, default=48, help="frames of the 2160p clip")
    ap.add_argument("--repeats", type=int, default=2, help="interleaved (ffmpeg, doppel) pairs for the goal rows")
    ap.add_argument("--long", type=int, default=2400, help="frames of the smart-render clip (0: skip part 2)")
    ap.add_argument("--drop", default="", metavar="1b,1c",
                    help="earlier analysis sections (### 1a., 1b., ...) of swap.md not to keep (default: keep all)")
    ap.add_argument("--only", default="", help=f"comma-separated cases ({', '.join(c.key for c in CASES)})")
    args = ap.parse_args()
    if not shutil.which("ffmpeg"):
        raise SystemExit("ffmpeg CLI not found (apt-get install ffmpeg)")
    ffver = subprocess.run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    out_dir = ROOT / "bench" / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    model = trained_model()
    load = [os.getloadavg()[0]]
    wanted = [c for c in CASES if not args.only or c.key in args.only.split(",")]

    # 1. the cost table
    results = [run_case(c, args.frames_2160 if c.height > 1080 else args.frames, model, out_dir,
                        args.repeats if c.goal else 1) for c in wanted]
    load.append(os.getloadavg()[0])

    results_dir = ROOT / "bench" / "results"
    previous = (results_dir / "swap.md").read_text() if (results_dir / "swap.md").exists() else ""
    smart_lines: list[str]
    if args.long:
        smart_lines = smart_render(args.long, model, out_dir)
        load.append(os.getloadavg()[0])
    else:
        old, end = previous.find("### 2. Smart render"), previous.find("\nTimes include process start")
        note = "(Section 2 is kept from the previous run: this run had --long 0.)"
        kept = previous[old:end if end > old else None].replace(note, "").rstrip("\n")
        smart_lines = [kept, "", note] if old >= 0 else ["### 2. Smart render", "", "Not measured (--long 0)."]

    card = (model / "model.yaml").read_text()
    arch_name = next((line.split(":", 1)[1].strip() for line in card.splitlines() if line.strip().startswith("arch:")),
                     "?")
    cmd = (f".venv/bin/python bench/bench_swap.py --frames {args.frames} --frames-2160 {args.frames_2160} "
           f"--repeats {args.repeats} --long {args.long}" + (f" --only {args.only}" if args.only else ""))
    lines = [
        "## Swap: `doppel swap` cost by face size, faces and resolution vs `ffmpeg`, and smart render",
        "",
        f"Command: `{cmd}`",
        f"Machine: {platform.machine()} {os.cpu_count()}-core CPU, no GPU, shared with other engineers' jobs "
        f"(1-min load average {', '.join(f'{x:.1f}' for x in load)} at start / after part 1"
        + (" / after part 2" if args.long else "") + "; the load column gives it after each pair). "
        f"PyAV's bundled FFmpeg (libx264) vs Debian `{ffver}`.",
        f"Model: `{model.relative_to(ROOT) if model.is_relative_to(ROOT) else model}` (arch {arch_name}), "
        "default swap settings (HOG every 8th frame near the tracked face, whole frame every 2nd key frame, "
        "68 landmarks every frame, hull mask, RCT colour).",
        "",
        "### 1. Cost table: every frame swapped, H.264 + AAC -> H.264 (medium, crf 18) + AAC, 24000/1001",
        "",
        "Each row: ffmpeg re-encoding the clip, then `doppel swap` of it, back to back (goal rows: that pair "
        f"{args.repeats} times, interleaved). Ratios are per pair, then averaged. The machine's load changes during a run; "
        "the CPU ratio (user + sys seconds of each child) is steadier than the wall ratio under shared load.",
        "",
        *table_lines(results),
        "",
    ]
    for r in results:
        case = r["case"]
        if case.goal is not None:
            ratio = mean([o.wall / t.wall for t, o, _, _ in r["runs"]])
            lines.append(f"Goal ({case.label}): ratio <= {case.goal} — {'met' if ratio <= case.goal else 'NOT met'} "
                         f"({ratio:.2f}).")
            lines.append("")
    lines += [*growth_lines(results), "", *kept_analyses(previous, {d.strip() for d in args.drop.split(",") if d.strip()}),
              *smart_lines, "",
              "Times include process start and model load; every ratio compares jobs run back to back in the same "
              "run on the same loaded machine, so treat single figures as noisy."]
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "swap.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def growth_lines(results: list[dict]) -> list[str]:
    """How the per-frame cost beyond ffmpeg grows with face size, faces and frame size (from the rows run)."""
    by = {r["case"].key: r for r in results}

    def extra_ms(key: str) -> float | None:
        """doppel CPU minus ffmpeg CPU, ms per frame: the swap's own cost."""
        if key not in by:
            return None
        r = by[key]
        return mean([(o.cpu - t.cpu) / r["frames"] * 1000 for t, o, _, _ in r["runs"]])

    def composite_ms(key: str) -> float | None:
        if key not in by:
            return None
        r = by[key]
        return mean([s["seconds"]["composite"] / r["frames"] * 1000 for _, _, s, _ in r["runs"]])

    out = ["How cost grows (CPU ms per frame that doppel spends beyond ffmpeg's decode + encode, and the "
           "composite stage's busy ms per frame):", ""]
    for title, keys in (("face size (1 face, 1080p)", ["100", "200", "400", "650"]),
                        ("faces (200 px, 1080p)", ["200", "200x3", "200x6"]),
                        ("frame size (650 px face)", ["650", "2160-650"])):
        cells = [f"{by[k]['case'].label}: {extra_ms(k):.0f} ms, composite {composite_ms(k):.0f} ms"
                 for k in keys if k in by]
        if cells:
            out.append(f"- {title}: " + "; ".join(cells))
    return out


def smart_render(long: int, model: Path, out_dir: Path) -> list[str]:
    """Part 2: 24 frames in the middle of a long clip vs those 24 frames alone."""
    long_src = face_video(CACHE / f"swap-long-{long}.mp4", long, (480, 360), 48, audio=False)
    lo = long // 2 - 10
    hi = lo + 23
    short_src = CACHE / f"swap-short-{long}-{lo}.mp4"
    if not short_src.exists():
        media.trim(long_src, lo, hi, short_src, codec="h264")
    smart = timed(doppel_swap(long_src, model, out_dir / "swap-smart.mp4", f"{lo}-{hi}"))
    alone = timed(doppel_swap(short_src, model, out_dir / "swap-alone.mp4"))
    smart_s, alone_s = json.loads(smart.stdout), json.loads(alone.stdout)
    print("smart", smart.wall, alone.wall, smart_s["path"], smart_s["spans"], flush=True)
    ratio = smart.wall / alone.wall
    return [
        f"### 2. Smart render: 24 frames ({lo}-{hi}) of a {long}-frame 480x360 H.264 clip (48-frame GOP)",
        "",
        "| job | wall (s) | path | re-encoded | stream-copied | x alone |",
        "|---|---:|---|---:|---:|---:|",
        f"| doppel swap of a clip of just those 24 frames (baseline) | {alone.wall:.1f} | {alone_s['path']} | "
        f"{alone_s['frames_encoded']} | {alone_s['frames_copied']} | 1.00 |",
        f"| doppel swap --frames {lo}-{hi} of the {long}-frame clip | {smart.wall:.1f} | {smart_s['path']} | "
        f"{smart_s['frames_encoded']} | {smart_s['frames_copied']} | {ratio:.2f} |",
        "",
        f"Re-encoded spans: {smart_s['spans']} (the swap range grown to whole GOPs). "
        f"Goal: <= 1.5x — {'met' if ratio <= 1.5 else 'NOT met'} ({ratio:.2f}).",
    ]


if __name__ == "__main__":
    sys.exit(main())
