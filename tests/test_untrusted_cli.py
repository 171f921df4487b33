"""Bad-input corpus, the command line: each mistake is one line on stderr, exit 2, nothing half-written.

Options are checked before any model, data or work is touched; a full disk at the end of a run is
reported as a full disk and the finished work units stay in the work directory for the rerun.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys

import pytest
import torch
import xarray as xr
from test_scoring_cli import _score_args, toy_files  # noqa: F401  (fixture)

from neurofit import atomic
from neurofit.cli import main


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("neurofit: error: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(("extra", "message"), [
    (["--steps", "0"], "steps must be a whole number >= 1, got 0"),
    (["--steps", "-3"], "steps must be a whole number >= 1, got -3"),
    (["--device", "bogus"], "device 'bogus' is not a torch device; use 'cpu', 'cuda'"),
    (["--device", "meta"], "device 'meta' is not supported"),
    pytest.param(["--device", "cuda"], "device 'cuda' was asked for, but",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")),
])
def test_a_bad_run_option_is_one_line_before_any_work(toy_files, tmp_path, capsys, extra, message):  # noqa: F811
    out, work = tmp_path / "s.nc", tmp_path / "work"
    assert main(_score_args(toy_files, out, work, extra=extra)) == 2
    assert message in one_line_error(capsys)
    assert not out.exists() and not work.exists()


def test_an_out_that_is_a_directory_is_refused_before_any_work(toy_files, tmp_path, capsys):  # noqa: F811
    (tmp_path / "dir").mkdir()
    assert main(_score_args(toy_files, tmp_path / "dir", tmp_path / "work")) == 2
    assert "cannot write" in one_line_error(capsys) and not (tmp_path / "work").exists()


def test_a_full_disk_at_the_end_is_reported_and_finished_work_is_kept(toy_files, tmp_path, capsys,  # noqa: F811
                                                                      monkeypatch):
    # netCDF reports a full disk only as RuntimeError('NetCDF: HDF error')
    def hdf_error(*args, **kwargs):
        raise RuntimeError("NetCDF: HDF error")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", hdf_error)
    monkeypatch.setattr(atomic.shutil, "disk_usage", lambda _p: shutil._ntuple_diskusage(10**9, 10**9, 4096))
    out, work = tmp_path / "s.nc", tmp_path / "work"
    assert main(_score_args(toy_files, out, work)) == 2
    err = one_line_error(capsys)
    assert f"no space left on the device for {out}" in err and "free some space and rerun" in err
    assert not out.exists() and list(tmp_path.glob(".s.nc*")) == []
    assert len(list(work.rglob("*.npz"))) > 0  # the rerun resumes from these


@pytest.mark.slow
def test_a_really_full_out_disk_through_the_cli(toy_files, tmp_path):  # noqa: F811
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1)")
    mount = tmp_path / "full"
    mount.mkdir()
    args = _score_args(toy_files, mount / "s.nc", tmp_path / "work")[1:]
    command = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "neurofit.cli", "score", *args])
    script = f"mount -t tmpfs -o size=16k tmpfs {shlex.quote(str(mount))} || exit 77; exec {command}"
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=600)
    if proc.returncode == 77:
        pytest.skip("cannot mount a tmpfs in a user namespace here")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "no space left on the device for" in proc.stderr
    assert len(list((tmp_path / "work").rglob("*.npz"))) > 0


def test_a_full_work_dir_is_reported_as_a_full_disk(toy_files, tmp_path, capsys, monkeypatch):  # noqa: F811
    import errno

    import numpy as np

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", no_space)  # how work units are written
    out, work = tmp_path / "s.nc", tmp_path / "work"
    assert main(_score_args(toy_files, out, work)) == 2
    err = one_line_error(capsys)
    assert "no space left on the device for" in err and str(work) in err and not out.exists()
