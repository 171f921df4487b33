"""The scikit-learn contract of neurofit's regressors (:class:`~neurofit.regression.pls.PLS`,
:class:`~neurofit.regression.ridge.RidgeCV`, :class:`~neurofit.regression.ridge.Ridge`), kept in one place.

:class:`TorchRegressor` is a ``BaseEstimator``/``RegressorMixin``: settings are stored as given in
``__init__`` (so ``clone``, ``get_params``, ``Pipeline`` and ``GridSearchCV`` work), ``fit`` resolves the
backend once (:func:`~neurofit.regression.backend.get_backend`), checks the inputs (:func:`prepare_fit_inputs`)
and sets ``n_features_in_``; ``predict`` checks that the estimator is fitted and that ``X`` has the fitted
width, and returns float64 (numpy for numpy input, a tensor on the fitted device for a tensor). The math of
each estimator is a plain batched function (``pls_fit``, ``ridge_gcv_fit``); the classes only wrap it.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

from neurofit.errors import ValidationError
from neurofit.regression.backend import get_backend


def as_batch(a: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype | None, name: str = "X"
             ) -> torch.Tensor:
    """``a`` as a tensor on ``device`` in ``dtype`` (non-float input becomes float64 when ``dtype`` is None).

    Array-likes go through numpy; sparse, complex and missing inputs are one-line errors.

    Example
    -------
    >>> as_batch([[1, 2]], torch.device("cpu"), None).dtype
    torch.float64
    """
    if not isinstance(a, torch.Tensor):
        if a is None:
            raise ValidationError(f"{name} is None: the estimator requires {name} to be passed, but the target y is "
                                  "None" if name == "y" else f"{name} is None: pass an array")
        if hasattr(a, "toarray") or type(a).__module__.startswith("scipy.sparse"):
            raise ValidationError(f"{name} is a sparse matrix; sparse input is not supported: pass "
                                  f"{name}.toarray()")
        a = np.asarray(a)
        if np.iscomplexobj(a):
            raise ValidationError(f"{name} holds complex numbers: Complex data not supported")
        if a.dtype == object:
            a = a.astype(np.float64)  # a non-number raises numpy's TypeError, naming the value's type
        if not a.flags.writeable:
            a = a.copy()  # torch cannot wrap a read-only buffer (a memory-mapped file)
    t = torch.as_tensor(a, device=device)
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.to(torch.float64)
    return t


def check_finite(name: str, t: torch.Tensor) -> None:
    """A one-line error when ``t`` holds NaN or Inf."""
    # A sum is non-finite whenever an element is (or on overflow, which the exact test below rules out).
    if bool(torch.isfinite(t.sum())):
        return
    if not bool(torch.isfinite(t).all()):
        raise ValidationError(f"{name} contains NaN or Inf values: remove or impute them before fitting")


def prepare_fit_inputs(
    X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor, device: torch.device, dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, bool, bool]:
    """The estimators' shared input handling: ``(X [B, n, p], Y [B, n, q], batched, y_was_1d)``.

    Accepts ``X [n, p]`` or ``[B, n, p]`` and ``Y [n]``, ``[n, q]`` or the batched forms, as numpy or torch;
    checks the shapes (at least 2 samples, 1 feature and 1 target), that samples agree and that nothing is
    NaN or Inf.

    Example
    -------
    >>> X, Y, batched, y_1d = prepare_fit_inputs(np.ones((5, 3)), np.arange(5), torch.device("cpu"), torch.float64)
    >>> tuple(X.shape), tuple(Y.shape), batched, y_1d
    ((1, 5, 3), (1, 5, 1), False, True)
    """
    Xt = as_batch(X, device, dtype, "X")
    Yt = as_batch(Y, device, dtype, "y")
    if Xt.ndim not in (2, 3):
        raise ValidationError(f"X must be (n_samples, n_features) or batched (B, n_samples, n_features), got "
                              f"shape {tuple(Xt.shape)}")
    batched = Xt.ndim == 3
    y_1d = Yt.ndim == Xt.ndim - 1
    if y_1d:
        Yt = Yt[..., None]
    if Yt.ndim != Xt.ndim:
        raise ValidationError(f"Y {tuple(Yt.shape)} does not match X {tuple(Xt.shape)}: give (n_samples,), "
                              "(n_samples, n_targets) or their batched forms")
    if not batched:
        Xt, Yt = Xt[None], Yt[None]
    if Xt.shape[:2] != Yt.shape[:2]:
        raise ValidationError(f"X {tuple(Xt.shape)} and Y {tuple(Yt.shape)} disagree in samples")
    n, p, q = Xt.shape[1], Xt.shape[2], Yt.shape[2]
    if n < 2:
        raise ValidationError(f"fitting needs at least 2 samples, got {n} sample{'' if n == 1 else 's'} (centring "
                              "leaves nothing of one sample)")
    if p < 1 or q < 1:
        raise ValidationError(f"fitting needs at least 1 feature and 1 target, got {p} feature(s) and {q} "
                              "target(s)")
    check_finite("X", Xt)
    check_finite("Y", Yt)
    return Xt, Yt, batched, y_1d


class TorchRegressor(RegressorMixin, BaseEstimator):
    """Base of the torch-backed regressors: input checks, backend, fitted state and ``predict``.

    Subclasses store their settings in ``__init__``, call :meth:`_fit_inputs` in ``fit`` and implement
    ``_predict(X [B, n, p] float64) -> [B, n, q]``.
    """

    device: str | torch.device | None
    dtype: torch.dtype | None

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _fit_inputs(self, X: np.ndarray | torch.Tensor, Y: np.ndarray | torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        device, dtype = get_backend(self.device, self.dtype)
        Xt, Yt, self._batched, self._y_1d = prepare_fit_inputs(X, Y, device, dtype)
        self.n_features_in_ = int(Xt.shape[-1])
        return Xt, Yt

    def _unbatch(self, t: torch.Tensor) -> torch.Tensor:
        return t if self._batched else t[0]

    def _predict(self, Xt: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, X: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Predictions for ``X`` (``(n, p)`` or batched ``(B, n, p)``), float64."""
        check_is_fitted(self)
        Xt = as_batch(X, self.coef_.device, torch.float64)
        shape = "(B, n_samples, n_features)" if self._batched else "(n_samples, n_features)"
        if Xt.ndim != (3 if self._batched else 2):
            raise ValidationError(f"X must be {shape} as in fit, got shape {tuple(Xt.shape)}. Reshape your data: "
                                  "X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one sample")
        if Xt.shape[-1] != self.n_features_in_:
            raise ValidationError(f"X has {Xt.shape[-1]} features, but {type(self).__name__} is expecting "
                                  f"{self.n_features_in_} features as input")
        check_finite("X", Xt)
        out = self._predict(Xt)
        if self._y_1d:
            out = out[..., 0]
        return out.cpu().numpy() if not isinstance(X, torch.Tensor) else out
