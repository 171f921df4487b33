"""Comparing ScoreSets site by site and bin by bin: the one implementation behind ``neurofit compare``.

One estimand, one analysis. For every region and time bin the comparison of model B with the reference A
is about the paired per-site differences ``d = score_B - score_A`` (always **the second minus the
reference**):

* the estimate is the median of ``d`` over the sites valid in both;
* its uncertainty comes from a two-level bootstrap (:func:`neurofit.stats.bootstrap.hierarchical_median`):
  each draw takes one stimulus-bootstrap draw of both models' per-site scores (the same resampled stimuli
  for both: scoring stores these draws, and two ScoreSets of one benchmark are resampled identically) and
  then resamples the sites with replacement, paired. So the interval covers the stimuli and the sites.
  ScoreSets without stored draws are compared over sites only, and the result says so;
* the p value of each bin is the bootstrap's (:func:`~neurofit.stats.bootstrap.bootstrap_p`), corrected
  across every tested bin, region and comparison (Benjamini-Hochberg by default);
* every interval is the equal-tailed interval of the same draws at the level that agrees with the
  correction (:func:`~neurofit.stats.multiple.selection_level`: for Benjamini-Hochberg the false-coverage-rate
  adjusted level of Benjamini & Yekutieli 2005). A bin is marked significant exactly when its interval
  excludes zero.

Bins where the noise ceiling is not reliably above zero (:func:`neurofit.scoreset.bin_reliability`), and bins
where a model is not driven, are not tested.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import xarray as xr

from neurofit.errors import NeurofitError
from neurofit.scoreset import (
    bin_reliability,
    default_variable,
    label,
    ranges,
    read_scoreset,
    require,
    stimulus_draws,
    time_bins,
    write_scoreset,
)
from neurofit.stats.bootstrap import bootstrap_p, check_bootstrap, hierarchical_median, inverted_interval, quiet_nan
from neurofit.stats.multiple import METHODS, fdr, selection_level

_PER_SITE = ("region", "neuroid_id", "time_bin_start", "time_bin_end")
DIFFERENCE = "B - A: median over the sites valid in both of (score of B - score of A); A is the reference"
MIN_SITES = 2


def paired_difference(reference: np.ndarray, other: np.ndarray) -> np.ndarray:
    """The one sign convention of every model comparison: ``other - reference`` (B - A), NaN where either is.

    :func:`compare_scoresets`, :func:`neurofit.stats.paired.paired_tests` and the cluster test all take their
    differences from here, so no caller relabels a difference.

    Example
    -------
    >>> paired_difference(np.array([0.5, 0.25]), np.array([0.75, np.nan])).tolist()
    [0.25, nan]
    """
    return other - reference


def compare_scoresets(
    a: xr.Dataset,
    b: xr.Dataset,
    *,
    variable: str | None = None,
    method: str = "fdr_bh",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    reliable_only: bool = True,
    n_permutations: int = 10000,
) -> xr.Dataset:
    """Paired comparison of ScoreSet ``b`` with the reference ``a`` (``b - a``), per region and time bin.

    Sites are matched by ``neuroid_id`` (sites in only one ScoreSet are left out and counted in the attrs); the
    time bins must be the same. A site whose score is NaN in either model is left out of that bin.

    Parameters
    ----------
    a, b : Dataset
        The reference ScoreSet and the one compared with it.
    variable : str, optional
        The per-site score compared: ``"ceiled"`` (default where the data have noise ceilings) or ``"r"``
        (default otherwise, and said so in the attrs).
    method, alpha : str, float
        Multiple-comparison correction across every tested region x bin (``"fdr_bh"``, ``"fdr_by"``,
        ``"holm"``, ``"bonferroni"``) and its level.
    n_boot, seed : int
        Bootstrap draws and the seed of the site resampling (regions get ``seed``, ``seed + 1``, ...).
    reliable_only : bool
        Leave bins whose noise ceiling is not reliably above zero out of the tests (default).
    n_permutations : int
        Sign flips of the cluster-based permutation test over contiguous bins (:mod:`neurofit.stats.cluster`;
        0: none). It gives family-wise control over time beside the per-bin tests: ``cluster_p`` (the p value
        of the cluster a bin belongs to, NaN outside clusters) and ``cluster_significant``. Population metrics
        (one value per region) have no sites to flip: their cluster test is
        :func:`~neurofit.stats.cluster.bootstrap_cluster_test` on the paired stimulus draws (any nonzero
        ``n_permutations`` runs it; its resolution is set by the stored draws), attrs ``cluster_test`` says which.

    Returns
    -------
    Dataset with dims ``(region, time_bin)`` and variables ``n_sites``, ``median_a``, ``median_b`` (medians
    of each model over the paired sites), ``median_difference`` (the estimate), ``ci_low``, ``ci_high``
    (at coverage ``attrs['ci_level']``), ``p`` (bootstrap), ``q`` (corrected), ``significant``
    (``q <= alpha``, equivalently: the interval excludes 0), ``reliable``, ``driven`` and ``tested``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> def toy(shift):
    ...     return xr.Dataset({"ceiled": (("neuroid", "time_bin"), rng.normal(0.5 + shift, 0.05, (30, 2)))},
    ...                       coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(30)]),
    ...                               "region": ("neuroid", ["IT"] * 30),
    ...                               "time_bin_start": ("time_bin", [0.0, 10.0]),
    ...                               "time_bin_end": ("time_bin", [10.0, 20.0])})
    >>> out = compare_scoresets(toy(0.0), toy(0.2), variable="ceiled", n_boot=200)
    >>> out.significant.values.tolist(), bool((out.ci_low > 0).all())
    ([[True, True]], True)
    """
    return compare_many([(a, b)], variable=variable, method=method, alpha=alpha, n_boot=n_boot, seed=seed,
                        reliable_only=reliable_only, n_permutations=n_permutations)[0]


def compare_many(
    pairs: Sequence[tuple[xr.Dataset, xr.Dataset]],
    *,
    variable: str | None = None,
    method: str = "fdr_bh",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    reliable_only: bool = True,
    n_permutations: int = 10000,
) -> list[xr.Dataset]:
    """:func:`compare_scoresets` for several ``(reference, other)`` pairs, corrected across all of them at once.

    The family is every tested (pair, region, time bin), so adding models makes each mark harder to earn, and
    every interval is at the one level that agrees with the family's selection.

    Example
    -------
    >>> rng = np.random.default_rng(1)
    >>> def toy(shift):
    ...     return xr.Dataset({"ceiled": (("neuroid", "time_bin"), rng.normal(0.5 + shift, 0.05, (30, 1)))},
    ...                       coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(30)]),
    ...                               "region": ("neuroid", ["IT"] * 30),
    ...                               "time_bin_start": ("time_bin", [0.0]), "time_bin_end": ("time_bin", [10.0])})
    >>> ref = toy(0.0)
    >>> out = compare_many([(ref, toy(0.2)), (ref, toy(0.0))], variable="ceiled", n_boot=200)
    >>> [bool(o.significant.item()) for o in out]
    [True, False]
    """
    if method not in METHODS:
        raise NeurofitError(f"unknown multiple-comparison method {method!r}: use one of {sorted(METHODS)}")
    if not 0 < alpha < 1:
        raise NeurofitError(f"alpha must lie in (0, 1), got {alpha}")
    check_bootstrap(n_boot)
    if not pairs:
        return []
    note = ""
    if variable is None:
        variable, note = default_variable([ds for pair in pairs for ds in pair])
    analysed = [_analyse(a, b, variable, n_boot, seed, reliable_only, n_permutations) for a, b in pairs]
    p = np.concatenate([res["p"].values.ravel() for res, _ in analysed])
    corrected = fdr(p, method=method, alpha=alpha)
    gamma = selection_level(p, method=method, alpha=alpha)
    n_tests = int(np.isfinite(p).sum())
    family = (f"every tested region x time bin{' of all ' + str(len(pairs)) + ' comparisons' if len(pairs) > 1 else ''}"
              f" ({n_tests} tests)")
    results, start = [], 0
    for res, draws in analysed:
        size = res["p"].size
        shape, dims = res["p"].shape, res["p"].dims
        res["q"] = (dims, corrected["q"].values[start:start + size].reshape(shape))
        start += size
        res["significant"] = (dims, np.isfinite(res["p"].values) & (res["p"].values <= gamma))
        low, high = inverted_interval(draws, gamma, axis=0)
        res["ci_low"], res["ci_high"] = (dims, low), (dims, high)
        res.attrs.update({
            "variable_note": note,
            "correction": method,
            "correction_description": METHODS[method],
            "correction_family": family,
            "n_tests": n_tests,
            "alpha": float(alpha),
            "ci_level": float(1.0 - gamma),
            "interval": (f"equal-tailed bootstrap interval at coverage {100 * (1 - gamma):.4g}%, the level at which "
                         f"{'significance' if method != 'fdr_bh' else 'Benjamini-Hochberg selection'} and intervals "
                         "agree: a bin is significant exactly when its interval excludes 0"
                         + (" (the false-coverage-rate adjusted interval of Benjamini & Yekutieli 2005)"
                            if method in ("fdr_bh", "fdr_by") else "")),
        })
        res["cluster_significant"] = res["cluster_p"] < alpha
        order = ["n_sites", "median_a", "median_b", "median_difference", "ci_low", "ci_high", "p", "q",
                 "significant", "reliable", "driven", "tested", "cluster_p", "cluster_significant"]
        results.append(res[order].transpose("region", "time_bin"))
    return results


def _analyse(a: xr.Dataset, b: xr.Dataset, variable: str, n_boot: int, seed: int,
             reliable_only: bool, n_permutations: int = 0) -> tuple[xr.Dataset, np.ndarray]:
    """Estimate, draws and p of one pair, before the family's correction (draws: ``[n_boot, region, bin]``)."""
    xa, xb, ids = _align(a, b, variable)
    min_sites = _min_sites(a, b)
    population = min_sites == 1
    draws_a, draws_b, pairing = _paired_draws(a, b, variable, ids)
    region_of_site = xa["region"].values.astype(str)
    names = [str(v) for v in dict.fromkeys(region_of_site)]
    reliability = bin_reliability(a)
    n_bins = xa.sizes["time_bin"]
    columns = {name: np.full((len(names), n_bins), np.nan) for name in
               ("n_sites", "median_a", "median_b", "median_difference", "p", "cluster_p")}
    flags = {name: np.zeros((len(names), n_bins), dtype=bool) for name in ("reliable", "driven", "tested")}
    draws = np.full((n_boot, len(names), n_bins), np.nan)
    va_all, vb_all = xa.values, xb.values
    for k, region in enumerate(names):
        sel = region_of_site == region
        va, vb = va_all[sel], vb_all[sel]
        diff = paired_difference(va, vb)  # NaN where either model has no score: that site leaves the bin
        valid = np.isfinite(diff)
        columns["n_sites"][k] = valid.sum(axis=0)
        with quiet_nan():
            columns["median_a"][k] = np.nanmedian(np.where(valid, va, np.nan), axis=0)
            columns["median_b"][k] = np.nanmedian(np.where(valid, vb, np.nan), axis=0)
            columns["median_difference"][k] = np.nanmedian(diff, axis=0)
        stim = None if draws_a is None else paired_difference(draws_a[:, sel], draws_b[:, sel])
        # A different seed per region keeps their site draws independent; the whole result stays reproducible.
        draws[:, k] = hierarchical_median(diff, stim, n_boot=n_boot, seed=seed + k)
        if population and stim is None:
            draws[:, k] = np.nan  # one value per region and no paired stimulus draws: nothing to resample
        flags["reliable"][k] = reliability.reliable.get(region, np.ones(n_bins, dtype=bool))
        flags["driven"][k] = columns["n_sites"][k] >= min_sites
        flags["tested"][k] = flags["driven"][k] & (flags["reliable"][k] | (not reliable_only)) & (
            not population or stim is not None)
        p = bootstrap_p(draws[:, k], 0.0)
        columns["p"][k] = np.where(flags["tested"][k], p, np.nan)
        if population:  # one value per region: the cluster test runs on the paired stimulus draws
            columns["cluster_p"][k] = _bootstrap_cluster_p(diff[0], None if stim is None else stim[:, 0],
                                                           n_permutations)
        else:
            columns["cluster_p"][k] = _cluster_p(diff, n_permutations, seed + k)
    start, end = time_bins(xa.to_dataset(name=variable))
    out = xr.Dataset(
        {**{name: (("region", "time_bin"), value) for name, value in columns.items()},
         **{name: (("region", "time_bin"), value) for name, value in flags.items()}},
        coords={"region": ("region", names), "time_bin_start": ("time_bin", start),
                "time_bin_end": ("time_bin", end)},
    )
    out["n_sites"] = out["n_sites"].fillna(0).astype(np.int64)
    shared = len(ids)
    out.attrs = {
        "model_a": label(a, "a"),
        "model_b": label(b, "b"),
        "reference": label(a, "a"),
        "benchmark": str(a.attrs.get("benchmark", "")),
        "variable": variable,
        "difference": DIFFERENCE,
        "estimate": "median over sites of the per-site differences (paired)",
        "uncertainty": pairing,
        "test": ("two-sided bootstrap test of a zero median difference: p = 2 min(#draws <= 0, #draws >= 0) / "
                 "#draws (resolution 2 / n_boot)"),
        "reliability": reliability.rule,
        "untested_bins": ("bins where the ceiling is not reliable, or fewer than 2 sites have scores in both "
                          "models (a model not yet driven), are not tested" if reliable_only else
                          "bins where fewer than 2 sites have scores in both models are not tested; unreliable "
                          "bins are tested (reliable_only=False)")
        + ("; a population metric without paired stimulus-bootstrap draws is not tested at all (one value per "
           "region: nothing to resample)" if population and draws_a is None else ""),
        "n_boot": int(n_boot),
        "seed": int(seed),
        "cluster_test": _cluster_text(population, draws_a, n_permutations),
        "n_shared_sites": shared,
        "n_sites_only_a": int(a.sizes["neuroid"] - shared),
        "n_sites_only_b": int(b.sizes["neuroid"] - shared),
    }
    if a.attrs.get("metric_scope"):  # a metric beyond regression (neurofit.scoring.metric) is named in the header
        out.attrs["metric"] = str(a.attrs.get("metric", ""))
        out.attrs["metric_scope"] = str(a.attrs["metric_scope"])
    if a.attrs.get("metric") == "partition":
        out.attrs["partition_ceiled"] = f"unique variance of {_partition_kind(a)}, over the ceiling"
    return out, draws


def _min_sites(a: xr.Dataset, b: xr.Dataset) -> int:
    """Sites a bin needs to be tested: :data:`MIN_SITES`, or 1 for a population metric (one value per region,
    tested over its stimulus-bootstrap draws); ScoreSets of different metrics beyond regression do not compare."""
    scopes = {str(ds.attrs.get("metric_scope", "")) for ds in (a, b)}
    metrics = {str(ds.attrs.get("metric", "")) for ds in (a, b)}
    if scopes != {""} and len(metrics) > 1:
        raise NeurofitError(f"ScoreSets {label(a, 'a')!r} and {label(b, 'b')!r} have different metrics "
                            f"({', '.join(sorted(metrics))}); compare ScoreSets of one metric")
    if metrics == {"partition"} and _partition_kind(a) != _partition_kind(b):
        raise NeurofitError(f"ScoreSets {label(a, 'a')!r} and {label(b, 'b')!r} partition different things: ceiled is "
                            f"the unique variance of {_partition_kind(a)} in one, of {_partition_kind(b)} in the "
                            "other; compare partitions against the same feature spaces")
    return 1 if scopes == {"population"} else MIN_SITES


def _partition_kind(ds: xr.Dataset) -> str:
    """What a ``partition`` ScoreSet's ``ceiled`` is the unique variance of, and beyond which feature spaces."""
    if ds.attrs.get("partition_ceiled_space", "mapped") == "mapped":
        return "the step mapped to each bin beyond the model's first driven step"
    spaces = dict(ds.attrs.get("partition_spaces") or {})
    others = [f"{v.get('model_id')} (weights {str(v.get('weights_sha256', ''))[:12] or 'not hashed'})"
              for name, v in spaces.items() if name != "model"]
    return f"the scored model beyond {', '.join(others)}"


def _cluster_p(differences: np.ndarray, n_permutations: int, seed: int) -> np.ndarray:
    """Per bin: the family-wise p value of its cluster (NaN outside clusters, or where not testable)."""
    from neurofit.stats.cluster import cluster_permutation_test

    d = np.asarray(differences, dtype=np.float64)  # (sites, bins)
    out = np.full(d.shape[1], np.nan)
    tested = np.isfinite(d).mean(axis=0) > 0.5
    if not n_permutations or not tested.any():
        return out
    # untested bins break clusters: their t is undefined (all-zero differences), never above threshold
    d = np.where(tested, d, 0.0)
    if int(np.isfinite(d).all(axis=1).sum()) < 3:
        return out
    result = cluster_permutation_test(d, n_permutations=n_permutations, seed=seed)
    for (start, stop), p in zip(result.clusters, result.p):
        out[start:stop] = p
    return out


def _bootstrap_cluster_p(difference: np.ndarray, draws: np.ndarray | None, n_permutations: int) -> np.ndarray:
    """Per bin of a population metric: the family-wise p of its cluster from the paired stimulus draws."""
    from neurofit.stats.cluster import bootstrap_cluster_test

    out = np.full(difference.shape, np.nan)
    if not n_permutations or draws is None or len(draws) < 2:
        return out
    result = bootstrap_cluster_test(difference, draws)
    for (start, stop), p in zip(result.clusters, result.p):
        out[start:stop] = p
    return out


def _cluster_text(population: bool, draws: np.ndarray | None, n_permutations: int) -> str:
    """What ``cluster_p`` is, for the attrs (the test of per-site metrics, or of population metrics)."""
    if not n_permutations:
        return "not run"
    if population and draws is None:
        return ("not run: a population metric without paired stimulus-bootstrap draws has nothing to resample "
                "over bins")
    if population:
        return (f"bootstrap cluster test over contiguous bins per region (neurofit.stats.cluster.bootstrap_cluster_"
                f"test; Maris & Oostenveld 2007 cluster mass, Pernet et al. 2015 bootstrap null): z per bin = B - A "
                f"over the SD of its {draws.shape[0]} paired stimulus-bootstrap draws, clusters of |z| above the "
                f"two-sided 5% normal quantile, mass = sum of z, null = largest mass of each draw centred on the "
                f"draws' mean, family-wise over the region's bins; bins with a NaN difference or mostly NaN draws "
                f"not tested; beside the per-bin tests, not used for their marks")
    return (f"cluster-based sign-flip permutation test over contiguous bins per region (Maris & Oostenveld 2007; "
            f"mne's permutation_cluster_1samp_test): t over sites per bin of B - A, clusters of |t| above the "
            f"two-sided 5% t quantile, mass = sum of t, {n_permutations} flips, family-wise over the region's bins; "
            f"sites with a NaN in a tested bin left out, bins where most sites are NaN not tested; beside the "
            f"per-bin tests, not used for their marks")


def _paired_draws(a: xr.Dataset, b: xr.Dataset, variable: str, ids: tuple[list[int], list[int]]
                  ) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """Both models' per-site stimulus draws on the shared sites, when they pair up, and how it was resampled."""
    sites_only = "sites resampled with replacement (paired); "
    da, db = stimulus_draws(a, variable), stimulus_draws(b, variable)
    if da is None or db is None:
        return None, None, sites_only + "stimuli not resampled: the ScoreSets carry no stimulus-bootstrap draws"
    key_a, key_b = a.attrs.get("stimulus_draws"), b.attrs.get("stimulus_draws")
    if not key_a or key_a != key_b:
        return None, None, (sites_only + "stimuli not resampled: the two ScoreSets' stimulus draws were made on "
                            "different stimuli or seeds, so they do not pair")
    return (da[:, ids[0]], db[:, ids[1]],
            f"two-level bootstrap: each draw takes one of the {da.shape[0]} stored stimulus-bootstrap draws of both "
            "models (the same resampled stimuli, every site rescored on them) and resamples the sites with "
            "replacement (paired)")


def _align(a: xr.Dataset, b: xr.Dataset, variable: str) -> tuple[xr.DataArray, xr.DataArray, tuple[list, list]]:
    for ds in (a, b):
        require(ds, [variable, *_PER_SITE], "comparing ScoreSets")
        if set(ds[variable].dims) != {"neuroid", "time_bin"}:
            raise NeurofitError(f"ScoreSet {label(ds)!r}: {variable!r} must have dims (neuroid, time_bin), "
                                f"has {ds[variable].dims}")
    (sa, ea), (sb, eb) = time_bins(a), time_bins(b)
    if sa.shape != sb.shape or not (np.allclose(sa, sb) and np.allclose(ea, eb)):
        raise NeurofitError(
            f"ScoreSets {label(a, 'a')!r} and {label(b, 'b')!r} have different time bins "
            f"({sa.size} bins from {sa.min():g} ms vs {sb.size} bins from {sb.min():g} ms); "
            "compare ScoreSets of the same benchmark"
        )
    ids_a = a["neuroid_id"].values.astype(str)
    ids_b = b["neuroid_id"].values.astype(str)
    position_b = {nid: i for i, nid in enumerate(ids_b)}
    take_a = [i for i, nid in enumerate(ids_a) if nid in position_b]
    if not take_a:
        raise NeurofitError(
            f"ScoreSets {label(a, 'a')!r} and {label(b, 'b')!r} share no neuroid_id; compare ScoreSets of the "
            "same benchmark"
        )
    take_b = [position_b[ids_a[i]] for i in take_a]
    xa = a[variable].isel(neuroid=take_a).transpose("neuroid", "time_bin")
    xb = b[variable].isel(neuroid=take_b).transpose("neuroid", "time_bin")
    ra, rb = xa["region"].values.astype(str), xb["region"].values.astype(str)
    if np.any(ra != rb):
        bad = int(np.flatnonzero(ra != rb)[0])
        raise NeurofitError(f"neuroid_id {ids_a[take_a[bad]]!r} is in region {ra[bad]!r} in {label(a, 'a')!r} "
                            f"but {rb[bad]!r} in {label(b, 'b')!r}")
    keep = list(_PER_SITE)
    xa = xa.reset_coords([c for c in xa.coords if c not in keep], drop=True)
    xb = xb.reset_coords([c for c in xb.coords if c not in keep], drop=True)
    xb = xb.assign_coords({c: xa[c] for c in keep})  # b takes a's labels, so the two line up exactly
    return xa, xb, (take_a, take_b)


# ------------------------------------------------------------------------------------------------ compare()
def compare(
    *scoresets: xr.Dataset | str | os.PathLike[str],
    labels: Sequence[str] | None = None,
    variable: str | None = None,
    method: str = "fdr_bh",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    reliable_only: bool = True,
    n_permutations: int = 10000,
    out: str | os.PathLike[str] | None = None,
) -> xr.Dataset:
    """Compare ScoreSets with the first (the reference, model A): each other one is a model B, ``B - A``.

    Parameters
    ----------
    *scoresets : Dataset or path
        Two or more ScoreSets of the same benchmark (NetCDF files or objects).
    labels : sequence of str, optional
        A name per ScoreSet (default: each one's ``model_id``; repeated ids get ``#2``, ``#3``...).
    variable, method, alpha, n_boot, seed, reliable_only, n_permutations
        As :func:`compare_scoresets`; the correction runs over every comparison together.
    out : path, optional
        Write the result as NetCDF (atomically).

    Returns
    -------
    xarray.Dataset
        Dims ``(comparison, region, time_bin)`` with the variables of :func:`compare_scoresets`; coords
        ``model_a`` (the reference) and ``model_b`` along ``comparison``.

    Example
    -------
    >>> result = compare(*_example_pair(), n_boot=200)
    >>> str(result.model_a.item()), str(result.model_b.item()), result.attrs["difference"][:5]
    ('feedforward', 'recurrent', 'B - A')
    """
    if len(scoresets) < 2:
        raise NeurofitError(f"compare needs at least two ScoreSets, got {len(scoresets)}")
    loaded = [item if isinstance(item, xr.Dataset) else read_scoreset(item) for item in scoresets]
    names = list(labels) if labels is not None else _labels(loaded)
    if len(names) != len(loaded):
        raise NeurofitError(f"{len(names)} labels for {len(loaded)} ScoreSets")
    benchmarks = {str(ds.attrs.get("benchmark", "")) for ds in loaded}
    if len(benchmarks) > 1:
        raise NeurofitError(f"the ScoreSets come from different benchmarks ({', '.join(sorted(benchmarks))}); "
                            "compare ScoreSets of one benchmark")
    reference = loaded[0]
    results = compare_many([(reference, other) for other in loaded[1:]], variable=variable, method=method,
                           alpha=alpha, n_boot=n_boot, seed=seed, reliable_only=reliable_only,
                           n_permutations=n_permutations)
    combined = stack_comparisons(results, [reference] * len(results), loaded[1:], [names[0]] * len(results),
                                 names[1:])
    if out is not None:
        write_scoreset(combined, out)  # NetCDF, atomically, nested attrs JSON-encoded as for ScoreSets
    return combined


def stack_comparisons(results: Sequence[xr.Dataset], references: Sequence[xr.Dataset], others: Sequence[xr.Dataset],
                      names_a: Sequence[str], names_b: Sequence[str]) -> xr.Dataset:
    """Comparisons of one benchmark (from one :func:`compare_many` family) as one Dataset along ``comparison``.

    Example
    -------
    >>> a, b = _example_pair()
    >>> stack_comparisons(compare_many([(a, b)], n_boot=50), [a], [b], ["ff"], ["rec"]).model_b.values.tolist()
    ['rec']
    """
    attrs = dict(results[0].attrs)
    combined = xr.concat(list(results), dim="comparison", coords="minimal", compat="override",
                         combine_attrs="drop")
    combined = combined.assign_coords(
        comparison=("comparison", np.arange(len(results))),
        model_a=("comparison", np.array(list(names_a))),
        model_b=("comparison", np.array(list(names_b))),
    )
    attrs.update({
        "model_a": ", ".join(dict.fromkeys(names_a)),
        "model_b": ", ".join(names_b),
        "reference": ", ".join(dict.fromkeys(names_a)),
        "scoresets": [str(ds.attrs.get("model_id", "")) for ds in [references[0], *others]],
        "weights_sha256": [str(ds.attrs.get("weights_sha256", "")) for ds in [references[0], *others]],
        "weights": [str(ds.attrs.get("weights", "")) for ds in [references[0], *others]],
        "n_sites_only_b": [int(r.attrs["n_sites_only_b"]) for r in results],
    })
    combined.attrs = attrs
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


# ------------------------------------------------------------------------------------------------ reading it
def verdict(result: xr.Dataset, comparison: int = 0) -> dict[str, list[tuple[str, float, float]]]:
    """Bins per outcome: ``better`` / ``worse`` (B significantly above / below A), ``no_difference`` (tested,
    not significant), ``unreliable`` (ceiling not reliable), ``no_draws`` (a population metric's bin, reliable,
    left untested because the ScoreSets carry no paired stimulus-bootstrap draws) and ``not_driven``, as
    (region, start, end).

    Example
    -------
    >>> out = verdict(compare(*_example_pair(), n_boot=200))
    >>> out["better"], out["no_difference"]
    ([('IT', 10.0, 20.0)], [('IT', 0.0, 10.0)])
    """
    cmp = result.isel(comparison=comparison) if "comparison" in result.dims else result
    start, end = cmp["time_bin_start"].values, cmp["time_bin_end"].values
    out: dict[str, list[tuple[str, float, float]]] = {k: [] for k in ("better", "worse", "no_difference",
                                                                     "unreliable", "no_draws", "not_driven")}
    for k, region in enumerate(str(v) for v in cmp["region"].values):
        cell = cmp.isel(region=k)
        for b in range(cmp.sizes["time_bin"]):
            where = (region, float(start[b]), float(end[b]))
            if not bool(cell["driven"].values[b]):
                out["not_driven"].append(where)
            elif not bool(cell["tested"].values[b]):
                # a driven bin goes untested for an unreliable ceiling, or (a reliable one) for want of draws
                out["no_draws" if bool(cell["reliable"].values[b]) else "unreliable"].append(where)
            elif bool(cell["significant"].values[b]):
                out["better" if cell["median_difference"].values[b] > 0 else "worse"].append(where)
            else:
                out["no_difference"].append(where)
    return out


def verdict_ranges(result: xr.Dataset, comparison: int = 0) -> dict[str, dict[str, str]]:
    """:func:`verdict` as time ranges per region: ``{region: {outcome: "70-250 ms" or ""}}``.

    Example
    -------
    >>> verdict_ranges(compare(*_example_pair(), n_boot=200))["IT"]["better"]
    '10-20 ms'
    """
    cmp = result.isel(comparison=comparison) if "comparison" in result.dims else result
    start, end = cmp["time_bin_start"].values, cmp["time_bin_end"].values
    outcome = verdict(result, comparison)
    out: dict[str, dict[str, str]] = {}
    for region in (str(v) for v in cmp["region"].values):
        out[region] = {}
        for key, cells in outcome.items():
            mask = np.array([any(r == region and np.isclose(s, x) for r, x, _ in cells) for s in start])
            out[region][key] = ranges(start, end, mask)
    return out


def verdict_text(result: xr.Dataset, comparison: int = 0) -> list[str]:
    """The verdict as lines: where B is better, worse, not detectably different, and what was not tested.

    Example
    -------
    >>> print("\\n".join(verdict_text(compare(*_example_pair(), n_boot=200))))
    recurrent (B) vs feedforward (A, reference), ceiled score, Benjamini-Hochberg FDR 0.05 across 2 tests:
      IT better: 10-20 ms
      IT worse: none
      IT no detectable difference: 0-10 ms
    """
    cmp = result.isel(comparison=comparison) if "comparison" in result.dims else result
    name_a = str(cmp["model_a"].values) if "model_a" in cmp.coords else result.attrs.get("model_a", "A")
    name_b = str(cmp["model_b"].values) if "model_b" in cmp.coords else result.attrs.get("model_b", "B")
    method = {"fdr_bh": "Benjamini-Hochberg FDR", "fdr_by": "Benjamini-Yekutieli FDR", "holm": "Holm",
              "bonferroni": "Bonferroni"}.get(result.attrs.get("correction", ""), result.attrs.get("correction", ""))
    lines = [f"{name_b} (B) vs {name_a} (A, reference), {_variable_text(result)}, {method} "
             f"{result.attrs.get('alpha', 0.05):g} across {result.attrs.get('n_tests', '?')} tests:"]
    for region, where in verdict_ranges(result, comparison).items():
        for key, text in (("better", "better"), ("worse", "worse"), ("no_difference", "no detectable difference"),
                          ("unreliable", "not tested, ceiling not reliable"),
                          ("no_draws", "not tested, no paired stimulus-bootstrap draws"),
                          ("not_driven", "not tested, a model not driven")):
            if key in ("unreliable", "no_draws", "not_driven") and not where[key]:
                continue
            lines.append(f"  {region} {text}: {where[key] or 'none'}")
    return lines


def _variable_text(result: xr.Dataset) -> str:
    variable = result.attrs.get("variable", "ceiled")
    return "ceiled score" if variable == "ceiled" else ("Pearson r" if variable == "r" else variable)


def comparison_table(result: xr.Dataset) -> str:
    """One row per comparison, region and bin: medians of A and B, ``B - A`` with its interval, p, q, a mark.

    ``*`` marks a bin where B differs from A after the correction, which is exactly where the interval
    excludes 0; untested bins say why instead of showing a test.

    Example
    -------
    >>> print(comparison_table(compare(*_example_pair(), n_boot=50)).splitlines()[1])
    B vs A (reference)        region  window (ms)  median A  median B  B - A [97.5% CI]           p    q (fdr_bh)
    """
    method = str(result.attrs.get("correction", "q"))
    level = 100 * float(result.attrs.get("ci_level", 0.95))
    header = ("B vs A (reference)", "region", "window (ms)", "median A", "median B", f"B - A [{level:.4g}% CI]",
              "p", f"q ({method})")
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
                window = f"{starts[b]:g}-{ends[b]:g}"
                if not bool(cell.driven):
                    rows.append((name, region, window, f(float(cell.median_a)), f(float(cell.median_b)),
                                 "not driven (no paired sites)", "", ""))
                    continue
                diff = f"{f(float(cell.median_difference), '+.3f')} [{f(float(cell.ci_low), '+.3f')}, " \
                       f"{f(float(cell.ci_high), '+.3f')}]"
                if not bool(cell.tested):
                    why = "no paired stimulus draws" if bool(cell.reliable) else "unreliable ceiling"
                    rows.append((name, region, window, f(float(cell.median_a)), f(float(cell.median_b)),
                                 f"{why}, not tested", "", ""))
                    continue
                rows.append((name, region, window, f(float(cell.median_a)), f(float(cell.median_b)),
                             diff + (" *" if bool(cell.significant) else ""), f(float(cell.p), ".2g"),
                             f(float(cell.q), ".2g")))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.insert(0, comparison_metric_line(result))
    weights = [str(w) for w in result.attrs.get("weights", []) or []]
    if any(weights):
        names = [str(n) for n in result.attrs.get("scoresets", [])]
        lines.insert(1, "weights: " + "; ".join(f"{n}: {w or 'not recorded'}" for n, w in zip(names, weights)))
    lines.append(f"B - A: {result.attrs.get('estimate', 'median of paired differences')}; "
                 f"uncertainty: {result.attrs.get('uncertainty', '')}")
    lines.append(f"* significant after {method} across {result.attrs.get('n_tests', '?')} tests (alpha "
                 f"{result.attrs.get('alpha', 0.05):g}); marked exactly where the {level:.4g}% interval excludes 0")
    return "\n".join(lines)


def comparison_metric_line(result: xr.Dataset) -> str:
    """The first line of a comparison's output: what is compared, and how.

    Example
    -------
    >>> comparison_metric_line(compare(*_example_pair(), n_boot=50))[:40]
    'compared: ceiled score per site, B - A ='
    """
    note = result.attrs.get("variable_note", "")
    if result.attrs.get("metric_scope") == "population":
        return (f"compared: {result.attrs.get('metric')} {_variable_text(result)} per region (a population metric), "
                f"B - A = difference of the region's values, {result.attrs.get('n_boot', '?')} draws over the "
                "stored stimulus-bootstrap draws" + (f" ({note})" if note else ""))
    metric = f"{result.attrs['metric']} " if result.attrs.get("metric") else ""
    ceiled = result.attrs.get("variable", "ceiled") == "ceiled"
    what = f" ({result.attrs['partition_ceiled']})" if ceiled and result.attrs.get("partition_ceiled") else ""
    return (f"compared: {metric}{_variable_text(result)}{what} per site, B - A = median of paired per-site "
            f"differences, {result.attrs.get('n_boot', '?')} bootstrap draws" + (f" ({note})" if note else ""))


def _example_pair() -> tuple[xr.Dataset, xr.Dataset]:
    rng = np.random.default_rng(0)

    def toy(shift: np.ndarray, name: str) -> xr.Dataset:
        values = rng.normal(0.5, 0.05, (30, 2)) + shift
        ceiling = np.full((30, 2), 0.8)
        return xr.Dataset({"ceiled": (("neuroid", "time_bin"), values),
                           "r": (("neuroid", "time_bin"), np.sqrt(values * ceiling)),
                           "ceiling": (("neuroid", "time_bin"), ceiling)},
                          coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(30)]),
                                  "region": ("neuroid", ["IT"] * 30),
                                  "time_bin_start": ("time_bin", [0.0, 10.0]),
                                  "time_bin_end": ("time_bin", [10.0, 20.0])},
                          attrs={"model_id": name, "benchmark": "toy"})

    return toy(np.zeros(2), "feedforward"), toy(np.array([0.0, 0.2]), "recurrent")


__all__ = ["compare", "compare_many", "compare_scoresets", "comparison_table", "paired_difference", "stack_comparisons",
           "verdict", "verdict_ranges", "verdict_text"]
