"""Speed of the RSA / CKA grid: every model representation against every neural one, at HvM scale.

Usage::

    python benchmarks/perf/metrics.py --threads 2          # the issue's sizes
    python benchmarks/perf/metrics.py --quick              # a quarter of the stimuli
    python benchmarks/perf/metrics.py --partition --scale 0.25   # variance partitioning vs ridge

``--partition`` times variance partitioning (two feature spaces: each alone with ridge, jointly with banded
ridge over 5 band weightings, all with 26 penalties, 10 folds, per-bin designs) against one ridge fit per
space on the same data, for the full temporal problem (5760 stimuli, 1000 features per space and bin, 296
sites, 25 bins) scaled by ``--scale`` in stimuli, features and sites.

Problem (full size): 5760 stimuli; 6 layers x 17 steps = 102 model representations of 1000 features
(ReLU-like, non-zero means); neural repetition means of 2 regions (128 V4 and 168 IT sites, 296 in all) x 25
bins = 50 neural representations. Output: the 102 x 50 tables of RSA (cosine and Pearson of
correlation-distance RDMs) and of linear CKA (biased and debiased), from
:func:`neurofit.metrics.grid.compare_grid` (float32 Gram GEMMs, float64 sums). Features are generated
before the clock starts. The load average is printed beside the time: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from neurofit.metrics.grid import compare_grid


def partition(scale: float) -> None:
    from neurofit.metrics.partition import variance_partition
    from neurofit.regression.crossval import ridge_cross_validated

    n, p, q, nb, folds = int(5760 * scale), int(1000 * scale), int(296 * scale), 25, 10
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(nb, n, 32, generator=g, dtype=torch.float64)
    a = latent @ torch.randn(32, p, generator=g, dtype=torch.float64) + torch.randn(nb, n, p, generator=g,
                                                                                     dtype=torch.float64)
    b = latent[..., :16] @ torch.randn(16, p, generator=g, dtype=torch.float64) + torch.randn(
        nb, n, p, generator=g, dtype=torch.float64)
    y = latent @ torch.randn(32, q, generator=g, dtype=torch.float64) + 3 * torch.randn(nb, n, q, generator=g,
                                                                                          dtype=torch.float64)
    test = torch.arange(n)[None] % folds == torch.arange(folds)[:, None]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    for x in (a, b):
        ridge_cross_validated(x, y, ~test, test)
    ridge = time.perf_counter() - t0
    t0 = time.perf_counter()
    variance_partition({"a": a, "b": b}, y, (~test).numpy(), test.numpy())
    part = time.perf_counter() - t0
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {n} stimuli, {p} features per space, "
          f"{q} sites x {nb} bins, {folds} folds: one ridge fit per space {ridge:.1f} s wall (both spaces), "
          f"variance partition {part:.1f} s = {part / ridge:.1f}x; load average {load:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after ({os.cpu_count()} CPUs)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the stimuli")
    parser.add_argument("--stimuli", type=int, default=5760, help="number of stimuli (default: HvM's 5760)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--partition", action="store_true", help="time variance partitioning instead")
    parser.add_argument("--scale", type=float, default=1.0, help="--partition: fraction of the full sizes")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    if args.partition:
        partition(args.scale)
        return
    n = 1440 if args.quick else args.stimuli
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(n, 64, generator=g)
    model = [torch.relu(latent @ torch.randn(64, 1000, generator=g) / 8 + 0.2) for _ in range(6 * 17)]
    neural = [latent @ torch.randn(64, s, generator=g) / 8 + torch.randn(n, s, generator=g)
              for s in [128] * 25 + [168] * 25]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    c0 = time.process_time()
    out = compare_grid(model, neural, block=args.block)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"torch {torch.__version__}, {args.threads} threads, {n} stimuli, {len(model)} model x {len(neural)} "
          f"neural representations: RSA (cosine, corr) + CKA (linear, debiased) in {wall:.1f} s wall, "
          f"{cpu:.1f} s CPU; load average {load:.1f} before, {os.getloadavg()[0]:.1f} after "
          f"({os.cpu_count()} CPUs); median corr {float(torch.as_tensor(out.corr).median()):.3f}")


if __name__ == "__main__":
    main()
