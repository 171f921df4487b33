"""Robustness analyses (Greco et al. 2025): attacks against hand computations, participation ratio against
the eigenvalue formula, trajectory measures and dropout at evaluation."""

import numpy as np
import pytest
import torch
from scipy.special import softmax
from torch import nn

from neurofit.analysis.robustness import (
    analyze_robustness,
    correct_per_step,
    fgsm,
    gaussian_noise,
    participation_ratio,
    participation_ratio_ci,
    pgd,
    stochastic,
    trajectory_divergence,
    trajectory_movement,
)
from neurofit.errors import NeurofitError
from neurofit.models.base import TemporalModel
from neurofit.models.zoo.blt import bl


class LinearClassifier(TemporalModel):
    """logits_t = W z + b on the flattened normalised frame, the same at every step."""

    layers = ("fc",)
    default_steps = 2
    input_size = 4

    def __init__(self, classes: int = 3) -> None:
        super().__init__()
        self.config = {}
        self.readout = nn.Linear(3 * 4 * 4, classes)

    def forward_sequence(self, movie):
        z = movie.flatten(2)
        return {"fc": z, "logits": self.readout(z)}


def _linear_case(seed=0):
    torch.manual_seed(seed)
    model = LinearClassifier().double().eval()
    x = torch.rand(5, 3, 4, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1])
    return model, x, y


def _hand_gradient_sign(model, x, y):
    """sign of d CE / d x for logits = W (x - 0.5) / 0.25 + b: W^T (softmax - onehot) / 0.25, per image."""
    w = model.readout.weight.detach().numpy()
    b = model.readout.bias.detach().numpy()
    z = (x.numpy().reshape(len(x), -1) - 0.5) / 0.25
    p = softmax(z @ w.T + b, axis=1)
    p[np.arange(len(y)), y.numpy()] -= 1.0
    return np.sign(p @ w / 0.25).reshape(x.shape)


def test_fgsm_is_one_signed_gradient_step_computed_by_hand():
    model, x, y = _linear_case()
    eps = 0.03
    expected = np.clip(x.numpy() + eps * _hand_gradient_sign(model, x, y), 0, 1)
    for loss in ("all_steps", "last_step"):  # the same frame at every step: both losses have one gradient sign
        np.testing.assert_allclose(fgsm(model, x, y, eps, loss=loss).numpy(), expected, atol=1e-12)


def test_pgd_with_one_full_step_and_no_random_start_equals_fgsm():
    model, x, y = _linear_case(1)
    np.testing.assert_allclose(pgd(model, x, y, 0.05, iterations=1, alpha=0.05, random_start=False).numpy(),
                               fgsm(model, x, y, 0.05).numpy(), atol=1e-12)


@pytest.mark.parametrize("eps", [0.0, 1 / 255, 0.1])
def test_pgd_stays_in_its_epsilon_ball_and_the_pixel_range(eps):
    torch.manual_seed(0)
    model = bl(channels=(4, 8), steps=2, num_classes=3).eval()
    x = torch.rand(4, 3, 32, 32)
    x[0] = 0.0  # pixels at the range's edges: the ball is cut by [0, 1]
    x[1] = 1.0
    adv = pgd(model, x, torch.tensor([0, 1, 2, 0]), eps, iterations=4, seed=3)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1


def test_pgd_lowers_the_accuracy_of_a_linear_model_more_than_random_noise():
    model, x, y = _linear_case(2)
    x = x.float()
    model = model.float()
    loss = nn.functional.cross_entropy
    clean = loss(model.forward_sequence(model.normalize(x)[None])["logits"][0], y)
    attacked = loss(model.forward_sequence(model.normalize(pgd(model, x, y, 0.05))[None])["logits"][0], y)
    assert attacked > clean


def test_attacks_refuse_a_model_in_training_mode():
    model, x, y = _linear_case()
    with pytest.raises(NeurofitError, match="eval"):
        fgsm(model.train(), x, y, 0.01)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_participation_ratio_equals_the_eigenvalue_formula(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(40, 7)) @ rng.normal(size=(7, 7))
    eig = np.linalg.eigvalsh(np.cov(x, rowvar=False))
    assert participation_ratio(x) == pytest.approx(eig.sum() ** 2 / (eig**2).sum(), rel=1e-10)
    wide = rng.normal(size=(30, 200))  # more units than images: the Gram route, rank 29
    eig = np.linalg.eigvalsh(np.cov(wide, rowvar=False))
    assert participation_ratio(wide) == pytest.approx(eig.sum() ** 2 / (eig**2).sum(), rel=1e-10)


def test_participation_ratio_recovers_known_covariances():
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    for eigenvalues in ([1.0] * 6, [9.0, 1.0, 0.0, 0.0, 0.0, 0.0], [5.0, 4.0, 3.0, 2.0, 1.0, 0.5]):
        lam = np.array(eigenvalues)
        cov = q @ np.diag(lam) @ q.T
        x = rng.multivariate_normal(np.zeros(6), cov, size=40_000)
        assert participation_ratio(x) == pytest.approx(lam.sum() ** 2 / (lam**2).sum(), rel=0.03)
    assert participation_ratio(np.outer(rng.normal(size=50), rng.normal(size=8))) == pytest.approx(1.0)


@pytest.mark.parametrize("units", [6, 40])  # fewer and more units than images: both routes
def test_participation_ratio_ci_equals_explicit_resampling(units):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(25, units)) * np.linspace(3, 0.1, units)
    estimate, low, high = participation_ratio_ci(x, n_boot=200, seed=7)
    draws_rng = np.random.default_rng(7)
    draws = [participation_ratio(x[draws_rng.integers(0, 25, 25)]) for _ in range(200)]
    assert estimate == pytest.approx(participation_ratio(x))
    q_low, q_high = np.percentile(draws, [2.5, 97.5])
    assert (low, high) == pytest.approx((2 * estimate - q_high, 2 * estimate - q_low), rel=1e-9)


def test_participation_ratio_ci_covers_a_known_spectrum_where_the_percentile_interval_does_not():
    # 20 samples of 100 images x 120 units with eigenvalues 1/k (PR 17.6): every bootstrap draw repeats images
    # and has a lower PR, so the percentile interval sits below the truth; the basic interval reflects the
    # shift (measured: basic 16/20, percentile 0/20)
    rng = np.random.default_rng(0)
    lam = 1.0 / np.arange(1, 121)
    true = lam.sum() ** 2 / (lam**2).sum()
    basic = percentile = 0
    for r in range(20):
        x = rng.normal(size=(100, 120)) * np.sqrt(lam)
        estimate, low, high = participation_ratio_ci(x, n_boot=100, seed=r)
        basic += low <= true <= high
        percentile += 2 * estimate - high <= true <= 2 * estimate - low  # the reflected interval: the percentiles
    assert basic >= 14 and percentile <= 3, (basic, percentile)


def test_trajectory_measures_by_hand():
    clean = np.array([[[3.0, 4.0]], [[6.0, 8.0]], [[6.0, 8.0]]])  # [T=3, N=1, D=2], norms 5, 10, 10
    noisy = clean + np.array([[[0.0, 5.0]], [[0.0, 1.0]], [[0.0, 0.0]]])
    np.testing.assert_allclose(trajectory_divergence(clean, noisy)[:, 0], [1.0, 0.1, 0.0])
    np.testing.assert_allclose(trajectory_movement(clean)[:, 0], [np.nan, 0.5, 0.0])


def test_gaussian_noise_is_seeded_and_clipped():
    x = torch.full((2, 3, 8, 8), 0.9)
    a, b = gaussian_noise(x, 0.5, seed=1), gaussian_noise(x, 0.5, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, gaussian_noise(x, 0.5, seed=2))
    assert a.max() <= 1.0 and a.min() >= 0.0


def test_dropout_at_evaluation_averages_stochastic_passes():
    torch.manual_seed(0)
    model = bl(channels=(4, 8), steps=2, num_classes=2, dropout=0.5).eval()
    x, y = torch.rand(6, 3, 32, 32), np.array([0, 1] * 3)
    deterministic, _ = correct_per_step(model, x, y)
    again, _ = correct_per_step(model, x, y)
    assert set(np.unique(deterministic)) <= {0.0, 1.0} and np.array_equal(deterministic, again)
    sampled, _ = correct_per_step(model, x, y, dropout=True, samples=8, seed=1)
    assert np.all(np.isclose(sampled * 8, np.round(sampled * 8)))  # fractions of 8 passes
    assert np.array_equal(sampled, correct_per_step(model, x, y, dropout=True, samples=8, seed=1)[0])
    with stochastic(model):
        assert model.dropout.training and not model.training
    assert not model.dropout.training


def test_analyze_robustness_end_to_end_on_a_small_set():
    from neurofit.data.tasks import task_stimuli

    torch.manual_seed(0)
    stimuli = task_stimuli("mazes", [9], per_level=12, seed=0)
    model = bl(channels=(4, 8), steps=3, num_classes=2, input_size=17, dropout=0.2)
    ds = analyze_robustness(model, stimuli, noise=(0.1,), fgsm_eps=(0.01,), pgd_eps=(0.01,), pgd_iterations=2,
                            n_boot=50)
    assert list(ds.condition.values) == ["clean", "noise 0.1", "fgsm 0.01", "pgd 0.01"]
    assert ds.correct.shape == (4, 3, 12)
    assert np.all((ds.accuracy_low <= ds.accuracy + 1e-12) & (ds.accuracy <= ds.accuracy_high + 1e-12))
    assert ds.participation_ratio.shape == (3,) and np.all(ds.participation_ratio >= 1)
    assert np.isnan(ds.movement.values[0]).all() and np.isfinite(ds.divergence.values).all()
