"""Cluster-based permutation tests over bins equal mne's permutation_cluster_1samp_test."""

import numpy as np
import pytest

from neurofit.stats.cluster import cluster_permutation_test

mne_stats = pytest.importorskip("mne.stats")


def _differences(rng: np.random.Generator, n_sites: int, n_bins: int = 25) -> np.ndarray:
    d = rng.normal(size=(n_sites, n_bins)) + 0.3 * rng.normal(size=(n_sites, 1))  # site effects across bins
    d[:, 9:15] += 0.9  # a late difference
    d[:, 2:4] -= 0.6  # a weaker early one of the other sign
    return d


def _mne(d, n_permutations, tail=0, threshold=None, seed=0):
    if threshold is not None and tail == -1:
        threshold = -threshold
    t, clusters, p, h0 = mne_stats.permutation_cluster_1samp_test(
        d, threshold=threshold, n_permutations=n_permutations, tail=tail, rng=seed, out_type="mask", verbose=False)
    ranges = [(c[0].start, c[0].stop) for c in clusters]  # 1-d clusters come as (slice,)
    order = np.argsort([r[0] for r in ranges])
    return t, [ranges[i] for i in order], np.asarray(p)[order], h0


@pytest.mark.parametrize("tail", [0, 1, -1])
def test_exact_test_equals_mne_clusters_and_p_values(tail):
    d = _differences(np.random.default_rng(0), n_sites=11)
    ours = cluster_permutation_test(d, n_permutations=100000, tail=tail)
    # mne enumerates every flip only when asked for more than exist ("all" draws all but one at random)
    t, clusters, p, _ = _mne(d, 100000, tail=tail)
    assert ours.exact
    np.testing.assert_allclose(ours.t, t, rtol=0, atol=1e-12)
    assert ours.clusters == clusters and len(clusters) > 0
    np.testing.assert_allclose(ours.p, p, rtol=0, atol=1e-12)


def test_monte_carlo_test_equals_mne_within_monte_carlo_error():
    d = _differences(np.random.default_rng(1), n_sites=40)
    n_perm = 4000
    ours = cluster_permutation_test(d, n_permutations=n_perm, seed=0)
    t, clusters, p, _ = _mne(d, n_perm, seed=0)
    assert not ours.exact
    np.testing.assert_allclose(ours.t, t, rtol=0, atol=1e-12)
    assert ours.clusters == clusters and len(clusters) >= 2
    for a, b in zip(ours.p, p):
        # two independent Monte-Carlo estimates of one p-value differ by < 4 standard errors of a difference
        se = np.sqrt(2 * max(a, 1 / n_perm) * (1 - a) / n_perm)
        assert abs(a - b) <= 4 * se + 1 / n_perm, (a, b)


def test_a_given_threshold_is_used_as_mne_uses_it():
    d = _differences(np.random.default_rng(2), n_sites=9)
    ours = cluster_permutation_test(d, threshold=1.0, n_permutations=100000)
    t, clusters, p, _ = _mne(d, 100000, threshold=1.0)
    assert ours.clusters == clusters
    np.testing.assert_allclose(ours.p, p, rtol=0, atol=1e-12)


def test_family_wise_error_is_controlled_under_the_null():
    rng = np.random.default_rng(3)
    n_datasets, any_significant = 300, 0
    for _ in range(n_datasets):
        d = rng.normal(size=(20, 25)) + 0.5 * rng.normal(size=(20, 1))
        # temporally smooth noise, as neighbouring 10 ms bins are
        d = np.cumsum(d, axis=1) / np.sqrt(np.arange(1, 26))
        test = cluster_permutation_test(d, n_permutations=400, seed=int(rng.integers(1 << 30)))
        any_significant += bool((test.p < 0.05).any())
    rate = any_significant / n_datasets
    assert rate < 0.05 + 3 * np.sqrt(0.05 * 0.95 / n_datasets), rate


def test_a_true_late_difference_is_found_and_nothing_else():
    rng = np.random.default_rng(4)
    d = rng.normal(size=(60, 25))
    d[:, 12:20] += 0.8
    test = cluster_permutation_test(d, n_permutations=2000, seed=0)
    significant = test.significant()
    assert significant[12:20].all() and not significant[:11].any()


def test_sites_with_missing_bins_are_left_out_and_counted():
    d = _differences(np.random.default_rng(5), n_sites=30)
    d[3, 7] = np.nan
    test = cluster_permutation_test(d, n_permutations=500)
    assert test.n_sites == 29
    np.testing.assert_allclose(test.t, cluster_permutation_test(np.delete(d, 3, 0), n_permutations=500).t)


def test_compare_reports_cluster_p_values_beside_the_per_bin_tests():
    import xarray as xr

    from neurofit.stats.compare import compare_scoresets

    rng = np.random.default_rng(6)
    n, bins = 40, 12
    base = rng.normal(0.5, 0.1, (n, bins))
    better = base + rng.normal(0, 0.05, (n, bins))
    better[:, 6:10] += 0.08
    base[:, :2] = np.nan  # bins where no site has a score (e.g. no ceiling) are not tested

    def scoreset(values):
        return xr.Dataset({"ceiled": (("neuroid", "time_bin"), values)},
                          coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(n)]),
                                  "region": ("neuroid", ["IT"] * n),
                                  "time_bin_start": ("time_bin", 10.0 * np.arange(bins)),
                                  "time_bin_end": ("time_bin", 10.0 * np.arange(1, bins + 1))})

    out = compare_scoresets(scoreset(better), scoreset(base), n_boot=100, n_permutations=2000).isel(region=0)
    d = better - base
    ref = cluster_permutation_test(np.where(np.isnan(d), 0.0, d)[:, 2:], n_permutations=2000, seed=0)
    assert np.isnan(out["cluster_p"].values[:2]).all()
    np.testing.assert_array_equal(out["cluster_significant"].values[2:], ref.significant())
    assert out["cluster_significant"].values[6:10].all() and not out["cluster_significant"].values[:6].any()
