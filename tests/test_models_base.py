import pytest
import torch

from neurofit.models.base import TemporalModel, TimeMap, present


def test_present_holds_image_then_blank():
    images = torch.rand(2, 3, 4, 4)
    movie = present(images, steps=5, on=1, off=3, blank=-1.0)
    assert movie.shape == (5, 2, 3, 4, 4)
    assert torch.equal(movie[1], images) and torch.equal(movie[2], images)
    for t in (0, 3, 4):
        assert torch.all(movie[t] == -1.0)


def test_present_rejects_bad_window():
    with pytest.raises(ValueError, match="on <= off"):
        present(torch.zeros(1, 3, 2, 2), steps=3, on=2, off=1)


def test_biological_time_map_delays_each_area_by_one_step():
    class Three(TemporalModel):
        layers = ("V1", "V2", "V4")
        convention = "biological"

    tm = Three().time_map(steps=6, on=1)
    assert tm.first_driven == {"V1": 1, "V2": 2, "V4": 3}
    assert not tm.is_driven("V4", 2) and tm.is_driven("V4", 3)
    assert tm.step_window(3) == (30.0, 40.0)


def test_time_map_rejects_unknown_layer():
    tm = TimeMap(steps=2, first_driven={"V1": 0})
    with pytest.raises(KeyError, match="IT"):
        tm.is_driven("IT", 0)
