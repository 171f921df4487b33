"""Bootstrap over stimuli (ceiling recomputed per draw) and over sites, against explicit resampling."""

import numpy as np

from conftest import pearson_columns
from neurofit.regression.ceiling import half_means, halving_masks, spearman_brown
from neurofit.stats.bootstrap import bootstrap_sites, bootstrap_stimuli


def test_stimulus_bootstrap_equals_explicit_resampling_with_ceiling_recomputed():
    rng = np.random.default_rng(0)
    S, R, Q, B = 50, 6, 4, 2
    signal = rng.normal(size=(S, Q, B))
    trials = signal[:, None] + rng.normal(size=(S, R, Q, B))
    trials[3, 4:] = np.nan  # unequal repetition counts
    target = np.nanmean(trials, axis=1)
    prediction = signal + 0.5 * rng.normal(size=(S, Q, B))
    groups = np.array(["IT", "V4", "IT", "V4"])
    out = bootstrap_stimuli(prediction, target, trials, groups=groups, n_boot=7, seed=3)

    idx = np.random.default_rng(3).integers(0, S, size=(7, S))
    halves = list(half_means(trials, *halving_masks(trials, 10, 0)))
    for d in range(7):
        i = idx[d]
        r = pearson_columns(prediction[i], target[i])
        ceiling = np.mean([spearman_brown(pearson_columns(a[i], b[i])) for a, b in halves], axis=0)
        ceiled = r**2 / ceiling
        expected = [np.median(ceiled[groups == g], axis=0) for g in ("IT", "V4")]
        np.testing.assert_allclose(out["draws"][d], expected, rtol=1e-9)
    assert list(out["groups"]) == ["IT", "V4"]
    chunked = bootstrap_stimuli(prediction, target, trials, groups=groups, n_boot=7, seed=3, max_bytes=1, chunk=2)
    np.testing.assert_allclose(chunked["draws"], out["draws"], rtol=1e-12)
    assert (out["low"] <= out["high"]).all()


def test_site_bootstrap_is_percentiles_of_resampled_medians():
    rng = np.random.default_rng(1)
    ceiled = rng.normal(size=(30, 3))
    groups = np.array(["V4"] * 30)
    out = bootstrap_sites(ceiled, groups=groups, n_boot=300, seed=2)
    idx = np.random.default_rng(2).integers(0, 30, size=(300, 30))
    medians = np.median(ceiled[idx], axis=1)
    np.testing.assert_allclose(out["low"][0], np.percentile(medians, 2.5, axis=0))
    np.testing.assert_allclose(out["high"][0], np.percentile(medians, 97.5, axis=0))
