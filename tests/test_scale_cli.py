"""``neurofit score --models ... --runner dask``: one ScoreSet per model, equal to the local runner's, resumable."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import TOY_BENCHMARK, toy
from neurofit.cli import main
from neurofit.data.io import write_recording
from neurofit.data.stimuli import write_stimulus_set
from neurofit.scoreset import read_scoreset

MODELS = ["cornet_z", "cornet_rt"]


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale-cli")
    rec, stimuli, _ = toy(n_obj=8, per_obj=8)
    write_recording(rec, root / "rec.nc")
    write_stimulus_set(stimuli, root / "stimuli.csv")
    (root / "toy.toml").write_text(TOY_BENCHMARK.format(mode="per_bin"))
    return root


def _args(root, out_dir, work, *extra):
    return ["score", "--models", *MODELS, "--benchmark", str(root / "toy.toml"), "--recording", str(root / "rec.nc"),
            "--stimuli", str(root / "stimuli.csv"), "--out-dir", str(out_dir), "--work-dir", str(work), "--quiet",
            "--no-cache", "--layers", "V4=V4", "IT=IT", "--grid", *extra]  # named layers: fewer commitment units


def _same_scoresets(a_path, b_path):
    a, b = read_scoreset(a_path), read_scoreset(b_path)
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert {k: v for k, v in a.attrs.items() if k != "created"} == {k: v for k, v in b.attrs.items() if k != "created"}


@pytest.mark.parametrize("bad, message", [
    (["--runner", "local", "--workers", "2"], "need --runner dask"),
    (["--concurrent-models", "2"], "need --runner dask"),
    (["--runner", "dask", "--scheduler", "tcp://127.0.0.1:8786"], "--cache-dir"),
    (["--out", "x.nc"], "--out-dir"),
])
def test_runner_options_that_do_not_fit_together_are_one_line_errors(toy_files, tmp_path, capsys, bad, message):
    assert main(_args(toy_files, tmp_path, tmp_path / "work", *bad)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_many_models_on_a_cluster_resume_after_the_client_is_killed(toy_files, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # the reference is the same command with the local runner, so that extraction (done by the client in both)
    # runs with the same torch settings
    reference = tmp_path / "local"
    local = subprocess.run([sys.executable, "-m", "neurofit.cli", *_args(toy_files, reference, tmp_path / "work-ref",
                                                                         "--runner", "local")],
                           env=env, capture_output=True, text=True, timeout=600)
    assert local.returncode == 0, local.stderr
    names = sorted(p.name for p in reference.glob("*.nc"))
    assert names == [f"{m}-toy.nc" for m in sorted(MODELS)]

    work, out = tmp_path / "work", tmp_path / "dask"
    cmd = [sys.executable, "-m", "neurofit.cli",
           *_args(toy_files, out, work, "--runner", "dask", "--workers", "2", "--cache-dir", str(tmp_path / "shared"),
                  "--concurrent-models", "2")]  # both models at once, each by its own client process
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(work.glob("*/*.npz"))) >= 4:
                break
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)  # the client and its LocalCluster's processes
    finally:
        proc.wait()
    finished = len(list(work.glob("*/*.npz")))
    assert finished >= 4 and not list(out.glob("*.nc"))
    left_by_the_killed_run = set((tmp_path / "shared" / "arrays").iterdir())

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "dask LocalCluster of 2 workers; dashboard http" in rerun.stderr
    resumed = sum(int(n) for n in re.findall(r"resumed (\d+) finished work units", rerun.stderr))
    assert resumed >= finished
    for name in names:
        _same_scoresets(reference / name, out / name)
    # the rerun removed the feature files it wrote (a killed run's folder stays, as docs/cluster.md says)
    assert set((tmp_path / "shared" / "arrays").iterdir()) == left_by_the_killed_run
