"""The cache of generated ``synthetic-ventral`` datasets: one checksummed NetCDF file per parameter set.

A file is verified on every read (content checksum and the generation key); a damaged or foreign file is
rebuilt by :func:`neurofit.data.synthetic.generate_synthetic_ventral`, never used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurofit.atomic import atomic_path
from neurofit.data.io import CONTENT_SHA256, content_sha256, encode_attrs, read_dataset
from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError


def synthetic_cache_dir() -> Path:
    """Where generated datasets are cached: ``<NEUROFIT_HOME or the user cache>/synthetic``.

    Example
    -------
    >>> synthetic_cache_dir().name
    'synthetic'
    """
    from neurofit.data.fetch import cache_dir

    return cache_dir() / "synthetic"


def write_cache(path: Path, recording: xr.DataArray, stimuli: StimulusSet) -> None:
    """Write a generated dataset (recording and stimulus set) as one checksummed NetCDF file, atomically.

    Example
    -------
    >>> from neurofit.data.synthetic import generate_synthetic_ventral
    >>> import tempfile, pathlib
    >>> rec, stimuli = generate_synthetic_ventral("small", n_v4=1, n_it=1, repetitions=2, cache=False)
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "sv.nc"
    >>> write_cache(path, rec, stimuli)
    >>> read_cache(path, rec.attrs["cache_key"])[0].identical(rec)
    True
    """
    table = stimuli.table
    data_vars: dict[str, Any] = {"rates": recording.copy(deep=False),
                                 "images": (("stimulus", "y", "x", "channel"), stimuli.arrays)}
    for column in table.columns:
        data_vars[f"table__{column}"] = ("stimulus", table[column].to_numpy())
    attrs = {"stimulus_set_identifier": stimuli.identifier, "degrees": stimuli.degrees,
             "table_columns": list(table.columns)}
    ds = xr.Dataset(data_vars, attrs=attrs)
    # the content checksum, verified on every read: a damaged cache file is rebuilt, never used
    ds.attrs = encode_attrs({**attrs, CONTENT_SHA256: content_sha256(ds)})
    ds["rates"].attrs = encode_attrs(dict(recording.attrs))
    # Spike counts are mostly zeros and ones: light compression shrinks the cache about fivefold.
    encoding = {"rates": {"zlib": True, "complevel": 1}, "images": {"zlib": True, "complevel": 1}}
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)


def read_cache(path: Path, key: str) -> tuple[xr.DataArray, StimulusSet]:
    """Read a file of :func:`write_cache`, verifying its checksum and that it holds the dataset ``key``.

    Any damage raises (:class:`neurofit.errors.NeurofitError` or the reader's error): the caller rebuilds.
    See :func:`write_cache` for an example.
    """
    ds = read_dataset(path, verify=True)
    recording = ds["rates"]
    recording = recording.drop_vars([c for c in recording.coords if "stimulus" in recording[c].dims])
    if recording.attrs.get("cache_key") != key:
        raise NeurofitError(f"{path} holds another synthetic dataset")
    table = pd.DataFrame({c: ds[f"table__{c}"].values for c in ds.attrs["table_columns"]})
    for column in ("stimulus_id", "filename", "object_name", "category_name"):
        table[column] = table[column].astype(str)
    images = np.asarray(ds["images"].values, dtype=np.uint8)
    stimuli = StimulusSet.from_arrays(images, table, degrees=float(ds.attrs["degrees"]),
                                      identifier=str(ds.attrs["stimulus_set_identifier"]))
    return recording, stimuli


__all__ = ["read_cache", "synthetic_cache_dir", "write_cache"]
