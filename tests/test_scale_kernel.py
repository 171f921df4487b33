"""The stimulus-kernel route of the PLS Gram matrices (issue 20, item 4): equal to the cross-covariance route and
to sklearn on fresh random data, in both regimes (many sites, many features), and chosen by multiply-add count."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.cross_decomposition import PLSRegression

from neurofit.regression import crossval as crossval_module
from neurofit.regression import pls as pls_module
from neurofit.regression.crossval import pls_cross_validated
from neurofit.regression.pls import PLS, gram_route
from neurofit.regression.splits import make_splits


def _rel(a, b):
    return float(np.abs(np.asarray(a) - np.asarray(b)).max() / np.abs(np.asarray(b)).max())


def _problem(seed, n, p, q, bins, shared):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 8))
    X = Z @ rng.normal(size=(8, p)) + rng.normal(size=(1 if shared else bins, n, p)) + rng.normal(size=p) * 3
    Y = Z @ rng.normal(size=(bins, 8, q)) / 2 + rng.normal(size=(bins, n, q)) + 5.0  # offsets: centring matters
    s = make_splits([f"s{i:03d}" for i in range(n)], n_splits=5, seed=seed)
    return X, Y, s


def _svd_pls(k):
    model = PLSRegression(k, scale=False)
    model.algorithm = "svd"  # sklearn's exact variant
    return model


# (n, p, q): many sites on few stimuli (the kernel of Y), and many features on few stimuli (the kernel of X)
REGIMES = [(70, 25, 900), (70, 700, 12)]


@pytest.mark.parametrize("n, p, q", REGIMES)
@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("algorithm", ["exact", "nipals"])
def test_kernel_route_equals_the_cross_covariance_route_and_sklearn(n, p, q, shared, algorithm):
    X, Y, s = _problem(n + p + q + shared, n, p, q, 2, shared)
    Xt, Yt = torch.as_tensor(X), torch.as_tensor(Y)
    train, test = torch.as_tensor(s.train), torch.as_tensor(s.test)
    kernel = pls_cross_validated(Xt, Yt, train, test, 4, algorithm=algorithm, gram="kernel")
    cross = pls_cross_validated(Xt, Yt, train, test, 4, algorithm=algorithm, gram="cross")
    for f in range(s.n_folds):
        assert _rel(kernel[f], cross[f]) < 1e-11
        if algorithm == "exact":
            for b in range(2):
                xb = X[0 if shared else b]
                ref = _svd_pls(4).fit(xb[s.train[f]], Y[b][s.train[f]]).predict(xb[s.test[f]])
                assert _rel(kernel[f][b].numpy(), ref) < 1e-9


@pytest.mark.parametrize("n, p, q", REGIMES)
def test_float32_kernel_route_stays_close_to_float64(n, p, q):
    X, Y, s = _problem(7, n, p, q, 2, False)
    train, test = torch.as_tensor(s.train), torch.as_tensor(s.test)
    ref = pls_cross_validated(torch.as_tensor(X), torch.as_tensor(Y), train, test, 5, gram="cross")
    f32 = pls_cross_validated(torch.as_tensor(X, dtype=torch.float32), torch.as_tensor(Y, dtype=torch.float32),
                              train, test, 5, gram="kernel")
    for a, b in zip(f32, ref):
        assert a.dtype == torch.float32 and _rel(a.double(), b) < 1e-4


def test_the_route_is_chosen_by_multiply_add_count(monkeypatch):
    # Li2026 per bin (1000 stimuli, 47,503 sites, 10 folds): kernel; TVSD (22,248 stimuli): cross-covariance
    assert gram_route(1000, 1000, 47503, n_problems=10, n_train=900) == "kernel"
    assert gram_route(22248, 1000, 2048, n_problems=10, n_train=20023) == "cross"
    assert gram_route(90, 30, 6, n_problems=5) == "cross"  # the small problems of the scoring tests
    used = []
    real = crossval_module._kernel_grams
    monkeypatch.setattr(crossval_module, "_kernel_grams", lambda *a: used.append(1) or real(*a))
    for (n, p, q), expected in [((60, 40, 2000), 1), ((60, 10, 8), 0)]:
        used.clear()
        X, Y, s = _problem(1, n, p, q, 1, True)
        pls_cross_validated(torch.as_tensor(X), torch.as_tensor(Y), torch.as_tensor(s.train),
                            torch.as_tensor(s.test), 3)
        assert len(used) == expected


def test_kernels_too_large_for_the_memory_bound_take_the_cross_route():
    assert crossval_module._cv_gram_route(60, 48, 40, 2000, 5, 1, 1, 8, 10**9, "auto") == "kernel"
    assert crossval_module._cv_gram_route(60, 48, 40, 2000, 5, 1, 1, 8, 60 * 60 * 8 - 1, "auto") == "cross"
    with pytest.raises(ValueError, match="gram must be"):
        crossval_module._cv_gram_route(60, 48, 40, 2000, 5, 1, 1, 8, 10**9, "fast")


@pytest.mark.parametrize("n, p, q", [(40, 60, 1500), (40, 1200, 60)])
def test_one_fit_with_many_sites_or_features_takes_the_kernel_route_exactly(n, p, q, monkeypatch):
    rng = np.random.default_rng(n + p + q)
    X = rng.normal(size=(n, p)) + 2.0
    Y = X[:, :3] @ rng.normal(size=(3, q)) + rng.normal(size=(n, q)) - 1.0
    X_new = rng.normal(size=(10, p))
    assert gram_route(n, p, q) == "kernel"
    calls = []
    real = pls_module.kernel_gram
    monkeypatch.setattr(pls_module, "kernel_gram", lambda *a: calls.append(1) or real(*a))
    ours = PLS(6, device="cpu").fit(X, Y)
    assert calls
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = _svd_pls(6).fit(X, Y)
    assert _rel(ours.predict(X_new), ref.predict(X_new)) < 1e-9
    monkeypatch.setattr(pls_module, "gram_route", lambda *a, **k: "cross")
    cross = PLS(6, device="cpu").fit(X, Y)
    assert _rel(ours.predict(X_new), cross.predict(X_new)) < 1e-11
    np.testing.assert_allclose(ours.y_weights_.numpy(), cross.y_weights_.numpy(), atol=1e-9)
