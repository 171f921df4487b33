"""Percentile bootstrap intervals over images for the dynamics analyses (means and Spearman correlations).

Images are the resampled unit: each draw takes ``n`` images with replacement and recomputes the statistic;
the interval is the ``(100 - ci) / 2`` and ``100 - (100 - ci) / 2`` percentiles of the draws. NaN values
(e.g. images never classified correctly) are left out of each draw, as they are out of the point estimate.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from neurofit.errors import NeurofitError


def _check_ci(n_boot: int, ci: float) -> None:
    if n_boot < 1:
        raise NeurofitError(f"n_boot must be >= 1, got {n_boot}")
    if not 0 < ci < 100:
        raise NeurofitError(f"ci is a percentage in (0, 100), got {ci}")


def mean_ci(
    values: np.ndarray, *, axis: int = -1, n_boot: int = 1000, seed: int = 0, ci: float = 95.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN-ignoring mean over ``axis`` (the images) with a percentile bootstrap CI over that axis.

    One draw of images is shared by every other index (e.g. every step), as the images are the sampled
    units.

    Returns
    -------
    mean, low, high : arrays with ``axis`` removed.

    Example
    -------
    >>> m, lo, hi = mean_ci(np.arange(100.0))
    >>> float(m), bool(lo < 49.5 < hi)
    (49.5, True)
    """
    _check_ci(n_boot, ci)
    x = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        finite = np.isfinite(x)
        mean = np.where(finite, x, 0.0).sum(-1) / finite.sum(-1)
        if n == 0:
            nan = np.full(x.shape[:-1], np.nan)
            return nan, nan, nan
        idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        draws = x[..., idx]  # [..., n_boot, n]
        ok = np.isfinite(draws)
        boot = np.where(ok, draws, 0.0).sum(-1) / ok.sum(-1)
    q = [(100 - ci) / 2, 100 - (100 - ci) / 2]
    with warnings.catch_warnings():
        # an index with no finite value in any draw (e.g. a step before any image is correct) is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(boot, q, axis=-1)
    return mean, np.asarray(low), np.asarray(high)


def spearman_ci(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0, ci: float = 95.0
) -> dict[str, float]:
    """Spearman rho of paired values (pairs with a NaN dropped) with a percentile bootstrap CI over pairs.

    Returns
    -------
    dict with ``rho``, ``low``, ``high``, ``p`` (scipy's two-sided p-value) and ``n`` (pairs used).
    Draws in which either variable is constant are left out of the interval.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=200)
    >>> out = spearman_ci(x, x + rng.normal(size=200))
    >>> bool(out["low"] < out["rho"] < out["high"]), out["n"]
    (True, 200)
    """
    _check_ci(n_boot, ci)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise NeurofitError(f"spearman_ci needs two 1-d arrays of equal length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    nan = {"rho": np.nan, "low": np.nan, "high": np.nan, "p": np.nan, "n": n}
    if n < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return nan
    result = stats.spearmanr(a, b)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    ra = stats.rankdata(a[idx], axis=1)
    rb = stats.rankdata(b[idx], axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = (ra * rb).sum(1) / np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    draws = draws[np.isfinite(draws)]
    low, high = (np.percentile(draws, [(100 - ci) / 2, 100 - (100 - ci) / 2]) if draws.size
                 else (np.nan, np.nan))
    return {"rho": float(result.statistic), "low": float(low), "high": float(high), "p": float(result.pvalue),
            "n": n}
