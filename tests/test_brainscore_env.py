"""Brain-Score's own code in its own environment (tests/brainscore_venv.py) against neurofit.

Brain-Score writes a temporal assembly and a stimulus set with its own classes and writer and computes its
metrics and ceilings on them (brainscore_env/make_reference.py); neurofit converts the same files and must give
the same numbers. A real Brain-Score model (brainscore_env/real_model.py) and a plugin exported by neurofit run
in that environment and are recorded from neurofit through :class:`~neurofit.brainscore.ExternalBrainModel`.
Slow: the first run builds the environment (minutes); later runs check the cached one file by file.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from neurofit.brainscore import ExternalBrainModel, activations_from_brain_model, export_plugin
from neurofit.brainscore.model import brainscore_stimuli
from neurofit.data.loaders.brainio import convert_brainio
from neurofit.data.recording import select, trial_array
from neurofit.errors import NeurofitError
from neurofit.regression.ceiling import brainscore_ceiling

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent / "brainscore_env"
sys.path.insert(0, str(HERE))
import real_model  # noqa: E402  (torch-only half of the real Brain-Score model)
from brainscore_venv import brainscore_python, run_in_brainscore  # noqa: E402


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("brainscore")
    run_in_brainscore([str(HERE / "make_reference.py"), str(out)], timeout=900)
    return out, json.loads((out / "reference.json").read_text())


@pytest.fixture(scope="module")
def converted(reference):
    out, ref = reference
    files = ref["files"]
    return convert_brainio(out / files["assembly"], out / files["stimulus_csv"], out / files["stimulus_zip"],
                           expected_sha1=files["assembly_sha1"], stimulus_csv_sha1=files["csv_sha1"],
                           stimulus_zip_sha1=files["zip_sha1"], degrees=8.0)


def _trials(recording):
    # Brain-Score halves repetition indices: trial slots in repetition order, stimuli sorted by id
    order = np.lexsort((recording.repetition.values, recording.stimulus_id.values))
    return trial_array(recording.isel(presentation=order))[0]


def test_an_assembly_brainscore_wrote_converts_losslessly(reference, converted):
    out, ref = reference
    recording, stimuli = converted
    loaded = np.load(out / "brainscore_loaded.npz")
    key = [f"{s}/{r}" for s, r in zip(recording.stimulus_id.values, recording.repetition.values)]
    theirs = [f"{s}/{r}" for s, r in zip(loaded["stimulus_id"], loaded["repetition"])]
    rows = [theirs.index(k) for k in key]
    np.testing.assert_array_equal(recording.values, loaded["values"][rows])  # NaN trials included
    assert recording.neuroid_id.values.tolist() == loaded["neuroid_id"].tolist()
    # object_name lives in Brain-Score's stimulus set; its loader merges it into the assembly, and so does neurofit
    assert recording.object_name.values.tolist() == loaded["object_name"][rows].tolist()
    assert recording.time_bin_start.values.tolist() == [b[0] for b in ref["bins"]]
    assert (recording.time_bin_end.values - recording.time_bin_start.values == 10).all()
    assert sorted(stimuli.stimulus_ids) == sorted(set(recording.stimulus_id.values.tolist()))
    assert "matches the expected value" in recording.attrs["sha1_check"]


def test_ceilings_equal_brainscores_internal_consistency(reference, converted):
    _, ref = reference
    recording, _ = converted
    it = select(recording, region="IT")
    per_site, aggregate = brainscore_ceiling(_trials(it))
    temporal = ref["spantime_pls"]
    np.testing.assert_allclose(aggregate, temporal["ceiling"], rtol=1e-12, atol=1e-14)
    # ceiling_per_split_site: split x neuroid x time_bin
    np.testing.assert_allclose(per_site, np.mean(temporal["ceiling_per_split_site"], axis=0), rtol=1e-12,
                               atol=1e-14)
    window = it.mean("time_bin", keepdims=True)
    _, static = brainscore_ceiling(_trials(window))
    np.testing.assert_allclose(static, ref["static_pls"]["ceiling"], rtol=1e-12, atol=1e-14)


def _few_stimuli(converted, n=6):
    _, stimuli = converted
    return stimuli.subset(stimuli.stimulus_ids[:n])


def test_a_real_brainscore_model_recorded_from_neurofit(converted, reference, tmp_path):
    _, ref = reference
    stimuli = _few_stimuli(converted)
    bins = [tuple(b) for b in ref["bins"][:3]]
    with ExternalBrainModel(brainscore_python(), factory=f"{HERE / 'real_model.py'}:build") as external:
        acts = activations_from_brain_model(external, stimuli, ["V4", "IT"], bins)
    assert acts.attrs["model_id"] == real_model.IDENTIFIER
    shown = brainscore_stimuli(stimuli, 8.0, tmp_path)  # the same PNG files the model was shown
    paths = [shown.get_stimulus(s) for s in stimuli.stimulus_ids]
    for region, layer in real_model.REGION_LAYERS.items():
        expected = real_model.layer_features(paths, layer)
        for step in range(len(bins)):  # a static model answers every bin with its one response
            np.testing.assert_allclose(acts.features(region, step).values, expected, rtol=1e-5, atol=1e-6)


def test_a_neurofit_plugin_loaded_and_recorded_by_brainscore(converted, tmp_path):
    from neurofit.extract.extract import extract_activations
    from neurofit.models.checkpoint import load_model
    from neurofit.models.train import shipped_checkpoint
    from neurofit.scoring import timemap

    folder = export_plugin("convrnn_rgc", tmp_path / "neurofit_convrnn_rgc", region_layers={"IT": "conv4"})
    check = ("import sys; from brainscore_core.metadata import contract; "
             "doc = contract.load(open(sys.argv[1]).read(), domain='vision'); print(sorted(doc['models']))")
    assert "neurofit_convrnn_rgc" in run_in_brainscore(["-c", check, str(folder / "metadata.yml")]).stdout
    stimuli = _few_stimuli(converted)
    bins = [(float(t), t + 10.0) for t in range(0, 80, 10)]
    with ExternalBrainModel(brainscore_python(), "neurofit_convrnn_rgc", plugins=[folder]) as external:
        acts = activations_from_brain_model(external, stimuli, ["IT"], bins)
    network = load_model(shipped_checkpoint("convrnn_rgc"))
    # the stimuli subtend the model's 8 degrees: shown as they are, in both environments
    ours = extract_activations(network, stimuli, steps=8, reduction=None, cache=False, progress=False)
    refs = timemap.portion(bins, "conv4", network.time_map(steps=8), n_steps=8).refs
    for step, terms in enumerate(refs):
        if not terms:  # before conv4's declared arrival (step 3): no image-driven signal
            continue
        expected = sum(r.weight * ours.features("conv4", r.step).values for r in terms)
        np.testing.assert_allclose(acts.features("IT", step).values, expected, rtol=1e-5, atol=1e-6)


def test_a_model_that_fails_in_its_environment_is_reported_in_one_line():
    external = ExternalBrainModel(brainscore_python(), factory=f"{HERE / 'real_model.py'}:no_such_factory")
    with pytest.raises(NeurofitError, match=r"failed to load in .*python: AttributeError: .*no_such_factory"):
        external.visual_degrees()


# ------------------------------------------------------------------------------------- Brain-Score mode
# Benchmarks in Brain-Score mode, written as TOML files, scored through neurofit's benchmark route on the files
# Brain-Score wrote, against the numbers Brain-Score's own metrics computed on them (make_reference.py)

TOML = """id = "{id}"
version = "1"
[dataset]
id = "neurofit.Toy2024"
[neural]
regions = ["IT"]
bins = {bins}
[stimuli]
degrees = 8.0
[regression]
metric = "{metric}"
n_components = 25
algorithm = "nipals"
split_scheme = "brainscore"
temporal_mode = "{mode}"
{regression}
[ceiling]
method = "brainscore"
n_splits = 10
seed = 1
normalisation = "r2_over_ceiling"
[mapping]
policy = "{policy}"
[commitment]
fraction = 0.0
[aggregate]
method = "brainscore"
n_bootstrap = 0
"""
CASES = {  # reference key: (temporal mode, metric, static window?, [regression] lines)
    "spantime_pls": ("span_time", "pls", False, "n_splits = 10\nseed = 1"),
    "per_bin_pls": ("per_bin", "pls", False, "n_splits = 10\nseed = 1"),
    "static_pls": ("per_bin", "pls", True, "n_splits = 10\nseed = 1"),
    "static_ridge": ("per_bin", "ridge", True, "n_splits = 10\nseed = 1\nalpha = 1.0"),
    "static_ridge_knobs": ("per_bin", "ridge", True,
                           "n_splits = 5\nseed = 3\nalpha = 0.25\ntrain_size = 0.8\nstratify = false"),
}


def _static_recording(recording, window):
    # Brain-Score's static assembly is the mean of the 10 ms bins with NaN skipped (xarray's skipna); neurofit
    # sums bins into a window only where every bin is present, so the window is given here as Brain-Score made it
    static = recording.mean("time_bin", keepdims=True)
    static = static.assign_coords(time_bin_start=("time_bin", [float(window[0])]),
                                  time_bin_end=("time_bin", [float(window[1])]))
    static.attrs = dict(recording.attrs)
    return static


@pytest.fixture(scope="module")
def brainscore_mode(reference, converted, tmp_path_factory):
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.precomputed import score_precomputed

    out, ref = reference
    recording, _ = converted
    loaded = np.load(out / "features.npz")
    features, ids = loaded["features"], loaded["stimulus_id"].tolist()
    folder = tmp_path_factory.mktemp("benchmarks")
    results = {}
    for key, (mode, metric, static, regression) in CASES.items():
        bins = [ref["static_window"]] if static else ref["bins"]
        bid = f"toy-{key.replace('_', '-')}"
        path = folder / f"{bid}.toml"
        path.write_text(TOML.format(id=bid, bins=json.dumps(bins), metric=metric, mode=mode, regression=regression,
                                    policy="constant" if static else "one_to_one"))
        bench = load_benchmark(path)
        if static:  # the features of the window's first bin, as Brain-Score's static metrics were given them
            arrays, rec, t0 = {"IT": features[:, :, 0]}, _static_recording(recording, ref["static_window"]), 0.0
        else:  # one step per 10 ms bin from 70 ms: mapped one to one onto the bins
            arrays = {f"IT:{t + 1}": features[:, :, t] for t in range(features.shape[2])}
            rec, t0 = recording, float(ref["bins"][0][0])
        results[key] = (bench, score_precomputed(arrays, path, stimulus_ids=ids, recording=rec, layers=["IT"],
                                                 t0_ms=t0, progress=False, model_id=key))
    return results


@pytest.mark.parametrize("key", list(CASES))
def test_brainscore_mode_reproduces_brainscores_numbers(brainscore_mode, reference, key):
    _, ref = reference
    expected = ref[key]
    bench, scores = brainscore_mode[key]
    it = scores.region_name.values.tolist().index("IT")
    tol = {"rtol": 0, "atol": 1e-9}
    for name, theirs in (("benchmark_score", "score"), ("benchmark_score_error", "score_error"),
                         ("benchmark_r", "raw"), ("benchmark_r_error", "raw_error"),
                         ("benchmark_ceiling", "ceiling"), ("benchmark_ceiling_error", "ceiling_error")):
        np.testing.assert_allclose(scores[name].values[it], expected[theirs], err_msg=name, **tol)
    # per split: the median r over sites, the per-site r and the per-site ceilings (Brain-Score's raw values)
    np.testing.assert_allclose(scores["benchmark_r_split"].values[it], np.reshape(expected["raw_per_split"],
                                                                                  scores["benchmark_r_split"].shape[1:]),
                               **tol)
    sites = [scores.neuroid_id.values.tolist().index(n) for n in expected["r_neuroid_id"]]
    n_bins = scores.sizes["time_bin"]
    np.testing.assert_allclose(scores["r_fold"].values[:, sites],
                               np.reshape(expected["r_per_split_site"], (-1, len(sites), n_bins)), **tol)
    np.testing.assert_allclose(scores["ceiling_split_sites"].values[:, sites],
                               np.reshape(expected["ceiling_per_split_site"], (-1, len(sites), n_bins)), **tol)
    # the run's features stayed float64 (float32 storage alone moves r by ~1e-8)
    assert scores.attrs["regression_device"] == "cpu (float64)"
    assert scores.attrs["headline"] == "benchmark_score"
    if bench.regression.alpha is not None:
        assert scores.attrs["ridge_alpha"] == bench.regression.alpha == expected.get("settings", {}).get("alpha", 1.0)


@pytest.mark.parametrize(("key", "splits"), [("static_pls", "splits"), ("static_ridge_knobs", "splits_knobs")])
def test_brainscore_mode_stores_brainscores_splits(brainscore_mode, reference, key, splits):
    _, ref = reference
    _, scores = brainscore_mode[key]
    ids = scores.stimulus_id.values
    stored = [{"train": sorted(ids[scores.split_train.values[f]].tolist()),
               "test": sorted(ids[scores.split_test.values[f]].tolist())} for f in range(scores.sizes["fold"])]
    assert stored == [{"train": sorted(s["train"]), "test": sorted(s["test"])} for s in ref[splits]]


def test_brainscore_mode_prints_brainscores_number_first(brainscore_mode, reference):
    from neurofit.scoreset import summary_table

    _, ref = reference
    _, scores = brainscore_mode["static_pls"]
    lines = summary_table(scores).splitlines()
    assert lines[0].startswith("Brain-Score's number")
    expected = ref["static_pls"]
    assert lines[1] == (f"IT 70-150 ms: score {expected['score'][0]:.4f} +- {expected['score_error'][0]:.4f} | raw r "
                        f"{expected['raw'][0]:.4f} +- {expected['raw_error'][0]:.4f} | ceiling "
                        f"{expected['ceiling'][0]:.4f} +- {expected['ceiling_error'][0]:.4f}")
    assert lines[2].endswith(", ".join(f"{v:.4f}" for v in np.ravel(expected["raw_per_split"])))
