"""The regression entry point score_features: oracle checks against sklearn cross-validation, bad inputs."""

import warnings

import numpy as np
import pytest
import xarray as xr
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import RidgeCV

from conftest import pearson_columns
from neurofit.data.recording import make_recording
from neurofit.errors import NeurofitError
from neurofit.regression.ceiling import split_half_ceiling
from neurofit.regression.ridge import DEFAULT_ALPHAS
from neurofit.regression.splits import make_splits
from neurofit.scoring.features import score_features

N_STIM, N_REPS, N_SITES, N_BINS, N_FEAT = 60, 4, 5, 3, 12


def _problem(seed=0, n_reps=N_REPS, objects=True):
    rng = np.random.default_rng(seed)
    ids = [f"img{i:03d}" for i in range(N_STIM)]
    feats = rng.normal(size=(N_BINS, N_STIM, N_FEAT))
    signal = np.einsum("bsf,bfq->sqb", feats[:, :, :3], rng.normal(size=(N_BINS, 3, N_SITES)))
    trials = signal[None] + 0.7 * rng.normal(size=(n_reps, N_STIM, N_SITES, N_BINS))
    presentation = {"object_name": [f"obj{i % 6}" for i in range(N_STIM)] * n_reps} if objects else None
    rec = make_recording(
        trials.reshape(n_reps * N_STIM, N_SITES, N_BINS),
        stimulus_id=ids * n_reps,
        repetition=np.repeat(np.arange(n_reps), N_STIM),
        neuroid_id=[f"n{j}" for j in range(N_SITES)],
        region=["V4", "V4", "IT", "IT", "IT"],
        time_bin_start=[70, 80, 90],
        time_bin_end=[80, 90, 100],
        identifier="toy",
        stimulus_set_identifier="toy",
        presentation_coords=presentation,
    )
    # features listed in a different order than the recording: alignment is by stimulus_id
    order = rng.permutation(N_STIM)
    blocks = [
        xr.DataArray(feats[b][order], dims=("presentation", "feature"),
                     coords={"stimulus_id": ("presentation", np.array(ids)[order])})
        for b in range(N_BINS)
    ]
    return rec, blocks, feats, trials.mean(0), ids


def _sklearn_kfold(feats, target, ids, make_model, span=False):
    s = make_splits(ids, object_name=[f"obj{i % 6}" for i in range(N_STIM)])
    pred = np.zeros_like(target)
    for f in range(s.n_folds):
        tr, te = s.train[f], s.test[f]
        if span:
            model = make_model().fit(np.concatenate([feats[b][tr] for b in range(N_BINS)]),
                                     np.concatenate([target[tr, :, b] for b in range(N_BINS)]))
            for b in range(N_BINS):
                pred[te, :, b] = model.predict(feats[b][te])
        else:
            for b in range(N_BINS):
                pred[te, :, b] = make_model().fit(feats[b][tr], target[tr, :, b]).predict(feats[b][te])
    return np.stack([pearson_columns(pred[:, :, b], target[:, :, b]) for b in range(N_BINS)], axis=-1)


def _svd_pls(k):
    model = PLSRegression(k, scale=False)
    model.algorithm = "svd"
    return model


def test_per_bin_pls_equals_sklearn_kfold_per_site_and_bin():
    rec, blocks, feats, target, ids = _problem()
    scores = score_features(blocks, rec, n_components=4, device="cpu")
    expected = _sklearn_kfold(feats, target, ids, lambda: _svd_pls(4))
    np.testing.assert_allclose(scores.r.values, expected, rtol=1e-9)
    assert scores.r_fold.shape == (10, N_SITES, N_BINS)
    assert scores.attrs["metric"] == "pls" and scores.attrs["temporal_mode"] == "per_bin"
    assert scores.attrs["split_scheme"] == "kfold" and scores.attrs["normalisation"] == "r2_over_ceiling"
    assert list(scores.neuroid_id.values) == [f"n{j}" for j in range(N_SITES)]
    assert list(scores.time_bin_start.values) == [70, 80, 90]


def test_span_time_fits_one_mapping_for_all_bins():
    rec, blocks, feats, target, ids = _problem(1)
    scores = score_features(blocks, rec, temporal_mode="span_time", n_components=4, device="cpu")
    expected = _sklearn_kfold(feats, target, ids, lambda: _svd_pls(4), span=True)
    np.testing.assert_allclose(scores.r.values, expected, rtol=1e-9)
    assert scores.attrs["temporal_mode"] == "span_time"


def test_ridge_equals_sklearn_ridgecv_per_target():
    rec, blocks, feats, target, ids = _problem(2)
    shared = blocks[0]  # one feature matrix for every bin
    scores = score_features(shared, rec, metric="ridge", device="cpu")
    expected = _sklearn_kfold(np.stack([feats[0]] * N_BINS), target, ids,
                              lambda: RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True))
    np.testing.assert_allclose(scores.r.values, expected, rtol=1e-9)


def test_ceiling_and_ceiled_follow_the_rule_returned():
    rec, blocks, *_ = _problem(3)
    from neurofit.data.recording import trial_array

    scores = score_features(blocks, rec, n_components=3, device="cpu")
    np.testing.assert_allclose(scores.ceiling.values, split_half_ceiling(trial_array(rec)[0]))
    np.testing.assert_allclose(scores.ceiled.values, scores.r.values**2 / scores.ceiling.values)
    legacy = score_features(blocks, rec, n_components=3, normalisation="legacy", device="cpu")
    np.testing.assert_allclose(legacy.ceiled.values, (legacy.r.values / legacy.ceiling.values) ** 2)
    assert legacy.attrs["normalisation"] == "legacy"
    fev = score_features(blocks, rec, n_components=3, normalisation="feve", device="cpu")
    assert fev.attrs["normalisation"] == "feve" and (fev.ceiled.values <= 1).all()


def test_brainscore_mode_averages_r_over_shuffle_splits_with_nipals():
    rec, blocks, feats, target, ids = _problem(4)
    scores = score_features(blocks[:1] * N_BINS, rec, splits="brainscore", n_components=3, device="cpu")
    assert scores.attrs["pls_algorithm"] == "nipals" and scores.sizes["fold"] == 10
    np.testing.assert_allclose(scores.r.values, scores.r_fold.values.mean(0))
    s = make_splits(ids, scheme="brainscore", object_name=[f"obj{i % 6}" for i in range(N_STIM)])
    tr, te = s.train[0], s.test[0]
    ref = PLSRegression(3, scale=False).fit(feats[0][tr], target[tr, :, 1]).predict(feats[0][te])
    np.testing.assert_allclose(scores.r_fold.values[0, :, 1], pearson_columns(ref, target[te, :, 1]), rtol=1e-9)


def test_bootstrap_cis_bracket_the_median_and_are_seeded():
    rec, blocks, *_ = _problem(5)
    a = score_features(blocks, rec, n_components=3, bootstrap=200, device="cpu")
    b = score_features(blocks, rec, n_components=3, bootstrap=200, device="cpu")
    assert list(a.region_name.values) == ["IT", "V4"]
    for suffix in ("", "_sites"):
        low, high = a[f"median_ceiled{suffix}_low"].values, a[f"median_ceiled{suffix}_high"].values
        assert (low <= a.median_ceiled.values).all() and (a.median_ceiled.values <= high).all()
        assert (low < high).all()
    xr.testing.assert_identical(a, b)


def test_missing_stimulus_is_named():
    rec, blocks, *_ = _problem()
    with pytest.raises(NeurofitError, match=r"stimulus_id 'img\d{3}' is in the recording but not in features"):
        score_features(blocks[0].isel(presentation=slice(1, None)), rec, device="cpu")


def test_nan_features_name_the_block():
    rec, blocks, *_ = _problem()
    blocks[1] = blocks[1].copy()
    blocks[1].values[4, 2] = np.inf
    with pytest.raises(NeurofitError, match=r"features for time bin 1 \(80-90 ms\) contains NaN or Inf"):
        score_features(blocks, rec, device="cpu")


def test_fewer_stimuli_than_folds_and_single_repetition_are_errors():
    rec, blocks, *_ = _problem()
    few = rec.isel(presentation=np.isin(rec.stimulus_id.values, [f"img{i:03d}" for i in range(6)]))
    with pytest.raises(NeurofitError, match="6 stimuli cannot be split into 10 folds"):
        score_features(blocks, few, n_components=2, device="cpu")
    single, blocks1, *_ = _problem(n_reps=1)
    with pytest.raises(NeurofitError, match="at least 2 repetitions"):
        score_features(blocks1, single, n_components=2, device="cpu")
    scores = score_features(blocks1, single, n_components=2, ceiling=False, device="cpu")
    assert np.isnan(scores.ceiling.values).all() and scores.attrs["normalisation"] == "none"


def test_constant_site_gives_nan_not_a_crash():
    rec, blocks, *_ = _problem()
    rec = rec.copy()
    rec.values[:, 0, :] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = score_features(blocks, rec, n_components=3, device="cpu")
    assert np.isnan(scores.r.values[0]).all() and np.isfinite(scores.r.values[1:]).all()


def test_stimulus_without_any_valid_trial_is_named():
    rec, blocks, *_ = _problem()
    rec = rec.copy()
    rec.values[rec.stimulus_id.values == "img007", 2, 1] = np.nan
    with pytest.raises(NeurofitError, match="stimulus_id 'img007' has no valid trial for neuroid 'n2' in time bin 1"):
        score_features(blocks, rec, n_components=3, device="cpu")


def test_bootstrap_intervals_are_centred_on_their_estimates_as_in_score(monkeypatch):
    """One CI convention (issue 16): score_features' intervals are score()'s, centred on the estimate."""
    import neurofit.scoring.features as features
    from neurofit.scoreset import centred_interval

    seen = {}

    def spy(name, function):
        def wrapped(*args, **kwargs):
            seen[name] = function(*args, **kwargs)
            return seen[name]
        monkeypatch.setattr(features, name, wrapped)

    spy("bootstrap_stimuli", features.bootstrap_stimuli)
    spy("bootstrap_sites", features.bootstrap_sites)
    rec, blocks, *_ = _problem(5)
    a = score_features(blocks, rec, n_components=3, bootstrap=200, seed=3, device="cpu")
    for name, suffix in (("bootstrap_stimuli", ""), ("bootstrap_sites", "_sites")):
        low, high = centred_interval(seen[name]["draws"], a.median_ceiled.values)
        np.testing.assert_array_equal(a[f"median_ceiled{suffix}_low"].values, low)
        np.testing.assert_array_equal(a[f"median_ceiled{suffix}_high"].values, high)
    # the resampled medians drift from the estimate, so the plain percentile interval differs from the stored one
    assert not np.allclose(seen["bootstrap_stimuli"]["low"], a.median_ceiled_low.values)
