"""Bad-input corpus, recordings: nonsense is refused by the validator in one line, naming the site.

The audit's cases: negative counts with ``units = counts``, 0 neuroids, data of magnitude 1e300 (scored
all-NaN with exit 0), and NetCDF files that are not NetCDF.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from neurofit.cli import main
from neurofit.data.io import read_recording, write_recording
from neurofit.data.recording import MAX_ABS_VALUE, make_recording, validate
from neurofit.errors import NeurofitError, ValidationError


def recording(values=None, units="counts", n_pres=4, n_neur=2, n_bins=3, starts=None, ends=None):
    values = np.ones((n_pres, n_neur, n_bins)) if values is None else values
    n_pres, n_neur, n_bins = values.shape
    return make_recording(
        values, stimulus_id=[f"s{i // 2}" for i in range(n_pres)], repetition=[i % 2 for i in range(n_pres)],
        neuroid_id=[f"n{i}" for i in range(n_neur)], region="IT",
        time_bin_start=10.0 * np.arange(n_bins) if starts is None else starts,
        time_bin_end=10.0 * np.arange(1, n_bins + 1) if ends is None else ends,
        identifier="toy", stimulus_set_identifier="toy", units=units)


@pytest.mark.parametrize(("shape", "message"), [
    ((4, 0, 3), "recording has no sites (neuroids): dim 'neuroid' has length 0"),
    ((0, 2, 3), "recording has no presentations"),
    ((4, 2, 0), "recording has no time bins"),
])
def test_an_empty_recording_is_refused(shape, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(recording(np.ones(shape)))


def test_negative_counts_are_refused_but_negative_rates_are_not():
    values = np.ones((4, 2, 3))
    values[2, 1, 0] = -3
    with pytest.raises(ValidationError, match=r"units 'counts' but a negative value -3 at neuroid 'n1', "
                                              r"presentation 2, time bin 0"):
        validate(recording(values, units="counts"))
    validate(recording(values, units="spikes/s"))  # baseline-subtracted rates can be negative


@pytest.mark.parametrize("magnitude", [1e300, -1e300, 1e13, np.finfo(np.float64).max])
def test_values_of_absurd_magnitude_are_refused(magnitude):
    values = np.ones((4, 2, 3))
    values[1, 0, 2] = magnitude
    with pytest.raises(ValidationError, match=rf"at neuroid 'n0', presentation 1, time bin 2 is larger in "
                                              f"magnitude than {re.escape(f'{MAX_ABS_VALUE:g}')}"):
        validate(recording(values, units="spikes/s"))
    values[1, 0, 2] = MAX_ABS_VALUE  # the bound itself is legal
    validate(recording(values, units="spikes/s"))


def test_a_recording_of_magnitude_1e300_fails_score_in_one_line(tmp_path, capsys):
    from test_scoring_cli import _score_args

    from conftest import TOY_BENCHMARK, toy
    from neurofit.data.stimuli import write_stimulus_set

    rec, stimuli, _ = toy(n_obj=4, per_obj=4)
    write_recording(rec * 1e300, tmp_path / "rec.nc")
    write_stimulus_set(stimuli, tmp_path / "stimuli.csv")
    (tmp_path / "toy.toml").write_text(TOY_BENCHMARK.format(mode="per_bin"))
    assert main(_score_args(tmp_path, tmp_path / "s.nc", tmp_path / "work")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is larger in magnitude than 1e+12" in err
    assert not (tmp_path / "s.nc").exists()


@pytest.mark.parametrize(("starts", "ends"), [([0, 10, 20], [10, 20, np.inf]), ([np.nan, 10, 20], [10, 20, 30])])
def test_time_bins_must_be_finite(starts, ends):
    with pytest.raises(ValidationError, match="must have finite start and end"):
        validate(recording(starts=starts, ends=ends))


@pytest.mark.parametrize("content", [b"", b"not netcdf at all", b"\x89HDF\r\n\x1a\n" + bytes(100)])
def test_a_file_that_is_not_netcdf_is_one_line(tmp_path, content):
    path = tmp_path / "rec.nc"
    path.write_bytes(content)
    with pytest.raises(NeurofitError, match=r"cannot read .*rec\.nc as NetCDF"):
        read_recording(path)


def test_a_truncated_netcdf_is_one_line(tmp_path):
    path = write_recording(recording(), tmp_path / "rec.nc")
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(NeurofitError, match=r"cannot read .*rec\.nc as NetCDF"):
        read_recording(path)


def _declared_only(path, shape, zlib=True):
    """A NetCDF file that declares ``rates`` of ``shape`` but stores no data: reading it yields fill values."""
    import netCDF4

    ds = netCDF4.Dataset(path, "w", format="NETCDF4")
    for name, n in zip(("presentation", "neuroid", "time_bin"), shape):
        ds.createDimension(name, n)
    ds.createVariable("rates", "f8", ("presentation", "neuroid", "time_bin"), zlib=zlib, fill_value=1.0)
    ds.close()
    return path


def test_a_small_netcdf_declaring_40_gb_is_refused_before_anything_is_allocated(tmp_path, capsys):
    import resource

    from neurofit.data.io import MAX_EXPANSION

    path = _declared_only(tmp_path / "bomb.nc", (200_000, 1000, 25))  # 8 KB on disk, 40 GB of fill values
    assert path.stat().st_size < 100_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ValidationError, match=rf"bomb\.nc: its variables would take 38147 MiB in memory, more than "
                                              rf"{MAX_EXPANSION}x the file's .* MiB .*refusing to allocate it"):
        read_recording(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 200_000  # KiB: nothing like 40 GB
    assert main(["data", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "refusing to allocate it" in err


def test_a_compressed_file_within_the_bound_reads(tmp_path):
    from neurofit.data.io import MIN_READ_LIMIT

    path = _declared_only(tmp_path / "ok.nc", (1000, 100, 25))  # 20 MB of fill values: under the floor
    assert 1000 * 100 * 25 * 8 < MIN_READ_LIMIT
    from neurofit.data.io import read_dataset

    assert read_dataset(path)["rates"].shape == (1000, 100, 25)  # fill values (read as NaN)
