"""Banded ridge equals himalaya's random search (leave-one-out folds, intercept); variance partitions."""

import numpy as np
import pytest
import torch

from neurofit.metrics.partition import (
    banded_ridge_cross_validated,
    banded_ridge_fit_predict,
    r2_score,
    simplex_grid,
    variance_partition,
)
from neurofit.regression.crossval import ridge_cross_validated

himalaya_ridge = pytest.importorskip("himalaya.ridge")
from himalaya.scoring import l2_neg_loss  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402

ALPHAS = np.logspace(-2, 4, 7)


def _two_spaces(rng, n=40, pa=5, pb=7, q=6):
    a, b = rng.normal(size=(n, pa)), rng.normal(size=(n, pb))
    # targets driven by a, by b, or by both, with different strengths: different bands win
    w = rng.normal(size=(pa + pb, q)) * np.r_[np.ones(pa), 0.3 * np.ones(pb)][:, None]
    w[:, 0] = np.r_[np.zeros(pa), rng.normal(size=pb)]
    y = np.hstack([a, b]) @ w + 2.0 + rng.normal(size=(n, q))
    return a, b, y


def test_banded_ridge_equals_himalaya_random_search_with_leave_one_out():
    a, b, y = _two_spaces(np.random.default_rng(0))
    gammas = simplex_grid(2, 6)
    t = [torch.as_tensor(v)[None] for v in (a, b)]
    pred, fit = banded_ridge_fit_predict(t, torch.as_tensor(y)[None], t, gammas, ALPHAS)
    deltas, weights, _, intercept = himalaya_ridge.solve_group_ridge_random_search(
        [a, b], y, n_iter=gammas, alphas=ALPHAS, fit_intercept=True, score_func=l2_neg_loss,
        cv=KFold(len(y)), return_weights=True, progress_bar=False)
    chosen = np.exp(np.asarray(deltas))  # gamma / alpha per space and target
    ours = (fit.gamma[0] / fit.alpha[0][None]).numpy()
    np.testing.assert_allclose(ours, chosen, rtol=1e-10)
    assert len(np.unique(fit.gamma[0, 0].numpy())) > 1  # targets chose different weightings
    np.testing.assert_allclose(pred[0].numpy(), np.hstack([a, b]) @ np.asarray(weights) + np.asarray(intercept),
                               rtol=0, atol=1e-9)


def test_one_space_banded_ridge_is_the_ridge_engine():
    rng = np.random.default_rng(1)
    X = torch.as_tensor(rng.normal(size=(1, 50, 6)))
    Y = torch.as_tensor(rng.normal(size=(2, 50, 3)))
    test = torch.arange(50)[None] % 5 == torch.arange(5)[:, None]
    for ours, ref in zip(banded_ridge_cross_validated([X], Y, ~test, test, np.ones((1, 1))),
                         ridge_cross_validated(X, Y, ~test, test)):
        torch.testing.assert_close(ours, ref, rtol=0, atol=1e-12)


def test_per_bin_designs_equal_bin_by_bin_fits():
    rng = np.random.default_rng(2)
    a, b = torch.as_tensor(rng.normal(size=(3, 40, 4))), torch.as_tensor(rng.normal(size=(1, 40, 2)))
    Y = torch.as_tensor(rng.normal(size=(3, 40, 2)))
    test = torch.arange(40)[None] % 4 == torch.arange(4)[:, None]
    joint = banded_ridge_cross_validated([a, b], Y, ~test, test)
    for k in range(3):
        alone = banded_ridge_cross_validated([a[k:k + 1], b], Y[k:k + 1], ~test, test)
        for f in range(4):
            torch.testing.assert_close(joint[f][k], alone[f][0], rtol=0, atol=1e-12)


def test_r2_score_equals_sklearn():
    from sklearn.metrics import r2_score as sk_r2

    rng = np.random.default_rng(3)
    y, p = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    np.testing.assert_allclose(r2_score(p, y), sk_r2(y, p, multioutput="raw_values"), rtol=0, atol=1e-14)


def test_partition_recovers_unique_and_shared_variance():
    rng = np.random.default_rng(4)
    n = 400
    common = rng.normal(size=(n, 2))
    only_a, only_b = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    a = np.hstack([common, only_a])[None]
    b = np.hstack([common, only_b])[None]
    # target 0 reads only_a, target 1 the common part, target 2 only_b: unit variance each, noise 0.25
    signal = np.stack([only_a.sum(1), common.sum(1), only_b.sum(1)], axis=1) / np.sqrt(2)
    y = (signal + 0.5 * rng.normal(size=(n, 3)))[None]
    test = np.arange(n)[None] % 5 == np.arange(5)[:, None]
    part = variance_partition({"a": a, "b": b}, y, ~test, test)
    truth = 1 / 1.25
    np.testing.assert_allclose(part.unique["a"][0], [truth, 0, 0], atol=0.06)
    np.testing.assert_allclose(part.unique["b"][0], [0, 0, truth], atol=0.06)
    np.testing.assert_allclose(part.shared[0], [0, truth, 0], atol=0.06)


def test_three_band_ridge_equals_himalaya_random_search():
    rng = np.random.default_rng(5)
    a, b, y = _two_spaces(rng, n=45, q=5)
    c = rng.normal(size=(45, 3))
    y = y + c @ rng.normal(size=(3, 5)) * np.array([0, 0, 1.0, 0.2, 0])
    gammas = simplex_grid(3, 5)
    t = [torch.as_tensor(v)[None] for v in (a, b, c)]
    pred, fit = banded_ridge_fit_predict(t, torch.as_tensor(y)[None], t, gammas, ALPHAS)
    deltas, weights, _, intercept = himalaya_ridge.solve_group_ridge_random_search(
        [a, b, c], y, n_iter=gammas, alphas=ALPHAS, fit_intercept=True, score_func=l2_neg_loss,
        cv=KFold(len(y)), return_weights=True, progress_bar=False)
    np.testing.assert_allclose((fit.gamma[0] / fit.alpha[0][None]).numpy(), np.exp(np.asarray(deltas)), rtol=1e-10)
    assert len({tuple(col) for col in fit.gamma[0].T.numpy().tolist()}) > 1  # targets chose different weightings
    np.testing.assert_allclose(pred[0].numpy(), np.hstack([a, b, c]) @ np.asarray(weights) + np.asarray(intercept),
                               rtol=0, atol=1e-9)


def test_partition_of_three_spaces_recovers_unique_and_shared_variance():
    rng = np.random.default_rng(6)
    n = 500
    common, ab = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    own = {k: rng.normal(size=(n, 2)) for k in "abc"}
    spaces = {"a": np.hstack([common, ab, own["a"]])[None], "b": np.hstack([common, ab, own["b"]])[None],
              "c": np.hstack([common, own["c"]])[None]}
    # targets read: only a's own part, only c's, the part all three share, the part a and b share
    signal = np.stack([own["a"].sum(1), own["c"].sum(1), common.sum(1), ab.sum(1)], axis=1) / np.sqrt(2)
    y = (signal + 0.5 * rng.normal(size=(n, 4)))[None]
    test = np.arange(n)[None] % 5 == np.arange(5)[:, None]
    part = variance_partition(spaces, y, ~test, test, resolution=4, alone=True)
    truth = 1 / 1.25
    np.testing.assert_allclose(part.unique["a"][0], [truth, 0, 0, 0], atol=0.06)
    np.testing.assert_allclose(part.unique["b"][0], [0, 0, 0, 0], atol=0.06)
    np.testing.assert_allclose(part.unique["c"][0], [0, truth, 0, 0], atol=0.06)
    np.testing.assert_allclose(part.shared[0], [0, 0, truth, truth], atol=0.06)
    # each space alone, and every model that drops one space, were fitted
    assert set(part.r2) == {("a", "b", "c"), ("b", "c"), ("a", "c"), ("a", "b"), ("a",), ("b",), ("c",)}
    np.testing.assert_allclose(part.r2[("c",)][0], [0, truth, truth, 0], atol=0.06)
    # the models that drop one space search simplex_grid(2, resolution); the joint one simplex_grid(3, resolution)
    folds = banded_ridge_cross_validated([torch.as_tensor(spaces[k]) for k in "ab"], torch.as_tensor(y),
                                         torch.as_tensor(~test), torch.as_tensor(test), simplex_grid(2, 4))
    pooled = np.zeros_like(y)
    for f, p in enumerate(folds):
        pooled[:, test[f]] = p.numpy()
    np.testing.assert_allclose(part.r2[("a", "b")][0], r2_score(pooled[0], y[0]), rtol=0, atol=1e-12)
