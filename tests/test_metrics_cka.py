"""Linear CKA and debiased CKA against float64 references written from the papers' formulas."""

import itertools
import math

import numpy as np
import pytest
import torch

from neurofit.metrics import cka


def _reference_cka(x: np.ndarray, y: np.ndarray) -> float:
    # Kornblith et al. 2019, eq. (feature space): ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F), centred columns
    x = x - x.mean(0)
    y = y - y.mean(0)
    return np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y))


def _reference_hsic_u(k: np.ndarray, l: np.ndarray) -> float:
    # Song et al. 2012, the unbiased HSIC as a U-statistic: the mean over 4-subsets {i, j, q, r} of
    # h = 1/24 sum over orderings (t, u, v, w) of k_tu l_tu + k_tu l_vw - 2 k_tu l_tv.
    n = len(k)
    total = 0.0
    for subset in itertools.combinations(range(n), 4):
        h = 0.0
        for t, u, v, w in itertools.permutations(subset):
            h += k[t, u] * l[t, u] + k[t, u] * l[v, w] - 2 * k[t, u] * l[t, v]
        total += h / 24
    return total / math.comb(n, 4)


def _reference_debiased_cka(x: np.ndarray, y: np.ndarray) -> float:
    k, l = x @ x.T, y @ y.T
    return _reference_hsic_u(k, l) / np.sqrt(_reference_hsic_u(k, k) * _reference_hsic_u(l, l))


def test_linear_cka_equals_the_feature_space_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 7))
    y = x @ rng.normal(size=(7, 5)) + rng.normal(size=(40, 5))
    assert abs(float(cka.linear_cka(x, y)) - _reference_cka(x, y)) < 1e-13


def test_debiased_cka_equals_the_unbiased_hsic_u_statistic():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 4))
    y = x[:, :3] + 0.5 * rng.normal(size=(9, 3))
    assert abs(float(cka.linear_cka(x, y, debiased=True)) - _reference_debiased_cka(x, y)) < 1e-12


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling(debiased):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(30, 6))
    y = np.tanh(x @ rng.normal(size=(6, 8)))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    base = float(cka.linear_cka(x, y, debiased))
    assert abs(float(cka.linear_cka(x, 7.5 * y @ q, debiased)) - base) < 1e-12
    assert abs(float(cka.linear_cka(0.01 * x, y, debiased)) - base) < 1e-12


def test_cka_is_not_invariant_to_general_linear_transforms():
    # the property that separates CKA from CCA: an anisotropic scaling changes it
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 6)), rng.normal(size=(30, 6))
    stretched = x * np.array([10.0, 1, 1, 1, 1, 1])
    assert abs(float(cka.linear_cka(stretched, y)) - float(cka.linear_cka(x, y))) > 1e-3


def test_plain_cka_is_biased_at_few_stimuli_and_the_debiased_estimator_is_not():
    rng = np.random.default_rng(4)
    plain, debiased = [], []
    for _ in range(50):
        x, y = rng.normal(size=(20, 500)), rng.normal(size=(20, 500))  # independent: the truth is 0
        plain.append(float(cka.linear_cka(x, y)))
        debiased.append(float(cka.linear_cka(x, y, debiased=True)))
    assert np.mean(plain) > 0.8
    assert abs(np.mean(debiased)) < 3 * np.std(debiased) / np.sqrt(50) + 0.01


def test_cka_from_grams_compares_every_pair_of_a_batch():
    g = torch.randn(5, 25, 4, dtype=torch.float64)
    grams = g @ g.mT
    for debiased in (False, True):
        table = cka.cka_from_grams(grams[:2], grams[2:], debiased)
        assert table.shape == (2, 3)
        pair = cka.linear_cka(g[1], g[3], debiased)
        torch.testing.assert_close(table[1, 1], pair, rtol=0, atol=1e-13)


def test_a_constant_representation_has_no_cka():
    x = np.ones((10, 3))
    assert np.isnan(float(cka.linear_cka(x, np.random.default_rng(0).normal(size=(10, 3)))))
