"""CORnet-RT and CORnet-S.

Kubilius, Schrimpf, Nayebi, Bear, Yamins & DiCarlo (2018), "CORnet: Modeling the Neural Mechanisms of
Core Object Recognition", bioRxiv 408385 (CORnet-RT); Kubilius, Schrimpf, Kar, Rajalingham, Hong, Majaj,
Issa, Bashivan, Prescott-Roy, Schmidt, Nayebi, Bear, Yamins & DiCarlo (2019), "Brain-Like Object
Recognition with High-Performing Shallow Recurrent ANNs", NeurIPS (CORnet-S). Both follow the reference
code (github.com/dicarlolab/CORnet, ``cornet_rt.py``, ``cornet_s.py``) step for step, with its parameter
names, so its checkpoints load with :func:`neurofit.models.checkpoint.load_model`.

**CORnet-RT** is unrolled biologically: at step ``t`` every area takes the previous area's output from
step ``t - 1`` plus its own state, so V1 is driven at step 0, V2 at 1, V4 at 2 and IT at 3 (of the
paper's 5). Before that an area sees the reference code's zero input and its output is the same for every
image (checked by :func:`neurofit.models.probe.probe_arrival`). V1 sees movie frame ``t`` at step ``t``.

**CORnet-S** is a sweep model whose recurrence is local to each area: every image passes V1 once, then V2
repeats its block 2 times, V4 4 times and IT 2 times, each repetition with its own BatchNorm (the input
enters at the first repetition only). ``forward_sequence`` returns every repetition: for a movie of ``T``
frames (each frame one full pass) V1 is ``[T, B, ...]``, V2 ``[2T, ...]``, V4 ``[4T, ...]``, IT
``[2T, ...]`` and logits ``[T, B, n_classes]``; ``steps_per_layer`` says so, and a ``table`` time mapping
(Brain-Score's CORnet commitment) places these repetitions on recording bins.

Small-image adaptation (both): for inputs under 128 px the V1 convolution has stride 1 instead of the
reference 4 (RT) or 2 (S), so that IT keeps a spatial map at 32 px. GroupNorm in CORnet-RT uses
``min(32, channels)`` groups so that narrow CPU-sized widths are legal.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from neurofit.models.base import TemporalModel
from neurofit.models.zoo._blocks import CORnetArea
from neurofit.models.zoo.feedforward import AREAS, _decoder, _v1_stride


class CORblockRT(CORnetArea):
    """One CORnet-RT area: ``output = ReLU(GN(conv1(ReLU(GN(conv_input(input))) + state)))``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 norm_groups: int = 32) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride, norm_groups)
        self.out_channels = out_channels

    def out_size(self, in_size: int) -> int:
        """Spatial size of this area's map given its input's."""
        k, s, p = self.conv_input.kernel_size[0], self.conv_input.stride[0], self.conv_input.padding[0]
        return (in_size + 2 * p - k) // s + 1

    def forward(self, inp: torch.Tensor | None, state: torch.Tensor | None,
                empty_shape: Sequence[int] | None = None) -> torch.Tensor:
        if inp is None:
            # before the previous area has produced anything, the reference code feeds zeros here
            if empty_shape is None:
                raise ValueError("an area without input needs empty_shape")
            x = self.conv1.weight.new_zeros(tuple(empty_shape))
        else:
            x = self.drive(inp)
        if state is not None:
            x = x + state
        return self.respond(x)


class CORnetRT(TemporalModel):
    """CORnet-RT: four recurrent areas, biological unroll (IT first driven at step 3).

    Example
    -------
    >>> model = CORnetRT(width=8)
    >>> out = model.forward_sequence(torch.zeros(5, 2, 3, 32, 32))
    >>> [tuple(out[k].shape) for k in ("V1", "IT", "logits")]
    [(5, 2, 8, 32, 32), (5, 2, 64, 4, 4), (5, 2, 10)]
    """

    layers = AREAS
    convention = "biological"
    default_steps = 5

    def __init__(self, width: int = 16, num_classes: int = 10, input_size: int = 32, times: int = 5,
                 v1_stride: int | None = None, norm_groups: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        stride = _v1_stride(v1_stride, input_size, paper_stride=4)
        self.config = {"width": width, "num_classes": num_classes, "input_size": input_size, "times": times,
                       "v1_stride": stride, "norm_groups": norm_groups, "in_channels": in_channels}
        self.input_size, self.in_channels, self.default_steps = input_size, in_channels, times
        chans = [width, 2 * width, 4 * width, 8 * width]
        self.V1 = CORblockRT(in_channels, chans[0], kernel_size=7, stride=stride, norm_groups=norm_groups)
        self.V2 = CORblockRT(chans[0], chans[1], stride=2, norm_groups=norm_groups)
        self.V4 = CORblockRT(chans[1], chans[2], stride=2, norm_groups=norm_groups)
        self.IT = CORblockRT(chans[2], chans[3], stride=2, norm_groups=norm_groups)
        self.decoder = _decoder(chans[3], num_classes)

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        batch, size = movie.shape[1], movie.shape[-1]
        blocks = [getattr(self, area) for area in AREAS]
        sizes = []
        for block in blocks:
            size = block.out_size(size)
            sizes.append(size)
        previous: list[torch.Tensor | None] = [None] * len(AREAS)
        states: list[torch.Tensor | None] = [None] * len(AREAS)
        records: dict[str, list[torch.Tensor]] = {area: [] for area in AREAS}
        logits = []
        for frame in movie:
            current = []
            for k, (area, block) in enumerate(zip(AREAS, blocks)):
                # V1 sees this frame; every later area sees the area below as it was one step ago
                inp = frame if k == 0 else previous[k - 1]
                out = block(inp, states[k], empty_shape=(batch, block.out_channels, sizes[k], sizes[k]))
                states[k] = out
                current.append(out)
                records[area].append(out)
            previous = current
            logits.append(self.decoder(current[-1]))
        result = {area: torch.stack(values) for area, values in records.items()}
        result["logits"] = torch.stack(logits)
        return result


class CORblockS(nn.Module):
    """One CORnet-S area: a bottleneck block repeated ``times`` times with per-repetition BatchNorm.

    The first repetition downsamples (stride-2 3x3 conv, strided 1x1 skip with its own BatchNorm); later
    repetitions keep the size and skip with the identity. ``output`` is called once per repetition.
    """

    scale = 4  # bottleneck expansion, as in the paper

    def __init__(self, in_channels: int, out_channels: int, times: int = 1) -> None:
        super().__init__()
        self.times = times
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, out_channels * self.scale, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels * self.scale, out_channels * self.scale, kernel_size=3, stride=2,
                               padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(out_channels * self.scale, out_channels, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)
        self.output = nn.Identity()
        for t in range(times):
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(out_channels * self.scale))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(out_channels * self.scale))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def repetition(self, x: torch.Tensor, t: int) -> torch.Tensor:
        """Repetition ``t`` of the block on state ``x`` (for ``t = 0``: ``conv_input`` of the input)."""
        skip = self.norm_skip(self.skip(x)) if t == 0 else x
        # the reference code sets conv2.stride before each repetition; passing it keeps the module immutable
        stride = 2 if t == 0 else 1
        x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
        x = F.conv2d(x, self.conv2.weight, None, stride, self.conv2.padding)
        x = self.nonlin2(getattr(self, f"norm2_{t}")(x))
        x = getattr(self, f"norm3_{t}")(self.conv3(x))
        x = self.nonlin3(x + skip)
        return self.output(x)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        x = self.conv_input(inp)
        for t in range(self.times):
            x = self.repetition(x, t)
        return x


def _cornet_s_v1(in_channels: int, width: int, stride: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels, width, kernel_size=7, stride=stride, padding=3, bias=False)),
        ("norm1", nn.BatchNorm2d(width)),
        ("nonlin1", nn.ReLU(inplace=True)),
        ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
        ("conv2", nn.Conv2d(width, width, kernel_size=3, stride=1, padding=1, bias=False)),
        ("norm2", nn.BatchNorm2d(width)),
        ("nonlin2", nn.ReLU(inplace=True)),
        ("output", nn.Identity()),
    ]))


class CORnetS(TemporalModel):
    """CORnet-S: V1 (two convs, no recurrence), V2/V4/IT repeated ``times`` = (2, 4, 2) with per-repetition
    BatchNorm. Submodule names are the reference ``nn.Sequential``'s (``V1``, ``V2``, ``V4``, ``IT``,
    ``decoder``); :meth:`as_sequential` returns that plain module sharing these weights.

    Example
    -------
    >>> model = CORnetS(width=8)
    >>> out = model.forward_sequence(torch.zeros(1, 2, 3, 32, 32))
    >>> {k: out[k].shape[0] for k in ("V1", "V2", "V4", "IT", "logits")}
    {'V1': 1, 'V2': 2, 'V4': 4, 'IT': 2, 'logits': 1}
    """

    layers = AREAS
    convention = "sweep"
    default_steps = 1

    def __init__(self, width: int = 16, num_classes: int = 10, input_size: int = 32,
                 times: Sequence[int] = (2, 4, 2), v1_stride: int | None = None, in_channels: int = 3) -> None:
        super().__init__()
        if len(times) != 3 or min(times) < 1:
            raise ValueError(f"times gives the repetitions of V2, V4, IT (each >= 1), got {times}")
        stride = _v1_stride(v1_stride, input_size, paper_stride=2)
        self.config = {"width": width, "num_classes": num_classes, "input_size": input_size,
                       "times": [int(t) for t in times], "v1_stride": stride, "in_channels": in_channels}
        self.input_size, self.in_channels = input_size, in_channels
        chans = [width, 2 * width, 4 * width, 8 * width]
        self.V1 = _cornet_s_v1(in_channels, chans[0], stride)
        self.V2 = CORblockS(chans[0], chans[1], times=int(times[0]))
        self.V4 = CORblockS(chans[1], chans[2], times=int(times[1]))
        self.IT = CORblockS(chans[2], chans[3], times=int(times[2]))
        self.decoder = nn.Sequential(OrderedDict([
            ("avgpool", nn.AdaptiveAvgPool2d(1)),
            ("flatten", nn.Flatten()),
            ("linear", nn.Linear(chans[3], num_classes)),
            ("output", nn.Identity()),
        ]))
        # the reference initialisation (its Linear keeps PyTorch's default, as in the paper's training)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, (2.0 / n) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def repetitions(self) -> dict[str, int]:
        """Calls of each area's ``output`` per image: ``{"V1": 1, "V2": 2, "V4": 4, "IT": 2}`` by default."""
        return {"V1": 1, **{area: getattr(self, area).times for area in AREAS[1:]}}

    def steps_per_layer(self, steps: int | None = None) -> dict[str, int]:
        steps = self.default_steps if steps is None else steps
        return {area: steps * n for area, n in self.repetitions().items()}

    def as_sequential(self) -> nn.Sequential:
        """The reference ``CORnet_S()`` ``nn.Sequential`` built from this model's own submodules."""
        return nn.Sequential(OrderedDict([(name, getattr(self, name)) for name in (*AREAS, "decoder")]))

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        records: dict[str, list[torch.Tensor]] = {area: [] for area in AREAS}
        logits = []
        for frame in movie:
            x = self.V1(frame)
            records["V1"].append(x)
            for area in AREAS[1:]:
                block = getattr(self, area)
                x = block.conv_input(x)
                for t in range(block.times):
                    x = block.repetition(x, t)
                    records[area].append(x)
            logits.append(self.decoder(x))
        result = {area: torch.stack(values) for area, values in records.items()}
        result["logits"] = torch.stack(logits)
        return result


def cornet_rt(width: int = 16, num_classes: int = 10, input_size: int = 32, times: int = 5,
              v1_stride: int | None = None, norm_groups: int = 32, in_channels: int = 3) -> CORnetRT:
    """CORnet-RT; the paper's configuration is ``width=64, num_classes=1000, input_size=224, times=5``.

    Example
    -------
    >>> cornet_rt(width=8).time_map().first_driven
    {'V1': 0, 'V2': 1, 'V4': 2, 'IT': 3}
    """
    model = CORnetRT(width=width, num_classes=num_classes, input_size=input_size, times=times,
                     v1_stride=v1_stride, norm_groups=norm_groups, in_channels=in_channels)
    model.arch = "cornet_rt"
    return model


def cornet_s(width: int = 16, num_classes: int = 10, input_size: int = 32, times: Sequence[int] = (2, 4, 2),
             v1_stride: int | None = None, in_channels: int = 3) -> CORnetS:
    """CORnet-S; the paper's configuration is ``width=64, num_classes=1000, input_size=224``.

    Example
    -------
    >>> cornet_s(width=8).steps_per_layer()
    {'V1': 1, 'V2': 2, 'V4': 4, 'IT': 2}
    """
    model = CORnetS(width=width, num_classes=num_classes, input_size=input_size, times=times,
                    v1_stride=v1_stride, in_channels=in_channels)
    model.arch = "cornet_s"
    return model
