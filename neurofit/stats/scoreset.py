"""Reading the parts of a ScoreSet that statistics and reports need, with errors that name what is missing.

A ScoreSet (see DESIGN.md, "Scoring and benchmarks") is an ``xarray.Dataset`` with per-site variables on
``(neuroid, time_bin)`` (``r``, ``ceiling``, ``ceiled``), a ``region`` coordinate along ``neuroid``,
``time_bin_start``/``time_bin_end`` along ``time_bin``, optional per-region aggregates on
``(region, time_bin)`` and provenance in ``attrs``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from neurofit.errors import NeurofitError


def require(scoreset: xr.Dataset, names: Sequence[str], purpose: str) -> None:
    """Raise a :class:`NeurofitError` naming the first variable of ``names`` that ``scoreset`` lacks.

    Example
    -------
    >>> require(xr.Dataset({"r": ("neuroid", [0.5])}), ["r"], "a figure")
    """
    if not isinstance(scoreset, xr.Dataset):
        raise NeurofitError(f"{purpose} needs ScoreSets (xarray.Dataset), got {type(scoreset).__name__}")
    for name in names:
        if name not in scoreset.variables:
            raise NeurofitError(
                f"{purpose} needs the variable {name!r}, which ScoreSet {label(scoreset)!r} does not have "
                f"(it has {sorted(map(str, scoreset.data_vars))}); score with the option that produces it"
            )


def label(scoreset: xr.Dataset, default: str = "model") -> str:
    """The model's name for legends: ``attrs['model_id']``, else ``default``.

    Example
    -------
    >>> label(xr.Dataset(attrs={"model_id": "blt"}))
    'blt'
    """
    return str(scoreset.attrs.get("model_id") or default)


def site_regions(scoreset: xr.Dataset) -> np.ndarray:
    """The region of every site (the ``region`` coordinate along ``neuroid``), as strings."""
    require(scoreset, ["region"], "reading site regions")
    region = scoreset["region"]
    if region.dims != ("neuroid",):
        raise NeurofitError(f"ScoreSet {label(scoreset)!r}: coordinate 'region' must lie along 'neuroid', "
                            f"it has dims {region.dims}")
    return np.asarray([str(v) for v in region.values], dtype=object)


def aggregate_regions(scoreset: xr.Dataset) -> list[str]:
    """The labels along the ``region`` dim of the per-region aggregates (e.g. ``median_ceiled``).

    The dim may carry its own index, any string coordinate along it, or nothing; in the last case the
    labels are the sorted unique site regions (the order of ``groupby('region')``), which must match its
    length.

    Example
    -------
    >>> ds = xr.Dataset({"median_ceiled": (("region", "time_bin"), np.zeros((2, 1)))},
    ...                 coords={"region": ("neuroid", ["V4", "IT", "IT"])})
    >>> aggregate_regions(ds)
    ['IT', 'V4']
    """
    if "region" not in scoreset.dims:
        raise NeurofitError(f"ScoreSet {label(scoreset)!r} has no 'region' dim (no per-region aggregates)")
    if "region" in scoreset.indexes:
        return [str(v) for v in scoreset.indexes["region"]]
    for coord in scoreset.coords.values():
        if coord.dims == ("region",) and coord.dtype.kind in "USO":
            return [str(v) for v in coord.values]
    labels = sorted({str(v) for v in site_regions(scoreset)})
    if len(labels) != scoreset.sizes["region"]:
        raise NeurofitError(
            f"ScoreSet {label(scoreset)!r}: the 'region' dim has {scoreset.sizes['region']} entries but the sites "
            f"name {len(labels)} regions {labels}; label the dim with a coordinate"
        )
    return labels


def regions(scoreset: xr.Dataset) -> list[str]:
    """The regions of the sites, in order of first appearance.

    Example
    -------
    >>> regions(xr.Dataset(coords={"region": ("neuroid", ["V4", "IT", "V4"])}))
    ['V4', 'IT']
    """
    return [str(v) for v in dict.fromkeys(site_regions(scoreset))]


def time_bins(scoreset: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """``(time_bin_start, time_bin_end)`` in ms after stimulus onset.

    Example
    -------
    >>> time_bins(xr.Dataset(coords={"time_bin_start": ("time_bin", [0.0]), "time_bin_end": ("time_bin", [10.0])}))
    (array([0.]), array([10.]))
    """
    require(scoreset, ["time_bin_start", "time_bin_end"], "reading time bins")
    return (np.asarray(scoreset["time_bin_start"].values, dtype=np.float64),
            np.asarray(scoreset["time_bin_end"].values, dtype=np.float64))


def region_aggregate(scoreset: xr.Dataset, name: str, region: str) -> np.ndarray:
    """The values of aggregate ``name`` (dims ``(region, time_bin)``) for one region, over time bins."""
    require(scoreset, [name], "reading per-region aggregates")
    labels = aggregate_regions(scoreset)
    if region not in labels:
        raise NeurofitError(f"ScoreSet {label(scoreset)!r} has no region {region!r} in {name!r} (has {labels})")
    return np.asarray(scoreset[name].isel(region=labels.index(region)).transpose("time_bin").values,
                      dtype=np.float64)


def window_mask(scoreset: xr.Dataset, window: tuple[float, float] | None) -> np.ndarray:
    """Boolean mask of the time bins lying inside ``window = (start_ms, end_ms)`` (all bins for ``None``).

    Example
    -------
    >>> ds = xr.Dataset(coords={"time_bin_start": ("time_bin", [0.0, 10.0]),
    ...                         "time_bin_end": ("time_bin", [10.0, 20.0])})
    >>> window_mask(ds, (10, 20)).tolist()
    [False, True]
    """
    start, end = time_bins(scoreset)
    if window is None:
        return np.ones(start.shape, dtype=bool)
    lo, hi = float(window[0]), float(window[1])
    mask = (start >= lo) & (end <= hi)
    if not mask.any():
        raise NeurofitError(
            f"time window {lo:g}-{hi:g} ms holds no whole time bin of ScoreSet {label(scoreset)!r} "
            f"(its bins span {start.min():g}-{end.max():g} ms)"
        )
    return mask
