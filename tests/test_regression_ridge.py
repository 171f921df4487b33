"""Ridge engines against scikit-learn's RidgeCV(alpha_per_target=True) and Ridge (float64, fresh random data)."""

import numpy as np
import pytest
import sklearn.linear_model
import torch

from neurofit.regression.ridge import DEFAULT_ALPHAS, Ridge, RidgeCV, ridge_gcv_fit


def _data(rng, n, p, q):
    X = rng.normal(size=(n, p)) * rng.uniform(0.1, 3, size=p) + 2
    W = rng.normal(size=(p, q)) * (rng.random((p, q)) < 0.3)
    Y = X @ W * rng.uniform(0.01, 1, size=q) + rng.normal(size=(n, q)) * rng.uniform(0.5, 5, size=q) + 5
    return X, Y, rng.normal(size=(20, p))


@pytest.mark.parametrize("shape", [(100, 20, 7), (60, 200, 30), (300, 50, 40), (120, 120, 5), (90, 10, 1)])
def test_ridge_matches_ridgecv_alphas_and_predictions(shape):
    X, Y, X_new = _data(np.random.default_rng(sum(shape)), *shape)
    ref = sklearn.linear_model.RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True).fit(X, Y)
    ours = RidgeCV(device="cpu").fit(X, Y)
    np.testing.assert_array_equal(ours.alpha_, np.atleast_1d(ref.alpha_))
    assert len(np.unique(ours.alpha_)) > 1 or shape[2] == 1  # the test exercises per-target choice
    pred, ref_pred = ours.predict(X_new).ravel(), ref.predict(X_new).ravel()
    assert np.abs(pred - ref_pred).max() / np.abs(ref_pred).max() < 1e-6


@pytest.mark.parametrize("alpha", [1e-3, 1.0, 250.0])
@pytest.mark.parametrize("shape", [(100, 20, 7), (60, 200, 3), (90, 10, 1)])
def test_fixed_penalty_ridge_matches_sklearn_ridge(shape, alpha):
    X, Y, X_new = _data(np.random.default_rng(sum(shape)), *shape)
    ref = sklearn.linear_model.Ridge(alpha=alpha).fit(X, Y)
    ours = Ridge(alpha=alpha, device="cpu").fit(X, Y)
    pred, ref_pred = ours.predict(X_new), ref.predict(X_new).reshape(len(X_new), -1)
    assert pred.dtype == np.float64 and pred.shape == Y[: len(X_new)].shape
    assert np.abs(pred - ref_pred).max() / np.abs(ref_pred).max() < 1e-8
    np.testing.assert_allclose(ours.coef_.numpy(), ref.coef_.reshape(ours.coef_.shape), rtol=1e-7, atol=1e-10)


def test_fixed_penalty_must_be_a_finite_non_negative_number():
    X, Y, _ = _data(np.random.default_rng(0), 30, 4, 2)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="alpha must be a finite penalty >= 0"):
            Ridge(alpha=bad).fit(X, Y)


def test_default_grid_has_at_least_20_penalties():
    assert len(DEFAULT_ALPHAS) >= 20


def test_target_chunking_and_batching_do_not_change_results():
    rng = np.random.default_rng(5)
    X = torch.tensor(np.stack([_data(rng, 70, 15, 9)[0] for _ in range(2)]))
    Y = torch.tensor(np.stack([_data(rng, 70, 15, 9)[1] for _ in range(2)]))
    whole = ridge_gcv_fit(X, Y)
    chunked = ridge_gcv_fit(X, Y, max_chunk_bytes=1)
    single = ridge_gcv_fit(X[1:], Y[1:])
    assert torch.equal(whole.alpha, chunked.alpha) and torch.equal(whole.alpha[1:], single.alpha)
    torch.testing.assert_close(whole.coef, chunked.coef, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(whole.coef[1:], single.coef, rtol=1e-12, atol=1e-12)
