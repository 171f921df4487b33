"""Neural object solution times: decodability that crosses threshold at a known bin, and the references."""

import numpy as np
import pytest
import xarray as xr
from scipy import stats
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from neurofit.analysis.solution_time import (
    decoder_confidence,
    image_dprime,
    lda_probabilities,
    neural_solution_times,
    solution_time_correlation,
    threshold_crossing,
)
from neurofit.data.recording import make_recording
from neurofit.errors import NeurofitError


def _recording(onset_bin: int, n_bins: int = 6, n_per_object: int = 12, reps: int = 3, seed: int = 0):
    """Three objects; every site is silent (constant) before ``onset_bin`` and object-tuned from it on."""
    rng = np.random.default_rng(seed)
    objects = np.repeat(["cup", "dog", "car"], n_per_object)
    n_stim, n_sites = len(objects), 6
    tuning = np.eye(3)[np.unique(objects, return_inverse=True)[1]] @ rng.normal(size=(3, n_sites)) * 4
    rates = np.full((n_stim, reps, n_sites, n_bins), 5.0)
    noise = rng.normal(scale=0.5, size=(n_stim, reps, n_sites, n_bins - onset_bin))
    rates[..., onset_bin:] += tuning[:, None, :, None] + noise
    return make_recording(
        rates.reshape(n_stim * reps, n_sites, n_bins),
        stimulus_id=np.repeat([f"img{i:02d}" for i in range(n_stim)], reps),
        repetition=np.tile(np.arange(reps), n_stim),
        neuroid_id=[f"site{k}" for k in range(n_sites)], region="IT",
        time_bin_start=np.arange(n_bins) * 10.0, time_bin_end=np.arange(n_bins) * 10.0 + 10,
        identifier="toy-ost", stimulus_set_identifier="toy",
        presentation_coords={"object_name": np.repeat(objects, reps)},
    )


def test_threshold_crossing_interpolates_between_bin_centres():
    v = np.array([[0.1, 0.3, 0.7, 0.9], [0.6, 0.8, 0.9, 1.0], [0.1, 0.2, 0.2, 0.3], [0.1, np.nan, 0.9, 0.9]])
    times = threshold_crossing(v, [5.0, 15.0, 25.0, 35.0], 0.5)
    np.testing.assert_allclose(times[:2], [20.0, 5.0])
    assert np.isnan(times[2])
    np.testing.assert_allclose(times[3], 5.0 + (0.5 - 0.1) / 0.8 * 20.0)  # NaN bin skipped


def test_sustained_crossing_ignores_a_brief_excursion_above_threshold():
    v = np.array([[0.1, 0.6, 0.2, 0.3, 0.7, 0.8], [0.1, 0.2, 0.6, 0.7, 0.1, 0.1]])
    times = [5.0, 15.0, 25.0, 35.0, 45.0, 55.0]
    np.testing.assert_allclose(threshold_crossing(v, times, 0.5), [5.0 + 0.4 / 0.5 * 10, 15.0 + 0.3 / 0.4 * 10])
    # the run must last 2 bins: row 0's blip at bin 1 no longer counts, its crossing is into bin 4
    np.testing.assert_allclose(threshold_crossing(v, times, 0.5, sustain=2), [35.0 + 0.2 / 0.4 * 10, 22.5])
    assert np.isnan(threshold_crossing(v, times, 0.5, sustain=3)).all()


def test_solution_time_falls_in_the_bin_where_decodability_starts():
    onset = 3
    out = neural_solution_times(_recording(onset), threshold=0.6, n_splits=4)
    conf = out.confidence.values
    # silent bins carry no information: the decoder returns the class prior of its balanced training folds
    np.testing.assert_allclose(conf[:, :onset], 1 / 3, atol=1e-4)
    assert (conf[:, onset] >= 0.6).all()
    centres = np.arange(6) * 10.0 + 5
    expected = centres[onset - 1] + (0.6 - conf[:, onset - 1]) / (conf[:, onset] - conf[:, onset - 1]) * 10
    np.testing.assert_allclose(out.solution_time, expected)
    assert ((out.solution_time > centres[onset - 1]) & (out.solution_time <= centres[onset])).all()
    assert out.attrs["threshold"] == 0.6 and out.sizes["presentation"] == 36


def test_solution_time_is_nan_for_images_never_decoded():
    out = neural_solution_times(_recording(onset_bin=6), threshold=0.6, n_splits=4)
    assert np.isnan(out.solution_time).all()


@pytest.mark.parametrize("decoder", ["lda", "logistic"])
def test_decoder_confidence_matches_sklearn_cross_val_predict_with_the_same_folds(decoder):
    rng = np.random.default_rng(5)
    objects = np.repeat(["a", "b", "c", "d"], 10)
    rates = rng.normal(size=(40, 7, 2))
    rates[:, :4, 1] += np.eye(4)[np.unique(objects, return_inverse=True)[1]]
    rec = make_recording(rates, stimulus_id=[f"s{i}" for i in range(40)], repetition=[0] * 40,
                         neuroid_id=[f"n{k}" for k in range(7)], region="IT", time_bin_start=[0, 10],
                         time_bin_end=[10, 20], identifier="toy", stimulus_set_identifier="toy",
                         presentation_coords={"object_name": objects})
    conf = decoder_confidence(rec, n_splits=5, seed=3, decoder=decoder, shrinkage=0.3)
    labels = np.unique(objects, return_inverse=True)[1]
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=3)
    for b in range(2):
        estimator = (LinearDiscriminantAnalysis(solver="lsqr", shrinkage=0.3) if decoder == "lda"
                     else LogisticRegression(C=1.0, max_iter=1000))
        pipe = make_pipeline(StandardScaler(), estimator)
        proba = cross_val_predict(pipe, rates[:, :, b], labels, cv=cv, method="predict_proba")
        np.testing.assert_allclose(conf.values[:, b], proba[np.arange(40), labels], rtol=1e-6, atol=1e-8)
    dprime = decoder_confidence(rec, n_splits=5, seed=3, measure="dprime", decoder=decoder)
    assert dprime.attrs["measure"] == "dprime" and dprime.shape == (40, 2)


def test_lda_with_ledoit_wolf_shrinkage_matches_sklearn_given_the_same_shrinkage():
    from sklearn.covariance import ledoit_wolf_shrinkage

    rng = np.random.default_rng(8)
    y = np.repeat(np.arange(5), 12)
    x = rng.normal(size=(60, 9)) + np.eye(5, 9)[y] * 2
    test = rng.normal(size=(7, 9))
    classes, ours = lda_probabilities(x, y, test)
    means = np.stack([x[y == c].mean(0) for c in range(5)])
    a = ledoit_wolf_shrinkage(x - means[y], assume_centered=True)
    reference = LinearDiscriminantAnalysis(solver="lsqr", shrinkage=a).fit(x, y).predict_proba(test)
    assert classes.tolist() == list(range(5))
    np.testing.assert_allclose(ours, reference, rtol=1e-8, atol=1e-12)


def test_image_dprime_matches_a_loop_over_images_and_distractors():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(4), size=30)
    labels = rng.integers(0, 4, size=30)
    ours = image_dprime(p, labels)
    for i in range(30):
        o = labels[i]
        hit = np.mean([p[i, o] / (p[i, o] + p[i, d]) for d in range(4) if d != o])
        fa = np.mean([p[j, o] / (p[j, o] + p[j, labels[j]]) for j in range(30) if labels[j] != o])
        expected = stats.norm.ppf(np.clip(hit, 0.005, 0.995)) - stats.norm.ppf(np.clip(fa, 0.005, 0.995))
        np.testing.assert_allclose(ours[i], expected)


def test_correlation_aligns_images_by_stimulus_id_and_matches_scipy():
    rng = np.random.default_rng(1)
    ids = np.array([f"img{i}" for i in range(50)])
    neural = xr.DataArray(rng.uniform(80, 200, size=50), dims="presentation",
                          coords={"stimulus_id": ("presentation", ids)})
    model = neural.values / 20 + rng.normal(size=50)
    order = rng.permutation(50)
    out = solution_time_correlation(neural, model[order], ids[order], n_boot=100)
    np.testing.assert_allclose(out["rho"], stats.spearmanr(neural.values, model).statistic)
    assert out["n"] == out["n_shared"] == 50 and out["low"] < out["rho"] < out["high"]
    with pytest.raises(NeurofitError, match="no stimulus_id is shared"):
        solution_time_correlation(neural, model, [f"other{i}" for i in range(50)])


def test_decoding_a_missing_label_names_the_coord():
    rec = _recording(2)
    with pytest.raises(NeurofitError, match="no presentation coord 'category_name'"):
        decoder_confidence(rec, label="category_name")
