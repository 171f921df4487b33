"""Provenance is complete and true (issue 14, items 4, 5, 7): every setting that changes a number is in the
ScoreSet's attrs with the value actually used; the weights are named; r-only data print median r with CIs."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TOY_BENCHMARK, toy
from neurofit.errors import NeurofitError
from neurofit.scoreset import summary_table
from neurofit.scoring.benchmark import load_benchmark
from neurofit.scoring.resolve import activations_from_arrays, resolve_model
from neurofit.scoring.score import score, score_with_baseline

CREATED = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def toy_data():
    return toy()


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin"))
    return load_benchmark(path).replace(aggregate={"n_bootstrap": 50})


def _score(acts, bench, data, tmp_path, **kwargs):
    rec, stimuli = data
    return score(acts, bench, data=(rec, stimuli), progress=False, created=CREATED, work_dir=tmp_path, **kwargs)


@pytest.fixture(scope="module")
def base(toy_data, bench, tmp_path_factory):
    rec, stimuli, acts = toy_data
    return _score(acts, bench, (rec, stimuli), tmp_path_factory.mktemp("work"))


def _changed(a, b):
    keys = set(a.attrs) | set(b.attrs)
    return {k for k in keys if k not in ("benchmark_sha256",) and str(a.attrs.get(k)) != str(b.attrs.get(k))}


def test_base_attrs_record_the_values_used(base):
    attrs = base.attrs
    # 5 folds of 96 scored stimuli: 76-77 training stimuli, 30 features: 5 components as asked
    assert attrs["metric"] == "pls5-exact" and attrs["n_components_requested"] == 5
    assert attrs["n_components_fitted"] == {"V4": "5", "IT": "5"}
    assert attrs["n_splits"] == 5 and attrs["commitment_n_splits"] == 3
    assert "(3-fold)" in attrs["commitment"]
    assert attrs["ceiling_halvings"] == 10 and attrs["ceiling_seed"] == 0
    assert attrs["n_bootstrap"] == 50 and attrs["bootstrap_seed"] == 0
    assert attrs["reduction"] == {"method": "none by neurofit (precomputed features)"}
    assert attrs["n_features"] == {"a": 30, "b": 30}
    assert attrs["bins_not_mapped"] == {"V4": "", "IT": ""}
    assert set(attrs["bins_unreliable"]) == {"V4", "IT"} and "lower bound" in attrs["reliability_rule"]
    assert attrs["regression_device"].startswith("cpu (float64)")
    assert attrs["offsets_ms_candidates"] == [0.0, 10.0]


@pytest.mark.parametrize(("change", "key", "expected"), [
    # more components than the training stimuli and features allow: the number fitted (30 features) is recorded
    ({"regression": {"n_components": 5000}}, "n_components_fitted", {"V4": "30", "IT": "30"}),
    # more commitment folds than held-out stimuli: one fold per held-out stimulus (24), not 100000
    ({"commitment": {"n_splits": 100000}}, "commitment_n_splits", 24),
    ({"ceiling": {"n_splits": 3}}, "ceiling_halvings", 3),
    ({"ceiling": {"seed": 7}}, "ceiling_seed", 7),
    ({"aggregate": {"n_bootstrap": 40}}, "n_bootstrap", 40),
    ({"aggregate": {"seed": 3}}, "bootstrap_seed", 3),
    ({"regression": {"seed": 2}}, "seed", 2),
    ({"regression": {"n_splits": 4}}, "n_splits", 4),
    ({"commitment": {"seed": 5}}, "commitment_seed", 5),
    ({"commitment": {"fraction": 0.3}}, "commitment_fraction", 0.3),
    ({"mapping": {"offsets_ms": (0.0,)}}, "offsets_ms_candidates", [0.0]),
])
def test_each_setting_changes_the_attrs_and_records_the_used_value(toy_data, bench, base, tmp_path, change, key,
                                                                    expected):
    rec, stimuli, acts = toy_data
    other = _score(acts, bench.replace(**change), (rec, stimuli), tmp_path)
    assert other.attrs[key] == expected
    assert key in _changed(base, other)
    if "n_components" in change.get("regression", {}):
        assert other.attrs["metric"] == "pls30-exact" and other.attrs["n_components_requested"] == 5000
    if "n_splits" in change.get("commitment", {}):
        assert "(24-fold)" in other.attrs["commitment"] and "100000" not in other.attrs["commitment"]


def test_unmapped_bins_are_recorded(toy_data, bench, tmp_path):
    rec, stimuli, acts = toy_data
    late = activations_from_arrays({layer: acts.dataset[layer].values for layer in acts.layers},
                                   acts.stimulus_ids, first_driven={"a": 2, "b": 2})
    s = _score(late, bench.replace(mapping={"offsets_ms": (0.0,)}), (rec, stimuli), tmp_path)
    assert s.attrs["bins_not_mapped"] == {"V4": "0-20 ms", "IT": "0-20 ms"}


def test_unreliable_bins_are_recorded(bench, tmp_path):
    rec, stimuli, acts = toy(noise=40.0, seed=3)
    s = _score(acts, bench, (rec, stimuli), tmp_path)
    assert s.attrs["bins_unreliable"]["IT"] == "0-50 ms"


def test_a_reduction_cannot_be_asked_of_precomputed_features(toy_data, bench, tmp_path):
    from neurofit.extract.reduce import RandomProjection

    rec, stimuli, acts = toy_data
    with pytest.raises(NeurofitError, match="precomputed features"):
        _score(acts, bench, (rec, stimuli), tmp_path, reduction=RandomProjection(dim=4))


# ------------------------------------------------------------------------------------------------ weights
def test_zoo_names_use_the_shipped_checkpoint_and_say_so():
    _, model_id, sha, how = resolve_model("cornet_z")
    assert model_id == "cornet_z" and how == f"trained: shipped checkpoint cornet_z.safetensors (sha256 {sha})"
    _, model_id, sha_random, how = resolve_model("cornet_z", weights="random")
    assert how == "untrained (random init, seed 0)" and sha_random != sha and model_id == "cornet_z (random init)"
    # architecture arguments ask for another network than the shipped one: random init, and it says so
    assert resolve_model("cornet_z", width=4)[3] == "untrained (random init, seed 0)"
    from neurofit.models.catalog import list_models

    table = list_models()
    untrained = table[table["available"] & (table["weights"] == "random init")]["name"].tolist()
    assert untrained, "every zoo model ships weights: pick another name for this check"
    with pytest.raises(NeurofitError, match="no shipped trained checkpoint"):
        resolve_model(untrained[0], weights="trained")
    assert resolve_model(untrained[0])[3] == "untrained (random init, seed 0)"


@pytest.fixture(scope="module")
def small_images():
    rec, stimuli, _ = toy(n_obj=6, per_obj=8, n_bins=2)
    return rec, stimuli


def test_random_baseline_differs_from_the_trained_model_and_attrs_say_which(small_images, tmp_path, capsys):
    rec, stimuli = small_images
    path = tmp_path / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin").replace("end = 50", "end = 20"))
    b = load_benchmark(path).replace(aggregate={"n_bootstrap": 20})
    trained, random = score_with_baseline("cornet_z", b, data=(rec, stimuli), progress=False, cache=False,
                                          work_dir=tmp_path, out=tmp_path / "cz.nc")
    assert trained.attrs["weights"].startswith("trained: shipped checkpoint cornet_z.safetensors (sha256 ")
    assert random.attrs["weights"] == "untrained (random init, seed 0)"
    assert random.attrs["model_id"] == "cornet_z (random init)"
    assert trained.attrs["weights_sha256"] != random.attrs["weights_sha256"]
    assert not np.allclose(trained.r.values, random.r.values, equal_nan=True)
    assert (tmp_path / "cz-random.nc").is_file()
    # the reduction used is recorded (the default's spec), with the features each layer kept and had
    from neurofit.extract.reduce import DEFAULT_REDUCTION, reduction_spec

    assert trained.attrs["reduction"] == reduction_spec(DEFAULT_REDUCTION)
    assert set(trained.attrs["n_features"]) == set(trained.attrs["n_features_raw"]) != set()


def test_reduction_dimension_and_seed_are_recorded(small_images, tmp_path):
    from neurofit.extract.reduce import RandomProjection

    rec, stimuli = small_images
    path = tmp_path / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin").replace("end = 50", "end = 20"))
    b = load_benchmark(path).replace(aggregate={"n_bootstrap": 0})
    runs = [score("cornet_z", b, data=(rec, stimuli), progress=False, cache=False, work_dir=tmp_path,
                  reduction=red, created=CREATED) for red in (RandomProjection(dim=16, seed=1),
                                                              RandomProjection(dim=16, seed=2), None)]
    assert [r.attrs["reduction"].get("seed") for r in runs] == [1, 2, None]
    assert runs[0].attrs["reduction"]["dim"] == 16 and runs[2].attrs["reduction"] == {"method": "none"}
    assert max(runs[0].attrs["n_features"].values()) == 16 < max(runs[2].attrs["n_features"].values())
    assert "reduction" in _changed(runs[0], runs[1]) and "n_features" in _changed(runs[0], runs[2])


# ------------------------------------------------------------------------------------------------ r-only
def test_r_only_benchmarks_print_median_r_with_cis(toy_data, bench, tmp_path):
    rec, stimuli, acts = toy_data
    s = _score(acts, bench.replace(ceiling={"method": "none"}), (rec, stimuli), tmp_path)
    assert s.attrs["ceiling_halvings"] == 0
    for name in ("median_r_low", "median_r_high", "median_r_sites_low", "median_r_sites_high"):
        assert np.isfinite(s[name].values).all()
    assert np.all(s.median_r_low.values <= s.median_r.values) and np.all(s.median_r.values <= s.median_r_high.values)
    text = summary_table(s)
    assert "median ceiled" not in text and "nan" not in text.split("\n")[1]
    first = text.splitlines()[1].split()
    assert first[0] == "V4" and first[3].startswith("[") and first[5].startswith("[")
