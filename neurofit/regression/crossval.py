"""Cross-validated predictions for many (time bin, fold) problems at once.

Both functions take one design per time bin or one shared by all bins (``X`` is ``[n_x, N, p]`` with
``n_x`` 1 or ``n_bins``), responses per bin (``Y`` is ``[n_bins, N, q]``) and boolean fold masks over the
``N`` samples, and return each fold's predictions on its test samples.

PLS never materialises a training subset: the centred cross-covariance of every fold comes from the
full-data ``X^T Y`` minus the excluded samples' contribution, and each component's scores for all folds
come from one product of the full ``X`` with the folds' rotations, masked to the training rows. When one
side is much wider than the number of stimuli (47,503 sites on 1000 stimuli), the folds' Gram matrices
come from the stimulus kernel of that side instead (``C0 C0^T = X_f^T K_f X_f`` with ``K = Y Y^T`` once per
bin) and no ``p x q`` cross-covariance is formed at all: the kernel's products with the data stand in for it
(:func:`neurofit.regression.pls.gram_route` chooses by multiply-add count). Ridge is
separable over targets, so with a shared design all bins are one fit with ``n_bins * q`` targets.
"""

from __future__ import annotations

import contextlib

import torch

from neurofit.regression.parallel import map_chunks, split_range, torch_threads, workers
from neurofit.regression.pls import (
    Algorithm,
    PLSComponents,
    check_n_components,
    gram_route,
    kernel_gram,
    pls_kernel,
    unit_scale,
)
from neurofit.regression.ridge import DEFAULT_ALPHAS, ridge_gcv_fit, scaled_alphas

#: (bin, fold) chunks of a cross-validated PLS fit, whatever the number of workers
FIT_CHUNKS = 2


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
    gram: str = "auto",
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
        (``n_bins * n_folds * (p * q * itemsize + 8 * q**2)``; on the kernel route the ``N x N`` kernels and
        centred copies of the data instead of the cross-covariances): bins are fitted in chunks that respect it.
    gram : {"auto", "cross", "kernel"}
        How the folds' Gram matrices are formed: from their cross-covariances, or from the stimulus kernel
        of the wide side (see the module docstring); ``"auto"``: the route with fewer multiply-adds
        (:func:`~neurofit.regression.pls.gram_route`) whose kernels fit in ``max_problem_bytes``. Both are
        exact; they differ by rounding only.

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
                                     max_problem_bytes=max_problem_bytes, gram=gram)
        return [prediction * sy for prediction in scaled]
    nx, N, p = X.shape
    nb, _, q = Y.shape
    F = train.shape[0]
    size = X.element_size()
    route = _cv_gram_route(N, int(train.sum(1).max()), p, q, F, nb, nx, size, max_problem_bytes, gram)
    if route == "kernel":  # the kernel (per bin for a wide Y), centred copies of the data, the Gram matrices
        per_bin = N * N * size + N * (p + q) * size + F * 8 * min(p, q) ** 2 * 3
    else:
        per_bin = F * (p * q * size * 3 + 8 * min(p, q) ** 2 * 3)
    if nb > 1 and nb * per_bin > max_problem_bytes:
        step_bins = max(1, int(max_problem_bytes // per_bin))
        chunks = [
            pls_cross_validated(
                X if nx == 1 else X[b0 : b0 + step_bins], Y[b0 : b0 + step_bins], train, test, n_components,
                algorithm=algorithm, max_problem_bytes=max_problem_bytes, gram=route,
            )
            for b0 in range(0, nb, step_bins)
        ]
        return [torch.cat([c[f] for c in chunks]) for f in range(F)]
    n_workers = workers(X.device)
    with torch_threads(1) if X.device.type == "cpu" else contextlib.nullcontext():
        return _pls_cv(X, Y, train, test, n_components, algorithm, n_workers, route)


def _cv_gram_route(N: int, n_train: int, p: int, q: int, F: int, nb: int, nx: int, size: int, max_bytes: int,
                   gram: str) -> str:
    """The Gram route of a cross-validation (see :func:`pls_cross_validated`'s ``gram``)."""
    if gram not in ("auto", "cross", "kernel"):
        raise ValueError(f"gram must be 'auto', 'cross' or 'kernel', got {gram!r}")
    if gram != "auto":
        return gram
    n_kernels = nb if q > p else nx  # the kernel of the wide side: Y's varies by bin, X's may be shared
    if N * N * size > max_bytes:
        return "cross"
    return gram_route(N, p, q, n_problems=nb * F, n_kernels=n_kernels, n_train=n_train)


class _FoldCrossCovariance:
    """The cross-covariances ``C0 = X_f^T Y_f`` (centred on fold ``f``'s training rows) of bins ``b0:b1`` x folds
    ``f0:f1``, held as the data: ``C0 v = X_f^T (Y v)`` and ``C0^T x = Y_f^T (X x)``, each one product with the
    full data for all folds at once, masked to the training rows and centred there (which centres both
    sides). Two passes over ``N (p + q)`` values instead of one over a ``p x q`` matrix per fold."""

    def __init__(self, X: torch.Tensor, Y: torch.Tensor, w: torch.Tensor, n_f: torch.Tensor) -> None:
        self.X, self.Y, self.w, self.n_f = X, Y, w, n_f  # X (1 or nbc, N, p), Y (nbc, N, q), w (Fc, N)
        self.nbc, self.Fc = Y.shape[0], w.shape[0]
        self.shape = torch.Size((self.nbc * self.Fc, X.shape[2], Y.shape[2]))
        self.dtype, self.device = X.dtype, X.device

    def _centred(self, T: torch.Tensor) -> torch.Tensor:  # (nbc, Fc, N): masked to training rows, centred there
        T = T * self.w
        return (T - T.sum(-1, keepdim=True) / self.n_f[:, None]) * self.w

    def _through(self, A: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # A (1 or nbc, N, d) @ v (B, d)
        V = v.to(self.dtype).reshape(self.nbc, self.Fc, -1)
        if A.shape[0] == 1:
            return (A[0] @ V.reshape(self.nbc * self.Fc, -1).T).T.reshape(self.nbc, self.Fc, -1)
        return (A @ V.mT).mT

    def _back(self, A: torch.Tensor, T: torch.Tensor) -> torch.Tensor:  # T (nbc, Fc, N) -> A^T t (B, d)
        B = self.nbc * self.Fc
        out = T.reshape(B, -1) @ A[0] if A.shape[0] == 1 else T @ A
        return out.reshape(B, -1).to(torch.float64)

    def mv(self, v: torch.Tensor) -> torch.Tensor:
        return self._back(self.X, self._centred(self._through(self.Y, v)))

    def rmv(self, x: torch.Tensor) -> torch.Tensor:
        return self._back(self.Y, self._centred(self._through(self.X, x)))


def _kernel_grams(X: torch.Tensor, Y: torch.Tensor, train: torch.Tensor, n_workers: int) -> torch.Tensor:
    """Every (bin, fold) Gram matrix by the stimulus-kernel route: ``(nb, F, m, m)`` float64.

    ``X`` and ``Y`` are centred on all stimuli (for the conditioning of the kernel; each fold's own centring
    is then applied to the narrow side, which suffices: see :func:`~neurofit.regression.pls.kernel_gram`)."""
    nb, N, q = Y.shape
    p = X.shape[2]
    F = train.shape[0]
    narrow, wide = (X, Y) if q > p else (Y, X)
    K = wide @ wide.mT  # (nb or nx, N, N): one kernel per bin, or one for a shared design
    m = narrow.shape[2]
    G = torch.empty(nb, F, m, m, dtype=torch.float64, device=X.device)

    def fold(f: int) -> None:
        rows = train[f].nonzero()[:, 0]
        A = narrow[:, rows]
        G[:, f] = kernel_gram(A - A.mean(1, keepdim=True), K[:, rows][:, :, rows])

    map_chunks(fold, list(range(F)), n_workers)
    return G


def _pls_cv(
    X: torch.Tensor, Y: torch.Tensor, train: torch.Tensor, test: torch.Tensor, n_components: int,
    algorithm: Algorithm, n_workers: int, route: str = "cross",
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

    folds = list(range(F))
    if route == "kernel":
        # no cross-covariance at all: Gram matrices from the stimulus kernel, products through the centred data
        Xg, Yg = X - X.mean(1, keepdim=True), Y - Y.mean(1, keepdim=True)
        grams = _kernel_grams(Xg, Yg, train, n_workers)
    else:
        # Formed in place, one fold at a time: the peak is the (nb, F, p, q) result plus one (nb, p, q) sum,
        # which matters when q is large (47,503 sites: 1.9 GB per bin for 10 folds in float32).
        partition = bool(((~train).sum(0) == 1).all())
        C0 = torch.empty(nb, F, p, q, dtype=dt, device=X.device)
        map_chunks(lambda f: C0[:, f].copy_(cross((~train[f]).nonzero()[:, 0])), folds, n_workers)  # excluded rows
        full = C0.sum(1) if partition else cross(torch.arange(N, device=X.device))
        map_chunks(lambda f: C0[:, f].neg_().add_(full).sub_(n_f[f] * xm[:, f, :, None] * ym[:, f, None, :]),
                   folds, n_workers)
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

        if route == "kernel":
            C = _FoldCrossCovariance(Xg if nx == 1 else Xg[b0:b1], Yg[b0:b1], wc, n_f[f0:f1])
            G = grams[b0:b1, f0:f1].reshape(Bc, *grams.shape[2:])
        else:
            C, G = C0[b0:b1, f0:f1].reshape(Bc, p, q), None
        return pls_kernel(
            C, step, y_sq[b0:b1, f0:f1].reshape(Bc, q), n_components, algorithm=algorithm,
            n_samples=n_samples[b0:b1, f0:f1].reshape(Bc), y_weights=False, gram=G,
        )

    # Independent (bin, fold) problems in chunks on the worker threads, each on one thread
    # (neurofit.regression.parallel): chunks of whole bins, or of one bin's folds when there is one bin. ``n_workers``
    # is the caller's thread count, taken before this function's one-thread block (inside it torch reports 1). The
    # chunks do not depend on it (BLAS rounds a product by its shape), so a dask worker's one thread and a local
    # run's two give the same answers bit for bit.
    if nb >= 2:
        chunks = [(b0, b1, 0, F) for b0, b1 in split_range(nb, FIT_CHUNKS)]
    else:
        chunks = [(b, b + 1, f0, f1) for b in range(nb) for f0, f1 in split_range(F, FIT_CHUNKS)]
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
