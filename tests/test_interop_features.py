"""Precomputed features (issue 19 item 4): scored without a stimulus set, read from files, bad files refused."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from test_scoring_score import TOY_BENCHMARK, toy

from neurofit.errors import NeurofitError
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
    from neurofit.scoring.score import activations_from_arrays

    rec, _, acts = toy_data
    ids = acts.stimulus_ids[3:]
    partial = activations_from_arrays({layer: acts.dataset[layer].values[:, 3:] for layer in acts.layers}, ids)
    with pytest.raises(NeurofitError, match=r"stimulus_id 's000' of the recording is not in the features \(3 of 64 "):
        _score(partial, bench, (rec, None), tmp_path)
