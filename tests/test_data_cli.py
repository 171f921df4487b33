"""`neurofit data info` and `neurofit data validate`: readable output, one-line errors, exit status."""

import numpy as np

from neurofit.cli import main
from neurofit.data import make_recording, write_recording


def _write_toy(path, n_reps=6):
    rng = np.random.default_rng(0)
    signal = rng.gamma(2.0, 3.0, (30, 4, 1))
    rates = rng.poisson(np.repeat(signal, n_reps, axis=0) * np.ones((1, 1, 3))).astype(float)
    rec = make_recording(rates, stimulus_id=[f"s{i}" for i in range(30) for _ in range(n_reps)],
                         repetition=list(range(n_reps)) * 30, neuroid_id=[f"n{j}" for j in range(4)],
                         region=["V4", "V4", "IT", "IT"], time_bin_start=[0, 10, 20], time_bin_end=[10, 20, 30],
                         identifier="toy", stimulus_set_identifier="toy")
    return write_recording(rec, path)


def test_info_prints_dims_regions_bins_repetitions_and_reliability(tmp_path, capsys):
    path = _write_toy(tmp_path / "toy.nc")
    assert main(["data", "info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "stimuli: 30" in out and "repetitions per stimulus: min 6" in out
    assert "3 from 0 to 30 ms (10 ms wide)" in out
    assert "IT (2 sites)" in out and "V4 (2 sites)" in out
    reliability = float(out.split("IT: median ")[1].split()[0])
    assert 0.8 < reliability <= 1.0  # strong stimulus signal, Poisson noise


def test_validate_ok_and_errors_are_one_line(tmp_path, capsys):
    path = _write_toy(tmp_path / "toy.nc")
    assert main(["data", "validate", str(path)]) == 0
    assert "valid" in capsys.readouterr().out
    assert main(["data", "validate", str(tmp_path / "missing.nc")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.nc" in err and "Traceback" not in err
    bad = tmp_path / "bad.nc"
    bad.write_bytes(b"garbage")
    assert main(["data", "info", str(bad)]) == 2
    assert "cannot read" in capsys.readouterr().err
