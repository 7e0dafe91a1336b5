"""Render the FACESWAP-marked clips of an edit and write a return edit.

Only the marked clips are decoded. Each renders over its source range plus the preset's
handles (clamped to the media; handles are swapped too, so the editor can extend the cut)
into OUT/media/, with the source's timecode, frame rate and colour tags, labelled as
synthetic media and C2PA-signed when a signing key is configured. Then:

  OUT/<edit>.doppel.otio        the edit plus a top FACESWAP track, each rendered clip at
  OUT/<edit>.doppel.<ext>       the record time of its original (also in the input's format)
  OUT/render.json               per clip: source + range, output + SHA-256, model + card hash,
                                preset hash, frames swapped / passed through, timings, status

Running it again skips clips whose outputs exist with the same inputs (source, range, model,
weights, resolved preset, software version); an interrupted render resumes where it stopped.

Model: --model, else a marker's `model=` (relative to the edit's folder), else the preset's
`model`. Every input (edit, media, markers, preset, models) is checked before anything renders.

Output: a progress bar per clip on stderr. --progress adds OpenJD lines on stdout
(`openjd_progress: 42.5`, `openjd_status: ...`) for farm monitors and host plugins. --json prints
a JSON summary on stdout (last; with --progress the OpenJD lines come before it).

Exit status: 0 all clips rendered (or nothing marked), 1 some clips failed (the others are kept
and in the return edit; render.json says why) or a return edit's format writer failed (the renders
and the .otio return are kept; one line says why), 2 bad input, nothing rendered.

Examples:
  doppel render cut.xml --preset prores_hq --out renders/ --model models/jane
  doppel render cut.edl --edl-rate 25 --preset dnxhr_avid --out renders/ --media-root /Volumes/media
  doppel render cut.otio --preset review --out renders/ --dry-run
"""

from __future__ import annotations

import argparse
import json
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from renderer.atomic import check_writable
from renderer.errors import InputError
from renderer.render import (
    ClipResult, RenderPlan, RenderProgress, check_returns, job_summary, plan_render, run_render,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("edit", metavar="EDIT",
                        help="edit to render: .otio, .otioz, .xml (FCP7), .fcpxml, .edl (CMX 3600), .aaf")
    parser.add_argument("--preset", required=True, metavar="PRESET",
                        help="shipped preset name (see `doppel presets list`) or a YAML file")
    parser.add_argument("--out", required=True, metavar="OUT_DIR",
                        help="output folder: media/, the return edits and render.json go here")
    parser.add_argument("--model", metavar="MODEL_DIR",
                        help="trained model directory for every clip (beats markers' model= and the preset's model)")
    parser.add_argument("--media-root", action="append", default=[], metavar="DIR",
                        help="another folder to look for media in (by relative path, then file name); repeatable")
    parser.add_argument("--direction", choices=("a2b", "b2a"),
                        help="a2b: person A's face becomes B (default: the preset's); beats markers")
    parser.add_argument("--edl-rate", metavar="FPS",
                        help="frame rate of a CMX 3600 EDL (EDLs record none; default 24), e.g. 25 or 24000/1001")
    parser.add_argument("--dry-run", action="store_true",
                        help="check every input and list what would render (or be skipped); render nothing")
    parser.add_argument("--force", action="store_true", help="render every clip again, even those up to date")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--progress", action="store_true",
                        help="print OpenJD progress lines on stdout (openjd_progress: PERCENT, openjd_status: TEXT)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def _rate(text: str | None) -> Fraction | None:
    if text is None:
        return None
    try:
        rate = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise InputError(f"--edl-rate {text!r} is not a frame rate; give e.g. 25, 29.97 or 30000/1001") from None
    if not 1 <= rate <= 240:
        raise InputError(f"--edl-rate {text!r} is outside 1..240 fps")
    for base in (24, 30, 48, 60, 120):  # 23.976, 29.97, 59.94... mean the NTSC rates exactly
        if rate != base and abs(rate - Fraction(base * 1000, 1001)) < Fraction(1, 200):
            return Fraction(base * 1000, 1001)
    return rate


class _Reporter:
    """tqdm bars on stderr, OpenJD lines on stdout (throttled to 0.1 %), a line per finished clip."""

    def __init__(self, *, bars: bool, openjd: bool, out: TextIO, err: TextIO) -> None:
        self.bars, self.openjd, self.out, self.err = bars, openjd, out, err
        self._bar: Any = None
        self._job = -1
        self._last = -1.0

    def progress(self, p: RenderProgress) -> None:
        if p.job != self._job:
            self._close()
            self._job = p.job
            if self.bars:
                self._bar = tqdm(total=p.frames, unit="frame", desc=f"clip {p.job + 1}/{p.jobs} {p.clip_name}",
                                 file=self.err, leave=True)
            if self.openjd:
                print(f"openjd_status: clip {p.job + 1}/{p.jobs} '{p.clip_name}': {p.frames} frames",
                      file=self.out, flush=True)
        if self._bar is not None:
            self._bar.update(p.frame - self._bar.n)
        percent = round(p.percent, 1)
        if self.openjd and percent != self._last:
            self._last = percent
            print(f"openjd_progress: {percent}", file=self.out, flush=True)

    def clip(self, r: ClipResult) -> None:
        self._close()
        name = r.job.clip.clip_name
        if r.status == "ok":
            text = f"clip '{name}': rendered {r.entry['output']['path']}"
        elif r.status == "skipped":
            text = f"clip '{name}': up to date, skipped ({r.entry['output']['path']})"
        else:
            text = f"clip '{name}': FAILED: {r.error}"
        print(f"doppel render: {text}", file=self.err, flush=True)
        for warning in r.warnings:
            print(f"doppel render: {warning}", file=self.err, flush=True)
        if self.openjd:
            print(f"openjd_status: {text}", file=self.out, flush=True)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _plan_notes(plan: RenderPlan) -> None:
    """One line per clip refused or skipped, and per marker word that was not an override."""
    for r in plan.refused:
        print(f"doppel render: {r.describe()} {r.status}: {r.reason}", file=sys.stderr)
    for line in dict.fromkeys(w for job in plan.jobs for w in job.clip.warnings):
        print(f"doppel render: warning: {line}", file=sys.stderr)


def _dry_run(plan: RenderPlan, args: argparse.Namespace) -> int:
    rows = []
    for job in plan.jobs:
        entry = job_summary(job)
        entry["would"] = "render" if args.force or job.up_to_date() is None else "skip (up to date)"
        rows.append(entry)
    return_errors = check_returns(plan)
    _plan_notes(plan)
    code = 1 if return_errors else 0  # the render would exit 1: a return edit its writer cannot write
    for path, why in return_errors.items():
        print(f"doppel render: return edit {path} would NOT be written: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps({"dry_run": True, "status": "nothing marked" if not rows else "ok",
                          "edit": str(plan.edit), "clips": rows,
                          "return_otio": str(plan.return_edits[0]),
                          "return_edits": [str(p) for p in plan.return_edits],
                          "return_errors": return_errors,
                          "refused": [r.to_json() for r in plan.refused]}, indent=2))
        return code
    if not rows:
        print(f"dry run: nothing marked in {plan.edit} (no FACESWAP markers); nothing would render", file=sys.stderr)
        return code
    print(f"dry run: {len(rows)} clip(s) of {plan.edit}, every input checked:")
    for job, row in zip(plan.jobs, rows):
        rng = row["render_range"]
        print(f"  {row['would']:<18} {job.clip.describe()}: {job.clip.media_path.name} frames "
              f"{rng['first_frame']}-{rng['last_frame']} ({rng['frames']} frames, handles {rng['handles'][0]}/"
              f"{rng['handles'][1]}) -> {job.output} [model {job.model.path.name} from {job.model.origin}]")
    print("  return edits: " + ", ".join(str(p) for p in plan.return_edits))
    return code


def run(args: argparse.Namespace) -> int:
    check_writable(Path(args.out), "--out", is_dir=True)
    plan = plan_render(args.edit, args.preset, args.out, model=args.model, media_roots=args.media_root,
                       direction=args.direction, edl_rate=_rate(args.edl_rate))
    if args.dry_run:
        return _dry_run(plan, args)
    if not plan.jobs:
        print(f"doppel render: nothing marked in {plan.edit} (no clip has a FACESWAP marker); "
              f"writing the return edit with an empty FACESWAP track", file=sys.stderr)
    reporter = _Reporter(bars=not args.quiet, openjd=args.progress, out=sys.stdout, err=sys.stderr)
    try:
        report = run_render(plan, on_progress=reporter.progress, on_clip=reporter.clip, force=args.force)
    finally:
        reporter._close()
    summary = report.to_json()
    _plan_notes(plan)
    for path, why in report.return_errors.items():  # one line each; the render and the .otio are kept
        print(f"doppel render: return edit {path} NOT written: {why}", file=sys.stderr)
    if args.progress:
        print(f"openjd_status: {summary['status']}: {summary['rendered']} rendered, {summary['skipped']} skipped, "
              f"{summary['failed']} failed", flush=True)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"doppel render: {summary['status']}: {summary['rendered']} rendered, {summary['skipped']} up to date, "
              f"{summary['failed']} failed; return edit {summary['return_otio']}; record {summary['render_json']}",
              file=sys.stderr)
    return report.exit_code
