"""Convert BrainIO/Brain-Score NetCDF assemblies (e.g. MajajHong2015 and its temporal forms) to the contract.

Brain-Score keeps its assemblies on S3 behind identifiers; a user who has a copy (the ``.nc`` file, the
stimulus ``.csv`` and ``.zip``) converts it here. Brain-Score publishes the sha1 of each file in its data
registry (``brainscore_vision/data/majajhong2015/__init__.py`` of ``github.com/brain-score/vision``); when
a file's name is one of those, its sha1 is checked against the published value, otherwise against
``expected_sha1`` if given (and an unverified file is reported, never silently accepted as verified).

File names follow Brain-Score's ``build_filename``: ``assy_<identifier with '.' -> '_'>.nc`` for assemblies
and ``image_<identifier>.csv`` / ``.zip`` for stimulus sets.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurofit.data.io import read_recording
from neurofit.data.recording import validate
from neurofit.data.stimuli import StimulusSet, zip_members
from neurofit.errors import ChecksumError, ValidationError

MAJAJHONG_CITATION = (
    "Majaj, N.J., Hong, H., Solomon, E.A., DiCarlo, J.J. (2015). Simple learned weighted sums of inferior "
    "temporal neuronal firing rates accurately predict human core object recognition performance. "
    "J. Neurosci. 35(39):13402-13418"
)

# file name -> sha1 published in Brain-Score's data registry (brain-score/vision,
# brainscore_vision/data/majajhong2015/__init__.py).
PUBLISHED_SHA1: dict[str, str] = {
    "assy_dicarlo_MajajHong2015.nc": "bf8f8d01010d727e3db3f85a9bd5f95f9456b7ec",
    "assy_dicarlo_MajajHong2015_public.nc": "13d28ca0ce88ee550b54db3004374ae19096e9b9",
    "assy_dicarlo_MajajHong2015_private.nc": "7a40d16148d6f82939155f0bd976d310857fb156",
    "assy_dicarlo_MajajHong2015_temporal.nc": "4c5cfe25ad53162c5c716d64004de269162eff38",
    "assy_dicarlo_MajajHong2015_temporal-10ms.nc": "3a43db05db722b456d156f53b7215413c994e5b5",
    "assy_dicarlo_MajajHong2015_temporal_public.nc": "093ac35b3e8464c676d24cf38238415d4d6a9448",
    "assy_dicarlo_MajajHong2015_temporal_private.nc": "804ea9e7c08ae9ab7a7d705c9c7e68582750e2ea",
    "image_dicarlo_hvm.csv": "a56f55205904d5fb5ead4d0dc7bfad5cc4083b94",
    "image_dicarlo_hvm.zip": "6fd5080deccfb061699909ffcb86a26209516811",
    "image_dicarlo_hvm-public.csv": "5ca7a3da00d8e9c694a9cd725df5ba0ad6d735af",
    "image_dicarlo_hvm-public.zip": "8aa44e038d7b551efa8077467622f9d48d72e473",
    "image_dicarlo_hvm-private.csv": "6ff4981722fa05feb73a2bd26bbbba8b50dc29a6",
    "image_dicarlo_hvm-private.zip": "d7b1ca1876dad87e15b0242b4c82c0203ff3cbd3",
}
_FILENAME_COLUMNS = ("filename", "image_file_name", "image_path_within_store")


class UnverifiedFileWarning(UserWarning):
    """A converted file had no published or user-supplied sha1 to check against."""


def file_sha1(path: str | os.PathLike[str]) -> str:
    """sha1 hex digest of a file (Brain-Score identifies its files by sha1).

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha1(p)
    'a9993e364706816aba3e25717850c26c9cd0d89d'
    """
    digest = hashlib.sha1()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_sha1(path: str | os.PathLike[str], expected: str | None = None) -> str:
    """Check a file against ``expected`` or Brain-Score's published sha1 for its name.

    Returns a one-line note for the recording's attrs; raises :class:`ChecksumError` on a mismatch and
    warns (:class:`UnverifiedFileWarning`) when there is nothing to check against.

    Example
    -------
    >>> verify_sha1("assy_dicarlo_MajajHong2015_public.nc")  # doctest: +SKIP
    'assy_dicarlo_MajajHong2015_public.nc: sha1 13d28ca0... matches the published value'
    """
    path = Path(path)
    published = PUBLISHED_SHA1.get(path.name)
    wanted = (expected or published or "").lower() or None
    if wanted is None:
        note = f"{path.name}: not verified (no published sha1 known; pass expected_sha1=...)"
        warnings.warn(note, UnverifiedFileWarning, stacklevel=3)
        return note
    actual = file_sha1(path)
    if actual != wanted:
        source = "given as expected_sha1" if expected else "published by Brain-Score for this file name"
        raise ChecksumError(
            f"{path}: sha1 {actual} does not match {wanted} ({source}); the file is corrupt or a different "
            "version"
        )
    source = "the expected value" if expected else "the published value"
    return f"{path.name}: sha1 {actual} matches {source}"


def _stimulus_table(csv_path: Path) -> pd.DataFrame:
    table = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    if "stimulus_id" not in table.columns:
        if "image_id" not in table.columns:
            raise ValidationError(
                f"{csv_path}: no 'stimulus_id' or 'image_id' column; columns: {list(table.columns)}"
            )
        table = table.rename(columns={"image_id": "stimulus_id"})
    if "filename" not in table.columns:
        for column in _FILENAME_COLUMNS[1:]:
            if column in table.columns:
                table["filename"] = table[column].map(lambda p: PurePosixPath(p).name)
                break
        else:
            raise ValidationError(
                f"{csv_path}: no image file name column (one of {', '.join(_FILENAME_COLUMNS)})"
            )
    return table


def convert_brainio(
    assembly_nc: str | os.PathLike[str],
    stimulus_csv: str | os.PathLike[str] | None = None,
    stimulus_zip: str | os.PathLike[str] | None = None,
    *,
    expected_sha1: str | None = None,
    stimulus_csv_sha1: str | None = None,
    stimulus_zip_sha1: str | None = None,
    variable: str | None = None,
    identifier: str | None = None,
    degrees: float = 8.0,
    units: str | None = None,
    citation: str | None = None,
    license: str = "",
) -> tuple[xr.DataArray, StimulusSet | None]:
    """Convert a BrainIO/Brain-Score assembly (and optionally its stimulus set) into the contract.

    Parameters
    ----------
    assembly_nc : the assembly's NetCDF file (MultiIndex levels stored as plain coords, as BrainIO writes).
    stimulus_csv, stimulus_zip : the stimulus set (``image_id`` or ``stimulus_id``, and a file name column);
        ``stimulus_zip`` defaults to the CSV's ``.zip`` twin.
    expected_sha1, stimulus_csv_sha1, stimulus_zip_sha1 : sha1s to check; default: Brain-Score's published
        sha1 for the file's name, when known.
    degrees : visual angle of the images (8 for HvM/MajajHong2015, as in Brain-Score).
    units : default: the assembly's ``units`` attr, else ``"spikes/s"`` (Brain-Score stores rates).

    Returns
    -------
    (recording, stimulus_set or None)

    Raises
    ------
    ChecksumError
        A sha1 differs from the expected or published one (both named).
    ValidationError
        A stimulus of the recording has no row in the CSV or no image in the zip (the first one is named).

    Example
    -------
    >>> rec, ss = convert_brainio("assy_dicarlo_MajajHong2015_public.nc",
    ...                           "image_dicarlo_hvm-public.csv")  # doctest: +SKIP
    >>> sorted(set(rec.coords["region"].values.tolist()))  # doctest: +SKIP
    ['IT', 'V4']
    """
    assembly_nc = Path(assembly_nc)
    notes = [verify_sha1(assembly_nc, expected_sha1)]
    recording = read_recording(assembly_nc, variable)
    source_attrs = dict(recording.attrs)
    default_id = variable or source_attrs.get("identifier") or _variable_name(assembly_nc)
    attrs = {
        "identifier": identifier or str(default_id),
        "stimulus_set_identifier": str(source_attrs.get("stimulus_set_identifier", "")),
        "units": units or str(source_attrs.get("units", "spikes/s")),
        "citation": citation if citation is not None else str(source_attrs.get("citation", MAJAJHONG_CITATION)),
        "license": license or str(source_attrs.get("license", "")),
        "source_sha256": _sha256(assembly_nc),
        "converted_from": assembly_nc.name,
    }
    recording.attrs.update(attrs)
    stimulus_set = None
    if stimulus_csv is not None:
        csv_path = Path(stimulus_csv)
        zip_path = Path(stimulus_zip) if stimulus_zip is not None else csv_path.with_suffix(".zip")
        notes.append(verify_sha1(csv_path, stimulus_csv_sha1))
        notes.append(verify_sha1(zip_path, stimulus_zip_sha1))
        table = _stimulus_table(csv_path)
        set_id = recording.attrs["stimulus_set_identifier"] or csv_path.stem.removeprefix("image_")
        recording.attrs["stimulus_set_identifier"] = set_id
        _check_images(recording, table, csv_path, zip_path)
        recording = _merge_stimulus_metadata(recording, table)
        stimulus_set = StimulusSet(table=table, images=zip_path, degrees=float(degrees), identifier=set_id)
    recording.attrs["sha1_check"] = "; ".join(notes)
    validate(recording, stimulus_set)
    return recording, stimulus_set


def _variable_name(path: Path) -> str:
    """BrainIO names an assembly's variable after its identifier (e.g. ``dicarlo.MajajHong2015.public``)."""
    with xr.open_dataset(path, engine="netcdf4") as ds:
        names = [str(n) for n in ds.data_vars]
    return names[0] if len(names) == 1 and names[0] != "rates" else path.stem.removeprefix("assy_")


def _sha256(path: Path) -> str:
    from neurofit.data.fetch import file_sha256

    return file_sha256(path)


def _merge_stimulus_metadata(recording: xr.DataArray, table: pd.DataFrame) -> xr.DataArray:
    """Stimulus-set columns the assembly lacks become presentation coords, as Brain-Score's loader merges them.

    Brain-Score stores stimulus metadata (``object_name``, ...) in the stimulus set and merges it into the
    assembly when loading (``StimulusMergeAssemblyLoader``); its splits stratify on ``object_name``.
    """
    skip = {"stimulus_id", "image_id", *_FILENAME_COLUMNS, "stimulus_path_within_store"}
    by_id = table.drop_duplicates("stimulus_id").set_index("stimulus_id")
    ids = pd.Index(np.asarray(recording.coords["stimulus_id"].values).astype(str))
    extra = {column: ("presentation", by_id[column].reindex(ids).to_numpy(dtype=str))
             for column in by_id.columns if column not in skip and column not in recording.coords}
    return recording.assign_coords(extra) if extra else recording


def _check_images(recording: xr.DataArray, table: pd.DataFrame, csv_path: Path, zip_path: Path) -> None:
    """Every stimulus of the recording needs a CSV row and an image in the zip; name the first that lacks one."""
    filename_of = dict(zip(table["stimulus_id"], table["filename"]))
    members = zip_members(zip_path)
    names = set(members) | {PurePosixPath(m).name for m in members}
    for stimulus in pd.unique(np.asarray(recording.coords["stimulus_id"].values)).tolist():
        stimulus = str(stimulus)
        filename = filename_of.get(stimulus)
        if filename is None:
            raise ValidationError(f"stimulus_id {stimulus!r} is in the recording but has no row in {csv_path}")
        if filename not in names and PurePosixPath(filename).name not in names:
            raise ValidationError(
                f"stimulus_id {stimulus!r}: its image {filename!r} is missing from the zip {zip_path}"
            )


def load_brainio(paths: Mapping[str, Path], manifest: Any, **options: Any) -> tuple[xr.DataArray, StimulusSet | None]:
    """Manifest loader for a user's manifest of a BrainIO assembly: one ``.nc``, optionally a ``.csv`` + ``.zip``.

    The manifest's sha256 has already been checked by the fetcher; sha1s are still checked against
    Brain-Score's published values when the file names are Brain-Score's.

    Example
    -------
    >>> rec, ss = load_dataset("my-majajhong2015-public")  # doctest: +SKIP
    """
    def one(suffix: str, required: bool) -> Path | None:
        hits = [p for rel, p in sorted(paths.items()) if rel.endswith(suffix)]
        if len(hits) > 1 or (required and not hits):
            raise ValidationError(f"manifest {manifest.source} must list exactly one '{suffix}' file for the "
                                  f"brainio loader, found {len(hits)}")
        return hits[0] if hits else None

    options.setdefault("identifier", manifest.id)
    options.setdefault("citation", manifest.citation)
    options.setdefault("license", manifest.license)
    return convert_brainio(one(".nc", True), one(".csv", False), one(".zip", False), **options)  # type: ignore[arg-type]


# load_dataset checks user options against these before fetching anything
load_brainio.converter = convert_brainio  # type: ignore[attr-defined]
load_brainio.reserved = ()  # type: ignore[attr-defined]
