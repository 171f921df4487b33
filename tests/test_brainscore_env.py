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
