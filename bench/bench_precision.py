"""The swap network's speed and output at fp32 and bf16 (preset `precision`), one thread, same run.

Loads the model (default: the shipped `models/demo`) as a swap does (`model_process.load_network`),
then, interleaved --rounds times, runs `decode_batches` (encoder once, decoders B and A: a swap
with `occlusion: reconstruction`) over --faces real aligned crops of person A (the test faceset,
downscaled to the model's size) at each precision, and reports ms per face, their ratio, and how
far bf16's outputs are from fp32's in 8-bit code values (mean and max over every pixel).
Writes bench/results/precision.md.

    .venv/bin/python bench/bench_precision.py [--model models/demo] [--faces 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from renderer.model_process import decode_batches, load_network, native_bf16  # noqa: E402
from renderer.modelcard import load_model_card  # noqa: E402
from tests.model_fixtures import facesets  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "demo")
    ap.add_argument("--faces", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    card = load_model_card(args.model)
    size = int(card.config.input_size)
    files = sorted(facesets()[0].rglob("*.png"))[: args.faces]
    crops = np.stack([cv2.resize(cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB), (size, size),
                                 interpolation=cv2.INTER_AREA) for f in files])
    nets = {p: load_network(args.model, "cpu", card, False, p) for p in ("fp32", "bf16")}
    times: dict[str, list[float]] = {"fp32": [], "bf16": []}
    outs = {}
    for p, (net, dev, _, _) in nets.items():
        outs[p] = decode_batches(net, dev, crops[:8], "ba", 8, bool(card.config.learn_mask))  # warm-up
    for _ in range(args.rounds):
        for p, (net, dev, _, _) in nets.items():
            t0 = time.perf_counter()
            outs[p] = decode_batches(net, dev, crops, "ba", 8, bool(card.config.learn_mask))
            times[p].append((time.perf_counter() - t0) / len(crops) * 1000)
    diff = np.concatenate([np.abs(a - b).ravel() for a, b in zip(outs["bf16"], outs["fp32"])]) * 255
    fp32, bf16 = min(times["fp32"]), min(times["bf16"])
    text = (f"## Network precision: fp32 and bf16 (issue 18)\n\n"
          f"Command: `.venv/bin/python bench/bench_precision.py --faces {args.faces} --rounds {args.rounds}`\n"
          f"Machine: {os.cpu_count()} cores, native bf16 (AMX / AVX512-BF16): {native_bf16(torch.device('cpu'))}; "
          f"model `{args.model.name}` ({card.config.arch}, {size} px), {len(crops)} real crops of person A, "
          f"encoder + decoders B and A, batches of 8, 1 thread.\n\n"
          f"| precision | ms per face (best of {args.rounds}; all) |\n|---|---|\n"
          f"| fp32 | {fp32:.2f} ({', '.join(f'{t:.2f}' for t in times['fp32'])}) |\n"
          f"| bf16 | {bf16:.2f} ({', '.join(f'{t:.2f}' for t in times['bf16'])}) |\n\n"
          f"bf16 / fp32 time: **{bf16 / fp32:.2f}**. bf16's outputs from fp32's, 8-bit code values: "
            f"mean {diff.mean():.2f}, 99.9th percentile {np.percentile(diff, 99.9):.2f}, max {diff.max():.2f}.\n")
    (ROOT / "bench" / "results" / "precision.md").write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
