"""The recording contract: neural responses as a labelled ``xarray.DataArray``.

A recording is a DataArray named ``rates`` with dims ``(presentation, neuroid, time_bin)``:

* ``presentation``: ``stimulus_id`` (str), ``repetition`` (int); optional ``object_name``,
  ``category_name``, ``variation``, ... Trial-level and repetition-averaged forms both exist; averaging is
  :func:`average_repetitions`, not a copy on disk.
* ``neuroid``: ``neuroid_id`` (str, unique), ``region`` (``V1``, ``V2``, ``V4``, ``IT``); optional
  ``animal``, ``arr``, ``subregion``.
* ``time_bin``: ``time_bin_start``, ``time_bin_end`` in ms after stimulus onset.
* ``attrs``: ``identifier``, ``stimulus_set_identifier``, ``units``, ``citation``, ``license``,
  ``source_sha256``.

Missing trials are NaN and are ignored, never imputed. This is the BrainIO/Brain-Score NeuroidAssembly
layout with the MultiIndex flattened into plain coordinates (which NetCDF stores losslessly).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from neurofit.errors import ValidationError

if TYPE_CHECKING:
    from neurofit.data.stimuli import StimulusSet

DIMS = ("presentation", "neuroid", "time_bin")
REQUIRED_COORDS = {
    "presentation": ("stimulus_id", "repetition"),
    "neuroid": ("neuroid_id", "region"),
    "time_bin": ("time_bin_start", "time_bin_end"),
}
REQUIRED_ATTRS = ("identifier", "stimulus_set_identifier", "units", "citation", "license", "source_sha256")
REGIONS = ("V1", "V2", "V4", "IT")
#: no response value may be larger in magnitude (spike counts and rates are far below; squares of larger
#: values overflow float32, which the GPU engine uses, and sums of their squares overflow float64 near 1e154)
MAX_ABS_VALUE = 1e12
#: ``units`` values meaning spike counts, which cannot be negative
COUNT_UNITS = ("counts", "count", "spike counts", "spikes")


def make_recording(
    rates: np.ndarray,
    *,
    stimulus_id: Sequence[str],
    repetition: Sequence[int],
    neuroid_id: Sequence[str],
    region: Sequence[str] | str,
    time_bin_start: Sequence[float],
    time_bin_end: Sequence[float],
    identifier: str,
    stimulus_set_identifier: str,
    units: str = "counts",
    citation: str = "",
    license: str = "",
    source_sha256: str = "",
    presentation_coords: Mapping[str, Sequence[Any]] | None = None,
    neuroid_coords: Mapping[str, Sequence[Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """Build a recording ``(presentation, neuroid, time_bin)`` with the contract's coords and attrs.

    Example
    -------
    >>> rec = make_recording(np.zeros((4, 2, 1)), stimulus_id=["a", "a", "b", "b"], repetition=[0, 1, 0, 1],
    ...                      neuroid_id=["n0", "n1"], region="IT", time_bin_start=[70], time_bin_end=[170],
    ...                      identifier="toy", stimulus_set_identifier="toy-stimuli")
    >>> rec.dims, rec.sizes["presentation"]
    (('presentation', 'neuroid', 'time_bin'), 4)
    """
    rates = np.asarray(rates)
    if rates.ndim != 3:
        raise ValidationError(f"rates must be 3-d (presentation, neuroid, time_bin), got shape {rates.shape}")
    n_pres, n_neur, n_bins = rates.shape
    if isinstance(region, str):
        region = [region] * n_neur
    coords: dict[str, tuple[str, np.ndarray]] = {
        "stimulus_id": ("presentation", np.asarray(stimulus_id, dtype=str)),
        "repetition": ("presentation", np.asarray(repetition, dtype=np.int64)),
        "neuroid_id": ("neuroid", np.asarray(neuroid_id, dtype=str)),
        "region": ("neuroid", np.asarray(region, dtype=str)),
        "time_bin_start": ("time_bin", np.asarray(time_bin_start, dtype=np.float64)),
        "time_bin_end": ("time_bin", np.asarray(time_bin_end, dtype=np.float64)),
    }
    for name, values in (presentation_coords or {}).items():
        coords[name] = ("presentation", np.asarray(values))
    for name, values in (neuroid_coords or {}).items():
        coords[name] = ("neuroid", np.asarray(values))
    expected = {"presentation": n_pres, "neuroid": n_neur, "time_bin": n_bins}
    for name, (dim, values) in coords.items():
        if values.shape != (expected[dim],):
            raise ValidationError(
                f"coordinate {name!r} has {values.shape[0] if values.ndim else 0} values but dim {dim!r} "
                f"has {expected[dim]}"
            )
    all_attrs = {
        "identifier": identifier,
        "stimulus_set_identifier": stimulus_set_identifier,
        "units": units,
        "citation": citation,
        "license": license,
        "source_sha256": source_sha256,
        **dict(attrs or {}),
    }
    return xr.DataArray(rates, dims=DIMS, coords=coords, name="rates", attrs=all_attrs)


def validate(recording: xr.DataArray, stimulus_set: StimulusSet | None = None) -> None:
    """Check every rule of the recording contract; raise :class:`ValidationError` naming the first violation.

    Example
    -------
    >>> rec = make_recording(np.ones((2, 1, 1)), stimulus_id=["a", "b"], repetition=[0, 0], neuroid_id=["n0"],
    ...                      region="V4", time_bin_start=[0], time_bin_end=[10], identifier="toy",
    ...                      stimulus_set_identifier="toy")
    >>> validate(rec)
    >>> validate(rec.assign_coords(neuroid_id=("neuroid", ["n0"]), region=("neuroid", ["V9"])))
    Traceback (most recent call last):
    ...
    neurofit.errors.ValidationError: coordinate 'region' has value 'V9' at neuroid 0; allowed: V1, V2, V4, IT
    """
    if not isinstance(recording, xr.DataArray):
        raise ValidationError(f"a recording must be an xarray.DataArray, got {type(recording).__name__}")
    if tuple(recording.dims) != DIMS:
        raise ValidationError(f"recording dims must be {DIMS}, got {tuple(recording.dims)}")
    if not (np.issubdtype(recording.dtype, np.floating) or np.issubdtype(recording.dtype, np.integer)):
        raise ValidationError(f"recording values must be numeric (float or int), got dtype {recording.dtype}")
    for dim, what in (("presentation", "presentations"), ("neuroid", "sites (neuroids)"), ("time_bin", "time bins")):
        if recording.sizes[dim] == 0:
            raise ValidationError(f"recording has no {what}: dim {dim!r} has length 0")
    averaged = bool(recording.attrs.get("repetitions_averaged", 0))
    for dim, names in REQUIRED_COORDS.items():
        for name in names:
            if name == "repetition" and averaged and name not in recording.coords:
                continue  # the repetition-averaged form: one presentation per stimulus, checked below
            if name not in recording.coords:
                raise ValidationError(f"recording is missing coordinate {name!r} (along {dim!r})")
            if recording.coords[name].dims != (dim,):
                raise ValidationError(
                    f"coordinate {name!r} must lie along {dim!r}, got dims {recording.coords[name].dims}"
                )
    for name in ("stimulus_id", "neuroid_id", "region"):
        values = recording.coords[name].values
        if values.dtype.kind not in "UO" or not all(isinstance(v, str) for v in values.tolist()):
            raise ValidationError(f"coordinate {name!r} must hold strings, got dtype {values.dtype}")
    if "repetition" not in recording.coords:
        ids = pd.Index(recording.coords["stimulus_id"].values)
        if ids.has_duplicates:
            raise ValidationError(
                f"stimulus_id {str(ids[ids.duplicated()][0])!r} appears more than once in a repetition-averaged "
                "recording (no 'repetition' coordinate)"
            )
    elif not np.issubdtype(recording.coords["repetition"].dtype, np.integer):
        raise ValidationError(f"coordinate 'repetition' must be integer, got {recording.coords['repetition'].dtype}")
    for name in ("time_bin_start", "time_bin_end"):
        if not np.issubdtype(recording.coords[name].dtype, np.number):
            raise ValidationError(f"coordinate {name!r} must be numeric (ms), got {recording.coords[name].dtype}")
    regions = recording.coords["region"].values
    for i, value in enumerate(regions.tolist()):
        if value not in REGIONS:
            raise ValidationError(
                f"coordinate 'region' has value {value!r} at neuroid {i}; allowed: {', '.join(REGIONS)}"
            )
    ids = pd.Index(recording.coords["neuroid_id"].values)
    if ids.has_duplicates:
        raise ValidationError(f"duplicate neuroid_id {str(ids[ids.duplicated()][0])!r}")
    repetition = recording.coords["repetition"].values if "repetition" in recording.coords else 0
    pres = pd.MultiIndex.from_arrays(
        [recording.coords["stimulus_id"].values, np.broadcast_to(repetition, recording.sizes["presentation"])]
    )
    if pres.has_duplicates:
        stim, rep = (str(v) for v in pres[pres.duplicated()][0])
        raise ValidationError(f"presentation (stimulus_id={stim!r}, repetition={rep}) appears more than once")
    starts = recording.coords["time_bin_start"].values.astype(float)
    ends = recording.coords["time_bin_end"].values.astype(float)
    for i, (start, end) in enumerate(zip(starts, ends)):
        if not (np.isfinite(start) and np.isfinite(end)):
            raise ValidationError(f"time bin {i} ({start:g}-{end:g} ms) must have finite start and end")
        if not end > start:
            raise ValidationError(f"time bin {i} ({start:g}-{end:g} ms) must end after it starts")
    for i in range(1, len(starts)):
        if not starts[i] > starts[i - 1]:
            raise ValidationError(
                f"time_bin_start must increase: bin {i} starts at {starts[i]:g} ms after bin {i - 1} "
                f"at {starts[i - 1]:g} ms"
            )
        if starts[i] < ends[i - 1]:
            raise ValidationError(
                f"time bins overlap: bin {i - 1} ({starts[i - 1]:g}-{ends[i - 1]:g} ms) and bin {i} "
                f"({starts[i]:g}-{ends[i]:g} ms)"
            )
    for key in REQUIRED_ATTRS:
        if key not in recording.attrs:
            raise ValidationError(f"recording is missing attribute {key!r}")
    for key in ("identifier", "units"):
        if not str(recording.attrs[key]).strip():
            raise ValidationError(f"recording attribute {key!r} must not be empty")
    values = recording.values
    if np.issubdtype(values.dtype, np.floating):
        if np.isinf(values).any():
            where = np.argwhere(np.isinf(values))[0]
            raise ValidationError(
                f"recording has an infinite value at neuroid {str(ids[where[1]])!r}, presentation {where[0]}, "
                f"time bin {where[2]}"
            )
        all_nan = np.isnan(values).all(axis=(0, 2))
        if all_nan.any():
            raise ValidationError(f"site {str(ids[np.argmax(all_nan)])!r} has no data (all values are NaN)")
    # extremes first (no temporary the size of the data); locate the culprit only when there is one
    finite_max = float(np.fmax.reduce(values, axis=None))
    finite_min = float(np.fmin.reduce(values, axis=None))
    if max(finite_max, -finite_min) > MAX_ABS_VALUE:
        where = np.argwhere(np.abs(values) > MAX_ABS_VALUE)[0]
        raise ValidationError(
            f"recording value {values[tuple(where)]:.3g} at neuroid {str(ids[where[1]])!r}, presentation {where[0]}, "
            f"time bin {where[2]} is larger in magnitude than {MAX_ABS_VALUE:g}; no spike count or rate is, so "
            "the units are wrong: rescale the data"
        )
    if str(recording.attrs.get("units", "")).strip().lower() in COUNT_UNITS and finite_min < 0:
        where = np.argwhere(values < 0)[0]
        raise ValidationError(
            f"recording has units {recording.attrs['units']!r} but a negative value {values[tuple(where)]:g} at "
            f"neuroid {str(ids[where[1]])!r}, presentation {where[0]}, time bin {where[2]}; spike counts "
            "cannot be negative (baseline-subtracted data are rates: set units accordingly)"
        )
    if stimulus_set is not None:
        known = set(stimulus_set.stimulus_ids)
        for stim in pd.unique(recording.coords["stimulus_id"].values).tolist():
            if stim not in known:
                raise ValidationError(
                    f"stimulus_id {stim!r} is in the recording but not in the stimulus set "
                    f"{stimulus_set.identifier!r}"
                )


def _group_codes(recording: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Integer code per presentation (stimuli numbered by first appearance) and the unique ids."""
    codes, uniques = pd.factorize(recording.coords["stimulus_id"].values, sort=False)
    return codes, np.asarray(uniques, dtype=str)


def average_repetitions(recording: xr.DataArray) -> xr.DataArray:
    """Average over repetitions (NaN trials ignored): one presentation per ``stimulus_id``.

    Stimuli keep their order of first appearance; presentation coords that are constant within every
    stimulus are kept, ``repetition`` is dropped. A stimulus whose trials are all NaN stays NaN.

    Example
    -------
    >>> rec = make_recording(np.array([1., 3., 5., np.nan]).reshape(4, 1, 1), stimulus_id=["a", "a", "b", "b"],
    ...                      repetition=[0, 1, 0, 1], neuroid_id=["n0"], region="IT", time_bin_start=[0],
    ...                      time_bin_end=[10], identifier="toy", stimulus_set_identifier="toy")
    >>> average_repetitions(rec).values.ravel().tolist()
    [2.0, 5.0]
    """
    codes, uniques = _group_codes(recording)
    values = recording.values
    # sort presentations by stimulus once, then sum each stimulus's contiguous run (np.add.at is ~20x slower)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(len(uniques)))
    ordered = values[order]
    runs = np.diff(np.append(starts, len(codes)))
    if len(runs) and np.all(runs == runs[0]):
        # equal repetition counts (the usual case): a contiguous reshape-and-sum beats reduceat ~10x
        ordered = ordered.reshape(len(runs), int(runs[0]), *ordered.shape[1:])
        if np.issubdtype(ordered.dtype, np.integer):
            sums = ordered.sum(axis=1, dtype=np.float64)
            counts = np.full((1,) * sums.ndim, runs[0])
        else:
            finite = ~np.isnan(ordered)
            sums = np.where(finite, ordered, 0.0).sum(axis=1, dtype=np.float64)
            counts = finite.sum(axis=1)
    elif np.issubdtype(ordered.dtype, np.integer):  # counts: no missing trials possible
        sums = np.add.reduceat(ordered, starts, axis=0, dtype=np.float64)
        counts = runs.reshape(-1, *([1] * (ordered.ndim - 1)))
    else:
        finite = ~np.isnan(ordered)
        sums = np.add.reduceat(np.where(finite, ordered, 0.0), starts, axis=0, dtype=np.float64)
        counts = np.add.reduceat(finite, starts, axis=0, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    first = order[starts]
    coords: dict[str, Any] = {"stimulus_id": ("presentation", uniques)}
    for name, coord in recording.coords.items():
        if coord.dims != ("presentation",) or name in ("stimulus_id", "repetition"):
            continue
        vals = coord.values
        firsts = vals[first]
        if _equal_with_nan(vals, firsts[codes]):
            coords[name] = ("presentation", firsts)
    for name, coord in recording.coords.items():
        if coord.dims and coord.dims[0] in ("neuroid", "time_bin"):
            coords[name] = coord
    attrs = dict(recording.attrs)
    attrs["repetitions_averaged"] = 1
    return xr.DataArray(means, dims=DIMS, coords=coords, name=recording.name, attrs=attrs)


def _equal_with_nan(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))
    return bool(np.all(a == b))


def trial_array(recording: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Trials as a NaN-padded array ``[n_stimuli, max_repetitions, n_neuroids, n_bins]`` plus stimulus ids.

    A stimulus's trials fill slots in their order of appearance (unequal counts are padded with NaN);
    stimuli are ordered by first appearance, as in :func:`average_repetitions`.

    Example
    -------
    >>> rec = make_recording(np.arange(3.).reshape(3, 1, 1), stimulus_id=["a", "a", "b"], repetition=[0, 1, 0],
    ...                      neuroid_id=["n0"], region="IT", time_bin_start=[0], time_bin_end=[10],
    ...                      identifier="toy", stimulus_set_identifier="toy")
    >>> trials, ids = trial_array(rec)
    >>> trials.shape, ids.tolist(), bool(np.isnan(trials[1, 1, 0, 0]))
    ((2, 2, 1, 1), ['a', 'b'], True)
    """
    codes, uniques = _group_codes(recording)
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.searchsorted(sorted_codes, np.arange(len(uniques)))
    slot = np.empty_like(codes)
    slot[order] = np.arange(len(codes)) - starts[sorted_codes]
    max_reps = int(slot.max()) + 1 if len(slot) else 0
    values = np.asarray(recording.values, dtype=np.float64)
    out = np.full((len(uniques), max_reps, *values.shape[1:]), np.nan)
    out[codes, slot] = values
    return out, uniques


def select(
    recording: xr.DataArray,
    region: str | Sequence[str] | None = None,
    time_bins: tuple[float, float] | Sequence[tuple[float, float]] | None = None,
) -> xr.DataArray:
    """Select sites by region and time bins by window.

    ``time_bins`` is either one ``(start_ms, end_ms)`` window (bins lying wholly inside it are kept) or a
    list of exact ``(start, end)`` bins. An empty selection is an error naming what was asked.

    Example
    -------
    >>> rec = make_recording(np.zeros((1, 2, 3)), stimulus_id=["a"], repetition=[0], neuroid_id=["n0", "n1"],
    ...                      region=["V4", "IT"], time_bin_start=[0, 10, 20], time_bin_end=[10, 20, 30],
    ...                      identifier="toy", stimulus_set_identifier="toy")
    >>> select(rec, region="IT", time_bins=(10, 30)).shape
    (1, 1, 2)
    """
    out = recording
    if region is not None:
        wanted = [region] if isinstance(region, str) else list(region)
        mask = np.isin(out.coords["region"].values, wanted)
        if not mask.any():
            present = sorted(set(out.coords["region"].values.tolist()))
            raise ValidationError(f"no sites in region(s) {wanted}; the recording has {present}")
        out = out.isel(neuroid=np.flatnonzero(mask))
    if time_bins is not None:
        starts = out.coords["time_bin_start"].values
        ends = out.coords["time_bin_end"].values
        if len(time_bins) == 2 and np.isscalar(time_bins[0]):
            lo, hi = float(time_bins[0]), float(time_bins[1])  # type: ignore[arg-type]
            mask = (starts >= lo) & (ends <= hi)
            if not mask.any():
                raise ValidationError(f"no time bins lie within {lo:g}-{hi:g} ms")
            idx = np.flatnonzero(mask)
        else:
            idx = []
            for start, end in time_bins:  # type: ignore[misc]
                hit = np.flatnonzero((starts == start) & (ends == end))
                if not len(hit):
                    raise ValidationError(f"time bin {start:g}-{end:g} ms is not in the recording")
                idx.append(int(hit[0]))
        out = out.isel(time_bin=idx)
    return out


def bin_spikes(
    spikes: np.ndarray | Sequence[np.ndarray],
    bin_ms: float,
    start_ms: float,
    end_ms: float,
    *,
    onset_ms: float = 0.0,
    sample_ms: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count spikes in bins ``[start, start + bin), ...`` up to ``end_ms`` (ms after stimulus onset).

    ``spikes`` is either a numeric raster ``[..., n_samples]`` (sample ``k`` covers recording time
    ``[k * sample_ms, (k + 1) * sample_ms)`` and the stimulus appears at recording time ``onset_ms``), or a
    sequence of 1-d arrays of spike times in recording ms (one per trial). Returns ``(counts [..., n_bins],
    bin_starts, bin_ends)`` with bin edges relative to onset.

    Example
    -------
    >>> raster = np.zeros((1, 100), dtype=np.uint8); raster[0, [50, 55, 61]] = 1
    >>> counts, starts, ends = bin_spikes(raster, 10, 0, 20, onset_ms=50)
    >>> counts.tolist(), starts.tolist(), ends.tolist()
    ([[2, 1]], [0.0, 10.0], [10.0, 20.0])
    """
    if bin_ms <= 0:
        raise ValidationError(f"bin width must be positive, got {bin_ms} ms")
    n_bins = (end_ms - start_ms) / bin_ms
    if n_bins < 1 or abs(n_bins - round(n_bins)) > 1e-9:
        raise ValidationError(
            f"the window {start_ms:g}-{end_ms:g} ms is not a whole number of {bin_ms:g} ms bins"
        )
    n_bins = int(round(n_bins))
    starts = start_ms + bin_ms * np.arange(n_bins, dtype=np.float64)
    ends = starts + bin_ms
    if isinstance(spikes, np.ndarray) and spikes.dtype != object:
        per_bin = bin_ms / sample_ms
        if abs(per_bin - round(per_bin)) > 1e-9:
            raise ValidationError(f"bin width {bin_ms:g} ms is not a multiple of the {sample_ms:g} ms samples")
        first = (start_ms + onset_ms) / sample_ms
        if abs(first - round(first)) > 1e-9:
            raise ValidationError(f"bin start {start_ms:g} ms does not fall on a {sample_ms:g} ms sample edge")
        first, per_bin = int(round(first)), int(round(per_bin))
        last = first + n_bins * per_bin
        if first < 0 or last > spikes.shape[-1]:
            covered = (-onset_ms, spikes.shape[-1] * sample_ms - onset_ms)
            raise ValidationError(
                f"bins {start_ms:g}-{end_ms:g} ms fall outside the raster, which covers "
                f"{covered[0]:g}-{covered[1]:g} ms after onset"
            )
        window = np.asarray(spikes[..., first:last], dtype=np.int64)
        counts = window.reshape(*spikes.shape[:-1], n_bins, per_bin).sum(axis=-1)
        return counts, starts, ends
    counts = np.zeros((len(spikes), n_bins), dtype=np.int64)
    for trial, times in enumerate(spikes):
        # half-open bins: a spike exactly at a bin's end belongs to the next bin
        index = np.floor((np.asarray(times, dtype=float) - onset_ms - start_ms) / bin_ms).astype(np.int64)
        index = index[(index >= 0) & (index < n_bins)]
        counts[trial] = np.bincount(index, minlength=n_bins)
    return counts, starts, ends
