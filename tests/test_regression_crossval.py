"""Cross-validated PLS/ridge over many (bin, fold) problems at once equal per-problem sklearn fits."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import RidgeCV

from neurofit.regression.crossval import pls_cross_validated, ridge_cross_validated
from neurofit.regression.ridge import DEFAULT_ALPHAS
from neurofit.regression.splits import make_splits

N, P, Q, BINS = 90, 30, 6, 3


def _reference(kind):
    if kind == "ridge":
        return RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True)
    model = PLSRegression(5, scale=False)
    if kind == "exact":
        model.algorithm = "svd"
    return model


@pytest.mark.parametrize("shared_design", [True, False])
@pytest.mark.parametrize("kind", ["exact", "nipals", "ridge"])
@pytest.mark.parametrize("scheme", ["kfold", "brainscore"])
def test_every_bin_and_fold_equals_its_own_sklearn_fit(shared_design, kind, scheme):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1 if shared_design else BINS, N, P))
    Y = rng.normal(size=(BINS, N, Q)) + X[..., :Q]
    s = make_splits([f"s{i:02d}" for i in range(N)], scheme=scheme, n_splits=5 if scheme == "kfold" else 10)
    train, test = torch.as_tensor(s.train), torch.as_tensor(s.test)
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    if kind == "ridge":
        preds = ridge_cross_validated(Xt, Yt, train, test)
    else:
        preds = pls_cross_validated(Xt, Yt, train, test, 5, algorithm=kind)
    for f in range(s.n_folds):
        for b in range(BINS):
            xb = X[0 if shared_design else b]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ref = _reference(kind).fit(xb[s.train[f]], Y[b][s.train[f]]).predict(xb[s.test[f]])
            assert np.abs(preds[f][b].numpy() - ref).max() / np.abs(ref).max() < 1e-9


def test_bin_chunking_bounds_memory_without_changing_predictions():
    rng = np.random.default_rng(1)
    X, Y = torch.as_tensor(rng.normal(size=(4, 60, 10))), torch.as_tensor(rng.normal(size=(4, 60, 5)))
    s = make_splits([f"s{i:02d}" for i in range(60)], n_splits=3)
    train, test = torch.as_tensor(s.train), torch.as_tensor(s.test)
    whole = pls_cross_validated(X, Y, train, test, 3)
    chunked = pls_cross_validated(X, Y, train, test, 3, max_problem_bytes=1)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
