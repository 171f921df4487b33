"""``neurofit score`` / ``compare`` from the command line: output, files, resuming, and one-line errors."""

from __future__ import annotations

import os
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


@pytest.fixture(scope="module")
def toy_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    rec, stimuli, _ = toy(n_obj=8, per_obj=8)
    write_recording(rec, root / "rec.nc")
    write_stimulus_set(stimuli, root / "stimuli.csv")
    (root / "toy.toml").write_text(TOY_BENCHMARK.format(mode="per_bin"))
    return root


def _score_args(root, out, work, model="cornet_z", extra=()):
    return ["score", "--model", model, "--benchmark", str(root / "toy.toml"), "--recording", str(root / "rec.nc"),
            "--stimuli", str(root / "stimuli.csv"), "--out", str(out), "--work-dir", str(work), "--quiet",
            "--no-cache", *extra]


def test_score_prints_a_region_by_bin_table_and_writes_the_scoreset(toy_files, tmp_path, capsys):
    assert main(_score_args(toy_files, tmp_path / "z.nc", tmp_path / "work")) == 0
    text = capsys.readouterr().out
    assert "median ceiled" in text and "95% CI (stimuli)" in text and text.count("\nIT ") == 5
    scores = read_scoreset(tmp_path / "z.nc")
    # a feedforward model on a temporal benchmark: its one response stands for every bin, and it says so
    assert scores.attrs["mapping_policy"] == "constant" and scores.attrs["unroll_steps"] == 1
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_compare_prints_paired_tests_and_writes_a_labelled_dataset(toy_files, tmp_path, capsys):
    for name in ("a", "b"):
        assert main(_score_args(toy_files, tmp_path / f"{name}.nc", tmp_path / "work",
                                extra=["--layers", "V4=V2", "IT=IT"] if name == "b" else [])) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a.nc"), str(tmp_path / "b.nc"), "--out", str(tmp_path / "c.nc"),
                 "--n-boot", "100"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("compared: ceiled score per site, B - A = median of paired per-site differences")
    assert "B - A [" in text and "q (fdr_bh)" in text and text.count("cornet_z#2 vs cornet_z") == 10
    assert "cornet_z#2 (B) vs cornet_z (A, reference)" in text
    result = read_scoreset_like(tmp_path / "c.nc")
    assert result.median_difference.dims == ("comparison", "region", "time_bin")


def read_scoreset_like(path):
    from neurofit.data.io import read_dataset

    return read_dataset(path)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["score", "--model", "cornet_z", "--benchmark", "no-such-benchmark"],
         "unknown benchmark 'no-such-benchmark'; valid benchmarks: "),
        (["score", "--model", "no_such_net", "--benchmark", "synthetic-ventral-it-temporal"],
         "unknown zoo model 'no_such_net'; valid names: "),
        (["compare", "only-one.nc"], "compare needs at least two ScoreSet files"),
        (["score", "--model", "cornet_zz", "--benchmark", "synthetic-ventral-it-temporal"],
         "unknown zoo model 'cornet_zz' (did you mean 'cornet_z'?)"),
        (["score", "--model", "cornet_z", "--benchmark", "synthetic-ventral-it-tempral"],
         "unknown benchmark 'synthetic-ventral-it-tempral' (did you mean 'synthetic-ventral-it-temporal'?)"),
        (["data", "info", "cowley2023-v4-210325"],
         "data info wants a recording file, and 'cowley2023-v4-210325' is a dataset id: for a dataset id use "
         "`neurofit data verify cowley2023-v4-210325`"),
        (["data", "info", "synthetic-ventral"], "`neurofit data generate synthetic-ventral --out FILE.nc`"),
    ],
)
def test_bad_input_is_one_line_and_exits_non_zero(args, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("neurofit: error: ") and message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("*.nc"))


def test_checkpoint_that_does_not_fit_the_architecture_names_the_keys(toy_files, tmp_path, capsys):
    import torch

    from neurofit.models.zoo.feedforward import cornet_z

    torch.save(cornet_z(width=8).state_dict(), tmp_path / "z.pt")
    status = main(_score_args(toy_files, tmp_path / "x.nc", tmp_path / "work", model=str(tmp_path / "z.pt"),
                              extra=["--arch", "cornet_rt"]))
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("neurofit: error: ") and err.count("\n") == 1
    assert "does not fit" in err and "decoder.linear.weight" in err and not (tmp_path / "x.nc").exists()


@pytest.mark.slow
def test_interrupted_score_resumes_without_redoing_finished_units(toy_files, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference.nc"
    uninterrupted = [sys.executable, "-m", "neurofit.cli",
                     *_score_args(toy_files, reference, tmp_path / "work-ref", model="cornet_rt")]
    assert subprocess.run(uninterrupted, env=env, capture_output=True, timeout=300).returncode == 0
    work = tmp_path / "work"
    out = tmp_path / "resumed.nc"
    cmd = [sys.executable, "-m", "neurofit.cli", *_score_args(toy_files, out, work, model="cornet_rt")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(work.glob("*/*.npz"))) >= 3:
                break
            time.sleep(0.005)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = len(list(work.glob("*/*.npz")))
    assert finished >= 3 and not out.exists()
    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    resumed = int(rerun.stderr.split("resumed ")[1].split()[0])
    assert resumed >= finished
    a, b = read_scoreset(reference), read_scoreset(out)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert {k: v for k, v in a.attrs.items() if k != "created"} == {k: v for k, v in b.attrs.items() if k != "created"}


@pytest.mark.slow
def test_compare_scores_named_models_on_a_benchmark_first(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "home"))
    bench = tmp_path / "small-it.toml"
    bench.write_text(
        'id = "small-it"\nversion = "1"\n[dataset]\nid = "synthetic-ventral"\noptions = { size = "small" }\n'
        '[neural]\nregions = ["IT"]\nbins = [[70, 170]]\n[stimuli]\ndegrees = 8.0\n'
        '[regression]\nn_components = 10\nn_splits = 5\n[aggregate]\nn_bootstrap = 100\n')
    assert main(["compare", "--models", "cornet_z", "deep_ff", "--benchmark", str(bench), "--n-boot", "100",
                 "--out", str(tmp_path / "c.nc"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "deep_ff vs cornet_z" in text and "70-170" in text and (tmp_path / "c.nc").exists()
