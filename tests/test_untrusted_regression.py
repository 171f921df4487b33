"""Bad-input corpus, the regression engine: nonsense settings and shapes are one-line errors, and data near
the float's limits are fitted correctly instead of raising ``LinAlgError`` (or, for tiny data, silently
predicting the mean).

The audit's cases: ``PLS(-1)``, ``PLS(0)`` (silently predicted the mean), ridge with 0 samples, PLS with 0
targets, X and Y scaled by 1e160 in float64 or 1e30 in float32 (the GPU default).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.cross_decomposition import PLSRegression

from neurofit.errors import NeurofitError
from neurofit.regression.crossval import pls_cross_validated, ridge_cross_validated
from neurofit.regression.pls import PLS, SAFE_MAGNITUDE, unit_scale
from neurofit.regression.ridge import DEFAULT_ALPHAS, RidgeCV

RNG = np.random.default_rng(7)
X = RNG.normal(size=(60, 8))
Y = X[:, :3] @ RNG.normal(size=(3, 4)) + 0.3 * RNG.normal(size=(60, 4))


@pytest.mark.parametrize("n_components", [-1, 0, 2.5, True, "3", None])
def test_pls_needs_a_whole_positive_number_of_components(n_components):
    with pytest.raises(NeurofitError, match=rf"n_components must be a whole number >= 1, got {n_components!r}"):
        PLS(n_components, device="cpu").fit(X, Y)


@pytest.mark.parametrize("estimator", [lambda: PLS(2, device="cpu"), lambda: RidgeCV(device="cpu")])
@pytest.mark.parametrize(("x", "y", "message"), [
    (X[:0], Y[:0], "at least 2 samples, got 0"),
    (X[:1], Y[:1], "at least 2 samples, got 1"),
    (X, Y[:, :0], "at least 1 feature and 1 target, got 8 feature(s) and 0 target(s)"),
    (X[:, :0], Y, "at least 1 feature and 1 target, got 0 feature(s) and 4 target(s)"),
    (X[:, 0], Y, "X must be (n_samples, n_features) or batched"),
    (X, Y[:, :, None, None], "does not match X"),
])
def test_empty_or_misshapen_inputs_are_one_line(estimator, x, y, message):
    with pytest.raises(NeurofitError, match=message.replace("(", r"\(").replace(")", r"\)")):
        estimator().fit(x, y)


def test_pls_cross_validation_refuses_zero_components():
    test = torch.arange(60)[None] % 3 == torch.arange(3)[:, None]
    with pytest.raises(NeurofitError, match="n_components must be a whole number >= 1, got 0"):
        pls_cross_validated(torch.tensor(X)[None], torch.tensor(Y)[None], ~test, test, n_components=0)


@pytest.mark.parametrize(("scale", "dtype", "rtol"), [
    (1e160, torch.float64, 1e-10), (1e-160, torch.float64, 1e-10), (1e300, torch.float64, 1e-10),
    (1e30, torch.float32, 2e-4), (1e-30, torch.float32, 2e-4), (1e15, torch.float32, 2e-4),
])
def test_pls_on_data_near_the_floats_limits_equals_the_fit_of_ordinary_data(scale, dtype, rtol):
    reference = PLS(3, device="cpu").fit(X, Y).predict(X)  # float64, in range: the path checked against sklearn
    np.testing.assert_allclose(reference, PLSRegression(3, scale=False).fit(X, Y).predict(X), rtol=1e-3, atol=1e-3)
    model = PLS(3, device="cpu", dtype=dtype).fit(X * scale, Y * scale)
    np.testing.assert_allclose(model.predict(X * scale) / scale, reference, rtol=rtol, atol=rtol * 10)


def test_a_power_of_two_rescaling_is_exact_and_ordinary_data_are_not_rescaled():
    plain = PLS(3, device="cpu").fit(X, Y)
    big = PLS(3, device="cpu").fit(X * 2.0**600, Y * 2.0**500)
    np.testing.assert_array_equal(big.predict(X * 2.0**600), plain.predict(X) * 2.0**500)
    np.testing.assert_array_equal(big.x_weights_.numpy(), plain.x_weights_.numpy())
    assert unit_scale(torch.tensor(X * 1e6)) == 1.0 and unit_scale(torch.tensor(X * 1e-6)) == 1.0
    assert unit_scale(torch.tensor(X * 1e6, dtype=torch.float32)) != 1.0  # float32 is rescaled sooner
    assert SAFE_MAGNITUDE[torch.float32] < SAFE_MAGNITUDE[torch.float64]


def ols(x, y):
    design = np.column_stack([x, np.ones(len(x))])
    return design @ np.linalg.lstsq(design, y, rcond=None)[0]


@pytest.mark.parametrize(("scale", "dtype", "rtol"), [(1e160, torch.float64, 1e-9), (1e30, torch.float32, 1e-3)])
def test_ridge_on_huge_data_is_the_least_squares_limit_its_penalties_amount_to(scale, dtype, rtol):
    # penalties of at most 1e7 against squared singular values of ~1e320 (1e60) shrink nothing: least squares
    model = RidgeCV(device="cpu", dtype=dtype).fit(X * scale, Y * scale)
    np.testing.assert_allclose(model.predict(X * scale) / scale, ols(X, Y), rtol=rtol, atol=rtol)
    chosen = np.asarray(model.alpha_)
    assert np.isin(chosen, DEFAULT_ALPHAS.astype(chosen.dtype)).all()  # reported in the caller's units


def test_ridge_on_tiny_data_shrinks_to_the_mean_its_penalties_amount_to():
    scale = 1e-160
    model = RidgeCV(device="cpu").fit(X * scale, Y * scale)
    np.testing.assert_allclose(model.predict(X * scale) / scale, np.broadcast_to(Y.mean(0), Y.shape), rtol=1e-9)


def test_cross_validated_fits_are_equivariant_to_exact_rescaling():
    test = torch.arange(60)[None] % 4 == torch.arange(4)[:, None]
    Xt, Yt = torch.tensor(X)[None], torch.tensor(Y)[None]
    k, m = 2.0**400, 2.0**-450  # both far outside the safe range, so the rescaled route is taken
    for plain, scaled in zip(pls_cross_validated(Xt, Yt, ~test, test, 3),
                             pls_cross_validated(Xt * k, Yt * m, ~test, test, 3)):
        np.testing.assert_allclose((scaled / m).numpy(), plain.numpy(), rtol=1e-12)
    alphas = np.array([1e-2, 1.0, 1e2])
    for plain, scaled in zip(ridge_cross_validated(Xt, Yt, ~test, test, alphas / k / k),
                             ridge_cross_validated(Xt * k, Yt * m, ~test, test, alphas)):
        np.testing.assert_allclose((scaled / m).numpy(), plain.numpy(), rtol=1e-12)


def single_repetition_recording():
    from neurofit.data.recording import make_recording

    rng = np.random.default_rng(1)
    return make_recording(rng.normal(size=(40, 3, 1)), stimulus_id=[f"s{i}" for i in range(40)], repetition=[0] * 40,
                          neuroid_id=["a", "b", "c"], region="IT", time_bin_start=[0], time_bin_end=[10],
                          identifier="one-rep", stimulus_set_identifier="toy", units="spikes/s")


def test_a_ceiling_of_single_repetitions_names_an_option_that_exists():
    import xarray as xr

    from neurofit.regression.ceiling import SingleRepetitionError
    from neurofit.scoring.features import score_features

    rec = single_repetition_recording()
    features = xr.DataArray(np.random.default_rng(2).normal(size=(40, 5)), dims=("presentation", "feature"),
                            coords={"stimulus_id": ("presentation", rec.coords["stimulus_id"].values)})
    with pytest.raises(SingleRepetitionError, match="only one .*: pass ceiling=False to score r alone"):
        score_features(features, rec, n_components=2, n_splits=4)
    assert score_features(features, rec, n_components=2, n_splits=4, ceiling=False).sizes["neuroid"] == 3


def test_a_benchmark_ceiling_of_single_repetitions_names_the_benchmark_key():

    from neurofit.data.recording import trial_array
    from neurofit.regression.ceiling import SingleRepetitionError
    from neurofit.scoreset import site_ceiling
    from neurofit.scoring.benchmark import load_benchmark

    bench = load_benchmark("synthetic-ventral-it-temporal")
    trials, _ = trial_array(single_repetition_recording())
    with pytest.raises(SingleRepetitionError, match=r"only one .*ceiling\.method = 'split_half'.*ceiling\.method = "
                                                    r"'none' to score r alone"):
        site_ceiling(trials, bench.ceiling.method, bench.ceiling.n_splits, bench.ceiling.seed, bench.id)
    assert np.isnan(site_ceiling(trials, "none", bench.ceiling.n_splits, bench.ceiling.seed, bench.id)).all()
