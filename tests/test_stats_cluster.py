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

    # B - A: the second minus the reference
    out = compare_scoresets(scoreset(base), scoreset(better), n_boot=100, n_permutations=2000).isel(region=0)
    d = better - base
    ref = cluster_permutation_test(np.where(np.isnan(d), 0.0, d)[:, 2:], n_permutations=2000, seed=0)
    assert np.isnan(out["cluster_p"].values[:2]).all()
    np.testing.assert_array_equal(out["cluster_significant"].values[2:], ref.significant())
    assert out["cluster_significant"].values[6:10].all() and not out["cluster_significant"].values[:6].any()


# ------------------------------------------------------------------------------------------------ bootstrap clusters
def _population_difference(rng, n=150, n_bins=20, n_draws=200, effect=None):
    """A per-region metric over bins from stimuli: the Pearson r of each model's response with the neural response
    per bin, B - A, and the same on paired stimulus-bootstrap draws. Responses are smooth over bins (neighbouring
    10 ms bins are correlated); A and B have the same distribution except ``effect`` (added correlation of B)."""
    from neurofit.metrics.reverse import draw_weights, resampled_pearson
    from neurofit.metrics.rsa import bootstrap_patterns

    def smooth(shape):
        x = rng.normal(size=shape)
        return np.cumsum(x, axis=1) / np.sqrt(np.arange(1, shape[1] + 1))

    neural = smooth((n, n_bins))
    gain = 0.5 + (np.zeros(n_bins) if effect is None else effect)
    a = 0.5 * neural + smooth((n, n_bins))
    b = gain * neural + smooth((n, n_bins))
    weights = draw_weights(bootstrap_patterns(n, n_draws, seed=int(rng.integers(1 << 30))), n)
    from neurofit.regression.correlation import pearson_r

    estimate = pearson_r(b, neural) - pearson_r(a, neural)
    draws = resampled_pearson(b, neural, weights) - resampled_pearson(a, neural, weights)
    return estimate, draws


def _reference_bootstrap_clusters(estimate, draws, threshold):
    """The bootstrap cluster test written out with loops, two-tailed."""
    se = draws.std(axis=0, ddof=1)

    def clusters(z):
        out, b = [], 0
        while b < len(z):
            for sign in (1, -1):
                if sign * z[b] > threshold:
                    e = b
                    while e < len(z) and sign * z[e] > threshold:
                        e += 1
                    out.append(((b, e), float(z[b:e].sum())))
                    b = e - 1
                    break
            b += 1
        return out

    observed = clusters(estimate / se)
    maxima = [max([abs(m) for _, m in observed], default=0.0)]
    for draw in draws:
        maxima.append(max([abs(m) for _, m in clusters((draw - draws.mean(0)) / se)], default=0.0))
    maxima = np.array(maxima)
    return [c for c, _ in observed], np.array([np.mean(maxima >= abs(m)) for _, m in observed])


def test_bootstrap_cluster_test_equals_a_written_out_reference():
    from neurofit.stats.cluster import bootstrap_cluster_test

    estimate, draws = _population_difference(np.random.default_rng(7), effect=np.where(np.arange(20) >= 10, 0.4, 0.0))
    test = bootstrap_cluster_test(estimate, draws)
    clusters, p = _reference_bootstrap_clusters(estimate, draws, stats_norm_threshold())
    assert test.clusters == clusters and len(clusters) > 0 and test.resampling == "stimulus bootstrap draws"
    np.testing.assert_allclose(test.p, p, rtol=0, atol=1e-12)
    np.testing.assert_allclose(test.t, estimate / draws.std(0, ddof=1), rtol=0, atol=1e-12)


def stats_norm_threshold():
    from scipy import stats

    return float(stats.norm.isf(0.025))


def test_bootstrap_threshold_is_the_sign_flip_tests_in_the_large_sample_limit():
    from scipy import stats

    from neurofit.stats.cluster import bootstrap_cluster_test

    rng = np.random.default_rng(8)
    flip = cluster_permutation_test(rng.normal(size=(4000, 5)), n_permutations=10)
    boot = bootstrap_cluster_test(rng.normal(size=5), rng.normal(size=(50, 5)))
    assert boot.threshold == pytest.approx(flip.threshold, abs=2e-3)
    one_sided = bootstrap_cluster_test(rng.normal(size=5), rng.normal(size=(50, 5)), tail=1)
    assert one_sided.threshold == pytest.approx(float(stats.norm.isf(0.05)))


def test_bootstrap_cluster_test_controls_family_wise_error_on_simulated_nulls():
    from neurofit.stats.cluster import bootstrap_cluster_test

    rng = np.random.default_rng(9)
    n_datasets, any_significant = 300, 0
    for _ in range(n_datasets):
        estimate, draws = _population_difference(rng)
        any_significant += bool((bootstrap_cluster_test(estimate, draws).p < 0.05).any())
    rate = any_significant / n_datasets
    se = np.sqrt(0.05 * 0.95 / n_datasets)
    assert 0.05 - 3 * se < rate < 0.05 + 3 * se, rate


def test_bootstrap_cluster_test_finds_an_effect_confined_to_a_run_of_bins():
    from neurofit.stats.cluster import bootstrap_cluster_test

    rng = np.random.default_rng(10)
    effect = np.where((np.arange(20) >= 8) & (np.arange(20) < 14), 0.5, 0.0)
    found, outside = 0, 0
    for _ in range(60):
        significant = bootstrap_cluster_test(*_population_difference(rng, effect=effect)).significant()
        found += bool(significant[8:14].any())
        outside += bool(significant[:6].any())  # two bins away: a cluster may spill one bin over the edge
    assert found / 60 > 0.85 and outside / 60 < 0.1, (found, outside)


def test_bootstrap_cluster_test_skips_bins_it_cannot_test():
    from neurofit.stats.cluster import bootstrap_cluster_test

    estimate, draws = _population_difference(np.random.default_rng(11), effect=np.full(20, 0.5))
    estimate[5] = np.nan
    draws[:150, 12] = np.nan  # most draws undefined
    draws[:3, 15] = np.nan  # a few: they count as the centre
    test = bootstrap_cluster_test(estimate, draws)
    assert test.t[5] == 0 and test.t[12] == 0 and test.t[15] != 0
    assert all(not (a <= 5 < b or a <= 12 < b) for a, b in test.clusters)
    with pytest.raises(Exception, match="estimate must be"):
        bootstrap_cluster_test(estimate[:3], draws)


def test_compare_runs_the_bootstrap_cluster_test_for_population_metrics():
    import xarray as xr

    from neurofit.stats.cluster import bootstrap_cluster_test
    from neurofit.stats.compare import compare_scoresets

    rng = np.random.default_rng(12)
    estimate, draws = _population_difference(rng, effect=np.where(np.arange(20) >= 10, 0.4, 0.0))
    base = 0.3 + 0.05 * rng.normal(size=(1, 20))
    base_draws = base[None] + 0.02 * rng.normal(size=(200, 1, 20))

    def scoreset(values, boot):
        return xr.Dataset({"ceiled": (("neuroid", "time_bin"), values),
                           "ceiled_boot": (("boot", "neuroid", "time_bin"), boot)},
                          coords={"neuroid_id": ("neuroid", ["IT population"]), "region": ("neuroid", ["IT"]),
                                  "time_bin_start": ("time_bin", 10.0 * np.arange(20)),
                                  "time_bin_end": ("time_bin", 10.0 * np.arange(1, 21))},
                          attrs={"metric": "reverse_pls", "metric_scope": "population", "stimulus_draws": "k"})

    a = scoreset(base, base_draws)
    b = scoreset(base + estimate, base_draws + draws[:, None])
    out = compare_scoresets(a, b, variable="ceiled", n_boot=200)
    ref = bootstrap_cluster_test(estimate, draws)
    assert out.attrs["cluster_test"].startswith("bootstrap cluster test")
    np.testing.assert_array_equal(out["cluster_significant"].values[0], ref.significant())
    assert out["cluster_significant"].values[0, 12:].any()
    unpaired = b.assign_attrs(stimulus_draws="other")
    untested = compare_scoresets(a, unpaired, variable="ceiled", n_boot=50)
    assert np.isnan(untested["cluster_p"].values).all()
    # the reader is told why: no paired draws, not an unreliable ceiling (every bin here is reliable)
    from neurofit.stats.compare import comparison_table, verdict, verdict_text

    outcome = verdict(untested)
    assert len(outcome["no_draws"]) == 20 and not outcome["unreliable"] and not outcome["no_difference"]
    assert any("not tested, no paired stimulus-bootstrap draws: 0-200 ms" in line for line in verdict_text(untested))
    assert "ceiling not reliable" not in "\n".join(verdict_text(untested))
    table = comparison_table(untested.expand_dims("comparison").assign_coords(
        model_a=("comparison", ["a"]), model_b=("comparison", ["b"])))
    assert "no paired stimulus draws, not tested" in table and "unreliable ceiling" not in table


@pytest.mark.slow
def test_bootstrap_cluster_error_rates_at_scale():
    """Family-wise false-positive rate on 2000 simulated nulls and power on 500 simulated late effects (printed
    with -s; the numbers quoted in the issue)."""
    from neurofit.stats.cluster import bootstrap_cluster_test

    rng = np.random.default_rng(13)
    n_null, n_power = 2000, 500
    null = np.mean([bool((bootstrap_cluster_test(*_population_difference(rng)).p < 0.05).any())
                    for _ in range(n_null)])
    print(f"\nbootstrap cluster test: family-wise false-positive rate {null:.4f} over {n_null} nulls (alpha 0.05)")
    for gain in (0.35, 0.5):
        effect = np.where((np.arange(20) >= 8) & (np.arange(20) < 14), gain, 0.0)
        found = outside = 0
        for _ in range(n_power):
            significant = bootstrap_cluster_test(*_population_difference(rng, effect=effect)).significant()
            found += bool(significant[8:14].any())
            outside += bool(significant[:6].any())
        print(f"  effect: gain +{gain} in bins 8-13 ({n_power} datasets): a significant cluster there in "
              f"{found / n_power:.3f}, one in bins 0-5 in {outside / n_power:.3f}")
    se = np.sqrt(0.05 * 0.95 / n_null)
    assert abs(null - 0.05) < 3 * se
