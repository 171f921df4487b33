"""Extraction speed-ups change no number: the projection matrix and the hooks' stored activations, bit for bit."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from neurofit.errors import NeurofitError
from neurofit.extract import RandomProjection
from neurofit.extract.reduce import _block_seed
from neurofit.models.hooks import wrap


def _reference_matrix(rp: RandomProjection, layer: str, p: int) -> torch.Tensor:
    """The matrix as first defined: one fresh ``randn``/``rand`` per block, scaled, then concatenated."""
    blocks = []
    for block, start in enumerate(range(0, p, rp.block_rows)):
        rows = min(rp.block_rows, p - start)
        g = torch.Generator().manual_seed(_block_seed(rp.seed, layer, block))
        if rp.kind == "gaussian":
            blocks.append(torch.randn(rows, rp.dim, generator=g) / math.sqrt(rp.dim))
        else:
            u = torch.rand(rows, rp.dim, generator=g)
            blocks.append(((u < 1 / 6).float() - (u >= 5 / 6).float()) * math.sqrt(3.0 / rp.dim))
    return torch.cat(blocks)


@pytest.mark.parametrize("kind", ["gaussian", "achlioptas"])
@pytest.mark.parametrize("threads", [1, 2])
def test_projection_matrix_written_in_place_on_threads_equals_the_concatenated_blocks(kind, threads):
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for dim, p, block_rows in [(50, 1000, 128), (7, 301, 300), (3, 5, 2048)]:
            rp = RandomProjection(dim=dim, seed=4, kind=kind, block_rows=block_rows)
            got = rp.matrix("conv1", p)
            assert got.dtype == torch.float32 and got.is_contiguous()
            assert torch.equal(got, _reference_matrix(rp, "conv1", p))
            last = (p - 1) // block_rows
            assert torch.equal(rp.matrix_block("conv1", last, p), got[last * block_rows:])
    finally:
        torch.set_num_threads(old)


class _Loop(nn.Module):
    """One conv called ``n`` times, each output overwritten in place by the ReLU that follows it."""

    def __init__(self, n: int = 4, grow: bool = False) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.n, self.grow = n, grow

    def forward(self, x):
        for k in range(self.n):
            if self.grow and k == 2:
                x = nn.functional.pad(x, (1, 1, 1, 1))
            x = torch.relu_(self.conv(x))
        return x


def _clone_and_stack(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reference: a clone of every call's output, stacked."""
    stored = []
    handle = net.conv.register_forward_hook(lambda _m, _i, out: stored.append(out.detach().clone()))
    try:
        net(x)
    finally:
        handle.remove()
    return torch.stack(stored)


def test_hooked_steps_copied_into_one_buffer_equal_clones_stacked_before_the_inplace_relu():
    x = torch.randn(2, 3, 8, 8)
    net = _Loop(4)
    got = wrap(net, ["conv"], steps=4).forward_sequence(x[None].expand(3, *x.shape))["conv"]
    want = _clone_and_stack(net, x)
    assert got.shape == (4, 2, 3, 8, 8) and torch.equal(got, want)
    assert bool((got < 0).any()), "stored before the in-place ReLU ran"
    one = wrap(_Loop(1), ["conv"], steps=1).forward_sequence(x)["conv"]
    assert torch.equal(one, _clone_and_stack(_Loop(1), x))


def test_hooked_buffer_falls_back_for_a_changed_shape_or_an_extra_call():
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(NeurofitError, match="different shapes across calls"):
        wrap(_Loop(4, grow=True), ["conv"], steps=4).forward_sequence(x)
    with pytest.raises(NeurofitError, match="expected 3 calls, got 4"):
        wrap(_Loop(4), ["conv"], steps=3).forward_sequence(x)
    with pytest.raises(NeurofitError, match="expected 5 calls, got 4"):
        wrap(_Loop(4), ["conv"], steps=5).forward_sequence(x)
    kept = wrap(_Loop(4), ["conv"], steps=4, detach=False).forward_sequence(x)["conv"]
    assert torch.equal(kept.detach(), _clone_and_stack(_Loop(4), x))
