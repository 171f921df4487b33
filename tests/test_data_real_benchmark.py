"""The Cowley 2023 V4 benchmark file agrees with the dataset it names (dataset-level check)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from neurofit.data.fetch import load_dataset
from neurofit.data.manifest import get_manifest
from neurofit.data.recording import select, trial_array
from neurofit.regression.ceiling import split_half_ceiling
from neurofit.scoring.benchmark import load_benchmark

MIRROR = Path(os.environ.get("NEUROFIT_DATA_PATH", "").split(os.pathsep)[0] or "/nonexistent")


def test_cowley_benchmark_names_a_manifest_dataset():
    benchmark = load_benchmark("cowley2023-v4-210325")
    manifest = get_manifest(benchmark.dataset)
    assert manifest.loader == "cowley2023"
    assert benchmark.regions == ("V4",)
    assert benchmark.ceiling.method == "split_half" and benchmark.regression.metric == "pls"


@pytest.mark.realdata
@pytest.mark.skipif(not (MIRROR / "cowley2023_v4/responses_raw/responses_210325.npy").is_file(),
                    reason="Cowley 2023 mirror absent")
def test_cowley_benchmark_bins_regions_and_degrees_match_the_loaded_recording(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(MIRROR))
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path))
    benchmark = load_benchmark("cowley2023-v4-210325")
    recording, stimuli = load_dataset(benchmark.dataset)
    selected = select(recording, region=list(benchmark.regions), time_bins=list(benchmark.time_bins))
    assert selected.sizes["neuroid"] == 50 and selected.sizes["time_bin"] == 1
    assert stimuli.degrees == benchmark.degrees
    trials, _ = trial_array(selected)
    ceiling = split_half_ceiling(trials, n_splits=benchmark.ceiling.n_splits, seed=benchmark.ceiling.seed)
    assert np.isfinite(ceiling).all() and 0.72 < np.median(ceiling) < 0.82
