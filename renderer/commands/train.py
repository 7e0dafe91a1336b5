"""Train the swap model (one shared encoder, a decoder per person) on two facesets.

Face A is the person in the footage; face B the person to put there. The model learns
to rebuild A with decoder A and B with decoder B from warped copies of both; `doppel
swap` then decodes A's faces with decoder B.

MODEL_DIR holds model.safetensors (weights), model.yaml (the model card: config,
identities, the --rights statement, facesets with SHA-256, iterations, loss summary),
optimizer.safetensors + train_state.json (for --resume), preview.png (rows A, A->A,
A->B, B, B->B, B->A) and loss.png. Every --save-every iterations and at the end the whole
set is saved as one atomic step (a new checkpoints/ folder, then the `current` link is
switched): a kill at any moment leaves the last complete checkpoint. Ctrl-C or SIGTERM
finishes the iteration in progress and saves it, so --resume continues bit-identically
(it also keeps the model's batch, lr and --threads unless given).

--init MODEL_DIR starts a new model (in --out) from another model's weights, a fine-tune
(DeepFaceLab's pretrained-model workflow): same config (architecture, widths, mask, and the
facesets' coverage, landmark points and crop size; a mismatch is refused), a fresh
optimizer, this run's --seed for sampling and augmentation, its own iteration count. The
weights still carry the faces the other model learned, so the new card records them under
`initialised_from:` (that model's identities, rights statement, weights SHA-256 and its own
lineage). Not with --resume. --init-crossed maps that model's decoders the other way round (its
decoder A starts this model's B, its B this one's A, recorded as `decoders: crossed`): for when the
person you put in is the one that model rebuilt as A.

At the end of a run (not after Ctrl-C) the model's expected-error prior is measured on faceset A
and saved with it (`error_prior.safetensors`, the card's `error_prior:` section; what `doppel
error-prior` does): decoder A's per-pixel rebuild error on its own faces, which the swap's
`occlusion: reconstruction` mask divides by, so eyes and mouths the model rebuilds worst are not
taken for occluders. --no-error-prior skips it.

--rights is required: who the faces belong to and on what basis they may be used.

Models: lite (default; CPU-friendly, ~15 MiB), original (the 2017 network, 82 M
parameters), hd (128 px, for GPUs). Device: cuda > mps > cpu unless --device says.

Precedence: built-in defaults < the preset's `train:` section < flags given here.

Examples:
  doppel train --a faces/jane --b faces/john --out models/j2j \\
      --rights "Both people consented in writing for the Doppel demo (2026-11)" --iterations 5000
  doppel train --a faces/jane --b faces/john --out models/j2j --rights "..." --resume --iterations 20000
  doppel train --a faces/shot12-first-half --b faces/john --out models/shot12 --rights "..." \\
      --init models/j2j --iterations 2000
  doppel train --a A --b B --out M --rights "..." --preset presets/train/gpu.yaml --json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from renderer.train import TrainConfig, load_train_preset, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--a", required=True, metavar="FACESET_A", type=Path,
                        help="faceset of the face to replace (from `doppel extract`)")
    parser.add_argument("--b", required=True, metavar="FACESET_B", type=Path,
                        help="faceset of the face to put in its place (same crop size and coverage as A)")
    parser.add_argument("--out", required=True, metavar="MODEL_DIR", type=Path,
                        help="model directory to create (or continue, with --resume)")
    parser.add_argument("--rights", metavar="TEXT",
                        help="REQUIRED: who the faces belong to and on what basis they may be used; stored in the model card")
    parser.add_argument("--name-a", metavar="NAME", help="name of person A for the card (default: faceset identity or folder name)")
    parser.add_argument("--name-b", metavar="NAME", help="name of person B for the card")
    parser.add_argument("--preset", metavar="PRESET.yaml", type=Path,
                        help="YAML file whose `train:` section sets any option below (unknown keys are rejected)")
    parser.add_argument("--model", choices=("original", "lite", "hd"), default=None,
                        help="architecture (default: lite; on --resume, the model's own)")
    parser.add_argument("--iterations", type=int, metavar="N",
                        help="total iterations the model should reach (default 10000 unless --minutes is given)")
    parser.add_argument("--minutes", type=float, metavar="M", help="stop this run after M minutes of wall time")
    parser.add_argument("--batch", type=int, metavar="B", help="faces per person per iteration (default 16 for original/hd, 8 for lite; on --resume the model's own)")
    parser.add_argument("--lr", type=float, help="Adam learning rate (default 5e-5 for original/hd, 5e-4 for lite; on --resume the model's own)")
    parser.add_argument("--learn-mask", action="store_true", default=None,
                        help="decoders also output a face mask, trained on the landmark hull")
    parser.add_argument("--resume", action="store_true", help="continue the model in --out exactly (optimizer and RNG state)")
    parser.add_argument("--init", metavar="MODEL_DIR", type=Path,
                        help="start from this model's weights (same config; fresh optimizer and RNG; the card records "
                             "its identities, rights and weights SHA-256 under initialised_from); not with --resume")
    parser.add_argument("--init-crossed", action="store_true",
                        help="with --init: that model's decoder A starts this model's decoder B and its B this one's A "
                             "(the person you put in is the one it rebuilt as A); the card records it")
    parser.add_argument("--seed", type=int, metavar="S", help="random seed for init, sampling and augmentation (default 0)")
    parser.add_argument("--device", metavar="DEV", help="cpu, cuda, cuda:N or mps (default: the best available)")
    parser.add_argument("--save-every", type=int, metavar="K", help="checkpoint and preview every K iterations (default 250)")
    parser.add_argument("--holdout", type=int, metavar="N",
                        help="keep every Nth face of each faceset out of training and report how well each decoder "
                             "rebuilds them (held-out SSIM, in the progress bar and the model card); default off, "
                             "on --resume the model's own")
    parser.add_argument("--target-ssim", type=float, metavar="S",
                        help="stop once every held-out SSIM reaches S (e.g. 0.8; needs --holdout)")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="CPU threads for torch (default: torch's choice; 1-2 is best for lite on a busy machine)")
    parser.add_argument("--no-error-prior", action="store_true",
                        help="do not measure the expected-error prior on faceset A at the end (see above)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout when done")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def build_config(args: argparse.Namespace) -> TrainConfig:
    """Defaults < preset `train:` section < explicit flags."""
    values: dict[str, Any] = load_train_preset(args.preset) if args.preset else {}
    flags = {
        "name_a": args.name_a, "name_b": args.name_b, "model": args.model, "iterations": args.iterations,
        "minutes": args.minutes, "batch": args.batch, "lr": args.lr, "learn_mask": args.learn_mask,
        "seed": args.seed, "device": args.device, "save_every": args.save_every,
        "threads": args.threads, "holdout": args.holdout, "target_ssim": args.target_ssim,
    }
    values.update({k: v for k, v in flags.items() if v is not None})
    return TrainConfig(faceset_a=args.a, faceset_b=args.b, out=args.out, rights=args.rights or "",
                       resume=args.resume, init=args.init,
                       init_crossed=args.init_crossed, **values)


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    result = train(cfg, progress=not args.no_progress)
    prior = None
    if not args.no_error_prior:
        from renderer.error_prior import add_error_prior

        prior = add_error_prior(result.model_dir, cfg.faceset_a, threads=cfg.threads)
    card = result.card
    card_data = card.to_dict()  # NaN already written as null
    summary = {
        "model_dir": str(result.model_dir),
        "arch": card.config.arch,
        "iterations": result.iterations,
        "iterations_this_run": result.iterations_this_run,
        "seconds": round(result.seconds, 3),
        "faces_per_second": round(result.faces_per_second, 2),
        "loss_a": round(result.loss_a, 6),
        "loss_b": round(result.loss_b, 6),
        "identities": {"a": card.name_a, "b": card.name_b},
        "device": card.device,
        "weights_sha256": card.weights_sha256,
        "config": card.config.to_dict(),
        "validation": card_data.get("validation"),
        "loss": card_data["loss"],
        "error_prior": None if prior is None else {"faces": prior.faces, "median": prior.median,
                                                   "sha256": prior.weights_sha256},
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"trained {card.config.arch} model {card.name_a} <-> {card.name_b}: {result.iterations} iterations "
              f"({result.iterations_this_run} this run, {result.seconds:.1f} s, {result.faces_per_second:.1f} faces/s), "
              f"loss A {result.loss_a:.4f}, B {result.loss_b:.4f} -> {result.model_dir}", file=sys.stderr)
        if card.validation:
            v = card.validation
            held = [f"{k} {s:.3f} ({n} faces)" for k, s, n in (("A", v.ssim_a, v.faces_a), ("B", v.ssim_b, v.faces_b))
                    if s is not None]
            print(f"held-out SSIM (every {v.holdout}th face, iteration {v.iteration}): {', '.join(held)}",
                  file=sys.stderr)
    return 0
