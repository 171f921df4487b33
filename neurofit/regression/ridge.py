"""Ridge regression with a penalty per target chosen by efficient leave-one-out, batched on torch.

One eigendecomposition per fit serves every penalty and every target: of ``X_c^T X_c`` (primal,
``p < n``) or of the kernel ``X_c X_c^T`` (``p >= n``), where ``X_c`` is the column-centred design (the
intercept is not penalised, as in ``RidgeCV(fit_intercept=True)``). With ``X_c = U S V^T`` and shrinkage
``f = s^2 / (s^2 + alpha)``, the leave-one-out residual of target ``j`` is

    ``e_j = (y_j - U (f * U^T y_j)) / (1 - h)``,  ``h_i = sum_k U_ik^2 f_k + 1/n``

(the generalised cross-validation identity that sklearn's ``_RidgeGCV`` uses). Each target takes the
penalty with the smallest mean squared LOO residual, the first in grid order on ties, exactly as
``RidgeCV(alphas, alpha_per_target=True)``. Work is batched over problems and penalties and chunked over
targets so memory stays bounded.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

from neurofit.errors import NeurofitError, ValidationError
from neurofit.regression.estimator import TorchRegressor
from neurofit.regression.parallel import torch_threads
from neurofit.regression.pls import unit_scale

#: The default penalty grid: 26 values, 2.5 per decade from 1e-3 to 1e7.
DEFAULT_ALPHAS = np.logspace(-3, 7, 26)


@dataclass
class RidgeFit:
    """A fitted batch of ridge models.

    Attributes
    ----------
    coef : Tensor (B, p, q)
    intercept : Tensor (B, q)
    alpha : Tensor (B, q)
        Chosen penalty per target.
    best_score : Tensor (B, q)
        Negative mean squared LOO error at the chosen penalty (sklearn's ``best_score_``).
    """

    coef: torch.Tensor
    intercept: torch.Tensor
    alpha: torch.Tensor
    best_score: torch.Tensor


def _spectral(Xc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Thin SVD of centred designs from one symmetric eigendecomposition: ``(U, s, V)``, rank-trimmed."""
    B, n, p = Xc.shape
    gram = Xc.mT @ Xc if p < n else Xc @ Xc.mT
    # LAPACK's eigensolver is a long chain of small parallel regions: one thread on CPU (see
    # neurofit.regression.parallel); the products around it keep the caller's threads.
    with torch_threads(1) if Xc.device.type == "cpu" else contextlib.nullcontext():
        evals, vecs = torch.linalg.eigh(gram)
    V, U = (vecs, None) if p < n else (None, vecs)
    # Directions at rounding level (incl. the constant vector removed by centring) carry no fit.
    keep = evals > evals[..., -1:].clamp_min(0) * (max(n, p) * torch.finfo(Xc.dtype).eps)
    s = torch.sqrt(torch.where(keep, evals, torch.ones_like(evals)))
    inv = torch.where(keep, 1.0 / s, torch.zeros_like(s))
    s = torch.where(keep, s, torch.zeros_like(s))
    if p < n:
        U = (Xc @ V) * inv[:, None, :]
    else:
        V = (Xc.mT @ U) * inv[:, None, :]
        U = U * keep[:, None, :]
    return U, s, V


def ridge_gcv_fit(
    X: torch.Tensor,
    Y: torch.Tensor,
    alphas: np.ndarray | torch.Tensor = DEFAULT_ALPHAS,
    *,
    max_chunk_bytes: int = 256 * 2**20,
) -> RidgeFit:
    """Fit ridge with per-target penalties chosen by efficient leave-one-out, batched.

    Parameters
    ----------
    X : Tensor (B, n, p)
    Y : Tensor (B, n, q)
    alphas : array (a,)
        Penalty grid (positive).
    max_chunk_bytes : int
        Bound on the ``(B, n, a, q_chunk)`` residual block; targets are processed in chunks to respect it.

    Returns
    -------
    RidgeFit

    Example
    -------
    >>> X = torch.randn(1, 50, 5, dtype=torch.float64); Y = X @ torch.randn(1, 5, 2, dtype=torch.float64)
    >>> fit = ridge_gcv_fit(X, Y)
    >>> fit.alpha.shape, float((X @ fit.coef + fit.intercept[:, None] - Y).abs().max()) < 1e-2
    (torch.Size([1, 2]), True)
    """
    B, n, p = X.shape
    q = Y.shape[-1]
    alphas_t = torch.as_tensor(np.asarray(alphas, dtype=np.float64), dtype=X.dtype, device=X.device).reshape(-1)
    if alphas_t.numel() == 0 or bool((alphas_t <= 0).any()):
        raise NeurofitError("ridge penalties (alphas) must be a non-empty list of positive numbers")
    a = alphas_t.numel()
    x_mean = X.mean(1)
    y_mean = Y.mean(1)
    Xc = X - x_mean[:, None]
    Yc = Y - y_mean[:, None]
    U, s, V = _spectral(Xc)
    s2 = s**2
    f = s2[..., None] / (s2[..., None] + alphas_t)  # (B, r, a)
    h = (U * U) @ f + 1.0 / n  # (B, n, a) leverages per penalty
    inv_d2 = 1.0 / (1.0 - h) ** 2
    Z = U.mT @ Yc  # (B, r, q)
    r = Z.shape[1]
    chunk = max(1, int(max_chunk_bytes // max(1, B * n * a * X.element_size())))
    best_mse = torch.empty(B, q, dtype=X.dtype, device=X.device)
    best_idx = torch.empty(B, q, dtype=torch.int64, device=X.device)
    for j0 in range(0, q, chunk):
        j1 = min(q, j0 + chunk)
        Zc = Z[..., j0:j1]  # (B, r, qc)
        # All penalties in one GEMM: (B, n, r) @ (B, r, a * qc)
        fitted = U @ (f[..., :, None] * Zc[..., None, :]).reshape(B, r, a * (j1 - j0))
        resid = Yc[..., None, j0:j1] - fitted.reshape(B, n, a, j1 - j0)
        mse = (resid**2 * inv_d2[..., None]).mean(1)  # (B, a, qc)
        # First minimum in grid order, as RidgeCV's strict ">" update.
        m, idx = mse.min(1)
        best_mse[:, j0:j1] = m
        best_idx[:, j0:j1] = idx
    alpha = alphas_t[best_idx]  # (B, q)
    g = s[..., None] / (s2[..., None] + alpha[:, None, :])  # (B, r, q)
    g = torch.where(s[..., None] > 0, g, torch.zeros_like(g))
    coef = V @ (g * Z)
    intercept = y_mean - (x_mean[:, None] @ coef)[:, 0]
    return RidgeFit(coef=coef, intercept=intercept, alpha=alpha, best_score=-best_mse)


def scaled_alphas(alphas: np.ndarray | torch.Tensor, x_scale: float, dtype: torch.dtype) -> np.ndarray:
    """The penalties that fit ``X / x_scale`` as ``alphas`` fit ``X`` (``alphas / x_scale**2``).

    A penalty that underflows the float is raised to its smallest normal number (below ``s**2 * eps`` for
    every singular value ``s`` of the design, any penalty leaves the fit unchanged to rounding), one that
    overflows is lowered to its largest (which already shrinks every coefficient to zero).

    Example
    -------
    >>> scaled_alphas(np.array([1.0, 4.0]), 2.0, torch.float64).tolist()
    [0.25, 1.0]
    """
    values = np.asarray(alphas.cpu() if isinstance(alphas, torch.Tensor) else alphas, dtype=np.float64)
    if x_scale == 1.0:
        return values
    info = torch.finfo(dtype)
    with np.errstate(over="ignore", under="ignore"):
        return np.clip(values / x_scale / x_scale, info.tiny, info.max)


def _fit_scaled(Xt: torch.Tensor, Yt: torch.Tensor, alphas: np.ndarray | torch.Tensor) -> tuple[RidgeFit, float, float]:
    """:func:`ridge_gcv_fit` on exactly rescaled data (see :func:`~neurofit.regression.pls.unit_scale`), the
    chosen penalties mapped back to the caller's grid values; returns the fit and the scales ``(sx, sy)``."""
    sx, sy = unit_scale(Xt), unit_scale(Yt)
    grid = scaled_alphas(alphas, sx, Xt.dtype)
    fit = ridge_gcv_fit(Xt / sx if sx != 1.0 else Xt, Yt / sy if sy != 1.0 else Yt, grid)
    if sx != 1.0:
        # the chosen penalty in the caller's units: the first grid value whose scaled value was chosen
        alpha = fit.alpha
        scaled = torch.as_tensor(grid, dtype=alpha.dtype, device=alpha.device)
        original = torch.as_tensor(np.asarray(alphas, dtype=np.float64), dtype=alpha.dtype, device=alpha.device)
        fit.alpha = original[(alpha[..., None] == scaled).to(torch.int8).argmax(-1)]
    return fit, sx, sy


class RidgeCV(TorchRegressor):
    """Ridge regression with a leave-one-out-chosen penalty per target: a scikit-learn estimator.

    Equals ``sklearn.linear_model.RidgeCV(alphas, alpha_per_target=True)`` (chosen ``alpha_`` and
    predictions). ``X`` may be ``(n, p)`` or batched ``(B, n, p)``. For one fixed penalty use :class:`Ridge`.

    Parameters
    ----------
    alphas : array, optional
        The penalties to choose from; ``None``: :data:`DEFAULT_ALPHAS`.
    device, dtype : optional
        Where and in what precision to fit; ``None``: :func:`neurofit.regression.backend.get_backend` at fit
        time (CUDA/float32 when available, else CPU/float64).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 5)); Y = X @ rng.normal(size=(5, 3)) + 0.1 * rng.normal(size=(80, 3))
    >>> model = RidgeCV(device="cpu").fit(X, Y)
    >>> model.alpha_.shape, model.predict(X).shape
    ((3,), (80, 3))
    """

    def __init__(
        self,
        alphas: np.ndarray | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.alphas = alphas
        self.device = device
        self.dtype = dtype

    def fit(self, X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> RidgeCV:
        Xt, Yt = self._fit_inputs(X, Y)
        fit, sx, sy = _fit_scaled(Xt, Yt, DEFAULT_ALPHAS if self.alphas is None else self.alphas)
        sq = self._unbatch
        self.coef_ = sq(fit.coef.mT * (sy / sx))
        self.intercept_ = sq(fit.intercept * sy)
        self.alpha_ = sq(fit.alpha)
        self.best_score_ = sq(fit.best_score * sy * sy)
        if not isinstance(X, torch.Tensor):
            self.alpha_ = self.alpha_.cpu().numpy()
        return self

    def _predict(self, Xt: torch.Tensor) -> torch.Tensor:
        return Xt @ self.coef_.to(Xt.dtype).mT + self.intercept_.to(Xt.dtype).unsqueeze(-2)


class Ridge(TorchRegressor):
    """Ridge regression with one fixed penalty: a scikit-learn estimator, equal to ``sklearn.linear_model.Ridge``.

    The intercept is not penalised. ``X`` may be ``(n, p)`` or batched ``(B, n, p)``.

    Parameters
    ----------
    alpha : float
        The penalty (>= 0).
    device, dtype : optional
        As :class:`RidgeCV`.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(80, 5)); Y = X @ rng.normal(size=(5, 3))
    >>> model = Ridge(alpha=1e-8, device="cpu").fit(X, Y)
    >>> float(np.abs(model.predict(X) - Y).max()) < 1e-6
    True
    """

    def __init__(
        self,
        alpha: float = 1.0,
        device: str | torch.device | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.alpha = alpha
        self.device = device
        self.dtype = dtype

    def fit(self, X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor) -> Ridge:
        alpha = float(self.alpha)
        if not np.isfinite(alpha) or alpha < 0:
            raise ValidationError(f"alpha must be a finite penalty >= 0, got {self.alpha!r}")
        Xt, Yt = self._fit_inputs(X, Y)
        fit, sx, sy = _fit_scaled(Xt, Yt, np.array([alpha]))
        self.coef_ = self._unbatch(fit.coef.mT * (sy / sx))
        self.intercept_ = self._unbatch(fit.intercept * sy)
        return self

    def _predict(self, Xt: torch.Tensor) -> torch.Tensor:
        return Xt @ self.coef_.to(Xt.dtype).mT + self.intercept_.to(Xt.dtype).unsqueeze(-2)
