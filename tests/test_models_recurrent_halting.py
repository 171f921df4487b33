"""Adaptive-halting ConvGRU: ACT (Graves 2016) halting step, remainder, ponder cost and validity mask."""

import math

import pytest
import torch

from neurofit.errors import NeurofitError
from neurofit.models.zoo import get_factory
from neurofit.models.zoo.halting import HaltingConvGRU, act_halting, act_output_per_cutoff, halting_convgru

SMALL = {"stem_channels": 8, "channels": (8, 8), "steps": 4, "num_classes": 5}



def _movie(batch=3, steps=4, seed=0, size=32):
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, size, size, generator=generator)
    return image.expand(steps, *image.shape).clone()


def _graves_reference(h, epsilon):
    """Graves (2016) eqs. 5-14 for one sequence of halting probabilities, written as a plain loop."""
    total = 0.0
    for n, value in enumerate(h, start=1):
        total += value
        if total >= 1 - epsilon:
            big_n = n
            break
    else:
        big_n = len(h)
    remainder = 1.0 - sum(h[: big_n - 1])
    weights = [*h[: big_n - 1], remainder] + [0.0] * (len(h) - big_n)
    return big_n, remainder, weights


def test_act_matches_hand_computed_halting_on_known_probabilities():
    h = torch.tensor([
        [0.3, 0.995, 0.1, 0.5],
        [0.5, 0.2, 0.1, 0.25],
        [0.4, 0.2, 0.1, 0.2],
        [0.9, 0.2, 0.1, 0.9],
    ], dtype=torch.float64)  # [T=4, B=4]
    act = act_halting(h, epsilon=0.01)
    # image 0: 0.3 + 0.5 + 0.4 = 1.2 >= 0.99 at n = 3, R = 1 - 0.8
    # image 1: 0.995 >= 0.99 at n = 1, R = 1
    # image 2: never reaches 0.99 in 4 steps: N = T = 4, R = 1 - 0.3
    # image 3: 0.5 + 0.25 + 0.2 = 0.95 < 0.99, then 1.85: N = 4, R = 1 - 0.95
    assert act.n_steps.tolist() == [3, 1, 4, 4]
    assert act.halting_step.tolist() == [2, 0, 3, 3]
    torch.testing.assert_close(act.remainder, torch.tensor([0.2, 1.0, 0.7, 0.05], dtype=torch.float64))
    torch.testing.assert_close(act.ponder_cost, torch.tensor([3.2, 2.0, 4.7, 4.05], dtype=torch.float64))
    expected_weights = torch.tensor([
        [0.3, 1.0, 0.1, 0.5],
        [0.5, 0.0, 0.1, 0.25],
        [0.2, 0.0, 0.1, 0.2],
        [0.0, 0.0, 0.7, 0.05],
    ], dtype=torch.float64)
    torch.testing.assert_close(act.weights, expected_weights)
    assert act.valid.T.tolist() == [
        [True, True, True, False],
        [True, False, False, False],
        [True, True, True, True],
        [True, True, True, True],
    ]


def test_act_matches_the_graves_loop_on_random_probabilities():
    generator = torch.Generator().manual_seed(0)
    h = torch.rand(9, 64, generator=generator, dtype=torch.float64) ** 2
    for epsilon in (0.0, 0.01, 0.3):
        act = act_halting(h, epsilon=epsilon)
        for i in range(h.shape[1]):
            big_n, remainder, weights = _graves_reference(h[:, i].tolist(), epsilon)
            assert act.n_steps[i].item() == big_n
            assert act.remainder[i].item() == pytest.approx(remainder, abs=1e-12)
            assert act.ponder_cost[i].item() == pytest.approx(big_n + remainder, abs=1e-12)
            assert act.weights[:, i].tolist() == pytest.approx(weights, abs=1e-12)
        torch.testing.assert_close(act.weights.sum(0), torch.ones(64, dtype=torch.float64))


def test_act_output_of_every_cutoff_matches_the_graves_loop():
    generator = torch.Generator().manual_seed(1)
    h = torch.rand(7, 16, generator=generator, dtype=torch.float64) * 0.5
    y = torch.randn(7, 16, 3, generator=generator, dtype=torch.float64)
    got = act_output_per_cutoff(y, h, epsilon=0.01)
    for cut in range(1, 8):
        for i in range(16):
            _, _, weights = _graves_reference(h[:cut, i].tolist(), 0.01)
            expected = sum(w * y[n, i] for n, w in enumerate(weights))
            torch.testing.assert_close(got[cut - 1, i], expected, rtol=1e-12, atol=1e-12)


def _with_constant_halting(model, p):
    with torch.no_grad():
        model.halting_unit.weight.zero_()
        model.halting_unit.bias.fill_(math.log(p / (1 - p)))
    return model


def test_model_with_hand_set_halting_logits_halts_where_computed():
    torch.manual_seed(0)
    model = _with_constant_halting(HaltingConvGRU(**SMALL).eval(), 0.3)
    with torch.no_grad():
        out = model.forward_sequence(_movie(steps=6))
    # 0.3, 0.6, 0.9, 1.2 >= 0.99: N = 4, R = 1 - 0.9 = 0.1, ponder cost 4.1, valid at steps 0..3
    act = model.halting(out)
    assert act.n_steps.tolist() == [4, 4, 4]
    assert act.halting_step.tolist() == [3, 3, 3]
    torch.testing.assert_close(act.remainder, torch.full((3,), 0.1), rtol=0, atol=1e-6)
    torch.testing.assert_close(act.ponder_cost, torch.full((3,), 4.1), rtol=0, atol=1e-6)
    valid = model.validity(out)
    assert valid.dtype == torch.bool and valid.shape == (6, 3)
    assert valid[:, 0].tolist() == [True, True, True, True, False, False]
    expected = 0.3 * out["logits"][0] + 0.3 * out["logits"][1] + 0.3 * out["logits"][2] + 0.1 * out["logits"][3]
    torch.testing.assert_close(out["act_logits"][-1], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out["act_logits"][3], out["act_logits"][5])  # halted: no change after N
    torch.testing.assert_close(out["act_logits"][0], out["logits"][0])  # a 1-step run outputs y_1


def test_ponder_cost_gradient_reaches_the_halting_unit_and_the_recurrent_layers():
    torch.manual_seed(1)
    model = HaltingConvGRU(**SMALL)  # halting bias 1: h ~ 0.73, so N = 2 and R = 1 - h_1 depends on weights
    out = model.forward_sequence(_movie())
    act = model.halting(out)
    assert torch.all(act.n_steps > 1)
    act.ponder_cost.sum().backward()
    assert model.halting_unit.weight.grad.abs().sum() > 0
    assert model.halting_unit.bias.grad.abs() > 0
    assert model.grus["gru2"].w_x.weight.grad.abs().sum() > 0
    assert model.conv_in.weight.grad.abs().sum() > 0


def test_more_steps_at_test_time_than_in_training():
    torch.manual_seed(2)
    model = _with_constant_halting(halting_convgru(**SMALL).eval(), 0.1)  # trained for 4 steps
    with torch.no_grad():
        short = model.forward_sequence(_movie(steps=4))
        long = model.forward_sequence(_movie(steps=12))
    assert model.halting(short).n_steps.tolist() == [4, 4, 4]  # cut by the movie: N = T, R = 0.7
    assert model.halting(long).n_steps.tolist() == [10, 10, 10]  # 10 * 0.1 >= 0.99 (float32)
    assert long["gru1"].shape[0] == 12 and model.validity(long)[:, 0].sum() == 10
    torch.testing.assert_close(short["act_logits"], long["act_logits"][:4])


def test_halting_model_returns_documented_layers_and_shapes():
    model = get_factory("halting_convgru")(**SMALL).eval()
    with torch.no_grad():
        out = model.forward_sequence(_movie())
    assert model.layers == ("conv_in", "gru1", "gru2")
    assert set(out) == {"conv_in", "gru1", "gru2", "logits", "halt_prob", "act_logits"}
    assert out["conv_in"].shape == (4, 3, 8, 16, 16)
    assert out["gru1"].shape == (4, 3, 8, 16, 16)
    assert out["gru2"].shape == (4, 3, 8, 8, 8)
    assert out["logits"].shape == out["act_logits"].shape == (4, 3, 5)
    assert out["halt_prob"].shape == (4, 3) and torch.all((out["halt_prob"] > 0) & (out["halt_prob"] < 1))
    assert model.convention == "sweep" and model.declared_arrival() == {"conv_in": 0, "gru1": 0, "gru2": 0}


def test_default_halting_model_is_small():
    assert sum(p.numel() for p in halting_convgru().parameters()) < 300_000


def test_halting_state_dict_round_trips_and_config_rebuilds_the_model(tmp_path):
    torch.manual_seed(3)
    model = halting_convgru(**SMALL, epsilon=0.05).eval()
    path = tmp_path / "halting.pt"
    torch.save(model.state_dict(), path)
    rebuilt = get_factory("halting_convgru")(**model.config).eval()
    rebuilt.load_state_dict(torch.load(path, weights_only=True))
    movie = _movie()
    with torch.no_grad():
        expected, got = model.forward_sequence(movie), rebuilt.forward_sequence(movie)
    assert rebuilt.config == model.config and rebuilt.epsilon == 0.05
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_bad_halting_inputs_raise_neurofit_errors():
    with pytest.raises(NeurofitError, match=r"\[T, B\]"):
        act_halting(torch.rand(3))
    with pytest.raises(NeurofitError, match="epsilon"):
        HaltingConvGRU(epsilon=1.0)
    with pytest.raises(NeurofitError, match="movie"):
        halting_convgru().forward_sequence(torch.zeros(3, 32, 32))
