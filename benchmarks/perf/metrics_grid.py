"""The RSA / CKA grid against its peers, each in its own process, interleaved rounds, medians.

Usage::

    python benchmarks/perf/metrics_grid.py --stimuli 5760 --rounds 3            # new grid vs its GEMM floor
    python benchmarks/perf/metrics_grid.py --stimuli 1440 --old 4c4770f          # + the grid of a git ref
    python benchmarks/perf/metrics_grid.py --stimuli 480 --sides new rsa --rounds 1  # + the RSA grid (Spearman)

Problem (as ``benchmarks/perf/metrics.py``): ``--stimuli`` stimuli; 6 layers x 17 steps = 102 model
representations of 1000 features (ReLU-like, non-zero means); 2 regions (128 V4 and 168 IT sites) x 25 bins =
50 neural representations. Sides, each run as ``python metrics_grid.py --side SIDE`` in a fresh process:

* ``new``: :func:`neurofit.metrics.grid.compare_grid` of this tree (all four tables);
* ``old``: the same function of ``--old`` (its ``neurofit/metrics/grid.py`` from git, loaded from a file);
* ``rsa``: :func:`neurofit.metrics.rsa_grid.rsa_grid`, the RSA grid of ``score(..., metric="rsa", grid=True)``,
  by ``--rsa-method`` (default Spearman: whole RDMs, ranked) on trials of 5 repetitions per region and bin
  (the same latent as the neural side, 5 repetition groups): 102 model x 2 regions x 25 bins x 5 groups;
* ``floor``: only the GEMMs the grid cannot avoid, on already-centred features, with the same library and
  threads: each representation's Gram blocks (rows ``[a, a + block)`` x columns ``[a, n)``, i.e. half of
  every Gram: ``sum_r n^2 p_r`` flop) and the two model x neural cross products of the blocks. Nothing
  else: no preparation, no corrections, no sums.

Features are generated before the clock starts. Each line gives wall and CPU seconds of the side's process
and the 1-minute load average before and after (the machine may be shared: compare sides of the same
round). ``--check`` compares the tables of ``new`` and ``old`` (max absolute difference).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]


def features(n: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    latent = torch.randn(n, 64, generator=g)
    model = [torch.relu(latent @ torch.randn(64, 1000, generator=g) / 8 + 0.2) for _ in range(6 * 17)]
    neural = [latent @ torch.randn(64, s, generator=g) / 8 + torch.randn(n, s, generator=g)
              for s in [128] * 25 + [168] * 25]
    return model, neural


def trials(n: int, reps: int = 5) -> list[np.ndarray]:
    # each region's trials (stimuli, repetitions, sites, bins), float64 as the RSA path reads them
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(n, 64, generator=g)
    out = []
    for s in (128, 168):
        signal = torch.stack([latent @ torch.randn(64, s, generator=g) / 8 for _ in range(25)], dim=-1)
        out.append((signal[:, None] + torch.randn(n, reps, s, 25, generator=g)).double().numpy())
    return out


def centred(model: list[torch.Tensor], neural: list[torch.Tensor]) -> list[torch.Tensor]:
    widths = sorted({y.shape[1] for y in neural})
    return [torch.stack([x - x.mean(0) for x in side])
            for side in [model] + [[y for y in neural if y.shape[1] == w] for w in widths]]


def floor(xs: list[torch.Tensor], block: int) -> None:
    from neurofit.metrics.grid import _nt
    from neurofit.regression.parallel import map_chunks

    n = xs[0].shape[1]

    def one(a: int) -> None:
        b = min(n, a + block)
        flats = []
        for group in xs:
            flats.append(torch.stack([_nt(x[a:b], x[a:]) for x in group]).reshape(group.shape[0], -1))
        neural_flat = torch.cat(flats[1:])
        _nt(flats[0], neural_flat)
        _nt(flats[0], neural_flat)

    map_chunks(one, list(range(0, n, block)), torch.get_num_threads())


def side(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    if args.side == "old":
        import importlib.util

        spec = importlib.util.spec_from_file_location("old_grid", args.old_file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
        compare_grid = module.compare_grid
    else:
        from neurofit.metrics.grid import compare_grid
    model, neural = features(args.stimuli)
    if args.side == "rsa":
        from neurofit.metrics.rsa_grid import rsa_grid

        del neural
        region_trials = trials(args.stimuli)
    if args.side == "floor":
        xs = centred(model, neural)
        del model, neural
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    if args.side == "floor":
        floor(xs, args.block)
    elif args.side == "rsa":
        rsa_grid(model, region_trials, method=args.rsa_method)
    else:
        out = compare_grid(model, neural, block=args.block)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if args.side not in ("floor", "rsa") and args.save:
        np.savez(args.save, **{k: getattr(out, k) for k in ("cosine", "corr", "cka", "cka_debiased")})
    print(json.dumps({"side": args.side, "wall": wall, "cpu": cpu, "load_before": load,
                      "load_after": os.getloadavg()[0],
                      "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stimuli", type=int, default=5760)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--block", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", help="git ref whose neurofit/metrics/grid.py is the 'old' side")
    parser.add_argument("--sides", nargs="+", default=None, help="default: new floor (+ old with --old)")
    parser.add_argument("--check", action="store_true", help="max |new - old| over the tables")
    parser.add_argument("--rsa-method", default="spearman", help="comparison of the rsa side (default spearman)")
    parser.add_argument("--side", help=argparse.SUPPRESS)
    parser.add_argument("--old-file", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args)
        return
    sides = args.sides or (["new", "floor"] + (["old"] if args.old else []))
    tmp = Path(tempfile.mkdtemp(prefix="nf-grid-"))
    old_file = tmp / "old_grid.py"
    if "old" in sides:
        old_file.write_text(subprocess.run(["git", "-C", str(ROOT), "show", f"{args.old}:neurofit/metrics/grid.py"],
                                           check=True, capture_output=True, text=True).stdout)
    results: dict[str, list[dict]] = {s: [] for s in sides}
    print(f"torch {torch.__version__}, {args.threads} threads, {args.stimuli} stimuli, 102 model x 50 neural "
          f"representations, block {args.block}, {os.cpu_count()} CPUs")
    for r in range(args.rounds):
        order = sides if r % 2 == 0 else sides[::-1]
        for s in order:
            cmd = [sys.executable, __file__, "--side", s, "--stimuli", str(args.stimuli), "--threads",
                   str(args.threads), "--block", str(args.block), "--old-file", str(old_file),
                   "--rsa-method", args.rsa_method,
                   "--save", str(tmp / f"{s}.npz")]
            line = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout.strip()
            res = json.loads(line.splitlines()[-1])
            results[s].append(res)
            print(f"round {r} {s:5s}: {res['wall']:7.1f} s wall {res['cpu']:7.1f} s CPU, load "
                  f"{res['load_before']:.1f} -> {res['load_after']:.1f}, peak RSS {res['peak_rss_gb']:.2f} GB",
                  flush=True)
    med = {s: (statistics.median(x["wall"] for x in v), statistics.median(x["cpu"] for x in v))
           for s, v in results.items()}
    print("medians: " + "; ".join(f"{s} {w:.1f} s wall / {c:.1f} s CPU" for s, (w, c) in med.items()))
    for s in sides:
        if s != "new" and "new" in med:
            ratios = [a["wall"] / b["wall"] for a, b in zip(results["new"], results[s])]
            cratios = [a["cpu"] / b["cpu"] for a, b in zip(results["new"], results[s])]
            print(f"new / {s}: median per-round ratio {statistics.median(ratios):.2f} wall, "
                  f"{statistics.median(cratios):.2f} CPU")
    if args.check and {"new", "old"} <= set(sides):
        a, b = np.load(tmp / "new.npz"), np.load(tmp / "old.npz")
        print("max |new - old|: " + ", ".join(f"{k} {np.abs(a[k] - b[k]).max():.1e}" for k in a.files))


if __name__ == "__main__":
    main()
