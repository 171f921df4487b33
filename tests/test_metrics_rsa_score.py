"""RSA through score(): the site interval beside the stimulus interval, and the layer x step grid.

Checked on the run's own trials and features: the site interval is the centred interval (one rule for every
ScoreSet interval) of an explicit loop that resamples the region's sites and recomputes RSA; the grid's
committed diagonal is the RSA score and its cells equal rsatoolbox.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest import toy, toy_metric_benchmark
from neurofit.metrics.rsa import rsa_over_time
from neurofit.scoreset import centred_interval, summary_table
from neurofit.scoring.score import score

TOL = 1e-10
LAYERS = ["V4=a", "IT=b"]
REGIONS = ("V4", "IT")


@pytest.fixture(scope="module")
def toy_data():
    return toy(n_obj=8, per_obj=8, reps=6, n_bins=3)


@pytest.fixture(scope="module")
def bench_path(tmp_path_factory):
    return toy_metric_benchmark(tmp_path_factory.mktemp("bench"), "[metric]\nn_bootstrap = 12\n")


@pytest.fixture(scope="module")
def rsa_grid_scores(toy_data, bench_path, tmp_path_factory):
    rec, stimuli, acts = toy_data
    return score(acts, bench_path, data=(rec, stimuli), progress=False, metric="rsa", layers=LAYERS, grid=True,
                 work_dir=tmp_path_factory.mktemp("work"), created="2026-01-01T00:00:00Z")


def _inputs(toy_data, s, region, layer=None, step=None):
    """The region's trials on the scored stimuli and the features of each bin (or of one layer and step)."""
    from neurofit.data.recording import trial_array
    from neurofit.scoring.commit import commitment_split

    rec, _, acts = toy_data
    trials, ids = trial_array(rec)
    ids = [str(i) for i in ids]
    objects = {str(i): str(o) for i, o in zip(rec["stimulus_id"].values, rec["object_name"].values)}
    every = sorted(set(ids))
    commit = commitment_split(every, s.attrs["commitment_fraction"], s.attrs["commitment_seed"],
                              [objects[i] for i in every])[0]
    score_ids = sorted(set(ids) - set(commit))
    rows = [ids.index(i) for i in score_ids]
    pos = {sid: i for i, sid in enumerate(acts.stimulus_ids)}
    take = [pos[i] for i in score_ids]
    layer = layer or s.attrs["committed_layers"][region]
    steps = range(trials.shape[-1]) if step is None else [step]
    feats = np.stack([np.asarray(acts.features(layer, b).values, dtype=np.float64)[take] for b in steps])
    return trials[rows][:, :, rec["region"].values == region], feats


def test_site_interval_is_the_centred_interval_of_explicit_site_resampling(rsa_grid_scores, toy_data):
    s = rsa_grid_scores
    settings = s.attrs["metric_settings"]
    n_draws, seed = settings["n_bootstrap"], s.attrs["bootstrap_seed"]
    assert s.attrs["n_bootstrap_sites"] == n_draws == 12
    assert s.attrs["bootstrap_sites_seed"] == {"V4": seed, "IT": seed + 1}
    for k, region in enumerate(REGIONS):
        trials, feats = _inputs(toy_data, s, region)
        kw = dict(method=settings["comparison"], dissimilarity=settings["dissimilarity"],
                  n_groups=settings["n_groups"], seed=seed)
        full = rsa_over_time(trials, feats, **kw)
        rng = np.random.default_rng(seed + k)
        score_draws, ceiled_draws = [], []
        for _ in range(n_draws):  # the slow way: resample the sites, recompute everything
            drawn = rng.integers(0, trials.shape[2], size=trials.shape[2])
            res = rsa_over_time(trials[:, :, drawn], feats, **kw)
            score_draws.append(res.score)
            with np.errstate(all="ignore"):
                ceiled_draws.append(np.where(full.reliable & (res.lower > 0), res.score / res.lower, np.nan))
        for name, estimate, draws in (("r", full.score, score_draws), ("ceiled", full.ceiled, ceiled_draws)):
            low, high = centred_interval(np.array(draws), estimate)
            np.testing.assert_allclose(s[f"median_{name}_sites_low"].values[k], low, rtol=0, atol=TOL)
            np.testing.assert_allclose(s[f"median_{name}_sites_high"].values[k], high, rtol=0, atol=TOL)
        np.testing.assert_allclose(s["r"].values[k], full.score, rtol=0, atol=TOL)


def test_both_intervals_contain_the_estimate_and_say_where_they_come_from(rsa_grid_scores, tmp_path):
    from neurofit.scoreset import read_scoreset, write_scoreset

    s = read_scoreset(write_scoreset(rsa_grid_scores, tmp_path / "rsa.nc"))
    for name in ("r", "ceiled"):
        value = s[f"median_{name}"].values
        for kind in ("", "_sites"):
            low, high = s[f"median_{name}{kind}_low"].values, s[f"median_{name}{kind}_high"].values
            ok = np.isfinite(value)
            assert ok.any() and np.isfinite(low[ok]).all()
            assert (low[ok] <= value[ok] + 1e-12).all() and (value[ok] <= high[ok] + 1e-12).all()
            attrs = s[f"median_{name}{kind}_low"].attrs
            assert attrs["resampling"].startswith("recording sites" if kind else "stimuli")
            assert attrs["n_draws"] == 12 and "median bias" in attrs["interval"]
            assert attrs["seed"] == ({"V4": 0, "IT": 1} if kind else 0)
    assert "Over sites (median_r_sites_*" in s.attrs["bootstrap"]
    assert "site-bootstrap draws" in s.attrs["metric_description"]
    table = summary_table(s)
    assert "95% CI (sites)" in table


def test_rsa_grid_diagonal_is_the_rsa_score_and_cells_equal_rsatoolbox(rsa_grid_scores, toy_data):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.rdm import RDMs, calc_rdm, compare

    from neurofit.metrics.rsa import repetition_groups

    s = rsa_grid_scores
    assert s["grid_r"].dims == ("region", "layer", "step", "time_bin")
    for k, region in enumerate(REGIONS):
        layer = list(s["layer"].values).index(s.attrs["committed_layers"][region])
        np.testing.assert_allclose(np.diagonal(s["grid_r"].values[k, layer]), s["r"].values[k], rtol=0, atol=TOL)
        np.testing.assert_allclose(np.diagonal(s["grid_ceiled"].values[k, layer]), s["ceiled"].values[k],
                                   rtol=0, atol=TOL)
    # IT reads layer b at the step of each bin: RSA is high on that diagonal, lower off it and for layer a
    b, a = s["grid_r"].sel(layer="b").values[1], s["grid_r"].sel(layer="a").values[1]
    assert np.diagonal(b).min() > np.abs(a).max() and np.diagonal(b).min() > np.abs(b - np.diag(np.diagonal(b))).max()

    def rdm_of(patterns):
        return calc_rdm(rsatoolbox.data.Dataset(patterns), method="correlation").get_vectors()[0]

    settings = s.attrs["metric_settings"]
    for region, layer, step, b in [("V4", "a", 0, 2), ("IT", "a", 1, 1), ("IT", "b", 2, 0), ("V4", "b", 1, 1)]:
        trials, feats = _inputs(toy_data, s, region, layer=layer, step=step)
        groups = repetition_groups(trials.shape[1], settings["n_groups"], s.attrs["bootstrap_seed"])
        data = RDMs(np.stack([rdm_of(np.nanmean(trials[..., b][:, groups == g], axis=1)) for g in np.unique(groups)]))
        theirs = compare(RDMs(rdm_of(feats[0])[None]), data, method=settings["comparison"]).mean()
        cell = s["grid_r"].sel(layer=layer, step=step).values[REGIONS.index(region), b]
        np.testing.assert_allclose(cell, theirs, rtol=0, atol=TOL)


def test_report_draws_the_rsa_grid_and_compare_keeps_its_stimulus_draws(rsa_grid_scores, toy_data, bench_path,
                                                                         tmp_path):
    from neurofit.report import report
    from neurofit.scoring.resolve import activations_from_arrays
    from neurofit.stats.compare import compare

    rec, stimuli, acts = toy_data
    index = report([rsa_grid_scores], tmp_path / "report", n_boot=50)
    figures = sorted(p.name for p in (tmp_path / "report" / "figures").glob("layer_step_1_*.png"))
    assert figures, "no layer x step figure for the RSA ScoreSet"
    assert "no 'grid_ceiled'" not in index.read_text()
    rng = np.random.default_rng(1)
    noise = {layer: rng.normal(size=(acts.n_steps(layer), len(acts.stimulus_ids), 30)) for layer in acts.layers}
    other = score(activations_from_arrays(noise, list(acts.stimulus_ids), model_id="noise"), bench_path,
                  data=(rec, stimuli), progress=False, metric="rsa", layers=LAYERS, work_dir=tmp_path)
    result = compare(rsa_grid_scores, other, n_boot=100).isel(comparison=0)
    assert "stimulus-bootstrap draws" in result.attrs["uncertainty"]
    assert result["tested"].values.any()
