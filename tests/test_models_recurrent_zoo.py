"""The recurrent zoo families through the shared model tools: measured arrival and safetensors checkpoints."""

import pytest
import torch

from neurofit.models.checkpoint import load_model, save_checkpoint
from neurofit.models.probe import check_arrival
from neurofit.models.zoo import get_factory

RECURRENT = ["b", "bl", "bt", "blt", "bl_mult", "bt_mult", "blt_mult", "convrnn_vanilla", "convrnn_lstm",
             "convrnn_gru", "convrnn_ugrnn", "convrnn_timedecay", "convrnn_rgc", "convrnn_rgc_feedback",
             "halting_convgru"]



@pytest.mark.parametrize("name", RECURRENT)
def test_declared_arrival_matches_probe_arrival_at_default_size(name):
    torch.manual_seed(0)
    model = get_factory(name)()
    arrival = {layer: k if model.convention == "biological" else 0 for k, layer in enumerate(model.layers)}
    assert check_arrival(model, steps=model.default_steps) == {
        layer: (step, step) for layer, step in arrival.items()
    }


@pytest.mark.parametrize("name", RECURRENT)
def test_safetensors_checkpoint_rebuilds_the_same_model(name, tmp_path):
    torch.manual_seed(1)
    model = get_factory(name)(steps=3, num_classes=4)
    model.arch = name
    path = save_checkpoint(model, tmp_path / f"{name}.safetensors", {"trained": False})
    loaded = load_model(path)
    assert loaded.config == model.config
    movie = torch.randn(3, 2, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        expected, got = model.forward_sequence(movie), loaded.forward_sequence(movie)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
