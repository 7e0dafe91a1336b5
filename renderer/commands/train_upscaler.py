"""Train a face upscaler for MODEL_DIR's person B, learned from B's own faceset.

The lite model's decoder gives 64 px faces, spread over faces of 150-650 px in the frame:
too soft. The upscaler (a few 3x3 convolutions and a pixel shuffle over a bicubic upsample)
learns to turn decoder B's own reconstruction of B's crops back into B's real crops at
2x or 4x (the largest the faceset's crop size holds). No downloaded weights: it learns
from B alone. It is saved beside the model (MODEL_DIR/upscaler.safetensors, one atomic
generation with the model card, whose `upscaler:` section names the faceset, its SHA-256,
iterations, loss and scale). Swaps use it with preset `upscale: auto` (the default: when
the model has one) or `on` (refused when it has none); `off` leaves it out.

Retraining the swap model (`doppel train --resume`) drops the upscaler: train it again.

Examples:
  doppel train-upscaler models/j2j --b faces/john --minutes 10 --threads 2
  doppel train-upscaler models/j2j --b faces/john --iterations 3000 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from renderer.upscale import SCALES, UpscaleTrainConfig, train_upscaler


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model_dir", metavar="MODEL_DIR", type=Path, help="a trained swap model (from `doppel train`)")
    parser.add_argument("--b", required=True, metavar="FACESET_B", type=Path,
                        help="person B's faceset (crops at least 2x the model's input size; same alignment as the model)")
    parser.add_argument("--iterations", type=int, metavar="N", help="iterations (default 2000 unless --minutes is given)")
    parser.add_argument("--minutes", type=float, metavar="M", help="stop after M minutes of wall time")
    parser.add_argument("--scale", type=int, choices=SCALES, help="2 or 4 (default: the largest B's crops hold)")
    parser.add_argument("--batch", type=int, default=8, metavar="B", help="faces per iteration (default 8)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout when done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    cfg = UpscaleTrainConfig(model_dir=args.model_dir, faceset_b=args.b, iterations=args.iterations,
                             minutes=args.minutes, batch=args.batch, seed=args.seed, threads=args.threads,
                             scale=args.scale)
    result = train_upscaler(cfg, progress=not args.no_progress)
    card = result.card
    summary = {"model_dir": str(result.model_dir), **card.to_dict(), "seconds": round(result.seconds, 3),
               "bicubic_l1_last_batch": round(result.bicubic_l1, 6)}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"trained x{card.config.scale} upscaler for {result.model_dir}: {card.iterations} iterations in "
              f"{result.seconds:.1f} s, loss {card.loss_first:.4f} -> {card.loss_last:.4f}", file=sys.stderr)
    return 0
