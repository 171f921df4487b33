"""The recording contract: construction, every validation rule, averaging, selection, binning, NetCDF IO."""

import zipfile

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from neurofit.data import (
    StimulusSet,
    average_repetitions,
    bin_spikes,
    make_recording,
    read_recording,
    read_stimulus_set,
    select,
    trial_array,
    validate,
    write_recording,
    write_stimulus_set,
)
from neurofit.data.stimuli import safe_extract, zip_members
from neurofit.errors import NeurofitError, ValidationError


def toy_recording(n_stim=4, n_reps=3, n_sites=3, n_bins=5, seed=0):
    rng = np.random.default_rng(seed)
    stim = [f"img_{i:04d}" for i in range(n_stim) for _ in range(n_reps)]
    reps = [r for _ in range(n_stim) for r in range(n_reps)]
    return make_recording(
        rng.poisson(4.0, (n_stim * n_reps, n_sites, n_bins)).astype(np.float64),
        stimulus_id=stim,
        repetition=reps,
        neuroid_id=[f"site{j}" for j in range(n_sites)],
        region=["V4"] + ["IT"] * (n_sites - 1),
        time_bin_start=10.0 * np.arange(n_bins),
        time_bin_end=10.0 * np.arange(1, n_bins + 1),
        identifier="toy",
        stimulus_set_identifier="toy-stimuli",
        presentation_coords={"object_name": [s[-1] for s in stim]},
        attrs={"generator": {"seed": seed}},
    )


def toy_stimuli(ids):
    images = np.random.default_rng(1).integers(0, 255, (len(ids), 12, 12, 3), dtype=np.uint8)
    return StimulusSet.from_arrays(images, pd.DataFrame({"stimulus_id": ids}), degrees=8.0, identifier="toy-stimuli")


def test_valid_recording_passes():
    validate(toy_recording())


def _drop_license(rec):
    rec = rec.copy()
    del rec.attrs["license"]
    return rec


def _with_coord(rec, name, values):
    return rec.assign_coords({name: (rec.coords[name].dims, values)})


BAD_CASES = {
    "missing coord": (lambda r: r.drop_vars("repetition"), "missing coordinate 'repetition'"),
    "wrong dims": (lambda r: r.transpose("neuroid", "presentation", "time_bin"), "dims must be"),
    "duplicate neuroid": (
        lambda r: _with_coord(r, "neuroid_id", ["a", "a", "b"]),
        "duplicate neuroid_id 'a'",
    ),
    "duplicate presentation": (
        lambda r: _with_coord(r, "repetition", np.zeros(r.sizes["presentation"], dtype=int)),
        "appears more than once",
    ),
    "non-increasing bins": (
        lambda r: _with_coord(r, "time_bin_start", [0.0, 10, 10, 30, 40]),
        "time_bin_start must increase",
    ),
    "overlapping bins": (
        lambda r: _with_coord(r, "time_bin_end", [15.0, 20, 30, 40, 50]),
        "time bins overlap: bin 0 (0-15 ms) and bin 1",
    ),
    "empty bin": (lambda r: _with_coord(r, "time_bin_end", [0.0, 20, 30, 40, 50]), "must end after it starts"),
    "wrong value dtype": (lambda r: r.astype(bool), "must be numeric"),
    "string repetition": (
        lambda r: _with_coord(r, "repetition", r.coords["repetition"].values.astype(str)),
        "'repetition' must be integer",
    ),
    "unknown region": (lambda r: _with_coord(r, "region", ["V4", "IT", "MT"]), "value 'MT' at neuroid 2"),
    "all-NaN site": (
        lambda r: r.where(r.neuroid_id != "site1"),
        "site 'site1' has no data",
    ),
    "infinite value": (lambda r: r.where(r.neuroid_id != "site2", np.inf), "infinite value at neuroid 'site2'"),
    "missing attr": (_drop_license, "missing attribute 'license'"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_every_validation_rule_names_its_violation(case):
    corrupt, message = BAD_CASES[case]
    rec = corrupt(toy_recording())
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(rec)


def test_stimulus_absent_from_stimulus_set_is_named():
    rec = toy_recording()
    stimuli = toy_stimuli(["img_0000", "img_0001", "img_0002"])
    with pytest.raises(ValidationError, match="stimulus_id 'img_0003' is in the recording but not in the stimulus set"):
        validate(rec, stimuli)
    validate(rec, toy_stimuli([f"img_{i:04d}" for i in range(4)]))


def test_average_repetitions_matches_nanmean_and_keeps_order():
    rec = toy_recording(n_stim=5, n_reps=4)
    values = rec.values.copy()
    values[1, 0, 0] = np.nan  # a missing trial is ignored, never imputed
    rec = rec.copy(data=values)
    shuffled = rec.isel(presentation=np.random.default_rng(2).permutation(rec.sizes["presentation"]))
    avg = average_repetitions(shuffled)
    order = pd.unique(shuffled.stimulus_id.values)
    assert avg.stimulus_id.values.tolist() == order.tolist()
    for i, sid in enumerate(order):
        expected = np.nanmean(rec.values[rec.stimulus_id.values == sid], axis=0)
        np.testing.assert_allclose(avg.values[i], expected)
    assert "object_name" in avg.coords and "repetition" not in avg.coords


def test_trial_array_pads_unequal_repetitions_with_nan():
    rec = toy_recording(n_stim=3, n_reps=3).isel(presentation=[0, 1, 2, 3, 6, 7])
    trials, ids = trial_array(rec)
    assert ids.tolist() == ["img_0000", "img_0001", "img_0002"]
    assert trials.shape == (3, 3, 3, 5)
    assert np.isnan(trials[1, 1:]).all() and np.isnan(trials[2, 2]).all()
    np.testing.assert_array_equal(trials[2, :2], rec.values[4:6])


def test_select_by_region_and_window():
    rec = toy_recording()
    out = select(rec, region="IT", time_bins=(10, 40))
    assert out.region.values.tolist() == ["IT", "IT"]
    assert out.time_bin_start.values.tolist() == [10, 20, 30]
    assert select(rec, time_bins=[(20, 30), (40, 50)]).sizes["time_bin"] == 2
    with pytest.raises(ValidationError, match=r"no sites in region\(s\) \['V1'\]"):
        select(rec, region="V1")
    with pytest.raises(ValidationError, match="time bin 5-15 ms is not in the recording"):
        select(rec, time_bins=[(5, 15)])


def test_bin_spikes_raster_and_spike_times_agree():
    rng = np.random.default_rng(3)
    raster = (rng.random((6, 1000)) < 0.05).astype(np.uint8)
    counts, starts, ends = bin_spikes(raster, 10, -100, 300, onset_ms=500)
    assert counts.shape == (6, 40) and starts[0] == -100 and ends[-1] == 300
    np.testing.assert_array_equal(counts, raster[:, 400:800].reshape(6, 40, 10).sum(-1))
    times = [np.flatnonzero(row).astype(float) for row in raster]
    counts_t, _, _ = bin_spikes(times, 10, -100, 300, onset_ms=500)
    np.testing.assert_array_equal(counts, counts_t)


def test_bin_spikes_rejects_windows_outside_raster():
    with pytest.raises(ValidationError, match="outside the raster"):
        bin_spikes(np.zeros((1, 100)), 10, 0, 200, onset_ms=0)
    with pytest.raises(ValidationError, match="not a whole number"):
        bin_spikes(np.zeros((1, 100)), 30, 0, 100)


def test_netcdf_round_trip_preserves_values_coords_and_attrs(tmp_path):
    rec = toy_recording()
    path = write_recording(rec, tmp_path / "rec.nc")
    back = read_recording(path)
    xr.testing.assert_identical(back, rec)
    assert back.attrs["generator"] == {"seed": 0}
    assert not list(tmp_path.glob("*.tmp"))


def test_failed_write_leaves_no_partial_file(tmp_path):
    rec = toy_recording().assign_attrs(bad=object())
    with pytest.raises(TypeError):
        write_recording(rec, tmp_path / "rec.nc")
    assert list(tmp_path.iterdir()) == []


def test_brainio_multiindex_assembly_loads_into_the_contract(tmp_path):
    """A Brain-Score NeuroidAssembly stores its MultiIndex levels as coords along each dim."""
    rng = np.random.default_rng(4)
    n_pres, n_neur = 6, 2
    assembly = xr.DataArray(
        rng.random((n_neur, n_pres, 1)),
        dims=("neuroid", "presentation", "time_bin"),
        coords={
            "image_id": ("presentation", ["a", "a", "b", "b", "c", "c"]),
            "repetition": ("presentation", [0, 1, 0, 1, 0, 1]),
            "object_name": ("presentation", ["o1", "o1", "o2", "o2", "o1", "o1"]),
            "neuroid_id": ("neuroid", ["Chabo_L_M_5_9", "Tito_R_A_1_2"]),
            "region": ("neuroid", ["IT", "V4"]),
            "animal": ("neuroid", ["Chabo", "Tito"]),
            "time_bin_start": ("time_bin", [70]),
            "time_bin_end": ("time_bin", [170]),
        },
        name="dicarlo.MajajHong2015.public",
    )
    assembly = assembly.set_index(presentation=["image_id", "repetition", "object_name"],
                                  neuroid=["neuroid_id", "region", "animal"])
    # BrainIO writes the MultiIndex reset into plain coords
    assembly.reset_index(["presentation", "neuroid"]).to_netcdf(tmp_path / "assy.nc")
    rec = read_recording(tmp_path / "assy.nc")
    assert rec.dims == ("presentation", "neuroid", "time_bin")
    assert rec.stimulus_id.values.tolist() == ["a", "a", "b", "b", "c", "c"]
    assert rec.region.values.tolist() == ["IT", "V4"]
    rec.attrs.update(identifier="MajajHong2015.public", stimulus_set_identifier="hvm", units="spikes/s",
                     citation="", license="", source_sha256="")
    validate(rec)


def test_zip_traversal_is_rejected(tmp_path):
    for bad in ("../escape.png", "/abs/path.png", "a/../../b.png"):
        path = tmp_path / "evil.zip"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("ok.png", b"x")
            zf.writestr(bad, b"x")
        with pytest.raises(ValidationError, match="unsafe member name"):
            zip_members(path)
        with pytest.raises(ValidationError, match="unsafe member name"):
            safe_extract(path, tmp_path / "out")
        assert not (tmp_path / "escape.png").exists()


def test_stimulus_set_round_trip_and_zip_order(tmp_path):
    ids = [f"img_{i:04d}" for i in range(5)]
    ss = toy_stimuli(ids)
    csv = write_stimulus_set(ss, tmp_path / "stim.csv")
    back = read_stimulus_set(csv)
    assert back.stimulus_ids == ids and back.degrees == 8.0 and back.identifier == "toy-stimuli"
    np.testing.assert_array_equal(np.stack(back.read_raw()), ss.arrays)
    assert back.sha256() == read_stimulus_set(csv).sha256()
    assert zip_members(tmp_path / "stim.zip") == sorted(zip_members(tmp_path / "stim.zip"))


def test_missing_image_in_zip_is_named(tmp_path):
    ss = toy_stimuli(["a", "b"])
    csv = write_stimulus_set(ss, tmp_path / "s.csv")
    table = pd.read_csv(csv)
    table.loc[1, "filename"] = "gone.png"
    table.to_csv(csv, index=False)
    with pytest.raises(ValidationError, match="image 'gone.png' of stimulus_id 'b' is missing"):
        read_stimulus_set(csv).load_images(8)


def test_place_on_screen_pastes_on_gray_or_crops():
    img = np.zeros((1, 16, 16, 3), dtype=np.uint8)  # a black image
    ss = StimulusSet.from_arrays(img, pd.DataFrame({"stimulus_id": ["s"]}), degrees=4.0, identifier="t")
    wide = ss.place_on_screen(8.0).load_images(16)[0]  # the model sees twice the image's angle
    assert torch_allclose(wide[:, 0, 0], 0.5) and torch_allclose(wide[:, 8, 8], 0.0)
    assert torch_allclose(wide[:, 4:12, 4:12], 0.0) and torch_allclose(wide[:, :4], 0.5)
    # a model with a narrower field sees the centre only: a white frame around a black centre vanishes
    framed = np.full((1, 16, 16, 3), 255, dtype=np.uint8)
    framed[0, 4:12, 4:12] = 0
    narrow = StimulusSet.from_arrays(framed, pd.DataFrame({"stimulus_id": ["s"]}), degrees=8.0, identifier="t")
    assert torch_allclose(narrow.place_on_screen(4.0).load_images(8)[0], 0.0)
    assert ss.place_on_screen(8.0).sha256() != ss.sha256()


def torch_allclose(tensor, value):
    return bool((tensor - value).abs().max() < 1e-6)


def test_unreadable_netcdf_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    with pytest.raises(NeurofitError, match="cannot read .*bad.nc as NetCDF"):
        read_recording(bad)
    with pytest.raises(NeurofitError, match="file not found"):
        read_recording(tmp_path / "absent.nc")


def test_repetition_averaged_form_validates_and_rejects_repeated_stimuli():
    avg = average_repetitions(toy_recording())
    validate(avg)
    doubled = xr.concat([avg, avg], dim="presentation")
    with pytest.raises(ValidationError, match="appears more than once in a repetition-averaged recording"):
        validate(doubled)
    unmarked = avg.copy()
    del unmarked.attrs["repetitions_averaged"]
    with pytest.raises(ValidationError, match="missing coordinate 'repetition'"):
        validate(unmarked)
