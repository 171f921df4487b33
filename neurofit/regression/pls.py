"""Partial least squares regression (PLS2, centred, not scaled), batched on torch.

Two algorithms give the per-component weight vector ``w_k`` (the top left singular vector of the deflated
cross-covariance ``C_k = X_k^T Y``):

* ``"exact"``: the top eigenvector of the small Gram matrix ``G_k = C_k^T C_k`` (``q x q``; ``C_k C_k^T``
  when ``p < q``): one full ``eigh`` for the first component, ``G_0 = Q0 diag(lam0) Q0^T``; ``G_k`` is
  updated by a rank-2 correction per component instead of being re-formed; for batches of problems
  (``SPECTRAL_BATCH``) it is held in ``Q0``'s basis as ``H_k = Q0^T G_k Q0 = diag(lam0) + W J W^T`` (``W``:
  the ``2k`` update directions, ``J`` their signs).
  For the next components a Rayleigh-Ritz step on the subspace carried over from the previous component
  (its Ritz vectors plus the two directions of the rank-2 update), then, where its residual is not yet at
  float precision, block inverse iteration with a shift certified above the top eigenvalue by a Cholesky
  factorisation or, on ``H_k``, by an inertia count whose factors also invert the shift by Woodbury's formula
  (``m (2k)^2`` instead of ``m^3 / 3``, so the shift follows the Rayleigh quotient at every step; see
  :func:`top_eigenvector`); the iteration runs
  until the relative residual ``||H z - theta z|| / theta`` is at float precision. This equals
  ``sklearn.cross_decomposition.PLSRegression(scale=False, algorithm="svd")`` and, where sklearn's NIPALS
  converges, its default.
* ``"nipals"``: sklearn's own power iteration, step for step (start from the first non-constant column of
  the deflated ``Y``, ``tol=1e-6`` on the squared change of the normalised weights, ``max_iter=500``), run
  as the equivalent power iteration on ``G_k`` so each step costs ``q^2`` instead of ``n (p + q)``. It
  reproduces ``PLSRegression`` defaults, including their convergence error, which Brain-Score's published
  numbers carry.

Deflation follows the kernel algorithm of Dayal & MacGregor (1997): with rotations ``r_k = w_k - R (P^T
w_k)``, scores ``t_k = X r_k`` on the *original* centred ``X``, x-loadings ``p_k = X^T t_k / t_k^T t_k``,
y-loadings ``c_k = Y^T t_k / t_k^T t_k`` and ``C_{k+1} = C_k - (t_k^T t_k) p_k c_k^T``, which is
algebraically identical to sklearn's explicit deflation of ``X`` and ``Y``. The only data access per
component is ``X r`` and ``X^T t``: :func:`pls_kernel` takes it as a callback, so cross-validation can
reuse one feature matrix for all folds (see :func:`pls_cross_validated`).

The Gram matrix comes from the cross-covariance (``C0 C0^T``: ``p q min(p, q)`` multiply-adds) or, when one
side is much wider than the number of stimuli ``n``, from that side's stimulus kernel (``X_c^T (Y_c Y_c^T)
X_c``: ``n^2 max(p, q) + n^2 m + n m^2``); :func:`gram_route` picks the cheaper by count. Both are exact.

Everything is batched over a leading dimension (folds x time bins).
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Literal, Protocol

import numpy as np
import torch

from neurofit.errors import NeurofitError
from neurofit.regression.estimator import TorchRegressor
from neurofit.regression.parallel import map_chunks, split_range, torch_threads, workers

Algorithm = Literal["exact", "nipals"]
# Size of the subspace carried from one component to the next: the previous Ritz vectors (the converged
# inverse-iteration block first) plus the two directions of the rank-2 Gram update. On low-rank data one
# Rayleigh-Ritz step on it meets the tolerance; elsewhere it gives the shift-and-invert iteration its start.
SUBSPACE = 60
# Inverse-iteration steps that cost about one Cholesky factorisation: the shift is moved (and the matrix
# refactorised) only where the observed convergence rate would need more steps than this.
RESHIFT_STEPS = 3
# Vectors iterated together by the inverse iteration.
BLOCK = 4
# From this many problems per batch on, the exact route holds the Gram matrices as diagonal plus low rank in the
# first one's eigenbasis (see top_eigenvector's ``spectral``): its certified shifts cost m (2k)^2 arithmetic
# instead of a Cholesky factorisation's m^3 / 3, but a few dozen more small operations per step, which a single
# problem does not amortise (measured: 10-fold CV 8% less CPU, one fit 6% more; benchmarks/perf/RESULTS.md).
SPECTRAL_BATCH = 2
# Up to this order a full eigendecomposition per component costs less than the iterative route's few dozen
# small operations.
EIGH_BELOW = 160

# (r [B, p]) -> (tt [B], x_loadings [B, p], y_loadings [B, q]) for scores t = X_c r.
DataStep = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


class PLSConvergenceWarning(UserWarning):
    """NIPALS reached ``max_iter`` for some component (as sklearn's ConvergenceWarning)."""


@dataclass
class PLSComponents:
    """What :func:`pls_kernel` learns, batched over the leading dimension ``B``.

    Attributes
    ----------
    x_weights : Tensor (B, p, K)
    x_rotations : Tensor (B, p, K)
        ``R`` with ``T = X_c R``; sklearn's ``x_rotations_``.
    x_loadings : Tensor (B, p, K)
    y_loadings : Tensor (B, q, K)
    y_weights : Tensor (B, q, K)
    n_iter : Tensor (B, K) of int
        NIPALS iterations per component (inverse-iteration steps for ``exact``, 0 where Rayleigh-Ritz sufficed).
    """

    x_weights: torch.Tensor
    x_rotations: torch.Tensor
    x_loadings: torch.Tensor
    y_loadings: torch.Tensor
    y_weights: torch.Tensor
    n_iter: torch.Tensor


def _orthonormalise(V: torch.Tensor) -> torch.Tensor:
    return torch.linalg.qr(V).Q


def _rayleigh_ritz(G: torch.Tensor, V: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Ritz pairs of ``G`` on ``span(V)``, largest first: (vectors [B, m, s], values [B, s], top residual [B])."""
    V = _orthonormalise(V)
    GV = (V.mT @ G).mT  # G symmetric; a thin product in this layout takes a faster BLAS path
    H = V.mT @ GV
    theta, S = torch.linalg.eigh(0.5 * (H + H.mT))
    theta, S = theta.flip(-1), S.flip(-1)
    V, GV = V @ S, GV @ S
    resid = torch.linalg.vector_norm(GV[..., 0] - theta[..., :1] * V[..., 0], dim=-1)
    return V, theta, resid


def _shifted(G: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """``sigma I - G`` (one new tensor, no identity matrix built)."""
    M = torch.neg(G)
    M.diagonal(dim1=-2, dim2=-1).add_(sigma[:, None])
    return M


def _take(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``t[mask]`` without copying when the mask keeps everything."""
    return t if bool(mask.all()) else t[mask]


#: ``(lam0 [B, m], W [B, m, r], J [r])`` with ``G = diag(lam0) + W diag(J) W^T`` and ``J`` of +-1: a Gram matrix
#: held in the eigenbasis of the first component's Gram matrix together with the low-rank updates since then
Spectral = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _factor(
    G: torch.Tensor, sigma: torch.Tensor, spectral: Spectral | None
) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """Factors of ``sigma I - G`` for :func:`_solve`, and where ``sigma`` is certified above ``lambda_max(G)``.

    Without ``spectral``: the Cholesky factor, whose existence proves ``sigma I - G`` positive definite
    (``m^3 / 3`` multiply-adds). With it (``G = Lam + W J W^T``, ``Lam`` diagonal): Woodbury's formula,
    ``(sigma I - G)^-1 = D^-1 + D^-1 W S^-1 W^T D^-1`` with ``D = sigma I - Lam`` and ``S = J - W^T D^-1 W``
    (``r x r``), and Haynsworth's inertia additivity on ``[[D, W], [W^T, J]]``: the number of eigenvalues of
    ``G`` above ``sigma`` is ``neg(D) + neg(S) - neg(J)``, which must be 0 (``m r^2`` multiply-adds and one
    ``r x r`` Bunch-Kaufman factorisation, :func:`_negative_eigenvalues`). Returns ``(factors, ok)``.
    """
    if spectral is None:
        L, info = torch.linalg.cholesky_ex(_shifted(G, sigma))
        return (L,), info == 0
    lam, W, J = spectral
    tiny = torch.finfo(G.dtype).tiny
    d = sigma[:, None] - lam
    d = torch.where(d == 0, tiny, d)
    dinv = 1.0 / d
    DW = dinv[..., None] * W
    S = -(W.mT @ DW)
    S.diagonal(dim1=-2, dim2=-1).add_(J)
    LD, pivots, info = torch.linalg.ldl_factor_ex(S)
    above = (d < 0).sum(-1) + _negative_eigenvalues(LD, pivots) - int((J < 0).sum())
    return (dinv, DW, LD, pivots), (above == 0) & (info == 0) & torch.isfinite(LD.diagonal(dim1=-2, dim2=-1)).all(-1)


def _negative_eigenvalues(LD: torch.Tensor, pivots: torch.Tensor) -> torch.Tensor:
    """Negative eigenvalues of symmetric matrices from their Bunch-Kaufman factors ``P L D L^T P^T``
    (``torch.linalg.ldl_factor_ex``): by Sylvester's law of inertia, those of the block-diagonal ``D``. Its 1 x 1
    blocks count by their sign; each 2 x 2 block (two rows with negative pivots) has one negative and one
    positive eigenvalue (Bunch-Kaufman takes a 2 x 2 pivot only where its off-diagonal entry dominates, so its
    determinant is negative).

    Example
    -------
    >>> S = torch.tensor([[[0.0, 2.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, -3.0]]], dtype=torch.float64)
    >>> int(_negative_eigenvalues(*torch.linalg.ldl_factor_ex(S)[:2])[0])
    2
    """
    in_pair = pivots < 0
    return ((LD.diagonal(dim1=-2, dim2=-1) < 0) & ~in_pair).sum(-1) + in_pair.sum(-1) // 2


def _solve(factors: tuple[torch.Tensor, ...], V: torch.Tensor) -> torch.Tensor:
    """``(sigma I - G)^-1 V`` from :func:`_factor`'s factors."""
    if len(factors) == 1:  # Cholesky: two triangular solves (faster than torch.cholesky_solve for thin V)
        L = factors[0]
        return torch.linalg.solve_triangular(L.mT, torch.linalg.solve_triangular(L, V, upper=False), upper=True)
    dinv, DW, LD, pivots = factors
    return torch.baddbmm(dinv[..., None] * V, DW, torch.linalg.ldl_solve(LD, pivots, DW.mT @ V))


def _scatter(full: tuple[torch.Tensor, ...], idx: torch.Tensor, part: tuple[torch.Tensor, ...]) -> None:
    for f, t in zip(full, part):
        f[idx] = t


def _certified_shift(
    G: torch.Tensor, theta: torch.Tensor, offset: torch.Tensor, spectral: Spectral | None = None,
    max_tries: int = 60,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], torch.Tensor]:
    """A shift ``sigma > lambda_max(G)`` per problem and the factors of ``sigma I - G`` (see :func:`_factor`).

    ``sigma = theta + offset``, the offset growing fourfold until the factorisation certifies that ``sigma I -
    G`` is positive definite, i.e. that ``sigma`` lies above the top eigenvalue. Returns ``(sigma, factors,
    ok)``; ``ok`` is False where no shift was found (non-finite input).
    """
    sigma = theta + offset
    factors, ok = _factor(G, sigma, spectral)
    bad = ~ok
    for _ in range(max_tries):
        if not bool(bad.any()):
            break
        idx = bad.nonzero()[:, 0]
        offset[idx] = offset[idx] * 4
        sigma[idx] = theta[idx] + offset[idx]
        part, ok_b = (_factor(G[idx], sigma[idx], None) if spectral is None
                      else _factor(G, sigma[idx], _subset(spectral, idx)))
        _scatter(factors, idx, part)
        bad[idx] = ~ok_b
    return sigma, factors, ~bad


def _subset(spectral: Spectral, idx: torch.Tensor) -> Spectral:
    lam, W, J = spectral
    return lam[idx], W[idx], J


def top_eigenvector(
    G: torch.Tensor,
    start: torch.Tensor,
    *,
    tol: float | None = None,
    block: int = 4,
    max_iter: int = 40,
    spectral: Spectral | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Top eigenvector of each symmetric PSD matrix in a batch: Rayleigh-Ritz, then certified shift-and-invert.

    A Rayleigh-Ritz step on ``span(start)`` gives Ritz pairs; where the top pair's relative residual
    ``||G z - theta z|| / theta`` already meets ``tol`` nothing more is done (``start`` must then hold the
    top eigenvector's direction: in PLS it is the previous component's Ritz subspace plus the two
    directions of the rank-2 update, which contains the new top eigenvector up to the coupling that the
    residual measures). Elsewhere a shift ``sigma = theta + rho`` (``rho`` the residual norm), raised until
    a factorisation of ``sigma I - G`` certifies it above the top eigenvalue (:func:`_factor`), makes block
    inverse iteration with ``(sigma I - G)^-1`` from the top ``block`` Ritz vectors converge to the top
    eigenvector and to no other, at the rate ``(sigma - lambda_1) / (sigma - lambda_{block+1})``. The shift
    then moves down to the new ``theta + rho`` where a factorisation again certifies it (Rayleigh-quotient
    acceleration that cannot pass the top eigenvalue); with a Cholesky factorisation (``m^3 / 3``) only where
    the observed convergence rate would need more than ``RESHIFT_STEPS`` steps, with ``spectral`` (``G =
    diag(lam0) + W J W^T`` with ``r << m`` columns: Woodbury solves and an inertia count, ``m r^2``) at every
    step. Problems that do not converge in ``max_iter`` steps fall back to ``torch.linalg.eigh``.

    Parameters
    ----------
    G : Tensor (B, m, m)
        Symmetric positive semi-definite matrices.
    start : Tensor (B, m, s)
        Subspace to search first (any rank, ``s < m``).
    tol : float, optional
        Relative residual to reach; default ``1000 * eps`` of the dtype.
    block : int
        Vectors iterated together by inverse iteration.
    max_iter : int
        Inverse-iteration steps before the ``eigh`` fallback.
    spectral : (Tensor (B, m), Tensor (B, m, r), Tensor (r,)), optional
        ``(lam0, W, J)`` with ``G = diag(lam0) + W diag(J) W^T`` (to rounding) and ``J`` of +-1: shifts are
        then certified and inverted through this low-rank structure instead of by Cholesky factorisations.

    Returns
    -------
    z : Tensor (B, m)
        Unit top eigenvectors (sign arbitrary).
    ritz : Tensor (B, m, s)
        Orthonormal Ritz vectors of ``span(start)``, largest first, the first ``block`` of them replaced by
        the converged inverse-iteration block where that ran: a starting subspace for a nearby problem.
    steps : Tensor (B,) of int
        Inverse-iteration steps used (0: the Rayleigh-Ritz step sufficed; ``max_iter + 1``: ``eigh``).

    Example
    -------
    >>> A = torch.randn(3, 50, 50, dtype=torch.float64); G = A @ A.mT
    >>> z, _, _ = top_eigenvector(G, torch.randn(3, 50, 4, dtype=torch.float64))
    >>> ref = torch.linalg.eigh(G).eigenvectors[..., -1]
    >>> bool(((z * ref).sum(-1).abs() - 1).abs().max() < 1e-10)
    True
    >>> lam = torch.rand(3, 50, dtype=torch.float64); W = torch.randn(3, 50, 4, dtype=torch.float64)
    >>> J = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    >>> G = torch.diag_embed(lam) + (W * J) @ W.mT
    >>> z, _, _ = top_eigenvector(G, torch.randn(3, 50, 4, dtype=torch.float64), spectral=(lam, W, J))
    >>> ref = torch.linalg.eigh(G).eigenvectors[..., -1]
    >>> bool(((z * ref).sum(-1).abs() - 1).abs().max() < 1e-10)
    True
    """
    B, m, _ = G.shape
    s = start.shape[-1]
    eps = torch.finfo(G.dtype).eps
    tiny = torch.finfo(G.dtype).tiny
    tol = 1000 * eps if tol is None else tol
    steps = torch.zeros(B, dtype=torch.int64, device=G.device)
    if s >= m or m <= 32:
        vecs = torch.linalg.eigh(G).eigenvectors
        return vecs[..., -1], vecs[..., -min(s, m) :].flip(-1), steps
    ritz, theta, rho = _rayleigh_ritz(G, start)
    th = theta[..., 0]
    converged = rho <= tol * th.abs().clamp_min(tiny)
    z = ritz[..., 0].clone()
    if bool(converged.all()):
        return z, ritz, steps
    # Work only on the unconverged problems; they leave the batch as they converge.
    b = min(block, s)
    keep = ~converged
    active = keep.nonzero()[:, 0]
    Ga, V, th, rho = _take(G, keep), _take(ritz, keep)[..., :b], th[keep], rho[keep]
    spec = None if spectral is None else (spectral if bool(keep.all()) else _subset(spectral, active))
    # a Cholesky factorisation costs about RESHIFT_STEPS solves; a structured one about one
    reshift_steps = RESHIFT_STEPS if spec is None else 0
    sigma, factors, found = _certified_shift(Ga, th, torch.maximum(rho, 1e-12 * th.abs()).clamp_min(tiny), spec)
    for it in range(1, max_iter + 1):
        prev = rho
        V, theta, rho = _rayleigh_ritz(Ga, _solve(factors, V))
        th = theta[..., 0]
        target = tol * th.abs().clamp_min(tiny)
        done = found & (rho <= target)
        if bool(done.any()):
            idx = active[done]
            z[idx], steps[idx] = V[done, :, 0], it
            ritz[idx, :, :b] = V[done]
            if bool(done.all()):
                return z, ritz, steps
            keep = ~done
            active, Ga, V, th, rho, prev, target, sigma, found = (
                active[keep], Ga[keep], V[keep], th[keep], rho[keep], prev[keep], target[keep], sigma[keep],
                found[keep],
            )
            factors = tuple(f[keep] for f in factors)
            spec = None if spec is None else _subset(spec, keep.nonzero()[:, 0])
        # Rayleigh-quotient acceleration: move the shift down to theta + rho where a factorisation certifies
        # it, unless the current shift converges fast enough that solves alone are cheaper than a factorisation.
        rate = (rho / prev.clamp_min(tiny)).clamp(max=1.0)
        new_sigma = th + torch.maximum(rho, 4 * eps * th.abs())
        trial = found & (rate.pow(reshift_steps) * rho > target) & (new_sigma < sigma)
        if bool(trial.any()):
            idx = trial.nonzero()[:, 0]
            part, good = (_factor(_take(Ga, trial), new_sigma[idx], None) if spec is None
                          else _factor(Ga, new_sigma[idx], _subset(spec, idx)))
            _scatter(factors, idx[good], tuple(f[good] for f in part))
            sigma[idx[good]] = new_sigma[idx[good]]
    vecs = torch.linalg.eigh(Ga).eigenvectors
    z[active] = vecs[..., -1]
    ritz[active, :, :b] = vecs[..., -b:].flip(-1)
    steps[active] = max_iter + 1
    return z, ritz, steps


def _rank2_factor(a: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``F`` [B, 2, 2] with ``F diag(1, -1) F^T = [[a, -t], [-t, 0]]`` (the Gram update's middle matrix).

    Its eigenvalues are ``mu = (a + sqrt(a^2 + 4 t^2)) / 2 > 0`` and ``-t^2 / mu``, with eigenvectors ``(mu,
    -t)`` and ``(t, mu)``; the columns of ``F`` are these scaled by the square roots of the eigenvalues'
    magnitudes (zero where ``t = 0``, i.e. where the update is zero).

    Example
    -------
    >>> F = _rank2_factor(torch.tensor([3.0], dtype=torch.float64), torch.tensor([2.0], dtype=torch.float64))
    >>> A = (F * torch.tensor([1.0, -1.0], dtype=torch.float64)) @ F.mT
    >>> torch.allclose(A, torch.tensor([[[3.0, -2.0], [-2.0, 0.0]]], dtype=torch.float64), atol=1e-15)
    True
    """
    mu = 0.5 * (a + torch.hypot(a, 2 * t))
    ok = (t != 0) & (mu > 0)
    mu = torch.where(ok, mu, torch.ones_like(mu))
    root = mu.sqrt()
    scale = torch.where(ok, 1.0 / torch.hypot(mu, t), torch.zeros_like(mu))
    plus = torch.stack([mu, -t], -1) * (root * scale)[:, None]
    minus = torch.stack([t, mu], -1) * (t.abs() / root * scale)[:, None]
    return torch.stack([plus, minus], -1)


def _nipals_power(
    G: torch.Tensor, first: torch.Tensor, *, right: bool, tol: float, max_iter: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's NIPALS iteration on the Gram matrix, batched.

    ``right=True``: ``G = C^T C`` and ``first`` is ``e_j0`` in target space; the returned vector ``u``
    gives ``w = C u / ||C u||``. ``right=False``: ``G = C C^T`` and ``first`` is the normalised first
    weight ``C e_j0``; the returned vector is ``w``. Stops where sklearn stops: at the first iteration
    ``i >= 2`` with ``||w_i - w_{i-1}||^2 < tol``, else after ``max_iter``.
    """
    B = G.shape[0]
    n_iter = torch.full((B,), max_iter, dtype=torch.int64, device=G.device)
    done = torch.zeros(B, dtype=torch.bool, device=G.device)
    u = first
    result = first.clone()
    if max_iter == 1:
        return result, torch.ones_like(n_iter)
    g = (G @ u[..., None])[..., 0]
    a_prev = (u * g).sum(-1)
    for i in range(2, max_iter + 1):
        norm_g = torch.linalg.vector_norm(g, dim=-1)
        u_new = g / norm_g[:, None]
        g_new = (G @ u_new[..., None])[..., 0]
        a_new = (u_new * g_new).sum(-1)
        if right:
            # cos(w_i, w_{i-1}) with w = C u / ||C u||: u_i^T G u_{i-1} = ||G u_{i-1}||.
            cos = norm_g / torch.sqrt(a_new * a_prev)
        else:
            cos = (u_new * u).sum(-1)
        diff2 = 2.0 - 2.0 * cos
        stop = ~done & ((diff2 < tol) | (i == max_iter))
        result = torch.where(stop[:, None], u_new, result)
        n_iter = torch.where(stop & (diff2 < tol), torch.full_like(n_iter, i), n_iter)
        done = done | stop
        if bool(done.all()):
            break
        u, g, a_prev = u_new, g_new, a_new
    return result, n_iter


class CrossCovariance(Protocol):
    """A batch of cross-covariances ``C0 = X_c^T Y_c`` [B, p, q] seen through its products (see :func:`pls_kernel`).

    :func:`pls_kernel` needs ``C0`` only through ``C0 v``, ``C0^T x`` and its Gram matrix, so a caller may
    hold it implicitly (cross-validation's kernel route keeps the centred data instead of one ``p x q``
    matrix per fold). Vectors come in and go out in float64.
    """

    shape: torch.Size
    dtype: torch.dtype
    device: torch.device

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        """``C0 v`` for ``v`` [B, q]: [B, p]."""
        ...

    def rmv(self, x: torch.Tensor) -> torch.Tensor:
        """``C0^T x`` for ``x`` [B, p]: [B, q]."""
        ...


class DenseCrossCovariance:
    """A :class:`CrossCovariance` held as the tensor ``C0`` [B, p, q] itself.

    Example
    -------
    >>> C = DenseCrossCovariance(torch.ones(1, 2, 3, dtype=torch.float64))
    >>> C.mv(torch.ones(1, 3, dtype=torch.float64)).tolist(), tuple(gram_matrix(C.C0, right=True).shape)
    ([[3.0, 3.0]], (1, 3, 3))
    """

    def __init__(self, C0: torch.Tensor) -> None:
        self.C0 = C0
        self.shape, self.dtype, self.device = C0.shape, C0.dtype, C0.device

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        return (self.C0 @ v.to(self.C0.dtype)[..., None])[..., 0].to(torch.float64)

    def rmv(self, x: torch.Tensor) -> torch.Tensor:
        return (self.C0.mT @ x.to(self.C0.dtype)[..., None])[..., 0].to(torch.float64)


def gram_matrix(C0: torch.Tensor, right: bool) -> torch.Tensor:
    """The Gram matrix the exact algorithm works on: ``C0^T C0`` (``right``, when ``q <= p``) or ``C0 C0^T``,
    formed in ``C0``'s dtype and returned in float64 (the cross-covariance route: ``p q min(p, q)``
    multiply-adds per problem)."""
    return (C0.mT @ C0 if right else C0 @ C0.mT).to(torch.float64)


def kernel_gram(A: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """``A^T K A`` in ``A``'s dtype, returned in float64: the Gram matrix by the stimulus-kernel route.

    With centred data ``X_c`` [n, p], ``Y_c`` [n, q] and ``C0 = X_c^T Y_c``: ``C0 C0^T = X_c^T (Y_c Y_c^T) X_c``
    and ``C0^T C0 = Y_c^T (X_c X_c^T) Y_c``; the result is symmetrised. Forming the ``n x n`` kernel of the
    wide side and then the two products costs ``n^2 max(p, q) + n^2 m + n m^2`` multiply-adds (``m = min(p,
    q)``) instead of ``p q m``: far fewer when the wide side is much larger than the number of stimuli
    (47,503 sites on 1000 stimuli and 10 folds: 65 instead of 475 G multiply-adds per bin). ``K`` need not be
    centred when ``A`` is: the centring of one side is enough (``H A = A`` for the centring projector ``H``).

    Example
    -------
    >>> X = torch.randn(2, 20, 5, dtype=torch.float64); Y = torch.randn(2, 20, 300, dtype=torch.float64)
    >>> Xc, Yc = X - X.mean(1, keepdim=True), Y - Y.mean(1, keepdim=True)
    >>> G = kernel_gram(Xc, Y @ Y.mT)  # Y uncentred: Xc's centring suffices
    >>> bool(torch.allclose(G, gram_matrix(Xc.mT @ Yc, right=False), rtol=1e-12, atol=1e-9))
    True
    """
    G = (A.mT @ (K @ A)).to(torch.float64)
    # symmetric to the last bit (the two products round differently on either side of the diagonal; the
    # eigensolver's float64 residual test would never pass on a matrix that is symmetric to float32 only)
    return 0.5 * (G + G.mT)


def gram_route(n: int, p: int, q: int, n_problems: int = 1, n_kernels: int = 1, n_train: int | None = None
               ) -> Literal["cross", "kernel"]:
    """Which route forms the PLS Gram matrices more cheaply, by multiply-add count.

    ``"cross"``: from each problem's cross-covariance (``p q min(p, q)`` per problem); ``"kernel"``: from
    ``n_kernels`` stimulus kernels of the wide side (``n^2 max(p, q)`` each; in cross-validation one kernel
    serves all folds of a bin) and ``n_train^2 m + n_train m^2`` per problem (:func:`kernel_gram`; ``m =
    min(p, q)``). ``n`` is the number of stimuli, ``n_train`` (default ``n``) the rows of each problem.

    Example
    -------
    >>> gram_route(1000, 1000, 47503, n_problems=10), gram_route(22248, 1000, 2048, n_problems=10)
    ('kernel', 'cross')
    """
    m, wide = min(p, q), max(p, q)
    rows = n if n_train is None else n_train
    cross = n_problems * p * q * m
    kernel = n_kernels * n * n * wide + n_problems * (rows * rows * m + rows * m * m)
    return "kernel" if kernel < cross else "cross"


def pls_kernel(
    C0: torch.Tensor | CrossCovariance,
    data_step: DataStep,
    y_sq_norms: torch.Tensor,
    n_components: int,
    *,
    algorithm: Algorithm = "exact",
    tol: float = 1e-6,
    max_iter: int = 500,
    n_samples: int | torch.Tensor = 1,
    y_weights: bool = True,
    gram: torch.Tensor | None = None,
) -> PLSComponents:
    """Fit PLS components for a batch of problems given their cross-covariances and a data callback.

    Parameters
    ----------
    C0 : Tensor (B, p, q) or CrossCovariance
        Centred cross-covariance ``X_c^T Y_c`` of each problem, as a tensor or through its products.
    data_step : callable
        ``r [B, p] -> (tt [B], x_loadings [B, p], y_loadings [B, q])`` where ``t = X_c r``,
        ``tt = t^T t``, ``x_loadings = X_c^T t / tt`` and ``y_loadings = Y_c^T t / tt``. Results in float64.
    y_sq_norms : Tensor (B, q)
        ``||Y_c[:, j]||^2`` per target (NIPALS skips targets whose deflated residual is constant).
    n_components : int
    algorithm : {"exact", "nipals"}
    tol, max_iter : NIPALS settings (sklearn's defaults).
    n_samples : int or Tensor (B,)
        Training samples per problem (for sklearn's constant-column threshold).
    y_weights : bool
        Compute sklearn's ``y_weights_`` (one more pass over ``C0`` per component; predictions do not
        need them, so cross-validation skips them and leaves zeros).
    gram : Tensor (B, m, m), optional
        The float64 Gram matrix ``C0^T C0`` (when ``q <= p``) or ``C0 C0^T``, formed by the caller (e.g. by
        :func:`kernel_gram`); required when ``C0`` is not a tensor, else :func:`gram_matrix` of ``C0``.

    Returns
    -------
    PLSComponents (float64)
    """
    if algorithm not in ("exact", "nipals"):
        raise NeurofitError(f"unknown PLS algorithm {algorithm!r}: use 'exact' or 'nipals'")
    op = DenseCrossCovariance(C0) if isinstance(C0, torch.Tensor) else C0
    if gram is None and not isinstance(C0, torch.Tensor):
        raise ValueError("pls_kernel needs gram= with a cross-covariance given through its products")
    B, p, q = op.shape
    f64 = torch.float64
    dev = op.device
    K = n_components
    right = q <= p
    m = q if right else p
    eps = torch.finfo(f64).eps

    W = torch.zeros(B, p, K, dtype=f64, device=dev)
    R = torch.zeros_like(W)
    P = torch.zeros_like(W)
    Cl = torch.zeros(B, q, K, dtype=f64, device=dev)
    Yw = torch.zeros_like(Cl)
    Pt = torch.zeros_like(W)  # tt * x_loadings: C_k = C0 - Pt Cl^T
    n_iter = torch.zeros(B, K, dtype=torch.int64, device=dev)

    def c_mv(v: torch.Tensor, k: int) -> torch.Tensor:  # C_k v, v [B, q]
        out = op.mv(v)
        return out - (Pt[..., :k] @ (Cl[..., :k].mT @ v[..., None]))[..., 0]

    def ct_mv(x: torch.Tensor, k: int) -> torch.Tensor:  # C_k^T x, x [B, p]
        out = op.rmv(x)
        return out - (Cl[..., :k] @ (Pt[..., :k].mT @ x[..., None]))[..., 0]

    G = gram_matrix(C0, right) if gram is None else gram
    s = min(SUBSPACE, m)
    start = H = Q0 = lam0 = None
    # the later Gram matrices' low-rank part in the first one's eigenbasis (exact route above EIGH_BELOW)
    spectral = algorithm == "exact" and m > EIGH_BELOW and B >= SPECTRAL_BATCH
    Wr = torch.zeros(B, m, 2 * K, dtype=f64, device=dev) if spectral else None
    J = torch.tensor([1.0, -1.0], dtype=f64, device=dev).repeat(K)
    # Residual target: float64 precision for float64 data; for float32 data 1e-9, a hundred times below
    # the data's own precision (the Gram matrix itself is always float64).
    eig_tol = max(1000 * eps, 0.01 * torch.finfo(op.dtype).eps)
    resid_sq = y_sq_norms.to(f64).clone()
    n_samples_t = torch.as_tensor(n_samples, dtype=f64, device=dev)
    const_floor = n_samples_t * (10 * eps) ** 2
    active = torch.ones(B, dtype=torch.bool, device=dev)
    unconverged = 0

    # The whole iteration runs on one thread on CPU (see neurofit.regression.parallel): callers get their
    # parallelism by fitting independent chunks of the batch on several workers.
    with torch_threads(1) if dev.type == "cpu" else contextlib.nullcontext():
        for k in range(K):
            if algorithm == "exact" and (m <= EIGH_BELOW or (k == 0 and not spectral)):
                # a full eigendecomposition: per component for small orders, else the first weights and a warm start
                vecs = torch.linalg.eigh(G).eigenvectors
                z, ritz, its = vecs[..., -1], vecs[..., -s:].flip(-1), torch.zeros(B, dtype=torch.int64, device=dev)
                w = c_mv(z, k) if right else z
            elif algorithm == "exact" and k == 0:  # spectral
                # one full eigendecomposition per fit: the first weights, and the basis in which the later
                # Gram matrices are held (G_k = Q0 H_k Q0^T, H_k = diag(lam0) + W J W^T; see top_eigenvector)
                lam0, Q0 = torch.linalg.eigh(G)
                G = None
                H = torch.diag_embed(lam0)
                z = Q0[..., -1]
                ritz = torch.eye(m, dtype=f64, device=dev)[:, m - s :].flip(-1).expand(B, m, s)
                its = torch.zeros(B, dtype=torch.int64, device=dev)
                w = c_mv(z, k) if right else z
            elif algorithm == "exact" and not spectral:
                z, ritz, its = top_eigenvector(G, start, tol=eig_tol, block=BLOCK)
                w = c_mv(z, k) if right else z
            elif algorithm == "exact":
                y, ritz, its = top_eigenvector(H, start, tol=eig_tol, block=BLOCK,
                                               spectral=(lam0, Wr[..., : 2 * k], J[: 2 * k]))
                z = (Q0 @ y[..., None])[..., 0]
                w = c_mv(z, k) if right else z
            else:
                nonconst = (resid_sq > const_floor[..., None] if const_floor.ndim else resid_sq > const_floor) & (
                    resid_sq > 1e-12 * y_sq_norms.to(f64)
                )
                still = active & nonconst.any(-1)
                if bool((active & ~still).any()):
                    # sklearn stops adding components here (its "y residual is constant" warning)
                    warnings.warn(
                        f"y residual is constant at component {k} for {int((active & ~still).sum())} problem(s): "
                        "their remaining components are zero, as in sklearn",
                        PLSConvergenceWarning,
                        stacklevel=2,
                    )
                active = still
                j0 = nonconst.to(torch.int8).argmax(-1)
                if right:
                    first = torch.nn.functional.one_hot(j0, q).to(f64)
                else:
                    first = c_mv(torch.nn.functional.one_hot(j0, q).to(f64), k)
                    first = first / torch.linalg.vector_norm(first, dim=-1, keepdim=True).clamp_min(1e-300)
                z, its = _nipals_power(G, first, right=right, tol=tol, max_iter=1 if q == 1 else max_iter)
                unconverged += int(((its >= max_iter) & active).sum()) if q > 1 else 0
                w = c_mv(z, k) if right else z
            w = w / torch.linalg.vector_norm(w, dim=-1, keepdim=True).clamp_min(1e-300)
            # sklearn's _svd_flip_1d: the largest |weight| is positive.
            idx = w.abs().argmax(-1, keepdim=True)
            w = w * torch.sign(torch.gather(w, 1, idx))
            w = torch.where(active[:, None], w, torch.zeros_like(w))
            r = w - (R[..., :k] @ (P[..., :k].mT @ w[..., None]))[..., 0]
            tt, p_load, c_load = data_step(r)
            ok = active & (tt > 0)
            safe_tt = torch.where(ok, tt, torch.ones_like(tt))
            p_load = torch.where(ok[:, None], p_load, torch.zeros_like(p_load))
            c_load = torch.where(ok[:, None], c_load, torch.zeros_like(c_load))
            tt = torch.where(ok, safe_tt, torch.zeros_like(tt))
            if y_weights:
                # sklearn's y weights C_k^T w: with C_k = C0 - Pt Cl^T this is C0^T r = Y^T t = tt c, the y-loadings
                # times tt (no pass over C0): normalised for "exact", divided by tt (so c itself) for NIPALS
                if algorithm == "exact":
                    yw = c_load / torch.linalg.vector_norm(c_load, dim=-1, keepdim=True).clamp_min(1e-300)
                else:
                    yw = c_load.clone()
            else:
                yw = torch.zeros_like(c_load)
            if k < K - 1:
                # rank-2 update of the Gram matrix for C_{k+1} = C_k - tt p c^T, as G + D A D^T, D = [d1, d2]
                if right:  # G = C^T C: d1 = c, d2 = C_k^T p
                    d1, d2 = c_load, ct_mv(p_load, k)
                    sq = (p_load * p_load).sum(-1)
                else:  # G = C C^T: d1 = p, d2 = C_k c
                    d1, d2 = p_load, c_mv(c_load, k)
                    sq = (c_load * c_load).sum(-1)
                new_dirs = torch.stack([d1, d2], dim=-1)
                if H is None:
                    A = torch.stack([torch.stack([tt**2 * sq, -tt], -1), torch.stack([-tt, torch.zeros_like(tt)], -1)],
                                    -2)
                    G = torch.baddbmm(G, new_dirs @ A, new_dirs.mT)
                    if algorithm == "exact" and m > EIGH_BELOW:
                        start = torch.cat([ritz[..., : s - 2], new_dirs], dim=-1)
                else:  # in Q0's basis: H += Wn J Wn^T with Wn = Q0^T D F, F J F^T = A (see _rank2_factor)
                    Wn = ((new_dirs @ _rank2_factor(tt**2 * sq, tt)).mT @ Q0).mT
                    H = torch.baddbmm(H, Wn * J[:2], Wn.mT)
                    Wr[..., 2 * k : 2 * k + 2] = Wn
                    start = torch.cat([ritz[..., : s - 2], Wn], dim=-1)
            W[..., k], R[..., k], P[..., k], Cl[..., k], Yw[..., k] = w, r, p_load, c_load, yw
            Pt[..., k] = tt[:, None] * p_load
            n_iter[:, k] = its
            resid_sq = resid_sq - tt[:, None] * c_load**2
    if unconverged:
        warnings.warn(
            f"NIPALS reached max_iter={max_iter} for {unconverged} component fits (as sklearn would)",
            PLSConvergenceWarning,
            stacklevel=2,
        )
    return PLSComponents(W, R, P, Cl, Yw, n_iter)


def check_n_components(n_components: object) -> int:
    """``n_components`` as an int >= 1, or a one-line error (0 components would silently predict the mean).

    Example
    -------
    >>> check_n_components(0)
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: n_components must be a whole number >= 1, got 0 (...)
    """
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise NeurofitError(f"n_components must be a whole number >= 1, got {n_components!r} (without components "
                            "PLS would predict the mean)")
    return int(n_components)


#: per dtype, the largest magnitude fitted as it is (and its inverse the smallest): beyond, the products the
#: solvers form (cross-covariances, their Gram matrices: fourth powers of the data) overflow or underflow
SAFE_MAGNITUDE = {torch.float64: 2.0**60, torch.float32: 2.0**20}


def unit_scale(t: torch.Tensor) -> float:
    """A power of two ``s`` that brings ``t``'s largest magnitude into ``[0.5, 1)``, or 1 if ``t`` is safe as it is.

    Dividing by a power of two is exact, and PLS is equivariant to scaling ``X`` and ``Y`` (ridge too, with
    its penalties scaled by ``s_x**2``), so fitting ``t / s`` and scaling the results back gives the fit of
    ``t`` without the overflow (``LinAlgError``) or underflow (silently wrong numbers) of data near the
    float's limits. Data of ordinary magnitude (:data:`SAFE_MAGNITUDE`) are left alone, bit for bit.

    Example
    -------
    >>> unit_scale(torch.tensor([3.0, -1e160], dtype=torch.float64)) == 2.0 ** 532
    True
    >>> unit_scale(torch.tensor([3.0, -100.0], dtype=torch.float64))
    1.0
    """
    peak = float(t.abs().max()) if t.numel() else 0.0
    bound = SAFE_MAGNITUDE.get(t.dtype, SAFE_MAGNITUDE[torch.float32])
    if peak == 0.0 or 1.0 / bound <= peak <= bound:
        return 1.0
    return math.ldexp(1.0, math.frexp(peak)[1])


@dataclass
class PLSFit:
    """A fitted batch of PLS models (float64 learned tensors; see :class:`PLSComponents`)."""

    components: PLSComponents
    x_mean: torch.Tensor  # (B, p)
    y_mean: torch.Tensor  # (B, q)
    coef: torch.Tensor  # (B, p, q): predictions = (X - x_mean) @ coef + y_mean


def pls_fit(
    X: torch.Tensor,
    Y: torch.Tensor,
    n_components: int = 25,
    *,
    algorithm: Algorithm = "exact",
    tol: float = 1e-6,
    max_iter: int = 500,
) -> PLSFit:
    """Fit PLS2 (centred, not scaled) on explicit data, batched.

    Parameters
    ----------
    X : Tensor (B, n, p)
    Y : Tensor (B, n, q)
    n_components : int
        At most ``min(n, p)``.
    algorithm : {"exact", "nipals"}

    Returns
    -------
    PLSFit

    Example
    -------
    >>> X = torch.randn(2, 40, 6, dtype=torch.float64)
    >>> Y = X[..., :3] + 0.1 * torch.randn(2, 40, 3, dtype=torch.float64)
    >>> fit = pls_fit(X, Y, n_components=3)
    >>> fit.coef.shape
    torch.Size([2, 6, 3])
    """
    B, n, p = X.shape
    q = Y.shape[-1]
    n_components = check_n_components(n_components)
    if n_components > min(n, p):
        raise NeurofitError(
            f"n_components={n_components} exceeds min(n_samples, n_features)={min(n, p)}: reduce n_components"
        )
    x_mean = X.mean(1, keepdim=True)
    y_mean = Y.mean(1, keepdim=True)
    Xc = X - x_mean
    Yc = Y - y_mean
    C0 = Xc.mT @ Yc
    y_sq = (Yc * Yc).sum(1)
    f64 = torch.float64

    def fit_chunk(bounds: tuple[int, int]) -> PLSComponents:
        b0, b1 = bounds
        Xb, C0b = Xc[b0:b1], C0[b0:b1]

        def step(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            rr = r.to(X.dtype)[..., None]
            t = (Xb @ rr)[..., 0]
            tt = (t * t).sum(-1).to(f64)
            safe = torch.where(tt > 0, tt, torch.ones_like(tt))[:, None]
            p_load = (Xb.mT @ t[..., None])[..., 0].to(f64) / safe
            c_load = (C0b.mT @ rr)[..., 0].to(f64) / safe  # Y_c^T t = Y_c^T X_c r
            return tt, p_load, c_load

        gram = None
        if gram_route(n, p, q, n_problems=b1 - b0, n_kernels=b1 - b0) == "kernel":  # q or p far above n
            Yb = Yc[b0:b1]
            gram = kernel_gram(Xb, Yb @ Yb.mT) if q > p else kernel_gram(Yb, Xb @ Xb.mT)
        return pls_kernel(
            C0b, step, y_sq[b0:b1], n_components, algorithm=algorithm, tol=tol, max_iter=max_iter, n_samples=n,
            gram=gram,
        )

    # Independent problems in chunks on the worker threads, each on one thread (neurofit.regression.parallel).
    parts = map_chunks(fit_chunk, split_range(B, workers(X.device)), workers(X.device))
    comps = PLSComponents(*(torch.cat([getattr(c, f.name) for c in parts]) for f in fields(PLSComponents)))
    coef = comps.x_rotations @ comps.y_loadings.mT
    return PLSFit(comps, x_mean[:, 0].to(f64), y_mean[:, 0].to(f64), coef)


class PLS(TorchRegressor):
    """PLS2 regression, centred and not scaled: a scikit-learn estimator with learned ``*_`` tensors.

    Parameters
    ----------
    n_components : int
    algorithm : {"exact", "nipals"}
        ``exact``: exact top singular vectors (equals sklearn where it converges); ``nipals``:
        sklearn's NIPALS iteration step for step (Brain-Score compatibility).
    device, dtype : optional
        Where and in what precision to fit; ``None``: :func:`neurofit.regression.backend.get_backend` at fit
        time (CUDA/float32 when available, else CPU/float64, or what :func:`~neurofit.regression.backend.
        set_backend` chose). Inputs are cast.
    tol, max_iter : NIPALS settings (sklearn's defaults).

    ``X`` may be ``(n, p)`` or batched ``(B, n, p)`` (with ``Y`` ``(B, n, q)``); attributes then carry
    the batch dimension first. ``coef_`` is ``(q, p)`` as in sklearn. ``predict`` returns float64, as numpy
    for numpy input and as a tensor for a tensor.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 8)); Y = X[:, :2] @ rng.normal(size=(2, 3))
    >>> model = PLS(n_components=8, device="cpu").fit(X, Y)  # all components: least squares
    >>> float(np.abs(model.predict(X) - Y).max()) < 1e-8
    True
    """

    def __init__(
        self,
        n_components: int = 25,
        algorithm: Algorithm = "exact",
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
        tol: float = 1e-6,
        max_iter: int = 500,
    ) -> None:
        self.n_components = n_components
        self.algorithm = algorithm
        self.device = device
        self.dtype = dtype
        self.tol = tol
        self.max_iter = max_iter

    def fit(self, X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> PLS:
        n_components = check_n_components(self.n_components)
        Xt, Yt = self._fit_inputs(X, Y)
        sx, sy = unit_scale(Xt), unit_scale(Yt)
        fit = pls_fit(Xt / sx if sx != 1.0 else Xt, Yt / sy if sy != 1.0 else Yt, n_components,
                      algorithm=self.algorithm, tol=self.tol, max_iter=self.max_iter)
        sq = self._unbatch
        c = fit.components
        # weights, rotations and x-loadings do not change with the scale of X and Y; the rest scales back
        self.x_weights_ = sq(c.x_weights)
        self.x_rotations_ = sq(c.x_rotations)
        self.x_loadings_ = sq(c.x_loadings)
        self.y_loadings_ = sq(c.y_loadings * (sy / sx))
        self.y_weights_ = sq(c.y_weights)
        self.n_iter_ = sq(c.n_iter)
        self.x_mean_ = sq(fit.x_mean * sx)
        self.y_mean_ = sq(fit.y_mean * sy)
        self.coef_ = sq(fit.coef.mT * (sy / sx))
        self.intercept_ = self.y_mean_
        return self

    def _predict(self, Xt: torch.Tensor) -> torch.Tensor:
        return (Xt - self.x_mean_.unsqueeze(-2)) @ self.coef_.mT + self.y_mean_.unsqueeze(-2)
