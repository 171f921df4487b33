"""Pearson correlation, the one home of it: per column (site x time bin), vectorised and NaN-safe.

* :func:`pearson_r`: batched over every index but the sample axis (numpy or torch), NaN for constant columns.
* :func:`pearson_on_valid`: :func:`pearson_r` per column over the rows where both inputs are finite (scores of
  sites that lack some stimuli).
* :func:`pearson_r_valid`: the same rule as one masked numpy formula (the ceiling's NaN-padded trial halves).
* :func:`pearson_sums` / :func:`pearson_from_sums`: per-sample sufficient statistics and r from their
  (weighted) sums, so that a bootstrap over samples costs a matrix product per draw.
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np
import torch

from neurofit.errors import ConstantInputWarning, quiet_nan
from neurofit.regression.parallel import torch_threads

# pearson_r runs inputs with fewer elements than this on one intra-op thread
_SERIAL_BELOW = 2**23


def pearson_r(
    prediction: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor, dim: int = 0
) -> np.ndarray | torch.Tensor:
    """Pearson r between ``prediction`` and ``target`` along ``dim``, for every other index at once.

    A column where either input is constant has no correlation: it is NaN (one
    :class:`ConstantInputWarning` per call names how many), never 0. NaN inputs give NaN for their column.

    Parameters
    ----------
    prediction, target : array or tensor of the same shape, e.g. (n_stimuli, n_sites, n_bins)
    dim : int
        The sample axis.

    Returns
    -------
    r : same kind as ``prediction`` (numpy or torch), the shape with ``dim`` removed, float64 for numpy.

    Example
    -------
    >>> x = np.arange(5.0)[:, None]
    >>> pearson_r(np.hstack([x, x]), np.hstack([2 * x + 1, -x])).tolist()
    [1.0, -1.0]
    """
    as_numpy = not isinstance(prediction, torch.Tensor)
    x = torch.as_tensor(prediction)
    y = torch.as_tensor(target, device=x.device)
    if x.shape != y.shape:
        raise ValueError(f"prediction {tuple(x.shape)} and target {tuple(y.shape)} differ in shape")
    dtype = torch.float64 if (as_numpy or x.dtype == torch.float64 or x.device.type == "cpu") else x.dtype
    # Small CPU inputs on one intra-op thread: the same numbers (elementwise work and reductions over the
    # sample axis do not depend on the thread count), at a fraction of the CPU a threaded pass costs in
    # synchronisation (4-15x at a scoring run's 154-614 stimuli x 80 sites x 25 bins).
    serial = x.device.type == "cpu" and x.numel() < _SERIAL_BELOW
    with torch_threads(1) if serial else contextlib.nullcontext():
        return _pearson_r(x, y, dim, dtype, as_numpy)


def _pearson_r(x: torch.Tensor, y: torch.Tensor, dim: int, dtype: torch.dtype, as_numpy: bool
               ) -> np.ndarray | torch.Tensor:
    x = x.to(dtype)
    y = y.to(dtype)
    xc = x - x.mean(dim, keepdim=True)
    yc = y - y.mean(dim, keepdim=True)
    sxx = (xc * xc).sum(dim)
    syy = (yc * yc).sum(dim)
    sxy = (xc * yc).sum(dim)
    # A constant column's centred values are rounding noise: compare with the column's own scale.
    n = x.shape[dim]
    tiny_x = sxx <= (torch.finfo(dtype).eps * x.abs().amax(dim)) ** 2 * n
    tiny_y = syy <= (torch.finfo(dtype).eps * y.abs().amax(dim)) ** 2 * n
    constant = tiny_x | tiny_y
    r = sxy / torch.sqrt(sxx * syy)
    r = torch.where(constant, torch.full_like(r, float("nan")), r).clamp(-1.0, 1.0)
    n_constant = int(constant.sum())
    if n_constant:
        warnings.warn(
            f"{n_constant} of {constant.numel()} columns are constant: their Pearson r is NaN",
            ConstantInputWarning,
            stacklevel=3,
        )
    return r.cpu().numpy() if as_numpy else r


def pearson_r_valid(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r along axis 0 per column over the rows where both are finite; NaN with fewer than 3 such rows.

    Example
    -------
    >>> a = np.array([[1.0], [2.0], [np.nan], [4.0]])
    >>> pearson_r_valid(a, 2 * a).tolist()
    [1.0]
    """
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(axis=0)
    a0 = np.where(ok, a, 0.0)
    b0 = np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = a0.sum(0) / n
        mb = b0.sum(0) / n
        ac = np.where(ok, a0 - ma, 0.0)
        bc = np.where(ok, b0 - mb, 0.0)
        sab = (ac * bc).sum(0)
        saa = (ac * ac).sum(0)
        sbb = (bc * bc).sum(0)
        r = sab / np.sqrt(saa * sbb)
    r[(n < 3) | (saa <= 0) | (sbb <= 0)] = np.nan
    return r


def pearson_sums(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-sample statistics ``(n, 6, M)`` of column pairs ``(n, M)``; rows with a NaN contribute nothing.

    Summed over (a weighted draw of) the samples they give :func:`pearson_from_sums` its input.

    Example
    -------
    >>> a = np.arange(5.0)[:, None]
    >>> pearson_from_sums(pearson_sums(a, 3 * a).sum(0, keepdims=True)).tolist()
    [[1.0]]
    """
    ok = np.isfinite(a) & np.isfinite(b)
    with quiet_nan():  # a column without a finite pair has NaN means and contributes nothing
        # centring first keeps the one-pass sums free of cancellation
        a = np.where(ok, a - np.nanmean(np.where(ok, a, np.nan), axis=0), 0.0)
        b = np.where(ok, b - np.nanmean(np.where(ok, b, np.nan), axis=0), 0.0)
    return np.stack([ok.astype(np.float64), a, b, a * a, b * b, a * b], axis=1)


def pearson_from_sums(sums: np.ndarray) -> np.ndarray:
    """Pearson r from summed :func:`pearson_sums` ``(D, 6, M)`` -> ``(D, M)``; NaN below 3 samples or constant."""
    n, sa, sb, saa, sbb, sab = np.moveaxis(sums, 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sab - sa * sb / n
        va = saa - sa**2 / n
        vb = sbb - sb**2 / n
        r = cov / np.sqrt(va * vb)
    r[(n < 3) | ~(va > 0) | ~(vb > 0)] = np.nan
    return r


def pearson_on_valid(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Pearson r along axis 0 per column, each column over the rows where both inputs are finite.

    Columns without a non-finite value go through :func:`pearson_r` as
    one batch (so complete data give exactly its numbers); a column with fewer than 3 valid rows is NaN.

    Example
    -------
    >>> p = np.array([[1.0, 1.0], [2.0, np.nan], [3.0, 3.0], [4.0, 5.0]])
    >>> pearson_on_valid(p, 2 * np.nan_to_num(p)).round(6).tolist()
    [1.0, 1.0]
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    with quiet_nan():  # constant sites are NaN by contract
        r = np.asarray(pearson_r(prediction, target, dim=0), dtype=np.float64)
        ok = np.isfinite(prediction) & np.isfinite(target)
        incomplete = ~ok.all(axis=0)
        for index in zip(*np.nonzero(incomplete)):
            rows = ok[(slice(None), *index)]
            column = (slice(None), *index)
            r[index] = np.nan if rows.sum() < 3 else float(
                pearson_r(prediction[column][rows], target[column][rows], dim=0))
    return r
