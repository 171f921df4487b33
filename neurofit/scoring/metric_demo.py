"""``neurofit demo --metrics``: every metric for the demo's shipped feedforward and recurrent models.

The demo's two shipped checkpoints (:func:`neurofit.scoring.demo.demo_models`) are scored on the IT benchmark of
the embedded synthetic-ventral dataset with each metric (the same data, commitment split and time map; one
activation pass, cached), and one line per metric and model gives the mean over the reliable bins of the
per-bin ceiled score with its 95% CI, then B - A for the recurrent model against the feedforward reference.
The ScoreSets are written to the output folder, so ``neurofit report`` draws them (metric overview and
variance-partitioning figures).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from neurofit.errors import NeurofitError
from neurofit.scoring.benchmark import METRICS

BENCHMARK = "synthetic-ventral-it-temporal"
DEMO_METRICS = ("pls", "rsa", "cka", "reverse_pls", "partition")
# few stimulus draws: the demo shows every metric in minutes; a benchmark's [metric] n_bootstrap sets more
DEMO_DRAWS = 20


def parse_metrics(text: str | Sequence[str]) -> list[str]:
    """``"all"`` or comma-separated metric names (or a list of them), checked.

    Example
    -------
    >>> parse_metrics("all")
    ['pls', 'rsa', 'cka', 'reverse_pls', 'partition']
    >>> parse_metrics("rsa,cka")
    ['rsa', 'cka']
    """
    names = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    if names == ["all"]:
        return list(DEMO_METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise NeurofitError(f"unknown metric {unknown[0] if unknown else text!r}; use 'all' or some of "
                            f"{', '.join(METRICS)}")
    return names


def metrics_demo(
    metrics: str | Sequence[str] = "all",
    out_dir: str | os.PathLike[str] = "neurofit-demo",
    *,
    n_bootstrap: int = DEMO_DRAWS,
    benchmark: Any = BENCHMARK,
    progress: bool | None = None,
    stream: TextIO | None = None,
    **score_options: Any,
) -> dict[str, dict[str, Any]]:
    """Score the demo's feedforward and recurrent models with every metric; print one line per metric.

    Parameters
    ----------
    metrics : "all", comma-separated names or a list (:data:`~neurofit.scoring.benchmark.METRICS`)
    out_dir : folder for the ScoreSets (``<role>-<metric>.nc``)
    n_bootstrap : stimulus draws of RSA and CKA (and the aggregate bootstrap)
    benchmark : the IT benchmark (id, file or Benchmark; default the embedded synthetic-ventral IT benchmark)
    stream : where the lines go (default stdout)

    Returns
    -------
    dict: metric -> {role: ScoreSet}

    Example
    -------
    >>> metrics_demo("rsa,cka", "out/metrics-demo")  # doctest: +SKIP
    """
    from neurofit.scoreset import bin_reliability, common_bins, summarise
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.demo import demo_models
    from neurofit.scoring.score import score

    stream = stream or sys.stdout
    names = parse_metrics(metrics)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bench = load_benchmark(benchmark).replace(metric={"n_bootstrap": n_bootstrap},
                                              aggregate={"n_bootstrap": max(n_bootstrap, 100)})
    models = demo_models()
    print(f"neurofit demo --metrics: {', '.join(f'{role} {name}' for role, name, _ in models)} on {bench.id} "
          f"(synthetic-ventral, IT); per metric: mean over the reliable bins of the ceiled score [95% CI]",
          file=stream)
    results: dict[str, dict[str, Any]] = {}
    for metric in names:
        results[metric] = {}
        for role, name, checkpoint in models:
            results[metric][role] = score(checkpoint or name, bench, metric=metric, progress=progress,
                                          model_id=f"{name} ({role})", out=out / f"{role}-{metric}.nc",
                                          **score_options)
        sets = list(results[metric].values())
        reliability = bin_reliability(sets[0])
        bins = common_bins(sets, "IT", "ceiled", reliability)
        parts = []
        for (_, name, _), ds in zip(models, sets):
            s = summarise(ds, "IT", bins, "ceiled")
            parts.append(f"{name} {s.value:.3f} [{s.low:.3f}, {s.high:.3f}]")
        values = [float(np.nanmean(np.nanmedian(ds["ceiled"].values[:, bins], axis=0))) for ds in sets]
        print(f"{metric:12s} {' | '.join(parts)} | B - A {values[1] - values[0]:+.3f} "
              f"({int(bins.sum())} bins)", file=stream)
        print(f"{'':12s} {sets[0].attrs.get('metric_description') or sets[0].attrs.get('metric')}", file=stream)
    print(f"ScoreSets in {out}/; draw them with: neurofit report {out}/*.nc --out {out}/report", file=stream)
    return results


__all__ = ["metrics_demo", "parse_metrics"]
