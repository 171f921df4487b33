"""Every metric is a ``metric`` option of score() and the CLI, writes the ScoreSet schema, and equals its oracle.

The values a ScoreSet holds are checked against the oracles on the very features and trials the run used:
rsatoolbox for RSA (RDMs, comparison, lower/upper ceilings to 1e-10), a float64 formula of debiased CKA,
the reverse-predictivity kernel, and the variance partition of :func:`neurofit.metrics.partition.variance_partition`
(itself himalaya's in tests/test_metrics_partition.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TOY_BENCHMARK, toy, toy_metric_benchmark
from neurofit.errors import NeurofitError, ValidationError
from neurofit.scoreset import is_scoreset, metric_line, summary_table
from neurofit.scoring.benchmark import load_benchmark
from neurofit.scoring.score import score

# few draws and halvings: the checks are about wiring and equality, not about precise intervals
METRIC_SECTION = "[metric]\nn_bootstrap = 8\n"
LAYERS = ["V4=a", "IT=b"]


@pytest.fixture(scope="module")
def toy_data():
    return toy(n_obj=8, per_obj=8, reps=6, n_bins=3)


@pytest.fixture(scope="module")
def bench_path(tmp_path_factory):
    return toy_metric_benchmark(tmp_path_factory.mktemp("bench"), METRIC_SECTION)


@pytest.fixture(scope="module")
def scored(toy_data, bench_path, tmp_path_factory):
    rec, stimuli, acts = toy_data
    work = tmp_path_factory.mktemp("work")
    return {m: score(acts, bench_path, data=(rec, stimuli), progress=False, metric=m, layers=LAYERS, work_dir=work,
                     created="2026-01-01T00:00:00Z")
            for m in ("rsa", "cka", "reverse_pls", "partition")}


def _inputs(toy_data, s, region):
    """The trials and per-bin features of a region on the scored stimuli, as the run saw them."""
    rec, _, acts = toy_data
    from neurofit.data.recording import trial_array

    trials, ids = trial_array(rec)
    ids = [str(i) for i in ids]
    score_ids = sorted(set(ids) - set(_commit_ids(toy_data, s)))
    rows = [ids.index(i) for i in score_ids]
    sites = rec["region"].values == region
    layer = s.attrs["committed_layers"][region]
    pos = {sid: i for i, sid in enumerate(acts.stimulus_ids)}
    feats = np.stack([np.asarray(acts.features(layer, b).values, dtype=np.float64)[[pos[i] for i in score_ids]]
                      for b in range(trials.shape[-1])])
    return trials[rows][:, :, sites], feats, score_ids


def _commit_ids(toy_data, s):
    from neurofit.scoring.commit import commitment_split

    rec = toy_data[0]
    ids = sorted({str(i) for i in rec["stimulus_id"].values})
    objects = {str(i): str(o) for i, o in zip(rec["stimulus_id"].values, rec["object_name"].values)}
    return commitment_split(ids, s.attrs["commitment_fraction"], s.attrs["commitment_seed"],
                            [objects[i] for i in ids])[0]


@pytest.mark.parametrize("metric", ["rsa", "cka", "reverse_pls", "partition"])
def test_every_metric_writes_the_scoreset_schema_with_its_settings_in_attrs(scored, metric, tmp_path):
    from neurofit.scoreset import read_scoreset, write_scoreset

    s = scored[metric]
    assert is_scoreset(s)
    assert s.attrs["metric"] == metric
    assert s.attrs["metric_scope"] == ("site" if metric == "partition" else "population")
    assert s.attrs["metric_settings"]["n_bootstrap"] == 8 and s.attrs["ceiling_halvings"] == 3
    assert metric_line(s).startswith("metric: ") and s.attrs["metric_description"] in metric_line(s)
    for name in ("median_ceiled", "median_r", "median_ceiling"):
        assert s[name].dims == ("region", "time_bin") and s.sizes["time_bin"] == 3
    n = s.sizes["neuroid"]
    assert n == (14 if metric == "partition" else 2)  # per site, or one entry per region
    assert np.isfinite(s["ceiled"].values).all()
    summary_table(s)  # the printed table reads every metric
    back = read_scoreset(write_scoreset(s, tmp_path / f"{metric}.nc"))
    np.testing.assert_array_equal(back["ceiled"].values, s["ceiled"].values)


def test_population_metrics_have_intervals_that_contain_their_estimates(scored):
    for metric in ("rsa", "cka", "reverse_pls"):
        s = scored[metric]
        low, high, value = (s[f"median_ceiled{k}"].values for k in ("_low", "_high", ""))
        assert np.isfinite(low).all() and (low <= value + 1e-12).all() and (value <= high + 1e-12).all()
        assert s["ceiled_boot"].sizes["boot"] == 8 and s.attrs["stimulus_draws"]
    assert len({scored[m].attrs["stimulus_draws"] for m in ("rsa", "cka", "reverse_pls")}) == 1  # the same draws
    s = scored["reverse_pls"]  # its second interval: the model's units resampled, named as such
    low, high = s["median_ceiled_units_low"].values, s["median_ceiled_units_high"].values
    assert np.isfinite(low).all() and (low <= s["median_ceiled"].values + 1e-12).all()
    assert s.attrs["bootstrap_resampling"] == "stimuli (held-out predictions)" and s.attrs["n_bootstrap"] == 8
    assert s.attrs["units_bootstrap_draws"] == 50 and "units" in s.attrs["units_bootstrap"]


def test_rsa_scoreset_equals_rsatoolbox_on_the_same_trials_and_features(scored, toy_data):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling
    from rsatoolbox.rdm import RDMs, calc_rdm, compare

    from neurofit.metrics.rsa import repetition_groups

    s = scored["rsa"]
    assert s.attrs["metric_settings"]["comparison"] == "spearman"
    for region in ("V4", "IT"):
        trials, feats, _ = _inputs(toy_data, s, region)
        groups = repetition_groups(trials.shape[1], s.attrs["metric_settings"]["n_groups"], 0)
        k = list(s["region"].values).index(region)
        for b in range(trials.shape[-1]):
            def rdm_of(patterns):
                return calc_rdm(rsatoolbox.data.Dataset(patterns), method="correlation").get_vectors()[0]

            data = RDMs(np.stack([rdm_of(np.nanmean(trials[..., b][:, groups == g], axis=1))
                                  for g in np.unique(groups)]))
            model = RDMs(rdm_of(feats[b])[None])
            theirs = compare(model, data, method="spearman").mean()
            lower, upper = boot_noise_ceiling(data, method="spearman")
            np.testing.assert_allclose(s["r"].values[k, b], theirs, rtol=0, atol=1e-10)
            np.testing.assert_allclose(s["ceiling"].values[k, b], lower, rtol=0, atol=1e-10)
            np.testing.assert_allclose(s["ceiling_upper"].values[k, b], upper, rtol=0, atol=1e-10)


def _debiased_cka_reference(x, y):
    """Debiased linear CKA written from Song et al. 2012 / Kornblith et al. 2019 in float64, loops and all."""
    def hsic(k, l):
        n = len(k)
        k, l = k.copy(), l.copy()
        np.fill_diagonal(k, 0.0)
        np.fill_diagonal(l, 0.0)
        one = np.ones(n)
        return (np.trace(k @ l) + (one @ k @ one) * (one @ l @ one) / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (one @ k @ l @ one)) / (n * (n - 3))

    k, l = x @ x.T, y @ y.T
    return hsic(k, l) / np.sqrt(hsic(k, k) * hsic(l, l))


def test_cka_scoreset_equals_the_float64_formula_on_the_same_data(scored, toy_data):
    s = scored["cka"]
    for region in ("V4", "IT"):
        trials, feats, _ = _inputs(toy_data, s, region)
        means = np.nanmean(trials, axis=1)
        k = list(s["region"].values).index(region)
        for b in range(trials.shape[-1]):
            np.testing.assert_allclose(s["r"].values[k, b], _debiased_cka_reference(feats[b], means[:, :, b]),
                                       rtol=0, atol=1e-10)


def test_reverse_scoreset_is_the_median_over_units_of_the_kernel(scored, toy_data):
    from neurofit.metrics.reverse import reverse_predictivity
    from neurofit.metrics.rsa import bootstrap_patterns
    from neurofit.scoring.fit import stimulus_splits

    s = scored["reverse_pls"]
    trials, feats, ids = _inputs(toy_data, s, "IT")
    objects = dict(zip(toy_data[0]["stimulus_id"].values.astype(str), toy_data[0]["object_name"].values.astype(str)))
    splits = stimulus_splits(ids, "kfold", np.array([objects[i] for i in ids]), 5, 0)
    draws = bootstrap_patterns(len(ids), 8, 0)  # the benchmark's stimulus draws ([metric] n_bootstrap, seed)
    res = reverse_predictivity(trials, feats, splits.train, splits.test, n_components=5, n_splits=3, draws=draws)
    np.testing.assert_allclose(s["ceiled"].values[1], res.median()["ceiled"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(s["ceiled_boot"].values[:, 1], res.draws["ceiled"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(s["r_boot"].values[:, 1], res.draws["r"], rtol=0, atol=1e-12)
    assert s.attrs["n_units"] == {"V4": 30, "IT": 30}


def test_partition_scoreset_equals_variance_partition_of_the_same_spaces(scored, toy_data):
    from neurofit.metrics.partition import simplex_grid, variance_partition
    from neurofit.scoring.fit import stimulus_splits

    s = scored["partition"]
    trials, feats, ids = _inputs(toy_data, s, "IT")
    objects = dict(zip(toy_data[0]["stimulus_id"].values.astype(str), toy_data[0]["object_name"].values.astype(str)))
    splits = stimulus_splits(ids, "kfold", np.array([objects[i] for i in ids]), 5, 0)
    means = np.nanmean(trials, axis=1).transpose(2, 0, 1)
    part = variance_partition({"feedforward": feats[:1], "mapped": feats}, means, splits.train, splits.test,
                              gammas=simplex_grid(2, 6))
    it = s["region"].values == "IT"
    np.testing.assert_allclose(s["unique"].sel(space="mapped").values[it], part.unique["mapped"].T, rtol=0,
                               atol=1e-10)
    np.testing.assert_allclose(s["shared"].values[it], part.shared.T, rtol=0, atol=1e-10)
    # bin 0 is the first driven step itself: the later step adds nothing there, and everything after
    assert np.abs(s["unique"].sel(space="mapped").values[:, 0]).max() < 1e-8
    assert (s["median_ceiled"].values[:, 1:] > 0.5).all()


def test_compare_tests_population_metrics_over_their_stimulus_draws(toy_data, bench_path, scored, tmp_path):
    from neurofit.scoring.resolve import activations_from_arrays
    from neurofit.stats.compare import compare

    rec, stimuli, acts = toy_data
    rng = np.random.default_rng(1)
    noise = {layer: rng.normal(size=(acts.n_steps(layer), len(acts.stimulus_ids), 30)) for layer in acts.layers}
    random = activations_from_arrays(noise, list(acts.stimulus_ids), model_id="noise")
    other = score(random, bench_path, data=(rec, stimuli), progress=False, metric="cka", layers=LAYERS,
                  work_dir=tmp_path)
    result = compare(scored["cka"], other, n_boot=200).isel(comparison=0)
    driven = np.isfinite(other["ceiled"].values)  # a bin the noise's committed offset maps no step to is untested
    assert driven.sum() >= 4 and (result["tested"].values == driven).all()
    assert result["significant"].values[driven].all() and (result["median_difference"].values[driven] < -0.3).all()
    assert "stimulus-bootstrap draws" in result.attrs["uncertainty"]
    from neurofit.stats.compare import comparison_table

    table = comparison_table(compare(scored["cka"], other, n_boot=50))
    assert table.startswith("compared: cka ceiled score per region")
    with pytest.raises(NeurofitError, match="different metrics"):
        compare(scored["cka"], scored["rsa"], n_boot=50)


def test_compare_tests_two_reverse_predictivity_scoresets_over_their_paired_stimulus_draws(toy_data, bench_path,
                                                                                             scored, tmp_path):
    from neurofit.scoring.resolve import activations_from_arrays
    from neurofit.stats.bootstrap import bootstrap_p
    from neurofit.stats.cluster import bootstrap_cluster_test
    from neurofit.stats.compare import compare

    rec, stimuli, acts = toy_data
    rng = np.random.default_rng(2)
    noise = {layer: rng.normal(size=(acts.n_steps(layer), len(acts.stimulus_ids), 30)) for layer in acts.layers}
    random = activations_from_arrays(noise, list(acts.stimulus_ids), model_id="noise")
    other = score(random, bench_path, data=(rec, stimuli), progress=False, metric="reverse_pls", layers=LAYERS,
                  work_dir=tmp_path)
    a = scored["reverse_pls"]
    assert other.attrs["stimulus_draws"] == a.attrs["stimulus_draws"]
    result = compare(a, other, n_boot=200, variable="r").isel(comparison=0)
    assert "stimulus-bootstrap draws" in result.attrs["uncertainty"]
    assert result.attrs["cluster_test"].startswith("bootstrap cluster test")
    diff = other["r_boot"].values - a["r_boot"].values  # [draw, region, bin], the same stimuli in both
    tested = result["tested"].values
    assert tested.any()
    for k in range(2):  # the per-bin p and the cluster p are those of the paired draws
        cycled = diff[np.arange(200) % diff.shape[0], k]
        p = bootstrap_p(cycled, 0.0)
        np.testing.assert_allclose(result["p"].values[k][tested[k]], p[tested[k]], rtol=0, atol=1e-12)
        ref = bootstrap_cluster_test(other["r"].values[k] - a["r"].values[k], diff[:, k])
        np.testing.assert_array_equal(result["cluster_significant"].values[k], ref.significant())


def test_unknown_metric_and_bad_metric_settings_fail_in_one_line(toy_data, bench_path, tmp_path):
    rec, stimuli, acts = toy_data
    with pytest.raises(NeurofitError, match="unknown metric 'rsa2'; metrics: pls, ridge, rsa"):
        score(acts, bench_path, data=(rec, stimuli), progress=False, metric="rsa2")
    bad = tmp_path / "toy.toml"
    bad.write_text(bench_path.read_text().replace("n_bootstrap = 8", 'comparison = "kendall"'))
    with pytest.raises(ValidationError, match="key 'metric.comparison' must be one of cosine, corr, spearman, tau_a"):
        load_benchmark(bad)


def test_metric_settings_enter_the_hash_only_when_set():
    bench = load_benchmark("synthetic-ventral-it-temporal")
    assert "metric_settings" not in bench.to_dict()
    changed = bench.replace(metric={"comparison": "cosine"})
    assert changed.sha256() != bench.sha256() and changed.to_dict()["metric_settings"]["comparison"] == "cosine"


def test_cli_score_takes_metric():
    from neurofit.cli import build_parser

    args = build_parser().parse_args(["score", "--model", "bl", "--benchmark", "b", "--metric", "cka"])
    assert args.metric == "cka"


def test_report_draws_the_metric_overview_and_the_partition_figure(scored, toy_data, bench_path, tmp_path):
    from neurofit.report import report

    rec, stimuli, acts = toy_data
    regression = score(acts, bench_path, data=(rec, stimuli), progress=False, layers=LAYERS, work_dir=tmp_path)
    index = report([regression, *scored.values()], tmp_path / "report", n_boot=50)
    page = index.read_text()
    for stem in ("metric_overview", "partition_over_time", "predictivity_over_time"):
        assert (tmp_path / "report" / "figures" / f"{stem}.png").is_file(), stem
    assert "Metrics over time" in page and "Variance partitioning over time" in page
    assert "Metrics beyond regression" in page and scored["rsa"].attrs["metric_description"][:30] in page


def test_demo_metrics_names_are_checked_and_the_cli_takes_them():
    from neurofit.cli import build_parser
    from neurofit.scoring.metric_demo import parse_metrics

    assert parse_metrics("all") == ["pls", "rsa", "cka", "reverse_pls", "partition"]
    assert parse_metrics(" rsa, partition ") == ["rsa", "partition"]
    with pytest.raises(NeurofitError, match="unknown metric 'rdm'"):
        parse_metrics("rsa,rdm")
    assert build_parser().parse_args(["demo", "--metrics", "all"]).metrics == "all"


def test_per_site_latency_finds_the_sites_that_lag_by_one_bin(tmp_path):
    rec, stimuli, acts = toy(n_obj=8, per_obj=8, reps=6, n_bins=4, seed=3)
    lagged = [f"i{k}" for k in range(4)]  # half the IT sites respond one bin (10 ms) later
    values = rec.values.copy()
    sel = np.isin(rec["neuroid_id"].values, lagged)
    values[:, sel, 1:] = rec.values[:, sel, :-1]
    values[:, sel, 0] = np.random.default_rng(0).normal(size=values[:, sel, 0].shape)
    rec = rec.copy(data=values)
    path = tmp_path / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin").replace("end = 50", "end = 40")
                    .replace("fraction = 0.2", "fraction = 0.3"))
    s = score(acts, path, data=(rec, stimuli), progress=False, layers=LAYERS, latency="site", work_dir=tmp_path)
    lag = dict(zip(s["neuroid_id"].values, s["lag_ms"].values))
    assert [lag[n] for n in lagged] == [10.0] * 4 and all(lag[f"i{k}"] == 0.0 for k in range(4, 8))
    assert s.attrs["committed_offsets_ms"]["IT"] in (0.0, 10.0)  # the region keeps one offset for all its sites
    assert s.attrs["site_lags_ms"]["IT"] == {"0": 4, "10": 4}
    # with its own lag every IT site is predicted well from bin 1 on; the region's one lag fails half of them
    it = s["region"].values == "IT"
    assert (s["ceiled_site_lag"].values[it][:, 1:] > 0.5).all()
    assert s.attrs["site_lag_change"]["IT"] > 0.1 and np.allclose(s["ceiled_site_lag"].values[~it],
                                                                   s["ceiled"].values[~it], equal_nan=True)


@pytest.mark.slow
def test_groundtruth_through_score_hidden_features_near_ceiling_random_near_zero(tmp_path):
    """synthetic-ventral (small): the generator's own IT features score near the RSA and CKA ceilings in the
    response window, random features near zero, the recurrence-ablated features lower in late bins only."""
    from neurofit.data.synthetic import generate_synthetic_ventral, hidden_features
    from neurofit.scoreset import bin_reliability
    from neurofit.scoring.resolve import activations_from_arrays

    rec, stimuli = generate_synthetic_ventral("small")
    bench = load_benchmark("synthetic-ventral-it-temporal").replace(
        dataset_options={"size": "small", "seed": 0}, mapping={"offsets_ms": (0.0,)}, metric={"n_bootstrap": 0},
        aggregate={"n_bootstrap": 0}, ceiling={"n_splits": 4})
    acts = {}
    for name, ablate in (("hidden", False), ("ablated", True)):
        feats = hidden_features("small", ablate_recurrence=ablate)
        it = feats.values[:, feats["stage"].values == "IT"].transpose(2, 0, 1)
        acts[name] = activations_from_arrays({"IT": it}, list(feats["stimulus_id"].values), model_id=name)
    rng = np.random.default_rng(0)
    acts["random"] = activations_from_arrays({"IT": rng.normal(size=it.shape)}, list(feats["stimulus_id"].values),
                                             model_id="random")
    start = rec["time_bin_start"].values
    window, late = (start >= 120) & (start < 250), start >= 150
    out = {(name, m): score(a, bench, data=(rec, stimuli), metric=m, layers=["IT"], progress=False,
                            work_dir=tmp_path)
           for name, a in acts.items() for m in ("rsa", "cka")}
    for m, floor in (("rsa", 0.7), ("cka", 0.65)):
        hidden, random = (out[(n, m)]["ceiled"].values[0] for n in ("hidden", "random"))
        assert np.nanmedian(hidden[window]) > floor, (m, hidden[window])
        assert abs(np.nanmedian(random[window])) < 0.1, (m, random[window])
        # without stimulus draws the reliability rule reads the ceiling itself: the response window is reliable
        assert bin_reliability(out[("hidden", m)]).reliable["IT"][window].all()
        assert "no CI: a population metric scored without stimulus draws" in summary_table(out[("hidden", m)])
        h, a = out[("hidden", m)]["r"].values[0], out[("ablated", m)]["r"].values[0]
        np.testing.assert_array_equal(h[start < 90], a[start < 90])
        assert (a[late] < h[late]).mean() >= 0.75, (m, h[late], a[late])


def test_cka_grid_equals_the_cka_of_each_layer_and_step(toy_data, bench_path, scored, tmp_path):
    rec, stimuli, acts = toy_data
    s = score(acts, bench_path, data=(rec, stimuli), progress=False, metric="cka", layers=LAYERS, grid=True,
              work_dir=tmp_path)
    assert s["grid_r"].dims == ("region", "layer", "step", "time_bin")
    # the committed layer at the step each bin maps to is the main score
    for k, region in enumerate(("V4", "IT")):
        layer = list(s["layer"].values).index(s.attrs["committed_layers"][region])
        np.testing.assert_allclose(np.diagonal(s["grid_r"].values[k, layer]), s["r"].values[k], rtol=0, atol=1e-10)
    # IT reads layer b at the step of each bin: high on that diagonal only, ~0 for layer a and for other steps
    b, a = s["grid_r"].sel(layer="b").values[1], s["grid_r"].sel(layer="a").values[1]
    assert np.diagonal(b).min() > 0.5 and np.abs(a).max() < 0.2 and np.abs(b - np.diag(np.diagonal(b))).max() < 0.2
    with pytest.raises(NeurofitError, match="grid is scored by regression, rsa and cka only"):
        score(acts, bench_path, data=(rec, stimuli), progress=False, metric="reverse_pls", grid=True)


@pytest.mark.slow
def test_demo_metrics_prints_one_line_per_metric_for_the_shipped_models(tmp_path):
    import io

    from neurofit.scoring.metric_demo import metrics_demo

    bench = load_benchmark("synthetic-ventral-it-temporal").replace(
        dataset_options={"size": "small", "seed": 0}, time_bins=tuple((float(t), t + 10.0) for t in range(90, 150, 10)),
        mapping={"offsets_ms": (0.0,)}, regression={"n_splits": 3}, ceiling={"n_splits": 3})
    stream = io.StringIO()
    out = metrics_demo("cka,partition", tmp_path, n_bootstrap=2, benchmark=bench, progress=False, stream=stream)
    lines = stream.getvalue().splitlines()
    assert [line.split()[0] for line in lines[1:5:2]] == ["cka", "partition"], lines
    assert all(set(out[m]) == {"feedforward", "recurrent"} for m in out)
    assert (tmp_path / "recurrent-partition.nc").is_file()
