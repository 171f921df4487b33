"""Statistics over ScoreSets checked against scipy and statsmodels on fixed random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scoreset_fixtures import make_scoreset
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import DescrStatsW

from neurofit.errors import NeurofitError
from neurofit.stats import (
    bootstrap_median_difference,
    bootstrap_median_difference_stimuli,
    compare_many,
    compare_scoresets,
    fdr,
    paired_tests,
)
from neurofit.stats.paired import wilcoxon_method


def _pair(seed: int, n_sites: int = 30, n_bins: int = 6, nan_fraction: float = 0.1):
    rng = np.random.default_rng(seed)
    a = rng.normal(0.5, 0.2, (n_sites, n_bins))
    b = a - rng.normal(0.05, 0.1, (n_sites, n_bins))
    a[rng.random(a.shape) < nan_fraction] = np.nan
    b[rng.random(b.shape) < nan_fraction] = np.nan
    coords = {"time_bin_start": ("time_bin", 10.0 * np.arange(n_bins))}
    return (xr.DataArray(a, dims=("neuroid", "time_bin"), coords=coords),
            xr.DataArray(b, dims=("neuroid", "time_bin"), coords=coords))


@pytest.mark.parametrize("seed,n_sites", [(0, 30), (1, 12), (2, 80)])
def test_paired_tests_match_scipy_and_statsmodels_with_nan_sites_dropped_pairwise(seed, n_sites):
    a, b = _pair(seed, n_sites)
    out = paired_tests(a, b)
    assert out.wilcoxon_p.dims == ("time_bin",)
    np.testing.assert_array_equal(out.time_bin_start, a.time_bin_start)
    for k in range(a.sizes["time_bin"]):
        va, vb = a.values[:, k], b.values[:, k]
        keep = np.isfinite(va) & np.isfinite(vb)
        diff = va[keep] - vb[keep]
        w = stats.wilcoxon(va[keep], vb[keep], method=wilcoxon_method(diff))
        t = stats.ttest_rel(va[keep], vb[keep])
        t_sm, p_sm, _ = DescrStatsW(diff).ttest_mean(0.0)
        assert out.n.values[k] == keep.sum()
        np.testing.assert_allclose(out.wilcoxon_statistic.values[k], w.statistic, rtol=1e-12)
        np.testing.assert_allclose(out.wilcoxon_p.values[k], w.pvalue, rtol=1e-12)
        np.testing.assert_allclose(out.t_p.values[k], t.pvalue, rtol=1e-12)
        np.testing.assert_allclose(out.t_statistic.values[k], t_sm, rtol=1e-10)
        np.testing.assert_allclose(out.t_p.values[k], p_sm, rtol=1e-10)
        np.testing.assert_allclose(out.median_difference.values[k], np.median(va[keep]) - np.median(vb[keep]))


def test_wilcoxon_is_exact_for_small_untied_samples_and_asymptotic_with_ties():
    small = np.array([0.3, -0.1, 0.25, 0.4, 0.05, 0.12, -0.2, 0.33])
    assert wilcoxon_method(small) == "exact"
    a = xr.DataArray(small[:, None], dims=("neuroid", "time_bin"))
    out = paired_tests(a, xr.zeros_like(a))
    assert out.wilcoxon_p.item() == pytest.approx(stats.wilcoxon(small, method="exact").pvalue, rel=1e-12)
    tied = np.array([0.1, 0.1, 0.2, -0.3, 0.0, 0.4])
    assert wilcoxon_method(tied) == "asymptotic"


def test_paired_tests_give_nan_when_the_test_is_undefined():
    a = xr.DataArray(np.array([[1.0, 1.0], [2.0, np.nan], [3.0, np.nan]]), dims=("neuroid", "time_bin"))
    out = paired_tests(a, a)  # all differences zero in bin 0; one valid pair in bin 1
    assert np.isnan(out.wilcoxon_p.values).all() and np.isnan(out.t_p.values).all()
    assert out.n.values.tolist() == [3, 1]


def test_paired_tests_reject_mismatched_inputs():
    a, b = _pair(0)
    with pytest.raises(NeurofitError, match="differ in shape"):
        paired_tests(a, b.isel(neuroid=slice(0, 5)))
    with pytest.raises(NeurofitError, match="'site'"):
        paired_tests(a, b, dim="site")


@pytest.mark.parametrize("method", ["fdr_bh", "holm"])
def test_fdr_matches_statsmodels_across_bins_and_models_and_skips_nan(method):
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, (3, 10)) ** 2
    p[1, 4] = np.nan
    pvalues = xr.DataArray(p, dims=("comparison", "time_bin"), coords={"comparison": ["x", "y", "z"]})
    out = fdr(pvalues, method=method, alpha=0.05)
    finite = np.isfinite(p)
    reject, q, _, _ = multipletests(p[finite], alpha=0.05, method=method)
    np.testing.assert_allclose(out.q.values[finite], q, rtol=1e-12)
    np.testing.assert_array_equal(out.significant.values[finite], reject)
    assert np.isnan(out.q.values[1, 4]) and not out.significant.values[1, 4]
    assert out.q.dims == ("comparison", "time_bin") and list(out.comparison.values) == ["x", "y", "z"]
    assert out.attrs["n_tests"] == 29 and out.attrs["method"] == method


def test_fdr_rejects_unknown_method_and_bad_p():
    with pytest.raises(NeurofitError, match="fdr_bh"):
        fdr([0.1], method="bh")
    with pytest.raises(NeurofitError, match=r"\[0, 1\]"):
        fdr([1.5])


def test_bootstrap_of_median_difference_matches_an_explicit_loop_and_is_seeded():
    a, b = _pair(4, n_sites=25, n_bins=3)
    out = bootstrap_median_difference(a, b, n_boot=300, ci=0.9, seed=7)
    av, bv = a.values.copy(), b.values.copy()
    missing = ~(np.isfinite(av) & np.isfinite(bv))
    av[missing] = np.nan
    bv[missing] = np.nan
    rng = np.random.default_rng(7)
    idx = rng.integers(0, 25, size=(300, 25))
    draws = np.array([[np.nanmedian(av[i, k]) - np.nanmedian(bv[i, k]) for k in range(3)] for i in idx])
    np.testing.assert_allclose(out.ci_low, np.percentile(draws, 5, axis=0), rtol=1e-12)
    np.testing.assert_allclose(out.ci_high, np.percentile(draws, 95, axis=0), rtol=1e-12)
    np.testing.assert_allclose(out.median_difference, np.nanmedian(av, 0) - np.nanmedian(bv, 0))
    again = bootstrap_median_difference(a, b, n_boot=300, ci=0.9, seed=7)
    assert again.identical(out)


def test_bootstrap_interval_agrees_with_scipy_bootstrap_paired_percentile():
    rng = np.random.default_rng(5)
    a = rng.gamma(2.0, 0.2, 60)
    b = a - rng.normal(0.1, 0.1, 60)
    ours = bootstrap_median_difference(xr.DataArray(a, dims="neuroid"), xr.DataArray(b, dims="neuroid"),
                                       n_boot=4000, seed=0)
    ref = stats.bootstrap((a, b), lambda x, y, axis: np.median(x, axis) - np.median(y, axis), paired=True,
                          n_resamples=4000, method="percentile", rng=np.random.default_rng(1))
    assert float(ours.ci_low) == pytest.approx(ref.confidence_interval.low, abs=0.01)
    assert float(ours.ci_high) == pytest.approx(ref.confidence_interval.high, abs=0.01)


def test_bootstrap_over_stimuli_recomputes_pearson_on_each_draw():
    rng = np.random.default_rng(6)
    y = rng.normal(size=(30, 5, 2))
    pa = y + rng.normal(0, 0.5, y.shape)
    pb = y + rng.normal(0, 1.5, y.shape)
    dims = ("presentation", "neuroid", "time_bin")
    out = bootstrap_median_difference_stimuli(*(xr.DataArray(x, dims=dims) for x in (pa, pb, y)), n_boot=50, seed=2)

    def stat(idx, k):
        ra = [stats.pearsonr(pa[idx, s, k], y[idx, s, k])[0] for s in range(5)]
        rb = [stats.pearsonr(pb[idx, s, k], y[idx, s, k])[0] for s in range(5)]
        return np.median(ra) - np.median(rb)

    rng = np.random.default_rng(2)
    draws = np.array([[stat(i, k) for k in range(2)] for i in (rng.integers(0, 30, size=30) for _ in range(50))])
    np.testing.assert_allclose(out.median_difference, [stat(np.arange(30), k) for k in range(2)], rtol=1e-10)
    np.testing.assert_allclose(out.ci_low, np.percentile(draws, 2.5, axis=0), rtol=1e-10)
    np.testing.assert_allclose(out.ci_high, np.percentile(draws, 97.5, axis=0), rtol=1e-10)
    assert (out.ci_low > 0).all()


def test_compare_scoresets_equals_per_region_tests_and_bh_over_regions_and_bins():
    ff = make_scoreset("feedforward", early=0.6, late=0.3, seed=0)
    rec = make_scoreset("recurrent", early=0.6, late=0.6, seed=1)
    # b's sites in another order: the comparison must pair them by neuroid_id.
    out = compare_scoresets(rec, ff.isel(neuroid=np.random.default_rng(0).permutation(ff.sizes["neuroid"])),
                            n_boot=200)
    assert out.median_difference.dims == ("region", "time_bin")
    assert list(out.region.values) == ["V4", "IT"]
    for region in ("V4", "IT"):
        sites = rec.region.values == region
        ref = paired_tests(rec.ceiled[sites], ff.ceiled[sites])
        np.testing.assert_allclose(out.wilcoxon_p.sel(region=region), ref.wilcoxon_p, rtol=1e-12)
        np.testing.assert_allclose(out.t_p.sel(region=region), ref.t_p, rtol=1e-12)
        np.testing.assert_allclose(out.median_difference.sel(region=region), ref.median_difference, rtol=1e-12)
    p = out.wilcoxon_p.values.ravel()
    finite = np.isfinite(p)
    reject, q, _, _ = multipletests(p[finite], method="fdr_bh")
    np.testing.assert_allclose(out.q.values.ravel()[finite], q, rtol=1e-12)
    np.testing.assert_array_equal(out.significant.values.ravel()[finite], reject)
    late = out.time_bin_start.values >= 180
    assert out.significant.values[:, late].all() and not out.significant.values[:, :3].any()
    assert (out.ci_low <= out.median_difference + 1e-12).all() and (out.ci_high >= out.median_difference - 1e-12).all()
    assert out.attrs["model_a"] == "recurrent" and out.attrs["correction"] == "fdr_bh"


def test_compare_many_corrects_across_all_comparisons():
    ff = make_scoreset("feedforward", late=0.3, seed=0)
    pairs = [(make_scoreset("rec1", late=0.6, seed=1), ff), (make_scoreset("rec2", late=0.35, seed=2), ff)]
    out = compare_many(pairs, method="holm", n_boot=50)
    p = np.concatenate([o.wilcoxon_p.values.ravel() for o in out])
    finite = np.isfinite(p)
    _, q, _, _ = multipletests(p[finite], method="holm")
    np.testing.assert_allclose(np.concatenate([o.q.values.ravel() for o in out])[finite], q, rtol=1e-12)


def test_compare_scoresets_names_the_problem():
    ff = make_scoreset("feedforward")
    with pytest.raises(NeurofitError, match="different time bins"):
        compare_scoresets(ff, make_scoreset("x", n_bins=10))
    other = ff.assign_coords(neuroid_id=("neuroid", [f"z{i}" for i in range(ff.sizes["neuroid"])]))
    with pytest.raises(NeurofitError, match="share no neuroid_id"):
        compare_scoresets(ff, other)
    with pytest.raises(NeurofitError, match="'ceiled'"):
        compare_scoresets(ff.drop_vars("ceiled"), ff)
