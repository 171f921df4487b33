"""Pearson correlation per column (site x time bin), vectorised and NaN-safe."""

from __future__ import annotations

import warnings

import numpy as np
import torch


class ConstantInputWarning(UserWarning):
    """A column was constant, so its correlation is undefined (returned as NaN)."""


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
            stacklevel=2,
        )
    return r.cpu().numpy() if as_numpy else r
