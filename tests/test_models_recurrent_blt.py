"""B/BL/BT/BLT (Spoerer 2017/2020) with additive and multiplicative recurrence (Thorat 2023)."""

import pytest
import torch
import torch.nn.functional as F

from neurofit.errors import NeurofitError
from neurofit.models.zoo import get_factory
from neurofit.models.zoo.blt import BLTNet, b, bl, blt, bt

NAMES = ["b", "bl", "bt", "blt", "bl_mult", "bt_mult", "blt_mult"]
SMALL = {"channels": (8, 16, 16), "steps": 4, "num_classes": 5}



def _movie(batch=3, steps=4, seed=0, size=32):
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, size, size, generator=generator)
    return image.expand(steps, *image.shape).clone()


def _model(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    return get_factory(name)(**{**SMALL, **kwargs}).eval()


@pytest.mark.parametrize("name", NAMES)
def test_every_blt_factory_returns_documented_layers_and_shapes(name):
    model = _model(name)
    with torch.no_grad():
        out = model.forward_sequence(_movie())
    assert model.layers == ("conv1", "conv2", "conv3")
    assert set(out) == {"conv1", "conv2", "conv3", "logits"}
    assert out["conv1"].shape == (4, 3, 8, 32, 32)
    assert out["conv2"].shape == (4, 3, 16, 16, 16)
    assert out["conv3"].shape == (4, 3, 16, 8, 8)
    assert out["logits"].shape == (4, 3, 5)
    assert model.convention == "sweep" and model.default_steps == 4 and model.input_size == 32


@pytest.mark.parametrize("name", NAMES)
def test_default_blt_models_are_small(name):
    model = get_factory(name)()
    assert sum(p.numel() for p in model.parameters()) < 300_000


@pytest.mark.parametrize("name", NAMES)
def test_blt_state_dict_round_trips_and_config_rebuilds_the_model(name, tmp_path):
    model = _model(name, seed=1)
    path = tmp_path / f"{name}.pt"
    torch.save(model.state_dict(), path)
    rebuilt = get_factory(name)(**model.config).eval()
    rebuilt.load_state_dict(torch.load(path, weights_only=True))
    movie = _movie()
    with torch.no_grad():
        expected, got = model.forward_sequence(movie), rebuilt.forward_sequence(movie)
    assert rebuilt.config == model.config
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


@pytest.mark.parametrize("name", NAMES)
def test_every_blt_layer_is_driven_from_step_0(name):
    model = _model(name)
    with torch.no_grad():
        first = model.forward_sequence(_movie(seed=1))
        second = model.forward_sequence(_movie(seed=2))
    assert model.declared_arrival() == {"conv1": 0, "conv2": 0, "conv3": 0}
    for layer in model.layers:
        assert not torch.equal(first[layer][0], second[layer][0]), layer


def _copy_feedforward(source, target):
    missing, unexpected = target.load_state_dict(source.state_dict(), strict=False)
    assert not unexpected
    assert all(key.startswith(("lateral.", "topdown.")) for key in missing)


def _zero_recurrence(model):
    with torch.no_grad():
        for group in (model.lateral, model.topdown):
            if group is not None:
                for module in group.values():
                    module.weight.zero_()


@pytest.mark.parametrize("name", ["bl", "bt", "blt", "bl_mult", "bt_mult", "blt_mult"])
def test_recurrence_changes_later_steps_but_not_step_0(name):
    control = _model("b", seed=3)
    model = _model(name, seed=4)
    _copy_feedforward(control, model)
    movie = _movie()
    with torch.no_grad():
        ff, rec = control.forward_sequence(movie), model.forward_sequence(movie)
    for layer in model.layers:
        assert torch.equal(ff[layer][0], rec[layer][0]), layer
    # conv1 receives lateral and/or top-down input in every variant
    for t in range(1, 4):
        assert not torch.allclose(ff["conv1"][t], rec["conv1"][t]), t
    assert not torch.allclose(ff["logits"][1:], rec["logits"][1:])


@pytest.mark.parametrize("name", ["bl", "bt", "blt", "bl_mult", "bt_mult", "blt_mult"])
@pytest.mark.parametrize("modulation", ["linear", "tanh"])
def test_zero_recurrent_weights_reduce_every_variant_to_b_exactly(name, modulation):
    control = _model("b", seed=5)
    model = _model(name, seed=6, modulation=modulation)
    _copy_feedforward(control, model)
    _zero_recurrence(model)
    movie = _movie()
    with torch.no_grad():
        ff, rec = control.forward_sequence(movie), model.forward_sequence(movie)
    for key in ff:
        assert torch.equal(ff[key], rec[key]), key


def _reference_two_layer(model, movie):
    """The module docstring's equations, written out for a 2-layer network with F.conv2d."""
    cfg = model.config
    names = ("conv1", "conv2")
    h = [None, None]
    logits = []
    for t in range(movie.shape[0]):
        new = []
        for l, name in enumerate(names):
            x = movie[t] if l == 0 else F.max_pool2d(new[0], 2)
            conv = model.bottom_up[name]
            drive = F.conv2d(x, conv.weight, conv.bias, padding=1)
            r = None
            if t > 0:
                r = torch.zeros_like(drive)
                if cfg["lateral"]:
                    r = r + F.conv2d(h[l], model.lateral[name].weight, padding=1)
                if cfg["topdown"] and l == 0:
                    r = r + F.conv_transpose2d(h[1], model.topdown[name].weight, stride=2, padding=1,
                                               output_padding=1)
            if r is None:
                a = drive
            elif cfg["interaction"] == "additive":
                a = drive + r
            elif cfg["modulation"] == "linear":
                a = drive * (1 + r)
            else:
                a = drive * (1 + torch.tanh(r))
            if cfg["norm"] == "batchnorm":
                bn = model.norms[name][min(t, cfg["steps"] - 1)]
                out = F.relu(F.batch_norm(a, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0,
                                          bn.eps))
            elif cfg["norm"] == "lrn":
                out = F.local_response_norm(F.relu(a), 5, alpha=1e-4, beta=0.75, k=2.0)
            else:
                out = F.relu(a)
            new.append(out)
        h = new
        logits.append(model.readout(h[1].mean(dim=(2, 3))))
    return h, torch.stack(logits)


@pytest.mark.parametrize("name", ["b", "bl", "bt", "blt", "bl_mult", "bt_mult", "blt_mult"])
@pytest.mark.parametrize("norm", ["batchnorm", "lrn", "none"])
def test_blt_unroll_matches_its_documented_equations(name, norm):
    torch.manual_seed(7)
    model = get_factory(name)(channels=(4, 6), steps=2, num_classes=3, norm=norm,
                              modulation="tanh" if name == "blt_mult" else "linear").double().eval()
    if norm == "batchnorm":  # non-trivial running statistics, different at each step
        with torch.no_grad():
            for bns in model.norms.values():
                for bn in bns:
                    bn.running_mean.uniform_(-0.5, 0.5)
                    bn.running_var.uniform_(0.5, 2.0)
                    bn.weight.uniform_(0.5, 1.5)
                    bn.bias.uniform_(-0.2, 0.2)
    movie = torch.randn(4, 2, 3, 16, 16, dtype=torch.float64)  # 4 steps > 2 trained steps: last BN reused
    with torch.no_grad():
        out = model.forward_sequence(movie)
        (h1, h2), logits = _reference_two_layer(model, movie)
    torch.testing.assert_close(out["conv1"][-1], h1, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out["conv2"][-1], h2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(out["logits"], logits, rtol=1e-10, atol=1e-12)


def test_per_step_batchnorm_gives_one_norm_per_layer_and_step():
    model = blt(channels=(4, 8), steps=3)
    assert {name: len(bns) for name, bns in model.norms.items()} == {"conv1": 3, "conv2": 3}
    assert "norms.conv2.2.running_mean" in model.state_dict()


def test_b_has_no_recurrent_weights_and_bl_bt_only_their_own():
    assert b().lateral is None and b().topdown is None
    assert bl().topdown is None and bl().lateral is not None
    assert bt().lateral is None and set(bt().topdown) == {"conv1", "conv2"}


def test_factory_refuses_a_contradicting_variant_argument():
    with pytest.raises(NeurofitError, match="lateral"):
        bl(lateral=False)


def test_bad_sizes_and_settings_raise_neurofit_errors():
    with pytest.raises(NeurofitError, match="divisible"):
        blt(input_size=30)
    with pytest.raises(NeurofitError, match="divisible"):
        blt(channels=(4, 8)).forward_sequence(torch.zeros(2, 1, 3, 31, 31))
    with pytest.raises(NeurofitError, match="movie"):
        blt().forward_sequence(torch.zeros(1, 3, 32, 32))
    with pytest.raises(NeurofitError, match="norm"):
        BLTNet(norm="groupnorm")
