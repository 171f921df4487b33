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


# ------------------------------------------------------------------------------------------------ stimulus draws
def _explicit_draws(trials, model, train, test, k, n_splits, seed, index, regression="pls"):
    """The stimulus bootstrap written out: held-out predictions indexed by each draw, every statistic recomputed."""
    from neurofit.metrics.reverse import ReverseResult, _predict
    from neurofit.regression.correlation import pearson_r

    pred = _predict(trials.mean(1).transpose(2, 0, 1), model, train, test, regression, k)
    halves = [(_predict(a.transpose(2, 0, 1), model, train, test, regression, k),
               _predict(b.transpose(2, 0, 1), model, train, test, regression, k))
              for a, b in half_means(trials, *halving_masks(trials, n_splits, seed))]
    out = {key: [] for key in ("r", "ceiling", "ceiled")}
    for idx in index:
        r = pearson_r(pred[:, idx], model[:, idx], dim=1)
        ceiling = np.mean([spearman_brown(pearson_r(pa[:, idx], pb[:, idx], dim=1)) for pa, pb in halves], axis=0)
        medians = ReverseResult(r, ceiling, r**2 / ceiling).median()
        for key in out:
            out[key].append(medians[key])
    return {key: np.array(v) for key, v in out.items()}


@pytest.mark.parametrize("regression", ["pls", "ridge"])
def test_stimulus_draws_equal_explicit_resampling_of_the_held_out_predictions(regression):
    from neurofit.metrics.rsa import bootstrap_patterns

    trials, model, train, test = _problem(np.random.default_rng(4))
    index = bootstrap_patterns(trials.shape[0], 7, seed=3)
    res = reverse_predictivity(trials, model, train, test, regression=regression, n_components=4, n_splits=3,
                               seed=2, draws=index)
    plain = reverse_predictivity(trials, model, train, test, regression=regression, n_components=4, n_splits=3,
                                 seed=2)
    np.testing.assert_array_equal(res.ceiled, plain.ceiled)  # the estimate does not depend on the draws
    explicit = _explicit_draws(trials, model, train, test, 4, 3, 2, index, regression)
    for key in ("r", "ceiling", "ceiled"):
        assert res.draws[key].shape == (7, 2)
        np.testing.assert_allclose(res.draws[key], explicit[key], rtol=0, atol=1e-10)
    assert np.ptp(res.draws["ceiled"], axis=0).min() > 0  # the draws do differ


def test_resampled_pearson_equals_pearson_r_on_resampled_rows():
    from neurofit.metrics.reverse import draw_weights, resampled_pearson
    from neurofit.regression.correlation import pearson_r

    rng = np.random.default_rng(5)
    x = rng.normal(size=(60, 5)) + 100.0  # offsets: the centring keeps the digits
    y = 0.5 * x + rng.normal(size=(60, 5))
    x[:, 3] = 7.0
    index = rng.integers(0, 60, size=(9, 60))
    ours = resampled_pearson(x, y, draw_weights(index, 60))
    with pytest.warns(ConstantInputWarning):
        theirs = np.stack([pearson_r(x[i], y[i]) for i in index])
    assert np.isnan(ours[:, 3]).all() and np.isnan(theirs[:, 3]).all()
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    with pytest.raises(Exception, match="draws must be"):
        draw_weights(np.array([[0, 60]]), 60)


def _null_models(rng, n=150, n_rep=4, n_sites=16, n_units=8, n_bins=4, noise=1.0):
    """Neural trials and two models of identical distribution: the same unit loadings, independent unit noise."""
    latent = rng.normal(size=(n, 3))
    trials = (latent @ rng.normal(size=(3, n_sites)))[:, None, :, None] + 1.5 * rng.normal(size=(n, n_rep, n_sites,
                                                                                               n_bins))
    loadings = rng.normal(size=(3, n_units))
    a, b = ((latent @ loadings)[None] + noise * rng.normal(size=(n_bins, n, n_units)) for _ in range(2))
    return trials, a, b


def test_paired_model_comparison_keeps_its_false_positive_rate_on_a_null():
    """Two models whose units have the same distribution over stimuli: the per-bin test of B - A over the paired
    stimulus draws rejects at about its level (what the conditional-on-the-fits bootstrap leaves out would show
    here as an excess)."""
    from neurofit.metrics.rsa import bootstrap_patterns
    from neurofit.stats.bootstrap import bootstrap_p

    rng = np.random.default_rng(6)
    n, n_sims, rejected, tests = 150, 60, 0, 0
    test = np.arange(n)[None] % 5 == np.arange(5)[:, None]
    for sim in range(n_sims):
        trials, a, b = _null_models(rng, n=n)
        index = bootstrap_patterns(n, 200, seed=sim)
        kw = dict(n_components=3, n_splits=2, seed=sim, draws=index)
        ra = reverse_predictivity(trials, a, ~test, test, **kw)
        rb = reverse_predictivity(trials, b, ~test, test, **kw)
        p = bootstrap_p(rb.draws["ceiled"] - ra.draws["ceiled"], 0.0)
        rejected += int((p <= 0.05).sum())
        tests += p.size
    rate = rejected / tests
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / tests), rate


@pytest.mark.slow
def test_paired_model_comparison_false_positive_rate_at_scale():
    """The per-bin test's false-positive rate over 400 simulated nulls x 4 bins, ceiled and raw r (printed)."""
    from neurofit.metrics.rsa import bootstrap_patterns
    from neurofit.stats.bootstrap import bootstrap_p

    rng = np.random.default_rng(7)
    n, n_sims = 150, 400
    test = np.arange(n)[None] % 5 == np.arange(5)[:, None]
    rejected = {"r": 0, "ceiled": 0}
    for sim in range(n_sims):
        trials, a, b = _null_models(rng, n=n)
        kw = dict(n_components=3, n_splits=2, seed=sim, draws=bootstrap_patterns(n, 200, seed=sim))
        ra = reverse_predictivity(trials, a, ~test, test, **kw)
        rb = reverse_predictivity(trials, b, ~test, test, **kw)
        for key in rejected:
            rejected[key] += int((bootstrap_p(rb.draws[key] - ra.draws[key], 0.0) <= 0.05).sum())
    rates = {key: v / (4 * n_sims) for key, v in rejected.items()}
    print(f"\nreverse predictivity B - A on identical-distribution models: per-bin false-positive rate at 0.05 "
          f"{rates} over {4 * n_sims} tests")
    assert max(rates.values()) <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / (4 * n_sims)) * 2  # bins of a sim correlate
