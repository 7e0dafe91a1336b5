"""A/B timing of `doppel swap`: the code at a git ref (default main) against this tree, interleaved.

Both arms run the same command on the same clip with the same virtual environment, one after the
other, the order turned round every pair (old, new, new, old, old, new, ...), so the machine's
changing load, and whatever favours the first or second run of a pair, hits both alike. The old arm
runs from `git archive REF` unpacked into a temporary folder (its own `renderer` package first
on sys.path, with this checkout's built C extensions where its C source is the same) and shares this
checkout's .cache; each arm runs once unmeasured first, so neither pays
for building a cache in a pair. Per run: wall and CPU seconds (user + sys, wait4), the summary's `seconds` and, where
the code reports it, its `timeline` (seconds since process start when the run first decoded,
tracked, swapped and encoded a frame, and when the model had loaded). Both outputs' video is
compared by `ffmpeg -i OUT -map 0:v -f md5 -`.

    .venv/bin/python bench/ab_swap.py [--old main] [--pairs 3] [--clip .cache/bench/swap-200-240.mp4]
    .venv/bin/python bench/ab_swap.py --old . --new-args="--precision fp32" [--args="--frames 96-143"]

`--old .` (or any folder) runs that tree as the old arm, so with `--old-args` / `--new-args` the two arms
can be one tree with different `doppel swap` options (their videos then differ, as the md5 line says);
`--args` go to both arms.

Default clip: bench_swap.py's 1080p, 240 frames, one ~200 px face (made and cached when missing).
Prints a markdown table; writes nothing under bench/results (paste what you keep).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

import bench_swap as B  # noqa: E402


def video_md5(path: Path) -> str:
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:v", "-f", "md5", "-"],
                         capture_output=True, text=True, check=True).stdout
    return out.strip().removeprefix("MD5=")


def unpack(ref: str, into: Path) -> Path:
    """`git archive REF` unpacked under `into`; its folder."""
    tar = into / "old.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(tar), ref], check=True)
    tree = into / "old"
    with tarfile.open(tar) as t:
        t.extractall(tree, filter="data")
    # This checkout's built C extensions go along where the old tree has the same C source (an
    # archive holds no build output: without them the old arm would run the numpy fallbacks).
    for built in (ROOT / "renderer").rglob("*.so"):
        source = built.parent / (built.name.split(".")[0] + ".c")
        twin = tree / source.relative_to(ROOT)
        if source.exists() and twin.exists() and twin.read_bytes() == source.read_bytes():
            shutil.copy2(built, tree / built.relative_to(ROOT))
    return tree


def swap_cmd(tree: Path, clip: Path, model: Path, out: Path, extra: list[str] | None = None) -> list[str]:
    # `-c` with the tree first on sys.path: the arm's own renderer package, not the installed one.
    boot = f"import sys; sys.path.insert(0, {str(tree)!r}); from renderer.cli import main; sys.exit(main())"
    return [B.PY, "-c", boot, "swap", str(clip), "--model", str(model), "--out", str(out),
            "--codec", "h264", "--json", "--no-progress", "--force", *(extra or [])]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", default="main", help="git ref of the old arm (default main), or a folder holding a tree")
    ap.add_argument("--pairs", type=int, default=3, help="interleaved (old, new) pairs")
    ap.add_argument("--clip", type=Path, help="source clip (default: bench_swap's 200 px, 240-frame clip)")
    ap.add_argument("--args", default="", help="extra `doppel swap` options for both arms (one string)")
    ap.add_argument("--old-args", default="", help="extra `doppel swap` options for the old arm only")
    ap.add_argument("--new-args", default="", help="extra `doppel swap` options for the new arm only")
    args = ap.parse_args()
    extra = {"old": shlex.split(args.args) + shlex.split(args.old_args),
             "new": shlex.split(args.args) + shlex.split(args.new_args)}
    clip = args.clip or B.face_video(B.CACHE / "swap-200-240.mp4", 240, (1920, 1080), 48, audio=True,
                                     face_px=200, faces=1)
    model = B.trained_model()
    folder = Path(args.old) if Path(args.old).is_dir() else None
    rev = "a folder" if folder else subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.old],
                                                   capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="doppel-ab-") as tmp:
        work = Path(tmp)
        arms = {"old": (folder or unpack(args.old, work)).resolve(), "new": ROOT}
        if not (arms["old"] / ".cache").exists():  # the checkout's caches (HOG detector, landmark arrays)
            (arms["old"] / ".cache").symlink_to(ROOT / ".cache")
        for arm, tree in arms.items():  # one unmeasured run each: a cache an arm lacks is built here
            B.timed(swap_cmd(tree, clip.resolve(), model.resolve(), work / f"{arm}.mp4", extra[arm]), cwd=tree)
        rows: list[tuple[str, B.Run, dict, float]] = []
        md5: dict[str, set[str]] = {"old": set(), "new": set()}
        for n in range(args.pairs):
            for arm, tree in (list(arms.items()) if n % 2 == 0 else list(arms.items())[::-1]):
                out = work / f"{arm}.mp4"
                # In the arm's own folder: `python -m renderer.model_process` (the model process) puts the
                # working folder first on sys.path, so from anywhere else the old arm's child ran this tree.
                run = B.timed(swap_cmd(tree, clip.resolve(), model.resolve(), out, extra[arm]), cwd=tree)
                rows.append((arm, run, json.loads(run.stdout), os.getloadavg()[0]))
                md5[arm].add(video_md5(out))
                print(f"pair {n + 1} {arm}: {run.wall:.2f} s wall, {run.cpu:.2f} s CPU, "
                      f"timeline {rows[-1][2].get('timeline')}", file=sys.stderr, flush=True)
    print(f"old = {args.old} ({rev}) {' '.join(extra['old'])}, new = this tree {' '.join(extra['new'])}; "
          f"clip {clip.name}; model {model.name}\n")
    print("| pair | old wall (s) | new wall (s) | new / old wall | old CPU (s) | new CPU (s) | new / old CPU | "
          "new: first decoded / tracked / model ready / first swapped / first encoded (s since start) | load |")
    print("|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    walls, cpus = [], []
    for n in range(args.pairs):
        pair = dict((arm, (run, js, load)) for arm, run, js, load in rows[2 * n:2 * n + 2])
        (old, _, l0), (new, js, l1) = pair["old"], pair["new"]
        walls.append(new.wall / old.wall)
        cpus.append(new.cpu / old.cpu)
        tl = js.get("timeline") or {}
        points = " / ".join(f"{tl[k]:.2f}" if k in tl else "-"
                            for k in ("first_decoded", "first_tracked", "model_ready", "first_swapped", "first_encoded"))
        print(f"| {n + 1} | {old.wall:.2f} | {new.wall:.2f} | {walls[-1]:.3f} | {old.cpu:.2f} | {new.cpu:.2f} | "
              f"{cpus[-1]:.3f} | {points} | {l0:.1f}-{l1:.1f} |")
    print(f"\nmean new / old: wall {B.mean(walls):.3f}, CPU {B.mean(cpus):.3f}")
    same = len(md5["old"]) == 1 and md5["old"] == md5["new"]
    print(f"video md5: old {sorted(md5['old'])}, new {sorted(md5['new'])} -> {'identical' if same else 'DIFFERENT'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
