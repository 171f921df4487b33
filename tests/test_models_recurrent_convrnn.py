"""Nayebi-2018 ConvRNNs: biological unroll (layer k first driven at step k), cells, feedback, checkpoints."""

import pytest
import torch

from neurofit.errors import NeurofitError
from neurofit.models.base import present
from neurofit.models.zoo import get_factory
from neurofit.models.zoo.convrnn import ConvRNN, convrnn_rgc, convrnn_rgc_feedback

NAMES = ["convrnn_vanilla", "convrnn_lstm", "convrnn_gru", "convrnn_ugrnn", "convrnn_timedecay", "convrnn_rgc",
         "convrnn_rgc_feedback"]
SMALL = {"channels": (4, 8, 8, 8, 8, 8), "steps": 7, "num_classes": 5}



def _movie(batch=2, steps=7, seed=0, size=32):
    generator = torch.Generator().manual_seed(seed)
    image = torch.randn(batch, 3, size, size, generator=generator)
    return image.expand(steps, *image.shape).clone()


def _model(name, seed=0, **kwargs):
    torch.manual_seed(seed)
    return get_factory(name)(**{**SMALL, **kwargs}).eval()


@pytest.mark.parametrize("name", NAMES)
def test_every_convrnn_factory_returns_documented_layers_and_shapes(name):
    model = _model(name)
    with torch.no_grad():
        out = model.forward_sequence(_movie())
    assert model.layers == tuple(f"conv{k}" for k in range(1, 7))
    assert set(out) == {*model.layers, "logits"}
    sizes = {"conv1": 16, "conv2": 8, "conv3": 8, "conv4": 4, "conv5": 4, "conv6": 4}
    for layer, size in sizes.items():
        width = 4 if layer == "conv1" else 8
        assert out[layer].shape == (7, 2, width, size, size), layer
    assert out["logits"].shape == (7, 2, 5)
    assert model.convention == "biological" and model.default_steps == 7


@pytest.mark.parametrize("name", NAMES)
def test_default_convrnn_models_are_small(name):
    model = get_factory(name)()
    assert sum(p.numel() for p in model.parameters()) < 300_000
    assert model.default_steps == 10


@pytest.mark.parametrize("name", NAMES)
def test_layer_k_is_first_driven_at_step_k_exactly(name):
    model = _model(name)
    with torch.no_grad():
        first = model.forward_sequence(_movie(seed=1))
        second = model.forward_sequence(_movie(seed=2))
    measured = {}
    for layer in model.layers:
        differs = [not torch.equal(first[layer][t], second[layer][t]) for t in range(7)]
        measured[layer] = differs.index(True) if any(differs) else None
        # once driven, a layer stays driven while the image is on
        assert all(differs[measured[layer]:]), layer
    assert measured == model.declared_arrival() == {f"conv{k + 1}": k for k in range(6)}
    assert model.time_map(on=2).first_driven["conv4"] == 5


def test_arrival_after_a_late_onset_matches_the_time_map():
    model = _model("convrnn_rgc_feedback")
    images_a, images_b = _movie(seed=1)[0], _movie(seed=2)[0]
    with torch.no_grad():
        first = model.forward_sequence(present(images_a, steps=9, on=2, off=5))
        second = model.forward_sequence(present(images_b, steps=9, on=2, off=5))
    declared = model.time_map(steps=9, on=2, off=5).first_driven
    for layer in model.layers:
        differs = [not torch.equal(first[layer][t], second[layer][t]) for t in range(9)]
        assert differs.index(True) == declared[layer], layer


def test_layer_reads_the_layer_below_from_the_previous_step():
    # an image flashed at step 0 only reaches conv3 at step 2 and has left conv1 by step 1
    model = _model("convrnn_rgc")
    movie_a, movie_b = _movie(seed=1), _movie(seed=2)
    movie_a[1:] = 0.0
    movie_b[1:] = 0.0
    with torch.no_grad():
        first, second = model.forward_sequence(movie_a), model.forward_sequence(movie_b)
    assert not torch.equal(first["conv1"][0], second["conv1"][0])
    assert torch.equal(first["conv1"][1], second["conv1"][1])  # conv1 has no cell: no memory
    assert torch.equal(first["conv3"][1], second["conv3"][1])
    assert not torch.equal(first["conv3"][2], second["conv3"][2])
    assert torch.equal(first["conv3"][3], second["conv3"][3])
    # conv4 holds a cell: the flash persists in its state after it has passed
    assert not torch.equal(first["conv4"][4], second["conv4"][4])


@pytest.mark.parametrize("name", NAMES)
def test_convrnn_state_dict_round_trips_and_config_rebuilds_the_model(name, tmp_path):
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


def test_feedback_enters_only_through_its_own_input_channels():
    plain = _model("convrnn_rgc", seed=3)
    fed = _model("convrnn_rgc_feedback", seed=4)
    assert fed.config["feedback"] == [[6, 4]]
    state = fed.state_dict()
    for key, value in plain.state_dict().items():
        if key == "blocks.conv4.w_x.weight":  # conv4 reads [conv3, resized conv6] along channels
            assert state[key].shape[1] == value.shape[1] + 8
            state[key] = torch.cat([value, state[key][:, value.shape[1]:]], dim=1)
        else:
            state[key] = value
    fed.load_state_dict(state)
    movie = _movie()
    with torch.no_grad():
        without, with_fb = plain.forward_sequence(movie), fed.forward_sequence(movie)
        fed.blocks["conv4"].w_x.weight[:, 8:] = 0.0
        cut = fed.forward_sequence(movie)
    assert not torch.allclose(without["conv4"], with_fb["conv4"])
    for key in without:
        assert torch.equal(without[key], cut[key]), key


def test_feedback_is_read_from_the_previous_step():
    # a flash at step 0 drives conv2 at step 1 (feedforward), reaches conv6 at step 5 (whose cells keep it)
    # and comes back to conv2 through the conv6 -> conv2 edge at step 6, not earlier
    model = _model("convrnn_rgc_feedback", seed=5, steps=8, feedback=[(6, 2)])
    movie_a, movie_b = _movie(seed=1, steps=8), _movie(seed=2, steps=8)
    movie_a[1:] = 0.0
    movie_b[1:] = 0.0
    with torch.no_grad():
        first, second = model.forward_sequence(movie_a), model.forward_sequence(movie_b)
    differs = [not torch.equal(first["conv2"][t], second["conv2"][t]) for t in range(8)]
    assert differs == [False, True, False, False, False, False, True, True]


def test_feedforward_backbone_is_the_case_without_cells():
    model = ConvRNN(channels=(4, 8, 8), cell_layers=(), steps=4)
    assert all(isinstance(block, torch.nn.Conv2d) for block in model.blocks.values())
    assert model.config["pool_after"] == [1, 2]
    out = model.forward_sequence(_movie(steps=4))
    assert out["conv3"].shape == (4, 2, 8, 8, 8)


def test_default_cell_layers_are_the_upper_half():
    assert convrnn_rgc().config["cell_layers"] == [4, 5, 6]
    assert convrnn_rgc(channels=(4, 8, 8, 8)).config["cell_layers"] == [3, 4]
    assert convrnn_rgc_feedback(channels=(4, 8, 8, 8)).config["feedback"] == [[4, 3]]


def test_bad_configurations_raise_neurofit_errors():
    with pytest.raises(NeurofitError, match="higher to a lower"):
        convrnn_rgc(feedback=[(3, 5)])
    with pytest.raises(NeurofitError, match="cell"):
        get_factory("convrnn_lstm")(cell="gru")
    with pytest.raises(NeurofitError, match="layers 1..6"):
        convrnn_rgc(cell_layers=(7,))
    with pytest.raises(NeurofitError, match="movie"):
        convrnn_rgc().forward_sequence(torch.zeros(2, 1, 1, 32, 32))
    with pytest.raises(NeurofitError, match="convrnn_rgc"):
        convrnn_rgc_feedback(feedback=[])
