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

import contextlib

import torch

from neurofit.regression.parallel import map_chunks, split_range, torch_threads, workers
from neurofit.regression.pls import Algorithm, PLSComponents, check_n_components, pls_kernel, unit_scale
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
    n_workers = workers(X.device)
    with torch_threads(1) if X.device.type == "cpu" else contextlib.nullcontext():
        return _pls_cv(X, Y, train, test, n_components, algorithm, n_workers)


def _pls_cv(
    X: torch.Tensor, Y: torch.Tensor, train: torch.Tensor, test: torch.Tensor, n_components: int,
    algorithm: Algorithm, n_workers: int,
) -> list[torch.Tensor]:
    """:func:`pls_cross_validated` on bins that fit in memory, run on one thread, its independent parts (folds,
    chunks of problems) spread over ``n_workers`` worker threads (neurofit.regression.parallel)."""
    nx, N, p = X.shape
    nb, _, q = Y.shape
    F = train.shape[0]
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

    # Formed in place, one fold at a time: the peak is the (nb, F, p, q) result plus one (nb, p, q) sum, which
    # matters when q is large (47,503 sites: 1.9 GB per bin for 10 folds in float32).
    partition = bool(((~train).sum(0) == 1).all())
    C0 = torch.empty(nb, F, p, q, dtype=dt, device=X.device)
    folds = list(range(F))
    map_chunks(lambda f: C0[:, f].copy_(cross((~train[f]).nonzero()[:, 0])), folds, n_workers)  # excluded rows
    full = C0.sum(1) if partition else cross(torch.arange(N, device=X.device))
    map_chunks(lambda f: C0[:, f].neg_().add_(full).sub_(n_f[f] * xm[:, f, :, None] * ym[:, f, None, :]), folds,
               n_workers)
    full = None  # the folds no longer need it (190 MB per bin at 47,503 sites)
    y_sq = torch.matmul(w, Y * Y) - n_f[:, None] * ym**2  # (nb, F, q)
    n_samples = n_f.to(f64).expand(nb, F)

    def fit_chunk(chunk: tuple[int, int, int, int]) -> PLSComponents:
        """The kernel on bins ``b0:b1`` x folds ``f0:f1``, its passes over the data restricted to them."""
        b0, b1, f0, f1 = chunk
        nbc, Fc = b1 - b0, f1 - f0
        Bc = nbc * Fc
        Xc = X if nx == 1 else X[b0:b1]
        xmc = xm[:, f0:f1] if nx == 1 else xm[b0:b1, f0:f1]
        Yc, wc = Y[b0:b1], w[f0:f1]

        def step(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            R3 = r.reshape(nbc, Fc, p).to(dt)
            if nx == 1:
                XR = (Xc[0] @ R3.reshape(Bc, p).T).T.reshape(nbc, Fc, N)
            else:
                XR = (Xc @ R3.mT).mT
            T = (XR - (xmc * R3).sum(-1)[..., None]) * wc  # scores, zero on excluded rows
            tt = (T * T).sum(-1).to(f64).reshape(Bc)
            if nx == 1:
                P = (T.reshape(Bc, N) @ Xc[0]).reshape(Bc, p)
            else:
                P = (T @ Xc).reshape(Bc, p)
            c = (T @ Yc).reshape(Bc, q)
            safe = torch.where(tt > 0, tt, torch.ones_like(tt))[:, None]
            return tt, P.to(f64) / safe, c.to(f64) / safe

        return pls_kernel(
            C0[b0:b1, f0:f1].reshape(Bc, p, q), step, y_sq[b0:b1, f0:f1].reshape(Bc, q), n_components,
            algorithm=algorithm, n_samples=n_samples[b0:b1, f0:f1].reshape(Bc), y_weights=False,
        )

    # Independent (bin, fold) problems in chunks on the worker threads, each on one thread
    # (neurofit.regression.parallel): whole bins where there are enough, else one bin's folds.
    n_workers = workers(X.device)
    if nb >= n_workers:
        chunks = [(b0, b1, 0, F) for b0, b1 in split_range(nb, 2 * n_workers)]
    else:
        chunks = [(b, b + 1, f0, f1) for b in range(nb) for f0, f1 in split_range(F, 2 * n_workers)]
    fitted = map_chunks(fit_chunk, chunks, n_workers)
    x_rot = torch.empty(nb, F, p, n_components, dtype=f64, device=X.device)
    y_load = torch.empty(nb, F, q, n_components, dtype=f64, device=X.device)
    for (b0, b1, f0, f1), c in zip(chunks, fitted):
        x_rot[b0:b1, f0:f1] = c.x_rotations.reshape(b1 - b0, f1 - f0, p, n_components)
        y_load[b0:b1, f0:f1] = c.y_loadings.reshape(b1 - b0, f1 - f0, q, n_components)
    K = n_components
    R = x_rot.to(dt)
    Cl = y_load.to(dt)

    def predict(f: int) -> torch.Tensor:
        rows = test[f].nonzero()[:, 0]
        Xt = X[:, rows] - xm[:, f, None, :]  # (nx, nt, p)
        if nx == 1:
            scores = (Xt[0] @ R[:, f].permute(1, 0, 2).reshape(p, nb * K)).reshape(-1, nb, K).permute(1, 0, 2)
        else:
            scores = Xt @ R[:, f]
        return scores @ Cl[:, f].mT + ym[:, f, None, :]

    return map_chunks(predict, folds, n_workers)


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

    def fold(f: int) -> torch.Tensor:
        tr = train[f].nonzero()[:, 0]
        te = test[f].nonzero()[:, 0]
        if nx == 1:
            Ytr = Y[:, tr].permute(1, 0, 2).reshape(1, tr.numel(), nb * q)
            fit = ridge_gcv_fit(X[:, tr], Ytr, alphas)
            pred = X[0, te] @ fit.coef[0] + fit.intercept[0]
            return pred.reshape(te.numel(), nb, q).permute(1, 0, 2)
        per = max(1, int(max_problem_bytes // max(1, tr.numel() * p * X.element_size())))
        preds = []
        for b0 in range(0, nb, per):
            b1 = min(nb, b0 + per)
            fit = ridge_gcv_fit(X[b0:b1, tr], Y[b0:b1, tr], alphas)
            preds.append(X[b0:b1, te] @ fit.coef + fit.intercept[:, None, :])
        return torch.cat(preds)

    # Folds are independent: on the worker threads, each on one thread (neurofit.regression.parallel).
    return map_chunks(fold, list(range(train.shape[0])), workers(X.device))
