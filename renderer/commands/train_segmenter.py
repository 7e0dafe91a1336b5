"""Train the occluder segmenter of a model: what `occlusion: learned` uses to keep hands, microphones,
glasses and hair in front of the swapped face.

The segmenter (a small U-Net, ~0.36 M weights) learns from the model's own facesets, A's and B's
by default (the faces its card's rights cover; a --faces faceset the card does not list needs
--rights), with random occluders pasted over them: shapes filled with flat colours, smooth noise, patches of face-free
photos (--photos) and skin cut from other faces. It is saved beside the model
(MODEL_DIR/segmenter.safetensors, one atomic generation with the model card, whose `segmenter:`
section names the facesets and their SHA-256s, the photos, the loss and the IoU on held-out
synthetic occluders). Swaps then take `occlusion: learned` (a preset key, or `doppel swap
--occlusion learned`); it replaces the source decoder's pass that `reconstruction` runs.
Retraining the swap model drops the segmenter: train it again.

  doppel train-segmenter models/j2j --photos ~/photos/no-faces --threads 2
  doppel train-segmenter models/j2j --faces faces/john --iterations 1500 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from renderer.segmenter import DEFAULT_ITERATIONS  # torch-free

    parser.add_argument("model_dir", metavar="MODEL_DIR", type=Path, help="a trained swap model (from `doppel train`)")
    parser.add_argument("--faces", action="append", default=[], metavar="FACESET", type=Path,
                        help="a faceset of the model's to learn from (repeatable; default: every faceset its card lists)")
    parser.add_argument("--photos", action="append", default=[], metavar="PATH", type=Path,
                        help="a photo without faces, or a folder of them, for occluder textures (repeatable)")
    parser.add_argument("--rights", default="", metavar="TEXT",
                        help="whose faces and under what rights, needed when a --faces faceset is not one the model "
                             "card lists (kept in the card's segmenter section)")
    parser.add_argument("--iterations", type=int, metavar="N", help=f"iterations (default {DEFAULT_ITERATIONS} unless --minutes is given)")
    parser.add_argument("--minutes", type=float, metavar="M", help="stop after M minutes of wall time")
    parser.add_argument("--batch", type=int, default=16, metavar="B", help="faces per iteration (default 16)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads for torch (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print the card's segmenter section as JSON when done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def run(args: argparse.Namespace) -> int:
    from renderer.train_segmenter import SegmenterTrainConfig, train_segmenter

    cfg = SegmenterTrainConfig(model_dir=args.model_dir, facesets=tuple(args.faces), photos=tuple(args.photos),
                               iterations=args.iterations, minutes=args.minutes, batch=args.batch, seed=args.seed,
                               threads=args.threads, rights=args.rights)
    result = train_segmenter(cfg, progress=not args.no_progress)
    card = result.card
    if args.json:
        print(json.dumps({"model_dir": str(result.model_dir), **card.to_dict(), "seconds": round(result.seconds, 3)},
                         indent=2))
    else:
        print(f"trained the occluder segmenter of {result.model_dir}: {card.iterations} iterations on {card.faces} "
              f"faces in {result.seconds:.1f} s, loss {card.loss_first:.4f} -> {card.loss_last:.4f}, IoU on held-out "
              f"synthetic occluders {card.synthetic_iou:.3f}", file=sys.stderr)
    return 0
