"""BrainIO/Brain-Score assembly conversion, on small assemblies written by the test in BrainIO's layout."""

from __future__ import annotations

import hashlib
import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from neurofit.data.loaders.brainio import PUBLISHED_SHA1, UnverifiedFileWarning, convert_brainio, file_sha1
from neurofit.data.recording import average_repetitions
from neurofit.errors import ChecksumError, ValidationError


def brainio_assembly(n_images: int = 6, n_reps: int = 3, bins: list[tuple[int, int]] | None = None,
                     seed: int = 0) -> xr.DataArray:
    """An assembly as BrainIO holds it in memory: MultiIndex presentation, neuroid and time_bin dims."""
    bins = bins or [(70, 170)]
    rng = np.random.default_rng(seed)
    image_ids = [f"img{i:03d}" for i in range(n_images)]
    presentation = pd.MultiIndex.from_arrays(
        [
            np.repeat(image_ids, n_reps),
            np.tile(np.arange(n_reps), n_images),
            np.repeat([f"obj{i % 2}" for i in range(n_images)], n_reps),
            np.repeat([i % 3 * 3 for i in range(n_images)], n_reps),
        ],
        names=["image_id", "repetition", "object_name", "variation"],
    )
    neuroid = pd.MultiIndex.from_arrays(
        [["Chabo_L_A_1", "Chabo_L_A_2", "Tito_R_P_3", "Tito_R_P_4"], ["V4", "V4", "IT", "IT"],
         ["Chabo", "Chabo", "Tito", "Tito"]],
        names=["neuroid_id", "region", "animal"],
    )
    time_bin = pd.MultiIndex.from_arrays(
        [[b[0] for b in bins], [b[1] for b in bins]], names=["time_bin_start", "time_bin_end"]
    )
    coords = xr.Coordinates.from_pandas_multiindex(presentation, "presentation")
    coords = coords.merge(xr.Coordinates.from_pandas_multiindex(neuroid, "neuroid")).coords
    coords = coords.merge(xr.Coordinates.from_pandas_multiindex(time_bin, "time_bin")).coords
    values = rng.normal(size=(len(presentation), len(neuroid), len(bins))).astype(np.float32)
    return xr.DataArray(values, dims=("presentation", "neuroid", "time_bin"), coords=coords,
                        attrs={"stimulus_set_identifier": "dicarlo.toy"})


def write_brainio(assembly: xr.DataArray, path: Path, name: str = "dicarlo.Toy.public") -> Path:
    """Write as BrainIO does: MultiIndexes reset to plain coords, one named variable."""
    flat = assembly.reset_index(["presentation", "neuroid", "time_bin"])
    flat.to_dataset(name=name).to_netcdf(path)
    return path


def write_stimuli(directory: Path, image_ids: list[str], *, drop: str | None = None,
                  id_column: str = "image_id") -> tuple[Path, Path]:
    csv_path = directory / "image_dicarlo_toy.csv"
    zip_path = directory / "image_dicarlo_toy.zip"
    table = pd.DataFrame({id_column: image_ids, "image_file_name": [f"{i}.png" for i in image_ids],
                          "object_name": [f"obj{i % 2}" for i in range(len(image_ids))]})
    table.to_csv(csv_path, index=False)
    with zipfile.ZipFile(zip_path, "w") as zf:
        for k, image_id in enumerate(image_ids):
            if image_id == drop:
                continue
            buf = io.BytesIO()
            Image.fromarray(np.full((8, 8, 3), 20 * k, dtype=np.uint8)).save(buf, format="PNG")
            zf.writestr(f"{image_id}.png", buf.getvalue())
    return csv_path, zip_path


def test_brainio_assembly_converts_losslessly_with_its_stimulus_set(tmp_path):
    assembly = brainio_assembly()
    nc = write_brainio(assembly, tmp_path / "assy_dicarlo_Toy_public.nc")
    csv_path, zip_path = write_stimuli(tmp_path, [f"img{i:03d}" for i in range(6)])
    recording, stimuli = convert_brainio(nc, csv_path, expected_sha1=file_sha1(nc),
                                         stimulus_csv_sha1=file_sha1(csv_path),
                                         stimulus_zip_sha1=file_sha1(zip_path))
    assert recording.dims == ("presentation", "neuroid", "time_bin")
    assert not any(isinstance(index, pd.MultiIndex) for index in recording.indexes.values())
    np.testing.assert_array_equal(recording.values, assembly.values)
    np.testing.assert_array_equal(recording.coords["stimulus_id"].values,
                                  assembly.coords["image_id"].values.astype(str))
    np.testing.assert_array_equal(recording.coords["repetition"].values, assembly.coords["repetition"].values)
    assert recording.coords["region"].values.tolist() == ["V4", "V4", "IT", "IT"]
    assert recording.coords["animal"].values.tolist() == ["Chabo", "Chabo", "Tito", "Tito"]
    assert recording.coords["time_bin_start"].values.tolist() == [70.0]
    assert recording.coords["time_bin_end"].values.tolist() == [170.0]
    assert recording.attrs["identifier"] == "dicarlo.Toy.public"
    assert recording.attrs["stimulus_set_identifier"] == "dicarlo.toy"
    assert recording.attrs["source_sha256"] == hashlib.sha256(nc.read_bytes()).hexdigest()
    assert "matches the expected value" in recording.attrs["sha1_check"]
    assert stimuli.stimulus_ids == [f"img{i:03d}" for i in range(6)]
    assert stimuli.degrees == 8.0
    assert float(stimuli.load_images(8, ["img002"])[0].mean()) == pytest.approx(40 / 255, abs=1e-6)
    means = average_repetitions(recording).values
    np.testing.assert_allclose(means, assembly.values.reshape(6, 3, 4, 1).mean(axis=1), rtol=1e-6)


def test_temporal_10ms_assembly_keeps_every_bin(tmp_path):
    bins = [(t, t + 10) for t in range(0, 250, 10)]
    assembly = brainio_assembly(bins=bins)
    nc = write_brainio(assembly, tmp_path / "toy_temporal.nc", name="dicarlo.Toy.temporal")
    with pytest.warns(UnverifiedFileWarning, match="pass expected_sha1"):
        recording, stimuli = convert_brainio(nc)
    assert stimuli is None
    assert recording.sizes["time_bin"] == 25
    assert recording.coords["time_bin_start"].values.tolist() == [float(b[0]) for b in bins]
    np.testing.assert_array_equal(recording.values, assembly.values)
    assert "not verified" in recording.attrs["sha1_check"]


def test_wrong_sha1_names_the_file_and_both_hashes(tmp_path):
    nc = write_brainio(brainio_assembly(), tmp_path / "toy.nc")
    with pytest.raises(ChecksumError) as err:
        convert_brainio(nc, expected_sha1="0" * 40)
    assert str(nc) in str(err.value) and "0" * 40 in str(err.value) and file_sha1(nc) in str(err.value)


def test_published_sha1_is_checked_by_file_name(tmp_path):
    nc = write_brainio(brainio_assembly(), tmp_path / "assy_dicarlo_MajajHong2015_public.nc")
    with pytest.raises(ChecksumError, match=PUBLISHED_SHA1["assy_dicarlo_MajajHong2015_public.nc"]):
        convert_brainio(nc)


def test_recording_whose_image_is_missing_from_the_zip_names_the_first_missing_id(tmp_path):
    nc = write_brainio(brainio_assembly(), tmp_path / "toy.nc")
    csv_path, _ = write_stimuli(tmp_path, [f"img{i:03d}" for i in range(6)], drop="img003")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        with pytest.raises(ValidationError, match=r"stimulus_id 'img003'.*missing from the zip"):
            convert_brainio(nc, csv_path)


def test_recording_stimulus_absent_from_the_csv_is_named(tmp_path):
    nc = write_brainio(brainio_assembly(), tmp_path / "toy.nc")
    csv_path, _ = write_stimuli(tmp_path, [f"img{i:03d}" for i in range(5)], id_column="stimulus_id")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        with pytest.raises(ValidationError, match=r"stimulus_id 'img005' is in the recording but has no row"):
            convert_brainio(nc, csv_path)


def test_user_manifest_of_a_brainio_assembly_loads_through_the_mirror(tmp_path, monkeypatch):
    from neurofit.data.fetch import load_dataset

    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    nc = write_brainio(brainio_assembly(), mirror / "toy" / "assy_dicarlo_Toy_public.nc")
    csv_path, zip_path = write_stimuli(mirror / "toy", [f"img{i:03d}" for i in range(6)])
    entries = []
    for path in (nc, csv_path, zip_path):
        entries.append(
            f'[[files]]\npath = "toy/{path.name}"\nurl = "https://example.org/{path.name}"\n'
            f'sha256 = "{hashlib.sha256(path.read_bytes()).hexdigest()}"\nsize = {path.stat().st_size}\n'
        )
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "toy.toml").write_text(
        'id = "toy-brainio"\ndescription = "d"\ncitation = "c"\nlicense = "CC0"\n'
        '[loader]\nname = "brainio"\n' + "".join(entries)
    )
    monkeypatch.setenv("NEUROFIT_MANIFESTS", str(manifests))
    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(mirror))
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnverifiedFileWarning)
        recording, stimuli = load_dataset("toy-brainio")
    assert recording.attrs["identifier"] == "toy-brainio"
    assert len(stimuli) == 6 and recording.sizes["presentation"] == 18
