"""Reverse predictivity equals a scikit-learn reference of Muzellec & Kar's procedure."""

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression

from neurofit.metrics.reverse import reverse_predictivity
from neurofit.regression.ceiling import half_means, halving_masks, spearman_brown
from neurofit.regression.correlation import ConstantInputWarning


def _problem(rng, n=90, n_rep=6, n_sites=12, n_units=7, n_bins=2):
    latent = rng.normal(size=(n, 3))
    signal = latent @ rng.normal(size=(3, n_sites))
    trials = signal[:, None, :, None] + rng.normal(size=(n, n_rep, n_sites, n_bins))
    model = np.stack([latent @ rng.normal(size=(3, n_units)) + 0.3 * rng.normal(size=(n, n_units))
                      for _ in range(n_bins)])
    model[1, :, 0] = rng.normal(size=n)  # a unit the neurons know nothing about
    test = np.arange(n)[None] % 5 == np.arange(5)[:, None]
    return trials, model, ~test, test


def _sklearn_predictions(X, Y, test, k):
    out = np.empty_like(Y)
    for t in test:
        pls = PLSRegression(n_components=k, scale=False, max_iter=5000, tol=1e-14).fit(X[~t], Y[~t])
        out[t] = pls.predict(X[t])
    return out


def _r(a, b):
    return np.array([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(a.shape[1])])


def test_reverse_predictivity_and_its_ceiling_equal_a_sklearn_reference():
    trials, model, train, test = _problem(np.random.default_rng(0))
    k = 4
    ours = reverse_predictivity(trials, model, train, test, n_components=k, n_splits=3, seed=2)
    half_a, half_b = halving_masks(trials, 3, 2)
    halves = list(half_means(trials, half_a, half_b))
    for b in range(2):  # 1e-6: sklearn's NIPALS converges to ~1e-8 here, the engine is exact
        pred = _sklearn_predictions(trials[..., b].mean(1), model[b], test, k)
        np.testing.assert_allclose(ours.r[b], _r(pred, model[b]), rtol=0, atol=1e-6)
        ceiling = np.mean([spearman_brown(_r(_sklearn_predictions(a[..., b], model[b], test, k),
                                             _sklearn_predictions(h[..., b], model[b], test, k)))
                           for a, h in halves], axis=0)
        np.testing.assert_allclose(ours.ceiling[b], ceiling, rtol=0, atol=1e-6)
    np.testing.assert_allclose(ours.ceiled, ours.r**2 / ours.ceiling)


def test_units_the_neurons_do_not_carry_are_unpredictable():
    trials, model, train, test = _problem(np.random.default_rng(1), n=150)
    res = reverse_predictivity(trials, model, train, test, n_components=3, n_splits=2)
    assert res.r[1, 0] < 0.3 < 0.8 < np.median(res.r[1, 1:])


def test_constant_units_are_nan_and_left_out_of_the_median():
    trials, model, train, test = _problem(np.random.default_rng(2))
    model[0, :, 2] = 1.0
    with pytest.warns(ConstantInputWarning, match="1 of 14 columns are constant"):
        res = reverse_predictivity(trials, model, train, test, n_components=3, n_splits=0)
    assert np.isnan(res.r[0, 2]) and np.isfinite(res.median()["r"][0])


def test_ridge_engine_is_available_and_shapes_are_checked():
    trials, model, train, test = _problem(np.random.default_rng(3))
    res = reverse_predictivity(trials, model, train, test, regression="ridge", n_splits=0)
    assert res.r.shape == (2, 7) and np.nanmedian(res.r) > 0.5
    with pytest.raises(Exception, match="trials must be"):
        reverse_predictivity(trials[..., :1], model, train, test)
