"""Brain-Score mode (issue 19 item 1) without Brain-Score: its knobs in a TOML, its numbers as the headline.

Each number is checked against an independent reference built here from sklearn and scipy (Brain-Score's own
code gives the same numbers on files it wrote in tests/test_brainscore_env.py, slow).
"""

import re

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.linear_model import Ridge
from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

from conftest import brainscore_assembly
from neurofit.errors import NeurofitError, ValidationError
from neurofit.regression.splits import make_splits
from neurofit.scoreset import summary_table
from neurofit.scoring.benchmark import list_benchmarks, load_benchmark, parse_benchmark
from neurofit.scoring.resolve import activations_from_arrays
from neurofit.scoring.score import score

BASE = {"id": "x", "version": "1", "dataset": {"id": "toy"}, "neural": {"regions": ["IT"], "bins": [[70, 170]]},
        "stimuli": {"degrees": 8.0}, "ceiling": {"method": "brainscore"}, "aggregate": {"method": "brainscore"}}


def _bench(**regression):
    return parse_benchmark({**BASE, "regression": {"split_scheme": "brainscore", **regression}}, "x.toml")


def test_brainscore_knobs_are_toml_keys():
    bench = _bench(metric="ridge", alpha=0.5, train_size=0.8, stratify=False, n_splits=5, seed=3)
    assert (bench.regression.alpha, bench.regression.train_size, bench.regression.stratify) == (0.5, 0.8, False)
    default = _bench(metric="ridge")
    assert (default.regression.alpha, default.regression.train_size, default.regression.stratify) == (None, 0.9, True)
    assert bench.sha256() != default.sha256()


@pytest.mark.parametrize(("regression", "message"), [
    ({"alpha": 1.0}, "regression.alpha' is a ridge penalty, but regression.metric is 'pls'"),
    ({"metric": "ridge", "alpha": 0}, r"regression.alpha' must be a finite penalty in \(0, 1e12\], got 0.0"),
    ({"metric": "ridge", "alpha": "1"}, "regression.alpha' must be int/float"),
    ({"train_size": 1.0}, r"regression.train_size' must be in \(0, 1\), got 1.0"),
    ({"split_scheme": "kfold", "train_size": 0.8}, "regression.train_size' applies to split_scheme = 'brainscore'"),
    ({"stratify": "no"}, "regression.stratify' must be bool"),
])
def test_bad_knobs_are_refused_naming_file_and_key(regression, message):
    with pytest.raises(ValidationError, match=f"benchmark x.toml: key '{message}"):
        _bench(**regression)


def test_knobs_at_their_defaults_keep_every_benchmark_hash():
    # work directories and ScoreSet attrs are named by the hash: spelling out a default changes nothing
    for path in list_benchmarks().values():
        bench = load_benchmark(path)
        spelled = bench.replace(regression={"train_size": 0.9, "stratify": True, "alpha": None})
        assert spelled.sha256() == bench.sha256()
    bench = load_benchmark("majajhong2015-it-brainscore")
    assert bench.replace(regression={"train_size": 0.8}).sha256() != bench.sha256()


def test_brainscore_splits_follow_train_size_and_stratification():
    ids = [f"s{k:03d}" for k in np.random.default_rng(0).permutation(90)]
    labels = np.array([f"o{k % 6}" for k in range(90)])
    order = np.argsort(ids)
    for train_size, stratify in ((0.9, True), (0.8, False), (0.75, True)):
        got = make_splits(ids, scheme="brainscore", object_name=labels, seed=3, n_splits=4, train_size=train_size,
                          stratify=stratify)
        # Brain-Score's Split: sorted ids, train_size with test_size=None, stratified by object or not
        if stratify:
            splitter = StratifiedShuffleSplit(4, train_size=train_size, test_size=None, random_state=3)
            folds = splitter.split(np.zeros(90), labels[order])
        else:
            folds = ShuffleSplit(4, train_size=train_size, test_size=None, random_state=3).split(np.zeros(90))
        for f, (train, test) in enumerate(folds):
            assert sorted(np.asarray(ids)[got.train[f]]) == sorted(np.asarray(ids)[order[train]])
            assert sorted(np.asarray(ids)[got.test[f]]) == sorted(np.asarray(ids)[order[test]])


def test_float64_features_stay_float64():
    values = np.random.default_rng(0).normal(size=(2, 3, 4))
    assert activations_from_arrays({"IT": values}, ["a", "b", "c"]).dataset["IT"].dtype == np.float64
    assert activations_from_arrays({"IT": values.astype(np.float32)}, ["a", "b", "c"]).dataset["IT"].dtype == np.float32
    single = activations_from_arrays({"IT": values}, ["a", "b", "c"], dtype="float32")
    assert single.dataset["IT"].dtype == np.float32
    with pytest.raises(NeurofitError, match="dtype must be None"):
        activations_from_arrays({"IT": values}, ["a", "b", "c"], dtype="float16")


@pytest.fixture(scope="module")
def ridge_run(tmp_path_factory):
    rec, stimuli, feats, ids, objs, trials = brainscore_assembly()
    bench = load_benchmark("majajhong2015-it-brainscore").replace(
        regression={"metric": "ridge", "alpha": 3.0, "train_size": 0.8, "stratify": False, "n_splits": 6,
                    "seed": 4}, aggregate={"n_bootstrap": 0})
    acts = activations_from_arrays({"IT": feats[None]}, ids, model_id="toy")
    return score(acts, bench, data=(rec, stimuli), progress=False,
                 work_dir=tmp_path_factory.mktemp("work")), feats, ids, objs, trials


def test_fixed_penalty_ridge_on_the_stored_splits_equals_sklearn(ridge_run):
    got, feats, ids, objs, trials = ridge_run
    x = feats
    y = np.nanmean(trials, axis=1)
    stored = got.stimulus_id.values.tolist()
    rows = [ids.index(s) for s in stored]
    x, y = x[rows], y[rows]
    # the stored splits are Brain-Score's Split with these knobs: sorted ids, ShuffleSplit(6, 0.8, seed 4)
    order = np.argsort(stored)
    expected = list(ShuffleSplit(6, train_size=0.8, test_size=None, random_state=4).split(np.zeros(len(stored))))
    per_split, per_site = [], []
    for f, (train, test) in enumerate(expected):
        train, test = order[train], order[test]
        assert sorted(np.flatnonzero(got.split_train.values[f])) == sorted(train)
        assert sorted(np.flatnonzero(got.split_test.values[f])) == sorted(test)
        pred = Ridge(alpha=3.0).fit(x[train], y[train]).predict(x[test])
        r = np.array([pearsonr(pred[:, j], y[test, j])[0] for j in range(y.shape[1])])
        per_site.append(r)
        per_split.append(np.median(r))
    np.testing.assert_allclose(got.r_fold.values[:, :, 0], per_site, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.benchmark_r_split.values[0, :, 0], per_split, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.benchmark_r.values[0, 0], np.mean(per_split), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.benchmark_r_error.values[0, 0], np.std(per_split) / np.sqrt(6), rtol=0,
                               atol=1e-12)
    assert got.attrs["ridge_alpha"] == 3.0 and got.attrs["split_train_size"] == 0.8
    assert got.attrs["split_stratified"] is False or got.attrs["split_stratified"] == 0


def test_ceiling_error_and_per_halving_values_equal_brainscores_formula(ridge_run):
    got, _, ids, _, trials = ridge_run
    stored = got.stimulus_id.values.tolist()
    trials = trials[[ids.index(s) for s in stored]]
    # InternalConsistency: ShuffleSplit(10, train_size=0.5, seed 1) over repetition indices, each half averaged
    # (missing trials skipped), Pearson r per site, Spearman-Brown, median over sites; mean and SEM over halvings
    per_site = []
    for a, b in ShuffleSplit(10, train_size=0.5, random_state=1).split(np.arange(trials.shape[1])):
        ha, hb = np.nanmean(trials[:, a], axis=1), np.nanmean(trials[:, b], axis=1)
        r = np.array([pearsonr(ha[:, j], hb[:, j])[0] for j in range(ha.shape[1])])
        per_site.append(2 * r / (1 + r))
    medians = np.median(per_site, axis=1)
    np.testing.assert_allclose(got.ceiling_split_sites.values[:, :, 0], per_site, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.benchmark_ceiling_split.values[0, :, 0], medians, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.benchmark_ceiling.values[0, 0], medians.mean(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(got.benchmark_ceiling_error.values[0, 0], np.std(medians) / np.sqrt(10), rtol=0,
                               atol=1e-12)
    score_value = got.benchmark_r.values[0, 0] ** 2 / medians.mean()
    np.testing.assert_allclose(got.benchmark_score.values[0, 0], score_value, rtol=1e-12)
    # Brain-Score's explained_variance keeps the raw score's error
    assert got.benchmark_score_error.values[0, 0] == got.benchmark_r_error.values[0, 0]


def test_the_headline_is_brainscores_number(ridge_run, tmp_path):
    from neurofit.scoreset import read_scoreset, write_scoreset

    got = ridge_run[0]
    lines = summary_table(got).splitlines()
    value = got.benchmark_score.values[0, 0]
    assert lines[0].startswith("Brain-Score's number")
    assert lines[1].startswith(f"IT 70-170 ms: score {value:.4f} +- {got.benchmark_score_error.values[0, 0]:.4f}")
    assert lines[2].startswith("IT 70-170 ms: raw r per split (6 splits")
    assert lines[3].startswith("neurofit's per-site statistics")
    assert got.attrs["headline"] == "benchmark_score"
    # the splits and every Brain-Score number survive the file
    write_scoreset(got, tmp_path / "s.nc")
    back = read_scoreset(tmp_path / "s.nc")
    assert back.split_train.values.tolist() == got.split_train.values.tolist()
    assert back.attrs["headline"] == "benchmark_score"
    np.testing.assert_array_equal(back.benchmark_ceiling_error.values, got.benchmark_ceiling_error.values)


def test_the_cli_prints_brainscores_number_first(tmp_path, capsys):
    from neurofit.cli import main

    rec, _, feats, ids, _, _ = brainscore_assembly()
    from neurofit.data.io import write_recording

    write_recording(rec, tmp_path / "rec.nc")
    np.savez(tmp_path / "features.npz", IT=feats, stimulus_id=np.array(ids))
    toml = load_benchmark("majajhong2015-it-brainscore").path
    text = open(toml).read().replace('id = "majajhong2015-it-brainscore"', 'id = "toy-brainscore"')
    text = text.replace("n_bootstrap = 1000", "n_bootstrap = 0").replace('metric = "pls"', 'metric = "ridge"')
    text = text.replace('temporal_mode = "span_time"', 'temporal_mode = "span_time"\nalpha = 1.0')
    (tmp_path / "toy-brainscore.toml").write_text(text)
    assert main(["score", "--features", str(tmp_path / "features.npz"), "--benchmark",
                 str(tmp_path / "toy-brainscore.toml"), "--recording", str(tmp_path / "rec.nc"), "--layers", "IT",
                 "--out", str(tmp_path / "s.nc"), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("metric: ridge (fixed penalty alpha 1), 10 Brain-Score shuffle splits (train 0.9)")
    first = next(i for i, line in enumerate(out) if line.startswith("Brain-Score's number"))
    assert out[first + 1].startswith("IT 70-170 ms: score ")
    assert first < next(i for i, line in enumerate(out) if line.startswith("neurofit's per-site statistics"))


def test_an_assembly_without_time_bins_is_refused_in_one_line(tmp_path, capsys):
    import xarray as xr

    from neurofit.cli import main
    from neurofit.data.io import read_recording
    from neurofit.data.loaders.brainio import convert_brainio

    rec, _, feats, ids, _, _ = brainscore_assembly()
    # a BrainIO assembly as Brain-Score writes a static one without its window: presentation x neuroid only
    static = xr.DataArray(rec.values[:, :, 0], dims=("presentation", "neuroid"),
                          coords={name: (coord.dims, coord.values) for name, coord in rec.coords.items()
                                  if coord.dims in (("presentation",), ("neuroid",))}, name="rates")
    path = tmp_path / "assy_toy_static.nc"
    static.to_netcdf(path)
    message = f"{path} has no 'time_bin' dim (dims: ('presentation', 'neuroid')) and no time_bin_start/time_bin_end"
    with pytest.raises(ValidationError, match=re.escape(message)):
        read_recording(path)
    with pytest.raises(ValidationError, match=re.escape(message)), pytest.warns(UserWarning, match="not verified"):
        convert_brainio(path)
    np.savez(tmp_path / "features.npz", IT=feats, stimulus_id=np.array(ids))
    assert main(["score", "--features", str(tmp_path / "features.npz"), "--benchmark", "majajhong2015-it-brainscore",
                 "--recording", str(path), "--layers", "IT", "--out", str(tmp_path / "s.nc"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    static.attrs.update(time_bin_start=70.0, time_bin_end=170.0)  # one window given: accepted
    static.to_netcdf(tmp_path / "windowed.nc")
    assert read_recording(tmp_path / "windowed.nc").time_bin_start.values.tolist() == [70.0]
