"""Variance partitioning of a model against other models through score() (issue 17 item 4).

Each ScoreSet is checked against :func:`neurofit.metrics.partition.variance_partition` called directly on the
features the run committed (each model's committed layer and offset, mapped by its own time map) and on the
repetition means of the scored stimuli, to 1e-10; the kernel itself is himalaya's
(tests/test_metrics_partition.py). Ground truth on the toy: a model against itself has no unique variance, and a
model whose features are a linear function of the scored model's has none either, while the scored model keeps
what the other lacks.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import toy, toy_metric_benchmark
from neurofit.errors import NeurofitError
from neurofit.scoring.resolve import activations_from_arrays
from neurofit.scoring.score import score

METRIC_SECTION = "[metric]\nn_bootstrap = 8\nband_resolution = 4\n"
CREATED = "2026-01-01T00:00:00Z"


@pytest.fixture(scope="module")
def toy_data():
    return toy(n_obj=8, per_obj=8, reps=6, n_bins=3)


@pytest.fixture(scope="module")
def bench_path(tmp_path_factory):
    return toy_metric_benchmark(tmp_path_factory.mktemp("bench"), METRIC_SECTION)


@pytest.fixture(scope="module")
def others(toy_data):
    """``sub``: a linear function of the toy model's features (3 of 30 directions, no noise of its own);
    ``noisy``: 5 directions of them plus independent noise (its own unique part)."""
    _, _, acts = toy_data
    rng = np.random.default_rng(7)
    ids = list(acts.stimulus_ids)
    feats = {layer: np.stack([np.asarray(acts.features(layer, s).values, dtype=np.float64)
                              for s in range(acts.n_steps(layer))]) for layer in acts.layers}
    sub = {layer: x @ rng.normal(size=(x.shape[-1], 3)) for layer, x in feats.items()}
    noisy = {layer: x @ rng.normal(size=(x.shape[-1], 5)) + 2.0 * rng.normal(size=(*x.shape[:2], 5))
             for layer, x in feats.items()}
    return {"sub": activations_from_arrays(sub, ids, model_id="sub"),
            "noisy": activations_from_arrays(noisy, ids, model_id="noisy")}


@pytest.fixture(scope="module")
def scored(toy_data, bench_path, others, tmp_path_factory):
    rec, stimuli, acts = toy_data
    work = tmp_path_factory.mktemp("work")
    run = dict(data=(rec, stimuli), progress=False, metric="partition", work_dir=work, created=CREATED)
    return {
        "pair": score(acts, bench_path, partition_with=others["noisy"], **run),
        "three": score(acts, bench_path, partition_with=[others["sub"], others["noisy"]], **run),
        "self": score(acts, bench_path, partition_with=acts, **run),
        "sub": score(acts, bench_path, partition_with=[others["sub"]], **run),
        "sub_vs_noisy": score(others["sub"], bench_path, partition_with=others["noisy"], **run),
        "steps": score(acts, bench_path, **run),
    }


def _direct(toy_data, bench_path, s, models, region):
    """variance_partition called directly on the committed features of ``models`` (in space order)."""
    from neurofit.data.recording import trial_array
    from neurofit.metrics.partition import simplex_grid, variance_partition
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.commit import commitment_split
    from neurofit.scoring.fit import _Features, _mapping, stimulus_splits

    rec = toy_data[0]
    bench = load_benchmark(bench_path)
    trials, ids = trial_array(rec)
    ids = [str(i) for i in ids]
    objects = dict(zip(rec["stimulus_id"].values.astype(str), rec["object_name"].values.astype(str)))
    all_ids = sorted(objects)
    commit = commitment_split(all_ids, bench.commitment.fraction, bench.commitment.seed, [objects[i] for i in all_ids])
    score_ids = sorted(set(all_ids) - set(commit[0]))
    sites = rec["region"].values == region
    means = np.nanmean(trials[[ids.index(i) for i in score_ids]][:, :, sites], axis=1)  # [n, q, B]
    spaces = {}
    for name, acts in zip(s["space"].values.astype(str), models):
        info = s.attrs["partition_spaces"][name]
        policy = info["mapping_policy"]
        layer, offset = info["committed_layers"][region], info["committed_offsets_ms"][region]
        mapping = _mapping(bench.mapping, bench.time_bins, policy, acts, layer, offset, list(acts.layers))
        pos = {sid: k for k, sid in enumerate(acts.stimulus_ids)}
        feats = _Features(acts, np.array([pos[i] for i in score_ids]))
        spaces[name] = [feats.combine(refs) for refs in mapping.refs]
    mapped = [b for b in range(means.shape[2]) if all(x[b] is not None for x in spaces.values())]
    designs = {name: np.stack([x[b] for b in mapped]) for name, x in spaces.items()}
    splits = stimulus_splits(score_ids, "kfold", np.array([objects[i] for i in score_ids]), 5, 0)
    res = bench.metric.band_resolution
    part = variance_partition(designs, means[:, :, mapped].transpose(2, 0, 1), splits.train, splits.test,
                              gammas=simplex_grid(len(designs), res), resolution=res, alone=True, keep_prediction=True)
    return part, mapped, sites, means[:, :, mapped]


@pytest.mark.parametrize("case", ["pair", "three"])
def test_score_equals_variance_partition_of_the_committed_features(scored, toy_data, bench_path, others, case):
    from neurofit.scoreset import site_r

    s = scored[case]
    models = [toy_data[2], others["noisy"]] if case == "pair" else [toy_data[2], others["sub"], others["noisy"]]
    names = list(s["space"].values.astype(str))
    assert names == ["model", *(f"other_{k + 1}" for k in range(len(models) - 1))]
    for region in ("V4", "IT"):
        part, mapped, sites, y = _direct(toy_data, bench_path, s, models, region)
        assert mapped, region
        for name in names:
            np.testing.assert_allclose(s["unique"].sel(space=name).values[sites][:, mapped], part.unique[name].T,
                                       rtol=0, atol=1e-10)
            np.testing.assert_allclose(s["r2"].sel(space_set=name).values[sites][:, mapped], part.r2[(name,)].T,
                                       rtol=0, atol=1e-10)
            if len(names) > 2:
                kept = tuple(n for n in names if n != name)
                np.testing.assert_allclose(s["r2"].sel(space_set=f"all_but_{name}").values[sites][:, mapped],
                                           part.r2[kept].T, rtol=0, atol=1e-10)
        np.testing.assert_allclose(s["r2"].sel(space_set="joint").values[sites][:, mapped], part.r2[tuple(names)].T,
                                   rtol=0, atol=1e-10)
        np.testing.assert_allclose(s["shared"].values[sites][:, mapped], part.shared.T, rtol=0, atol=1e-10)
        np.testing.assert_allclose(s["r"].values[sites][:, mapped],
                                   site_r(part.joint_prediction.transpose(1, 2, 0), y), rtol=0, atol=1e-10)
        unmapped = [b for b in range(s.sizes["time_bin"]) if b not in mapped]
        assert np.isnan(s["unique"].values[:, sites][:, :, unmapped]).all()
    # ceiled: the scored model's unique variance over the ceiling; the parts add up to the joint R^2
    np.testing.assert_array_equal(s["ceiled"].values, s["unique_fraction"].sel(space="model").values)
    total = s["unique"].sum("space", skipna=False) + s["shared"]
    np.testing.assert_allclose(total.values, s["r2"].sel(space_set="joint").values, rtol=0, atol=1e-12)


def test_a_model_against_itself_has_no_unique_variance(scored):
    s = scored["self"]
    unique = s["unique"].values
    finite = np.isfinite(unique)
    assert finite.any() and np.abs(unique[finite]).max() < 1e-8
    # everything the joint model explains is shared
    np.testing.assert_allclose(s["shared"].values, s["r2"].sel(space_set="joint").values, rtol=0, atol=1e-8)
    assert list(s["space_label"].values) == ["toy-features [1]", "toy-features [2]"]


def test_a_linear_function_of_the_model_adds_nothing_and_the_model_keeps_the_rest(scored):
    s = scored["sub"]
    it = s["region_name"].values.tolist().index("IT")
    driven = np.isfinite(s["median_ceiled"].values[it])
    other = s["median_unique_fraction_other_1"].values[it][driven]
    model = s["median_unique_fraction_model"].values[it][driven]
    assert np.abs(other).max() < 0.02, other
    assert (model > 0.2).all(), model
    # the model's features hold the other's: the other's R^2 alone is what the two share
    shared = s["median_shared_fraction"].values[it][driven]
    assert (shared > 0.05).all(), shared


def test_attrs_name_every_space_and_setting(scored, others, tmp_path):
    from neurofit.scoreset import metric_line, read_scoreset, write_scoreset

    s = scored["three"]
    spaces = s.attrs["partition_spaces"]
    assert list(spaces) == ["model", "other_1", "other_2"]
    assert [spaces[k]["model_id"] for k in spaces] == ["toy-features", "sub", "noisy"]
    for info in spaces.values():
        for key in ("weights", "weights_sha256", "committed_layers", "committed_offsets_ms", "commitment_criteria",
                    "n_features", "mapping_policy", "mapping", "unroll_steps", "reduction", "label"):
            assert key in info, key
        assert set(info["committed_layers"]) == {"V4", "IT"}
    assert spaces["model"]["committed_layers"] == s.attrs["committed_layers"]
    assert s.attrs["partition_ceiled_space"] == "model"
    assert "beyond the other model(s)" in s.attrs["normalisation"]
    assert "toy-features, sub, noisy" in s.attrs["metric_description"]
    assert "3 band weightings of the 3 spaces" in s.attrs["partition_engine"]  # simplex_grid(3, 4)
    assert s.attrs["metric_settings"]["band_resolution"] == 4
    assert list(s["space_set"].values) == ["joint", "model", "other_1", "other_2", "all_but_model",
                                           "all_but_other_1", "all_but_other_2"]
    assert metric_line(s).startswith("metric: variance partitioning per site and bin: banded ridge over the "
                                     "committed features of toy-features, sub, noisy")
    back = read_scoreset(write_scoreset(s, tmp_path / "three.nc"))
    assert back.attrs["partition_spaces"] == spaces
    np.testing.assert_array_equal(back["unique"].values, s["unique"].values)
    # the one-model partition keeps its spaces and gains their labels
    steps = scored["steps"]
    assert list(steps["space"].values) == ["feedforward", "mapped"]
    assert steps.attrs["partition_ceiled_space"] == "mapped"
    assert list(steps["space_set"].values) == ["joint", "feedforward", "mapped"]


def test_library_errors_name_parameters_and_the_cli_names_flags(toy_data, bench_path, others, tmp_path):
    from neurofit.cli import build_parser, in_cli_terms, option_strings, parameter_spellings

    rec, stimuli, acts = toy_data
    with pytest.raises(NeurofitError, match="^partition_with= names the other feature spaces") as err:
        score(acts, bench_path, data=(rec, stimuli), progress=False, metric="cka", partition_with=others["sub"])
    assert "--" not in str(err.value)
    cli = in_cli_terms(str(err.value), option_strings(build_parser()), parameter_spellings())
    assert cli.startswith("--partition-with names") and "(--metric partition)" in cli
    with pytest.raises(NeurofitError, match="metric.band_resolution must be at least 3, is 2"):
        (tmp_path / "bad").mkdir()
        bad = tmp_path / "bad" / "toy.toml"
        bad.write_text(bench_path.read_text().replace("band_resolution = 4", "band_resolution = 2"))
        score(acts, bad, data=(rec, stimuli), progress=False, metric="partition", work_dir=tmp_path,
              partition_with=[others["sub"], others["noisy"]])
    with pytest.raises(NeurofitError, match="names no model"):
        score(acts, bench_path, data=(rec, stimuli), progress=False, metric="partition", work_dir=tmp_path,
              partition_with=[])
    args = build_parser().parse_args(["score", "--model", "bl", "--benchmark", "b", "--metric", "partition",
                                      "--partition-with", "cornet_z", "cornet_rt"])
    assert args.partition_with == ["cornet_z", "cornet_rt"]


def test_compare_reads_partitions_against_the_same_models_and_refuses_others(scored):
    from neurofit.stats.compare import compare, comparison_table

    result = compare(scored["pair"], scored["sub_vs_noisy"], n_boot=50)
    head = comparison_table(result).splitlines()[0]
    assert head.startswith("compared: partition ceiled score (unique variance of the scored model beyond noisy "
                           "(weights not hashed), over the ceiling) per site"), head
    with pytest.raises(NeurofitError, match="partition different things"):
        compare(scored["pair"], scored["steps"], n_boot=50)
    with pytest.raises(NeurofitError, match="partition different things"):
        compare(scored["pair"], scored["sub"], n_boot=50)


def test_the_partition_figure_labels_the_spaces_by_model(scored, tmp_path):
    from neurofit.report import report
    from neurofit.report.figures import partition_over_time

    fig = partition_over_time([scored["pair"], scored["steps"]])
    texts = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    for text in ("unique: toy-features", "unique: noisy", "shared", "unique: first driven step (feedforward)",
                 "unique: step mapped to the bin (later steps)"):
        assert text in texts, (text, texts)
    index = report([scored["three"]], tmp_path / "report", n_boot=20)
    assert (tmp_path / "report" / "figures" / "partition_over_time.png").is_file()
    assert "labelled by the model" in index.read_text()


# the large set of tests/test_scoring_groundtruth.py: recovering per-site variance over 256 hidden units needs
# many stimuli and repetitions (tests/test_metrics_groundtruth.py partitions it with the kernel directly)
LARGE = {"size": 768, "repetitions": 30, "n_v4": 8, "n_it": 40}


@pytest.mark.slow
def test_generator_features_against_their_recurrence_ablation_through_score(tmp_path):
    """synthetic-ventral ground truth through score(): the generator's IT features partitioned against the same
    features with its recurrence ablated. They are identical until the recurrent loop closes (90 ms), so
    nothing is unique there; late, the recurrent features keep a unique part and the ablated ones none."""
    from neurofit.data.synthetic import generate_synthetic_ventral, hidden_features
    from neurofit.scoring.benchmark import load_benchmark

    rec, stimuli = generate_synthetic_ventral(LARGE["size"], repetitions=LARGE["repetitions"], n_v4=LARGE["n_v4"],
                                              n_it=LARGE["n_it"])
    acts = {}
    for name, ablate in (("generator IT", False), ("generator IT, recurrence ablated", True)):
        feats = hidden_features(LARGE["size"], ablate_recurrence=ablate)
        it = feats.values[:, feats["stage"].values == "IT"].transpose(2, 0, 1)
        acts[ablate] = activations_from_arrays({"IT": it}, list(feats["stimulus_id"].values), model_id=name)
    # the generator's own time axis (offset 0), as tests/test_scoring_groundtruth.py scores it
    bench = load_benchmark("synthetic-ventral-it-temporal").replace(mapping={"offsets_ms": (0.0,)},
                                                                    aggregate={"n_bootstrap": 100})
    s = score(acts[False], bench, data=(rec, stimuli), metric="partition", partition_with=acts[True],
              progress=False, work_dir=tmp_path)
    start = s["time_bin_start"].values
    early, late = start < 90.0, start >= 150.0
    unique = s["unique"].sel(space="model").values
    assert np.abs(unique[:, early]).max() < 1e-6
    model = s["median_unique_fraction_model"].values[0]
    ablated = s["median_unique_fraction_other_1"].values[0]
    # measured at 1536 stimuli (median over 40 IT sites): recurrent 0 before 90 ms, 0.059 at 110 ms, 0.086-0.112
    # from 130 ms on; ablated -0.008 to 0 in every bin. The test runs 768 stimuli (a third of the time), where the
    # same bounds hold.
    assert (model[late] > 0.03).all(), model[late]
    assert (np.abs(ablated[late]) < 0.02).all(), ablated[late]
    assert list(s["space_label"].values) == ["generator IT", "generator IT, recurrence ablated"]


@pytest.mark.slow
def test_a_shipped_model_against_itself_has_no_unique_variance(tmp_path):
    """Two extractions of the shipped feedforward checkpoint (synthetic-ventral, small): every bin's variance
    is shared, none unique."""
    from neurofit.scoring.benchmark import load_benchmark

    bench = load_benchmark("synthetic-ventral-it-temporal").replace(dataset_options={"size": "small", "seed": 0},
                                                                    aggregate={"n_bootstrap": 0})
    s = score("cornet_z", bench, metric="partition", partition_with="cornet_z", progress=False, work_dir=tmp_path)
    unique = s["unique"].values
    assert np.isfinite(unique).any() and np.abs(unique[np.isfinite(unique)]).max() < 1e-8
    spaces = s.attrs["partition_spaces"]
    assert spaces["model"]["weights_sha256"] == spaces["other_1"]["weights_sha256"] != ""
    assert spaces["model"]["committed_layers"] == spaces["other_1"]["committed_layers"]
