"""Cross-validated predictions for many (time bin, fold) problems at once.

Both functions take one design per time bin or one shared by all bins (``X`` is ``[n_x, N, p]`` with
``n_x`` 1 or ``n_bins``), responses per bin (``Y`` is ``[n_bins, N, q]``) and boolean fold masks over the
``N`` samples, and return each fold's predictions on its test samples.

PLS never materialises a training subset: the centred cross-covariance of every fold comes from the
full-data ``X^T Y`` minus the excluded samples' contribution, and each component's scores for all folds
come from one product of the full ``X`` with the folds' rotations, masked to the training rows. Ridge is
separable over targets, so with a shared design all bins are one fit with ``n_bins * q`` targets.
"""

from __future__ import annotations

import torch

from neurofit.regression.pls import Algorithm, check_n_components, pls_kernel, unit_scale
from neurofit.regression.ridge import DEFAULT_ALPHAS, ridge_gcv_fit, scaled_alphas


def _check_shapes(X: torch.Tensor, Y: torch.Tensor, train: torch.Tensor, test: torch.Tensor) -> None:
    if X.ndim != 3 or Y.ndim != 3 or X.shape[1] != Y.shape[1] or X.shape[0] not in (1, Y.shape[0]):
        raise ValueError(f"X must be [1 or n_bins, N, p] and Y [n_bins, N, q]; got {tuple(X.shape)}, {tuple(Y.shape)}")
    if train.shape != test.shape or train.shape[1] != X.shape[1]:
        raise ValueError(f"fold masks {tuple(train.shape)} do not match {X.shape[1]} samples")


def pls_cross_validated(
    X: torch.Tensor,
    Y: torch.Tensor,
    train: torch.Tensor,
    test: torch.Tensor,
    n_components: int = 25,
    *,
    algorithm: Algorithm = "exact",
    max_problem_bytes: int = 2 * 2**30,
) -> list[torch.Tensor]:
    """PLS predictions of every fold's test samples, all bins and folds fitted together.

    Parameters
    ----------
    X : Tensor (n_x, N, p)
        ``n_x`` is 1 (one design for all bins) or ``n_bins``.
    Y : Tensor (n_bins, N, q)
    train, test : Tensor of bool (n_folds, N)
        Every sample must be in the training set or the test set of each fold (true of K-fold and of
        shuffle splits).
    n_components : int
    algorithm : {"exact", "nipals"}
    max_problem_bytes : int
        Bound on the per-problem cross-covariances and Gram matrices held at once
        (``n_bins * n_folds * (p * q * itemsize + 8 * q**2)``): bins are fitted in chunks that respect it.

    Returns
    -------
    list of Tensor (n_bins, n_test_f, q), one per fold, in ``X``'s dtype.

    Example
    -------
    >>> X = torch.randn(1, 60, 8, dtype=torch.float64); Y = torch.randn(3, 60, 4, dtype=torch.float64)
    >>> test = torch.arange(60)[None] % 3 == torch.arange(3)[:, None]
    >>> [p.shape for p in pls_cross_validated(X, Y, ~test, test, n_components=2)]
    [torch.Size([3, 20, 4]), torch.Size([3, 20, 4]), torch.Size([3, 20, 4])]
    """
    _check_shapes(X, Y, train, test)
    if bool((train & test).any()) or not bool((train | test).all()):
        raise ValueError("each sample must be in exactly one of train/test in every fold")
    n_components = check_n_components(n_components)
    sx, sy = unit_scale(X), unit_scale(Y)
    if sx != 1.0 or sy != 1.0:  # data near the float's limits: fit exactly rescaled copies (see unit_scale)
        scaled = pls_cross_validated(X / sx, Y / sy, train, test, n_components, algorithm=algorithm,
                                     max_problem_bytes=max_problem_bytes)
        return [prediction * sy for prediction in scaled]
    nx, N, p = X.shape
    nb, _, q = Y.shape
    F = train.shape[0]
    per_bin = F * (p * q * X.element_size() * 3 + 8 * min(p, q) ** 2 * 3)
    if nb > 1 and nb * per_bin > max_problem_bytes:
        step_bins = max(1, int(max_problem_bytes // per_bin))
        chunks = [
            pls_cross_validated(
                X if nx == 1 else X[b0 : b0 + step_bins], Y[b0 : b0 + step_bins], train, test, n_components,
                algorithm=algorithm, max_problem_bytes=max_problem_bytes,
            )
            for b0 in range(0, nb, step_bins)
        ]
        return [torch.cat([c[f] for c in chunks]) for f in range(F)]
    B = nb * F
    dt = X.dtype
    f64 = torch.float64
    Y = Y.to(dt)
    w = train.to(dt)
    n_f = w.sum(1)  # (F,)
    xm = torch.matmul(w, X) / n_f[:, None]  # (nx, F, p)
    ym = torch.matmul(w, Y) / n_f[:, None]  # (nb, F, q)

    def cross(rows: torch.Tensor) -> torch.Tensor:  # sum over rows of x y^T, per bin: (nb, p, q)
        Xe, Ye = X[:, rows], Y[:, rows]
        if nx == 1:
            out = Xe[0].T @ Ye.permute(1, 0, 2).reshape(rows.numel(), nb * q)
            return out.reshape(p, nb, q).permute(1, 0, 2)
        return Xe.mT @ Ye

    excluded = [(~train[f]).nonzero()[:, 0] for f in range(F)]
    parts = [cross(rows) for rows in excluded]
    partition = bool(((~train).sum(0) == 1).all())
    full = torch.stack(parts).sum(0) if partition else cross(torch.arange(N, device=X.device))
    C0 = torch.stack([full - parts[f] for f in range(F)], dim=1)  # (nb, F, p, q)
    C0 = C0 - n_f[:, None, None] * xm[..., :, None] * ym[..., None, :]
    C0 = C0.reshape(B, p, q)
    y_sq = (torch.matmul(w, Y * Y) - n_f[:, None] * ym**2).reshape(B, q)

    def step(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        R3 = r.reshape(nb, F, p).to(dt)
        if nx == 1:
            XR = (X[0] @ R3.reshape(B, p).T).T.reshape(nb, F, N)
        else:
            XR = (X @ R3.mT).mT
        T = (XR - (xm * R3).sum(-1)[..., None]) * w  # scores, zero on excluded rows
        tt = (T * T).sum(-1).to(f64).reshape(B)
        if nx == 1:
            P = (T.reshape(B, N) @ X[0]).reshape(B, p)
        else:
            P = (T @ X).reshape(B, p)
        c = (T @ Y).reshape(B, q)
        safe = torch.where(tt > 0, tt, torch.ones_like(tt))[:, None]
        return tt, P.to(f64) / safe, c.to(f64) / safe

    comps = pls_kernel(
        C0, step, y_sq, n_components, algorithm=algorithm, n_samples=n_f.repeat(nb).to(f64), y_weights=False
    )
    K = n_components
    R = comps.x_rotations.reshape(nb, F, p, K).to(dt)
    Cl = comps.y_loadings.reshape(nb, F, q, K).to(dt)
    out = []
    for f in range(F):
        rows = test[f].nonzero()[:, 0]
        Xt = X[:, rows] - xm[:, f, None, :]  # (nx, nt, p)
        if nx == 1:
            scores = (Xt[0] @ R[:, f].permute(1, 0, 2).reshape(p, nb * K)).reshape(-1, nb, K).permute(1, 0, 2)
        else:
            scores = Xt @ R[:, f]
        out.append(scores @ Cl[:, f].mT + ym[:, f, None, :])
    return out


def ridge_cross_validated(
    X: torch.Tensor,
    Y: torch.Tensor,
    train: torch.Tensor,
    test: torch.Tensor,
    alphas=DEFAULT_ALPHAS,
    *,
    max_problem_bytes: int = 512 * 2**20,
) -> list[torch.Tensor]:
    """Ridge (per-target LOO penalty, chosen on each fold's training samples) predictions of test samples.

    Same shapes as :func:`pls_cross_validated`. Bins with their own design are fitted in batches whose
    training designs stay under ``max_problem_bytes``.

    Example
    -------
    >>> X = torch.randn(1, 60, 8, dtype=torch.float64); Y = torch.randn(3, 60, 4, dtype=torch.float64)
    >>> test = torch.arange(60)[None] % 3 == torch.arange(3)[:, None]
    >>> [p.shape for p in ridge_cross_validated(X, Y, ~test, test)][0]
    torch.Size([3, 20, 4])
    """
    _check_shapes(X, Y, train, test)
    sx, sy = unit_scale(X), unit_scale(Y)
    if sx != 1.0 or sy != 1.0:  # data near the float's limits: fit exactly rescaled copies (see unit_scale)
        scaled = ridge_cross_validated(X / sx, Y / sy, train, test, scaled_alphas(alphas, sx, X.dtype),
                                       max_problem_bytes=max_problem_bytes)
        return [prediction * sy for prediction in scaled]
    nx, N, p = X.shape
    nb, _, q = Y.shape
    Y = Y.to(X.dtype)
    out = []
    for f in range(train.shape[0]):
        tr = train[f].nonzero()[:, 0]
        te = test[f].nonzero()[:, 0]
        if nx == 1:
            Ytr = Y[:, tr].permute(1, 0, 2).reshape(1, tr.numel(), nb * q)
            fit = ridge_gcv_fit(X[:, tr], Ytr, alphas)
            pred = X[0, te] @ fit.coef[0] + fit.intercept[0]
            out.append(pred.reshape(te.numel(), nb, q).permute(1, 0, 2))
        else:
            per = max(1, int(max_problem_bytes // max(1, tr.numel() * p * X.element_size())))
            preds = []
            for b0 in range(0, nb, per):
                b1 = min(nb, b0 + per)
                fit = ridge_gcv_fit(X[b0:b1, tr], Y[b0:b1, tr], alphas)
                preds.append(X[b0:b1, te] @ fit.coef + fit.intercept[:, None, :])
            out.append(torch.cat(preds))
    return out
