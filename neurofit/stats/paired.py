"""Paired tests over sites: Wilcoxon signed-rank and paired t, one test per time bin (or any other index).

Two models scored on the same sites give two numbers per site and bin; the paired tests ask whether their
difference is centred on zero. The difference is ``b - a``, the second minus the reference, as in every
comparison (:func:`neurofit.stats.compare.paired_difference`). Sites where either score is NaN (an
undefined correlation, a ceiling that is not positive) are dropped pairwise, bin by bin, never imputed.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr
from scipy import stats

from neurofit.errors import NeurofitError, quiet_nan
from neurofit.stats.compare import paired_difference

WILCOXON = ("two-sided Wilcoxon signed-rank test (scipy.stats.wilcoxon, zero_method='wilcox'; exact null "
            "distribution up to 50 sites without ties or zero differences, normal approximation otherwise)")
EXACT_MAX_N = 50
PAIRED_T = "two-sided paired t-test (scipy.stats.ttest_rel)"


def paired_tests(a: xr.DataArray, b: xr.DataArray, dim: str = "neuroid") -> xr.Dataset:
    """Wilcoxon signed-rank and paired t-tests of ``b`` against the reference ``a`` (``b - a``) over ``dim``.

    Parameters
    ----------
    a, b : DataArray
        The reference and the other model, with the same dims and sizes, e.g. ``(neuroid, time_bin)`` ceiled
        scores of two models on the same sites (align them on ``neuroid_id`` first). Pairs where either value
        is NaN are dropped.
    dim : str
        The dim of the paired units (default the sites, ``"neuroid"``).

    Returns
    -------
    Dataset with the dims of ``a`` other than ``dim`` (coords kept) and variables ``n`` (pairs used),
    ``median_a``, ``median_b``, ``median_difference`` (``median_b - median_a`` over the pairs used),
    ``mean_difference`` (of ``b - a``), ``wilcoxon_statistic``, ``wilcoxon_p``, ``t_statistic`` (positive where
    ``b`` is above ``a``), ``t_p``. A test with fewer than 2 pairs, or whose differences are all zero, has NaN
    statistic and p.

    Example
    -------
    >>> b = xr.DataArray(np.arange(10.0)[:, None] + 1.0, dims=("neuroid", "time_bin"))
    >>> a = xr.zeros_like(b)
    >>> out = paired_tests(a, b)
    >>> float(out.median_difference[0]), round(float(out.wilcoxon_p[0]), 4)
    (5.5, 0.002)
    """
    if not isinstance(a, xr.DataArray) or not isinstance(b, xr.DataArray):
        raise NeurofitError("paired_tests takes two xarray.DataArray objects (e.g. scoreset['ceiled'])")
    if dim not in a.dims or dim not in b.dims:
        raise NeurofitError(f"paired_tests: dim {dim!r} is missing (a has {a.dims}, b has {b.dims}); pass dim=")
    if a.sizes != b.sizes:
        raise NeurofitError(
            f"paired_tests: a {dict(a.sizes)} and b {dict(b.sizes)} differ in shape; align them on the paired "
            "units first (e.g. by neuroid_id)"
        )
    b = b.transpose(*a.dims)
    others = [d for d in a.dims if d != dim]
    xa = np.moveaxis(np.asarray(a.values, dtype=np.float64), a.get_axis_num(dim), -1)
    xb = np.moveaxis(np.asarray(b.values, dtype=np.float64), a.get_axis_num(dim), -1)
    shape = xa.shape[:-1]
    xa = xa.reshape(-1, xa.shape[-1])
    xb = xb.reshape(-1, xb.shape[-1])
    names = ("n", "median_a", "median_b", "median_difference", "mean_difference",
             "wilcoxon_statistic", "wilcoxon_p", "t_statistic", "t_p")
    out = {name: np.full(xa.shape[0], np.nan) for name in names}
    for i in range(xa.shape[0]):
        keep = np.isfinite(xa[i]) & np.isfinite(xb[i])
        va, vb = xa[i, keep], xb[i, keep]
        out["n"][i] = keep.sum()
        if not keep.any():
            continue
        out["median_a"][i] = np.median(va)
        out["median_b"][i] = np.median(vb)
        out["median_difference"][i] = paired_difference(out["median_a"][i], out["median_b"][i])
        diff = paired_difference(va, vb)
        out["mean_difference"][i] = diff.mean()
        if diff.size < 2 or not np.any(diff != 0):
            continue
        out["wilcoxon_statistic"][i], out["wilcoxon_p"][i] = _wilcoxon(diff)
        with quiet_nan():
            # Identical nonzero differences have zero variance: the t-test is undefined there (NaN).
            res = stats.ttest_rel(vb, va)  # the t of b - a
        out["t_statistic"][i], out["t_p"][i] = float(res.statistic), float(res.pvalue)
    coords = {name: coord for name, coord in a.coords.items() if dim not in coord.dims}
    data_vars = {name: (others, value.reshape(shape)) for name, value in out.items()}
    data_vars["n"] = (others, out["n"].reshape(shape).astype(np.int64))
    return xr.Dataset(
        data_vars,
        coords=coords,
        attrs={"paired_dim": dim, "wilcoxon_test": WILCOXON, "t_test": PAIRED_T},
    )


def wilcoxon_method(diff: np.ndarray) -> str:
    """The ``method`` passed to :func:`scipy.stats.wilcoxon` for these paired differences.

    Exact for up to :data:`EXACT_MAX_N` differences without ties or zeros (as scipy's own choice), the normal
    approximation otherwise; scipy's ``"auto"`` would run a permutation test for small samples with ties,
    which costs seconds per bin.

    Example
    -------
    >>> wilcoxon_method(np.array([1.0, -2.0, 3.0])), wilcoxon_method(np.array([1.0, 1.0, 0.0]))
    ('exact', 'asymptotic')
    """
    nonzero = np.abs(diff[diff != 0])
    ties = np.unique(nonzero).size < nonzero.size
    return "exact" if diff.size <= EXACT_MAX_N and nonzero.size == diff.size and not ties else "asymptotic"


def _wilcoxon(diff: np.ndarray) -> tuple[float, float]:
    with warnings.catch_warnings():
        # scipy warns when ties/zeros affect the normal approximation; that is the documented behaviour.
        warnings.simplefilter("ignore", UserWarning)
        res = stats.wilcoxon(diff, zero_method="wilcox", alternative="two-sided", method=wilcoxon_method(diff))
    return float(res.statistic), float(res.pvalue)
