"""Multiple-comparison control across time bins, regions and models (statsmodels' ``multipletests``).

:func:`fdr` corrects a family of p values; :func:`selection_level` gives the per-test level ``gamma`` whose
intervals agree with the selection: a test is significant after the correction exactly when its p value is at
most ``gamma``, so intervals at coverage ``1 - gamma`` (:func:`neurofit.stats.bootstrap.inverted_interval`)
exclude zero exactly where a mark is drawn. For Benjamini-Hochberg this is the false-coverage-rate adjusted
interval of Benjamini & Yekutieli (2005, JASA 100:71-81): with ``R`` of ``m`` tests selected, intervals at
level ``1 - R alpha / m`` have false coverage rate at most ``alpha`` among the selected.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from neurofit.errors import NeurofitError

METHODS: dict[str, str] = {
    "fdr_bh": "Benjamini-Hochberg false-discovery-rate control",
    "holm": "Holm's step-down family-wise error control",
    "bonferroni": "Bonferroni family-wise error control",
    "fdr_by": "Benjamini-Yekutieli false-discovery-rate control",
}


def fdr(pvalues: xr.DataArray | np.ndarray, method: str = "fdr_bh", alpha: float = 0.05) -> xr.Dataset:
    """Correct a family of p values jointly (every element of ``pvalues`` is one test of the family).

    NaN p values (tests that could not be run) are left out of the family and get NaN ``q`` and
    ``significant = False``.

    Parameters
    ----------
    pvalues : DataArray or array of any shape
        E.g. Wilcoxon p per (comparison, region, time_bin): all of them form one family.
    method : {"fdr_bh", "holm", "bonferroni", "fdr_by"}
        Passed to :func:`statsmodels.stats.multitest.multipletests`.
    alpha : float
        The level at which ``significant`` is decided.

    Returns
    -------
    Dataset with ``q`` (adjusted p values) and ``significant`` (bool), labelled like ``pvalues``
    (dims ``dim_0, ...`` for a plain array), attrs ``method``, ``method_description``, ``alpha``,
    ``n_tests``.

    Example
    -------
    >>> out = fdr(np.array([0.01, 0.04, 0.03, np.nan]))
    >>> out.q.values.round(3).tolist(), out.significant.values.tolist()
    ([0.03, 0.04, 0.04, nan], [True, True, True, False])
    """
    if method not in METHODS:
        raise NeurofitError(f"unknown multiple-comparison method {method!r}: use one of {sorted(METHODS)}")
    if not 0 < alpha < 1:
        raise NeurofitError(f"alpha must lie in (0, 1), got {alpha}")
    p = pvalues if isinstance(pvalues, xr.DataArray) else xr.DataArray(np.asarray(pvalues, dtype=np.float64))
    values = np.asarray(p.values, dtype=np.float64)
    flat = values.ravel()
    finite = np.isfinite(flat)
    if np.any((flat[finite] < 0) | (flat[finite] > 1)):
        raise NeurofitError("p values must lie in [0, 1]")
    q = np.full(flat.shape, np.nan)
    reject = np.zeros(flat.shape, dtype=bool)
    if finite.any():
        from statsmodels.stats.multitest import multipletests

        reject[finite], q[finite], _, _ = multipletests(flat[finite], alpha=alpha, method=method)
    return xr.Dataset(
        {"q": (p.dims, q.reshape(values.shape)), "significant": (p.dims, reject.reshape(values.shape))},
        coords=p.coords,
        attrs={"method": method, "method_description": METHODS[method], "alpha": float(alpha),
               "n_tests": int(finite.sum())},
    )


def selection_level(pvalues: np.ndarray, method: str = "fdr_bh", alpha: float = 0.05) -> float:
    """The per-test level ``gamma`` at which ``p <= gamma`` selects exactly the tests the correction rejects.

    ``fdr_bh``: ``max(R, 1) alpha / m`` (Benjamini & Yekutieli 2005's FCR-adjusted level; with nothing
    selected, ``alpha / m``, so no interval excludes zero); ``fdr_by``: the same divided by
    ``sum_{i<=m} 1/i``; ``bonferroni``: ``alpha / m``; ``holm``: ``alpha / (m - R + 1)`` (Holm's threshold
    at its last rejection). ``m`` counts the finite p values, ``R`` the rejections of :func:`fdr`. Where
    float rounding puts a p value on the wrong side of that level, the level moves by the rounding error,
    so that the selection and the intervals agree exactly.

    Example
    -------
    >>> p = np.array([0.001, 0.01, 0.03, 0.2, np.nan])
    >>> gamma = selection_level(p, "fdr_bh", 0.05)
    >>> round(gamma, 6), (p <= gamma).tolist() == fdr(p).significant.values.tolist()
    (0.0375, True)
    """
    if method not in METHODS:
        raise NeurofitError(f"unknown multiple-comparison method {method!r}: use one of {sorted(METHODS)}")
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    p = p[np.isfinite(p)]
    m = p.size
    if m == 0:
        return float(alpha)
    # statsmodels' rejections, recomputed here with its float expressions (its Holm calls gc.collect, which
    # costs a second in a large process)
    order = np.sort(p)
    if method in ("fdr_bh", "fdr_by"):
        scale = 1.0 if method == "fdr_bh" else float(np.sum(1.0 / np.arange(1, m + 1)))
        below = np.flatnonzero(order <= np.arange(1, m + 1) / float(m) * alpha / scale)
        selected = int(below[-1]) + 1 if below.size else 0
        gamma = max(selected, 1) * alpha / (m * scale)
    elif method == "bonferroni":
        selected = int((p * float(m) <= alpha).sum())
        gamma = alpha / m
    else:
        failed = np.flatnonzero(order > alpha / np.arange(m, 0, -1))
        selected = int(failed[0]) if failed.size else m
        gamma = alpha / (m - max(selected, 1) + 1)
    reject = p <= (order[selected - 1] if selected else -np.inf)
    if selected:
        gamma = max(gamma, float(p[reject].max()))
    if (~reject).any() and float(p[~reject].min()) <= gamma:
        gamma = float(np.nextafter(p[~reject].min(), -np.inf))
    return float(gamma)
