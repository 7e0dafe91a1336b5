"""Find, align and save faces from images, folders of images and videos into a faceset.

Each face is detected (HOG by default, MTCNN for profiles and small faces),
given 68 or 5 landmarks, aligned to the mean face by a similarity transform
and saved as a lossless PNG crop; faceset.json records per face the source
file and its SHA-256, frame index, box, landmarks, matrices, score, blur
measure and identity embedding. Faces too small, blurry, near-duplicate or
(with --identity) of another person are rejected and counted by reason.

Re-running on the same input changes nothing; an interrupted run resumes.
Unreadable or faceless files are reported and skipped; the exit status is
non-zero only when the faceset ends up empty.

examples:
  doppel extract interview.mov --out faces/jane --identity jane.jpg
  doppel extract stills/ clip.mp4 --out faces/john --every 5 --landmarks 5 --json
  doppel extract A003_logc.mov --out faces/jane --colour-space "ARRI LogC3 (EI800)" \
      --working-space "Rec.1886 Rec.709 - Display"     # crops stored (and recorded) in Rec.709
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from renderer.atomic import check_writable
from renderer.colour_management import ColourSpaces
from renderer.errors import InputError
from renderer.extract import extract


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sources", nargs="+", type=Path, metavar="SRC", help="images, folders of images, or videos")
    parser.add_argument("--out", required=True, type=Path, metavar="FACESET_DIR", help="faceset folder (created or resumed)")
    parser.add_argument("--detector", default="hog", choices=["hog", "mtcnn"],
                        help="hog: dlib HOG+SVM, fast, frontal faces (default); mtcnn: profiles and small faces")
    parser.add_argument("--size", type=int, default=256, help="side of the square aligned crops in px (default 256)")
    parser.add_argument("--every", type=int, default=1, metavar="N",
                        help="use every Nth video frame (default 1: all frames, with tracking)")
    parser.add_argument("--identity", type=Path, metavar="REF_IMAGE",
                        help="keep only faces of the person in this photo (largest face in it)")
    parser.add_argument("--identity-threshold", type=float, default=0.6,
                        help="maximum embedding distance to the --identity face (default 0.6)")
    parser.add_argument("--landmarks", type=int, default=68, choices=[68, 5],
                        help="68 (iBUG 300-W markup; non-commercial training data) or 5 (commercially usable)")
    parser.add_argument("--coverage", type=float, default=0.375,
                        help="margin around the mean face as a fraction of the crop (default 0.375, the deepfakes crop)")
    parser.add_argument("--min-face", type=int, default=40, metavar="PX", help="smallest face searched for and kept, px (default 40)")
    parser.add_argument("--blur-threshold", type=float, default=20.0,
                        help="reject crops whose Laplacian variance (at 64 px) is below this (default 20)")
    parser.add_argument("--dedupe-bits", type=int, default=4,
                        help="reject a face whose 64-bit image hash is within this many bits of one kept (default 4; -1 keeps all)")
    parser.add_argument("--colour-space", metavar="SPACE",
                        help="OpenColorIO colour space the sources are in, e.g. 'ARRI LogC3 (EI800)'; recorded in "
                             "the faceset (train refuses facesets of different spaces). Default: undeclared")
    parser.add_argument("--working-space", metavar="SPACE",
                        help="store the crops converted into this space (default: as they are, in --colour-space)")
    parser.add_argument("--ocio-config", metavar="CONFIG", default="ocio://studio-config-latest",
                        help="OpenColorIO config naming the spaces: a config.ocio path or a built-in (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    check_writable(args.out, "--out", is_dir=True)
    if args.working_space and not args.colour_space:
        raise InputError("--working-space needs --colour-space (the space the sources are in)")
    colour = (ColourSpaces(args.ocio_config, args.colour_space, args.working_space or args.colour_space)
              if args.colour_space else None)
    summary = extract(
        args.sources, args.out, detector=args.detector, size=args.size, every=args.every,
        identity_ref=args.identity, points=args.landmarks, coverage=args.coverage, min_face=args.min_face,
        blur_threshold=args.blur_threshold, dedupe_bits=args.dedupe_bits,
        identity_threshold=args.identity_threshold, colour=colour, progress=not args.no_progress,
    )
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        rej = ", ".join(f"{n} {r}" for r, n in sorted(summary.rejected.items())) or "none"
        print(f"{summary.out_dir}: {summary.faces_kept} new faces kept of {summary.faces_found} found "
              f"({summary.faces_total} in the faceset); rejected: {rej}; "
              f"{summary.skipped_done} file(s) already done")
        for b in summary.bad_sources:
            print(f"  skipped {b['source']}: {b['reason']}")
    if not summary.ok:
        print(f"doppel extract: error: no usable face found in {len(args.sources)} source(s); see rejects in "
              f"{summary.out_dir / 'faceset.json'}", file=sys.stderr)
        return 1
    return 0
