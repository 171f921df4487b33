"""RDMs, comparisons, noise ceilings and the pattern bootstrap equal rsatoolbox's on the same data."""

import numpy as np
import pytest
import torch

from neurofit.metrics import rdm, rsa

rsatoolbox = pytest.importorskip("rsatoolbox")
from rsatoolbox.data import Dataset  # noqa: E402
from rsatoolbox.data.noise import prec_from_residuals  # noqa: E402
from rsatoolbox.inference import boot_noise_ceiling  # noqa: E402
from rsatoolbox.rdm import RDMs, calc_rdm, compare  # noqa: E402

# rsatoolbox's own internals: a cast in its Dataset descriptors, and its note on tau ceilings
pytestmark = [pytest.mark.filterwarnings("ignore:invalid value encountered in cast:RuntimeWarning"),
              pytest.mark.filterwarnings("ignore:Noise ceiling for tau:UserWarning")]
TOL = 1e-10
RSATOOLBOX_NAMES = {"cosine": "cosine", "corr": "corr", "spearman": "spearman", "tau_a": "tau-a"}


def _conditions(n: int) -> np.ndarray:
    # zero-padded so rsatoolbox's sorting by condition keeps our order
    return np.array([f"s{i:04d}" for i in range(n)])


def _trials(rng: np.random.Generator, n_rep: int = 6, n_cond: int = 12, n_chan: int = 9) -> np.ndarray:
    truth = rng.normal(size=(n_cond, n_chan))
    noise = rng.normal(size=(n_rep, n_cond, n_chan)) @ rng.normal(size=(n_chan, n_chan)) * 0.5
    return truth[None] + noise


def _dataset(trials: np.ndarray) -> Dataset:
    n_rep, n_cond, n_chan = trials.shape
    return Dataset(trials.reshape(-1, n_chan),
                   obs_descriptors={"stimulus": np.tile(_conditions(n_cond), n_rep),
                                    "repetition": np.repeat(np.arange(n_rep), n_cond)})


def test_correlation_rdm_of_averaged_trials_equals_rsatoolbox():
    trials = _trials(np.random.default_rng(1))
    ours = rdm.correlation_rdm(trials.mean(0))
    theirs = calc_rdm(_dataset(trials), method="correlation", descriptor="stimulus").get_vectors()[0]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)


def test_correlation_rdm_is_batched_over_leading_dims_in_torch():
    x = torch.randn(3, 4, 10, 7, dtype=torch.float64)
    batched = rdm.correlation_rdm(x)
    assert batched.shape == (3, 4, 45)
    torch.testing.assert_close(batched[2, 1], rdm.correlation_rdm(x[2, 1]), rtol=0, atol=1e-14)


def test_condense_and_squareform_are_inverse_and_scipy_ordered():
    from scipy.spatial.distance import squareform as scipy_squareform

    v = np.random.default_rng(0).random(21)
    np.testing.assert_array_equal(rdm.squareform(v), scipy_squareform(v))
    np.testing.assert_array_equal(rdm.condense(rdm.squareform(v)), v)


@pytest.mark.parametrize("with_noise", [False, True])
def test_crossnobis_rdm_equals_rsatoolbox(with_noise):
    trials = _trials(np.random.default_rng(2))
    residuals = (trials - trials.mean(0, keepdims=True)).reshape(-1, trials.shape[-1])
    dof = residuals.shape[0] - trials.shape[1]
    prec = prec_from_residuals(residuals, dof=dof) if with_noise else None
    ours = rdm.crossnobis_rdm(trials, None if prec is None else rdm.noise_precision(residuals, dof=dof))
    theirs = calc_rdm(_dataset(trials), method="crossnobis", descriptor="stimulus", noise=prec,
                      cv_descriptor="repetition").get_vectors()[0]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)


def test_crossnobis_with_folds_of_repetitions_equals_rsatoolbox():
    trials = _trials(np.random.default_rng(3), n_rep=6)
    folds = np.array([0, 1, 2, 0, 1, 2])
    ds = _dataset(trials)
    ds.obs_descriptors["fold"] = np.repeat(folds, trials.shape[1])
    theirs = calc_rdm(ds, method="crossnobis", descriptor="stimulus", cv_descriptor="fold").get_vectors()[0]
    np.testing.assert_allclose(rdm.crossnobis_rdm(trials, folds=folds), theirs, rtol=0, atol=TOL)


def test_noise_precision_equals_rsatoolbox_shrinkage_diag():
    rng = np.random.default_rng(4)
    residuals = rng.normal(size=(40, 15)) @ rng.normal(size=(15, 15))
    np.testing.assert_allclose(rdm.noise_precision(residuals, dof=30), prec_from_residuals(residuals, dof=30),
                               rtol=1e-10, atol=TOL)


def test_crossnobis_is_unbiased_where_plain_distance_is_not():
    rng = np.random.default_rng(5)
    truth = np.repeat(rng.normal(size=(1, 30)), 8, axis=0)  # eight conditions, one true pattern
    trials = truth[None] + rng.normal(size=(200, 8, 30))
    cv = rdm.crossnobis_rdm(trials)
    plain = ((trials.mean(0)[:, None] - trials.mean(0)[None]) ** 2).sum(-1)[np.triu_indices(8, 1)] / 30
    assert abs(cv.mean()) < 3 * cv.std() / np.sqrt(cv.size) + 1e-3
    assert plain.mean() > 0.009  # 2 sigma^2 / n_rep: noise inflates the plain distance


@pytest.mark.parametrize("method", rsa.METHODS)
def test_compare_rdms_equals_rsatoolbox(method):
    rng = np.random.default_rng(6)
    base = rng.random(66)
    a = base + 0.5 * rng.random((3, 66))
    b = base + 0.8 * rng.random((4, 66))
    b[0, :10] = b[0, 10]  # ties: tau-a and Spearman must treat them as rsatoolbox does
    theirs = compare(RDMs(a), RDMs(b), RSATOOLBOX_NAMES[method])
    np.testing.assert_allclose(rsa.compare_rdms(a, b, method), theirs, rtol=0, atol=TOL)


@pytest.mark.parametrize("method", rsa.METHODS)
def test_noise_ceiling_equals_rsatoolbox(method):
    rng = np.random.default_rng(7)
    subjects = rng.random(45) + 0.7 * rng.random((5, 45))
    lower, upper = rsa.noise_ceiling(subjects, method)
    their_lower, their_upper = boot_noise_ceiling(RDMs(subjects), method=RSATOOLBOX_NAMES[method])
    assert abs(lower - their_lower) < TOL and abs(upper - their_upper) < TOL
    assert lower < upper


@pytest.mark.parametrize("method", rsa.METHODS)
def test_pattern_bootstrap_sample_equals_rsatoolbox_subsample(method):
    rng = np.random.default_rng(8)
    model = rng.random((2, 45))
    data = model[:1] + rng.random((3, 45))
    index = rsa.bootstrap_patterns(10, 1, seed=3)[0]
    assert len(np.unique(index)) < 10  # a real bootstrap draw, with repeats
    ours = rsa.compare_rdms(rsa.subsample_rdm(model, index), rsa.subsample_rdm(data, index), method)
    theirs = compare(RDMs(model).subsample_pattern("index", index), RDMs(data).subsample_pattern("index", index),
                     RSATOOLBOX_NAMES[method])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=TOL)


def test_evaluate_is_mean_similarity_to_subjects():
    rng = np.random.default_rng(9)
    model, data = rng.random((2, 28)), rng.random((4, 28))
    np.testing.assert_allclose(rsa.evaluate(model, data, "cosine"),
                               compare(RDMs(model), RDMs(data), "cosine").mean(1), rtol=0, atol=TOL)


def test_unknown_method_is_named():
    with pytest.raises(Exception, match="unknown RDM comparison 'kendall'"):
        rsa.compare_rdms(np.ones((1, 3)), np.ones((1, 3)), "kendall")


@pytest.mark.parametrize("method", ["spearman", "corr"])
def test_rsa_over_time_equals_rsatoolbox_evaluation_and_ceiling_per_bin(method):
    rng = np.random.default_rng(10)
    n_stim, n_rep, n_sites, n_bins = 14, 6, 8, 2
    trials = rng.normal(size=(n_stim, 1, n_sites, n_bins)) + rng.normal(size=(n_stim, n_rep, n_sites, n_bins))
    model = rng.normal(size=(n_bins, n_stim, 5)) + trials.mean(1).transpose(2, 0, 1)[..., :5]
    res = rsa.rsa_over_time(trials, model, method=method, n_groups=3, n_bootstrap=2, seed=4)
    groups = rsa.repetition_groups(n_rep, 3, seed=4)
    for b in range(n_bins):
        data = RDMs(np.stack([calc_rdm(Dataset(trials[..., b][:, groups == g].mean(1)), method="correlation")
                              .get_vectors()[0] for g in range(3)]))
        model_rdm = calc_rdm(Dataset(model[b]), method="correlation")
        lower, upper = boot_noise_ceiling(data, method=RSATOOLBOX_NAMES[method])
        assert abs(res.lower[b] - lower) < TOL and abs(res.upper[b] - upper) < TOL
        assert abs(res.score[b] - compare(model_rdm, data, RSATOOLBOX_NAMES[method]).mean()) < TOL
    assert res.score_draws.shape == (2, n_bins) and np.isfinite(res.score_draws).all()
