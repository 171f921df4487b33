"""PLS engine against scikit-learn's PLSRegression (float64, fresh random data)."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.cross_decomposition import PLSRegression
from sklearn.exceptions import ConvergenceWarning

from neurofit.errors import NeurofitError
from neurofit.regression import pls as pls_module
from neurofit.regression.pls import PLS, PLSConvergenceWarning, pls_fit, top_eigenvector

# includes problems whose Gram side (min(p, q)) is large enough for the iterative path (above the 60-vector
# subspace carried between components), on either side
SHAPES = [(120, 15, 6, 5), (50, 150, 20, 10), (150, 40, 50, 20), (90, 30, 1, 6), (40, 8, 12, 8),
          (250, 150, 100, 12), (200, 100, 160, 8)]


def _data(rng, n, p, q):
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 2.0, size=p) + rng.normal(size=p)
    latent = rng.normal(size=(n, 4))
    Y = latent @ rng.normal(size=(4, q)) + X[:, :3] @ rng.normal(size=(3, q)) + 0.5 * rng.normal(size=(n, q))
    return X, Y, rng.normal(size=(25, p))


def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("shape", SHAPES)
def test_exact_pls_matches_sklearn_where_it_converges(shape):
    n, p, q, k = shape
    X, Y, X_new = _data(np.random.default_rng(sum(shape)), n, p, q)
    by_svd = PLSRegression(k, scale=False)
    by_svd.algorithm = "svd"  # sklearn's exact variant, not exposed by PLSRegression's constructor
    by_svd.fit(X, Y)
    ours = PLS(k, device="cpu").fit(X, Y)
    assert _rel(ours.predict(X_new), by_svd.predict(X_new)) < 1e-6
    if min(p, q) <= 60:  # a fully converged NIPALS (slow to get from sklearn on the larger shapes)
        converged = PLSRegression(k, scale=False, tol=1e-15, max_iter=100_000)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            converged.fit(X, Y)
        assert _rel(ours.predict(X_new), converged.predict(X_new)) < 1e-6
    np.testing.assert_allclose(ours.x_weights_.numpy(), by_svd.x_weights_, atol=1e-6)
    np.testing.assert_allclose(ours.coef_.numpy(), by_svd.coef_, atol=1e-6 * np.abs(by_svd.coef_).max())


@pytest.mark.parametrize("shape", SHAPES)
def test_nipals_matches_sklearn_defaults_step_for_step(shape):
    n, p, q, k = shape
    X, Y, X_new = _data(np.random.default_rng(100 + sum(shape)), n, p, q)
    ref = PLSRegression(k, scale=False).fit(X, Y)
    ours = PLS(k, algorithm="nipals", device="cpu").fit(X, Y)
    assert ours.n_iter_.tolist() == list(ref.n_iter_)
    assert _rel(ours.predict(X_new), ref.predict(X_new)) < 1e-9
    np.testing.assert_allclose(ours.x_weights_.numpy(), ref.x_weights_, atol=1e-9)
    np.testing.assert_allclose(ours.y_weights_.numpy(), ref.y_weights_, rtol=1e-7, atol=1e-9)


def test_nipals_matches_sklearn_when_it_does_not_converge():
    X, Y, X_new = _data(np.random.default_rng(7), 150, 60, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = PLSRegression(10, scale=False, max_iter=4).fit(X, Y)
    with pytest.warns(PLSConvergenceWarning):
        ours = PLS(10, algorithm="nipals", max_iter=4, device="cpu").fit(X, Y)
    assert ours.n_iter_.tolist() == list(ref.n_iter_) and max(ref.n_iter_) == 4
    assert _rel(ours.predict(X_new), ref.predict(X_new)) < 1e-9
    assert _rel(ours.predict(X_new), PLS(10, device="cpu").fit(X, Y).predict(X_new)) > 1e-6


def test_batched_fit_equals_separate_fits():
    rng = np.random.default_rng(3)
    Xs, Ys = zip(*[_data(rng, 80, 30, 12)[:2] for _ in range(3)])
    X, Y = np.stack(Xs), np.stack(Ys)
    for algorithm in ("exact", "nipals"):
        batched = PLS(6, algorithm=algorithm, device="cpu").fit(X, Y)
        for b in range(3):
            single = PLS(6, algorithm=algorithm, device="cpu").fit(X[b], Y[b])
            np.testing.assert_allclose(batched.coef_[b].numpy(), single.coef_.numpy(), rtol=1e-10, atol=1e-12)


def test_top_eigenvector_is_exact_and_falls_back_to_eigh_when_stalled():
    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 120, 120, generator=g, dtype=torch.float64)
    G = A @ A.mT
    ref = torch.linalg.eigh(G).eigenvectors[..., -1]
    start = torch.randn(4, 120, 3, generator=g, dtype=torch.float64)
    for max_iter in (40, 1):
        z, ritz, steps = top_eigenvector(G, start, max_iter=max_iter)
        assert ((z * ref).sum(-1).abs() - 1).abs().max() < 1e-12
        assert ritz.shape == (4, 120, 3)
    assert (steps == 2).all()  # one step is too few from a random start: every problem used the fallback


def test_top_eigenvector_shift_never_passes_the_top_eigenvalue():
    # A start dominated by the second eigenvector, on a spectrum with a small top gap: the iteration must
    # still end on the top eigenvector (the Cholesky-certified shift lies above it), to float precision.
    g = torch.Generator().manual_seed(1)
    m = 150
    Q = torch.linalg.qr(torch.randn(2, m, m, generator=g, dtype=torch.float64)).Q
    vals = torch.linspace(1.0, 100.0, m, dtype=torch.float64)
    vals[-2] = 99.9  # relative gap 1e-3
    G = Q @ torch.diag_embed(vals.expand(2, m)) @ Q.mT
    start = Q[..., [-2, -3, -4, -5]] + 1e-3 * Q[..., [-1]]
    z, _, steps = top_eigenvector(G, start)
    assert ((z * Q[..., -1]).sum(-1).abs() - 1).abs().max() < 1e-12
    assert (steps > 0).all() and (steps <= 40).all()
    residual = torch.linalg.vector_norm((G @ z[..., None])[..., 0] - 100.0 * z, dim=-1)
    assert residual.max() < 1000 * torch.finfo(torch.float64).eps * 100.0


def test_float32_fit_stays_close_to_float64():
    X, Y, X_new = _data(np.random.default_rng(9), 300, 50, 30)
    f64 = PLS(10, device="cpu").fit(X, Y).predict(X_new)
    f32 = PLS(10, device="cpu", dtype=torch.float32).fit(X, Y).predict(X_new)
    assert _rel(f32, f64) < 1e-4


def test_bad_inputs_are_named():
    X, Y, _ = _data(np.random.default_rng(1), 30, 5, 2)
    X[3, 1] = np.nan
    with pytest.raises(NeurofitError, match="X contains NaN"):
        PLS(2, device="cpu").fit(X, Y)
    with pytest.raises(NeurofitError, match="n_components=8 exceeds"):
        pls_fit(torch.zeros(1, 30, 5, dtype=torch.float64), torch.zeros(1, 30, 2, dtype=torch.float64), 8)


def test_nipals_follows_sklearn_through_many_unconverged_iterations():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 150))
    Y = X @ rng.normal(size=(150, 150)) / 30 + rng.normal(size=(200, 150))  # flat spectrum: slow NIPALS
    X_new = rng.normal(size=(30, 150))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = PLSRegression(4, scale=False, max_iter=60).fit(X, Y)
        ours = PLS(4, algorithm="nipals", max_iter=60, device="cpu").fit(X, Y)
    assert ours.n_iter_.tolist() == list(ref.n_iter_) and list(ref.n_iter_).count(60) >= 2
    assert _rel(ours.predict(X_new), ref.predict(X_new)) < 1e-9


def test_nipals_skips_constant_targets_and_stops_on_a_constant_residual_like_sklearn():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 10))
    Y = X[:, :4] @ rng.normal(size=(4, 5)) + 0.3 * rng.normal(size=(80, 5))
    Y[:, 0], Y[:, 2] = 3.0, -1.5  # silent sites, the first among them: NIPALS starts from column 1
    X_new = rng.normal(size=(20, 10))
    ref = PLSRegression(4, scale=False).fit(X, Y)
    ours = PLS(4, algorithm="nipals", device="cpu").fit(X, Y)
    assert ours.n_iter_.tolist() == list(ref.n_iter_)
    assert _rel(ours.predict(X_new), ref.predict(X_new)) < 1e-9
    with pytest.warns(PLSConvergenceWarning, match="y residual is constant"):
        constant = PLS(2, algorithm="nipals", device="cpu").fit(X, np.ones((80, 3)))
    np.testing.assert_allclose(constant.predict(X_new), 1.0)


@pytest.mark.parametrize("route", ["iterative", "eigh per component"])
def test_flat_spectrum_shift_and_invert_path_is_exact(route, monkeypatch):
    # the regime (i) in miniature: dense weak weights, a flat spectrum with small top gaps, where
    # every component after the first needs inverse-iteration steps (orders this small take a full eigh per
    # component by default; the iterative route, used above EIGH_BELOW, is forced here to test it)
    if route == "iterative":
        monkeypatch.setattr(pls_module, "EIGH_BELOW", 0)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 150))
    Y = X @ rng.normal(size=(150, 120)) / 30 + rng.normal(size=(400, 120))
    X_new = rng.normal(size=(25, 150))
    ours = PLS(15, device="cpu").fit(X, Y)
    if route == "iterative":
        assert (ours.n_iter_[1:] > 0).all() and (ours.n_iter_ <= 40).all()  # no eigh fallback
    by_svd = PLSRegression(15, scale=False)
    by_svd.algorithm = "svd"
    by_svd.fit(X, Y)
    assert _rel(ours.predict(X_new), by_svd.predict(X_new)) < 1e-9
    np.testing.assert_allclose(np.abs(ours.x_weights_.numpy()), np.abs(by_svd.x_weights_), atol=1e-9)


def test_recycled_subspace_path_is_exact(monkeypatch):
    # low-rank data: the Rayleigh-Ritz step on the previous component's subspace meets the tolerance alone
    # (float32 data, whose tolerance is 1e-9) or after one inverse-iteration step (float64, 2e-13); the
    # iterative route is forced at this small order (see the flat-spectrum test)
    monkeypatch.setattr(pls_module, "EIGH_BELOW", 0)
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(300, 30))
    X = Z @ rng.normal(size=(30, 150)) + rng.normal(size=(300, 150))
    Y = Z @ rng.normal(size=(30, 120)) + rng.normal(size=(300, 120))
    X_new = rng.normal(size=(25, 150))
    ours = PLS(12, device="cpu").fit(X, Y)
    assert (ours.n_iter_[1:] <= 1).all() and (ours.n_iter_[1:] == 0).any()
    by_svd = PLSRegression(12, scale=False)
    by_svd.algorithm = "svd"
    by_svd.fit(X, Y)
    assert _rel(ours.predict(X_new), by_svd.predict(X_new)) < 1e-9
    f32 = PLS(12, device="cpu", dtype=torch.float32).fit(X, Y)
    assert (f32.n_iter_[1:] == 0).all() and _rel(f32.predict(X_new), by_svd.predict(X_new)) < 1e-4


def test_structured_shift_counts_the_eigenvalues_above_it_and_inverts_exactly():
    # H = diag(lam) + W J W^T: the inertia count certifies sigma above the top eigenvalue exactly where it is,
    # including shifts among the diagonal's entries (poles of the Woodbury formula), and the solve is exact
    g = torch.Generator().manual_seed(4)
    f64 = torch.float64
    B, m = 3, 80
    lam = torch.rand(B, m, generator=g, dtype=f64) * 10
    W = torch.randn(B, m, 10, generator=g, dtype=f64)
    J = torch.tensor([1.0, -1.0] * 5, dtype=f64)
    H = torch.diag_embed(lam) + (W * J) @ W.mT
    top = torch.linalg.eigvalsh(H)[..., -1]
    for rel in (-0.5, -1e-6, 1e-6, 0.3):
        sigma = top * (1 + rel)
        factors, ok = pls_module._factor(H, sigma, (lam, W, J))
        assert ok.tolist() == [rel > 0] * B
        V = torch.randn(B, m, 3, generator=g, dtype=f64)
        ref = torch.linalg.solve(sigma[:, None, None] * torch.eye(m, dtype=f64) - H, V)
        assert ((pls_module._solve(factors, V) - ref).abs().max() / ref.abs().max()) < 1e-8
        cholesky, ok_chol = pls_module._factor(H, sigma, None)
        assert ok_chol.tolist() == ok.tolist()


def test_structured_top_eigenvector_never_passes_the_top_eigenvalue():
    # a start dominated by the next eigenvectors: the certified shift must still lead to the top one
    g = torch.Generator().manual_seed(5)
    f64 = torch.float64
    m = 150
    lam = torch.linspace(1.0, 100.0, m, dtype=f64).expand(2, m)
    W = 0.3 * torch.randn(2, m, 6, generator=g, dtype=f64)
    J = torch.tensor([1.0, -1.0] * 3, dtype=f64)
    H = torch.diag_embed(lam) + (W * J) @ W.mT
    vals, vecs = torch.linalg.eigh(H)
    start = vecs[..., [-2, -3, -4, -5]] + 1e-3 * vecs[..., [-1]]
    z, _, steps = top_eigenvector(H, start, spectral=(lam, W, J))
    assert ((z * vecs[..., -1]).sum(-1).abs() - 1).abs().max() < 1e-12
    assert (steps > 0).all() and (steps <= 40).all()


@pytest.mark.parametrize("spectral_batch", [1, 10**6])
@pytest.mark.parametrize("shape", SHAPES)
def test_iterative_route_equals_eigh_per_component(shape, spectral_batch, monkeypatch):
    # the iterative routes (dense Gram matrices with Cholesky-certified shifts; diag + low-rank Gram matrices
    # in the first component's eigenbasis with inertia-certified shifts, used for batches and forced here for
    # one problem) against a full eigendecomposition per component, on either side
    X, Y, X_new = _data(np.random.default_rng(11), *shape[:3])
    by_eigh = PLS(shape[3], device="cpu").fit(X, Y)
    monkeypatch.setattr(pls_module, "EIGH_BELOW", 0)
    monkeypatch.setattr(pls_module, "SPECTRAL_BATCH", spectral_batch)
    ours = PLS(shape[3], device="cpu").fit(X, Y)
    assert _rel(ours.predict(X_new), by_eigh.predict(X_new)) < 1e-9
    np.testing.assert_allclose(ours.x_weights_.numpy(), by_eigh.x_weights_.numpy(), atol=1e-9)
    np.testing.assert_allclose(ours.y_weights_.numpy(), by_eigh.y_weights_.numpy(), atol=1e-9)


def test_inertia_from_bunch_kaufman_factors_equals_the_eigenvalue_count():
    # the certification's count of negative eigenvalues (1 x 1 blocks by sign, 2 x 2 blocks one each)
    g = torch.Generator().manual_seed(6)
    for r in (1, 2, 5, 24, 48):
        A = torch.randn(20, r, r, generator=g, dtype=torch.float64)
        S = A + A.mT + torch.diag_embed(torch.randn(20, r, generator=g, dtype=torch.float64) * 3)
        S[:5] = torch.diag_embed(torch.tensor([1.0, -1.0], dtype=torch.float64).repeat(r)[:r]) - A[:5] @ A[:5].mT
        LD, pivots, info = torch.linalg.ldl_factor_ex(S)
        assert (info == 0).all()
        want = (torch.linalg.eigvalsh(S) < 0).sum(-1)
        assert pls_module._negative_eigenvalues(LD, pivots).tolist() == want.tolist()
