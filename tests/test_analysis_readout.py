"""Readout analyses and readout-zone geometry against hand-built cases with known answers and references."""

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from neurofit.analysis.geometry import (
    class_centre_distance,
    count_transitions,
    zone_axes,
    zone_axis_projection,
    zone_margins,
)
from neurofit.analysis.readout import (
    accuracy_per_step,
    correct_per_step,
    find_readout,
    first_correct_step,
    l2_norms,
    mean_by_correctness,
    movement_after_first_correct,
    probe_correct,
    run_readout,
    successive_distances,
)
from neurofit.errors import NeurofitError
from neurofit.models.zoo import get_factory
from neurofit.stats.bootstrap import mean_ci, spearman_ci

# ------------------------------------------------------------------------------ hand-built trajectories
# Three images, four steps, 2-d penultimate representations, readout W = I, b = 0 (two classes).
# image 0 (label 0): wrong at step 0, right from step 1 on, moving further out along x.
# image 1 (label 1): right at every step, not moving.
# image 2 (label 1): wrong at steps 0-1, right at step 2, wrong again at step 3.
REPS = np.array([
    [[0.0, 1.0], [0.0, 2.0], [1.0, 0.0]],
    [[3.0, 0.0], [0.0, 2.0], [2.0, 0.0]],
    [[6.0, 0.0], [0.0, 2.0], [0.0, 4.0]],
    [[6.0, 8.0], [0.0, 2.0], [3.0, 0.0]],
])
LABELS = np.array([0, 1, 1])
W, B = np.eye(2), np.zeros(2)


def test_first_correct_step_and_staying_correct_are_read_from_the_readout():
    correct = correct_per_step(REPS @ W.T + B, LABELS)
    assert correct.tolist() == [[False, True, False], [True, True, False], [True, True, True],
                                [False, True, False]]
    first, stays = first_correct_step(correct)
    np.testing.assert_array_equal(first, [1.0, 0.0, 2.0])
    assert stays.tolist() == [False, True, False]
    np.testing.assert_allclose(accuracy_per_step(correct), [1 / 3, 2 / 3, 1.0, 1 / 3])


def test_first_correct_step_ignores_invalid_steps_and_marks_never_correct_as_nan():
    correct = np.array([[True, False], [False, False], [True, False]])
    valid = np.array([[False, True], [True, True], [True, True]])
    first, stays = first_correct_step(correct, valid)
    assert first[0] == 2.0 and np.isnan(first[1])
    assert stays.tolist() == [True, False]
    np.testing.assert_allclose(accuracy_per_step(correct, valid), [0.0, 0.0, 0.5])


def test_distances_and_movement_after_first_correct_match_hand_values():
    d = successive_distances(REPS)
    assert np.isnan(d[0]).all()
    np.testing.assert_allclose(d[1:], [[np.sqrt(10), 0.0, 1.0], [3.0, 0.0, np.hypot(2, 4)], [8.0, 0.0, 5.0]])
    first = np.array([1.0, 0.0, 2.0])
    # image 0: moves 1->2 (3) and 2->3 (8); image 1: three moves of 0; image 2: move 2->3 (5)
    np.testing.assert_allclose(movement_after_first_correct(d, first), [5.5, 0.0, 5.0])
    assert np.isnan(movement_after_first_correct(d, np.array([3.0, np.nan, 2.0]))[:2]).all()


def test_norms_split_by_correct_and_incorrect_match_hand_values():
    norms = l2_norms(REPS)
    np.testing.assert_allclose(norms[3], [10.0, 2.0, 3.0])
    correct = correct_per_step(REPS @ W.T + B, LABELS)
    right, wrong = mean_by_correctness(norms, correct)
    np.testing.assert_allclose(right, [2.0, 2.5, (6 + 2 + 4) / 3, 2.0])
    np.testing.assert_allclose(wrong, [1.0, 2.0, np.nan, 6.5])


def test_transitions_count_misclassified_to_corrected_and_back():
    correct = correct_per_step(REPS @ W.T + B, LABELS)
    corrected, misclassified = count_transitions(correct)
    assert corrected.tolist() == [0, 1, 1, 0]
    assert misclassified.tolist() == [0, 0, 0, 2]


# ----------------------------------------------------------------------------------- zones and margins
def test_margins_match_hand_computed_distances_to_the_zone_boundary():
    weight = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    bias = np.array([0.0, 0.0, 1.0])
    x = np.array([[2.0, 0.0], [0.5, 0.4], [-3.0, -3.0]])
    margins = zone_margins(x, [0, 0, 2], weight, bias)
    # image 0, class 0: vs 1: (2 - 0)/sqrt2; vs 2: (x1 + (x1 + x2) - 1)/||(2, 1)|| = 3/sqrt5 -> min = 3/sqrt5
    # image 1, class 0: vs 1: 0.1/sqrt2; vs 2: (1 + 0.4 - 1)/sqrt5 = 0.4/sqrt5 -> 0.1/sqrt2
    # image 2, class 2: vs 0: (-x1 - x2 + 1 - x1)/sqrt5 = 10/sqrt5; vs 1: 10/sqrt5
    np.testing.assert_allclose(margins, [3 / np.sqrt(5), 0.1 / np.sqrt(2), 10 / np.sqrt(5)])
    # the same point with the wrong label lies outside that zone by the most violated boundary
    np.testing.assert_allclose(zone_margins(x[:1], [1], weight, bias), [-2 / np.sqrt(2)])


def test_margin_sign_is_zone_membership_and_its_size_the_distance_to_the_boundary():
    rng = np.random.default_rng(3)
    weight, bias = rng.normal(size=(5, 4)), rng.normal(size=5)
    x = rng.normal(size=(300, 4)) * 2
    labels = rng.integers(0, 5, size=300)
    margins = zone_margins(x, labels, weight, bias)
    inside = (x @ weight.T + bias).argmax(1) == labels
    assert np.array_equal(margins > 0, inside) and inside.any() and (~inside).any()
    # inside points: every point closer than the margin stays in the zone; the nearest facet is at the margin
    for i in np.flatnonzero(inside)[:40]:
        directions = rng.normal(size=(200, 4))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        moved = x[i] + 0.999 * margins[i] * directions
        assert ((moved @ weight.T + bias).argmax(1) == labels[i]).all()
        c = labels[i]
        others = [k for k in range(5) if k != c]
        k = others[int(np.argmin([((weight[c] - weight[k]) @ x[i] + bias[c] - bias[k])
                                  / np.linalg.norm(weight[c] - weight[k]) for k in others]))]
        normal = (weight[c] - weight[k]) / np.linalg.norm(weight[c] - weight[k])
        beyond = x[i] - 1.001 * margins[i] * normal
        assert (beyond @ weight.T + bias).argmax() != c


def test_margins_over_time_keep_their_leading_dims():
    margins = zone_margins(REPS, LABELS, W, B)
    assert margins.shape == (4, 3)
    np.testing.assert_allclose(margins[:, 0], np.array([-1.0, 3.0, 6.0, -2.0]) / np.sqrt(2))


def test_zone_centre_distance_and_axis_projection_match_hand_values():
    x = np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]])
    np.testing.assert_allclose(class_centre_distance(x, [0, 0, 1]), [1.0, 1.0, 0.0])
    weight = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(zone_axes(weight), [[1, -1], [-1, 1]] / np.sqrt(2))
    np.testing.assert_allclose(zone_axis_projection(x, [0, 0, 1], weight), [0.0, np.sqrt(2), 0.0])


def test_zone_geometry_rejects_labels_outside_the_readout():
    with pytest.raises(NeurofitError, match="class indices"):
        zone_margins(REPS, np.array([0, 1, 2]), W, B)


# ------------------------------------------------------------------------------------- the model runs
@pytest.mark.parametrize("name, kwargs", [
    ("bl", {"channels": (4, 8), "steps": 3}),
    ("halting_convgru", {"stem_channels": 4, "channels": (4, 4), "steps": 3}),
    ("convrnn_gru", {"channels": (4, 4, 4), "pool_after": (1,), "cell_layers": (3,), "steps": 4}),
])
def test_captured_penultimate_representation_reproduces_the_models_logits(name, kwargs):
    model = get_factory(name)(num_classes=3, **kwargs).eval()
    run = run_readout(model, torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(0)),
                      probe_layer=model.layers[0], probe_dim=16, batch_size=2)
    steps = kwargs["steps"]
    assert run.logits.shape == (steps, 5, 3)
    np.testing.assert_allclose(run.penultimate @ run.weight.T + run.bias, run.logits, rtol=1e-5, atol=1e-5)
    assert run.features.shape == (steps, 5, 16)
    assert (run.halt_prob is not None) == (name == "halting_convgru")


def test_find_readout_names_the_problem_for_a_model_without_a_linear_readout():
    with pytest.raises(NeurofitError, match="no linear readout"):
        find_readout(torch.nn.Conv2d(1, 1, 1))


def test_probe_matches_sklearn_cross_val_predict_with_the_same_folds():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(3), 15)
    x = rng.normal(size=(2, 45, 6))
    x[1, :, :3] += np.eye(3)[labels] * 1.5
    ours = probe_correct(x, labels, n_splits=5, seed=0)
    cv = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    for t in range(2):
        pipe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
        reference = cross_val_predict(pipe, x[t], labels, cv=cv) == labels
        assert np.array_equal(ours[t], reference)


# ------------------------------------------------------------------------------------------ intervals
def test_mean_ci_matches_a_plain_bootstrap_loop():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 40))
    values[1, 5] = np.nan
    mean, low, high = mean_ci(values, n_boot=300, seed=7)
    idx = np.random.default_rng(7).integers(0, 40, size=(300, 40))
    for t in range(3):
        draws = [np.nanmean(values[t, row]) for row in idx]
        np.testing.assert_allclose([low[t], high[t]], np.percentile(draws, [2.5, 97.5]))
        np.testing.assert_allclose(mean[t], np.nanmean(values[t]))


def test_spearman_ci_matches_scipy_and_a_plain_bootstrap_loop():
    rng = np.random.default_rng(2)
    a = rng.normal(size=60)
    b = a + rng.normal(size=60)
    b[3] = np.nan
    out = spearman_ci(a, b, n_boot=200, seed=4)
    keep = np.isfinite(b)
    ref = stats.spearmanr(a[keep], b[keep])
    assert out["n"] == 59
    np.testing.assert_allclose([out["rho"], out["p"]], [ref.statistic, ref.pvalue])
    idx = np.random.default_rng(4).integers(0, 59, size=(200, 59))
    draws = [stats.spearmanr(a[keep][row], b[keep][row]).statistic for row in idx]
    np.testing.assert_allclose([out["low"], out["high"]], np.percentile(draws, [2.5, 97.5]))
