"""Brain-Score models as neurofit features, and neurofit models as Brain-Score plugins (without Brain-Score).

The same plugin is loaded by Brain-Score itself in tests/test_brainscore_env.py (slow).
"""

import ast
import importlib
import json
import sys
import types

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from neurofit.brainscore import activations_from_assembly, activations_from_brain_model, export_plugin
from neurofit.brainscore.model import brainscore_stimuli
from neurofit.brainscore.plugin import UntrainedWeightsWarning, vendored_modules
from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError, ValidationError
from neurofit.extract.extract import extract_activations
from neurofit.models.checkpoint import load_model
from neurofit.models.train import shipped_checkpoint
from neurofit.scoring import timemap

BINS = [(t, t + 10.0) for t in range(0, 80, 10)]


def _stimuli(n=6, size=32, degrees=8.0, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    table = pd.DataFrame({"stimulus_id": [f"im{k:02d}" for k in range(n)],
                          "object_name": [f"obj{k % 3}" for k in range(n)]})
    return StimulusSet.from_arrays(images, table, degrees=degrees, identifier="toy")


class QuadrantModel:
    """A small Brain-Score-style model: mean colour of each image quadrant, with a gain that grows per bin."""

    identifier = "quadrants"

    def __init__(self, degrees=8.0):
        self.degrees = degrees
        self.calls = []

    def visual_degrees(self):
        return self.degrees

    def start_recording(self, region, time_bins):
        self.region, self.time_bins = region, list(time_bins)
        self.calls.append((region, list(time_bins)))

    def features(self, path):
        from PIL import Image

        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float64) / 255
        h = pixels.shape[0] // 2
        return np.concatenate([pixels[:h, :h].mean((0, 1)), pixels[h:, h:].mean((0, 1))])

    def look_at(self, stimuli, number_of_trials=1):
        ids = list(stimuli["stimulus_id"])
        base = np.stack([self.features(stimuli.get_stimulus(s)) for s in ids])
        gain = 1 + np.arange(len(self.time_bins))
        values = base[:, :, None] * gain[None, None, :]
        # repeated presentations, as a stochastic model would return them; Brain-Score's MultiIndex layout
        values = np.concatenate([values, values + 0.5])
        assembly = xr.DataArray(
            values, dims=("presentation", "neuroid", "time_bin"),
            coords={"stimulus_id": ("presentation", ids * 2), "repetition": ("presentation", [0] * len(ids) + [1] *
                                                                              len(ids)),
                    "neuroid_id": ("neuroid", [f"q{k}" for k in range(6)]), "region": ("neuroid", [self.region] * 6),
                    "time_bin_start": ("time_bin", [b[0] for b in self.time_bins]),
                    "time_bin_end": ("time_bin", [b[1] for b in self.time_bins])})
        return assembly.set_index(presentation=["stimulus_id", "repetition"], neuroid=["neuroid_id", "region"],
                                  time_bin=["time_bin_start", "time_bin_end"])


def test_a_brain_model_becomes_one_layer_per_region_and_one_step_per_bin():
    stimuli = _stimuli()
    model = QuadrantModel()
    acts = activations_from_brain_model(model, stimuli, ["V4", "IT"], BINS[:3])
    assert model.calls == [("V4", BINS[:3]), ("IT", BINS[:3])]
    assert acts.layers == ["V4", "IT"] and acts.n_steps("IT") == 3
    assert [acts.step_window("IT", t) for t in range(3)] == BINS[:3]
    # shown at the model's own visual angle (no rescaling here), so the features are the images' own
    raw = np.stack(stimuli.read_raw()).astype(np.float64) / 255
    direct = np.concatenate([raw[:, :16, :16].mean((1, 2)), raw[:, 16:, 16:].mean((1, 2))], axis=1)
    for t in range(3):
        np.testing.assert_allclose(acts.features("IT", t).values, direct * (t + 1) + 0.25, rtol=1e-6)
    assert acts.attrs["model_id"] == "quadrants" and "regions V4, IT" in acts.attrs["brainscore_model"]


def test_stimuli_are_placed_on_the_models_screen():
    stimuli = _stimuli(n=2, degrees=4.0)
    shown = brainscore_stimuli(stimuli, 8.0, _tmp())
    from PIL import Image

    image = np.asarray(Image.open(shown.get_stimulus("im00")))
    assert image.shape == (32, 32, 3)
    assert (image[0, 0] == 128).all() and (image[31, 31] == 128).all()  # the gray screen around it
    assert list(shown["object_name"]) == ["obj0", "obj1"]


def _tmp():
    import tempfile

    return tempfile.mkdtemp()


def test_bad_assemblies_are_named():
    stimuli = _stimuli(n=3)

    class NoTime(QuadrantModel):
        def look_at(self, stimuli, number_of_trials=1):
            return super().look_at(stimuli).reset_index("time_bin").isel(time_bin=0, drop=True)

    with pytest.raises(ValidationError, match=r"has no 'time_bin' dim, but 2 time bins were asked for"):
        activations_from_brain_model(NoTime(), stimuli, ["IT"], BINS[:2])

    class Partial(QuadrantModel):
        def look_at(self, stimuli, number_of_trials=1):
            return super().look_at(stimuli).isel(presentation=slice(1, 3))

    with pytest.raises(ValidationError, match=r"look_at \(IT\) has no stimulus 'im00'"):
        activations_from_brain_model(Partial(), stimuli, ["IT"], BINS[:2])

    class Broken(QuadrantModel):
        def look_at(self, stimuli, number_of_trials=1):
            out = super().look_at(stimuli)
            return out.where(out < 0.3)

    with pytest.raises(ValidationError, match=r"holds NaN or Inf \(stimulus 'im0"):
        activations_from_brain_model(Broken(), stimuli, ["IT"], BINS[:2])
    with pytest.raises(NeurofitError, match="needs start_recording"):
        activations_from_brain_model(object(), stimuli, ["IT"], BINS[:2])
    with pytest.raises(NeurofitError, match="contiguous bins of equal width"):
        activations_from_brain_model(QuadrantModel(), stimuli, ["IT"], [(0, 10), (20, 30)])


def test_an_assembly_file_becomes_an_activation_set(tmp_path):
    model = QuadrantModel()
    model.start_recording("IT", BINS[:2])
    stimuli = _stimuli(n=3)
    assembly = model.look_at(brainscore_stimuli(stimuli, 8.0, tmp_path))
    # as Brain-Score's write_netcdf stores it: MultiIndex levels as plain coordinates, one variable
    assembly.reset_index(["presentation", "neuroid", "time_bin"]).to_dataset(name="data").to_netcdf(tmp_path / "a.nc")
    acts = activations_from_assembly(tmp_path / "a.nc")
    assert acts.layers == ["IT"] and acts.stimulus_ids == ["im00", "im01", "im02"]
    np.testing.assert_allclose(acts.features("IT", 1).values,
                               assembly.sel(repetition=0).isel(time_bin=1).values + 0.25, rtol=1e-6)
    no_time = assembly.reset_index("time_bin").isel(time_bin=0, drop=True)
    with pytest.raises(ValidationError, match="has no 'time_bin' dim"):
        activations_from_assembly(no_time)


# ------------------------------------------------------------------------------------------------ export
@pytest.fixture
def stub_brainscore(monkeypatch):
    """A stand-in for brainscore_vision's model registry: importing a plugin registers its model there."""
    module = types.ModuleType("brainscore_vision")
    module.model_registry = {}
    monkeypatch.setitem(sys.modules, "brainscore_vision", module)
    return module


def _import_plugin(folder, monkeypatch):
    monkeypatch.syspath_prepend(str(folder.parent))
    for name in [n for n in sys.modules if n == folder.name or n.startswith(folder.name + ".")]:
        monkeypatch.delitem(sys.modules, name)
    return importlib.import_module(folder.name)


def _expected(network, stimuli, region_layer, bins, steps):
    """neurofit's own extraction and portion time mapping of the same images: what look_at must return."""
    acts = extract_activations(network, stimuli, steps=steps, reduction=None, cache=False, progress=False)
    tm = network.time_map(steps=steps)
    # neurofit's scoring maps a feedforward model (one step) onto every bin: the constant policy
    mapping = timemap.constant if steps == 1 else timemap.portion
    refs = mapping(bins, region_layer, tm, n_steps=steps).refs
    n, d = len(stimuli), acts.n_features(region_layer)
    expected = np.stack([sum((r.weight * acts.features(r.layer, r.step).values for r in terms), np.zeros((n, d)))
                         for terms in refs], axis=-1)
    return expected, np.array([bool(terms) for terms in refs])


@pytest.mark.parametrize("name,regions,steps", [("convrnn_rgc", {"V4": "conv3", "IT": "conv4"}, 8),
                                                ("cornet_z", None, 1)])
def test_exported_plugin_records_what_neurofit_extracts(tmp_path, monkeypatch, stub_brainscore, name, regions, steps):
    folder = export_plugin(name, tmp_path / f"nf_{name}", region_layers=regions)
    assert {p.name for p in folder.iterdir()} >= {"__init__.py", "model.py", "test.py", "requirements.txt",
                                                    "metadata.yml", "weights.safetensors", "neurofit_model.json",
                                                    "neurofit_arch"}
    # Brain-Score finds plugins by this literal line in __init__.py
    assert f"model_registry['nf_{name}']" in (folder / "__init__.py").read_text()
    _import_plugin(folder, monkeypatch)
    brain_model = stub_brainscore.model_registry[f"nf_{name}"]()
    assert brain_model.identifier == f"nf_{name}" and brain_model.visual_degrees() == 8.0
    stimuli = _stimuli()
    network = load_model(shipped_checkpoint(name))
    shown = brainscore_stimuli(stimuli, 8.0, tmp_path)
    spec = json.loads((folder / "neurofit_model.json").read_text())
    for region, commitment in spec["regions"].items():
        brain_model.start_recording(region, BINS)
        got = brain_model.look_at(shown)
        assert got.dims == ("presentation", "neuroid", "time_bin")
        assert list(got["stimulus_id"].values) == stimuli.stimulus_ids
        assert list(got["object_name"].values) == list(stimuli.table["object_name"])
        expected, mapped = _expected(network, stimuli, commitment["layer"], BINS, steps)
        np.testing.assert_allclose(got.values[:, :, mapped], expected[:, :, mapped], rtol=1e-5, atol=1e-6)
        # bins before the layer's declared arrival hold its state then, the same for every image
        before = got.values[:, :, ~mapped]
        assert np.array_equal(before, np.broadcast_to(before[:1], before.shape))
        assert mapped.sum() == len(BINS) - spec["first_driven"][commitment["layer"]] * (not spec["feedforward"])
    if name == "convrnn_rgc":
        assert spec["first_driven"] == {"conv1": 0, "conv2": 1, "conv3": 2, "conv4": 3}


def test_a_plugin_model_wrapped_back_gives_its_own_responses(tmp_path, monkeypatch, stub_brainscore):
    folder = export_plugin("bl", tmp_path / "nf_bl", region_layers={"IT": "conv3"})
    _import_plugin(folder, monkeypatch)
    brain_model = stub_brainscore.model_registry["nf_bl"]()
    stimuli = _stimuli()
    acts = activations_from_brain_model(brain_model, stimuli, ["IT"], BINS[:4])
    brain_model.start_recording("IT", BINS[:4])
    direct = brain_model.look_at(brainscore_stimuli(stimuli, 8.0, tmp_path))
    for t in range(4):
        np.testing.assert_array_equal(acts.features("IT", t).values, direct.values[:, :, t])


def test_metadata_follows_brainscore_schema_2(tmp_path):
    folder = export_plugin("convrnn_rgc", tmp_path / "nf_rgc", identifier="neurofit-convrnn-rgc",
                           region_layers={"IT": "conv4"}, visual_degrees=10)
    meta = yaml.safe_load((folder / "metadata.yml").read_text())
    entry = meta["models"]["neurofit-convrnn-rgc"]
    assert meta["schema_version"] == "2.0" and meta["domain"] == "vision"
    assert entry["model"]["recurrent"] is True and entry["model"]["visual_degrees"] == 10.0
    assert entry["model"]["parameter_count"] == sum(p.numel() for p in load_model(
        shipped_checkpoint("convrnn_rgc")).parameters())
    assert "convrnn_rgc.safetensors" in entry["provenance"]["checkpoint"]
    # the copied code imports nothing from neurofit
    for path in [folder / "model.py", *(folder / "neurofit_arch").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                assert node.level > 0 or not (node.module or "").startswith("neurofit"), (path, node.module)
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("neurofit") for a in node.names), path


def test_export_refuses_what_cannot_travel(tmp_path):
    with pytest.raises(NeurofitError, match="neither a checkpoint file nor a zoo name"):
        export_plugin("no_such_net", tmp_path / "a")
    (tmp_path / "taken").mkdir()
    with pytest.raises(NeurofitError, match="taken exists"):
        export_plugin("cornet_z", tmp_path / "taken")
    with pytest.raises(NeurofitError, match="halts adaptively"):
        export_plugin("halting_convgru", tmp_path / "h")
    with pytest.raises(NeurofitError, match="no layer of BLTNet is named after a region"):
        export_plugin("bl", tmp_path / "b")
    with pytest.raises(NeurofitError, match="layer 'conv9' is not a layer"):
        export_plugin("bl", tmp_path / "b", region_layers={"IT": "conv9"})
    with pytest.warns(UntrainedWeightsWarning, match="untrained weights"):
        folder = export_plugin("cornet_rt", tmp_path / "rt")
    assert "untrained" in json.loads((folder / "neurofit_model.json").read_text())["checkpoint"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # nothing half-written left behind


def test_only_torch_model_code_is_copied():
    assert vendored_modules("neurofit.models.zoo.resnet_cifar") == [
        "neurofit.errors", "neurofit.models.base", "neurofit.models.hooks", "neurofit.models.zoo.resnet_cifar"]
    with pytest.raises(NeurofitError, match="'neurofit.scoring.score', which is not torch-only model code"):
        vendored_modules("neurofit.scoring.score")


def test_cli_export_brainscore(tmp_path, capsys):
    from neurofit.cli import main

    out = tmp_path / "nf_rgc"
    assert main(["export", "brainscore", "--model", "convrnn_rgc", "--out", str(out), "--layers", "V4=conv3",
                 "IT=conv4", "--identifier", "neurofit-rgc"]) == 0
    assert "Brain-Score plugin for neurofit-rgc" in capsys.readouterr().out
    spec = json.loads((out / "neurofit_model.json").read_text())
    assert spec["regions"] == {"V4": {"layer": "conv3", "offset_ms": 0.0}, "IT": {"layer": "conv4", "offset_ms": 0.0}}
    assert main(["export", "brainscore", "--model", "convrnn_rgc", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists" in err and "Traceback" not in err
    assert main(["export", "brainscore", "--model", "bl", "--out", str(tmp_path / "x"), "--layers", "IT"]) == 2
    assert "give REGION=LAYER" in capsys.readouterr().err
