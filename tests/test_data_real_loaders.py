"""Loaders of the real recordings (Cowley 2023 V4, Zhang & Desimone IT) and their bad-input errors."""

from __future__ import annotations

import os
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from neurofit.data import fetch
from neurofit.data.fetch import load_dataset
from neurofit.data.loaders.cowley2023 import cowley_recording
from neurofit.data.loaders.zhang_desimone import (
    NoStimulusSetWarning,
    read_raster_mat,
    zhang_desimone_recording,
)
from neurofit.data.recording import average_repetitions, bin_spikes, trial_array, validate
from neurofit.errors import NeurofitError, ValidationError
from neurofit.regression.ceiling import split_half_ceiling

MIRROR = Path(os.environ.get("NEUROFIT_DATA_PATH", "").split(os.pathsep)[0] or "/nonexistent")
COWLEY = MIRROR / "cowley2023_v4"
ZHANG = MIRROR / "zhang_desimone_it"

needs_cowley = pytest.mark.skipif(
    not (COWLEY / "responses_raw/responses_210325.npy").is_file(), reason="Cowley 2023 mirror absent"
)
needs_zhang = pytest.mark.skipif(
    not (ZHANG / "bp1001spk_01A_raster_data.mat").is_file(), reason="Zhang-Desimone mirror absent"
)


def reference_split_half(trials: np.ndarray, n_splits: int = 10, seed: int = 0) -> np.ndarray:
    """A plain-numpy Spearman-Brown split-half reliability per site, independent of the engine's.

    ``trials``: ``[n_stimuli, max_reps, n_sites]`` NaN-padded; each stimulus's own trials are halved.
    """
    rng = np.random.default_rng(seed)
    n_reps = (~np.isnan(trials[:, :, 0])).sum(axis=1)
    corrected = []
    for _ in range(n_splits):
        half_a = np.empty((trials.shape[0], trials.shape[2]))
        half_b = np.empty_like(half_a)
        for i, n in enumerate(n_reps):
            order = rng.permutation(n)
            half_a[i] = trials[i, order[: n // 2]].mean(axis=0)
            half_b[i] = trials[i, order[n // 2 :]].mean(axis=0)
        a = half_a - half_a.mean(axis=0)
        b = half_b - half_b.mean(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):  # silent sites give NaN, ignored by callers
            r = (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
        corrected.append(2 * r / (1 + r))
    return np.mean(corrected, axis=0)


def test_reference_split_half_matches_corrcoef_on_random_data():
    rng = np.random.default_rng(3)
    signal = rng.normal(size=(40, 1, 5))
    trials = signal + rng.normal(scale=0.5, size=(40, 6, 5))
    ours = reference_split_half(trials, n_splits=1, seed=11)
    order_rng = np.random.default_rng(11)
    halves = [order_rng.permutation(6) for _ in range(40)]
    a = np.stack([trials[i, h[:3]].mean(0) for i, h in enumerate(halves)])
    b = np.stack([trials[i, h[3:]].mean(0) for i, h in enumerate(halves)])
    r = np.array([np.corrcoef(a[:, j], b[:, j])[0, 1] for j in range(5)])
    np.testing.assert_allclose(ours, 2 * r / (1 + r), rtol=1e-12)


@pytest.fixture
def mirror_env(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(MIRROR))
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "cache"))


@pytest.mark.realdata
@needs_cowley
def test_cowley_210325_has_50_sites_640_stimuli_6_to_10_repeats_and_validates(mirror_env):
    recording, stimuli = load_dataset("cowley2023-v4-210325")
    validate(recording, stimuli)
    assert recording.sizes["neuroid"] == 50
    assert recording.sizes["time_bin"] == 1
    assert len(stimuli) == 640
    reps = recording.coords["stimulus_id"].to_series().value_counts()
    assert len(reps) == 640 and reps.min() >= 6 and reps.max() <= 10
    assert not np.isnan(recording.values).any(), "NaN repeats are dropped, not kept"
    assert set(recording.coords["region"].values) == {"V4"}
    assert recording.coords["neuroid_id"].values[0] == "210325.0"
    assert stimuli.stimulus_ids[0] == "210325/image0001"
    assert "assumption" in recording.attrs["time_window_note"]
    assert len(recording.attrs["source_sha256"]) == 64


@pytest.mark.realdata
@needs_cowley
def test_cowley_trial_mean_equals_the_authors_averaged_file(mirror_env):
    recording, _ = load_dataset("cowley2023-v4-210325")
    averaged = average_repetitions(recording)
    published = np.load(COWLEY / "responses_repeat_averaged/responses_210325.npy")
    assert averaged.coords["stimulus_id"].values[5] == "210325/image0006"
    np.testing.assert_allclose(averaged.values[:, :, 0].T, published, rtol=1e-12)


@pytest.mark.realdata
@needs_cowley
def test_cowley_210325_split_half_ceiling_median_is_near_077(mirror_env):
    recording, _ = load_dataset("cowley2023-v4-210325")
    trials, _ = trial_array(recording)
    median = float(np.median(split_half_ceiling(trials)))
    assert 0.72 < median < 0.82, median
    assert abs(median - np.median(reference_split_half(trials[..., 0]))) < 0.02


@pytest.mark.realdata
@needs_cowley
def test_cowley_images_come_in_name_order_even_from_a_subfolder(mirror_env):
    _, stimuli = load_dataset("cowley2023-v4-190923")
    assert stimuli.table["filename"].iloc[0] == "images_190923/image0001.jpg"
    raw = stimuli.read_raw(["190923/image0002"])[0]
    with zipfile.ZipFile(COWLEY / "images/images_190923.zip") as zf:
        from PIL import Image

        with zf.open("images_190923/image0002.jpg") as handle:
            expected = np.asarray(Image.open(handle).convert("RGB"))
    np.testing.assert_array_equal(raw, expected)


@pytest.mark.realdata
@needs_cowley
def test_cowley_sessions_without_trials_are_averaged_with_image_kinds(mirror_env):
    recording, stimuli = load_dataset("cowley2023-v4-210322")
    assert recording.sizes["presentation"] == 1200 and recording.sizes["neuroid"] == 59
    assert set(recording.coords["repetition"].values) == {0}
    assert recording.attrs["repetitions_averaged"] == 1
    assert "cannot be computed" in recording.attrs["repetitions"]
    kinds = recording.coords["image_kind"].values
    assert (kinds[:600] == "natural").all() and (kinds[600:] == "bashivan2019").all()
    assert stimuli.degrees == 8.0


def copy_cowley_session(tmp_path: Path) -> tuple[Path, Path, Path]:
    target = tmp_path / "cowley"
    target.mkdir()
    paths = []
    for rel in ("images/images_210325.zip", "responses_repeat_averaged/responses_210325.npy",
                "responses_raw/responses_210325.npy"):
        dst = target / rel.replace('/', '__')
        shutil.copyfile(COWLEY / rel, dst)
        paths.append(dst)
    return paths[0], paths[1], paths[2]


@pytest.mark.realdata
@needs_cowley
def test_truncated_zip_is_a_clear_error(tmp_path):
    images, averaged, raw = copy_cowley_session(tmp_path)
    images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
    with pytest.raises(NeurofitError, match=r"images_210325\.zip is not a readable zip"):
        cowley_recording(images, averaged, raw, session="210325")


@pytest.mark.realdata
@needs_cowley
def test_image_missing_from_the_zip_names_the_first_missing_id(tmp_path):
    images, averaged, raw = copy_cowley_session(tmp_path)
    smaller = tmp_path / "smaller.zip"
    with zipfile.ZipFile(images) as src, zipfile.ZipFile(smaller, "w") as dst:
        for name in src.namelist():
            if name not in ("image0007.jpg", "image0100.jpg"):
                dst.writestr(name, src.read(name))
    with pytest.raises(ValidationError, match=r"stimulus_id '210325/image0007'"):
        cowley_recording(smaller, averaged, raw, session="210325")


@pytest.mark.realdata
@needs_cowley
def test_trials_that_disagree_with_the_averaged_file_are_rejected(tmp_path):
    images, averaged, raw = copy_cowley_session(tmp_path)
    data = np.load(raw)
    data[3, 10, 0] += 1.0
    np.save(raw, data)
    with pytest.raises(ValidationError, match="neuron 3, image 11"):
        cowley_recording(images, averaged, raw, session="210325")


@pytest.mark.realdata
@needs_cowley
def test_mirror_file_with_wrong_hash_is_not_loaded(tmp_path, monkeypatch):
    copy_root = tmp_path / "mirror"
    for rel in ("images/images_210325.zip", "responses_repeat_averaged/responses_210325.npy",
                "responses_raw/responses_210325.npy"):
        (copy_root / "cowley2023_v4" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(COWLEY / rel, copy_root / "cowley2023_v4" / rel)
    averaged = copy_root / "cowley2023_v4/responses_repeat_averaged/responses_210325.npy"
    np.save(averaged, np.load(averaged) * 2)  # a plausible but wrong version of the file
    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(copy_root))
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "cache"))
    with pytest.raises(fetch.ChecksumError, match=r"responses_repeat_averaged/responses_210325\.npy"):
        load_dataset("cowley2023-v4-210325")


def load_zhang(**options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recording, stimuli = load_dataset("zhang-desimone-2011-it", **options)
    assert any(issubclass(w.category, NoStimulusSetWarning) for w in caught)
    return recording, stimuli


@pytest.fixture(scope="module")
def zhang_default(tmp_path_factory):
    """The default load (10 ms bins, spikes/s), shared by the tests that only read it."""
    if not (ZHANG / "bp1001spk_01A_raster_data.mat").is_file():
        pytest.skip("Zhang-Desimone mirror absent")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROFIT_DATA_PATH", str(MIRROR))
        patch.setenv("NEUROFIT_HOME", str(tmp_path_factory.mktemp("cache")))
        return load_zhang()


@pytest.mark.realdata
@needs_zhang
def test_zhang_desimone_loads_132_it_sites_in_10ms_bins_without_stimuli(zhang_default):
    recording, stimuli = zhang_default
    assert stimuli is None
    assert "not public" in recording.attrs["stimulus_set_note"]
    assert recording.sizes["neuroid"] == 132
    assert recording.sizes["time_bin"] == 100
    assert recording.coords["time_bin_start"].values[50] == 0.0
    assert recording.coords["time_bin_end"].values[50] == 10.0
    assert recording.attrs["units"] == "spikes/s"
    conditions = recording.coords["stimulus_id"].to_series().value_counts()
    assert len(conditions) == 21 and conditions.max() == 20
    assert set(recording.coords["object_name"].values) == {
        "car", "couch", "face", "flower", "guitar", "hand", "kiwi"}
    # 7 neurons have 419 trials: exactly their missing trial is NaN, nothing is imputed
    assert int(np.isnan(recording.values[:, :, 0]).sum()) == 7
    validate(recording)


@pytest.mark.realdata
@needs_zhang
def test_zhang_desimone_counts_equal_the_raw_raster_binned_by_hand(mirror_env):
    recording, _ = load_zhang(bin_ms=25, start_ms=-100, end_ms=400, units="counts")
    path = ZHANG / "bp1005spk_04C_raster_data.mat"
    mat = scipy.io.loadmat(path)
    raster = mat["raster_data"].astype(np.int64)
    labels = [str(x[0]) for x in mat["raster_labels"][0, 0]["combined_ID_position"].ravel()]
    trial = [i for i, label in enumerate(labels) if label == "face_lower"][3]
    expected = raster[trial, 400:900].reshape(20, 25).sum(axis=1)  # onset at sample 500
    site = recording.sel(presentation=(recording.stimulus_id == "face_lower") & (recording.repetition == 3))
    got = site.isel(neuroid=int(np.flatnonzero(recording.neuroid_id.values == "bp1005spk_04C")[0]))
    np.testing.assert_array_equal(got.values.ravel(), expected)
    assert recording.coords["time_bin_start"].values.tolist()[:2] == [-100.0, -75.0]


@pytest.mark.realdata
@needs_zhang
def test_zhang_desimone_population_psth_rises_after_onset(zhang_default):
    recording, _ = zhang_default
    psth = np.nanmean(recording.values, axis=(0, 1))
    starts = recording.coords["time_bin_start"].values
    before = psth[(starts >= -300) & (starts < 0)].mean()
    after = psth[(starts >= 100) & (starts < 300)].mean()
    assert after > before, (after, before)


@pytest.mark.realdata
@needs_zhang
def test_zhang_desimone_per_bin_reliability_is_higher_after_onset(zhang_default):
    recording, _ = zhang_default
    trials, _ = trial_array(recording)  # (21 conditions, 20 reps, 132 sites, 100 bins)
    starts = recording.coords["time_bin_start"].values
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN sites in silent bins
        median = np.nanmedian(split_half_ceiling(trials), axis=0)
    before = median[(starts >= -300) & (starts < 0)].mean()
    after = median[(starts >= 100) & (starts < 300)].mean()
    assert after > before + 0.1, (after, before)


def test_bin_spikes_reference_on_random_rasters():
    rng = np.random.default_rng(0)
    raster = (rng.random((7, 1000)) < 0.05).astype(np.uint8)
    counts, starts, ends = bin_spikes(raster, 10, -500, 500, onset_ms=500)
    np.testing.assert_array_equal(counts, raster.reshape(7, 100, 10).sum(-1))
    assert starts[0] == -500 and ends[-1] == 500


def write_raster(path: Path, *, drop: str | None = None, n_trials: int = 42) -> Path:
    rng = np.random.default_rng(1)
    objects = np.array(["car", "face"] * (n_trials // 2), dtype=object)
    positions = np.array((["upper"] * 2 + ["lower"] * 2) * (n_trials // 4) + ["upper"] * (n_trials % 4),
                         dtype=object)[:n_trials]
    labels = {"stimulus_ID": objects.reshape(1, -1), "stimulus_position": positions.reshape(1, -1)}
    site = {"session_ID": np.array([[1]]), "recording_channel": np.array([[2]]), "unit": "A",
            "alignment_event_time": np.array([[501]])}
    content = {
        "raster_data": (rng.random((n_trials, 1000)) < 0.02).astype(np.uint8),
        "raster_labels": labels,
        "raster_site_info": site,
    }
    if drop == "raster_data":
        del content["raster_data"]
    elif drop is not None:
        struct, field = drop.split(".")
        del content[struct][field]
    scipy.io.savemat(path, content)
    return path


def test_mat_without_expected_field_names_the_field(tmp_path):
    for missing in ("raster_data", "raster_labels.stimulus_position", "raster_site_info.alignment_event_time"):
        path = write_raster(tmp_path / f"no_{missing}.mat", drop=missing)
        with pytest.raises(ValidationError, match=rf"missing field '{missing}'") as err:
            read_raster_mat(path)
        assert str(path) in str(err.value)


def test_raster_alignment_and_pseudo_population_padding(tmp_path):
    full = write_raster(tmp_path / "n1_raster_data.mat", n_trials=40)
    short = write_raster(tmp_path / "n2_raster_data.mat", n_trials=36)
    recording = zhang_desimone_recording([full, short], bin_ms=100, start_ms=-200, end_ms=300)
    assert recording.coords["neuroid_id"].values.tolist() == ["n1", "n2"]
    info = read_raster_mat(full)
    first = [i for i, (o, p) in enumerate(zip(info["object"], info["position"])) if (o, p) == ("car", "upper")][0]
    expected = info["raster"][first, 300:800].reshape(5, 100).sum(1) * 10.0  # spikes/s in 100 ms bins
    np.testing.assert_allclose(recording.values[0, 0], expected)
    # n2 has 4 fewer trials: 4 NaN slots, in its last repetitions only
    missing = np.isnan(recording.values[:, 1, 0])
    assert missing.sum() == 4
    assert (recording.coords["repetition"].values[missing] >= 8).all()
