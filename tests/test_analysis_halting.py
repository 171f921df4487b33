"""Adaptive-computation analyses against halting probabilities and models with known halting steps."""

import numpy as np
import torch
from scipy import stats

from neurofit.analysis.halting import (
    difficulty_stimuli,
    halting_per_image,
    halting_vs_difficulty,
    zero_shot_extrapolation,
)
from neurofit.models.zoo.halting import halting_convgru


def test_halting_step_and_ponder_cost_of_known_halting_probabilities():
    # image 0 halts at step 2 (0.3 + 0.5 + 0.4 >= 0.99): R = 1 - 0.8 = 0.2, ponder = 3 + 0.2
    # image 1 never reaches 0.99 within 4 steps: N = 4, R = 1 - 0.3 = 0.7, ponder = 4.7
    # image 2 halts at once: N = 1, R = 1, ponder 2
    h = np.array([[0.3, 0.1, 0.995], [0.5, 0.1, 0.0], [0.4, 0.1, 0.0], [0.9, 0.1, 0.0]])
    out = halting_per_image(h)
    assert out["halting_step"].tolist() == [2, 3, 0]
    assert out["n_steps"].tolist() == [3, 4, 1]
    np.testing.assert_allclose(out["remainder"], [0.2, 0.7, 1.0])
    np.testing.assert_allclose(out["ponder_cost"], [3.2, 4.7, 2.0])
    assert out["halted"].tolist() == [True, False, True]


def test_halting_vs_difficulty_means_per_level_and_spearman_match_references():
    rng = np.random.default_rng(0)
    level = np.repeat([0, 3, 6], 30)
    clutter = level / 6 + rng.uniform(0, 0.5, size=90)
    steps = np.round(clutter * 4 + rng.normal(size=90)).clip(0, 7)
    ds = halting_vs_difficulty(steps, level, clutter, n_boot=200)
    np.testing.assert_allclose(ds.mean_halting_step, [steps[level == v].mean() for v in (0, 3, 6)])
    assert ds.n_images.values.tolist() == [30, 30, 30]
    assert (ds.mean_halting_step_low <= ds.mean_halting_step).all()
    assert (ds.mean_halting_step <= ds.mean_halting_step_high).all()
    np.testing.assert_allclose(ds.attrs["spearman_rho"], stats.spearmanr(steps, clutter).statistic)


def _constant_halting_model(h: float, steps: int):
    """A halting ConvGRU whose halting unit outputs ``h`` at every step for every image."""
    model = halting_convgru(stem_channels=4, channels=(4,), steps=steps, num_classes=3).eval()
    with torch.no_grad():
        model.halting_unit.weight.zero_()
        model.halting_unit.bias.fill_(float(np.log(h / (1 - h))))
    return model


def test_zero_shot_extrapolation_lets_an_unhalted_image_compute_longer():
    # h = 0.3 per step: the cumulative probability reaches 0.99 at the 4th step (halting step 3).
    # Trained with 2 steps the image has not halted (N = 2, R = 0.7); with 4 steps it halts at step 3 (R = 0.1).
    model = _constant_halting_model(0.3, steps=2)
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    ds = zero_shot_extrapolation(model, images, [0, 1, 2, 0, 1, 2], [0, 0, 0, 6, 6, 6], n_boot=20)
    assert ds.max_steps.values.tolist() == [2, 4] and ds.factor.values.tolist() == [1, 2]
    np.testing.assert_allclose(ds.mean_halting_step, [[1, 3], [1, 3]])
    np.testing.assert_allclose(ds.fraction_halted, [[0, 1], [0, 1]])
    np.testing.assert_allclose(ds.mean_ponder_cost, [[2.7, 4.1], [2.7, 4.1]])
    # the ACT answer is the model's own act_logits[-1] for the longer movie
    from neurofit.models.base import present
    with torch.no_grad():
        out = model.forward_sequence(present(model.normalize(images), 4))
    right = (out["act_logits"][-1].argmax(-1).numpy() == np.array([0, 1, 2, 0, 1, 2])).astype(float)
    np.testing.assert_allclose(ds.act_accuracy.sel(max_steps=4), [right[:3].mean(), right[3:].mean()])


def test_an_image_that_halts_within_the_training_length_gives_the_same_answer_when_allowed_longer():
    model = _constant_halting_model(0.6, steps=3)  # halts at step 1 (0.6 + 0.6 >= 0.99)
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ds = zero_shot_extrapolation(model, images, [0, 1, 2, 1], [0, 0, 1, 1], factors=(1, 2, 3), n_boot=20)
    acc = ds.act_accuracy.values
    assert np.all(acc == acc[:, :1])
    np.testing.assert_allclose(ds.mean_halting_step, 1.0)


def test_zero_shot_extrapolation_of_a_fixed_step_model_scores_its_last_readout():
    from neurofit.models.base import present
    from neurofit.models.zoo.blt import bl

    model = bl(channels=(4,), steps=2, num_classes=3).eval()
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    labels = np.array([0, 1, 2, 1])
    ds = zero_shot_extrapolation(model, images, labels, [0, 0, 1, 1], factors=(1, 2), n_boot=20)
    assert np.isnan(ds.act_accuracy).all() and np.isnan(ds.mean_halting_step).all()
    with torch.no_grad():
        out = model.forward_sequence(present(model.normalize(images), 4))
    right = (out["logits"][-1].argmax(-1).numpy() == labels).astype(float)
    np.testing.assert_array_equal(ds.correct.sel(max_steps=4), right)
    np.testing.assert_allclose(ds.accuracy.sel(max_steps=4), [right[:2].mean(), right[2:].mean()])
    assert ds.attrs["answer"] == "readout at the last step"


def test_difficulty_series_extends_the_generator_beyond_the_training_range():
    ss = difficulty_stimuli({0: 0.0, 6: 1.0, 12: 2.0}, views=1, image_size=16)
    table = ss.table
    assert len(ss) == 3 * 64
    by_level = table.groupby("variation")["difficulty"].first().to_dict()
    assert by_level == {0: 0.0, 6: 1.0, 12: 2.0}
    # beyond the range the jitter grows: rotation range is 90 degrees per unit of difficulty
    assert table.loc[table.variation == 12, "rotation"].abs().max() > 90
