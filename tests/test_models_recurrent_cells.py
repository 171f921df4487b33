"""The ConvRNN cells compute their published equations (checked against torch's cells and by hand)."""

import math

import pytest
import torch
from torch import nn

from neurofit.errors import NeurofitError
from neurofit.models.zoo._cells import (
    ConvGRUCell,
    ConvLSTMCell,
    ConvTimeDecayCell,
    ConvUGRNNCell,
    ConvVanillaCell,
    ReciprocalGatedCell,
    make_cell,
)


def _copy_into_1x1(cell, reference):
    """Copy a torch RNN cell's weights into a 1x1-kernel conv cell (same gate order)."""
    with torch.no_grad():
        cell.w_x.weight.copy_(reference.weight_ih.view(*reference.weight_ih.shape, 1, 1))
        cell.w_h.weight.copy_(reference.weight_hh.view(*reference.weight_hh.shape, 1, 1))
        cell.w_x.bias.copy_(reference.bias_ih)
        cell.w_h.bias.copy_(reference.bias_hh)


def _unroll_cell(cell, xs):
    state = cell.init_state(xs[0])
    outs, states = [], []
    for x in xs:
        out, state = cell(x, state)
        outs.append(out)
        states.append(state)
    return outs, states


@pytest.mark.parametrize(
    ("cell_class", "reference_class", "kwargs"),
    [
        (ConvLSTMCell, nn.LSTMCell, {}),
        (ConvGRUCell, nn.GRUCell, {}),
        (ConvVanillaCell, nn.RNNCell, {"nonlinearity": "relu"}),
    ],
)
def test_1x1_conv_cells_match_torch_cells_on_random_inputs(cell_class, reference_class, kwargs):
    torch.manual_seed(0)
    reference = reference_class(3, 5, **kwargs).double()
    cell = cell_class(3, 5, kernel_size=1).double()
    _copy_into_1x1(cell, reference)
    xs = [torch.randn(4, 3, dtype=torch.float64) for _ in range(4)]
    outs, states = _unroll_cell(cell, [x.view(4, 3, 1, 1) for x in xs])
    h = torch.zeros(4, 5, dtype=torch.float64)
    c = torch.zeros(4, 5, dtype=torch.float64)
    for x, out, state in zip(xs, outs, states):
        if reference_class is nn.LSTMCell:
            h, c = reference(x, (h, c))
            torch.testing.assert_close(state[1].view(4, 5), c, rtol=1e-12, atol=1e-12)
        else:
            h = reference(x, h)
        torch.testing.assert_close(out.view(4, 5), h, rtol=1e-12, atol=1e-12)


def _set_1x1(conv, weight, bias):
    with torch.no_grad():
        conv.weight.fill_(weight)
        conv.bias.fill_(bias)


def _sig(v):
    return 1.0 / (1.0 + math.exp(-v))


def _elu(v):
    return v if v > 0 else math.exp(v) - 1.0


def test_reciprocal_gated_cell_matches_hand_computed_equations():
    cell = ReciprocalGatedCell(1, 1, kernel_size=1).double()
    w = {"w_x": (1.5, 0.1), "w_ac": (0.8, -0.2), "w_cc": (0.7, 0.3), "w_hc": (-0.6, 0.2),
         "w_hh": (0.4, -0.1), "w_ch": (0.9, 0.05)}
    for name, (weight, bias) in w.items():
        _set_1x1(getattr(cell, name), weight, bias)
    inputs = [0.5, -1.0, 2.0]
    outs, states = _unroll_cell(cell, [torch.full((1, 1, 1, 1), v, dtype=torch.float64) for v in inputs])

    def lin(name, v):
        return w[name][0] * v + w[name][1]

    h = c = 0.0
    for x, out, state in zip(inputs, outs, states):
        a = lin("w_x", x)
        c_new = _elu((1 - _sig(lin("w_cc", c))) * c + (1 - _sig(lin("w_hc", h))) * lin("w_ac", a))
        h_new = _elu((1 - _sig(lin("w_hh", h))) * h + (1 - _sig(lin("w_ch", c))) * a)
        h, c = h_new, c_new
        assert out.item() == pytest.approx(h, abs=1e-12)
        assert state[0].item() == pytest.approx(h, abs=1e-12)
        assert state[1].item() == pytest.approx(c, abs=1e-12)


def test_reciprocal_gated_cell_bypass_carries_the_drive_to_the_output_without_the_cell():
    # with the cell's own input weights at zero the cell state stays 0 and h' = ELU(0.5 a + ...)
    cell = ReciprocalGatedCell(1, 1, kernel_size=1).double()
    for name in ("w_ac", "w_cc", "w_hc", "w_hh", "w_ch"):
        _set_1x1(getattr(cell, name), 0.0, 0.0)
    _set_1x1(cell.w_x, 2.0, 0.0)
    x = torch.ones(1, 1, 1, 1, dtype=torch.float64)
    out, (h, c) = cell(x, cell.init_state(x))
    assert c.item() == 0.0
    assert out.item() == pytest.approx(_elu(0.5 * 2.0), abs=1e-12)


def test_ugrnn_cell_matches_hand_computed_equations():
    cell = ConvUGRNNCell(1, 1, kernel_size=1).double()
    with torch.no_grad():
        cell.w_x.weight.view(-1).copy_(torch.tensor([0.9, -0.4], dtype=torch.float64))  # candidate, gate
        cell.w_x.bias.copy_(torch.tensor([0.1, 0.2], dtype=torch.float64))
        cell.w_h.weight.view(-1).copy_(torch.tensor([0.5, 0.3], dtype=torch.float64))
        cell.w_h.bias.copy_(torch.tensor([-0.05, 0.0], dtype=torch.float64))
    inputs = [1.0, -0.5, 0.25]
    outs, _ = _unroll_cell(cell, [torch.full((1, 1, 1, 1), v, dtype=torch.float64) for v in inputs])
    h = 0.0
    for x, out in zip(inputs, outs):
        cand = math.tanh(0.9 * x + 0.1 + 0.5 * h - 0.05)
        g = _sig(-0.4 * x + 0.2 + 0.3 * h)
        h = g * h + (1 - g) * cand
        assert out.item() == pytest.approx(h, abs=1e-12)


def test_time_decay_cell_matches_hand_computed_equations():
    cell = ConvTimeDecayCell(1, 1, kernel_size=1).double()
    _set_1x1(cell.w_x, 1.2, -0.3)
    with torch.no_grad():
        cell.tau_raw.fill_(0.2)
    tau = math.log1p(math.exp(0.2))
    decay = math.exp(-1.0 / tau)
    inputs = [1.0, 0.0, -2.0, 0.5]
    outs, states = _unroll_cell(cell, [torch.full((1, 1, 1, 1), v, dtype=torch.float64) for v in inputs])
    s = 0.0
    for x, out, state in zip(inputs, outs, states):
        s = decay * s + 1.2 * x - 0.3
        assert state[0].item() == pytest.approx(s, abs=1e-12)
        assert out.item() == pytest.approx(max(s, 0.0), abs=1e-12)


@pytest.mark.parametrize("kind", ["vanilla", "lstm", "gru", "ugrnn", "timedecay", "rgc"])
def test_cells_keep_spatial_size_and_width(kind):
    cell = make_cell(kind, 3, 6, kernel_size=3)
    x = torch.randn(2, 3, 7, 5)
    out, state = cell(x, cell.init_state(x))
    assert out.shape == (2, 6, 7, 5)
    assert len(state) == len(cell.state_names) and all(s.shape == (2, 6, 7, 5) for s in state)


def test_unknown_cell_and_even_kernel_are_refused():
    with pytest.raises(NeurofitError, match="valid cells"):
        make_cell("transformer", 3, 4)
    with pytest.raises(NeurofitError, match="odd"):
        make_cell("gru", 3, 4, kernel_size=2)
