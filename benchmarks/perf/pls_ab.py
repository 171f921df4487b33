"""Interleaved A/B of the exact PLS engine between two source trees, each run in its own process, one thread.

Usage (from the repository root)::

    python benchmarks/perf/pls_ab.py --rounds 5 --task fit_i --dtype float32 A_TREE B_TREE
    python benchmarks/perf/pls_ab.py --rounds 3 --task cv B_TREE@PLS_SUBSPACE=60 B_TREE@PLS_SUBSPACE=6

A tree is a directory holding ``neurofit/`` (e.g. a ``git worktree add --detach /tmp/base <commit>``),
optionally followed by ``@NAME=VALUE,...``: environment variables that set module constants of
``neurofit.regression.pls`` (``PLS_SUBSPACE``, ``PLS_BLOCK``, ``PLS_EIGH_BELOW``) in that process. Tasks:
``fit_i`` / ``fit_ii``: one 25-component fit of regime (i) / (ii) of ``regression.py`` (n 2880, p 1000,
q 296, seed 0); ``cv``: ``pls_cross_validated`` 10-fold on 5760 x 1000 x 296 (regime (i)'s generator).
Each process warms up on a slice, then reports the least CPU time (``time.process_time``) of 3 runs; rounds
alternate the order A, B / B, A; medians and the median per-round ratio A / B are printed. CPU time and
ratios, not wall time, because the machine these were measured on is shared.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch


def one(task: str, dtype_name: str) -> float:
    import neurofit.regression.pls as pls
    from neurofit.regression.crossval import pls_cross_validated

    for name in ("SUBSPACE", "BLOCK", "EIGH_BELOW"):
        if os.environ.get("PLS_" + name):
            setattr(pls, name, int(os.environ["PLS_" + name]))
    torch.set_num_threads(1)
    dt = getattr(torch, dtype_name)
    rng = np.random.default_rng(0)
    if task.startswith("fit"):
        n, p, q = 2880, 1000, 296
        X1 = rng.normal(size=(n, p))
        Y1 = X1 @ rng.normal(size=(p, q)) / 30 + rng.normal(size=(n, q))
        Z = rng.normal(size=(n, 50))
        X2 = Z @ rng.normal(size=(50, p)) + rng.normal(size=(n, p))
        Y2 = Z @ rng.normal(size=(50, q)) + rng.normal(size=(n, q))
        X, Y = (X1, Y1) if task == "fit_i" else (X2, Y2)
        Xt, Yt = torch.as_tensor(X, dtype=dt), torch.as_tensor(Y, dtype=dt)
        pls.PLS(25, device="cpu", dtype=dt).fit(Xt[:300], Yt[:300])

        def run() -> None:
            pls.PLS(25, device="cpu", dtype=dt).fit(Xt, Yt)
    else:
        n, p, q = 5760, 1000, 296
        X = rng.normal(size=(n, p))
        Y = X @ rng.normal(size=(p, q)) / 30 + rng.normal(size=(n, q))
        Xt, Yt = torch.as_tensor(X, dtype=dt)[None], torch.as_tensor(Y, dtype=dt)[None]
        test = torch.arange(n)[None] % 10 == torch.arange(10)[:, None]
        pls_cross_validated(Xt[:, :600], Yt[:, :600], ~test[:, :600], test[:, :600], 25)

        def run() -> None:
            pls_cross_validated(Xt, Yt, ~test, test, 25)
    best = np.inf
    for _ in range(3):
        t0 = time.process_time()
        run()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("trees", nargs="*")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--task", choices=("fit_i", "fit_ii", "cv"), default="fit_i")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(one(args.task, args.dtype))
        return
    sides = {}
    for name, spec in zip("AB", args.trees):
        path, _, extra = spec.partition("@")
        sides[name] = (path, dict(kv.split("=") for kv in extra.split(",") if kv))
    times: dict[str, list[float]] = {"A": [], "B": []}
    for r in range(args.rounds):
        for name in ("A", "B") if r % 2 == 0 else ("B", "A"):
            path, extra = sides[name]
            env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", **extra)
            out = subprocess.run([sys.executable, __file__, "--one", "--task", args.task, "--dtype", args.dtype],
                                 env=env, capture_output=True, text=True, check=True).stdout
            times[name].append(float(out.split()[-1]))
    a, b = statistics.median(times["A"]), statistics.median(times["B"])
    ratio = statistics.median(x / y for x, y in zip(times["A"], times["B"]))
    print(f"{args.task} {args.dtype}: A {a * 1e3:.1f} ms CPU, B {b * 1e3:.1f} ms CPU (medians of {args.rounds}), "
          f"A / B per round, median {ratio:.2f}; A {[round(x * 1e3) for x in times['A']]}, "
          f"B {[round(x * 1e3) for x in times['B']]}")


if __name__ == "__main__":
    main()
