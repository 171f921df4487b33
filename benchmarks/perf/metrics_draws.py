"""Stimulus-bootstrap draws of RSA and CKA: from the full-stimulus matrices (new) vs recomputed per draw (old).

Usage::

    python benchmarks/perf/metrics_draws.py --rounds 3          # the demo's IT size, 20 draws
    python benchmarks/perf/metrics_draws.py --draws 100 --check  # a benchmark's default draws, values compared

Problem (default: the scored stimuli of the demo's synthetic-ventral IT benchmark): ``--stimuli`` 614 stimuli
x ``--reps`` 20 repetitions x ``--sites`` 80 sites x ``--bins`` 25 bins of Poisson counts driven by a latent,
model features (``--features`` 1000 per bin, ReLU of the latent plus noise), ``--draws`` stimulus draws
(:func:`neurofit.metrics.rsa.bootstrap_patterns`). Sides, each run in a fresh process (``--side``), order
alternating between rounds; each prints its process's CPU seconds (``time.process_time``: all threads) and
wall seconds:

* ``rsa-old`` / ``rsa-new``: :func:`neurofit.metrics.rsa.rsa_over_time` (Spearman, 5 repetition groups) with the
  draws, minus the same call without draws in the same process (``base``): the draws alone. ``old`` compares
  subsampled RDMs in every draw (the path before :mod:`neurofit.metrics.draws`, forced by patching
  ``rsa_draws`` away), ``new`` weights the full RDMs' pairs by the draws' counts;
* ``cka-old`` / ``cka-new``: :func:`neurofit.metrics.cka.cka_over_time` of every drawn trial set (debiased,
  10 halvings) vs :func:`neurofit.metrics.draws.cka_draws`.

``--check`` compares the draws of old and new (max absolute difference). The 1-minute load average is printed
beside each time: the machine may be shared (CPU seconds are the comparable figure).
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

SIDES = ("rsa-old", "rsa-new", "cka-old", "cka-new")


def problem(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    latent = rng.normal(size=(args.stimuli, 16))
    gain = np.sin(np.linspace(0, np.pi, args.bins))  # a response that rises and falls over the bins
    rates = np.exp(0.3 * (latent @ rng.normal(size=(16, args.sites)))[..., None] * gain - 1.0)
    trials = rng.poisson(rates[:, None] * np.ones((1, args.reps, 1, 1))).astype(np.float64)
    model = np.maximum(latent @ rng.normal(size=(16, args.features)) / 4 + 0.2, 0)[None] * (0.2 + gain)[:, None, None]
    model = model + 0.05 * rng.normal(size=model.shape)
    return trials, model


def run_side(args: argparse.Namespace) -> None:
    from neurofit.metrics import rsa
    from neurofit.metrics.cka import cka_over_time
    from neurofit.metrics.draws import cka_draws

    torch.set_num_threads(args.threads)
    trials, model = problem(args)
    indices = rsa.bootstrap_patterns(args.stimuli, args.draws, 0)
    load = os.getloadavg()[0]
    metric, side = args.side.split("-")
    base = 0.0
    if metric == "rsa":
        if side == "old":
            rsa.rsa_draws = lambda *a, **k: None  # every draw: subsampled RDMs, ranked and compared
        c0 = time.process_time()
        rsa.rsa_over_time(trials, model, n_bootstrap=0)
        base = time.process_time() - c0
        c0, t0 = time.process_time(), time.perf_counter()
        res = rsa.rsa_over_time(trials, model, n_bootstrap=args.draws)
        cpu, wall = time.process_time() - c0 - base, time.perf_counter() - t0
        values = np.stack([res.score_draws, res.ceiled_draws])
    else:
        kw = dict(debiased=True, n_splits=10, seed=0)
        c0, t0 = time.process_time(), time.perf_counter()
        if side == "old":
            drawn = [cka_over_time(trials[i], model[:, i], **kw) for i in indices]
            values = np.stack([np.stack([d[k] for d in drawn]) for k in ("score", "ceiling", "ceiled")])
        else:
            out = cka_draws(trials, model, indices, **kw)
            values = np.stack([out[k] for k in ("score", "ceiling", "ceiled")])
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    if args.save:
        np.save(args.save, values)
    print(json.dumps({"side": args.side, "cpu": cpu, "wall": wall, "base_cpu": base,
                      "load": [load, os.getloadavg()[0]]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stimuli", type=int, default=614)
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--sites", type=int, default=80)
    parser.add_argument("--bins", type=int, default=25)
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sides", nargs="+", default=list(SIDES), choices=SIDES)
    parser.add_argument("--check", action="store_true", help="compare the draws of old and new")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        run_side(args)
        return
    size = [f"--{k}={getattr(args, k)}" for k in ("stimuli", "reps", "sites", "bins", "features", "draws", "threads")]
    times: dict[str, list[dict]] = {s: [] for s in args.sides}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side in (args.sides if r % 2 == 0 else args.sides[::-1]):
                out = subprocess.run([sys.executable, __file__, "--side", side, "--save", f"{tmp}/{side}.npy", *size],
                                     check=True, capture_output=True, text=True).stdout
                times[side].append(json.loads(out.strip().splitlines()[-1]))
                print(out.strip(), flush=True)
        print(f"{args.stimuli} stimuli x {args.reps} repetitions x {args.sites} sites x {args.bins} bins, "
              f"{args.features} features, {args.draws} draws, {args.threads} thread(s), {args.rounds} round(s), "
              f"median CPU seconds of the draws:")
        for metric in ("rsa", "cka"):
            old, new = (times.get(f"{metric}-{s}") for s in ("old", "new"))
            if old and new:
                o, n = (statistics.median(t["cpu"] for t in x) for x in (old, new))
                line = f"  {metric}: old {o:.1f} s, new {n:.2f} s = {o / n:.0f}x less"
                if args.check:
                    a, b = (np.load(f"{tmp}/{metric}-{s}.npy") for s in ("old", "new"))
                    same_nan = bool((np.isnan(a) == np.isnan(b)).all())
                    line += f"; max |new - old| {np.nanmax(np.abs(a - b)):.1e}, NaN in the same places: {same_nan}"
                print(line)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main()
