"""Pooled benchmarks: sessions scored one by one and concatenated by site; sessions without repeats get no ceiling."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neurofit.data.recording import average_repetitions, make_recording
from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError
from neurofit.scoreset import region_aggregate
from neurofit.scoring.benchmark import load_benchmark
from neurofit.scoring.data import has_trial_repeats
from neurofit.scoring.resolve import activations_from_arrays
from neurofit.scoring.score import score

MIRROR = Path(os.environ.get("NEUROFIT_DATA_PATH", "").split(os.pathsep)[0] or "/nonexistent")
COWLEY = ("210325", "210322", "190923", "210224")
HAVE_COWLEY = all((MIRROR / f"cowley2023_v4/images/images_{s}.zip").is_file() for s in COWLEY) and (
    MIRROR / "cowley2023_v4/responses_raw/responses_210325.npy").is_file()


def _toy(n=60, reps=4, sites=5, d=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"s{i:03d}" for i in range(n)]
    latent = rng.normal(size=(n, 3))
    signal = latent @ rng.normal(size=(3, sites))
    trials = signal[:, None, :, None] + rng.normal(size=(n, reps, sites, 1))
    rec = make_recording(trials.reshape(n * reps, sites, 1), stimulus_id=np.repeat(ids, reps),
                         repetition=np.tile(np.arange(reps), n), neuroid_id=[f"n{i}" for i in range(sites)],
                         region="V4", time_bin_start=[50.0], time_bin_end=[150.0], identifier="toy",
                         stimulus_set_identifier="toy", units="spikes/s")  # Gaussian: not counts
    stimuli = StimulusSet.from_arrays(rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8),
                                      pd.DataFrame({"stimulus_id": ids}), degrees=8, identifier="toy")
    feats = latent @ rng.normal(size=(3, d)) + 0.3 * rng.normal(size=(n, d))
    return rec, stimuli, activations_from_arrays({"V4": feats[None]}, ids, model_id="toy")


def test_ceiling_none_keeps_r_and_reports_no_ceiling(tmp_path):
    rec, stimuli, acts = _toy()
    with_ceiling = load_benchmark("cowley2023-v4-210325").replace(regression={"n_components": 3},
                                                                  aggregate={"n_bootstrap": 50})
    without = with_ceiling.replace(ceiling={"method": "none"})
    a = score(acts, with_ceiling, data=(rec, stimuli), progress=False, work_dir=tmp_path)
    b = score(acts, without, data=(rec, stimuli), progress=False, work_dir=tmp_path)
    np.testing.assert_array_equal(a["r"].values, b["r"].values)
    assert np.isfinite(a["ceiling"].values).all() and np.isfinite(a["ceiled"].values).all()
    assert np.isnan(b["ceiling"].values).all() and np.isnan(b["ceiled"].values).all()
    assert np.isnan(region_aggregate(b, "median_ceiled", "V4")).all()
    assert region_aggregate(b, "median_r", "V4")[0] == pytest.approx(np.median(b["r"].values))
    assert b.attrs["ceiling_method"] == "none"


def test_has_trial_repeats_tells_trials_from_averaged_responses():
    rec = _toy()[0]
    assert has_trial_repeats(rec) and not has_trial_repeats(average_repetitions(rec))


def test_pooled_benchmark_refuses_user_data_and_grid(tmp_path):
    rec, stimuli, acts = _toy()
    with pytest.raises(NeurofitError, match="pools the sessions"):
        score(acts, "cowley2023-v4", data=(rec, stimuli), progress=False, work_dir=tmp_path)
    with pytest.raises(NeurofitError, match="grid is per session"):
        score(acts, "cowley2023-v4", grid=True, progress=False, work_dir=tmp_path)


@pytest.fixture(scope="module")
def pooled(tmp_path_factory):
    from neurofit.models.train import shipped_checkpoint

    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEUROFIT_DATA_PATH", str(MIRROR))
        patch.setenv("NEUROFIT_HOME", str(home))
        checkpoint = str(shipped_checkpoint("cornet_z"))
        pooled = score(checkpoint, "cowley2023-v4", progress=False, out=home / "pooled.nc")
        single = score(checkpoint, "cowley2023-v4-210325", progress=False)
        averaged = score(checkpoint, "cowley2023-v4-210322", progress=False)
    return pooled, single, averaged


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not HAVE_COWLEY, reason="Cowley 2023 mirror absent (set NEUROFIT_DATA_PATH)")
def test_pooled_cowley_scoreset_has_209_sites_with_ceilings_only_for_210325(pooled):
    scores, _, _ = pooled
    assert scores.sizes["neuroid"] == 50 + 59 + 33 + 67
    sessions = [f"cowley2023-v4-{s}" for s in COWLEY]
    assert scores.attrs["sessions"] == sessions
    assert scores.attrs["sessions_with_ceiling"] == ["cowley2023-v4-210325"]
    assert scores.attrs["n_sites_per_session"] == dict(zip(sessions, (50, 59, 33, 67)))
    session = scores["session"].values.astype(str)
    ceiled_sites = np.isfinite(scores["ceiling"].values[:, 0])
    assert ceiled_sites.sum() == 50 and (session[ceiled_sites] == "cowley2023-v4-210325").all()
    assert np.isnan(scores["ceiled"].values[~ceiled_sites]).all()
    assert np.isfinite(scores["r"].values).all()
    assert len(set(scores["neuroid_id"].values.tolist())) == 209
    r = scores["r"].values[:, 0]
    assert region_aggregate(scores, "median_r", "V4")[0] == pytest.approx(np.median(r))
    for k, name in enumerate(sessions):
        assert scores["session_median_r"].values[k, 0, 0] == pytest.approx(np.median(r[session == name]))
    assert set(scores.attrs["committed_layers"]) == set(sessions)


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not HAVE_COWLEY, reason="Cowley 2023 mirror absent (set NEUROFIT_DATA_PATH)")
def test_pooled_cowley_scores_session_210325_exactly_as_its_own_benchmark(pooled):
    scores, single, _ = pooled
    own = scores["session"].values.astype(str) == "cowley2023-v4-210325"
    np.testing.assert_array_equal(scores["r"].values[own], single["r"].values)
    np.testing.assert_array_equal(scores["ceiled"].values[own], single["ceiled"].values)
    median = region_aggregate(scores, "median_ceiled", "V4")[0]
    assert median == region_aggregate(single, "median_ceiled", "V4")[0] and 0.0 < median < 1.0
    assert scores.attrs["committed_layers"]["cowley2023-v4-210325"] == single.attrs["committed_layers"]


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not HAVE_COWLEY, reason="Cowley 2023 mirror absent (set NEUROFIT_DATA_PATH)")
def test_pooled_cowley_scores_an_averaged_session_as_its_r_only_benchmark(pooled):
    scores, _, averaged = pooled
    own = scores["session"].values.astype(str) == "cowley2023-v4-210322"
    np.testing.assert_array_equal(scores["r"].values[own], averaged["r"].values)
    assert np.isnan(averaged["ceiling"].values).all() and averaged.attrs["ceiling_method"] == "none"
    assert scores.attrs["ceiling_method"]["cowley2023-v4-210322"] == "none"
