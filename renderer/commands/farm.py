"""Render an edit on a farm: Open Job Description job bundles (Deadline Cloud style).

  doppel farm export EDIT --preset PRESET --out BUNDLE_DIR [--model DIR] [--chunk-frames N] [--media-root DIR]
      Check the edit exactly as `doppel render` does, then write BUNDLE_DIR/template.yaml (a
      jobtemplate-2023-09 job with the TASK_CHUNKING extension: a Render step whose CHUNK[INT]
      tasks are contiguous frame chunks of the marked clips, never across two clips, and a
      Publish step after it), parameter_values.yaml (this machine's paths) and
      asset_references.yaml (edit, preset, media, models in; the output folder out).

  doppel farm run BUNDLE_DIR [--workers N] [--out DIR]
      Run the bundle here through openjd.sessions: N Render tasks at a time, then Publish.
      Results (OUT/media/, the return edits <edit>.doppel.<ext>, render.json) land in DIR,
      default BUNDLE_DIR/output/; task logs in DIR/logs/.

  deadline bundle submit BUNDLE_DIR       the same bundle on AWS Deadline Cloud
  openjd run BUNDLE_DIR/template.yaml --step Render -p EditFile=... -p ...   the OpenJD reference runner

Internal (what the template's tasks run; paths come from the job's parameters):
  doppel farm task --edit E --preset P --out O [--model M] [--media-root R] --frames 10000012-10000035
  doppel farm publish --edit E --preset P --out O [--model M] [--media-root R]

A chunk renders with a pre-roll (decoded, discarded), so chunk boundaries never show: a clip in
k chunks decodes to the same pixels as the clip rendered in one piece (intra codecs: ffv1,
ProRes, DNxHR; h264 chunks are closed GOPs, see the README). Tasks print `openjd_progress: NN`
and `openjd_status: ...` lines on stdout. A task killed and retried renders the same chunk; a
chunk already rendered from the same inputs is skipped. GPU: the worker's CUDA_VISIBLE_DEVICES.
Image-sequence clips (EXR, DPX, TIFF, PNG): each chunk writes its own frame numbers as a sequence;
Publish assembles the frames (no re-encode; EXR headers relabelled) and signs the sequence once.

Exit status: 0 done, 1 a task or clip failed, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from renderer.atomic import check_writable
from renderer.errors import InputError


def _common(parser: argparse.ArgumentParser, out_help: str) -> None:
    parser.add_argument("--edit", required=True, metavar="EDIT", help="the edit (a job parameter's value)")
    parser.add_argument("--preset", required=True, metavar="PRESET", help="preset YAML file or shipped name")
    parser.add_argument("--out", required=True, metavar="OUT_DIR", help=out_help)
    parser.add_argument("--model", metavar="MODEL_DIR", help="model directory for every clip")
    parser.add_argument("--media-root", action="append", default=[], metavar="DIR", help="media folder; repeatable")
    parser.add_argument("--direction", choices=("a2b", "b2a"), help="swap direction (beats the preset and markers)")
    parser.add_argument("--edl-rate", metavar="FPS", help="frame rate of a CMX 3600 EDL")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="farm_command", metavar="ACTION", required=True)
    fmt = argparse.RawDescriptionHelpFormatter

    export = sub.add_parser("export", help="write an OpenJD job bundle for one edit", formatter_class=fmt,
                            description="Check EDIT as `doppel render` would and write a job bundle "
                                        "(template.yaml, parameter_values.yaml, asset_references.yaml).")
    export.add_argument("edit", metavar="EDIT",
                        help="edit with FACESWAP markers: .otio, .otioz, .xml, .fcpxml, .edl, .aaf")
    export.add_argument("--preset", required=True, metavar="PRESET", help="shipped preset name or YAML file")
    export.add_argument("--out", required=True, metavar="BUNDLE_DIR", help="folder for the bundle's files")
    export.add_argument("--model", metavar="MODEL_DIR", help="model directory for every clip")
    export.add_argument("--chunk-frames", type=int, default=48, metavar="N",
                        help="frames per Render task (default 48 = swap.SEGMENT_FRAMES; OpenJD evens chunk sizes out)")
    export.add_argument("--media-root", action="append", default=[], metavar="DIR",
                        help="another folder to look for media in; becomes a MediaRoot job parameter; repeatable")
    export.add_argument("--output-dir", metavar="DIR", help="OutputDir parameter value (default BUNDLE_DIR/output)")
    export.add_argument("--direction", choices=("a2b", "b2a"), help="swap direction (beats the preset and markers)")
    export.add_argument("--edl-rate", metavar="FPS", help="frame rate of a CMX 3600 EDL, e.g. 25 or 24000/1001")
    export.add_argument("--json", action="store_true", help="print a JSON summary on stdout")

    run = sub.add_parser("run", help="run a job bundle on this machine (openjd sessions)", formatter_class=fmt,
                         description="Run BUNDLE_DIR's Render tasks N at a time through openjd.sessions, then Publish.")
    run.add_argument("bundle", metavar="BUNDLE_DIR", help="a folder written by `doppel farm export`")
    run.add_argument("--workers", type=int, default=1, metavar="N", help="Render tasks at once (default 1)")
    run.add_argument("--out", metavar="DIR", help="results folder (default BUNDLE_DIR/output)")
    run.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    run.add_argument("--quiet", action="store_true", help="no progress bar")

    task = sub.add_parser("task", help="(internal) render one chunk: what a Render task runs", formatter_class=fmt)
    _common(task, "OutputDir: chunks go to OUT/chunks/")
    task.add_argument("--frames", required=True, metavar="CHUNK", help="the task's Frames value, e.g. 10000012-10000035")
    task.add_argument("--force", action="store_true", help="render even when the chunk is up to date")

    pub = sub.add_parser("publish", help="(internal) join chunks, sign, write the return edit: the Publish task",
                         formatter_class=fmt)
    _common(pub, "OutputDir: media/, the return edits and render.json")


def _inputs(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from renderer.farm import FarmInputs

    return FarmInputs(Path(args.edit), Path(args.preset) if Path(args.preset).is_file() else args.preset,
                      Path(args.out), Path(args.model) if args.model else None,
                      tuple(Path(r) for r in args.media_root), args.direction, args.edl_rate)


def _say(line: str) -> None:
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    from renderer import farm

    if args.farm_command == "export":
        check_writable(Path(args.out), "--out", is_dir=True)
        bundle = farm.export_bundle(args.edit, args.preset, args.out, model=args.model, chunk_frames=args.chunk_frames,
                                    media_roots=args.media_root, direction=args.direction, edl_rate=args.edl_rate,
                                    out_dir=args.output_dir)
        summary = {"bundle": str(bundle.path), "clips": bundle.clips, "render_tasks": bundle.tasks,
                   "frames": bundle.frames, "parameters": bundle.parameters, "warnings": list(bundle.warnings)}
        for warning in bundle.warnings:
            print(f"doppel farm: warning: {warning}", file=sys.stderr)
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            print(f"doppel farm: bundle {bundle.path}: {bundle.clips} clip(s), {bundle.frames} frames in "
                  f"{bundle.tasks} Render task(s) + Publish; run it with `doppel farm run {bundle.path}` or "
                  f"`deadline bundle submit {bundle.path}`", file=sys.stderr)
        return 0
    if args.farm_command == "task":
        render_plan = farm.plan(_inputs(args))
        farm.run_task(render_plan, args.frames, progress=_say, force=args.force)
        return 0
    if args.farm_command == "publish":
        render_plan = farm.plan(_inputs(args))
        report = farm.publish(render_plan, progress=_say)
        summary = report.to_json()
        _say(f"openjd_status: {summary['status']}: {summary['rendered']} published, {summary['skipped']} up to date, "
             f"{summary['failed']} failed; {summary['render_json']}")
        for result in report.failed:
            print(f"doppel farm publish: clip '{result.job.clip.clip_name}': {result.error}", file=sys.stderr)
        return report.exit_code
    # run
    if args.workers < 1:
        raise InputError(f"--workers {args.workers} is not allowed (allowed: an integer >= 1)")
    bar = None if args.quiet else tqdm(unit="task", desc="doppel farm", file=sys.stderr)

    def on_task(outcome: farm.TaskOutcome) -> None:
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(f"{outcome.step} {outcome.frames or ''} {outcome.state}")

    try:
        result = farm.run_bundle(args.bundle, workers=args.workers, out_dir=args.out, on_task=on_task)
    finally:
        if bar is not None:
            bar.close()
    summary = result.to_json()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"doppel farm: {summary['status']}: {summary['tasks']} task(s) with {result.workers} worker(s) in "
              f"{summary['seconds']} s; results in {result.out_dir}; record {summary['render_json']}", file=sys.stderr)
    return 0 if summary["status"] in ("ok", "nothing marked") else 1
