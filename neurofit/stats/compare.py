"""Comparing two ScoreSets site by site and bin by bin: the single implementation behind ``neurofit compare``.

For every region and time bin: the difference of the two models' median scores over the shared sites, its
bootstrap CI (sites resampled, paired), a Wilcoxon signed-rank and a paired t-test over the sites, and
the p values corrected across all regions and bins (and across several comparisons with
:func:`compare_many`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from neurofit.errors import NeurofitError
from neurofit.stats.bootstrap import bootstrap_median_difference
from neurofit.stats.multiple import METHODS, fdr
from neurofit.stats.paired import PAIRED_T, WILCOXON, paired_tests
from neurofit.stats.scoreset import label, require, time_bins

_PER_SITE = ("region", "neuroid_id", "time_bin_start", "time_bin_end")


def compare_scoresets(
    a: xr.Dataset,
    b: xr.Dataset,
    *,
    variable: str = "ceiled",
    method: str = "fdr_bh",
    alpha: float = 0.05,
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
    n_permutations: int = 10000,
) -> xr.Dataset:
    """Paired comparison of ScoreSet ``a`` against ``b`` over their shared sites, per region and time bin.

    Sites are matched by ``neuroid_id`` (sites present in only one ScoreSet are left out and counted in the
    attrs); the time bins must be the same. A site whose score is NaN in either model is dropped for that
    bin.

    Parameters
    ----------
    a, b : Dataset
        ScoreSets with ``variable`` on ``(neuroid, time_bin)`` and coords ``neuroid_id``, ``region``,
        ``time_bin_start``, ``time_bin_end``.
    variable : str
        The per-site score compared (default ``"ceiled"``; ``"r"`` compares raw correlations).
    method : str
        Multiple-comparison correction across all regions x bins (``"fdr_bh"`` Benjamini-Hochberg,
        ``"holm"``, ``"bonferroni"``, ``"fdr_by"``), applied to the Wilcoxon p values.
    alpha : float
        Level of the corrected test that sets ``significant``.
    n_boot, ci, seed : int, float, int
        Bootstrap draws, coverage and seed of the CI of the difference of medians (sites resampled).
    n_permutations : int
        Sign flips of the cluster-based permutation test over bins (:mod:`neurofit.stats.cluster`; 0: none).

    Returns
    -------
    Dataset with dims ``(region, time_bin)``, coords ``region``, ``time_bin_start``, ``time_bin_end`` and
    variables ``n_sites``, ``median_a``, ``median_b``, ``median_difference`` (``median_a - median_b``),
    ``ci_low``, ``ci_high``, ``wilcoxon_statistic``, ``wilcoxon_p``, ``t_statistic``, ``t_p``, ``q``
    (corrected Wilcoxon p), ``significant`` (``q < alpha``), and from the cluster test over contiguous bins
(family-wise over the bins of a region) ``cluster_p`` (the p value of the cluster a bin belongs to, NaN
outside clusters) and ``cluster_significant``. attrs record the models, benchmarks, tests,
    correction, alpha and bootstrap settings.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> def toy(shift):
    ...     return xr.Dataset({"ceiled": (("neuroid", "time_bin"), rng.normal(0.5 + shift, 0.05, (30, 2)))},
    ...                       coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(30)]),
    ...                               "region": ("neuroid", ["IT"] * 30),
    ...                               "time_bin_start": ("time_bin", [0.0, 10.0]),
    ...                               "time_bin_end": ("time_bin", [10.0, 20.0])})
    >>> out = compare_scoresets(toy(0.2), toy(0.0), n_boot=200)
    >>> out.significant.values.tolist()
    [[True, True]]
    """
    if method not in METHODS:
        raise NeurofitError(f"unknown multiple-comparison method {method!r}: use one of {sorted(METHODS)}")
    xa, xb = _align(a, b, variable)
    region_of_site = xa["region"].values.astype(str)
    names = [str(v) for v in dict.fromkeys(region_of_site)]
    per_region = []
    for i, region in enumerate(names):
        sel = np.flatnonzero(region_of_site == region)
        t = paired_tests(xa.isel(neuroid=sel), xb.isel(neuroid=sel), dim="neuroid")
        # A different seed per region keeps the draws independent while the whole result stays reproducible.
        bs = bootstrap_median_difference(xa.isel(neuroid=sel), xb.isel(neuroid=sel), dim="neuroid",
                                         n_boot=n_boot, ci=ci, seed=seed + i)
        merged = xr.merge([t.drop_vars(["median_difference"]), bs], compat="override")
        merged["cluster_p"] = ("time_bin", _cluster_p(xa.isel(neuroid=sel).values - xb.isel(neuroid=sel).values,
                                                      n_permutations, seed + i))
        per_region.append(merged)
    out = xr.concat(per_region, dim="region", coords="minimal", compat="override", combine_attrs="drop")
    out = out.assign_coords(region=("region", names)).rename({"n": "n_sites"})
    corrected = fdr(out["wilcoxon_p"], method=method, alpha=alpha)
    out["q"] = corrected["q"]
    out["significant"] = corrected["significant"]
    out["cluster_significant"] = out["cluster_p"] < alpha
    order = ["n_sites", "median_a", "median_b", "median_difference", "ci_low", "ci_high", "wilcoxon_statistic",
             "wilcoxon_p", "t_statistic", "t_p", "q", "significant", "cluster_p", "cluster_significant"]
    out = out[order].transpose("region", "time_bin")
    shared = int(xa.sizes["neuroid"])
    out.attrs = {
        "model_a": label(a, "a"),
        "model_b": label(b, "b"),
        "benchmark_a": str(a.attrs.get("benchmark", "")),
        "benchmark_b": str(b.attrs.get("benchmark", "")),
        "variable": variable,
        "difference": "median_a - median_b (medians over the sites valid in both, per region and bin)",
        "wilcoxon_test": WILCOXON,
        "t_test": PAIRED_T,
        "correction": method,
        "correction_description": METHODS[method],
        "correction_family": "all regions x time bins of this comparison, on the Wilcoxon p values",
        "alpha": float(alpha),
        "bootstrap": f"{n_boot} draws of the sites with replacement, paired; {100 * ci:g}% percentile interval",
        "n_boot": int(n_boot),
        "ci": float(ci),
        "seed": int(seed),
        "n_shared_sites": shared,
        "n_sites_only_a": int(a.sizes["neuroid"] - shared),
        "n_sites_only_b": int(b.sizes["neuroid"] - shared),
        "cluster_test": (f"cluster-based sign-flip permutation test over contiguous bins per region (Maris & "
                         f"Oostenveld 2007; mne's permutation_cluster_1samp_test): t over sites per bin, clusters "
                         f"of |t| above the two-sided 5% t quantile, mass = sum of t, {n_permutations} flips, "
                         f"family-wise over the region's bins; sites with a NaN in a tested bin left out, bins "
                         f"where most sites are NaN not tested" if n_permutations else "not run"),
    }
    return out


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


def compare_many(
    pairs: Sequence[tuple[xr.Dataset, xr.Dataset]],
    *,
    method: str = "fdr_bh",
    alpha: float = 0.05,
    **kwargs,
) -> list[xr.Dataset]:
    """:func:`compare_scoresets` for several pairs, with the correction applied across all of them at once.

    The family is every (pair, region, time bin) test, so adding models makes each mark harder to earn.

    Example
    -------
    >>> rng = np.random.default_rng(1)
    >>> def toy(shift):
    ...     return xr.Dataset({"ceiled": (("neuroid", "time_bin"), rng.normal(0.5 + shift, 0.05, (30, 1)))},
    ...                       coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(30)]),
    ...                               "region": ("neuroid", ["IT"] * 30),
    ...                               "time_bin_start": ("time_bin", [0.0]), "time_bin_end": ("time_bin", [10.0])})
    >>> out = compare_many([(toy(0.2), toy(0.0)), (toy(0.0), toy(0.0))], n_boot=100)
    >>> [bool(o.significant.item()) for o in out], out[0].attrs["correction_family"]
    ([True, False], 'all regions x time bins of all 2 comparisons, on the Wilcoxon p values')
    """
    results = [compare_scoresets(a, b, method=method, alpha=alpha, **kwargs) for a, b in pairs]
    if len(results) < 2:
        return results
    p = np.concatenate([r["wilcoxon_p"].values.ravel() for r in results])
    corrected = fdr(p, method=method, alpha=alpha)
    q, significant = corrected["q"].values, corrected["significant"].values
    start = 0
    for r in results:
        size = r["wilcoxon_p"].size
        r["q"] = (r["wilcoxon_p"].dims, q[start:start + size].reshape(r["wilcoxon_p"].shape))
        r["significant"] = (r["wilcoxon_p"].dims, significant[start:start + size].reshape(r["wilcoxon_p"].shape))
        r.attrs["correction_family"] = (f"all regions x time bins of all {len(results)} comparisons, "
                                        "on the Wilcoxon p values")
        start += size
    return results


def _align(a: xr.Dataset, b: xr.Dataset, variable: str) -> tuple[xr.DataArray, xr.DataArray]:
    for ds in (a, b):
        require(ds, [variable, *_PER_SITE], "compare_scoresets")
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
    keep = ["neuroid_id", "region", "time_bin_start", "time_bin_end"]
    xa = xa.reset_coords([c for c in xa.coords if c not in keep], drop=True)
    xb = xb.reset_coords([c for c in xb.coords if c not in keep], drop=True)
    # b takes a's labels so that the two line up exactly for the paired routines.
    xb = xb.assign_coords({c: xa[c] for c in keep})
    return xa, xb
