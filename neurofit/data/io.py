"""NetCDF4 reading and writing of recordings, with attrs preserved and writes made atomic.

:func:`read_recording` also takes BrainIO/Brain-Score assemblies (the NetCDF files of
``brainio``/``brainscore``): their MultiIndex levels are stored as plain coordinates along each dim,
the variable may have any name, ``image_id`` stands for ``stimulus_id`` and ``repetition`` may be absent.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurofit.atomic import atomic_path
from neurofit.data.recording import DIMS
from neurofit.errors import ChecksumError, NeurofitError, ValidationError

_JSON_ATTRS = "_neurofit_json_attrs"
#: the attr holding :func:`content_sha256` of a file written with ``checksum=True``
CONTENT_SHA256 = "content_sha256"
#: a file is read into memory only when its variables take at most this many times the file's size ...
MAX_EXPANSION = 1000
#: ... or at most this many bytes, whichever is larger (an 8 KB file can declare a 40 GB array of fill values)
MIN_READ_LIMIT = 256 * 2**20


def encode_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Make attrs NetCDF-safe: dicts, lists of non-numbers, bools and None are JSON-encoded.

    The names of encoded attrs are listed in ``_neurofit_json_attrs`` so :func:`decode_attrs` restores them.

    Example
    -------
    >>> decode_attrs(encode_attrs({"a": {"b": 1}, "c": "x"}))
    {'a': {'b': 1}, 'c': 'x'}
    """
    out: dict[str, Any] = {}
    encoded: list[str] = []
    for key, value in attrs.items():
        if key == _JSON_ATTRS:
            continue
        plain = isinstance(value, (str, int, float, np.integer, np.floating)) and not isinstance(value, bool)
        if plain or (isinstance(value, np.ndarray) and value.dtype.kind in "if"):
            out[key] = value
        else:
            out[key] = json.dumps(value, default=_json_default)
            encoded.append(key)
    if encoded:
        out[_JSON_ATTRS] = json.dumps(encoded)
    return out


def decode_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_attrs`."""
    out = dict(attrs)
    encoded = json.loads(out.pop(_JSON_ATTRS, "[]"))
    for key in encoded:
        if key in out:
            out[key] = json.loads(out[key])
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"attribute value of type {type(value).__name__} cannot be stored")


def _canonical_attr(value: Any) -> Any:
    # netCDF gives back a one-element array attribute as a scalar, and numpy scalars for Python numbers
    if isinstance(value, np.ndarray):
        return value.reshape(-1)[0].item() if value.size == 1 else value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _canonical_attrs(attrs: dict[str, Any]) -> bytes:
    items = {str(k): _canonical_attr(v) for k, v in attrs.items() if k not in (CONTENT_SHA256, _JSON_ATTRS)}
    return json.dumps(items, sort_keys=True, default=_json_default).encode()


def content_sha256(obj: xr.Dataset | xr.DataArray) -> str:
    """sha256 of what a Dataset holds: every variable and coordinate (name, dims, shape, values) and the attrs.

    It is the same before writing and after reading back through :func:`write_netcdf`/:func:`read_dataset`
    (strings hash as text, integers and booleans as int64, floats in their own precision), so it verifies a
    file's content whatever netCDF did to its encoding. The ``content_sha256`` attr itself is left out.

    Example
    -------
    >>> ds = xr.Dataset({"v": ("d", [1.0, 2.0])}, coords={"d": ["a", "b"]}, attrs={"k": {"x": 1}})
    >>> content_sha256(ds) == content_sha256(ds.copy(deep=True))
    True
    >>> content_sha256(ds) == content_sha256(ds.assign(v=("d", [1.0, 2.5])))
    False
    """
    ds = obj.to_dataset(name=obj.name or "__values__") if isinstance(obj, xr.DataArray) else obj
    h = hashlib.sha256()
    h.update(_canonical_attrs(dict(ds.attrs)))
    for name in sorted(str(n) for n in ds.variables):
        var = ds.variables[name]
        values = np.asarray(var.values)
        kind = {"S": "U", "O": "U", "b": "i", "u": "i"}.get(values.dtype.kind, values.dtype.kind)
        h.update(json.dumps([name, list(var.dims), list(values.shape), kind]).encode())
        h.update(_canonical_attrs(dict(var.attrs)))
        if kind == "U":
            text = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
                    for v in values.reshape(-1).tolist()]
            h.update(json.dumps(text).encode())
        elif kind == "i":
            h.update(np.ascontiguousarray(values, dtype="<i8").data)
        else:
            h.update(np.ascontiguousarray(values, dtype=values.dtype.newbyteorder("<")).data)
    return h.hexdigest()


def write_netcdf(obj: xr.DataArray | xr.Dataset, path: str | os.PathLike[str], *, checksum: bool = False) -> Path:
    """Write a DataArray or Dataset as NetCDF4 atomically (temporary file, then rename).

    ``checksum=True`` stores :func:`content_sha256` in the ``content_sha256`` attr, which
    ``read_dataset(path, verify=True)`` checks.

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "x.nc"
    >>> _ = write_netcdf(xr.Dataset({"v": ("d", [1.0])}, attrs={"meta": {"k": 1}}), path)
    >>> read_dataset(path).attrs["meta"]
    {'k': 1}
    """
    path = Path(path)
    obj = obj.copy(deep=False)
    if checksum:
        obj.attrs = {**obj.attrs, CONTENT_SHA256: content_sha256(obj)}
    obj.attrs = encode_attrs(dict(obj.attrs))
    if isinstance(obj, xr.Dataset):
        for name in obj.data_vars:
            obj[name].attrs = encode_attrs(dict(obj[name].attrs))
    with atomic_path(path) as tmp:
        obj.to_netcdf(tmp, engine="netcdf4", format="NETCDF4")
    return path


def read_dataset(path: str | os.PathLike[str], *, verify: bool = False) -> xr.Dataset:
    """Read a NetCDF file written by :func:`write_netcdf` fully into memory (the file is closed).

    ``verify=True`` requires the ``content_sha256`` attr of ``write_netcdf(..., checksum=True)`` and raises
    :class:`~neurofit.errors.ChecksumError` when the content read differs from it (the attr is removed).
    Before anything is loaded, the memory the variables will take is checked against the file's size: at most
    ``MAX_EXPANSION`` times it, or ``MIN_READ_LIMIT`` bytes, whichever is larger (compressed fill values let a
    few kilobytes declare gigabytes).
    """
    path = Path(path)
    if not path.exists():
        raise NeurofitError(f"file not found: {path}")
    try:
        with xr.open_dataset(path, engine="netcdf4") as ds:
            _check_expansion(ds, path)
            ds = ds.load()
        ds.attrs = decode_attrs(dict(ds.attrs))
        for name in ds.data_vars:
            ds[name].attrs = decode_attrs(dict(ds[name].attrs))
    except ValidationError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        # netCDF/HDF5 report damaged files as any of these; json errors are ValueErrors
        raise NeurofitError(f"cannot read {path} as NetCDF: {err}") from err
    if verify:
        stored = ds.attrs.pop(CONTENT_SHA256, None)
        if stored is None:
            raise ChecksumError(f"{path} carries no {CONTENT_SHA256!r} attr, so its content cannot be verified")
        actual = content_sha256(ds)
        if actual != stored:
            raise ChecksumError(f"{path}: content sha256 {actual} does not match the {stored} it was written with")
    return ds


def _check_expansion(ds: xr.Dataset, path: Path) -> None:
    """Refuse a file whose variables would take far more memory than the file holds (before any is read)."""
    needed = sum(int(var.size) * max(int(var.dtype.itemsize), 1) for var in ds.variables.values())
    size = path.stat().st_size
    limit = max(MIN_READ_LIMIT, MAX_EXPANSION * size)
    if needed > limit:
        raise ValidationError(
            f"{path}: its variables would take {needed / 2**20:.6g} MiB in memory, more than {MAX_EXPANSION}x the "
            f"file's {size / 2**20:.3g} MiB (neurofit.data.io.MAX_EXPANSION); refusing to allocate it"
        )


def write_recording(recording: xr.DataArray, path: str | os.PathLike[str]) -> Path:
    """Write a recording as NetCDF4 atomically; attrs (including nested ones) survive the round trip.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from neurofit.data.recording import make_recording
    >>> rec = make_recording(np.ones((1, 1, 1)), stimulus_id=["a"], repetition=[0], neuroid_id=["n0"],
    ...                      region="IT", time_bin_start=[0], time_bin_end=[10], identifier="toy",
    ...                      stimulus_set_identifier="toy")
    >>> path = write_recording(rec, pathlib.Path(tempfile.mkdtemp()) / "rec.nc")
    >>> read_recording(path).identical(rec)
    True
    """
    return write_netcdf(recording.rename("rates").to_dataset(), path)


def read_recording(path: str | os.PathLike[str], variable: str | None = None) -> xr.DataArray:
    """Read a recording from NetCDF: neurofit's own files or BrainIO/Brain-Score assemblies.

    The result has the contract's dims and names (run :func:`neurofit.data.validate` to check the rest).

    Example
    -------
    >>> import tempfile, pathlib
    >>> from neurofit.data.recording import make_recording
    >>> rec = make_recording(np.ones((2, 1, 1)), stimulus_id=["a", "b"], repetition=[0, 0], neuroid_id=["n0"],
    ...                      region="IT", time_bin_start=[70], time_bin_end=[170], identifier="toy",
    ...                      stimulus_set_identifier="toy")
    >>> read_recording(write_recording(rec, pathlib.Path(tempfile.mkdtemp()) / "rec.nc")).dims
    ('presentation', 'neuroid', 'time_bin')
    """
    path = Path(path)
    ds = read_dataset(path)
    if variable is None:
        names = list(ds.data_vars)
        if "rates" in names:
            variable = "rates"
        elif len(names) == 1:
            variable = names[0]
        else:
            raise ValidationError(
                f"{path} holds several variables {names}; say which one is the recording (variable=...)"
            )
    elif variable not in ds.data_vars:
        raise ValidationError(f"{path} has no variable {variable!r}; it has {list(ds.data_vars)}")
    return to_contract(ds[variable], source=str(path))


def to_contract(array: xr.DataArray, source: str = "recording") -> xr.DataArray:
    """Bring a BrainIO-style assembly into the contract's layout (a no-op on a contract recording).

    MultiIndex coords are flattened, ``image_id`` becomes ``stimulus_id``, a missing ``repetition`` is
    numbered per stimulus, a missing ``time_bin`` dim becomes one bin given by ``time_bin_start/end``
    attrs if present, and dims are put in the contract's order.
    """
    array = array.rename("rates")
    for dim in list(array.dims):
        if dim in array.indexes and len(array.indexes[dim].names) > 1:
            array = array.reset_index(dim)
    # reset_index leaves level coords named as the levels; drop a leftover dim coordinate if any
    for dim in DIMS:
        if dim in array.coords and array.coords[dim].dims == (dim,) and dim not in ("time_bin",):
            array = array.drop_vars(dim)
    if "time_bin" in array.coords and array.coords["time_bin"].dims == ("time_bin",):
        array = array.drop_vars("time_bin")
    missing = [dim for dim in ("presentation", "neuroid") if dim not in array.dims]
    if missing:
        raise ValidationError(f"{source} has no {missing[0]!r} dim (dims: {tuple(array.dims)})")
    if "time_bin" not in array.dims:
        if "time_bin_start" not in array.attrs or "time_bin_end" not in array.attrs:
            raise ValidationError(f"{source} has no 'time_bin' dim (dims: {tuple(array.dims)}) and no time_bin_start/"
                                  "time_bin_end attrs: the responses' time window is unknown; give a 'time_bin' dim "
                                  "with time_bin_start/time_bin_end coords (ms after onset), as Brain-Score's temporal "
                                  "assemblies have, or those two attrs for one window")
        start = float(array.attrs.get("time_bin_start", np.nan))
        end = float(array.attrs.get("time_bin_end", np.nan))
        array = array.expand_dims("time_bin", axis=-1).assign_coords(
            time_bin_start=("time_bin", [start]), time_bin_end=("time_bin", [end])
        )
    if "stimulus_id" not in array.coords and "image_id" in array.coords:
        array = array.assign_coords(stimulus_id=("presentation", array.coords["image_id"].values.astype(str)))
    if "repetition" not in array.coords and "stimulus_id" in array.coords:
        import pandas as pd

        ids = pd.Series(array.coords["stimulus_id"].values)
        array = array.assign_coords(repetition=("presentation", ids.groupby(ids).cumcount().to_numpy()))
    for name in ("stimulus_id", "neuroid_id", "region"):
        if name in array.coords and array.coords[name].dtype.kind == "O":
            array = array.assign_coords({name: (array.coords[name].dims, array.coords[name].values.astype(str))})
    if "repetition" in array.coords and array.coords["repetition"].dtype.kind == "f":
        repetition = array.coords["repetition"].values
        if not np.all(np.isfinite(repetition) & (repetition == np.round(repetition))):
            raise ValidationError(f"{source}: coordinate 'repetition' must hold whole numbers")
        array = array.assign_coords(repetition=("presentation", repetition.astype(np.int64)))
    if set(array.dims) != set(DIMS):
        raise ValidationError(f"{source} has dims {tuple(array.dims)}; a recording has {DIMS}")
    return array.transpose(*DIMS)
