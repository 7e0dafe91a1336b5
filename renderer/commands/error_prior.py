"""Measure a model's expected-error prior: decoder A's per-pixel rebuild error on A's own faceset.

`occlusion: reconstruction` (the default) keeps the source wherever decoder A's rebuild of the frame's
face disagrees with it. Eyes and mouth disagree on poses A's footage hardly holds, with nothing in
front of them, so the swap kept A's own eyes and mouth. The prior (MODEL_DIR/error_prior.safetensors,
the card's `error_prior:` section) records where decoder A misses on the faces it trained on; swaps
divide the rebuild error by it, so those regions need more disagreement to count as occluded.
Used with `occlusion_prior: auto` (the default, when the model has one); `off` ignores it. A few
seconds on CPU. Retraining the model (`doppel train --resume`) drops it: run this again.

Examples:
  doppel error-prior models/j2j --a faces/jane
  doppel error-prior models/j2j --a faces/jane --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from renderer.error_prior import add_error_prior


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", type=Path, help="a trained swap model (from `doppel train`)")
    parser.add_argument("--a", required=True, metavar="FACESET_A", type=Path,
                        help="person A's faceset the model was trained on (same alignment as the model)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print the card's error_prior section as JSON when done")


def run(args: argparse.Namespace) -> int:
    card = add_error_prior(args.model_dir, args.a, args.threads)
    if args.json:
        print(json.dumps(card.to_dict(), indent=2))
    else:
        print(f"error prior for {args.model_dir}: decoder {card.decoder} on {card.faces} faces of {args.a}, "
              f"{card.size}x{card.size}, median error {card.median:.4f}", file=sys.stderr)
    return 0
