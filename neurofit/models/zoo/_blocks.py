"""Pieces the zoo's model files share: the CORnet area, argument checks, and the recurrent stacks' common tail.

* :class:`CORnetArea`: CORnet-RT's area (Kubilius et al. 2019), ``input conv -> GN -> ReLU -> 3x3 conv ->
  GN -> ReLU``; :class:`~neurofit.models.zoo.cornet.CORblockRT` adds the recurrent state,
  :class:`~neurofit.models.zoo.feedforward.DeepFFBlock` runs it once.
* :func:`check_widths`, :func:`check_steps`, :func:`check_odd`: one wording for the errors of every family.
* :class:`RecurrentStack`: what BLT, ConvRNN and the ConvGRUs all set and do around their own recurrence:
  the recorded ``config``, the layer names, the default step count, the per-step outputs of every layer plus
  ``logits`` from a linear readout of the top layer's spatial mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from neurofit.errors import NeurofitError
from neurofit.models.base import TemporalModel


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with CORnet's 32 groups, at most one group per channel (narrow CPU-sized areas)."""
    return nn.GroupNorm(min(groups, channels), channels)


class CORnetArea(nn.Module):
    """One CORnet-RT area run once: ``ReLU(GN(conv1(ReLU(GN(conv_input(input))))))``.

    Example
    -------
    >>> CORnetArea(3, 8, kernel_size=7, stride=4)(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 8, 8, 8])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 norm_groups: int = 32) -> None:
        super().__init__()
        # the names (and their order: parameter initialisation) are the reference code's and the checkpoints'
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                                    padding=kernel_size // 2)
        self.norm_input = group_norm(out_channels, norm_groups)
        self.nonlin_input = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.norm1 = group_norm(out_channels, norm_groups)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.output = nn.Identity()

    def drive(self, inp: torch.Tensor) -> torch.Tensor:
        """The input stage: ``ReLU(GN(conv_input(input)))``."""
        return self.nonlin_input(self.norm_input(self.conv_input(inp)))

    def respond(self, x: torch.Tensor) -> torch.Tensor:
        """The output stage: ``ReLU(GN(conv1(x)))`` through the hookable ``output``."""
        return self.output(self.nonlin1(self.norm1(self.conv1(x))))

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.respond(self.drive(inp))


def check_widths(model: str, channels: Sequence[int]) -> tuple[int, ...]:
    """``channels`` as a tuple of positive ints, or a one-line error naming ``model``.

    Example
    -------
    >>> check_widths("BLTNet", [16, 0])
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: BLTNet channels must be a non-empty list of positive ints, got (16, 0)
    """
    widths = tuple(int(c) for c in channels)
    if not widths or min(widths) < 1:
        raise NeurofitError(f"{model} channels must be a non-empty list of positive ints, got {widths}")
    return widths


def check_steps(model: str, steps: int) -> None:
    """A one-line error unless ``steps >= 1``."""
    if steps < 1:
        raise NeurofitError(f"{model} steps must be >= 1, got {steps}")


def check_odd(model: str, what: str, kernel: int) -> None:
    """A one-line error unless ``kernel`` is odd (same padding keeps the map size)."""
    if kernel % 2 != 1:
        raise NeurofitError(f"{model} {what} must be odd (same padding), got {kernel}")


class RecurrentStack(TemporalModel):
    """Base of the zoo's recurrent stacks (BLT, ConvRNN, ConvGRU): common attributes and the output tail."""

    layers: tuple[str, ...]

    def _record(self, config: dict[str, Any], layers: Sequence[str], *, steps: int, input_size: int,
                in_channels: int) -> None:
        """Store the architecture ``config``, the layer names and the sizes every family exposes."""
        self.config = config
        self.layers = tuple(layers)
        self.default_steps = steps
        self.input_size = input_size
        self.in_channels = in_channels

    def _new_outputs(self) -> dict[str, list[torch.Tensor]]:
        """Empty per-step output lists of every layer and ``logits``."""
        return {name: [] for name in (*self.layers, "logits")}

    def _logits(self, top: torch.Tensor) -> torch.Tensor:
        """The class readout of the top layer's spatial mean, ``[B, C, H, W] -> [B, num_classes]``."""
        return self.readout(top.mean(dim=(2, 3)))

    @staticmethod
    def _stacked(outputs: dict[str, list[torch.Tensor]]) -> dict[str, torch.Tensor]:
        """``{layer: [T, B, ...]}`` from the per-step lists."""
        return {name: torch.stack(values) for name, values in outputs.items()}
