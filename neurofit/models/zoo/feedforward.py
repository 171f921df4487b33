"""Feedforward baselines: CORnet-Z and a parameter-matched deeper feedforward control.

CORnet-Z follows Kubilius, Schrimpf, Nayebi, Bear, Yamins & DiCarlo (2018), "CORnet: Modeling the Neural
Mechanisms of Core Object Recognition", bioRxiv 408385, and its reference code (github.com/dicarlolab/
CORnet, ``cornet_z.py``): four areas V1, V2, V4, IT, each one convolution -> ReLU -> 3x3/2 max-pool, then
a decoder (global average pool -> linear). Parameter names are the reference code's, so its ImageNet
checkpoint loads with :func:`neurofit.models.checkpoint.load_model`.

``deep_ff`` is the feedforward control for CORnet-RT (same file, :mod:`neurofit.models.zoo.cornet`): the
same four areas with the same layer shapes (input conv -> GroupNorm -> ReLU -> 3x3 conv -> GroupNorm ->
ReLU), but the second convolution is applied once, feedforward, instead of recurrently over time. Its
parameter count therefore equals CORnet-RT's at the same width (at width 16, 10 classes: 297,450 both;
CORnet-Z at the same width: 100,650), so a difference between the two isolates recurrence, not capacity.

Both are feedforward (``T = 1``, convention ``"sweep"``): each movie frame is one independent pass, and in
a temporal benchmark their response is compared with every bin.

Small-image adaptation: the reference V1 convolution has stride 2 (CORnet-Z) for 224 px images; for inputs
under 128 px the default stride is 1 so that IT keeps a spatial map (32 px input: V1 16, V2 8, V4 4,
IT 2 px). Pass ``v1_stride`` to override.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from neurofit.models.base import TemporalModel
from neurofit.models.zoo._blocks import CORnetArea

AREAS = ("V1", "V2", "V4", "IT")


def _v1_stride(v1_stride: int | None, input_size: int, paper_stride: int) -> int:
    if v1_stride is not None:
        return int(v1_stride)
    return paper_stride if input_size >= 128 else 1


class CORblockZ(nn.Module):
    """One CORnet-Z area: conv -> ReLU -> 3x3/2 max-pool (``output`` is the area's readout point)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride,
                              padding=kernel_size // 2)
        self.nonlin = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.output = nn.Identity()

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        return self.output(self.pool(self.nonlin(self.conv(inp))))


def _decoder(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("avgpool", nn.AdaptiveAvgPool2d(1)),
        ("flatten", nn.Flatten()),
        ("linear", nn.Linear(channels, num_classes)),
    ]))


class _FeedforwardAreas(TemporalModel):
    """Shared unroll for feedforward area stacks: every frame is an independent pass."""

    layers = AREAS
    convention = "sweep"
    default_steps = 1

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        steps, batch = movie.shape[:2]
        # frames are independent, so all of them go through as one batch
        x = movie.reshape(steps * batch, *movie.shape[2:])
        out = {}
        for area in AREAS:
            x = getattr(self, area)(x)
            out[area] = x.reshape(steps, batch, *x.shape[1:])
        logits = self.decoder(x)
        out["logits"] = logits.reshape(steps, batch, -1)
        return out


class CORnetZ(_FeedforwardAreas):
    """CORnet-Z (Kubilius et al. 2018) at configurable width: V1, V2, V4, IT have ``width * (1, 2, 4, 8)``
    channels (the paper: width 64).

    Example
    -------
    >>> model = CORnetZ(width=8)
    >>> out = model.forward_sequence(torch.zeros(1, 2, 3, 32, 32))
    >>> [tuple(out[k].shape) for k in ("V1", "IT", "logits")]
    [(1, 2, 8, 16, 16), (1, 2, 64, 2, 2), (1, 2, 10)]
    """

    def __init__(self, width: int = 16, num_classes: int = 10, input_size: int = 32,
                 v1_stride: int | None = None, in_channels: int = 3) -> None:
        super().__init__()
        stride = _v1_stride(v1_stride, input_size, paper_stride=2)
        self.config = {"width": width, "num_classes": num_classes, "input_size": input_size,
                       "v1_stride": stride, "in_channels": in_channels}
        self.input_size, self.in_channels = input_size, in_channels
        chans = [width, 2 * width, 4 * width, 8 * width]
        self.V1 = CORblockZ(in_channels, chans[0], kernel_size=7, stride=stride)
        self.V2 = CORblockZ(chans[0], chans[1])
        self.V4 = CORblockZ(chans[1], chans[2])
        self.IT = CORblockZ(chans[2], chans[3])
        self.decoder = _decoder(chans[3], num_classes)
        # the reference initialisation: Xavier-uniform weights, zero biases
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


class DeepFFBlock(CORnetArea):
    """A CORnet-RT area run once, feedforward: input conv -> GN -> ReLU -> 3x3 conv -> GN -> ReLU."""


class DeepFF(_FeedforwardAreas):
    """The deeper feedforward control, parameter-matched to CORnet-RT at the same configuration.

    Example
    -------
    >>> DeepFF(width=8).forward_sequence(torch.zeros(1, 2, 3, 32, 32))["IT"].shape
    torch.Size([1, 2, 64, 4, 4])
    """

    def __init__(self, width: int = 16, num_classes: int = 10, input_size: int = 32,
                 v1_stride: int | None = None, norm_groups: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        stride = _v1_stride(v1_stride, input_size, paper_stride=4)
        self.config = {"width": width, "num_classes": num_classes, "input_size": input_size,
                       "v1_stride": stride, "norm_groups": norm_groups, "in_channels": in_channels}
        self.input_size, self.in_channels = input_size, in_channels
        chans = [width, 2 * width, 4 * width, 8 * width]
        self.V1 = DeepFFBlock(in_channels, chans[0], kernel_size=7, stride=stride, norm_groups=norm_groups)
        self.V2 = DeepFFBlock(chans[0], chans[1], stride=2, norm_groups=norm_groups)
        self.V4 = DeepFFBlock(chans[1], chans[2], stride=2, norm_groups=norm_groups)
        self.IT = DeepFFBlock(chans[2], chans[3], stride=2, norm_groups=norm_groups)
        self.decoder = _decoder(chans[3], num_classes)


def cornet_z(width: int = 16, num_classes: int = 10, input_size: int = 32, v1_stride: int | None = None,
             in_channels: int = 3) -> CORnetZ:
    """CORnet-Z, feedforward (``T = 1``); the paper's configuration is ``width=64, num_classes=1000,
    input_size=224``.

    Example
    -------
    >>> cornet_z(width=8).layers
    ('V1', 'V2', 'V4', 'IT')
    """
    model = CORnetZ(width=width, num_classes=num_classes, input_size=input_size, v1_stride=v1_stride,
                    in_channels=in_channels)
    model.arch = "cornet_z"
    return model


def deep_ff(width: int = 16, num_classes: int = 10, input_size: int = 32, v1_stride: int | None = None,
            norm_groups: int = 32, in_channels: int = 3) -> DeepFF:
    """The deeper feedforward control with CORnet-RT's parameter count (``T = 1``).

    Example
    -------
    >>> deep_ff(width=8).config["v1_stride"]
    1
    """
    model = DeepFF(width=width, num_classes=num_classes, input_size=input_size, v1_stride=v1_stride,
                   norm_groups=norm_groups, in_channels=in_channels)
    model.arch = "deep_ff"
    return model
