"""Each recurrent family trains on CPU: a few dozen Adam steps learn an easy 4-class task (slow check)."""

import pytest
import torch
import torch.nn.functional as F

from neurofit.models.base import present
from neurofit.models.zoo import get_factory


def _quadrant_images(n, generator):
    """Noise images with a bright 8x8 square in the quadrant given by the label."""
    labels = torch.randint(0, 4, (n,), generator=generator)
    images = torch.rand(n, 3, 32, 32, generator=generator) * 0.5
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, 2)
        images[i, :, 4 + 16 * row: 12 + 16 * row, 4 + 16 * col: 12 + 16 * col] += 0.5
    return images, labels


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "config", "min_accuracy"),
    [
        ("blt_mult", {"channels": (8, 16, 16), "steps": 4}, 0.9),
        ("convrnn_rgc_feedback", {"channels": (8, 16, 16, 16, 16, 16), "steps": 7}, 0.9),
        ("halting_convgru", {"stem_channels": 16, "channels": (16, 16), "steps": 4}, 0.8),
    ],
)
def test_recurrent_family_learns_an_easy_task_on_cpu(name, config, min_accuracy):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        generator = torch.Generator().manual_seed(0)
        model = get_factory(name)(num_classes=4, **config)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        steps = model.default_steps
        readout = "act_logits" if name == "halting_convgru" else "logits"
        for _ in range(80):
            images, labels = _quadrant_images(32, generator)
            out = model.forward_sequence(present(model.normalize(images), steps))
            loss = F.cross_entropy(out[readout][-1], labels)
            if name == "halting_convgru":
                loss = loss + 0.01 * model.halting(out).ponder_cost.mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        images, labels = _quadrant_images(256, torch.Generator().manual_seed(9))
        with torch.no_grad():
            out = model.forward_sequence(present(model.normalize(images), steps))
        accuracy = (out[readout][-1].argmax(1) == labels).float().mean().item()
        assert accuracy >= min_accuracy
    finally:
        torch.set_num_threads(threads)
