"""Training throughput of `original`: Doppel's loop vs a plain reference of the 2017 network.

The reference is written inside this file the obvious way (as the 2017 Keras code did:
each autoencoder runs its own encoder pass). Doppel's loop runs the shared encoder once
over A and B together. Both start from the same weights, see the same batches and take
one Adam step on loss_a + loss_b, so their loss curves must agree (checked here).
Measures faces/s (forward + backward of both halves + Adam step, batch 16 per half, fp32,
torch's default threads) in the same run, and writes bench/results/train.md.

    .venv/bin/python bench/bench_train.py [--steps 6] [--warmup 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from renderer.model import ModelConfig, build_model  # noqa: E402


class RefUpscale(nn.Sequential):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(nn.Conv2d(cin, cout * 4, 3, padding=1), nn.LeakyReLU(0.1), nn.PixelShuffle(2))


class RefAutoencoder(nn.Module):
    """The 2017 network, plainly: encoder + two decoders, each half its own full pass."""

    def __init__(self) -> None:
        super().__init__()
        def c(i: int, o: int) -> list[nn.Module]:
            return [nn.Conv2d(i, o, 5, 2, padding=2), nn.LeakyReLU(0.1)]
        self.enc = nn.Sequential(*c(3, 128), *c(128, 256), *c(256, 512), *c(512, 1024), nn.Flatten(),
                                 nn.Linear(1024 * 16, 1024), nn.Linear(1024, 1024 * 16),
                                 nn.Unflatten(1, (1024, 4, 4)), RefUpscale(1024, 512))
        def dec() -> nn.Sequential:
            return nn.Sequential(RefUpscale(512, 256), RefUpscale(256, 128), RefUpscale(128, 64),
                                 nn.Conv2d(64, 3, 5, padding=2), nn.Sigmoid())
        self.dec_a, self.dec_b = dec(), dec()

    def forward(self, x: torch.Tensor, which: str) -> torch.Tensor:
        return (self.dec_a if which == "a" else self.dec_b)(self.enc(x))


def copy_weights(ours: nn.Module, ref: RefAutoencoder) -> None:
    src = [p for p in ours.parameters()]
    dst = [p for p in ref.parameters()]
    assert [p.shape for p in src] == [p.shape for p in dst]
    with torch.no_grad():
        for s, d in zip(src, dst):
            d.copy_(s)


def run(steps: int, warmup: int, batch: int) -> dict[str, object]:
    torch.manual_seed(0)
    ours = build_model(ModelConfig.for_arch("original"))
    ref = RefAutoencoder()
    copy_weights(ours, ref)
    g = torch.Generator().manual_seed(1)
    data = [(torch.rand(batch, 3, 64, 64, generator=g), torch.rand(batch, 3, 64, 64, generator=g))
            for _ in range(warmup + steps)]
    results: dict[str, object] = {}
    for name, model in (("reference", ref), ("doppel", ours)):
        opt = torch.optim.Adam(model.parameters(), lr=5e-5, betas=(0.5, 0.999))
        losses, t_total = [], 0.0
        for i, (xa, xb) in enumerate(data):
            t0 = time.perf_counter()
            if name == "reference":
                la = (model(xa, "a") - xa).abs().mean()
                lb = (model(xb, "b") - xb).abs().mean()
            else:
                z = model.encoder(torch.cat([xa, xb]))
                la = (model.decoder_a(z[:batch]) - xa).abs().mean()
                lb = (model.decoder_b(z[batch:]) - xb).abs().mean()
            opt.zero_grad(set_to_none=True)
            (la + lb).backward()
            opt.step()
            if i >= warmup:
                t_total += time.perf_counter() - t0
            losses.append(float(la.detach() + lb.detach()))
        results[name] = {"faces_per_s": 2 * batch * steps / t_total, "losses": losses}
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    r = run(args.steps, args.warmup, args.batch)
    ref, ours = r["reference"], r["doppel"]  # type: ignore[index]
    ratio = ours["faces_per_s"] / ref["faces_per_s"]
    max_dev = max(abs(a - b) / abs(a) for a, b in zip(ref["losses"], ours["losses"]))
    load = os.getloadavg()[0]
    cmd = f".venv/bin/python bench/bench_train.py --steps {args.steps} --warmup {args.warmup} --batch {args.batch}"
    md = f"""## Training throughput: `original` (Doppel loop vs plain reference)

Command: `{cmd}`
Machine: {os.cpu_count()}-core CPU ({platform.processor() or platform.machine()}), no GPU, torch {torch.__version__},
{torch.get_num_threads()} torch threads (default); 1-minute load average at the end {load:.1f}
(the machine was shared with other jobs, so absolute figures are noisy; both ran in the same process).

| loop | faces/s (fwd+bwd both halves + Adam, batch {args.batch}/half, fp32) |
|---|---|
| reference (each half its own encoder pass) | {ref['faces_per_s']:.2f} |
| Doppel (one encoder pass over A and B) | {ours['faces_per_s']:.2f} |
| ratio | **{ratio:.2f}x** (goal >= 1.3x) |

Numerics: same initial weights, same batches; largest relative difference of the summed L1 loss
over {args.warmup + args.steps} steps: {max_dev:.2e} (float32 reordering only).

Time to quality (lite vs original to SSIM >= 0.80): not measured yet.
"""
    out = Path(__file__).resolve().parent / "results" / "train.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
