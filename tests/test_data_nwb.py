"""NWB files -> recordings: spike counts per bin equal a direct count, repetitions, regions, missing trials."""

from datetime import UTC, datetime

import numpy as np
import pytest

pynwb = pytest.importorskip("pynwb")

from pynwb import NWBHDF5IO, NWBFile  # noqa: E402
from pynwb.epoch import TimeIntervals  # noqa: E402

from neurofit.cli import main  # noqa: E402
from neurofit.data import read_recording, trial_array  # noqa: E402
from neurofit.data.loaders.nwb import recording_from_nwb  # noqa: E402
from neurofit.errors import NeurofitError, ValidationError  # noqa: E402

STIMULI = ["img_b", "img_a", "img_d", "img_c", "img_e"]
REPEATS = {"img_a": 6, "img_b": 5, "img_c": 6, "img_d": 4, "img_e": 6}  # unequal, as after dropped trials
LOCATIONS = ["IT", "IT", "V4", "TEO", "IT", "V4"]  # TEO is not a neurofit region: mapped or left out
DURATION_S, GAP_S = 0.2, 0.15


def _session(seed=0):
    """A shuffled presentation schedule and Poisson spike trains whose rate depends on stimulus and time."""
    rng = np.random.default_rng(seed)
    shown = rng.permutation([s for s in STIMULI for _ in range(REPEATS[s])])
    onsets = 1.0 + np.arange(len(shown)) * (DURATION_S + GAP_S) + rng.uniform(0, 0.01, len(shown))
    trains = []
    for _u in range(len(LOCATIONS)):
        gain = rng.gamma(2.0, 20.0, len(STIMULI))
        spikes = [rng.uniform(0, onsets[-1] + 1.0, rng.poisson(5 * (onsets[-1] + 1.0)))]  # background
        for stim, onset in zip(shown, onsets):
            rate = gain[STIMULI.index(stim)]
            n = rng.poisson(rate * DURATION_S)
            spikes.append(onset + 0.03 + rng.exponential(0.06, n))  # a transient after a 30 ms latency
        trains.append(np.sort(np.concatenate(spikes)))
    return shown, onsets, trains


def _write(path, *, units=True, trials=True, presentations=False, obs=True, invalid=True, electrodes=True,
           stimulus_column="stimulus_id", seed=0):
    shown, onsets, trains = _session(seed)
    nwb = NWBFile(session_description="toy passive viewing", identifier="toy-session",
                  session_start_time=datetime(2021, 3, 25, tzinfo=UTC),
                  related_publications=["doi:10.0000/toy"])
    if electrodes:
        device = nwb.create_device("utah")
        groups = {loc: nwb.create_electrode_group(f"array_{loc}", description="array", location=loc, device=device)
                  for loc in sorted(set(LOCATIONS))}
        for loc in LOCATIONS:
            nwb.add_electrode(group=groups[loc], location=loc)
    if units:
        end = onsets[-1] + 1.0
        for u, spikes in enumerate(trains):
            kwargs = {"spike_times": spikes}
            if electrodes:
                kwargs["electrodes"] = [u]
            if obs:
                # unit 1 was lost for a while in the middle of the session (its trials then are missing)
                kwargs["obs_intervals"] = ([[0.0, onsets[10]], [onsets[14], end]] if u == 1 else [[0.0, end]])
            nwb.add_unit(**kwargs)
    if trials:
        nwb.add_trial_column(stimulus_column, "the image shown")
        nwb.add_trial_column("object_name", "the object in the image")
        for stim, onset in zip(shown, onsets):
            nwb.add_trial(start_time=onset, stop_time=onset + DURATION_S,
                          **{stimulus_column: stim, "object_name": f"obj_{stim[-1]}"})
    if presentations:
        table = TimeIntervals(name="presentations", description="image presentations")
        table.add_column("image_id", "the image shown")
        # rows written in reverse time order: the converter orders presentations by start_time
        for stim, onset in reversed(list(zip(shown, onsets))):
            table.add_row(start_time=onset, stop_time=onset + DURATION_S, image_id=stim)
        nwb.add_time_intervals(table)
    if invalid:
        nwb.add_invalid_time_interval(start_time=onsets[20] + 0.05, stop_time=onsets[20] + 0.06)
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path, shown, onsets, trains


def _direct_counts(onsets, trains, edges_ms):
    """Spikes in [onset + lo, onset + hi) counted one presentation, unit and bin at a time."""
    out = np.zeros((len(onsets), len(trains), len(edges_ms) - 1))
    for p, onset in enumerate(onsets):
        for u, spikes in enumerate(trains):
            for b in range(len(edges_ms) - 1):
                lo, hi = onset + edges_ms[b] / 1000, onset + edges_ms[b + 1] / 1000
                out[p, u, b] = np.count_nonzero((spikes >= lo) & (spikes < hi))
    return out


@pytest.fixture(scope="module")
def session_file(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("nwb") / "session.nwb", presentations=True)


def test_counts_per_bin_equal_a_direct_count(session_file):
    path, shown, onsets, trains = session_file
    rec = recording_from_nwb(path, region={"TEO": "IT"})
    expected = _direct_counts(onsets, trains, np.arange(0, 201, 10.0))
    expected[10:14, 1] = np.nan  # unit 1 unobserved
    expected[20, :] = np.nan  # overlaps invalid_times
    np.testing.assert_array_equal(rec.values, expected)
    assert rec.sizes == {"presentation": len(shown), "neuroid": 6, "time_bin": 20}  # default: 0 to 200 ms
    np.testing.assert_array_equal(rec.time_bin_start.values, np.arange(0, 200, 10.0))
    np.testing.assert_array_equal(rec.time_bin_end.values, np.arange(10, 201, 10.0))
    assert rec.values[~np.isnan(rec.values)].sum() > 1000  # a test with spikes in it
    assert "5 unit x presentation slots are NaN" not in rec.attrs["missing_trials"]
    assert rec.attrs["missing_trials"].startswith(f"{4 + 6} unit x presentation slots are NaN")
    assert rec.attrs["units"] == "counts" and rec.attrs["identifier"] == "toy-session"
    assert rec.attrs["citation"] == "doi:10.0000/toy" and len(rec.attrs["source_sha256"]) == 64


@pytest.mark.parametrize("bin_ms,window", [(25.0, (-50.0, 250.0)), (1.0, (20.0, 60.0)), (300.0, (0.0, 300.0))])
def test_any_bin_width_and_window_in_spikes_per_second(session_file, bin_ms, window):
    path, _, onsets, trains = session_file
    rec = recording_from_nwb(path, bin_ms=bin_ms, window_ms=window, region={"TEO": "IT"}, units="spikes/s")
    edges = np.arange(window[0], window[1] + bin_ms / 2, bin_ms)
    expected = _direct_counts(onsets, trains, edges) * 1000 / bin_ms
    np.testing.assert_allclose(rec.values[:10], expected[:10], rtol=1e-12)  # presentations before any gap
    assert rec.attrs["units"] == "spikes/s" and rec.attrs["bin_ms"] == bin_ms


def test_repeated_presentations_become_repetitions_in_time_order(session_file):
    path, shown, _, _ = session_file
    rec = recording_from_nwb(path, region={"TEO": "IT"})
    trials, ids = trial_array(rec)
    assert sorted(ids.tolist()) == sorted(STIMULI)
    for stim in STIMULI:
        mine = rec.repetition.values[rec.stimulus_id.values == stim]
        assert mine.tolist() == list(range(REPEATS[stim]))
    assert rec.stimulus_id.values.tolist() == list(shown)
    assert np.all(np.diff(rec.start_time.values) > 0)
    # the table's other columns ride along as presentation coordinates
    assert rec.object_name.values.tolist() == [f"obj_{s[-1]}" for s in shown]


def test_a_time_intervals_table_with_image_ids_written_out_of_order(session_file):
    path, shown, onsets, trains = session_file
    from_trials = recording_from_nwb(path, region={"TEO": "IT"})
    rec = recording_from_nwb(path, stimulus_table="presentations", region={"TEO": "IT"})
    assert rec.attrs["nwb_stimulus_column"] == "image_id"
    np.testing.assert_array_equal(rec.values, from_trials.values)
    assert rec.stimulus_id.values.tolist() == list(shown)


def test_region_comes_from_the_electrodes_table(session_file):
    path = session_file[0]
    rec = recording_from_nwb(path, region={"TEO": "IT"})
    assert rec.region.values.tolist() == ["IT", "IT", "V4", "IT", "IT", "V4"]
    assert rec.location.values.tolist() == LOCATIONS
    dropped = recording_from_nwb(path, region={"TEO": None})
    assert dropped.neuroid_id.values.tolist() == ["0", "1", "2", "4", "5"]
    assert recording_from_nwb(path, region="V4").region.values.tolist() == ["V4"] * 6
    with pytest.raises(ValidationError, match=r"unit 3 was recorded at location 'TEO', which is not a region"):
        recording_from_nwb(path)


def test_missing_tables_and_columns_are_named(tmp_path):
    no_units = _write(tmp_path / "no_units.nwb", units=False)[0]
    with pytest.raises(ValidationError, match=r"no_units.nwb: no units table \(the file holds no sorted spikes"):
        recording_from_nwb(no_units, region="IT")
    no_trials = _write(tmp_path / "no_trials.nwb", trials=False, invalid=False)[0]
    with pytest.raises(ValidationError, match=r"no_trials.nwb: no stimulus table \(no trials, epochs"):
        recording_from_nwb(no_trials, region="IT")
    other = _write(tmp_path / "other.nwb", presentations=True)[0]
    with pytest.raises(ValidationError, match=r"no stimulus table 'blocks'; its interval tables: .*presentations"):
        recording_from_nwb(other, stimulus_table="blocks", region="IT")
    with pytest.raises(ValidationError, match=r"no units table 'sorted'; its units tables: units"):
        recording_from_nwb(other, units_table="sorted", region="IT")
    unnamed = _write(tmp_path / "unnamed.nwb", stimulus_column="picture")[0]
    with pytest.raises(ValidationError, match=r"stimulus table 'trials' has no stimulus id column \(looked for "
                                              r"stimulus_id, .*; its columns: .*picture"):
        recording_from_nwb(unnamed, region="IT")
    assert recording_from_nwb(unnamed, stimulus_column="picture", region="IT").sizes["presentation"] == 27
    with pytest.raises(ValidationError, match=r"stimulus table 'trials' has no column 'picture_id'"):
        recording_from_nwb(unnamed, stimulus_column="picture_id", region="IT")
    no_electrodes = _write(tmp_path / "no_electrodes.nwb", electrodes=False)[0]
    with pytest.raises(ValidationError, match=r"links no electrodes .* give region="):
        recording_from_nwb(no_electrodes)
    assert recording_from_nwb(no_electrodes, region="IT").sizes["neuroid"] == 6
    not_nwb = tmp_path / "not.nwb"
    not_nwb.write_bytes(b"not an HDF5 file")
    with pytest.raises(NeurofitError, match=r"cannot read .*not.nwb as an NWB file"):
        recording_from_nwb(not_nwb)


def test_cli_from_nwb_writes_the_recording_and_errors_are_one_line(session_file, tmp_path, capsys):
    path = session_file[0]
    out = tmp_path / "rec.nc"
    assert main(["data", "from-nwb", str(path), "--units", "units", "--stimulus-table", "presentations",
                 "--bin-ms", "10", "--region", "TEO=IT", "--out", str(out)]) == 0
    assert "27 presentations x 6 units x 20 bins (10 ms)" in capsys.readouterr().out
    rec = read_recording(out)
    np.testing.assert_array_equal(rec.values, recording_from_nwb(path, stimulus_table="presentations",
                                                                 region={"TEO": "IT"}).values)
    assert main(["data", "from-nwb", str(path), "--stimulus-table", "blocks", "--out", str(tmp_path / "x.nc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no stimulus table 'blocks'" in err and "Traceback" not in err
    assert not (tmp_path / "x.nc").exists()
    no_units = _write(tmp_path / "no_units.nwb", units=False)[0]
    assert main(["data", "from-nwb", str(no_units), "--region", "IT"]) == 2
    assert "no units table" in capsys.readouterr().err
