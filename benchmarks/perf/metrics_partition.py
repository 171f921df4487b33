"""Variance partitioning against one ridge fit per space, each in its own process, interleaved, medians.

Usage::

    python benchmarks/perf/metrics_partition.py --scale 0.25 --rounds 3              # new vs ridge
    python benchmarks/perf/metrics_partition.py --scale 0.25 --old 4c4770f --check   # + a git ref's partition
    python benchmarks/perf/metrics_partition.py --components --scale 1               # where one problem's time goes

The full temporal problem (issue 17): 5760 stimuli, two feature spaces of 1000 features per bin (per-bin
designs), 296 sites, 25 bins, 10 folds, float64; ``--scale`` scales stimuli, features and sites. Sides:

* ``ridge``: the reference, :func:`neurofit.regression.crossval.ridge_cross_validated` of each space alone
  (26 penalties, leave-one-out choice per target), both spaces;
* ``new`` / ``old``: :func:`neurofit.metrics.partition.variance_partition` of this tree / of ``--old`` (its
  ``neurofit/metrics/partition.py`` from git): both spaces alone plus banded ridge over the 5 weightings of
  ``simplex_grid(2)`` x 26 penalties.

``--components`` times the pieces of one (fold, bin) problem at the given scale, on one thread: for one
space the centred Gram, its eigendecomposition, the left singular vectors, and the leave-one-out residuals
over all penalties and targets; the same for the joint design of one weighting.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]


def problem(scale: float, nb: int = 25):
    n, p, q, folds = int(5760 * scale), int(1000 * scale), int(296 * scale), 10
    g = torch.Generator().manual_seed(0)
    f64 = torch.float64
    latent = torch.randn(nb, n, 32, generator=g, dtype=f64)
    a = latent @ torch.randn(32, p, generator=g, dtype=f64) + torch.randn(nb, n, p, generator=g, dtype=f64)
    b = latent[..., :16] @ torch.randn(16, p, generator=g, dtype=f64) + torch.randn(nb, n, p, generator=g, dtype=f64)
    y = latent @ torch.randn(32, q, generator=g, dtype=f64) + 3 * torch.randn(nb, n, q, generator=g, dtype=f64)
    test = torch.arange(n)[None] % folds == torch.arange(folds)[:, None]
    return a, b, y, test


def side(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    a, b, y, test = problem(args.scale, args.bins)
    if args.side == "old":
        import importlib.util

        spec = importlib.util.spec_from_file_location("old_partition", args.old_file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        variance_partition = module.variance_partition
    else:
        from neurofit.metrics.partition import variance_partition
    from neurofit.regression.crossval import ridge_cross_validated

    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    if args.side == "ridge":
        for x in (a, b):
            ridge_cross_validated(x, y, ~test, test)
    else:
        part = variance_partition({"a": a, "b": b}, y, (~test).numpy(), test.numpy())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.side != "ridge" and args.save:
        np.savez(args.save, joint=part.r2[("a", "b")], a=part.r2[("a",)], b=part.r2[("b",)])
    print(json.dumps({"side": args.side, "wall": wall, "cpu": cpu, "load_before": load,
                      "load_after": os.getloadavg()[0]}))


def components(scale: float) -> None:
    from neurofit.metrics.partition import _loo_fit, _svd_from_eigh
    from neurofit.regression.ridge import DEFAULT_ALPHAS

    torch.set_num_threads(1)
    a, b, y, test = problem(scale)
    tr = (~test[0]).nonzero()[:, 0]
    alphas = torch.as_tensor(DEFAULT_ALPHAS)
    yc = (y[:1, tr] - y[:1, tr].mean(1, keepdim=True))
    print(f"one (fold, bin) problem: n_train {tr.numel()}, q {y.shape[-1]}, {alphas.numel()} penalties, 1 thread, "
          f"load {os.getloadavg()[0]:.1f}")
    for name, x in (("one space", a[:1, tr]), ("joint (one weighting)", torch.cat([a[:1, tr], b[:1, tr]], -1))):
        xc = x - x.mean(1, keepdim=True)
        times = {}
        c = time.process_time()
        gram = xc.mT @ xc
        times["gram"] = time.process_time() - c
        c = time.process_time()
        evals, vecs = torch.linalg.eigh(gram)
        times["eigh"] = time.process_time() - c
        c = time.process_time()
        keep, s, inv = _svd_from_eigh(evals, vecs, xc.shape[1], xc.shape[2], xc.dtype)
        U = (xc @ vecs) * inv[:, None, :]
        times["U"] = time.process_time() - c
        c = time.process_time()
        _loo_fit(U, s, vecs, yc, alphas)
        times["loo"] = time.process_time() - c
        print(f"{name} (p {x.shape[-1]}): " + ", ".join(f"{k} {v:.2f} s" for k, v in times.items())
              + f"; total {sum(times.values()):.2f} s CPU")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--bins", type=int, default=25, help="time bins (each its own design); the issue's 25")
    parser.add_argument("--old", help="git ref whose neurofit/metrics/partition.py is the 'old' side")
    parser.add_argument("--sides", nargs="+", default=None)
    parser.add_argument("--check", action="store_true", help="max |new - old| of the R^2 tables")
    parser.add_argument("--components", action="store_true")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--old-file", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.components:
        components(args.scale)
        return
    if args.side:
        side(args)
        return
    sides = args.sides or (["ridge", "new"] + (["old"] if args.old else []))
    tmp = Path(tempfile.mkdtemp(prefix="nf-part-"))
    old_file = tmp / "old_partition.py"
    if "old" in sides:
        old_file.write_text(subprocess.run(["git", "-C", str(ROOT), "show",
                                            f"{args.old}:neurofit/metrics/partition.py"],
                                           check=True, capture_output=True, text=True).stdout)
    n, p, q = int(5760 * args.scale), int(1000 * args.scale), int(296 * args.scale)
    print(f"torch {torch.__version__}, {args.threads} threads, {n} stimuli, 2 spaces x {p} features per bin, "
          f"{q} sites x {args.bins} bins, 10 folds, float64, {os.cpu_count()} CPUs")
    results: dict[str, list[dict]] = {s: [] for s in sides}
    for r in range(args.rounds):
        for s in (sides if r % 2 == 0 else sides[::-1]):
            cmd = [sys.executable, __file__, "--side", s, "--scale", str(args.scale), "--threads", str(args.threads),
                   "--bins", str(args.bins),
                   "--old-file", str(old_file), "--save", str(tmp / f"{s}.npz")]
            res = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True,
                                            cwd=ROOT).stdout.strip().splitlines()[-1])
            results[s].append(res)
            print(f"round {r} {s:5s}: {res['wall']:7.1f} s wall {res['cpu']:7.1f} s CPU, load "
                  f"{res['load_before']:.1f} -> {res['load_after']:.1f}", flush=True)
    for s in sides:
        if s != "ridge" and "ridge" in results:
            w = [x["wall"] / y["wall"] for x, y in zip(results[s], results["ridge"])]
            c = [x["cpu"] / y["cpu"] for x, y in zip(results[s], results["ridge"])]
            print(f"{s} / ridge (both spaces): median per-round ratio {statistics.median(w):.2f} wall, "
                  f"{statistics.median(c):.2f} CPU")
    if args.check and {"new", "old"} <= set(sides):
        x, y = np.load(tmp / "new.npz"), np.load(tmp / "old.npz")
        print("max |new - old| of R^2: " + ", ".join(f"{k} {np.abs(x[k] - y[k]).max():.1e}" for k in x.files))


if __name__ == "__main__":
    main()
