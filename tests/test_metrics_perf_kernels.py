"""The fast paths of the metric kernels (issue 17's performance work) equal their references.

Banded ridge through the kernel form (fewer samples than features) equals himalaya's random search with
leave-one-out folds, and per-bin problems mapped over worker threads equal one-thread fits.
"""

import numpy as np
import pytest
import torch

from neurofit.metrics.partition import banded_ridge_cross_validated, banded_ridge_fit_predict, simplex_grid
from neurofit.regression.parallel import torch_threads

himalaya_ridge = pytest.importorskip("himalaya.ridge")
from himalaya.scoring import l2_neg_loss  # noqa: E402
from sklearn.model_selection import KFold  # noqa: E402

ALPHAS = np.logspace(-2, 4, 7)


def test_banded_ridge_kernel_form_equals_himalaya_with_leave_one_out():
    rng = np.random.default_rng(5)
    n, pa, pb, q = 30, 25, 20, 5  # n < pa + pb: the kernel branch
    a, b = rng.normal(size=(n, pa)), rng.normal(size=(n, pb))
    w = rng.normal(size=(pa + pb, q)) * np.r_[np.ones(pa), 0.3 * np.ones(pb)][:, None]
    w[:, 0] = np.r_[np.zeros(pa), rng.normal(size=pb)]
    y = np.hstack([a, b]) @ w + 1.0 + rng.normal(size=(n, q))
    gammas = simplex_grid(2, 6)
    t = [torch.as_tensor(v)[None] for v in (a, b)]
    pred, fit = banded_ridge_fit_predict(t, torch.as_tensor(y)[None], t, gammas, ALPHAS)
    deltas, weights, _, intercept = himalaya_ridge.solve_group_ridge_random_search(
        [a, b], y, n_iter=gammas, alphas=ALPHAS, fit_intercept=True, score_func=l2_neg_loss,
        cv=KFold(len(y)), return_weights=True, progress_bar=False, warn=False)
    np.testing.assert_allclose((fit.gamma[0] / fit.alpha[0][None]).numpy(), np.exp(np.asarray(deltas)), rtol=1e-10)
    np.testing.assert_allclose(pred[0].numpy(), np.hstack([a, b]) @ np.asarray(weights) + np.asarray(intercept),
                               rtol=0, atol=1e-9)


def test_banded_ridge_cross_validated_on_threads_equals_one_thread():
    rng = np.random.default_rng(6)
    a = torch.as_tensor(rng.normal(size=(4, 60, 5)))
    b = torch.as_tensor(rng.normal(size=(1, 60, 3)))
    Y = torch.as_tensor(rng.normal(size=(4, 60, 3)))
    test = torch.arange(60)[None] % 3 == torch.arange(3)[:, None]
    with torch_threads(1):
        ref = banded_ridge_cross_validated([a, b], Y, ~test, test)
    with torch_threads(2):
        # tiny problems: several (fold, bins) chunks per fold
        out = banded_ridge_cross_validated([a, b], Y, ~test, test, max_problem_bytes=40 * 8 * 8)
    for o, r in zip(out, ref):
        torch.testing.assert_close(o, r, rtol=0, atol=1e-12)


def test_pruned_penalty_search_chooses_as_the_exhaustive_one():
    # noise targets (flat leave-one-out curves, near ties), signal targets and a constant one; 26 penalties
    from neurofit.regression.ridge import ridge_gcv_fit

    rng = np.random.default_rng(7)
    X = torch.as_tensor(rng.normal(size=(2, 90, 12)))
    Y = torch.as_tensor(rng.normal(size=(2, 90, 40)))
    Y[..., :20] += X @ torch.as_tensor(rng.normal(size=(2, 12, 20))) * torch.logspace(-2, 1, 20, dtype=torch.float64)
    Y[..., -1] = 3.0
    pred, fit = banded_ridge_fit_predict([X], Y, [X], np.ones((1, 1)))
    ref = ridge_gcv_fit(X, Y)
    torch.testing.assert_close(fit.alpha, ref.alpha, rtol=0, atol=0)
    torch.testing.assert_close(fit.best_score, ref.best_score, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(pred, X @ ref.coef + ref.intercept[:, None], rtol=0, atol=1e-10)
