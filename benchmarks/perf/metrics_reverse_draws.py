"""Reverse predictivity's stimulus bootstrap: resampled held-out predictions vs refitting per draw (CPU seconds).

Usage::

    python benchmarks/perf/metrics_reverse_draws.py --stimuli 1000 --sites 100 --units 200 --bins 2
    python benchmarks/perf/metrics_reverse_draws.py --stimuli 300 --refit-draws 100 --widths   # + interval widths
    python benchmarks/perf/metrics_reverse_draws.py --stimuli 5760 --units 1000 --bins 25 --draws-only

Sides, each on one thread, CPU seconds (``time.process_time``), median of ``--rounds``:

* ``plain``: :func:`neurofit.metrics.reverse.reverse_predictivity` without draws (the score and its ceiling);
* ``draws``: the same with ``--draws`` stimulus draws (held-out predictions resampled: the extra GEMMs);
* ``refit``: one refit draw, the kernel rerun on the resampled stimuli with every copy of a stimulus kept in
  its original fold (``1 + 2 * halvings`` cross-validated fits); ``x draws`` is what refitting would cost.

``--widths`` also runs ``--refit-draws`` refit draws and reports the standard deviation over draws of the
median ceiled score, refit vs resampled predictions (what the conditional-on-the-fits interval leaves out).
The problem: a latent of 8 dims drives ``--sites`` sites (6 repetitions, noise SD 1.5) and ``--units`` units
(noise SD 1), ``--bins`` bins, 10 folds, PLS with 25 components, ``--halvings`` halvings for the ceiling.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from neurofit.metrics.reverse import reverse_predictivity
from neurofit.metrics.rsa import bootstrap_patterns


def problem(n: int, sites: int, units: int, bins: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 8))
    trials = (latent @ rng.normal(size=(8, sites)))[:, None, :, None] + 1.5 * rng.normal(size=(n, 6, sites, bins))
    model = np.stack([latent @ rng.normal(size=(8, units)) + rng.normal(size=(n, units)) for _ in range(bins)])
    test = np.arange(n)[None] % 10 == np.arange(10)[:, None]
    return trials, model, ~test, test


def cpu(fn) -> float:
    start = time.process_time()
    fn()
    return time.process_time() - start


def refit(trials, model, train, test, idx, halvings):
    """One refit draw: the kernel on the drawn stimuli, copies of a stimulus in its original fold."""
    return reverse_predictivity(trials[idx], model[:, idx], train[:, idx], test[:, idx], n_splits=halvings, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stimuli", type=int, default=1000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--units", type=int, default=200)
    parser.add_argument("--bins", type=int, default=2)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--halvings", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--widths", action="store_true")
    parser.add_argument("--refit-draws", type=int, default=100)
    parser.add_argument("--draws-only", action="store_true",
                        help="time only the draws' own work: (1 + halvings) x bins resampled_pearson calls")
    args = parser.parse_args()
    torch.set_num_threads(1)
    trials, model, train, test = problem(args.stimuli, args.sites, args.units, args.bins)
    index = bootstrap_patterns(args.stimuli, args.draws, seed=0)
    if args.draws_only:
        from neurofit.metrics.reverse import draw_weights, resampled_pearson

        x, y = model[0], model[0] + np.random.default_rng(1).normal(size=model[0].shape)
        calls = (1 + args.halvings) * args.bins  # the score's r, then one per halving

        def work():
            weights = draw_weights(index, args.stimuli)
            for _ in range(calls):
                resampled_pearson(x, y, weights)

        seconds = statistics.median(cpu(work) for _ in range(args.rounds))
        print(f"draws alone: {calls} x resampled_pearson ({args.draws} draws x {args.stimuli} stimuli x {args.units} "
              f"units) = {seconds:.3f} CPU s, median of {args.rounds}, one thread")
        return
    kw = dict(n_splits=args.halvings, seed=0)
    times = {"plain": [], "draws": [], "refit": []}
    for _ in range(args.rounds):
        times["plain"].append(cpu(lambda: reverse_predictivity(trials, model, train, test, **kw)))
        times["draws"].append(cpu(lambda: reverse_predictivity(trials, model, train, test, draws=index, **kw)))
        times["refit"].append(cpu(lambda: refit(trials, model, train, test, index[0], args.halvings)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"problem: {args.stimuli} stimuli x {args.sites} sites -> {args.units} units, {args.bins} bins, 10 folds, "
          f"{args.halvings} halvings; {args.draws} draws; CPU s, median of {args.rounds}, one thread")
    print(f"  plain (no draws)          {med['plain']:8.3f}")
    print(f"  with draws (resampled)    {med['draws']:8.3f}   draws alone {med['draws'] - med['plain']:8.3f} "
          f"({(med['draws'] - med['plain']) / med['plain']:.2f}x plain)")
    print(f"  one refit draw            {med['refit']:8.3f}   x {args.draws} draws = {args.draws * med['refit']:8.1f} "
          f"({args.draws * med['refit'] / max(med['draws'] - med['plain'], 1e-9):.0f}x the resampled draws)")
    if args.widths:
        res = reverse_predictivity(trials, model, train, test, draws=index[:args.refit_draws], **kw)
        refits = np.array([refit(trials, model, train, test, i, args.halvings).median()["ceiled"]
                           for i in index[:args.refit_draws]])
        resampled_sd = np.round(res.draws["ceiled"].std(0, ddof=1), 5).tolist()
        refit_sd = np.round(refits.std(0, ddof=1), 5).tolist()
        print(f"  SD over {args.refit_draws} draws of the median ceiled score per bin: resampled predictions "
              f"{resampled_sd}, refit {refit_sd}")


if __name__ == "__main__":
    main()
