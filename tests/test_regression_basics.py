"""Splits, correlation and noise ceilings of the regression engine, against sklearn/scipy references."""

import warnings

import numpy as np
import pytest
import scipy.stats
from sklearn.model_selection import StratifiedShuffleSplit

from neurofit.errors import NeurofitError
from neurofit.regression.ceiling import (
    brainscore_ceiling,
    ceil_scores,
    feve,
    halving_masks,
    spearman_brown,
    split_half_ceiling,
)
from neurofit.regression.correlation import ConstantInputWarning, pearson_r
from neurofit.regression.splits import make_splits


def test_kfold_predicts_every_stimulus_exactly_once_and_stratifies():
    ids = [f"img{i:03d}" for i in range(97)]
    objects = np.repeat(["a", "b", "c", "d"], [25, 25, 25, 22])
    s = make_splits(ids, object_name=objects)
    assert s.n_folds == 10
    assert (s.test.sum(axis=0) == 1).all()
    assert not (s.train & s.test).any() and (s.train | s.test).all()
    for f in range(10):  # stratified: each fold holds 2 or 3 of every object
        counts = [s.test[f][objects == o].sum() for o in "abcd"]
        assert min(counts) >= 2 and max(counts) <= 3
    assert (make_splits(ids, object_name=objects).test == s.test).all()  # seeded
    assert not (make_splits(ids, object_name=objects, seed=5).test == s.test).all()


def test_brainscore_splits_match_stratified_shuffle_split_on_sorted_ids():
    rng = np.random.default_rng(0)
    ids = np.array([f"s{i:03d}" for i in rng.permutation(120)])
    objects = np.array([f"o{int(i[1:]) % 6}" for i in ids])
    s = make_splits(ids, scheme="brainscore", object_name=objects)
    order = np.argsort(ids)
    ref = StratifiedShuffleSplit(n_splits=10, train_size=0.9, test_size=0.1, random_state=1)
    for f, (tr, te) in enumerate(ref.split(np.zeros(120), objects[order])):
        assert set(ids[s.train[f]]) == set(ids[order][tr])
        assert set(ids[s.test[f]]) == set(ids[order][te])


def test_fewer_stimuli_than_folds_is_a_clear_error():
    with pytest.raises(NeurofitError, match="5 stimuli cannot be split into 10 folds"):
        make_splits([f"s{i}" for i in range(5)])


def test_pearson_matches_scipy_per_column():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 50, 7, 3))
    y = y + x
    r = pearson_r(x, y)
    for i in range(7):
        for j in range(3):
            assert r[i, j] == pytest.approx(scipy.stats.pearsonr(x[:, i, j], y[:, i, j])[0], rel=1e-12)


def test_constant_column_gives_nan_and_one_warning_not_zero():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 4))
    y = rng.normal(size=(30, 4))
    y[:, 1] = 3.7
    x[:, 2] = 0.1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = pearson_r(x, y)
    assert np.isnan(r[1]) and np.isnan(r[2]) and np.isfinite(r[[0, 3]]).all()
    assert len([w for w in caught if issubclass(w.category, ConstantInputWarning)]) == 1


def _simulated_trials(rng, n_stim=300, n_reps=10, n_sites=6, noise=1.0):
    signal = rng.normal(size=(n_stim, 1, n_sites, 2))
    return signal + noise * rng.normal(size=(n_stim, n_reps, n_sites, 2))


def test_split_half_ceiling_recovers_generator_noise():
    # signal var 1, noise var s2 per trial: the reliability of a mean of k trials is 1 / (1 + s2 / k).
    rng = np.random.default_rng(3)
    trials = _simulated_trials(rng, n_stim=2000, noise=2.0)
    assert np.abs(split_half_ceiling(trials) - 1 / (1 + 4 / 10)).max() < 0.03


def test_split_half_ceiling_matches_explicit_loop_with_unequal_repetitions():
    rng = np.random.default_rng(4)
    trials = _simulated_trials(rng, n_stim=40, n_reps=7, n_sites=3)
    n_valid = rng.integers(2, 8, size=40)
    for s, k in enumerate(n_valid):
        trials[s, k:] = np.nan
    c = split_half_ceiling(trials, n_splits=3, seed=7)
    half_a, half_b = halving_masks(trials, 3, 7)
    expected = []
    for a, b in zip(half_a, half_b):
        assert (a.sum(1) == n_valid // 2).all() and ((a | b).sum(1) == n_valid).all()
        ma = np.stack([trials[s, a[s]].mean(0) for s in range(40)])
        mb = np.stack([trials[s, b[s]].mean(0) for s in range(40)])
        r = np.array([[scipy.stats.pearsonr(ma[:, i, j], mb[:, i, j])[0] for j in range(2)] for i in range(3)])
        expected.append(spearman_brown(r))
    np.testing.assert_allclose(c, np.mean(expected, axis=0), rtol=1e-12)


def test_ceiling_with_one_repetition_is_an_error():
    with pytest.raises(NeurofitError, match="at least 2 repetitions"):
        split_half_ceiling(np.ones((10, 1, 2, 1)))


def test_brainscore_ceiling_is_median_over_sites_mean_over_halvings():
    rng = np.random.default_rng(5)
    trials = _simulated_trials(rng, n_stim=100, n_reps=6, n_sites=5)
    per_site, agg = brainscore_ceiling(trials)
    assert per_site.shape == (5, 2) and agg.shape == (2,)
    assert np.all(np.abs(per_site - 1 / (1 + 1 / 6)) < 0.15)
    assert agg[0] == pytest.approx(np.median(per_site[:, 0]), abs=0.05)


def test_ceiling_rules():
    r = np.array([0.4, -0.4, 0.3])
    c = np.array([0.8, 0.8, 0.0])
    np.testing.assert_allclose(ceil_scores(r, c)[:2], [0.2, 0.2])
    np.testing.assert_allclose(ceil_scores(r, c, "legacy")[:2], [0.25, 0.25])
    assert np.isnan(ceil_scores(r, c)[2])


def test_feve_of_the_true_signal_is_one_and_of_noise_is_below_zero():
    rng = np.random.default_rng(6)
    signal = rng.normal(size=(400, 3, 1))
    trials = signal[:, None] + rng.normal(size=(400, 8, 3, 1))
    assert np.abs(feve(signal, trials) - 1).max() < 0.05
    assert (feve(rng.normal(size=(400, 3, 1)), trials) < 0).all()
