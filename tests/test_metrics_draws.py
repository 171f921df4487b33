"""Stimulus-bootstrap draws from the full-stimulus matrices equal the draws recomputed on the drawn stimuli.

The references are the per-draw computations they replace: the subsampled RDMs compared by the public
functions (and by :func:`neurofit.metrics.rsa.rsa_over_time`'s own subsampling path, for Spearman), and
:func:`neurofit.metrics.cka.cka_over_time` of the drawn trials and features; scipy's average ranks of the
repeated values for the weighted ranks.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from neurofit.metrics import draws as fast
from neurofit.metrics import rsa
from neurofit.metrics.cka import cka_over_time
from neurofit.metrics.rdm import correlation_rdm

TOL = 1e-12
# CKA of features with large means (these trials: mean 4, signal 0.3-1): the per-draw path sums uncentred
# Grams, whose terms cancel to ~1e-12 of the result (both paths lie within 4e-13 of an extended-precision
# evaluation in the worst bin); the draws shift the features first and lose less
TOL_CKA = 1e-11


def _trials(n=40, reps=6, sites=12, bins=3, seed=0, holes=True):
    """A region's NaN-padded trials that share a latent with the model's features, and those features."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 5))
    signal = (latent @ rng.normal(size=(5, sites)))[:, None, :, None] * np.linspace(0.3, 1.0, bins)
    trials = 4.0 + signal + rng.normal(size=(n, reps, sites, bins))  # a large mean: sums that cancel
    if holes:
        trials[3, 4:] = np.nan  # a stimulus with fewer repetitions: halvings differ from draw to draw
        trials[7, 5] = np.nan
        trials[11, 2, 5] = np.nan  # one site missing in one repetition
    model = np.maximum(latent @ rng.normal(size=(5, 30)) + 0.5, 0)[None] * np.ones((bins, 1, 1))
    model = model + 0.1 * rng.normal(size=model.shape)
    return trials, model


def test_weighted_ranks_are_scipys_average_ranks_of_the_repeated_values():
    rng = np.random.default_rng(0)
    values = rng.integers(0, 12, size=60).astype(float)  # many ties
    weights = rng.integers(0, 4, size=60)
    ours = fast._weighted_ranks(values, weights.astype(float))
    theirs = scipy.stats.rankdata(np.repeat(values, weights))
    np.testing.assert_array_equal(np.repeat(ours, weights), theirs)
    keys = rng.integers(0, 2**40, size=60)  # three 16-bit radix passes
    keys[::3] = keys[1::3]
    np.testing.assert_array_equal(np.repeat(fast._integer_ranks(keys, weights.astype(float)), weights),
                                  scipy.stats.rankdata(np.repeat(keys, weights)))


def test_draw_counts_count_each_draws_stimuli():
    index = rsa.bootstrap_patterns(9, 4, seed=1)
    counts = fast.draw_counts(index, 9)
    assert counts.shape == (4, 9) and (counts.sum(1) == 9).all()
    for row, idx in zip(counts, index):
        np.testing.assert_array_equal(row, np.bincount(idx, minlength=9))


def _rdms(seed=0, n=30, nan_model=True):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 4))
    groups = np.stack([latent @ rng.normal(size=(4, 15)) + rng.normal(size=(n, 15)) for _ in range(4)])
    feats = latent @ rng.normal(size=(4, 10))
    if nan_model:
        feats[5] = 1.0  # a constant pattern: its pairs are NaN in the model RDM
    data = correlation_rdm(torch.as_tensor(groups))[None]  # (1 bin, 4 groups, P)
    return data, correlation_rdm(torch.as_tensor(feats))[None]


@pytest.mark.parametrize("method", ["cosine", "corr", "spearman"])
def test_rsa_draws_equal_the_subsampled_rdms_compared(method):
    data, model = _rdms()
    index = rsa.bootstrap_patterns(30, 6, seed=2)
    score, lower = fast.rsa_draws(data, model, index, method)
    for k, idx in enumerate(index):
        d, m = rsa.subsample_rdm(data[0], idx), rsa.subsample_rdm(model[0], idx)
        if method != "spearman":
            expected = float(rsa.evaluate(m[None], d, method)[0])
            expected_lower = rsa.ceiling_per_subject(d, method)[0].mean()
        else:  # rsa_over_time ranks with the model's NaN pairs left out of the ceiling too
            keep = np.isfinite(d.numpy()).all(0) & np.isfinite(m.numpy())
            expected = float(rsa.evaluate(m[None, keep], d[:, keep], method)[0])
            expected_lower = rsa.ceiling_per_subject(d[:, keep], method)[0].mean()
        assert abs(score[k, 0] - expected) < TOL and abs(lower[k, 0] - expected_lower) < TOL


@pytest.mark.parametrize("method", ["corr", "spearman"])
def test_rsa_over_time_draws_equal_its_subsampling_path(method, monkeypatch):
    trials, model = _trials(holes=False)
    model[1, :, 4:] = 0.0  # no constant patterns, but a bin with other features
    kw = dict(method=method, n_groups=3, n_bootstrap=7, seed=4)
    new = rsa.rsa_over_time(trials, model, **kw)
    monkeypatch.setattr(rsa, "rsa_draws", lambda *a, **k: None)  # every draw subsampled and recomputed
    old = rsa.rsa_over_time(trials, model, **kw)
    np.testing.assert_allclose(new.score_draws, old.score_draws, rtol=0, atol=TOL)
    np.testing.assert_allclose(new.ceiled_draws, old.ceiled_draws, rtol=0, atol=TOL)
    assert np.isfinite(new.score_draws).all()


def test_rsa_draws_leave_tau_a_to_the_caller():
    data, model = _rdms(nan_model=False)
    assert fast.rsa_draws(data, model, rsa.bootstrap_patterns(30, 2), "tau_a") is None


@pytest.mark.parametrize("debiased", [True, False])
@pytest.mark.parametrize("holes", [True, False])
def test_cka_draws_equal_cka_over_time_of_the_drawn_trials(debiased, holes):
    trials, model = _trials(holes=holes)
    index = rsa.bootstrap_patterns(len(trials), 6, seed=3)
    ours = fast.cka_draws(trials, model, index, debiased=debiased, n_splits=4, seed=5)
    for k, idx in enumerate(index):
        theirs = cka_over_time(trials[idx], model[:, idx], debiased=debiased, n_splits=4, seed=5)
        for key in ("score", "ceiling", "ceiled"):
            np.testing.assert_allclose(ours[key][k], theirs[key], rtol=0, atol=TOL_CKA, err_msg=key)
    assert np.isfinite(ours["ceiled"]).all()


def test_cka_draws_are_nan_exactly_where_a_drawn_stimulus_has_no_data():
    trials, model = _trials()
    trials[9, :, 2, 1] = np.nan  # stimulus 9 has no trial at site 2 in bin 1: its mean there is NaN
    index = rsa.bootstrap_patterns(len(trials), 8, seed=6)
    ours = fast.cka_draws(trials, model, index, n_splits=3)
    for k, idx in enumerate(index):
        theirs = cka_over_time(trials[idx], model[:, idx], n_splits=3)
        for key in ("score", "ceiling"):
            np.testing.assert_allclose(ours[key][k], theirs[key], rtol=0, atol=TOL_CKA, err_msg=key)
        assert np.isnan(ours["score"][k, 1]) == (9 in idx)
    assert {9 in idx for idx in index} == {True, False}


def test_score_draws_equal_the_per_draw_path_through_score(tmp_path, monkeypatch):
    """RSA and CKA ScoreSets (r_boot, ceiled_boot) are those of the per-draw recomputation they replace."""
    from conftest import TOY_BENCHMARK, toy
    from neurofit.scoring import metric as metric_module
    from neurofit.scoring.score import score

    rec, stimuli, acts = toy(n_obj=6, per_obj=6, reps=6, n_bins=3)
    bench = tmp_path / "toy.toml"
    bench.write_text(TOY_BENCHMARK.format(mode="per_bin").replace("n_bootstrap = 200", "n_bootstrap = 20")
                     .replace("end = 50", "end = 30").replace("[aggregate]", "[ceiling]\nn_splits = 3\n[aggregate]")
                     + "[metric]\nn_bootstrap = 5\n")

    def run(metric, work):
        return score(acts, bench, data=(rec, stimuli), progress=False, metric=metric, layers=["V4=a", "IT=b"],
                     work_dir=tmp_path / work, created="2026-01-01T00:00:00Z")

    new = {m: run(m, "new") for m in ("rsa", "cka")}

    def cka_per_draw(trials, model, indices, **kw):  # the loop score() ran before neurofit.metrics.draws
        drawn = [cka_over_time(trials[i], model[:, i], **kw) for i in indices]
        return {k: np.stack([d[k] for d in drawn]) for k in ("score", "ceiling", "ceiled")}

    monkeypatch.setattr(metric_module, "cka_draws", cka_per_draw)
    monkeypatch.setattr(rsa, "rsa_draws", lambda *a, **k: None)
    old = {m: run(m, "old") for m in ("rsa", "cka")}
    for m in ("rsa", "cka"):
        for var in ("r_boot", "ceiled_boot", "median_ceiled_low", "median_ceiled_high"):
            np.testing.assert_allclose(new[m][var].values, old[m][var].values, rtol=0, atol=TOL_CKA,
                                       err_msg=f"{m} {var}")
        assert np.isfinite(new[m]["r_boot"].values).any()
