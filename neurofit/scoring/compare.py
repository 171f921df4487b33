"""``compare()``: paired, per-bin comparisons of ScoreSets over their shared sites.

The statistics are :func:`neurofit.stats.compare_scoresets` / :func:`~neurofit.stats.compare_many` (Wilcoxon
signed-rank and paired t over sites per region and bin, bootstrap CI of the difference of medians,
Benjamini-Hochberg across all bins of all comparisons); this module loads ScoreSets (files or objects, or
models scored on the spot), labels the result and formats the table.

With more than two ScoreSets, every one after the first is compared with the first (``B - A``, ``C - A``...),
and the correction runs over all comparisons together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurofit.errors import NeurofitError
from neurofit.scoring.score import read_scoreset, write_scoreset


def _load(item: xr.Dataset | str | os.PathLike[str]) -> xr.Dataset:
    if isinstance(item, xr.Dataset):
        return item
    return read_scoreset(item)


def compare(
    *scoresets: xr.Dataset | str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    variable: str = "ceiled",
    method: str = "fdr_bh",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
) -> xr.Dataset:
    """Compare ScoreSets site by site and bin by bin; the first is the reference.

    Parameters
    ----------
    *scoresets : Dataset or path
        Two or more ScoreSets of the same benchmark (NetCDF files or objects).
    labels : sequence of str, optional
        A name per ScoreSet (default: each one's ``model_id``; repeated ids get ``#2``, ``#3``...).
    variable : str
        Per-site score compared (``"ceiled"`` or ``"r"``).
    method, alpha : str, float
        Multiple-comparison correction across every (comparison, region, bin) and its level.
    n_boot, seed : int
        Bootstrap draws and seed for the CI of the difference of medians.
    out : path, optional
        Write the result as NetCDF (atomically).

    Returns
    -------
    xarray.Dataset
        Dims ``(comparison, region, time_bin)``: ``median_a`` (the reference), ``median_b``,
        ``median_difference`` (``b - a``), ``ci_low``, ``ci_high``, ``wilcoxon_p``, ``t_p``, ``q``,
        ``significant`` and the test statistics; coords ``model_a``, ``model_b`` along ``comparison``.

    Example
    -------
    >>> result = compare("feedforward.nc", "recurrent.nc")  # doctest: +SKIP
    >>> result.significant.sel(comparison=0)  # doctest: +SKIP
    """
    from neurofit.stats import compare_many

    if len(scoresets) < 2:
        raise NeurofitError(f"compare needs at least two ScoreSets, got {len(scoresets)}")
    loaded = [_load(item) for item in scoresets]
    names = list(labels) if labels is not None else _labels(loaded)
    if len(names) != len(loaded):
        raise NeurofitError(f"{len(names)} labels for {len(loaded)} ScoreSets")
    benchmarks = {str(ds.attrs.get("benchmark", "")) for ds in loaded}
    if len(benchmarks) > 1:
        raise NeurofitError(f"the ScoreSets come from different benchmarks ({', '.join(sorted(benchmarks))}); "
                            "compare ScoreSets of one benchmark")
    reference = loaded[0]
    # compare_scoresets reports a - b; the table reads better as "other minus reference"
    pairs = [(other, reference) for other in loaded[1:]]
    results = compare_many(pairs, method=method, alpha=alpha, variable=variable, n_boot=n_boot, seed=seed)
    renamed = []
    for res in results:
        res = res.rename({"median_a": "median_b_", "median_b": "median_a"}).rename({"median_b_": "median_b"})
        res.attrs = {}
        renamed.append(res)
    combined = xr.concat(renamed, dim="comparison", coords="minimal", compat="override", combine_attrs="drop")
    combined = combined.assign_coords(
        comparison=("comparison", np.arange(len(results))),
        model_a=("comparison", np.array([names[0]] * len(results))),
        model_b=("comparison", np.array(names[1:])),
    )
    attrs = dict(results[0].attrs)
    attrs.update({
        "model_a": names[0],
        "model_b": ", ".join(names[1:]),
        "difference": "median_b - median_a: each model minus the reference (the first ScoreSet), medians over "
                      "the sites valid in both, per region and bin",
        "benchmark": next(iter(benchmarks)),
        "scoresets": [str(ds.attrs.get("model_id", "")) for ds in loaded],
        "weights_sha256": [str(ds.attrs.get("weights_sha256", "")) for ds in loaded],
    })
    attrs.pop("benchmark_a", None)
    attrs.pop("benchmark_b", None)
    # compare_scoresets counted its own (a, b) = (other, reference)
    attrs["n_sites_only_a"], attrs["n_sites_only_b"] = attrs.get("n_sites_only_b"), attrs.get("n_sites_only_a")
    combined.attrs = attrs
    if out is not None:
        write_scoreset(combined, out)  # NetCDF, atomically, nested attrs JSON-encoded as for ScoreSets
    return combined


def _labels(scoresets: Sequence[xr.Dataset]) -> list[str]:
    out: list[str] = []
    for k, ds in enumerate(scoresets):
        name = str(ds.attrs.get("model_id") or f"model{k}")
        candidate, n = name, 2
        while candidate in out:
            candidate, n = f"{name}#{n}", n + 1
        out.append(candidate)
    return out


def comparison_table(result: xr.Dataset) -> str:
    """One row per comparison, region and bin: medians, difference with CI, p values, q and a mark.

    ``*`` marks a bin where the difference is significant after the correction (``q < alpha``).

    Example
    -------
    >>> print(comparison_table(compare(*_example_pair(), n_boot=50)).splitlines()[0])
    comparison     region  window (ms)  median A  median B  B - A [95% CI]             Wilcoxon p  q (fdr_bh)
    """
    method = str(result.attrs.get("correction", "q"))
    header = ("comparison", "region", "window (ms)", "median A", "median B", "B - A [95% CI]", "Wilcoxon p",
              f"q ({method})")
    rows = [header]
    starts = result["time_bin_start"].values
    ends = result["time_bin_end"].values
    region_labels = [str(v) for v in result["region"].values]

    def f(v: float, spec: str = ".3f") -> str:
        return "nan" if not np.isfinite(v) else format(v, spec)

    for c in range(result.sizes["comparison"]):
        name = f"{result['model_b'].values[c]} vs {result['model_a'].values[c]}"
        for k, region in enumerate(region_labels):
            for b in range(len(starts)):
                cell = result.isel(comparison=c, region=k, time_bin=b)
                diff = (f"{f(float(cell.median_difference))} [{f(float(cell.ci_low))}, {f(float(cell.ci_high))}]"
                        + (" *" if bool(cell.significant) else ""))
                rows.append((name, region, f"{starts[b]:g}-{ends[b]:g}", f(float(cell.median_a)),
                             f(float(cell.median_b)), diff, f(float(cell.wilcoxon_p), ".2g"),
                             f(float(cell.q), ".2g")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.append(f"* significant after {method} correction across all rows (alpha {result.attrs.get('alpha', 0.05)})")
    return "\n".join(lines)


def recurrence_helps(result: xr.Dataset, comparison: int = 0) -> list[tuple[str, float, float, float]]:
    """The (region, bin start, bin end, difference) where model B is significantly better than model A.

    Example
    -------
    >>> recurrence_helps(compare(*_example_pair(), n_boot=50))[:1]
    [('IT', 0.0, 10.0, 0.2...)]
    """
    out = []
    cmp = result.isel(comparison=comparison)
    for k, region in enumerate(str(v) for v in cmp["region"].values):
        for b in range(cmp.sizes["time_bin"]):
            cell = cmp.isel(region=k, time_bin=b)
            if bool(cell.significant) and float(cell.median_difference) > 0:
                out.append((region, float(cmp["time_bin_start"].values[b]), float(cmp["time_bin_end"].values[b]),
                            float(cell.median_difference)))
    return out


def _example_pair() -> tuple[xr.Dataset, xr.Dataset]:
    rng = np.random.default_rng(0)

    def toy(shift: float, name: str) -> xr.Dataset:
        return xr.Dataset({"ceiled": (("neuroid", "time_bin"), rng.normal(0.5 + shift, 0.05, (30, 2)))},
                          coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(30)]),
                                  "region": ("neuroid", ["IT"] * 30),
                                  "time_bin_start": ("time_bin", [0.0, 10.0]),
                                  "time_bin_end": ("time_bin", [10.0, 20.0])},
                          attrs={"model_id": name, "benchmark": "toy"})

    return toy(0.0, "feedforward"), toy(0.2, "recurrent")


def compare_models(models: Sequence[Any], benchmark: str, *, out_dir: str | os.PathLike[str] | None = None,
                   **score_options: Any) -> xr.Dataset:
    """Score each model on ``benchmark`` (see :func:`neurofit.scoring.score.score`) and compare them.

    Example
    -------
    >>> compare_models(["cornet_z", "cornet_rt"], "synthetic-ventral-it-temporal")  # doctest: +SKIP
    """
    from neurofit.scoring.score import score

    scoresets = []
    for k, model in enumerate(models):
        out = None if out_dir is None else Path(out_dir) / f"{k}-{Path(str(model)).stem}.nc"
        scoresets.append(score(model, benchmark, out=out, **score_options))
    return compare(*scoresets)
