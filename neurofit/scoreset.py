"""The ScoreSet: its schema, per-site rules, accessors, reliability rule, file IO, summary table and export.

A ScoreSet (DESIGN.md, "Scoring and benchmarks") is an ``xarray.Dataset``:

* per site and bin, dims ``(neuroid, time_bin)``: ``r`` (Pearson r of held-out predictions), ``ceiling``
  (split-half noise ceiling, NaN where the data have no trial repeats) and ``ceiled`` (the benchmark's rule,
  e.g. r^2/ceiling); ``r_fold`` per fold;
* optional per-site stimulus-bootstrap draws, dims ``(boot, neuroid, time_bin)``: ``r_boot`` and
  ``ceiled_boot`` (every site rescored on the same resampled stimuli in draw ``k``; two ScoreSets whose
  ``stimulus_draws`` attrs are equal were resampled identically, so their draws pair up);
* coords ``neuroid_id`` and ``region`` along ``neuroid``, ``time_bin_start``/``time_bin_end`` (ms after
  onset) along ``time_bin``;
* per-region aggregates on ``(region, time_bin)`` labelled by the ``region_name`` coordinate: ``median_r``,
  ``median_ceiling``, ``median_ceiled`` and their CIs;
* provenance in ``attrs`` (benchmark, model and weights, every setting that changes a number).

A time bin of a region is **reliable** when the lower bound of the 95% CI of its median noise ceiling is
above :data:`RELIABILITY_THRESHOLD` (0.1): the responses then repeat well enough for a ratio to the ceiling to
mean something. Every interval of a ScoreSet, the ceiling's included, follows one rule
(:func:`centred_interval`): the bootstrap percentile interval moved onto its estimate, so no estimate is ever
printed outside its own interval. Unreliable bins are flagged in tables, shaded in figures and left out of summaries and
comparisons by default (:func:`bin_reliability`).

The per-site rules (:func:`site_r`, :func:`site_ceiling`, :func:`site_ceiled`, :func:`region_medians`) are how
every ScoreSet's numbers are made, by :func:`neurofit.scoring.score.score`, its grid and pooled benchmarks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from neurofit.errors import NeurofitError, quiet_nan
from neurofit.regression.ceiling import SingleRepetitionError, brainscore_ceiling, ceil_scores, feve, split_half_ceiling
from neurofit.regression.correlation import pearson_on_valid

if TYPE_CHECKING:
    import pandas as pd

RELIABILITY_THRESHOLD = 0.1
DRAWS_DIM = "boot"
PER_SITE = ("r", "ceiling", "ceiled")


def require(scoreset: xr.Dataset, names: Sequence[str], purpose: str) -> None:
    """Raise a :class:`NeurofitError` naming the first variable of ``names`` that ``scoreset`` lacks.

    Example
    -------
    >>> require(xr.Dataset({"r": ("neuroid", [0.5])}), ["r"], "a figure")
    """
    if not isinstance(scoreset, xr.Dataset):
        raise NeurofitError(f"{purpose} needs ScoreSets (xarray.Dataset), got {type(scoreset).__name__}")
    for name in names:
        if name not in scoreset.variables:
            raise NeurofitError(
                f"{purpose} needs the variable {name!r}, which ScoreSet {label(scoreset)!r} does not have "
                f"(it has {sorted(map(str, scoreset.data_vars))}); score with the option that produces it"
            )


def label(scoreset: xr.Dataset, default: str = "model") -> str:
    """The model's name for legends: ``attrs['model_id']``, else ``default``.

    Example
    -------
    >>> label(xr.Dataset(attrs={"model_id": "blt"}))
    'blt'
    """
    return str(scoreset.attrs.get("model_id") or default)


def site_regions(scoreset: xr.Dataset) -> np.ndarray:
    """The region of every site (the ``region`` coordinate along ``neuroid``), as strings."""
    require(scoreset, ["region"], "reading site regions")
    region = scoreset["region"]
    if region.dims != ("neuroid",):
        raise NeurofitError(f"ScoreSet {label(scoreset)!r}: coordinate 'region' must lie along 'neuroid', "
                            f"it has dims {region.dims}")
    return np.asarray([str(v) for v in region.values], dtype=object)


def aggregate_regions(scoreset: xr.Dataset) -> list[str]:
    """The labels along the ``region`` dim of the per-region aggregates (e.g. ``median_ceiled``).

    The dim may carry its own index, any string coordinate along it, or nothing; in the last case the
    labels are the sorted unique site regions (the order of ``groupby('region')``), which must match its
    length.

    Example
    -------
    >>> ds = xr.Dataset({"median_ceiled": (("region", "time_bin"), np.zeros((2, 1)))},
    ...                 coords={"region": ("neuroid", ["V4", "IT", "IT"])})
    >>> aggregate_regions(ds)
    ['IT', 'V4']
    """
    if "region" not in scoreset.dims:
        raise NeurofitError(f"ScoreSet {label(scoreset)!r} has no 'region' dim (no per-region aggregates)")
    if "region" in scoreset.indexes:
        return [str(v) for v in scoreset.indexes["region"]]
    for coord in scoreset.coords.values():
        if coord.dims == ("region",) and coord.dtype.kind in "USO":
            return [str(v) for v in coord.values]
    labels = sorted({str(v) for v in site_regions(scoreset)})
    if len(labels) != scoreset.sizes["region"]:
        raise NeurofitError(
            f"ScoreSet {label(scoreset)!r}: the 'region' dim has {scoreset.sizes['region']} entries but the sites "
            f"name {len(labels)} regions {labels}; label the dim with a coordinate"
        )
    return labels


def regions(scoreset: xr.Dataset) -> list[str]:
    """The regions of the sites, in order of first appearance.

    Example
    -------
    >>> regions(xr.Dataset(coords={"region": ("neuroid", ["V4", "IT", "V4"])}))
    ['V4', 'IT']
    """
    return [str(v) for v in dict.fromkeys(site_regions(scoreset))]


def time_bins(scoreset: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(time_bin_start, time_bin_end)`` in ms after stimulus onset.

    Example
    -------
    >>> time_bins(xr.Dataset(coords={"time_bin_start": ("time_bin", [0.0]), "time_bin_end": ("time_bin", [10.0])}))
    (array([0.]), array([10.]))
    """
    require(scoreset, ["time_bin_start", "time_bin_end"], "reading time bins")
    return (np.asarray(scoreset["time_bin_start"].values, dtype=np.float64),
            np.asarray(scoreset["time_bin_end"].values, dtype=np.float64))


def region_aggregate(scoreset: xr.Dataset, name: str, region: str) -> np.ndarray:
    """The values of aggregate ``name`` (dims ``(region, time_bin)``) for one region, over time bins."""
    require(scoreset, [name], "reading per-region aggregates")
    labels = aggregate_regions(scoreset)
    if region not in labels:
        raise NeurofitError(f"ScoreSet {label(scoreset)!r} has no region {region!r} in {name!r} (has {labels})")
    return np.asarray(scoreset[name].isel(region=labels.index(region)).transpose("time_bin").values,
                      dtype=np.float64)


def window_mask(scoreset: xr.Dataset, window: tuple[float, float] | None) -> np.ndarray:
    """Boolean mask of the time bins lying inside ``window = (start_ms, end_ms)`` (all bins for ``None``).

    Example
    -------
    >>> ds = xr.Dataset(coords={"time_bin_start": ("time_bin", [0.0, 10.0]),
    ...                         "time_bin_end": ("time_bin", [10.0, 20.0])})
    >>> window_mask(ds, (10, 20)).tolist()
    [False, True]
    """
    start, end = time_bins(scoreset)
    if window is None:
        return np.ones(start.shape, dtype=bool)
    lo, hi = float(window[0]), float(window[1])
    mask = (start >= lo) & (end <= hi)
    if not mask.any():
        raise NeurofitError(
            f"time window {lo:g}-{hi:g} ms holds no whole time bin of ScoreSet {label(scoreset)!r} "
            f"(its bins span {start.min():g}-{end.max():g} ms)"
        )
    return mask


# ------------------------------------------------------------------------------------------------ files
def write_scoreset(scoreset: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write a ScoreSet as NetCDF4 atomically (nested attrs are JSON-encoded and restored on reading).

    Example
    -------
    >>> write_scoreset(scores, "out/cornet_z-it.nc")  # doctest: +SKIP
    """
    from neurofit.data.io import write_netcdf

    return write_netcdf(scoreset, path)


def read_scoreset(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a ScoreSet written by :func:`write_scoreset`; a file that is not one is a one-line error.

    Example
    -------
    >>> scores = read_scoreset("out/cornet_z-it.nc")  # doctest: +SKIP
    """
    from neurofit.data.io import read_dataset

    ds = read_dataset(path)
    if not is_scoreset(ds):
        missing = next(name for name in ("r", "ceiled") if name not in ds.data_vars)
        what = "a comparison (written by neurofit compare)" if "comparison" in ds.dims else "not a ScoreSet"
        raise NeurofitError(f"{path} is {what}: it has no per-site variable {missing!r}")
    return ds


def is_scoreset(ds: xr.Dataset) -> bool:
    """Whether ``ds`` has the per-site variables of a ScoreSet (``r`` and ``ceiled`` on neuroid x time_bin).

    Example
    -------
    >>> is_scoreset(xr.Dataset({"r": (("neuroid", "time_bin"), [[0.5]]), "ceiled": (("neuroid", "time_bin"), [[1.0]])}))
    True
    """
    return all(name in ds.data_vars and set(ds[name].dims) == {"neuroid", "time_bin"} for name in ("r", "ceiled"))


# ------------------------------------------------------------------------------------------------ values
def site_values(scoreset: xr.Dataset, variable: str, region: str | None = None) -> np.ndarray:
    """Per-site values of ``variable`` as float64 ``[n_sites, n_bins]`` (the sites of ``region`` if given).

    Example
    -------
    >>> ds = xr.Dataset({"r": (("time_bin", "neuroid"), [[0.1, 0.2]])}, coords={"region": ("neuroid", ["V4", "IT"])})
    >>> site_values(ds, "r", "IT").tolist()
    [[0.2]]
    """
    require(scoreset, [variable], "reading per-site values")
    values = np.asarray(scoreset[variable].transpose("neuroid", "time_bin").values, dtype=np.float64)
    return values if region is None else values[site_regions(scoreset) == region]


def stimulus_draws(scoreset: xr.Dataset, variable: str, region: str | None = None) -> np.ndarray | None:
    """Per-site stimulus-bootstrap draws ``[n_draws, n_sites, n_bins]`` of ``variable``, or None without them.

    Example
    -------
    >>> stimulus_draws(xr.Dataset({"r": (("neuroid", "time_bin"), [[0.1]])}), "r") is None
    True
    """
    name = f"{variable}_boot"
    if name not in scoreset.data_vars:
        return None
    values = np.asarray(scoreset[name].transpose(DRAWS_DIM, "neuroid", "time_bin").values, dtype=np.float64)
    return values if region is None else values[:, site_regions(scoreset) == region]


def has_ceiling(scoreset: xr.Dataset) -> bool:
    """Whether any site has a noise ceiling (r-only benchmarks, without trial repeats, have none).

    Example
    -------
    >>> has_ceiling(xr.Dataset({"ceiling": (("neuroid", "time_bin"), [[np.nan]])}))
    False
    """
    return "ceiling" in scoreset.variables and bool(np.isfinite(scoreset["ceiling"].values).any())


def default_variable(scoresets: Sequence[xr.Dataset]) -> tuple[str, str]:
    """``("ceiled", "")`` when every ScoreSet has ceiled scores, else ``("r", why)``.

    Example
    -------
    >>> default_variable([xr.Dataset({"ceiling": (("neuroid", "time_bin"), [[np.nan]])})])[0]
    'r'
    """
    def ceiled(ds: xr.Dataset) -> bool:
        return "ceiled" in ds.data_vars and bool(np.isfinite(ds["ceiled"].values).any())

    if all(ceiled(ds) for ds in scoresets):
        return "ceiled", ""
    return "r", "no noise ceiling (the data have no trial repeats): scores are Pearson r, not ceiled"


# ------------------------------------------------------------------------------------------------ reliability
@dataclass(frozen=True)
class Reliability:
    """Which bins of each region have a noise ceiling reliably above :data:`RELIABILITY_THRESHOLD`.

    ``reliable[region]``: bool per bin; ``median[region]``, ``low[region]``, ``high[region]``: the median
    ceiling over sites and its 95% CI; ``rule``: how it was decided, for attrs and captions.
    """

    reliable: dict[str, np.ndarray]
    median: dict[str, np.ndarray]
    low: dict[str, np.ndarray]
    high: dict[str, np.ndarray]
    rule: str
    assessed: bool

    def unreliable_text(self, scoreset: xr.Dataset) -> dict[str, str]:
        """Per region, the unreliable bins as time ranges (``"0-80 ms"``), or ``""``."""
        start, end = time_bins(scoreset)
        return {region: ranges(start, end, ~mask) for region, mask in self.reliable.items()}


def bin_reliability(
    scoreset: xr.Dataset, threshold: float = RELIABILITY_THRESHOLD, n_boot: int = 1000, seed: int = 0
) -> Reliability:
    """Reliable bins per region: the lower bound of the 95% CI of the median ceiling is above ``threshold``.

    The CI is the ScoreSet's own (``median_ceiling_low``/``_high``: stimuli and sites resampled, the ceiling
    recomputed in every draw) when scoring stored it; otherwise the sites are resampled (seeded) and the
    interval is :func:`centred_interval` of the draws around the median ceiling, the rule of every score CI:
    the printed median ceiling always lies inside its own interval, so a bin whose median ceiling is at or
    below ``threshold`` is never reliable. Without any ceiling (no trial repeats) reliability cannot be
    assessed and every bin counts as reliable, which the rule says.

    Example
    -------
    >>> ceiling = np.r_[np.full(20, 0.02), np.full(20, 0.6)].reshape(2, 20).T  # bin 0 near zero, bin 1 reliable
    >>> ds = xr.Dataset({"ceiling": (("neuroid", "time_bin"), ceiling)}, coords={"region": ("neuroid", ["IT"] * 20)})
    >>> bin_reliability(ds).reliable["IT"].tolist()
    [False, True]
    """
    from neurofit.stats.bootstrap import hierarchical_median, quiet_nan

    names = regions(scoreset)
    n_bins = scoreset.sizes["time_bin"]
    if not has_ceiling(scoreset):
        ones = {r: np.ones(n_bins, dtype=bool) for r in names}
        nan = {r: np.full(n_bins, np.nan) for r in names}
        return Reliability(ones, nan, nan, nan, "not assessed: no noise ceiling (no trial repeats)", False)
    stored = all(name in scoreset.data_vars for name in ("median_ceiling_low", "median_ceiling_high"))
    reliable, median, low, high = {}, {}, {}, {}
    for k, region in enumerate(names):
        ceiling = site_values(scoreset, "ceiling", region)
        with quiet_nan():
            median[region] = np.nanmedian(ceiling, axis=0) if len(ceiling) else np.full(n_bins, np.nan)
        if stored and region in aggregate_regions(scoreset):
            low[region] = region_aggregate(scoreset, "median_ceiling_low", region)
            high[region] = region_aggregate(scoreset, "median_ceiling_high", region)
        elif len(ceiling):
            low[region], high[region] = centred_interval(
                hierarchical_median(ceiling, n_boot=n_boot, seed=seed + k), median[region])
        else:
            low[region] = high[region] = np.full(n_bins, np.nan)
        with np.errstate(invalid="ignore"):
            reliable[region] = np.asarray(low[region] > threshold)
    how = ("stimuli and sites resampled, ceiling recomputed in every draw" if stored
           else f"sites resampled, {n_boot} draws, seed {seed}, interval centred on the median ceiling")
    rule = f"reliable: lower bound of the 95% CI of the median noise ceiling > {threshold:g} ({how})"
    return Reliability(reliable, median, low, high, rule, True)


def driven(values: np.ndarray) -> np.ndarray:
    """Bins where some site has a finite score (a bin before the model's arrival is NaN for every site).

    Example
    -------
    >>> driven(np.array([[np.nan, 0.2], [np.nan, 0.3]])).tolist()
    [False, True]
    """
    return np.isfinite(values).any(axis=0)


def common_bins(scoresets: Sequence[xr.Dataset], region: str, variable: str,
                reliability: Reliability | None = None) -> np.ndarray:
    """Bins of ``region`` where every ScoreSet is driven and the data are reliable (like with like).

    Example
    -------
    >>> ds = xr.Dataset({"r": (("neuroid", "time_bin"), [[np.nan, 0.2, 0.3]])}, coords={"region": ("neuroid", ["IT"])})
    >>> common_bins([ds], "IT", "r").tolist()
    [False, True, True]
    """
    reliability = reliability or bin_reliability(scoresets[0])
    mask = reliability.reliable.get(region, np.ones(scoresets[0].sizes["time_bin"], dtype=bool)).copy()
    for ds in scoresets:
        mask &= driven(site_values(ds, variable, region))
    return mask


def ranges(start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> str:
    """Contiguous runs of masked bins as ``"a-b ms"`` (bins that touch are merged), or ``""``.

    Example
    -------
    >>> ranges(np.array([0.0, 10, 20, 30]), np.array([10.0, 20, 30, 40]), np.array([True, True, False, True]))
    '0-20, 30-40 ms'
    """
    runs: list[list[float]] = []
    for s, e, m in zip(start, end, mask):
        if not m:
            continue
        if runs and np.isclose(runs[-1][1], s):
            runs[-1][1] = e
        else:
            runs.append([float(s), float(e)])
    return (", ".join(f"{s:g}-{e:g}" for s, e in runs) + " ms") if runs else ""


# ------------------------------------------------------------------------------------------------ intervals
CENTRED_INTERVAL = ("percentile interval of the bootstrap draws moved by the draws' median bias (median of the "
                    "draws minus the estimate), so it keeps the spread of the draws and always contains the estimate")


def centred_interval(draws: np.ndarray, estimate: np.ndarray, ci: float = 0.95,
                     axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval of ``draws`` moved so that the draws' median falls on ``estimate``.

    Why: the statistics scored here are medians over sites of per-site values recomputed on resampled
    stimuli. Resampling adds noise to every site's value, and the median of noisy values from a skewed
    per-site distribution (``r^2 / ceiling`` is bounded below and has a long upper tail, very long where the
    ceiling is near zero) drifts toward that tail: the draws sit above the estimate, and a plain percentile
    interval can exclude its own estimate (IT 0-10 ms of the demo once printed 0.018 with [0.019, 0.085]).
    That drift is a property of the resampling, not uncertainty about the estimate, so it is removed: the
    interval is ``estimate + (percentiles of draws - median of draws)``. It always contains the estimate
    (the median of the draws lies between their percentiles) and keeps their spread and skew.

    Example
    -------
    >>> draws = np.array([0.20, 0.22, 0.24, 0.26, 0.28, 0.30, 0.32])  # biased upward from the estimate 0.18
    >>> low, high = centred_interval(draws, np.array(0.18), ci=1.0)
    >>> round(float(low), 3), round(float(high), 3)
    (0.12, 0.24)
    """
    from neurofit.stats.bootstrap import percentile_interval, quiet_nan

    draws = np.asarray(draws, dtype=np.float64)
    with quiet_nan():
        shift = np.nanmedian(draws, axis=axis) - np.asarray(estimate, dtype=np.float64)
    low, high = percentile_interval(draws, ci, axis=axis)
    return np.asarray(low - shift), np.asarray(high - shift)


# ------------------------------------------------------------------------------------------------ summaries
@dataclass(frozen=True)
class Summary:
    """One number for a region: the mean over chosen bins of the per-bin median over sites, with its CI."""

    value: float
    low: float
    high: float
    bins: np.ndarray
    how: str

    @property
    def contains_estimate(self) -> bool:
        """Whether the interval contains the estimate (always, for a finite one: :func:`centred_interval`)."""
        return bool(self.low <= self.value <= self.high)


def summarise(scoreset: xr.Dataset, region: str, bins: np.ndarray, variable: str = "ceiled", *,
              n_boot: int = 1000, seed: int = 0, ci: float = 0.95) -> Summary:
    """Mean over ``bins`` of the median over the sites of ``region``, with a bootstrap CI.

    The CI resamples the stimuli and the sites (the ScoreSet's per-site stimulus draws, then sites with
    replacement) when the ScoreSet has stimulus draws, else the sites only; ``how`` says which.

    Example
    -------
    >>> ds = xr.Dataset({"r": (("neuroid", "time_bin"), np.linspace(0.2, 0.6, 60).reshape(30, 2))},
    ...                 coords={"region": ("neuroid", ["IT"] * 30)})
    >>> s = summarise(ds, "IT", np.array([True, True]), "r", n_boot=200)
    >>> round(s.value, 3), s.low < s.value < s.high, s.how
    (0.4, True, 'sites resampled')
    """
    from neurofit.stats.bootstrap import hierarchical_median, quiet_nan

    bins = np.asarray(bins, dtype=bool)
    values = site_values(scoreset, variable, region)
    if not bins.any() or not len(values):
        return Summary(np.nan, np.nan, np.nan, bins, "no bins")
    draws = stimulus_draws(scoreset, variable, region)
    if draws is None and scoreset.attrs.get("metric_scope") == "population":
        # one value per region and no stimulus draws: there is nothing to resample (not a zero-width interval)
        with quiet_nan():
            value = float(np.nanmean(np.nanmedian(values[:, bins], axis=0)))
        return Summary(value, np.nan, np.nan, bins, "no CI: a population metric scored without stimulus draws")
    with quiet_nan():
        value = float(np.nanmean(np.nanmedian(values[:, bins], axis=0)))
        boot = hierarchical_median(values[:, bins], None if draws is None else draws[:, :, bins], n_boot=n_boot,
                                   seed=seed)
        low, high = centred_interval(np.nanmean(boot, axis=1), np.array(value), ci)
    how = "stimuli and sites resampled" if draws is not None else "sites resampled"
    return Summary(value, float(low), float(high), bins, how)


def metric_line(scoreset: xr.Dataset) -> str:
    """One line naming the metric, e.g. ``PLS-25 (exact), 10-fold, r^2 / split-half ceiling, median over 40 sites``.

    Example
    -------
    >>> ds = xr.Dataset({"r": (("neuroid", "time_bin"), [[0.5]] * 3),
    ...                  "ceiling": (("neuroid", "time_bin"), [[0.8]] * 3)}, coords={"region": ("neuroid", ["IT"] * 3)},
    ...                 attrs={"metric": "pls25-exact", "split_scheme": "kfold", "n_splits": 10,
    ...                        "normalisation": "r2_over_ceiling", "ceiling_method": "split_half"})
    >>> metric_line(ds)
    'metric: PLS-25 (exact), 10-fold cross-validation over stimuli, r^2 / split-half ceiling, median over 3 sites'
    """
    attrs = scoreset.attrs
    if attrs.get("metric_description"):  # a metric beyond regression (neurofit.scoring.metric) describes itself
        return f"metric: {attrs['metric_description']}"
    metric = str(attrs.get("metric", "?"))
    if metric.startswith("pls"):
        head, _, algorithm = metric.partition("-")
        metric = f"PLS-{head[3:]}" + (f" ({algorithm})" if algorithm else "")
    elif metric == "ridge":
        alpha = attrs.get("ridge_alpha")
        metric = "ridge (per-site penalty)" if alpha is None else f"ridge (fixed penalty alpha {float(alpha):g})"
    folds = attrs.get("n_splits", "?")
    split = (f"{folds}-fold cross-validation over stimuli" if attrs.get("split_scheme") == "kfold"
             else f"{folds} Brain-Score shuffle splits")
    if "split_train_size" in attrs:
        split += f" (train {float(attrs['split_train_size']):g})"
    if attrs.get("split_stratified") is False or attrs.get("split_stratified") in (0, "False"):
        split += ", not stratified"
    rules = {"r2_over_ceiling": "r^2 / {c} ceiling", "legacy": "(r / {c} ceiling)^2",
             "feve": "FEVe ({c} ceiling)"}
    ceiling = str(attrs.get("ceiling_method", "split_half")).replace("_", "-")
    if has_ceiling(scoreset):
        rule = rules.get(str(attrs.get("normalisation", "")), "{c} ceiling").format(c=ceiling)
    else:
        rule = "Pearson r (no noise ceiling: the data have no trial repeats)"
    counts = sorted({int((site_regions(scoreset) == region).sum()) for region in regions(scoreset)})
    sites = f"{counts[0]}" if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
    return f"metric: {metric}, {split}, {rule}, median over {sites} sites"


def summary_table(scoreset: xr.Dataset, *, reliability: Reliability | None = None) -> str:
    """Region x time bin as text, then one summary line per region over its reliable, driven bins.

    Columns: the median r, the median ceiling with its CI, the median ceiled score with its CIs over stimuli
    and over sites, and a note: ``unreliable`` bins (ceiling not reliably above zero) and bins where the
    model is ``not driven`` show no ceiled score. Without ceilings (r-only data) the median r and its CIs
    are the score.

    Example
    -------
    >>> ds = xr.Dataset({"r": (("neuroid", "time_bin"), [[0.5], [0.6]]),
    ...                  "ceiling": (("neuroid", "time_bin"), [[np.nan]] * 2),
    ...                  "ceiled": (("neuroid", "time_bin"), [[np.nan]] * 2)},
    ...                 coords={"region": ("neuroid", ["IT", "IT"]), "time_bin_start": ("time_bin", [70.0]),
    ...                         "time_bin_end": ("time_bin", [170.0])})
    >>> print(summary_table(ds).splitlines()[1])
    IT      70-170          0.550                -                -  no ceiling (no trial repeats)
    """
    reliability = reliability or bin_reliability(scoreset)
    ceiled = has_ceiling(scoreset)
    start, end = time_bins(scoreset)
    variable = "ceiled" if ceiled else "r"
    names = regions(scoreset)
    aggregates = set(aggregate_regions(scoreset)) if "region" in scoreset.dims else set()

    def fmt(v: float) -> str:
        return "nan" if not np.isfinite(v) else f"{v:.3f}"

    def interval(name: str, region: str, b: int) -> str:
        low, high = f"{name}_low", f"{name}_high"
        if region not in aggregates or low not in scoreset.data_vars:
            return "-"
        lo, hi = region_aggregate(scoreset, low, region)[b], region_aggregate(scoreset, high, region)[b]
        return "-" if not (np.isfinite(lo) and np.isfinite(hi)) else f"[{fmt(lo)}, {fmt(hi)}]"

    if ceiled:
        header = ("region", "window (ms)", "median r", "median ceiling [95% CI]", "median ceiled",
                  "95% CI (stimuli)", "95% CI (sites)", "note")
    else:
        header = ("region", "window (ms)", "median r", "95% CI (stimuli)", "95% CI (sites)", "note")
    rows = [header]
    flagged = False
    from neurofit.stats.bootstrap import quiet_nan

    for region in names:
        r = site_values(scoreset, "r", region)
        values = site_values(scoreset, variable, region)
        with quiet_nan():
            median_r = np.nanmedian(r, axis=0)
            median = np.nanmedian(values, axis=0)
        for b in range(len(start)):
            window = f"{start[b]:g}-{end[b]:g}"
            if not ceiled:
                note = "no ceiling (no trial repeats)" if np.isfinite(median_r[b]) else "not driven"
                rows.append((region, window, fmt(median_r[b]), interval("median_r", region, b),
                             interval("median_r_sites", region, b), note))
                continue
            ceiling_ci = (f"{fmt(reliability.median[region][b])} [{fmt(reliability.low[region][b])}, "
                          f"{fmt(reliability.high[region][b])}]")
            if not reliability.reliable[region][b]:
                rows.append((region, window, fmt(median_r[b]), ceiling_ci, "-", "-", "-", "unreliable ceiling"))
                continue
            if not np.isfinite(median[b]):
                rows.append((region, window, fmt(median_r[b]), ceiling_ci, "-", "-", "-", "not driven"))
                continue
            cis = [interval("median_ceiled", region, b), interval("median_ceiled_sites", region, b)]
            note = ""
            for text in cis:
                if text != "-":
                    lo, hi = (float(v) for v in text.strip("[]").split(","))
                    if not lo <= round(median[b], 3) <= hi:
                        note, flagged = "CI excludes the estimate (!)", True
            rows.append((region, window, fmt(median_r[b]), ceiling_ci, fmt(median[b]), *cis, note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0]), row[1].ljust(widths[1])]
        cells += [cell.rjust(widths[i + 2]) for i, cell in enumerate(row[2:-1])]
        lines.append("  ".join([*cells, row[-1]]).rstrip())
    for region in names:
        bins = common_bins([scoreset], region, variable, reliability)
        s = summarise(scoreset, region, bins, variable)
        what = "median ceiled score" if ceiled else "median r"
        which = ranges(start, end, bins) or "none"
        kind = "reliable driven" if reliability.assessed else "driven"
        lines.append(f"{region}: mean over the {int(bins.sum())} {kind} bins ({which}) of the {what}: "
                     f"{fmt(s.value)} [{fmt(s.low)}, {fmt(s.high)}] (95% CI, {s.how})")
        unreliable = reliability.unreliable_text(scoreset)[region]
        if unreliable:
            lines.append(f"{region}: unreliable bins, left out of the summary: {unreliable} ({reliability.rule})")
    if flagged:
        lines.append("(!) a percentile bootstrap interval that excludes its estimate: the bootstrap is biased there "
                     "(a ratio over a small ceiling); read that bin as unreliable")
    if "benchmark_score" in scoreset:
        # Brain-Score mode: Brain-Score's number is the headline, neurofit's statistics follow it
        lines = [*brainscore_headline(scoreset), "neurofit's per-site statistics (bootstrap intervals over stimuli "
                 "and over sites):", *lines]
    return "\n".join(lines)


def brainscore_headline(scoreset: xr.Dataset) -> list[str]:
    """The headline of a Brain-Score-mode ScoreSet: per region and bin Brain-Score's score and error, raw r and
    ceiling with their errors, and the per-split raw values (median r over sites in each split).

    Example
    -------
    >>> ds = xr.Dataset({name: (("region", "time_bin"), [[v]]) for name, v in (("benchmark_score", 0.5),
    ...                  ("benchmark_score_error", 0.01), ("benchmark_r", 0.6), ("benchmark_r_error", 0.01),
    ...                  ("benchmark_ceiling", 0.72), ("benchmark_ceiling_error", 0.002))},
    ...                 coords={"region_name": ("region", ["IT"]), "time_bin_start": ("time_bin", [70.0]),
    ...                         "time_bin_end": ("time_bin", [170.0])})
    >>> ds["benchmark_r_split"] = (("region", "fold", "time_bin"), [[[0.59], [0.61]]])
    >>> print("\\n".join(brainscore_headline(ds)))
    Brain-Score's number (score = r^2 / ceiling; errors: standard error over splits, Brain-Score's):
    IT 70-170 ms: score 0.5000 +- 0.0100 | raw r 0.6000 +- 0.0100 | ceiling 0.7200 +- 0.0020
    IT 70-170 ms: raw r per split (2 splits, median over sites): 0.5900, 0.6100
    """
    start, end = time_bins(scoreset)

    def fmt(v: float) -> str:
        return "nan" if not np.isfinite(v) else f"{v:.4f}"

    def value(name: str, k: int, b: int) -> float:
        return float(scoreset[name].values[k, b]) if name in scoreset.data_vars else float("nan")

    lines = ["Brain-Score's number (score = r^2 / ceiling; errors: standard error over splits, Brain-Score's):"]
    for k, region in enumerate(aggregate_regions(scoreset)):
        for b in range(len(start)):
            line = (f"{region} {start[b]:g}-{end[b]:g} ms: score {fmt(value('benchmark_score', k, b))} +- "
                    f"{fmt(value('benchmark_score_error', k, b))} | raw r {fmt(value('benchmark_r', k, b))} +- "
                    f"{fmt(value('benchmark_r_error', k, b))} | ceiling {fmt(value('benchmark_ceiling', k, b))} +- "
                    f"{fmt(value('benchmark_ceiling_error', k, b))}")
            lines.append(line)
            if "benchmark_r_split" in scoreset.data_vars:
                splits = scoreset["benchmark_r_split"].values[k, :, b]
                lines.append(f"{region} {start[b]:g}-{end[b]:g} ms: raw r per split ({len(splits)} splits, median over "
                             "sites): " + ", ".join(fmt(v) for v in splits))
    return lines


# ------------------------------------------------------------------------------------------------ export
def to_dataframe(scoreset: xr.Dataset) -> pd.DataFrame:
    """One row per site and time bin: ids, region, bin, ``r``, ``ceiling``, ``ceiled``, ``reliable``, provenance.

    Columns: ``model_id``, ``benchmark``, ``neuroid_id``, ``region`` (and any other per-site coordinate, e.g.
    ``session``), ``time_bin_start``, ``time_bin_end``, ``r``, ``ceiling``, ``ceiled`` and ``reliable`` (the
    bin's noise ceiling is reliably above zero, :func:`bin_reliability`).

    Example
    -------
    >>> ds = xr.Dataset({name: (("neuroid", "time_bin"), [[0.5, 0.6]]) for name in ("r", "ceiling", "ceiled")},
    ...                 coords={"neuroid_id": ("neuroid", ["n0"]), "region": ("neuroid", ["IT"]),
    ...                         "time_bin_start": ("time_bin", [0.0, 10.0]),
    ...                         "time_bin_end": ("time_bin", [10.0, 20.0])}, attrs={"model_id": "m", "benchmark": "b"})
    >>> to_dataframe(ds)[["neuroid_id", "time_bin_start", "r"]].values.tolist()
    [['n0', 0.0, 0.5], ['n0', 10.0, 0.6]]
    """
    import pandas as pd

    require(scoreset, ["r", "neuroid_id", "region", "time_bin_start", "time_bin_end"], "exporting per-site scores")
    reliability = bin_reliability(scoreset)
    regions_of_sites = site_regions(scoreset)
    start, end = time_bins(scoreset)
    n_sites, n_bins = scoreset.sizes["neuroid"], len(start)
    columns: dict[str, object] = {
        "model_id": str(scoreset.attrs.get("model_id", "")),
        "benchmark": str(scoreset.attrs.get("benchmark", "")),
    }
    per_site = sorted(str(name) for name, coord in scoreset.coords.items() if coord.dims == ("neuroid",))
    for name in ["neuroid_id", "region", *(n for n in per_site if n not in ("neuroid_id", "region"))]:
        columns[name] = np.repeat(np.asarray(scoreset[name].values).astype(str), n_bins)
    columns["time_bin_start"] = np.tile(start, n_sites)
    columns["time_bin_end"] = np.tile(end, n_sites)
    for name in PER_SITE:
        if name in scoreset.data_vars:
            columns[name] = site_values(scoreset, name).ravel()
    columns["reliable"] = np.concatenate([reliability.reliable[str(region)] for region in regions_of_sites])
    return pd.DataFrame(columns)


def export_scores(scoreset: xr.Dataset | str | os.PathLike[str], out: str | os.PathLike[str]) -> Path:
    """Write :func:`to_dataframe` as CSV (``.csv``) or parquet (``.parquet``, needs pyarrow); return the path.

    Example
    -------
    >>> export_scores("out/cornet_z-it.nc", "out/cornet_z-it.csv")  # doctest: +SKIP
    """
    from neurofit.atomic import atomic_path

    ds = scoreset if isinstance(scoreset, xr.Dataset) else read_scoreset(scoreset)
    path = Path(out)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise NeurofitError(f"export writes .csv or .parquet files, not {path.name!r}")
    table = to_dataframe(ds)
    if suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401 - pandas' parquet engine
        except ImportError:
            raise NeurofitError("writing parquet needs pyarrow: pip install 'neurofit[parquet]' "
                                "(or export to .csv)") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        if suffix == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
    return path


# ------------------------------------------------------------------------------------------------ per-site rules
# How a ScoreSet's per-site numbers are made, defined once for score(), the grid and pooled benchmarks.
def site_r(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson r per site (and bin) over the stimuli valid for it, along axis 0; constant sites are NaN.

    Example
    -------
    >>> x = np.arange(6.0)[:, None]
    >>> site_r(np.hstack([x, x]), np.hstack([x, -x])).tolist()
    [1.0, -1.0]
    """
    return pearson_on_valid(prediction, target)


def site_ceiling(trials: np.ndarray, method: str, n_halvings: int, seed: int, source: str = "benchmark"
                 ) -> np.ndarray:
    """Noise ceiling per site and bin: ``split_half`` (Spearman-Brown), ``brainscore`` or ``none`` (NaN).

    ``trials``: NaN-padded ``[stimuli, repetitions, sites, bins]``; ``source`` names the benchmark in errors.

    Example
    -------
    >>> trials = np.random.default_rng(0).normal(size=(40, 4, 2, 1)) + np.arange(40.0)[:, None, None, None]
    >>> bool((site_ceiling(trials, "split_half", 10, 0) > 0.9).all())
    True
    """
    if method == "none":
        return np.full(trials.shape[2:], np.nan)
    try:
        with quiet_nan():
            if method == "split_half":
                return split_half_ceiling(trials, n_halvings, seed)
            return brainscore_ceiling(trials, n_halvings, seed)[0]
    except SingleRepetitionError as err:
        raise SingleRepetitionError(f"{err}: benchmark {source!r} asks for one (ceiling.method = "
                                    f"{method!r}); use a benchmark with ceiling.method = 'none' to score r "
                                    "alone") from None


def site_ceiled(r: np.ndarray, ceiling: np.ndarray, pooled: np.ndarray | None, trials: np.ndarray,
                method: str, normalisation: str) -> np.ndarray:
    """The ceiled score per site and bin under the benchmark's rule (NaN without a ceiling).

    ``pooled``: every stimulus's held-out prediction (K-fold; FEVe needs it), else None.

    Example
    -------
    >>> site_ceiled(np.array([0.5]), np.array([0.5]), None, np.zeros((2, 2, 1)), "split_half",
    ...             "r2_over_ceiling").tolist()
    [0.5]
    """
    if method == "none":
        return np.full(r.shape, np.nan)  # no ceiling, no ceiled score: r stands alone
    if normalisation == "feve":
        if pooled is None:
            raise NeurofitError("FEVe needs every stimulus predicted once: use split_scheme = 'kfold'")
        with quiet_nan():
            return feve(pooled, trials)
    with quiet_nan():
        return ceil_scores(r, ceiling, normalisation)


def region_medians(values: np.ndarray, site_region: np.ndarray, regions: Sequence[str]) -> np.ndarray:
    """``[region, bin]``: the median over each region's sites (NaN sites left out; all-NaN gives NaN).

    Example
    -------
    >>> region_medians(np.array([[1.0], [3.0], [np.nan]]), np.array(["IT", "IT", "V4"]), ["IT", "V4"]).tolist()
    [[2.0], [nan]]
    """
    with quiet_nan():
        return np.stack([np.nanmedian(values[site_region == region], axis=0) for region in regions])
