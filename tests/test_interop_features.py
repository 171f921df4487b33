"""Precomputed features (issue 19 item 4): scored without a stimulus set, read from files, bad files refused."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
import torch
import xarray as xr

from conftest import TOY_BENCHMARK, toy
from neurofit.cli import main
from neurofit.data.io import read_recording, write_recording
from neurofit.errors import NeurofitError
from neurofit.extract.precomputed import features_from_arrays, read_features, read_stimulus_order
from neurofit.scoreset import read_scoreset
from neurofit.scoring.precomputed import score_precomputed
from neurofit.scoring.score import score

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
    from neurofit.scoring.resolve import activations_from_arrays

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


# ------------------------------------------------------------------------------------------------ an extracted model
def test_an_extracted_activation_set_scores_as_the_model_itself(toy_data, files, tmp_path, capsys):
    """``score --features acts.nc`` == ``score --model cornet_z`` on the same benchmark and layers, bit for bit."""
    from neurofit.extract.extract import extract_activations
    from neurofit.extract.reduce import DEFAULT_REDUCTION
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.resolve import resolve_model

    root, _, ids = files
    _, stimuli, _ = toy_data
    bench = load_benchmark(root / "toy.toml")
    model = resolve_model("cornet_z")[0]
    # what score() shows the model: the benchmark's stimuli, at its degrees, on the model's screen
    shown = dataclasses.replace(stimuli.subset(sorted(ids)), degrees=bench.degrees, _sha256=None)
    acts = extract_activations(model, shown.place_on_screen(bench.model_degrees), steps=1, reduction=DEFAULT_REDUCTION,
                               cache=False, progress=False)
    acts.to_netcdf(tmp_path / "cornet_z-acts.nc")
    from neurofit.data.stimuli import write_stimulus_set

    write_stimulus_set(stimuli, tmp_path / "stimuli.csv")
    common = ["--benchmark", str(root / "toy.toml"), "--recording", str(root / "rec.nc"), "--layers", "V4=V2",
              "IT=IT", "--work-dir", str(tmp_path / "work"), "--quiet"]
    assert main(["score", "--model", "cornet_z", "--stimuli", str(tmp_path / "stimuli.csv"), "--no-cache",
                 "--out", str(tmp_path / "model.nc"), *common]) == 0
    assert main(["score", "--features", str(tmp_path / "cornet_z-acts.nc"), "--out", str(tmp_path / "feats.nc"),
                 *common]) == 0
    capsys.readouterr()
    by_model, by_features = read_scoreset(tmp_path / "model.nc"), read_scoreset(tmp_path / "feats.nc")
    _same_numbers(by_model, by_features)
    for key in ("committed_layers", "committed_offsets_ms", "mapping_policy", "mapping", "n_features", "reduction"):
        assert by_model.attrs[key] == by_features.attrs[key], key
    assert by_features.attrs["model_id"] == "cornet_z"


# ------------------------------------------------------------------------------------------------ bad input
def _fails(args, capsys, *fragments):
    """The CLI refuses in one line (exit 2) that contains every fragment."""
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("neurofit: error: "), err
    for fragment in fragments:
        assert fragment in err, err
    return err


def _cli(root, path, *extra):
    return ["score", "--features", str(path), "--benchmark", str(root / "toy.toml"), "--recording",
            str(root / "rec.nc"), "--quiet", "--work-dir", str(root / "work"), "--out", str(root / "bad.nc"), *extra]


def test_ids_missing_from_the_benchmark_name_the_first_missing_stimulus(files, tmp_path, capsys):
    root, formats, ids = files
    arrays = formats["with_ids.npz"][1]
    renamed = ["img_" + sid if sid in ("s003", "s010") else sid for sid in ids]
    np.savez(tmp_path / "renamed.npz", stimulus_id=np.array(renamed), **arrays)
    _fails(_cli(root, tmp_path / "renamed.npz"), capsys, "stimulus_id 's003' of the recording is not in the features",
           str(tmp_path / "renamed.npz"), "(2 of 64 recorded stimuli missing)")
    assert not (root / "bad.nc").exists()


def test_nan_in_a_feature_array_is_refused_naming_file_and_key(files, tmp_path, capsys):
    root, formats, ids = files
    arrays = dict(formats["with_ids.npz"][1])
    arrays["b:2"] = arrays["b:2"].copy()
    arrays["b:2"][[4, 9], 1] = np.nan
    np.savez(tmp_path / "nan.npz", stimulus_id=np.array(ids), **arrays)
    _fails(_cli(root, tmp_path / "nan.npz"), capsys, f"{tmp_path / 'nan.npz'}: array 'b:2' holds NaN or Inf values "
                                                     "(2 of 64 stimuli affected)")
    h5 = tmp_path / "nan.h5"
    import h5py

    with h5py.File(h5, "w") as handle:
        handle.create_dataset("IT", data=np.full((64, 3), np.inf))
    _fails(_cli(root, h5, "--stimulus-order", str(root / "order.txt")), capsys, "array 'IT' holds NaN or Inf")


def test_wrong_row_counts_and_orders_are_refused(files, tmp_path, capsys):
    root, formats, ids = files
    arrays = formats["with_ids.npz"][1]
    np.savez(tmp_path / "short.npz", stimulus_id=np.array(ids), **{**arrays, "a:3": arrays["a:3"][:-1]})
    _fails(_cli(root, tmp_path / "short.npz"), capsys, "array 'a:3' has 63 rows", "for 64 stimulus ids")
    (tmp_path / "short.txt").write_text("\n".join(ids[:-2]))
    _fails(_cli(root, root / "features.npy", "--stimulus-order", str(tmp_path / "short.txt")), capsys,
           "array 'features' has 64 rows", "for 62 stimulus ids")
    (tmp_path / "twice.txt").write_text("\n".join(ids[:-1] + ids[:1]))
    _fails(_cli(root, root / "features.npy", "--stimulus-order", str(tmp_path / "twice.txt")), capsys,
           "stimulus id 's000' appears twice")
    _fails(_cli(root, root / "features.npy"), capsys, "carries no stimulus ids", "file_names.txt")
    (tmp_path / "reversed.txt").write_text("\n".join(ids[::-1]))
    _fails(_cli(root, root / "with_ids.npz", "--stimulus-order", str(tmp_path / "reversed.txt")), capsys,
           "carries its own stimulus ids")
    np.savez(tmp_path / "gap.npz", stimulus_id=np.array(ids), **{"a:1": arrays["a:1"], "a:3": arrays["a:3"]})
    _fails(_cli(root, tmp_path / "gap.npz"), capsys, "layer 'a' has passes [1, 3]")


class _Trap:
    """Unpickling this would create a file: the proof that nothing was unpickled is that the file is absent."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickle_bearing_files_are_refused_without_unpickling(files, tmp_path, capsys):
    root, formats, ids = files
    marker = tmp_path / "pwned"
    trap = np.empty(1, dtype=object)
    trap[0] = _Trap(marker)
    np.savez(tmp_path / "pickled.npz", stimulus_id=np.array(ids), IT=formats["with_ids.npz"][1]["a:1"], trap=trap)
    _fails(_cli(root, tmp_path / "pickled.npz"), capsys, "array 'trap' holds Python objects", "allow_pickle=False")
    np.savez(tmp_path / "object_ids.npz", stimulus_id=np.array(ids, dtype=object), IT=formats["with_ids.npz"][1]["a:1"])
    _fails(_cli(root, tmp_path / "object_ids.npz"), capsys, "array 'stimulus_id' holds Python objects")
    torch.save({"IT": torch.zeros(64, 3), "trap": _Trap(marker)}, tmp_path / "pickled.pt")
    _fails(_cli(root, tmp_path / "pickled.pt", "--stimulus-order", str(root / "order.txt")), capsys,
           "refusing to load pickled Python objects", "weights_only=True")
    assert not marker.exists()


def test_sizes_are_checked_before_anything_is_allocated(files, tmp_path, capsys):
    import zipfile

    root, _, ids = files
    # an .npy header that claims 8 TB (10^12 x 1000 float64) in front of a few bytes
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 1000)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as zf:
        zf.writestr("IT.npy", header.getvalue() + b"\0" * 64)
    _fails(_cli(root, tmp_path / "huge.npz", "--stimulus-order", str(root / "order.txt")), capsys,
           "array 'IT' (1000000000000, 1000) (float64) needs", "MAX_FEATURE_BYTES")
    # a header within the limit that claims more than the file holds (8 MB in front of 1.5 kB)
    small = io.BytesIO()
    np.lib.format.write_array_header_1_0(small, {"descr": "<f8", "fortran_order": False, "shape": (1000, 1000)})
    (tmp_path / "liar.npy").write_bytes(small.getvalue() + np.zeros((64, 3)).tobytes())
    _fails(_cli(root, tmp_path / "liar.npy", "--stimulus-order", str(root / "order.txt")), capsys,
           "array 'liar' claims shape (1000, 1000) (float64) but the file holds fewer bytes")


def test_model_options_and_unknown_formats_are_refused(files, tmp_path, capsys):
    root, _, _ = files
    _fails(_cli(root, root / "with_ids.npz", "--checkpoint", "w.pt"), capsys, "--checkpoint applies to a model")
    _fails(_cli(root, root / "with_ids.npz", "--weights", "random"), capsys, "--weights applies to a model")
    (tmp_path / "feats.csv").write_text("a,b\n1,2\n")
    _fails(_cli(root, tmp_path / "feats.csv"), capsys, "unknown features format '.csv'")
    _fails(_cli(root, tmp_path / "absent.npz"), capsys, "features file not found")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    _fails(_cli(root, tmp_path / "junk.npz"), capsys, "not an .npz archive")
    (tmp_path / "junk.h5").write_bytes(b"not hdf5")
    _fails(_cli(root, tmp_path / "junk.h5", "--stimulus-order", str(root / "order.txt")), capsys,
           "cannot read as HDF5")


def test_hdf5_external_links_are_refused(files, tmp_path, capsys):
    import h5py

    root, _, _ = files
    with h5py.File(tmp_path / "other.h5", "w") as handle:
        handle.create_dataset("secret", data=np.zeros((64, 2)))
    with h5py.File(tmp_path / "linked.h5", "w") as handle:
        handle["IT"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "secret")
    _fails(_cli(root, tmp_path / "linked.h5", "--stimulus-order", str(root / "order.txt")), capsys,
           "'IT' is an external link")


def test_a_thingsvision_mat_with_one_variable_per_image_names_its_stimuli(files, tmp_path):
    import scipy.io

    root, formats, ids = files
    matrix = formats["features.npy"][1]["features"]
    scipy.io.savemat(tmp_path / "features.mat", {sid: row for sid, row in zip(ids, matrix)})
    from_file = read_features(tmp_path / "features.mat")
    xr.testing.assert_identical(from_file.dataset.drop_attrs(),
                                features_from_arrays({"features": matrix}, ids).dataset.drop_attrs())


def test_tensors_that_are_not_numbers_are_refused(files, tmp_path, capsys):
    root, _, _ = files
    torch.save({"IT": torch.zeros(64, 3, dtype=torch.bool)}, tmp_path / "bool.pt")
    _fails(_cli(root, tmp_path / "bool.pt", "--stimulus-order", str(root / "order.txt")), capsys,
           "array 'IT' has dtype torch.bool; features must be numbers")
    torch.save({"IT": torch.zeros(64, 3), "note": "text"}, tmp_path / "note.pt")
    _fails(_cli(root, tmp_path / "note.pt", "--stimulus-order", str(root / "order.txt")), capsys,
           "key 'note' holds a str, not a tensor")
