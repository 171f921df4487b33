"""score(): commitment on held-out stimuli, per-site scores against sklearn, bootstrap, provenance, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.cross_decomposition import PLSRegression
from sklearn.model_selection import ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

from conftest import TOY_BENCHMARK, brainscore_assembly, toy
from neurofit.errors import NeurofitError, ValidationError
from neurofit.scoreset import read_scoreset, region_aggregate, summary_table, write_scoreset
from neurofit.scoring.benchmark import load_benchmark
from neurofit.scoring.resolve import activations_from_arrays
from neurofit.scoring.score import score


@pytest.fixture(scope="module")
def toy_data():
    return toy()


@pytest.fixture()
def toy_benchmark(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin"))
    return path


@pytest.fixture(scope="module")
def toy_scores(toy_data, tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin"))
    rec, stimuli, acts = toy_data
    return score(acts, path, data=(rec, stimuli), progress=False, created="2026-01-01T00:00:00Z",
                 work_dir=tmp_path_factory.mktemp("work"))


def test_commitment_picks_the_layer_that_carries_each_region(toy_scores):
    assert toy_scores.attrs["committed_layers"] == {"V4": "a", "IT": "b"}
    assert toy_scores.attrs["committed_offsets_ms"] == {"V4": 0.0, "IT": 0.0}


def test_commitment_never_sees_the_scored_stimuli(toy_data, toy_benchmark, tmp_path):
    rec, stimuli, acts = toy_data
    first = score(acts, toy_benchmark, data=(rec, stimuli), progress=False, work_dir=tmp_path)
    # Scramble every scored stimulus's responses: the commitment must not change at all.
    from neurofit.scoring.commit import commitment_split

    ids = sorted(set(rec.stimulus_id.values.tolist()))
    objects = [f"o{int(s[1:]) // 10}" for s in ids]
    commit_ids, score_ids = commitment_split(ids, 0.2, 0, objects)
    scored = np.isin(rec.stimulus_id.values, score_ids)
    scrambled = rec.copy(data=rec.values.copy())
    rng = np.random.default_rng(1)
    scrambled.values[scored] = rng.permutation(scrambled.values[scored])
    second = score(acts, toy_benchmark, data=(scrambled, stimuli), progress=False, work_dir=tmp_path)
    assert second.attrs["commitment_criteria"] == first.attrs["commitment_criteria"]
    assert second.attrs["n_stimuli_scored"] == len(score_ids) and not set(commit_ids) & set(score_ids)
    it_second = region_aggregate(second, "median_ceiled", "IT").mean()
    assert it_second < 0.2 < region_aggregate(first, "median_ceiled", "IT").mean()


def test_per_site_r_matches_sklearn_pls_with_the_same_folds(toy_data, toy_scores):
    rec, _, acts = toy_data
    from neurofit.scoring.commit import commitment_split

    averaged = rec.groupby("stimulus_id").mean()
    ids = sorted(averaged.stimulus_id.values.tolist())
    objects = np.array([f"o{int(s[1:]) // 10}" for s in ids])
    _, score_ids = commitment_split(ids, 0.2, 0, objects)
    score_ids = sorted(score_ids)
    labels = np.array([f"o{int(s[1:]) // 10}" for s in score_ids])
    y = averaged.sel(stimulus_id=score_ids).transpose("stimulus_id", "neuroid", "time_bin").values
    x_all = acts.dataset["b"].values  # (step, presentation, feature); IT committed to layer b, offset 0
    pos = [acts.stimulus_ids.index(s) for s in score_ids]
    it = np.flatnonzero(rec.region.values == "IT")
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(score_ids)), labels))
    expected = np.zeros((len(it), 5))
    for b in range(5):
        pooled = np.zeros((len(score_ids), len(it)))
        x = x_all[b][pos].astype(np.float64)
        for tr, te in folds:
            pooled[te] = PLSRegression(5, scale=False).fit(x[tr], y[tr][:, it, b]).predict(x[te])
        expected[:, b] = [pearsonr(pooled[:, s], y[:, it[s], b])[0] for s in range(len(it))]
    got = toy_scores.r.isel(neuroid=it).values
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-9)


def test_scoreset_carries_the_contract_variables_and_provenance(toy_scores):
    s = toy_scores
    assert s.r.dims == ("neuroid", "time_bin") and s.r_fold.dims == ("fold", "neuroid", "time_bin")
    for name in ("ceiling", "ceiled", "median_ceiled", "median_ceiled_low", "median_ceiled_high",
                 "median_ceiled_sites_low", "median_ceiled_sites_high"):
        assert name in s
    for key in ("benchmark", "benchmark_version", "model_id", "weights_sha256", "dataset_sha256",
                "neurofit_version", "seed", "split_scheme", "temporal_mode", "metric", "normalisation",
                "mapping_policy", "committed_layers", "created"):
        assert key in s.attrs
    assert s.attrs["mapping_policy"] == "one_to_one" and s.attrs["normalisation"] == "r2_over_ceiling"
    np.testing.assert_allclose(s.ceiled, s.r**2 / s.ceiling)
    expected_median = np.nanmedian(s.ceiled.values[s.region.values == "IT"], axis=0)
    np.testing.assert_array_equal(region_aggregate(s, "median_ceiled", "IT"), expected_median)
    assert s.region.dims == ("neuroid",) and list(s.region_name.values) == ["V4", "IT"]
    low, high = s.median_ceiled_low.values, s.median_ceiled_high.values
    assert np.all(low <= s.median_ceiled.values + 1e-12) and np.all(s.median_ceiled.values <= high + 1e-12)


def test_same_inputs_reproduce_the_scoreset_bit_for_bit(toy_data, toy_benchmark, toy_scores, tmp_path):
    rec, stimuli, acts = toy_data
    again = score(acts, toy_benchmark, data=(rec, stimuli), progress=False, created="2026-01-01T00:00:00Z",
                  work_dir=tmp_path)
    for name in toy_scores.data_vars:
        np.testing.assert_array_equal(again[name].values, toy_scores[name].values)
    attrs = {k: v for k, v in toy_scores.attrs.items() if k != "benchmark_sha256"}
    assert {k: v for k, v in again.attrs.items() if k != "benchmark_sha256"} == attrs
    write_scoreset(again, tmp_path / "a.nc")
    assert read_scoreset(tmp_path / "a.nc").identical(again)


def test_span_time_shares_one_mapping_across_bins(toy_data, tmp_path):
    rec, stimuli, acts = toy_data
    path = tmp_path / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="span_time"))
    s = score(acts, path, data=(rec, stimuli), progress=False, layers=["V4=a", "IT=b"], work_dir=tmp_path)
    assert s.attrs["temporal_mode"] == "span_time" and s.attrs["committed_layers"] == {"V4": "a", "IT": "b"}
    assert float(s.median_ceiled.min()) > 0.5


def test_grid_scores_every_layer_and_step(toy_data, toy_benchmark, tmp_path):
    rec, stimuli, acts = toy_data
    s = score(acts, toy_benchmark, data=(rec, stimuli), progress=False, grid=True, layers=["V4=a", "IT=b"],
              work_dir=tmp_path)
    assert s.grid_ceiled.dims == ("region", "layer", "step", "time_bin")
    assert s.grid_ceiled.shape == (2, 2, 5, 5)
    it_b = s.grid_ceiled.isel(region=1).sel(layer="b").values
    # layer b at step t carries the IT signal of bin t only (latents are independent across bins)
    assert np.all(np.diag(it_b) > 0.8) and np.all(it_b[~np.eye(5, dtype=bool)] < 0.3)


def test_summary_table_lists_every_region_and_bin(toy_scores):
    text = summary_table(toy_scores)
    assert text.count("\nIT ") == 5 and text.count("\nV4 ") == 5 and "95% CI (stimuli)" in text


def test_recording_stimuli_missing_from_the_stimulus_set_is_a_clear_error(toy_data, toy_benchmark, tmp_path):
    rec, stimuli, acts = toy_data
    fewer = stimuli.subset(stimuli.stimulus_ids[1:])
    with pytest.raises(ValidationError, match="stimulus_id 's000' is in the recording but not in the stimulus set"):
        score(acts, toy_benchmark, data=(rec, fewer), progress=False, work_dir=tmp_path / "work",
              out=tmp_path / "out.nc")
    assert not (tmp_path / "out.nc").exists() and not (tmp_path / "work").exists()


def test_layer_never_driven_is_a_clear_error(toy_data, toy_benchmark, tmp_path):
    rec, stimuli, _ = toy_data
    ids = stimuli.stimulus_ids
    late = activations_from_arrays({"IT": np.random.default_rng(0).normal(size=(5, len(ids), 4))}, ids,
                                   first_driven={"IT": 5})
    with pytest.raises(NeurofitError, match="layer 'IT' never receives image-driven input within the 5 steps"):
        score(late, toy_benchmark, data=(rec, stimuli), progress=False, work_dir=tmp_path)


def test_unknown_layer_and_zoo_names_list_the_valid_ones(toy_data, toy_benchmark, tmp_path):
    rec, stimuli, acts = toy_data
    with pytest.raises(NeurofitError, match="layer 'c' is not a layer of the model; its layers: a, b"):
        score(acts, toy_benchmark, data=(rec, stimuli), layers=["c"], progress=False, work_dir=tmp_path)
    with pytest.raises(NeurofitError, match="unknown zoo model 'no_such_net'; valid names: .*cornet_z"):
        score("no_such_net", toy_benchmark, data=(rec, stimuli), progress=False, work_dir=tmp_path)


def test_brainscore_benchmark_reproduces_brainscore_aggregation_exactly():
    rec, stimuli, feats, ids, objs, trials = brainscore_assembly()
    acts = activations_from_arrays({"IT": feats[None]}, ids, model_id="toy")
    bench = load_benchmark("majajhong2015-it-brainscore").replace(aggregate={"n_bootstrap": 0})
    got = score(acts, bench, data=(rec, stimuli), progress=False)

    # Independent reference: repetition-average, sort by stimulus_id, StratifiedShuffleSplit(10, 0.9, seed 1)
    # on object_name, PLSRegression(25, scale=False) defaults, Pearson per neuroid, median, mean over splits.
    order = np.argsort(ids)
    x = feats[order]
    y = np.nanmean(trials, axis=1)[order]
    labels = np.array(objs)[order]
    per_split = []
    for tr, te in StratifiedShuffleSplit(10, train_size=0.9, test_size=0.1, random_state=1).split(x, labels):
        pred = PLSRegression(25, scale=False).fit(x[tr], y[tr]).predict(x[te])
        per_split.append(np.median([pearsonr(pred[:, j], y[te, j])[0] for j in range(y.shape[1])]))
    raw = np.mean(per_split)
    ceilings = []
    for a, b in ShuffleSplit(10, train_size=0.5, random_state=1).split(np.arange(trials.shape[1])):
        ha, hb = np.nanmean(trials[:, a], axis=1), np.nanmean(trials[:, b], axis=1)
        r = np.array([pearsonr(ha[:, j], hb[:, j])[0] for j in range(ha.shape[1])])
        ceilings.append(np.median(2 * r / (1 + r)))
    ceiling = np.mean(ceilings)
    assert got.attrs["split_scheme"] == "brainscore" and got.attrs["metric"] == "pls25-nipals"
    np.testing.assert_allclose(float(got.benchmark_r.item()), raw, rtol=1e-9)
    np.testing.assert_allclose(float(got.benchmark_r_error.item()), np.std(per_split) / np.sqrt(10), rtol=1e-6)
    np.testing.assert_allclose(float(got.benchmark_ceiling.item()), ceiling, rtol=1e-12)
    np.testing.assert_allclose(float(got.benchmark_score.item()), raw**2 / ceiling, rtol=1e-9)

