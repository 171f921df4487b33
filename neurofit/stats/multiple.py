"""Multiple-comparison control across time bins, regions and models (statsmodels' ``multipletests``)."""

from __future__ import annotations

import numpy as np
import xarray as xr
from statsmodels.stats.multitest import multipletests

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
        reject[finite], q[finite], _, _ = multipletests(flat[finite], alpha=alpha, method=method)
    return xr.Dataset(
        {"q": (p.dims, q.reshape(values.shape)), "significant": (p.dims, reject.reshape(values.shape))},
        coords=p.coords,
        attrs={"method": method, "method_description": METHODS[method], "alpha": float(alpha),
               "n_tests": int(finite.sum())},
    )
