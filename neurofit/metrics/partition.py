"""Banded ridge and variance partitioning over named feature spaces, batched on torch.

Banded ridge (Nunez-Elizalde et al. 2019) fits one linear map from several feature spaces at once with a
penalty per space. As in himalaya's random search, each candidate band weighting ``gamma`` (a point on
the simplex) scales space ``s`` by ``sqrt(gamma_s)`` and a scalar ridge penalty ``alpha`` is applied to
the scaled joint design, so space ``s`` is penalised by ``alpha / gamma_s``. For every candidate
``gamma`` one eigendecomposition of the scaled design serves every ``alpha`` and every target through the
exact leave-one-out identity (the project's ridge engine, :func:`neurofit.regression.ridge.ridge_gcv_fit`);
each target keeps the ``(gamma, alpha)`` of smallest leave-one-out error, the first on ties, as
``himalaya.ridge.solve_group_ridge_random_search`` with leave-one-out folds and an intercept does.

Variance partitioning: with cross-validated ``R^2`` (``1 - SSE / SST`` of held-out predictions) of the
joint model and of each model that drops one space, the *unique* variance of space ``s`` is
``R^2(all) - R^2(all but s)`` and the *shared* variance is ``R^2(all) - sum_s unique_s``. With two spaces
the models that drop one space are the single spaces, fitted with the same ridge engine. Any number of
spaces works: with three or more, every model that drops one space is itself a banded ridge over the
rest (its band weightings on the simplex of its own spaces), and ``shared`` is what the joint model
explains beyond the unique parts (variance shared by any two or more spaces).

himalaya is the oracle in the tests, not the engine: the engine is the project's ridge on torch (one
code path for ridge and banded ridge, its device and dtype handling), and himalaya stays out of the core
install.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from threadpoolctl import threadpool_limits

from neurofit.errors import NeurofitError
from neurofit.regression.parallel import map_chunks, torch_threads, workers
from neurofit.regression.ridge import DEFAULT_ALPHAS


def simplex_grid(n_spaces: int, resolution: int = 6) -> np.ndarray:
    """Band weightings with every space present: compositions of ``resolution`` into positive parts.

    Example
    -------
    >>> simplex_grid(2, 4).tolist()
    [[0.25, 0.75], [0.5, 0.5], [0.75, 0.25]]
    """
    if n_spaces < 1 or resolution < n_spaces:
        raise NeurofitError(f"need resolution >= n_spaces >= 1, got {resolution} and {n_spaces}")
    points = [c for c in itertools.product(range(1, resolution), repeat=n_spaces) if sum(c) == resolution]
    return np.array(sorted(points), dtype=np.float64) / resolution


@dataclass
class BandedFit:
    """Per problem and target: chosen band weights ``gamma (B, S, q)``, ``alpha (B, q)``, LOO score."""

    gamma: torch.Tensor
    alpha: torch.Tensor
    best_score: torch.Tensor


def _scaled(spaces: Sequence[torch.Tensor], gamma: np.ndarray) -> torch.Tensor:
    return torch.cat([x * float(np.sqrt(g)) for x, g in zip(spaces, gamma)], dim=-1)


def _loo_fit(U: torch.Tensor, s: torch.Tensor, V: torch.Tensor, Yc: torch.Tensor, alphas_t: torch.Tensor,
             bound: torch.Tensor | None = None, Z: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The leave-one-out choice of :func:`neurofit.regression.ridge.ridge_gcv_fit` from a thin SVD of the
    centred design, evaluating exactly only the penalties that can win.

    The leave-one-out error of penalty ``a`` and target ``j`` is ``mean_i w_ia e_iaj^2`` with weights
    ``w_ia = 1 / (1 - h_ia)^2`` and plain residuals ``e``. The residuals' sum of squares has a closed form in
    the singular basis, ``|y_j|^2 - |z_j|^2 + sum_k (alpha / (s_k^2 + alpha))^2 z_kj^2`` (``z = U^T y``), so
    ``[min_i w_ia, max_i w_ia]`` times it bounds the error at ``O(r)`` cost instead of ``O(n r)``. Only the
    (penalty, target) pairs whose lower bound does not exceed the smallest upper bound (or ``bound``, the
    best error of earlier weightings) are computed exactly, in one product per penalty; the choice is that
    of the exhaustive search (first minimum in grid order). ``Z = U^T Yc`` may be passed when the caller has
    it more cheaply. Returns the coefficients, the chosen penalty and the best score per target (``-inf``
    where no penalty can beat ``bound``).
    """
    B, n, r = U.shape
    q = Yc.shape[-1]
    s2 = s**2
    f = s2[..., None] / (s2[..., None] + alphas_t)  # (B, r, a)
    h = (U * U) @ f + 1.0 / n  # (B, n, a) leverages per penalty
    w = 1.0 / (1.0 - h) ** 2
    if Z is None:
        Z = U.mT @ Yc  # (B, r, q)
    yy = (Yc * Yc).sum(1)  # (B, q)
    z2 = Z * Z
    sse = (yy - z2.sum(1)).clamp_min(0)[:, None, :] + ((1.0 - f) ** 2).mT @ z2  # (B, a, q)
    # margins far above the rounding of these sums (float64: ~1e-15 relative)
    slack = 1e-9 * yy[:, None, :]
    lower = w.amin(1)[..., None] * (sse - slack) / n * (1 - 1e-9)
    upper = w.amax(1)[..., None] * (sse + slack) / n * (1 + 1e-9)
    ref = upper.amin(1)  # (B, q): some penalty's exact error is at most this
    if bound is not None:
        ref = torch.minimum(ref, bound)
    candidates = lower <= ref[:, None, :]
    mse = torch.full((B, alphas_t.numel(), q), float("inf"), dtype=U.dtype, device=U.device)
    for b, k in candidates.any(-1).nonzero().tolist():
        cols = candidates[b, k].nonzero()[:, 0]
        fitted = U[b] @ (f[b, :, k, None] * Z[b][:, cols])
        resid = Yc[b][:, cols] - fitted
        mse[b, k, cols] = (resid * resid * w[b, :, k, None]).mean(0)
    best_mse, best_idx = mse.min(1)  # first minimum in grid order
    alpha = alphas_t[best_idx]
    g = s[..., None] / (s2[..., None] + alpha[:, None, :])
    g = torch.where(s[..., None] > 0, g, torch.zeros_like(g))
    return V @ (g * Z), alpha, -best_mse


def _numpy_ok(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def _gram(x: torch.Tensor) -> torch.Tensor:
    """``x^T x`` per batch element. On CPU through numpy, whose ``a.T @ a`` is one symmetric rank-k update
    (BLAS ``syrk``, half the products of a general product: measured 0.42 s against torch's 0.85-0.95 s for
    5184 x 2000 in float64 on one thread)."""
    if not _numpy_ok(x):
        return x.mT @ x
    a = x.contiguous().numpy()
    return torch.from_numpy(np.stack([m.T @ m for m in a]))


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b``; on CPU through numpy's BLAS (OpenBLAS ``gemm``: 0.8 s against torch's 1.0 s for
    5184 x 2000 x 2000 in float64 on one thread)."""
    if not (_numpy_ok(a) and a.dtype == b.dtype):
        return a @ b
    return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))


def _eigh(mat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric eigendecomposition per batch element, ascending eigenvalues; ``mat`` is overwritten.

    On CPU through scipy's LAPACK (divide and conquer, ``?syevd``), on one thread: 1.3-1.6 s against
    torch's 2.2-2.8 s for 2000 x 2000 in float64 here. Elsewhere torch's, on one thread.
    """
    if not _numpy_ok(mat):
        with torch_threads(1) if mat.device.type == "cpu" else contextlib.nullcontext():
            return torch.linalg.eigh(mat)
    evals, vecs = [], []
    for m in mat.numpy():
        # a symmetric C-ordered matrix is its own Fortran-ordered transpose: no copy
        e, v = scipy.linalg.eigh(m.T, driver="evd", overwrite_a=True, check_finite=False)
        evals.append(e)
        vecs.append(v)
    return torch.from_numpy(np.stack(evals)), torch.from_numpy(np.stack(vecs))


def _svd_from_eigh(evals: torch.Tensor, vecs: torch.Tensor, n: int, p: int, dtype: torch.dtype
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(keep, s, inv)`` as :func:`neurofit.regression.ridge._spectral` trims them."""
    keep = evals > evals[..., -1:].clamp_min(0) * (max(n, p) * torch.finfo(dtype).eps)
    s = torch.sqrt(torch.where(keep, evals, torch.ones_like(evals)))
    inv = torch.where(keep, 1.0 / s, torch.zeros_like(s))
    return keep, torch.where(keep, s, torch.zeros_like(s)), inv


def banded_ridge_fit_predict(
    spaces: Sequence[torch.Tensor],
    Y: torch.Tensor,
    test_spaces: Sequence[torch.Tensor],
    gammas: np.ndarray | None = None,
    alphas: np.ndarray = DEFAULT_ALPHAS,
) -> tuple[torch.Tensor, BandedFit]:
    """Fit banded ridge on training data and predict test data, for a batch of problems.

    The centred Gram matrix of the joint design (or its kernel, when there are fewer samples than features)
    is formed once; every weighting ``gamma`` only rescales its blocks before its eigendecomposition.

    Parameters
    ----------
    spaces : sequence of Tensor (B, n, p_s)
        Training designs of the feature spaces.
    Y : Tensor (B, n, q)
    test_spaces : sequence of Tensor (B, m, p_s)
    gammas : ndarray (G, S), optional
        Candidate band weightings (rows on the simplex); :func:`simplex_grid` by default.
    alphas : ndarray (a,)
        Ridge penalties tried for every weighting.

    Returns
    -------
    prediction : Tensor (B, m, q)
    fit : BandedFit

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> a = torch.randn(1, 80, 3, generator=g, dtype=torch.float64)
    >>> b = torch.randn(1, 80, 4, generator=g, dtype=torch.float64)
    >>> y = a @ torch.ones(1, 3, 2, dtype=torch.float64)  # only space a matters
    >>> pred, fit = banded_ridge_fit_predict([a, b], y, [a, b])
    >>> float((pred - y).abs().max()) < 0.05
    True
    """
    gammas = simplex_grid(len(spaces)) if gammas is None else np.atleast_2d(np.asarray(gammas, dtype=np.float64))
    if gammas.shape[1] != len(spaces):
        raise NeurofitError(f"band weightings have {gammas.shape[1]} entries for {len(spaces)} feature spaces")
    alphas_t = torch.as_tensor(np.asarray(alphas, dtype=np.float64), dtype=Y.dtype, device=Y.device).reshape(-1)
    if alphas_t.numel() == 0 or bool((alphas_t <= 0).any()):
        raise NeurofitError("ridge penalties (alphas) must be a non-empty list of positive numbers")
    eps = torch.finfo(Y.dtype).eps
    B, n, _ = Y.shape
    widths = [x.shape[-1] for x in spaces]
    P = sum(widths)
    x_mean = torch.cat([x.mean(1) for x in spaces], dim=-1)  # (B, P)
    Xc = torch.cat(spaces, dim=-1) - x_mean[:, None]  # (B, n, P) unscaled joint design, centred
    y_mean = Y.mean(1)
    Yc = Y - y_mean[:, None]
    primal = P < n
    if primal:
        gram = _gram(Xc)  # (B, P, P); a weighting scales its blocks
        xty = Xc.mT @ Yc  # (B, P, q): every weighting's U^T Yc is a small product of it
    else:
        bounds = np.cumsum([0] + widths)
        kernels = [_gram(Xc[..., bounds[k]:bounds[k + 1]].mT) for k in range(len(spaces))]
    X_test = torch.cat(test_spaces, dim=-1)
    best = pred = gamma_idx = alpha = None
    for k, gamma in enumerate(gammas):
        scale = torch.as_tensor(np.repeat(np.sqrt(gamma), widths), dtype=Y.dtype, device=Y.device)  # (P,)
        if primal:
            mat = gram * scale[:, None] * scale[None, :]
        else:
            mat = sum(float(gk) * kk for gk, kk in zip(gamma, kernels))
        evals, vecs = _eigh(mat)
        keep, s, inv = _svd_from_eigh(evals, vecs, n, P, Y.dtype)
        Z = None
        if primal:
            V = vecs * scale[:, None]  # the scaled design's right singular vectors, mapped to unscaled features
            U = _matmul(Xc, V) * inv[:, None, :]
            Z = (V.mT @ xty) * inv[..., None]  # = U^T Yc
            V = vecs
        else:
            U = vecs * keep[:, None, :]
            V = ((Xc.mT @ U) * scale[None, :, None]) * inv[:, None, :]
        coef, a_k, score = _loo_fit(U, s, V, Yc, alphas_t, None if best is None else -best, Z)
        # coef is for the scaled design: the unscaled features' coefficients are scale * coef
        coef = coef * scale[:, None]
        p = (X_test - x_mean[:, None]) @ coef + y_mean[:, None, :]
        if best is None:
            best, pred, alpha = score, p, a_k
            gamma_idx = torch.zeros_like(a_k, dtype=torch.int64)
            continue
        # a strictly better score replaces (himalaya's rule: the first weighting wins ties)
        better = score > best + eps
        best = torch.where(better, score, best)
        alpha = torch.where(better, a_k, alpha)
        gamma_idx = torch.where(better, torch.full_like(gamma_idx, k), gamma_idx)
        pred = torch.where(better[:, None, :], p, pred)
    gamma_t = torch.as_tensor(gammas, dtype=Y.dtype, device=Y.device)[gamma_idx].permute(0, 2, 1)
    return pred, BandedFit(gamma=gamma_t, alpha=alpha, best_score=best)


def _expand(spaces: Sequence[torch.Tensor], n_bins: int) -> list[torch.Tensor]:
    out = []
    for x in spaces:
        if x.ndim != 3 or x.shape[0] not in (1, n_bins):
            raise NeurofitError(f"each feature space must be [1 or n_bins, N, p]; got {tuple(x.shape)}")
        out.append(x.expand(n_bins, *x.shape[1:]))
    return out


def banded_ridge_cross_validated(
    spaces: Sequence[torch.Tensor],
    Y: torch.Tensor,
    train: torch.Tensor,
    test: torch.Tensor,
    gammas: np.ndarray | None = None,
    alphas: np.ndarray = DEFAULT_ALPHAS,
    *,
    max_problem_bytes: int = 512 * 2**20,
) -> list[torch.Tensor]:
    """Banded-ridge predictions of every fold's test samples (per-target weights chosen on training data).

    Same conventions as :func:`neurofit.regression.crossval.ridge_cross_validated`: each space is
    ``[1 or n_bins, N, p_s]``, ``Y`` is ``[n_bins, N, q]``; returns one ``(n_bins, n_test, q)`` per fold.
    With one space and one weighting it is plain ridge. As there, (fold, bins) problems whose joint training
    design stays under ``max_problem_bytes`` go to the caller's torch threads, each computing on one thread.

    Example
    -------
    >>> X = torch.randn(1, 60, 8, dtype=torch.float64); Y = torch.randn(3, 60, 4, dtype=torch.float64)
    >>> test = torch.arange(60)[None] % 3 == torch.arange(3)[:, None]
    >>> [p.shape for p in banded_ridge_cross_validated([X, X[..., :3]], Y, ~test, test)][0]
    torch.Size([3, 20, 4])
    """
    nb, N, q = Y.shape
    shared = all(x.shape[0] == 1 for x in spaces)
    spaces = [x.to(Y.dtype) for x in spaces] if shared else _expand([x.to(Y.dtype) for x in spaces], nb)
    n_folds = train.shape[0]
    P = sum(x.shape[-1] for x in spaces)
    problems: list[tuple[int, int, int]] = []
    for f in range(n_folds):
        if shared:
            problems.append((f, 0, nb))
            continue
        per = max(1, int(max_problem_bytes // max(1, int(train[f].sum()) * P * Y.element_size())))
        problems += [(f, b0, min(nb, b0 + per)) for b0 in range(0, nb, per)]

    def solve(problem: tuple[int, int, int]) -> torch.Tensor:
        f, b0, b1 = problem
        tr = train[f].nonzero()[:, 0]
        te = test[f].nonzero()[:, 0]
        if shared:
            # one design for all bins: the bins are just more targets of one fit
            Ytr = Y[:, tr].permute(1, 0, 2).reshape(1, tr.numel(), nb * q)
            pred, _ = banded_ridge_fit_predict([x[:, tr] for x in spaces], Ytr, [x[:, te] for x in spaces], gammas,
                                               alphas)
            return pred[0].reshape(te.numel(), nb, q).permute(1, 0, 2)
        pred, _ = banded_ridge_fit_predict([x[b0:b1, tr] for x in spaces], Y[b0:b1, tr],
                                           [x[b0:b1, te] for x in spaces], gammas, alphas)
        return pred

    # independent problems on the worker threads, each on one thread (neurofit.regression.parallel), numpy's
    # and scipy's BLAS included (process-wide while the workers run)
    with threadpool_limits(limits=1, user_api="blas") if Y.device.type == "cpu" else contextlib.nullcontext():
        preds = map_chunks(solve, problems, workers(Y.device))
    out: list[list[torch.Tensor]] = [[] for _ in range(n_folds)]
    for (f, _, _), pred in zip(problems, preds):
        out[f].append(pred)
    return [torch.cat(parts) for parts in out]


def r2_score(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Coefficient of determination ``1 - SSE / SST`` along axis 0 (sklearn's ``r2_score`` per output).

    Example
    -------
    >>> r2_score(np.array([[1.0], [2.0], [3.0]]), np.array([[1.0], [2.0], [4.0]])).round(4).tolist()
    [0.7857]
    """
    sse = ((target - prediction) ** 2).sum(0)
    sst = ((target - target.mean(0)) ** 2).sum(0)
    with np.errstate(all="ignore"):
        return np.where(sst > 0, 1.0 - sse / sst, np.nan)


@dataclass(frozen=True)
class Partition:
    """Cross-validated variance partition per bin and target (each ``(n_bins, q)``).

    Attributes
    ----------
    r2 : dict
        ``R^2`` of every fitted combination, keyed by the tuple of space names (the full set included).
    unique : dict
        Unique variance of each space: ``R^2(all) - R^2(all but it)``.
    shared : ndarray
        ``R^2(all) - sum of unique``.
    joint_prediction : ndarray (n_bins, N, q), optional
        The joint model's held-out predictions (every stimulus from the fold that tests it), kept when asked.
    """

    r2: dict[tuple[str, ...], np.ndarray]
    unique: dict[str, np.ndarray]
    shared: np.ndarray
    joint_prediction: np.ndarray | None = None


def _pooled(folds: list[torch.Tensor], test: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = np.full(shape, np.nan)
    for f, p in enumerate(folds):
        out[:, test[f]] = p.cpu().numpy()
    return out


def variance_partition(
    spaces: Mapping[str, np.ndarray | torch.Tensor],
    Y: np.ndarray | torch.Tensor,
    train: np.ndarray,
    test: np.ndarray,
    *,
    gammas: np.ndarray | None = None,
    alphas: np.ndarray = DEFAULT_ALPHAS,
    resolution: int = 6,
    alone: bool = False,
    keep_prediction: bool = False,
) -> Partition:
    """Unique and shared cross-validated variance of named feature spaces, per bin and target.

    Parameters
    ----------
    spaces : mapping of name -> array (1 or n_bins, N, p_s)
        At least two feature spaces.
    Y : array (n_bins, N, q)
        Repetition-averaged responses per bin.
    train, test : ndarray of bool (n_folds, N)
        Folds over stimuli; every stimulus in exactly one test set.
    gammas, alphas
        The banded-ridge search of the joint model (:func:`banded_ridge_fit_predict`; default
        ``simplex_grid(len(spaces), resolution)``); a single space uses the same ``alphas`` in plain ridge.
    resolution : int
        Band weightings of every other model of two or more spaces (three or more spaces: the models that drop
        one): ``simplex_grid(k, resolution)``.
    alone : bool
        Also fit each space alone (with two spaces they are fitted anyway: they are the models that drop one).
    keep_prediction : bool
        Keep the joint model's held-out predictions (``joint_prediction``).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> a, b = rng.normal(size=(1, 200, 3)), rng.normal(size=(1, 200, 3))
    >>> y = (a[0] @ np.ones(3) + b[0, :, :1].sum(1))[None, :, None] + 0.1 * rng.normal(size=(1, 200, 1))
    >>> test = np.arange(200)[None] % 5 == np.arange(5)[:, None]
    >>> part = variance_partition({"a": a, "b": b}, y, ~test, test)
    >>> bool(part.unique["a"][0, 0] > part.unique["b"][0, 0] > 0.1)
    True
    >>> c = rng.normal(size=(1, 200, 2))  # a third space that explains nothing
    >>> three = variance_partition({"a": a, "b": b, "c": c}, y, ~test, test, resolution=3, alone=True)
    >>> sorted(three.r2, key=len)[:3], bool(abs(three.unique["c"][0, 0]) < 0.01)
    ([('a',), ('b',), ('c',)], True)
    """
    names = list(spaces)
    if len(names) < 2:
        raise NeurofitError(f"variance partitioning needs at least two feature spaces, got {names}")
    if len(set(names)) != len(names):
        raise NeurofitError(f"feature space names must differ, got {names}")
    if gammas is None:
        gammas = simplex_grid(len(names), resolution)
    Yt = torch.as_tensor(np.asarray(Y) if not isinstance(Y, torch.Tensor) else Y, dtype=torch.float64)
    tensors = {k: torch.as_tensor(np.asarray(v) if not isinstance(v, torch.Tensor) else v, dtype=torch.float64)
               for k, v in spaces.items()}
    tr, te = torch.as_tensor(train), torch.as_tensor(test)
    target = Yt.cpu().numpy()
    r2: dict[tuple[str, ...], np.ndarray] = {}
    subsets = [tuple(names)] + [tuple(n for n in names if n != drop) for drop in names]
    if alone and len(names) > 2:
        subsets += [(n,) for n in names]
    joint = None
    for subset in subsets:
        xs = [tensors[n] for n in subset]
        if len(subset) == len(names):
            g = gammas
        else:
            g = np.ones((1, 1)) if len(subset) == 1 else simplex_grid(len(subset), resolution)
        folds = banded_ridge_cross_validated(xs, Yt, tr, te, g, alphas)
        pooled = _pooled(folds, test, target.shape)
        r2[subset] = r2_score(pooled.transpose(1, 0, 2), target.transpose(1, 0, 2))
        if keep_prediction and len(subset) == len(names):
            joint = pooled
    full = r2[tuple(names)]
    unique = {n: full - r2[tuple(m for m in names if m != n)] for n in names}
    shared = full - sum(unique.values())
    return Partition(r2=r2, unique=unique, shared=shared, joint_prediction=joint)
