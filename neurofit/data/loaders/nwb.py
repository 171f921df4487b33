"""A recording from an NWB file: spike times of a Units table binned around stimulus presentations.

Neurodata Without Borders (NWB 2, the format of DANDI) stores sorted spikes in a ``Units`` table
(``spike_times`` per unit, optionally ``obs_intervals``: when the unit was observed, and ``electrodes`` or
``electrode_group``: where it was recorded) and what was shown when in ``TimeIntervals`` tables (``trials``,
``epochs`` or any other table under ``intervals``, one row per presentation with ``start_time``,
``stop_time`` in seconds and a column naming the stimulus). This module turns them into the recording
contract:

* presentations: the table's rows in order of ``start_time``; ``repetition`` counts the presentations of
  the same stimulus (0, 1, ...); the table's other scalar columns become presentation coordinates;
* neuroids: the units (``neuroid_id`` = the unit's id), ``region`` from the electrodes table's ``location``
  of the unit's first electrode (or its electrode group's location), mapped through ``region=`` when the
  file's names are not neurofit's (``V1``, ``V2``, ``V4``, ``IT``);
* time bins: half-open ``[start, start + bin)`` windows in ms after each presentation's ``start_time``;
  a spike exactly on an edge belongs to the later bin, as in :func:`neurofit.data.recording.bin_spikes`.

Missing trials are NaN, never zero: a presentation whose window is not wholly inside one of a unit's
``obs_intervals`` is missing for that unit, and one that overlaps the file's ``invalid_times`` is missing for
every unit.

``pynwb`` is an optional dependency (``pip install "neurofit[nwb]"``). An NWB file is untrusted input: it is
read with pynwb's own reader (the file's cached schema is data, never code), and the binned array is bounded
by :data:`MAX_CELLS`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurofit.data.recording import REGIONS, make_recording, validate
from neurofit.errors import NeurofitError, ValidationError

# stimulus id columns looked for, in this order, when none is named
STIMULUS_COLUMNS = ("stimulus_id", "image_id", "stimulus_name", "image_name", "stimulus", "image")
# the binned array (presentations x units x bins, float64) is refused above this many cells (4 GiB)
MAX_CELLS = 2**29
_CONTRACT_PRESENTATION = ("stimulus_id", "repetition")


def _require_pynwb() -> Any:
    try:
        import pynwb
    except ImportError as err:
        raise NeurofitError('reading NWB files needs pynwb: pip install "neurofit[nwb]"') from err
    return pynwb


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _strings(values: Any) -> np.ndarray:
    return np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values], dtype=str)


def _units_table(nwb: Any, name: str, path: Path) -> Any:
    """The Units table called ``name``: the file's main ``units`` or one in a processing module."""
    from pynwb.misc import Units

    found: dict[str, Any] = {}
    if nwb.units is not None:
        found[nwb.units.name] = nwb.units
    for module_name, module in nwb.processing.items():
        for interface_name, interface in module.data_interfaces.items():
            if isinstance(interface, Units):
                found[f"processing/{module_name}/{interface_name}"] = interface
                found.setdefault(interface_name, interface)
    if name in found:
        return found[name]
    if not found:
        raise ValidationError(f"{path}: no units table (the file holds no sorted spikes: no Units table "
                              "under 'units' or in a processing module)")
    raise ValidationError(f"{path}: no units table {name!r}; its units tables: {', '.join(sorted(found))}")


def _stimulus_table(nwb: Any, name: str, path: Path) -> Any:
    """The TimeIntervals table called ``name`` (``trials``, ``epochs`` or any table under ``intervals``)."""
    tables = dict(nwb.intervals.items()) if nwb.intervals else {}
    for attr in ("trials", "epochs"):
        table = getattr(nwb, attr, None)
        if table is not None:
            tables.setdefault(attr, table)
    if name in tables:
        return tables[name]
    if not tables:
        raise ValidationError(f"{path}: no stimulus table (no trials, epochs or other TimeIntervals table, so "
                              "nothing says when which stimulus was shown)")
    raise ValidationError(f"{path}: no stimulus table {name!r}; its interval tables: {', '.join(sorted(tables))}")


def _column(table: Any, name: str, path: Path, what: str) -> np.ndarray:
    from hdmf.common.table import VectorIndex

    if name not in table.colnames and name not in ("start_time", "stop_time"):
        raise ValidationError(f"{path}: {what} {table.name!r} has no column {name!r}; its columns: "
                              f"{', '.join(table.colnames)}")
    column = table[name]
    if isinstance(column, VectorIndex):
        raise ValidationError(f"{path}: column {name!r} of {what} {table.name!r} holds a list per row, not one "
                              "value")
    return np.asarray(column.data[:])


def _scalar_columns(table: Any, skip: set[str]) -> dict[str, np.ndarray]:
    """The table's columns with one number, string or bool per row (lists and references are left out)."""
    from hdmf.common.table import DynamicTableRegion, VectorData, VectorIndex

    out = {}
    for name in table.colnames:
        column = table[name]
        if name in skip or isinstance(column, (VectorIndex, DynamicTableRegion)) or not isinstance(column, VectorData):
            continue
        values = np.asarray(column.data[:])
        if values.ndim != 1:
            continue
        if values.dtype.kind in "SO":
            values = _strings(values)
        if values.dtype.kind not in "biufU":
            continue
        out[name] = values
    return out


def _regions(units: Any, region: str | Mapping[str, str | None] | None, path: Path
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit: the contract region ('' to drop the unit), the file's location, and the electrode index."""
    from hdmf.common.table import VectorIndex

    n = len(units.id)
    electrode = np.full(n, -1, dtype=np.int64)
    if isinstance(region, str):
        if region not in REGIONS:
            raise ValidationError(f"region {region!r} is not one of {', '.join(REGIONS)}")
        return np.full(n, region), np.full(n, ""), electrode
    if "electrodes" in units.colnames:
        column = units["electrodes"]
        if isinstance(column, VectorIndex):
            index = np.asarray(column.data[:], dtype=np.int64)  # end of each unit's run of electrodes
            column = column.target
        else:
            index = np.arange(1, n + 1)
        rows = np.asarray(column.data[:], dtype=np.int64)
        starts = np.concatenate([[0], index[:-1]])
        if np.any(index - starts < 1):
            bad = int(np.flatnonzero(index - starts < 1)[0])
            raise ValidationError(f"{path}: unit {units.id[bad]} of units table {units.name!r} lists no electrode, "
                                  "so its region is unknown; give region=...")
        electrode = rows[starts]
        table = column.table
        if "location" not in table.colnames:
            raise ValidationError(f"{path}: electrodes table {table.name!r} has no column 'location', so the "
                                  "units' regions are unknown; give region=...")
        locations = _strings(np.asarray(table["location"].data[:]))[electrode]
    elif "electrode_group" in units.colnames:
        locations = _strings([group.location for group in units["electrode_group"].data[:]])
    else:
        raise ValidationError(f"{path}: units table {units.name!r} links no electrodes (no column 'electrodes' or "
                              "'electrode_group'), so the units' regions are unknown; give region=...")
    mapping = dict(region or {})
    out = []
    for i, location in enumerate(locations.tolist()):
        if location in mapping:
            value = mapping[location]
            out.append("" if value is None or value == "" else str(value))
        elif location in REGIONS:
            out.append(location)
        elif location.upper() in REGIONS:
            out.append(location.upper())
        else:
            raise ValidationError(
                f"{path}: unit {units.id[i]} was recorded at location {location!r}, which is not a region neurofit "
                f"scores ({', '.join(REGIONS)}); map it with region={{{location!r}: 'IT'}} (or None to leave "
                "those units out)")
    regions = np.asarray(out, dtype=str)
    for value in sorted(set(regions.tolist()) - {""}):
        if value not in REGIONS:
            raise ValidationError(f"region {value!r} (from region=) is not one of {', '.join(REGIONS)}")
    return regions, locations, electrode


def _spike_trains(units: Any, path: Path) -> list[np.ndarray]:
    if "spike_times" not in units.colnames:
        raise ValidationError(f"{path}: units table {units.name!r} has no column 'spike_times'")
    index = np.asarray(units["spike_times"].data[:], dtype=np.int64)
    times = np.asarray(units["spike_times"].target.data[:], dtype=np.float64)
    if not np.isfinite(times).all():
        raise ValidationError(f"{path}: column 'spike_times' of units table {units.name!r} holds NaN or Inf")
    starts = np.concatenate([[0], index[:-1]])
    return [np.sort(times[a:b]) for a, b in zip(starts, index)]


def _observed(units: Any, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """``[n_presentations, n_units]``: True where the window lies wholly inside one of the unit's obs_intervals."""
    n_units = len(units.id)
    if "obs_intervals" not in units.colnames:
        return np.ones((len(lo), n_units), dtype=bool)
    index = np.asarray(units["obs_intervals"].data[:], dtype=np.int64)
    intervals = np.asarray(units["obs_intervals"].target.data[:], dtype=np.float64).reshape(-1, 2)
    starts = np.concatenate([[0], index[:-1]])
    out = np.zeros((len(lo), n_units), dtype=bool)
    for u, (a, b) in enumerate(zip(starts, index)):
        for begin, end in intervals[a:b]:
            out[:, u] |= (lo >= begin) & (hi <= end)
    return out


def _invalid(nwb: Any, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """True where the window overlaps one of the file's ``invalid_times``."""
    out = np.zeros(len(lo), dtype=bool)
    table = nwb.invalid_times
    if table is None or not len(table):
        return out
    for begin, end in zip(np.asarray(table["start_time"].data[:]), np.asarray(table["stop_time"].data[:])):
        out |= (lo < end) & (hi > begin)
    return out


def recording_from_nwb(
    path: str | os.PathLike[str],
    *,
    units_table: str = "units",
    stimulus_table: str = "trials",
    stimulus_column: str | None = None,
    bin_ms: float = 10.0,
    window_ms: tuple[float, float] | None = None,
    region: str | Mapping[str, str | None] | None = None,
    units: str = "counts",
    identifier: str | None = None,
    stimulus_set_identifier: str = "",
    citation: str | None = None,
    license: str = "",
) -> xr.DataArray:
    """Bin an NWB file's spike times around its stimulus presentations into a recording.

    Parameters
    ----------
    path : the ``.nwb`` file (HDF5).
    units_table : the Units table: ``units`` (the file's main one) or the name of one in a processing module.
    stimulus_table : the TimeIntervals table of presentations: ``trials``, ``epochs`` or a table under
        ``intervals``.
    stimulus_column : its column of stimulus ids; default the first of :data:`STIMULUS_COLUMNS` it has.
    bin_ms : bin width in ms (any positive width that tiles the window).
    window_ms : ``(start, end)`` in ms after each presentation's ``start_time``; default from 0 to the
        shortest presentation (``stop_time - start_time``), cut to whole bins.
    region : one region for every unit, or a mapping from the file's electrode locations to regions
        (a location mapped to ``None`` leaves its units out); default the location itself.
    units : ``"counts"`` (spikes per bin) or ``"spikes/s"``.
    identifier : default the NWB file's ``identifier``.

    Returns
    -------
    DataArray ``(presentation, neuroid, time_bin)``, NaN where a unit was not observed or the time is
    invalid.

    Raises
    ------
    ValidationError
        Naming the file and the missing table or column (units table, ``spike_times``, stimulus table,
        stimulus id column, electrode location).

    Example
    -------
    >>> rec = recording_from_nwb("session.nwb", stimulus_table="presentations",
    ...                          window_ms=(0, 300), region={"TEO": "IT"})  # doctest: +SKIP
    >>> rec.sizes  # doctest: +SKIP
    Frozen({'presentation': 3200, 'neuroid': 96, 'time_bin': 30})
    """
    pynwb = _require_pynwb()
    path = Path(path)
    if units not in ("counts", "spikes/s"):
        raise ValidationError(f"units must be 'counts' or 'spikes/s', got {units!r}")
    if not bin_ms > 0:
        raise ValidationError(f"bin width must be positive, got {bin_ms} ms")
    if not path.is_file():
        raise NeurofitError(f"file not found: {path}")
    try:
        io = pynwb.NWBHDF5IO(str(path), "r", load_namespaces=True)
    except Exception as err:  # h5py and hdmf raise many types for a file that is not NWB
        raise NeurofitError(f"cannot read {path} as an NWB file: {_first_line(err)}") from err
    with io:
        try:
            nwb = io.read()
        except Exception as err:
            raise NeurofitError(f"cannot read {path} as an NWB file: {_first_line(err)}") from err
        recording = _bin_file(nwb, path, units_table, stimulus_table, stimulus_column, float(bin_ms), window_ms,
                              region, units, identifier, stimulus_set_identifier, citation, license)
    validate(recording)
    return recording


def _bin_file(nwb: Any, path: Path, units_table: str, stimulus_table: str, stimulus_column: str | None,
              bin_ms: float, window_ms: tuple[float, float] | None, region: Any, units: str,
              identifier: str | None, stimulus_set_identifier: str, citation: str | None, license: str
              ) -> xr.DataArray:
    unit_rows = _units_table(nwb, units_table, path)
    table = _stimulus_table(nwb, stimulus_table, path)
    if stimulus_column is None:
        stimulus_column = next((c for c in STIMULUS_COLUMNS if c in table.colnames), None)
        if stimulus_column is None:
            raise ValidationError(
                f"{path}: stimulus table {table.name!r} has no stimulus id column (looked for "
                f"{', '.join(STIMULUS_COLUMNS)}); its columns: {', '.join(table.colnames)}; "
                "name one with stimulus_column=...")
    ids = _strings(_column(table, stimulus_column, path, "stimulus table"))
    onset = np.asarray(_column(table, "start_time", path, "stimulus table"), dtype=np.float64)
    stop = np.asarray(_column(table, "stop_time", path, "stimulus table"), dtype=np.float64)
    if not len(ids):
        raise ValidationError(f"{path}: stimulus table {table.name!r} has no rows")
    if not np.isfinite(onset).all():
        raise ValidationError(f"{path}: column 'start_time' of stimulus table {table.name!r} holds NaN or Inf")

    if window_ms is None:
        shortest = float(np.nanmin(stop - onset)) * 1000.0
        n_bins = int(np.floor(shortest / bin_ms + 1e-9))
        if n_bins < 1:
            raise ValidationError(f"{path}: the shortest presentation in {table.name!r} lasts {shortest:g} ms, "
                                  f"less than one {bin_ms:g} ms bin; give window_ms=(start, end)")
        window_ms = (0.0, n_bins * bin_ms)
    start_ms, end_ms = float(window_ms[0]), float(window_ms[1])
    n_bins_f = (end_ms - start_ms) / bin_ms
    if n_bins_f < 1 - 1e-9 or abs(n_bins_f - round(n_bins_f)) > 1e-9:
        raise ValidationError(f"the window {start_ms:g}-{end_ms:g} ms is not a whole number of {bin_ms:g} ms bins")
    n_bins = int(round(n_bins_f))

    regions, locations, electrode = _regions(unit_rows, region, path)
    keep = np.flatnonzero(regions != "")
    if not len(keep):
        raise ValidationError(f"{path}: region= leaves no unit of units table {unit_rows.name!r}")
    cells = len(ids) * len(keep) * n_bins
    if cells > MAX_CELLS:
        raise ValidationError(f"{path}: {len(ids)} presentations x {len(keep)} units x {n_bins} bins = {cells} "
                              f"values exceeds the limit of {MAX_CELLS}; use wider bins, a shorter window or "
                              "fewer units (region=)")

    order = np.argsort(onset, kind="stable")
    ids, onset = ids[order], onset[order]
    edges_ms = start_ms + bin_ms * np.arange(n_bins + 1, dtype=np.float64)
    edges_s = onset[:, None] + edges_ms[None, :] / 1000.0  # [P, B + 1]
    trains = _spike_trains(unit_rows, path)
    observed = _observed(unit_rows, edges_s[:, 0], edges_s[:, -1]) & ~_invalid(nwb, edges_s[:, 0],
                                                                               edges_s[:, -1])[:, None]
    values = np.empty((len(ids), len(keep), n_bins), dtype=np.float64)
    for j, u in enumerate(keep):
        # half-open bins [lo, hi): the number of spikes before hi minus the number before lo
        values[:, j] = np.diff(np.searchsorted(trains[u], edges_s, side="left"), axis=1)
    values[~observed[:, keep]] = np.nan
    if units == "spikes/s":
        values *= 1000.0 / bin_ms

    repetition = pd.Series(ids).groupby(ids).cumcount().to_numpy()
    skip = {stimulus_column, *_CONTRACT_PRESENTATION}
    extra = {name: column[order] for name, column in _scalar_columns(table, skip).items()}
    extra["start_time"] = onset
    unit_ids = np.asarray(unit_rows.id.data[:])
    missing = int(np.isnan(values[:, :, 0]).sum())
    return make_recording(
        values,
        stimulus_id=ids,
        repetition=repetition,
        neuroid_id=[str(u) for u in unit_ids[keep]],
        region=regions[keep],
        time_bin_start=edges_ms[:-1],
        time_bin_end=edges_ms[1:],
        identifier=identifier or str(nwb.identifier),
        stimulus_set_identifier=stimulus_set_identifier,
        units=units,
        citation=citation if citation is not None else "; ".join(_strings(nwb.related_publications or [])),
        license=license,
        source_sha256=_sha256(path),
        presentation_coords=extra,
        neuroid_coords={"location": locations[keep], "electrode": electrode[keep]},
        attrs={
            "converted_from": path.name,
            "nwb_units_table": str(unit_rows.name),
            "nwb_stimulus_table": str(table.name),
            "nwb_stimulus_column": stimulus_column,
            "bin_ms": bin_ms,
            "alignment": f"time 0 = start_time of each row of the stimulus table {table.name!r}",
            "missing_trials": (f"{missing} unit x presentation slots are NaN (outside the unit's obs_intervals or "
                               "overlapping invalid_times)"),
        },
    )


def _sha256(path: Path) -> str:
    from neurofit.data.fetch import file_sha256

    return file_sha256(path)


def load_nwb(paths: Mapping[str, Path], manifest: Any, **options: Any) -> tuple[xr.DataArray, None]:
    """Manifest loader: one ``.nwb`` file; returns ``(recording, None)`` (NWB files carry no scorable images).

    Example
    -------
    >>> from neurofit.data.fetch import load_dataset
    >>> rec, _ = load_dataset("my-dandi-session", stimulus_table="presentations")  # doctest: +SKIP
    """
    files = [paths[rel] for rel in sorted(paths) if rel.endswith(".nwb")]
    if len(files) != 1:
        raise ValidationError(f"manifest {manifest.source} must list exactly one '.nwb' file for the nwb loader, "
                              f"found {len(files)}")
    options.setdefault("identifier", manifest.id)
    options.setdefault("citation", manifest.citation)
    options.setdefault("license", manifest.license)
    return recording_from_nwb(files[0], **options), None


# load_dataset checks user options against these before fetching anything
load_nwb.converter = recording_from_nwb  # type: ignore[attr-defined]
load_nwb.reserved = ()  # type: ignore[attr-defined]

