"""Bootstrap confidence intervals of the difference of two models' median scores.

Two resampling units exist. Over **sites**: the sites are drawn with replacement, the same draw for both
models (the comparison is paired), and the statistic is ``median(a) - median(b)`` over the drawn sites.
Over **stimuli** (when held-out predictions per stimulus are at hand): the stimuli are drawn with
replacement, each site's Pearson r is recomputed on the drawn stimuli for both models, and the statistic is
the difference of the medians over sites. Intervals are percentile intervals; draws are seeded so a rerun
gives the same interval.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from neurofit.errors import NeurofitError
from neurofit.regression.correlation import pearson_r

# Bootstrap draws are processed in chunks so memory stays near chunk * sites * bins floats.
_CHUNK_ELEMENTS = 4_000_000


def bootstrap_median_difference(
    a: xr.DataArray,
    b: xr.DataArray,
    dim: str = "neuroid",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Percentile bootstrap CI of ``median(a) - median(b)`` over ``dim``, resampling ``dim`` paired.

    Parameters
    ----------
    a, b : DataArray
        Same dims and sizes, e.g. ``(neuroid, time_bin)`` ceiled scores of two models on the same sites.
        A site whose value is NaN in either model is dropped for that bin (pairwise), in every draw.
    dim : str
        The resampled dim (default the sites, ``"neuroid"``). One draw of ``dim`` is shared by all other
        indices (all bins see the same sites), as the sites are the sampled units.
    n_boot : int
        Number of bootstrap draws.
    ci : float
        Coverage of the interval, e.g. 0.95 for the 2.5th to 97.5th percentiles.
    seed : int
        Seed of ``numpy.random.default_rng``.

    Returns
    -------
    Dataset with the other dims of ``a`` and variables ``median_difference`` (on the data, pairwise
    complete), ``ci_low``, ``ci_high``; attrs ``n_boot``, ``ci``, ``seed``, ``resampled``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> a = xr.DataArray(rng.normal(1.0, 0.1, (50, 2)), dims=("neuroid", "time_bin"))
    >>> out = bootstrap_median_difference(a, a - 0.5, n_boot=200)
    >>> np.allclose(out.median_difference, 0.5), bool((out.ci_low <= 0.5).all() and (out.ci_high >= 0.5).all())
    (True, True)
    """
    _check_boot(n_boot, ci)
    if dim not in a.dims or a.sizes != b.sizes:
        raise NeurofitError(
            f"bootstrap_median_difference: a {dict(a.sizes)} and b {dict(b.sizes)} must share dim {dim!r} "
            "and sizes; align them on the paired units first"
        )
    b = b.transpose(*a.dims)
    axis = a.get_axis_num(dim)
    xa = np.moveaxis(np.asarray(a.values, dtype=np.float64), axis, 0)
    xb = np.moveaxis(np.asarray(b.values, dtype=np.float64), axis, 0)
    shape = xa.shape[1:]
    xa = xa.reshape(xa.shape[0], -1)
    xb = xb.reshape(xb.shape[0], -1)
    missing = ~(np.isfinite(xa) & np.isfinite(xb))
    xa[missing] = np.nan
    xb[missing] = np.nan
    n_units = xa.shape[0]
    if n_units == 0:
        raise NeurofitError(f"bootstrap_median_difference: dim {dim!r} is empty")
    with np.errstate(all="ignore"):
        observed = _nanmedian0(xa) - _nanmedian0(xb)
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, xa.shape[1]))
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_units * xa.shape[1]))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n_units, size=(stop - start, n_units))
        with np.errstate(all="ignore"):
            draws[start:stop] = _nanmedian1(xa[idx]) - _nanmedian1(xb[idx])
    low, high = _percentiles(draws, ci)
    others = [d for d in a.dims if d != dim]
    coords = {name: coord for name, coord in a.coords.items() if dim not in coord.dims}
    return xr.Dataset(
        {
            "median_difference": (others, observed.reshape(shape)),
            "ci_low": (others, low.reshape(shape)),
            "ci_high": (others, high.reshape(shape)),
        },
        coords=coords,
        attrs={"n_boot": int(n_boot), "ci": float(ci), "seed": int(seed), "resampled": dim,
               "interval": "percentile"},
    )


def bootstrap_median_difference_stimuli(
    prediction_a: xr.DataArray,
    prediction_b: xr.DataArray,
    target: xr.DataArray,
    stimulus_dim: str = "presentation",
    site_dim: str = "neuroid",
    n_boot: int = 1000,
    ci: float = 0.95,
    seed: int = 0,
) -> xr.Dataset:
    """Percentile bootstrap CI over stimuli of ``median_sites(r_a) - median_sites(r_b)``.

    Each draw resamples the stimuli with replacement (the same draw for both models), recomputes every
    site's Pearson r between prediction and target on the drawn stimuli, and takes the difference of the
    medians over sites (sites whose r is undefined in either model are dropped pairwise).

    Parameters
    ----------
    prediction_a, prediction_b, target : DataArray
        Same dims and sizes, e.g. ``(presentation, neuroid, time_bin)``: held-out predictions of each model
        and the repetition-averaged response.
    stimulus_dim, site_dim : str
        The resampled dim and the dim the medians run over.
    n_boot, ci, seed : see :func:`bootstrap_median_difference`.

    Returns
    -------
    Dataset with the dims other than ``stimulus_dim`` and ``site_dim`` and variables ``median_difference``
    (on all stimuli), ``ci_low``, ``ci_high``; attrs as :func:`bootstrap_median_difference`.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> y = xr.DataArray(rng.normal(size=(40, 5)), dims=("presentation", "neuroid"))
    >>> out = bootstrap_median_difference_stimuli(y, y + rng.normal(size=(40, 5)), y, n_boot=100)
    >>> bool(out.ci_low > 0)
    True
    """
    _check_boot(n_boot, ci)
    for name, arr in (("prediction_a", prediction_a), ("prediction_b", prediction_b), ("target", target)):
        if stimulus_dim not in arr.dims or site_dim not in arr.dims:
            raise NeurofitError(f"{name} needs dims {stimulus_dim!r} and {site_dim!r}, has {arr.dims}")
        if arr.sizes != target.sizes:
            raise NeurofitError(f"{name} {dict(arr.sizes)} and target {dict(target.sizes)} differ in shape")
    order = [stimulus_dim, site_dim, *[d for d in target.dims if d not in (stimulus_dim, site_dim)]]
    pa, pb, y = (np.asarray(x.transpose(*order).values, dtype=np.float64) for x in (prediction_a, prediction_b,
                                                                                     target))
    shape = y.shape[2:]
    pa, pb, y = (x.reshape(x.shape[0], x.shape[1], -1) for x in (pa, pb, y))

    def statistic(idx: np.ndarray) -> np.ndarray:
        ra = _quiet_pearson(pa[idx], y[idx])
        rb = _quiet_pearson(pb[idx], y[idx])
        missing = ~(np.isfinite(ra) & np.isfinite(rb))
        ra[missing] = np.nan
        rb[missing] = np.nan
        with np.errstate(all="ignore"):
            return _nanmedian0(ra) - _nanmedian0(rb)

    n_stimuli = y.shape[0]
    rng = np.random.default_rng(seed)
    observed = statistic(np.arange(n_stimuli))
    draws = np.stack([statistic(rng.integers(0, n_stimuli, size=n_stimuli)) for _ in range(n_boot)])
    low, high = _percentiles(draws, ci)
    others = order[2:]
    coords = {name: coord for name, coord in target.coords.items()
              if stimulus_dim not in coord.dims and site_dim not in coord.dims}
    return xr.Dataset(
        {
            "median_difference": (others, observed.reshape(shape)),
            "ci_low": (others, low.reshape(shape)),
            "ci_high": (others, high.reshape(shape)),
        },
        coords=coords,
        attrs={"n_boot": int(n_boot), "ci": float(ci), "seed": int(seed), "resampled": stimulus_dim,
               "interval": "percentile"},
    )


def _quiet_pearson(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        # A resampled stimulus set can make a site constant; its r is NaN and drops out of the median.
        warnings.simplefilter("ignore")
        return np.asarray(pearson_r(prediction, target, dim=0), dtype=np.float64)


def _check_boot(n_boot: int, ci: float) -> None:
    if int(n_boot) < 1:
        raise NeurofitError(f"n_boot must be a positive number of bootstrap draws, got {n_boot}")
    if not 0 < ci < 1:
        raise NeurofitError(f"ci must lie in (0, 1), e.g. 0.95, got {ci}")


def _nanmedian0(x: np.ndarray) -> np.ndarray:
    """nanmedian over axis 0 without numpy's all-NaN warning (an all-NaN column gives NaN)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=0)


def _nanmedian1(x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(x, axis=1)


def _percentiles(draws: np.ndarray, ci: float) -> tuple[np.ndarray, np.ndarray]:
    tail = 100.0 * (1.0 - ci) / 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(draws, [tail, 100.0 - tail], axis=0)
    return low, high
