"""Statistics over ScoreSets checked against scipy, statsmodels and explicit resampling on fixed random inputs."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from scoreset_fixtures import make_scoreset
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.weightstats import DescrStatsW

from neurofit.errors import NeurofitError
from neurofit.stats import compare_many, compare_scoresets, fdr, paired_tests
from neurofit.stats.bootstrap import bootstrap_p, hierarchical_median, inverted_interval, percentile_interval
from neurofit.stats.multiple import selection_level
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
        diff = vb[keep] - va[keep]  # b - a: the second minus the reference, as every comparison
        w = stats.wilcoxon(vb[keep], va[keep], method=wilcoxon_method(diff))
        t = stats.ttest_rel(vb[keep], va[keep])
        t_sm, p_sm, _ = DescrStatsW(diff).ttest_mean(0.0)
        assert out.n.values[k] == keep.sum()
        np.testing.assert_allclose(out.wilcoxon_statistic.values[k], w.statistic, rtol=1e-12)
        np.testing.assert_allclose(out.wilcoxon_p.values[k], w.pvalue, rtol=1e-12)
        np.testing.assert_allclose(out.t_p.values[k], t.pvalue, rtol=1e-12)
        np.testing.assert_allclose(out.t_statistic.values[k], t_sm, rtol=1e-10)
        np.testing.assert_allclose(out.t_p.values[k], p_sm, rtol=1e-10)
        np.testing.assert_allclose(out.median_difference.values[k], np.median(vb[keep]) - np.median(va[keep]))
        np.testing.assert_allclose(out.mean_difference.values[k], diff.mean())


def test_paired_tests_take_the_second_minus_the_reference_as_compare_does():
    a, b = _pair(4, nan_fraction=0.0)  # b lies below a by about 0.05 per site
    out = paired_tests(a, b)
    assert (out.median_difference < 0).all() and (out.mean_difference < 0).all() and (out.t_statistic < 0).all()
    flipped = paired_tests(b, a)
    np.testing.assert_array_equal(flipped.median_difference, -out.median_difference)
    np.testing.assert_allclose(flipped.t_statistic, -out.t_statistic, rtol=1e-12)
    np.testing.assert_array_equal(flipped.wilcoxon_p, out.wilcoxon_p)
    scores_a, scores_b = (xr.Dataset({"r": v}, coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(30)]),
                                                        "region": ("neuroid", ["IT"] * 30),
                                                        "time_bin_end": ("time_bin", 10.0 * np.arange(1, 7))})
                          for v in (a, b))
    compared = compare_scoresets(scores_a, scores_b, variable="r", n_boot=50, n_permutations=0)
    assert np.sign(compared.median_difference.values[0]).tolist() == np.sign(out.median_difference.values).tolist()


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


@pytest.fixture()
def no_forced_gc(monkeypatch):
    """statsmodels' Holm calls gc.collect() on every call, a second each in a large test process."""
    import gc

    monkeypatch.setattr(gc, "collect", lambda *args: 0)


@pytest.mark.parametrize("method", ["fdr_bh", "fdr_by", "holm", "bonferroni"])
def test_selection_level_selects_exactly_what_statsmodels_rejects(method, no_forced_gc):
    rng = np.random.default_rng(11)
    for _ in range(60):
        p = rng.uniform(0, 1, rng.integers(1, 60)) ** rng.uniform(1, 8)
        if rng.random() < 0.5:
            p = np.round(p * 500) / 500  # ties and exact zeros, as bootstrap p values have
        reject = multipletests(p, alpha=0.05, method=method)[0]
        np.testing.assert_array_equal(p <= selection_level(p, method, 0.05), reject)


def test_bh_selection_level_is_the_fcr_adjusted_level_of_benjamini_yekutieli_2005():
    p = np.array([0.0001, 0.004, 0.02, 0.03, 0.5, 0.9])
    selected = int(multipletests(p, method="fdr_bh")[0].sum())
    assert selected == 4 and selection_level(p, "fdr_bh", 0.05) == pytest.approx(selected * 0.05 / p.size)
    assert selection_level(np.array([0.5, 0.9]), "fdr_bh", 0.05) == pytest.approx(0.05 / 2)  # none selected


def test_bootstrap_p_and_the_inverted_interval_agree_at_every_level_and_value():
    rng = np.random.default_rng(0)
    for n in (7, 50, 1000):
        draws = np.round(rng.normal(0.1, 0.2, (n, 3)), 2)  # rounded: draws equal to the tested value
        draws[rng.random(draws.shape) < 0.05] = np.nan
        for gamma in (0.0, 0.001, 0.01, 0.05, 0.2, 2 / n, 4 / n):
            low, high = inverted_interval(draws, gamma)
            for v in (-0.2, 0.0, 0.05, 0.1, 0.3):
                excluded = (low > v) | (high < v)
                np.testing.assert_array_equal(excluded, bootstrap_p(draws, v) <= gamma)


def test_inverted_interval_bounds_are_the_order_statistics_and_p_counts_the_far_side():
    rng = np.random.default_rng(1)
    draws = rng.normal(size=200)
    low, high = inverted_interval(draws, 0.05)
    ordered = np.sort(draws)
    assert float(low) == ordered[5] and float(high) == ordered[200 - 6]  # j = 5: 2 * 5 / 200 <= 0.05 < 2 * 6 / 200
    assert float(bootstrap_p(draws, 0.0)) == 2 * min((draws <= 0).sum(), (draws >= 0).sum()) / 200


def test_hierarchical_median_equals_an_explicit_two_level_loop():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(15, 3))
    values[2, 1] = np.nan
    stim = values[None] + rng.normal(0, 0.1, (4, 15, 3))
    out = hierarchical_median(values, stim, n_boot=9, seed=5)
    sites_only = hierarchical_median(values, n_boot=9, seed=5)
    idx = np.random.default_rng(5).integers(0, 15, size=(9, 15))
    for k in range(9):
        np.testing.assert_allclose(out[k], np.nanmedian(stim[k % 4][idx[k]], axis=0))
        np.testing.assert_allclose(sites_only[k], np.nanmedian(values[idx[k]], axis=0))


def test_sites_only_interval_agrees_with_scipy_bootstrap_percentile():
    rng = np.random.default_rng(5)
    diff = rng.gamma(2.0, 0.2, 60) - 0.3
    low, high = percentile_interval(hierarchical_median(diff[:, None], n_boot=4000, seed=0)[:, 0], 0.95)
    ref = stats.bootstrap((diff,), np.median, n_resamples=4000, method="percentile", rng=np.random.default_rng(1))
    assert float(low) == pytest.approx(ref.confidence_interval.low, abs=0.02)
    assert float(high) == pytest.approx(ref.confidence_interval.high, abs=0.02)


def _explicit_comparison(ref, other, region, n_boot, seed, draws=False):
    """The two-level bootstrap of the median paired difference, written out draw by draw."""
    sites = ref.region.values == region
    diff = other.ceiled.values[sites] - ref.ceiled.values[sites]
    stim = (other.ceiled_boot.values[:, sites] - ref.ceiled_boot.values[:, sites]) if draws else None
    rng = np.random.default_rng(seed)
    boot = []
    for k in range(n_boot):
        idx = rng.integers(0, sites.sum(), size=sites.sum())
        source = diff if stim is None else stim[k % stim.shape[0]]
        boot.append(np.nanmedian(source[idx], axis=0))
    boot = np.array(boot)
    p = np.array([2 * min((b[np.isfinite(b)] <= 0).sum(), (b[np.isfinite(b)] >= 0).sum()) / np.isfinite(b).sum()
                  for b in boot.T])
    return np.nanmedian(diff, axis=0), boot, np.minimum(p, 1.0)


@pytest.mark.parametrize("draws", [False, True])
def test_compare_scoresets_is_one_analysis_of_paired_differences(draws):
    ff = make_scoreset("feedforward", early=0.6, late=0.3, seed=0, stimulus_draws=20 if draws else 0)
    rec = make_scoreset("recurrent", early=0.6, late=0.6, seed=1, stimulus_draws=20 if draws else 0)
    # the other ScoreSet's sites in another order: the comparison must pair them by neuroid_id
    shuffled = rec.isel(neuroid=np.random.default_rng(0).permutation(rec.sizes["neuroid"]))
    out = compare_scoresets(ff, shuffled, n_boot=300, seed=3)
    assert out.attrs["difference"].startswith("B - A") and out.attrs["model_b"] == "recurrent"
    assert ("two-level" in out.attrs["uncertainty"]) == draws
    assert list(out.region.values) == ["V4", "IT"]
    p_all = []
    for k, region in enumerate(["V4", "IT"]):
        estimate, boot, p = _explicit_comparison(ff, rec, region, 300, 3 + k, draws)
        sel = out.sel(region=region)
        np.testing.assert_allclose(sel.median_difference, estimate, rtol=1e-12)
        tested = sel.tested.values
        np.testing.assert_allclose(sel.p.values[tested], p[tested], rtol=1e-12)
        assert np.isnan(sel.p.values[~tested]).all()
        p_all.append(np.where(tested, p, np.nan))
    p_all = np.concatenate(p_all)
    finite = np.isfinite(p_all)
    reject, q, _, _ = multipletests(p_all[finite], method="fdr_bh")
    np.testing.assert_allclose(out.q.values.ravel()[finite], q, rtol=1e-12)
    np.testing.assert_array_equal(out.significant.values.ravel()[finite], reject)
    late = out.time_bin_start.values >= 180
    assert out.significant.values[:, late].all() and not out.significant.values[:, :3].any()


def test_unreliable_bins_are_flagged_and_not_tested():
    ff = make_scoreset("feedforward", seed=0)
    rec = make_scoreset("recurrent", late=0.6, seed=1)
    out = compare_scoresets(ff, rec, n_boot=200)
    early = out.time_bin_start.values < 30  # the fixture's ceilings are ~0.05 before the response
    assert not out.reliable.values[:, early].any() and not out.tested.values[:, early].any()
    assert np.isnan(out.p.values[:, early]).all() and not out.significant.values[:, early].any()
    assert "lower bound of the 95% CI of the median noise ceiling > 0.1" in out.attrs["reliability"]
    everything = compare_scoresets(ff, rec, n_boot=200, reliable_only=False)
    assert everything.tested.values[:, early].all()


@pytest.mark.parametrize("method", ["fdr_bh", "fdr_by", "holm", "bonferroni"])
def test_a_mark_never_sits_beside_an_interval_that_contains_zero(method, no_forced_gc):
    for seed in range(2):
        ff = make_scoreset("feedforward", late=0.3, seed=seed, stimulus_draws=30 * (seed % 2))
        others = [make_scoreset(f"rec{k}", late=0.3 + 0.03 * k, seed=10 * seed + k, stimulus_draws=30 * (seed % 2))
                  for k in range(3)]
        for out in compare_many([(ff, o) for o in others], method=method, n_boot=400, seed=seed):
            excludes_zero = (out.ci_low.values > 0) | (out.ci_high.values < 0)
            tested = out.tested.values
            np.testing.assert_array_equal(out.significant.values[tested], excludes_zero[tested])
            np.testing.assert_array_equal(out.significant.values, out.q.fillna(1).values <= 0.05)


def test_compare_many_corrects_across_all_comparisons(no_forced_gc):
    ff = make_scoreset("feedforward", late=0.3, seed=0)
    pairs = [(ff, make_scoreset("rec1", late=0.6, seed=1)), (ff, make_scoreset("rec2", late=0.35, seed=2))]
    out = compare_many(pairs, method="holm", n_boot=200)
    p = np.concatenate([o.p.values.ravel() for o in out])
    finite = np.isfinite(p)
    reject, q, _, _ = multipletests(p[finite], method="holm")
    np.testing.assert_allclose(np.concatenate([o.q.values.ravel() for o in out])[finite], q, rtol=1e-12)
    np.testing.assert_array_equal(np.concatenate([o.significant.values.ravel() for o in out])[finite], reject)
    assert out[0].attrs["n_tests"] == finite.sum() and out[0].attrs["ci_level"] == out[1].attrs["ci_level"]


def test_r_only_scoresets_are_compared_on_r_and_say_so():
    ff = make_scoreset("feedforward", seed=0)
    rec = make_scoreset("recurrent", late=0.6, seed=1)
    no_ceiling = [ds.assign(ceiling=ds.ceiling * np.nan, ceiled=ds.ceiled * np.nan) for ds in (ff, rec)]
    out = compare_scoresets(*no_ceiling, n_boot=100)
    assert out.attrs["variable"] == "r" and "no noise ceiling" in out.attrs["variable_note"]
    np.testing.assert_allclose(out.median_difference.sel(region="IT"),
                               np.nanmedian(rec.r.values[rec.region.values == "IT"]
                                            - ff.r.values[ff.region.values == "IT"], axis=0))
    assert out.tested.values.all() or "not assessed" in out.attrs["reliability"]


def test_compare_scoresets_names_the_problem():
    ff = make_scoreset("feedforward")
    with pytest.raises(NeurofitError, match="different time bins"):
        compare_scoresets(ff, make_scoreset("x", n_bins=10))
    other = ff.assign_coords(neuroid_id=("neuroid", [f"z{i}" for i in range(ff.sizes["neuroid"])]))
    with pytest.raises(NeurofitError, match="share no neuroid_id"):
        compare_scoresets(ff, other)
    with pytest.raises(NeurofitError, match="'ceiled'"):
        compare_scoresets(ff.drop_vars("ceiled"), ff, variable="ceiled")
