"""Precomputed features (issue 19 item 4): scored without a stimulus set, read from files, bad files refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr

from conftest import TOY_BENCHMARK, toy
from neurofit.cli import main
from neurofit.data.io import read_recording, write_recording
from neurofit.errors import NeurofitError
from neurofit.extract.precomputed import features_from_arrays, read_features, read_stimulus_order
from neurofit.scoring.precomputed import score_precomputed
from neurofit.scoring.score import read_scoreset, score

CREATED = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def toy_data():
    return toy(n_obj=8, per_obj=8)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin"))
    return path


def _score(features, bench, data, tmp_path, **options):
    return score(features, bench, data=data, progress=False, created=CREATED, work_dir=tmp_path / "work", **options)


def _same_numbers(a: xr.Dataset, b: xr.Dataset) -> None:
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)


def test_precomputed_features_are_scored_without_a_stimulus_set(toy_data, bench, tmp_path):
    rec, stimuli, acts = toy_data
    with_images = _score(acts, bench, (rec, stimuli), tmp_path)
    without = _score(acts, bench, (rec, None), tmp_path)
    _same_numbers(with_images, without)
    assert without.attrs["committed_layers"] == with_images.attrs["committed_layers"] == {"V4": "a", "IT": "b"}
    # the dataset hash covers what was used: the recording alone when no images were shown
    assert without.attrs["dataset_sha256"] != with_images.attrs["dataset_sha256"]


def test_a_model_still_needs_the_stimulus_set(toy_data, bench, tmp_path):
    rec, _, _ = toy_data
    with pytest.raises(NeurofitError, match="a model must be shown the stimuli"):
        _score("cornet_z", bench, (rec, None), tmp_path)


def test_features_lacking_a_recorded_stimulus_name_it_and_the_count(toy_data, bench, tmp_path):
    from neurofit.scoring.score import activations_from_arrays

    rec, _, acts = toy_data
    ids = acts.stimulus_ids[3:]
    partial = activations_from_arrays({layer: acts.dataset[layer].values[:, 3:] for layer in acts.layers}, ids)
    with pytest.raises(NeurofitError, match=r"stimulus_id 's000' of the recording is not in the features \(3 of 64 "):
        _score(partial, bench, (rec, None), tmp_path)


# ------------------------------------------------------------------------------------------------ files


def _arrays(acts):
    """The toy's features as torchlens-style per-pass arrays ``{layer:k: (stimulus, feature)}`` and their ids."""
    arrays = {f"{layer}:{t + 1}": acts.dataset[layer].values[t].astype(np.float64)
              for layer in acts.layers for t in range(acts.n_steps(layer))}
    return arrays, list(acts.stimulus_ids)


@pytest.fixture(scope="module")
def files(toy_data, tmp_path_factory):
    """The same features written in every format neurofit reads, with the arrays they hold."""
    import h5py
    import scipy.io
    from safetensors.numpy import save_file

    rec, _, acts = toy_data
    root = tmp_path_factory.mktemp("features")
    arrays, ids = _arrays(acts)
    write_recording(rec, root / "rec.nc")
    (root / "toy.toml").write_text(TOY_BENCHMARK.format(mode="per_bin"))
    (root / "order.txt").write_text("\n".join(ids) + "\n")
    (root / "file_names.txt").write_text("\n".join(f"objects/{sid}.png" for sid in ids) + "\n")
    (root / "order.csv").write_text("index,image\n" + "".join(f"{i},{sid}\n" for i, sid in enumerate(ids)))
    out = {}
    np.savez(root / "with_ids.npz", stimulus_id=np.array(ids), **arrays)
    np.savez(root / "torchlens.npz", **arrays)
    torch.save({**{k: torch.from_numpy(v) for k, v in arrays.items()}, "stimulus_id": ids}, root / "torchlens.pt")
    save_file(arrays, str(root / "torchlens.safetensors"))
    with h5py.File(root / "layers.h5", "w") as handle:
        for key, values in arrays.items():
            handle.create_dataset(key, data=values)
        handle.create_dataset("stimulus_id", data=np.array(ids, dtype=object), dtype=h5py.string_dtype())
    labelled = xr.Dataset({layer: xr.DataArray(acts.dataset[layer].values.astype(np.float64),
                                               dims=("step", "stimulus", "feature"))
                           for layer in acts.layers}, coords={"stimulus_id": ("stimulus", ids)})
    labelled.to_netcdf(root / "labelled.nc")
    for name in ("with_ids.npz", "torchlens.pt", "layers.h5", "labelled.nc"):
        out[name] = (None, arrays)
    for name in ("torchlens.npz", "torchlens.safetensors"):
        out[name] = ("order.txt", arrays)
    # thingsvision's save_features: one (stimulus, feature) matrix per file, the image order in file_names.txt
    single = {"features": arrays["b:3"]}
    np.save(root / "features.npy", single["features"])
    torch.save(torch.from_numpy(single["features"]), root / "features.pt")
    np.savetxt(root / "features.txt", single["features"])
    with h5py.File(root / "features.hdf5", "w") as handle:
        handle.create_dataset("features", data=single["features"])
    scipy.io.savemat(root / "features.mat", {"features": single["features"]})
    for name in ("features.npy", "features.pt", "features.hdf5", "features.mat"):
        out[name] = ("file_names.txt", single)
    out["features.txt"] = ("order.csv:image", single)
    (root / "split").mkdir()
    with h5py.File(root / "split" / "features.hdf5", "w") as handle:  # thingsvision's row splits
        handle.create_dataset("features_01", data=single["features"][:40])
        handle.create_dataset("features_02", data=single["features"][40:])
    out["split/features.hdf5"] = ("order.txt", single)
    return root, out, ids


FORMATS = ["with_ids.npz", "torchlens.npz", "torchlens.pt", "torchlens.safetensors", "layers.h5", "labelled.nc",
           "features.npy", "features.pt", "features.txt", "features.hdf5", "features.mat", "split/features.hdf5"]


def _order(root, spec):
    if spec is None:
        return None
    name, _, column = spec.partition(":")
    return read_stimulus_order(root / name, column or None)


@pytest.mark.parametrize("name", FORMATS)
def test_every_format_reads_as_the_arrays_it_holds(files, name):
    root, formats, ids = files
    order, arrays = formats[name]
    from_file = read_features(root / name, _order(root, order))
    from_arrays = features_from_arrays(arrays, ids)
    # the same ActivationSet, bit for bit: every variable and coordinate (values, dtype), layer order, time map
    xr.testing.assert_identical(from_file.dataset.drop_attrs(), from_arrays.dataset.drop_attrs())
    for layer in from_file.layers:
        assert from_file.dataset[layer].dtype == np.float64
    for key in ("layers", "time_map", "first_driven"):
        assert from_file.attrs[key] == from_arrays.attrs[key]
    assert from_file.attrs["source"] == str(root / name)


def test_recurrent_layers_keep_their_steps_and_step_times(files):
    root, _, ids = files
    acts = read_features(root / "torchlens.npz", root / "order.txt", step_ms=20.0, t0_ms=30.0)
    assert acts.layers == ["a", "b"] and acts.n_steps("a") == 5 and acts.driven_steps("a") == [0, 1, 2, 3, 4]
    assert acts.step_window("b", 2) == (70.0, 90.0)


def test_cli_scores_a_features_file_as_the_python_twin_scores_its_arrays(files, tmp_path, capsys):
    root, formats, ids = files
    _, arrays = formats["torchlens.npz"]
    out = tmp_path / "cli.nc"
    args = ["score", "--features", str(root / "torchlens.npz"), "--stimulus-order", str(root / "order.txt"),
            "--benchmark", str(root / "toy.toml"), "--recording", str(root / "rec.nc"), "--out", str(out),
            "--work-dir", str(tmp_path / "work"), "--quiet"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "median ceiled" in text and "precomputed features from" in text and f"wrote {out}" in text
    from_cli = read_scoreset(out)
    twin = score_precomputed(arrays, root / "toy.toml", stimulus_ids=ids, recording=read_recording(root / "rec.nc"),
                             progress=False, work_dir=tmp_path / "work")
    _same_numbers(from_cli, twin)
    assert from_cli.attrs["committed_layers"] == twin.attrs["committed_layers"] == {"V4": "a", "IT": "b"}
    assert from_cli.attrs["model_id"] == "torchlens" and twin.attrs["model_id"] == "features"


def test_a_thingsvision_matrix_is_scored_with_its_image_order(files, tmp_path, capsys):
    root, formats, ids = files
    out = tmp_path / "tv.nc"
    assert main(["score", "--features", str(root / "features.npy"), "--stimulus-order", str(root / "file_names.txt"),
                 "--benchmark", str(root / "toy.toml"), "--recording", str(root / "rec.nc"), "--out", str(out),
                 "--work-dir", str(tmp_path / "work"), "--quiet"]) == 0
    scores = read_scoreset(out)
    # one feedforward matrix: its response stands for every bin, declared as for a feedforward model
    assert scores.attrs["mapping_policy"] == "constant"
    assert scores.attrs["committed_layers"] == {"V4": "features", "IT": "features"}
    twin = score_precomputed(formats["features.npy"][1], root / "toy.toml", stimulus_ids=ids,
                             recording=read_recording(root / "rec.nc"), progress=False, work_dir=tmp_path / "work")
    _same_numbers(scores, twin)
