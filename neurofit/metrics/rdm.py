"""Representational dissimilarity matrices, batched over any leading dimensions as matrix products.

An RDM over ``n`` conditions (stimuli) is returned *condensed*: the upper triangle without the diagonal,
row by row (``scipy.spatial.distance.squareform`` order, rsatoolbox's vector order), ``n (n - 1) / 2``
values. Definitions follow rsatoolbox (``rsatoolbox.rdm.calc``) exactly:

- correlation distance ``1 - r`` between condition patterns (each pattern centred over its channels);
- crossnobis: cross-validated squared Mahalanobis distance over folds of repetitions (leave one fold
  out: the mean of the other folds against the held-out fold), divided by the number of channels;
  unbiased, so its expected value is 0 for two conditions with the same true response;
- the noise precision for crossnobis: a Schaefer & Strimmer (2005) shrinkage-to-diagonal covariance of
  the residuals, inverted (rsatoolbox's ``prec_from_residuals(method='shrinkage_diag')``).

Numpy inputs give float64 numpy results; torch inputs stay torch (their device and dtype).
"""

from __future__ import annotations

import numpy as np
import torch

from neurofit.errors import NeurofitError

Array = np.ndarray | torch.Tensor


def _tensor(x: Array) -> tuple[torch.Tensor, bool]:
    if isinstance(x, torch.Tensor):
        return x, False
    return torch.as_tensor(np.asarray(x, dtype=np.float64)), True


def _out(t: torch.Tensor, as_numpy: bool) -> Array:
    return t.cpu().numpy() if as_numpy else t


def n_pairs(n_conditions: int) -> int:
    """Length of a condensed RDM over ``n_conditions``: ``n (n - 1) / 2``.

    Example
    -------
    >>> n_pairs(4)
    6
    """
    return n_conditions * (n_conditions - 1) // 2


def n_conditions(n_pairs_: int) -> int:
    """Number of conditions of a condensed RDM of length ``n_pairs_`` (an error if there is none).

    Example
    -------
    >>> n_conditions(6)
    4
    """
    n = int(round((1 + np.sqrt(1 + 8 * n_pairs_)) / 2))
    if n_pairs(n) != n_pairs_:
        raise NeurofitError(f"{n_pairs_} values are not the upper triangle of a square RDM")
    return n


def condense(matrices: Array) -> Array:
    """Upper triangles (without diagonal) of square matrices ``[..., n, n] -> [..., n (n - 1) / 2]``.

    Example
    -------
    >>> condense(np.arange(9.0).reshape(3, 3)).tolist()
    [1.0, 2.0, 5.0]
    """
    m, as_numpy = _tensor(matrices)
    n = m.shape[-1]
    i, j = torch.triu_indices(n, n, offset=1, device=m.device)
    return _out(m[..., i, j], as_numpy)


def squareform(condensed: Array, diagonal: float = 0.0) -> Array:
    """Symmetric square matrices from condensed RDMs ``[..., n_pairs] -> [..., n, n]``.

    Example
    -------
    >>> squareform(np.array([1.0, 2.0, 5.0])).tolist()
    [[0.0, 1.0, 2.0], [1.0, 0.0, 5.0], [2.0, 5.0, 0.0]]
    """
    v, as_numpy = _tensor(condensed)
    n = n_conditions(v.shape[-1])
    i, j = torch.triu_indices(n, n, offset=1, device=v.device)
    m = torch.full((*v.shape[:-1], n, n), float(diagonal), dtype=v.dtype, device=v.device)
    m[..., i, j] = v
    m[..., j, i] = v
    return _out(m, as_numpy)


def correlation_rdm(patterns: Array) -> Array:
    """Correlation-distance RDMs ``1 - r`` of condition patterns, ``[..., n, channels] -> [..., n_pairs]``.

    One Gram matrix per leading index (a batched GEMM). A pattern that is constant over its channels has
    no correlation with anything: its pairs are NaN (rsatoolbox gives NaN too).

    Parameters
    ----------
    patterns : array or Tensor (..., n_conditions, n_channels)
        Repetition-averaged responses, one row per condition.

    Example
    -------
    >>> x = np.array([[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [2.0, 4.0, 6.1]])
    >>> correlation_rdm(x).round(4).tolist()
    [2.0, 0.0001, 1.9999]
    """
    x, as_numpy = _tensor(patterns)
    x = x - x.mean(-1, keepdim=True)
    norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
    z = x / torch.where(norm > 0, norm, torch.full_like(norm, float("nan")))
    return _out(condense(1.0 - z @ z.mT), as_numpy)


def _pair_distance(kernel: torch.Tensor) -> torch.Tensor:
    # d_ij = k_ii + k_jj - k_ij - k_ji for an asymmetric cross-fold kernel
    d = kernel.diagonal(dim1=-2, dim2=-1)
    return condense(d[..., :, None] + d[..., None, :] - kernel - kernel.mT)


def crossnobis_rdm(trials: Array, precision: Array | None = None, folds: Array | None = None) -> Array:
    """Crossnobis RDMs: cross-validated squared Mahalanobis distances over folds of repetitions.

    For each fold ``k`` the mean over the other folds' repetitions (``A``) meets the mean of fold ``k``
    (``B``) in the kernel ``A P B^T``; its pair distances ``k_ii + k_jj - k_ij - k_ji`` divided by the
    channel count are averaged over folds (rsatoolbox's ``calc_rdm_crossnobis`` with one precision).

    Parameters
    ----------
    trials : array or Tensor (..., n_repetitions, n_conditions, n_channels)
        Every condition measured in every repetition (no missing trials).
    precision : array or Tensor (..., n_channels, n_channels), optional
        Noise precision (e.g. :func:`noise_precision`); identity (cross-validated Euclidean) if omitted.
    folds : array of int (n_repetitions,), optional
        Fold label of each repetition; one fold per repetition if omitted (leave one repetition out).

    Returns
    -------
    (..., n_pairs)

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> same = np.repeat(rng.normal(size=(1, 1, 50)), 2, axis=1)  # two conditions, identical truth
    >>> noisy = same + rng.normal(size=(400, 2, 50))
    >>> abs(float(crossnobis_rdm(noisy)[0])) < 0.05  # unbiased: ~0, where plain distances are ~2
    True
    """
    x, as_numpy = _tensor(trials)
    n_rep = x.shape[-3]
    labels = np.arange(n_rep) if folds is None else np.asarray(folds)
    if labels.shape != (n_rep,):
        raise NeurofitError(f"folds has {labels.shape} labels for {n_rep} repetitions")
    values = np.unique(labels)
    if len(values) < 2:
        raise NeurofitError("crossnobis needs at least two folds of repetitions")
    prec = None if precision is None else _tensor(precision)[0].to(x)
    total = None
    for v in values:
        held = torch.as_tensor(labels == v, device=x.device)
        test = x[..., held, :, :].mean(-3)
        train = x[..., ~held, :, :].mean(-3)
        kernel = (train if prec is None else train @ prec) @ test.mT
        d = _pair_distance(kernel)
        total = d if total is None else total + d
    return _out(total / (len(values) * x.shape[-1]), as_numpy)


def noise_precision(residuals: Array, dof: int | None = None) -> Array:
    """Noise precision from residuals: shrinkage-to-diagonal covariance (Schaefer & Strimmer 2005), inverted.

    Equal to rsatoolbox's ``prec_from_residuals(residuals, dof, method='shrinkage_diag')``.

    Parameters
    ----------
    residuals : array or Tensor (..., n_residuals, n_channels)
        E.g. each trial minus its condition's mean.
    dof : int, optional
        Degrees of freedom of the covariance; ``n_residuals - 1`` if omitted. For trial residuals pass
        ``n_trials - n_conditions``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> prec = noise_precision(rng.normal(size=(2000, 3)))  # white noise: ~ identity
    >>> bool(np.abs(prec - np.eye(3)).max() < 0.1)
    True
    """
    r, as_numpy = _tensor(residuals)
    n = r.shape[-2]
    r = r - r.mean(-2, keepdim=True)
    dof = n - 1 if dof is None else int(dof)
    s_sum = r.mT @ r
    s2_sum = (r * r).mT @ (r * r)  # sum over residuals of (x x^T)**2, elementwise
    s = s_sum / dof
    var = s.diagonal(dim1=-2, dim2=-1)
    std = var.sqrt()
    s_mean = s_sum / std[..., None, :] / std[..., :, None] / (n - 1)
    s2_mean = s2_sum / var[..., None, :] / var[..., :, None] / (n - 1)
    var_hat = n / dof**2 * (s2_mean - s_mean**2)
    off = ~torch.eye(s.shape[-1], dtype=torch.bool, device=r.device)
    lamb = (var_hat * off).sum((-2, -1)) / (s_mean**2 * off).sum((-2, -1))
    lamb = lamb.clamp(0.0, 1.0)[..., None, None]
    shrunk = torch.where(off, s * (1.0 - lamb), s)
    return _out(torch.linalg.inv(shrunk), as_numpy)
