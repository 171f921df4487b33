"""The temporal-model contract: input movies, the TimeMap and the :class:`TemporalModel` base class.

A :class:`TemporalModel` is an ``nn.Module`` unrolled over an explicit input movie ``[T, B, C, H, W]``;
``forward_sequence`` returns every layer at every step as ``{layer: Tensor[T, B, ...]}``. Its
:class:`TimeMap` says how model steps relate to milliseconds after stimulus onset and from which step each
layer carries image-driven signal. Two unroll conventions exist (DESIGN.md, "Models"):

* ``"biological"``: every inter-area connection costs one step, so layer ``k`` (0-based) is first driven at
  step ``onset + k`` (Nayebi 2018 ConvRNNs, CORnet-RT);
* ``"sweep"``: a full feedforward pass at every step, recurrence from ``t - 1`` (CORnet-S, BL/BLT), so every
  layer is driven from the onset step.

Declared arrival steps are checked against measurement by :func:`neurofit.models.probe.probe_arrival`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import torch
from torch import nn


def flush_denormals() -> bool:
    """Flush denormal floats to zero on CPU; returns whether the CPU supports it (x86 with SSE3).

    Called when model code is first imported: gated recurrent cells whose states decay towards zero run up
    to 20x slower on denormals, and flushing changes results by less than the smallest normal float32.

    Example
    -------
    >>> flush_denormals() in (True, False)
    True
    """
    return bool(torch.set_flush_denormal(True))


flush_denormals()

Convention = Literal["biological", "sweep"]


@dataclass(frozen=True)
class TimeMap:
    """How model steps map onto milliseconds after stimulus onset.

    Step ``t`` covers ``[t0_ms + t * step_ms, t0_ms + (t + 1) * step_ms)``. The image is on from
    ``onset_step`` up to (not including) ``offset_step`` (``None``: held on to the end). ``first_driven``
    gives, per layer, the first step carrying image-driven signal; earlier steps are absent, never signal.

    Example
    -------
    >>> tm = TimeMap(steps=5, first_driven={"V1": 0, "IT": 3})
    >>> tm.step_window(2)
    (20.0, 30.0)
    >>> tm.is_driven("IT", 2), tm.is_driven("IT", 3)
    (False, True)
    """

    steps: int
    first_driven: dict[str, int]
    step_ms: float = 10.0
    t0_ms: float = 0.0
    onset_step: int = 0
    offset_step: int | None = None
    convention: Convention = "sweep"

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"TimeMap.steps must be >= 1, got {self.steps}")
        if self.step_ms <= 0:
            raise ValueError(f"TimeMap.step_ms must be > 0, got {self.step_ms}")

    def step_window(self, step: int) -> tuple[float, float]:
        """``(start_ms, end_ms)`` covered by model step ``step``."""
        start = self.t0_ms + step * self.step_ms
        return (float(start), float(start + self.step_ms))

    def is_driven(self, layer: str, step: int) -> bool:
        """Whether ``layer`` carries image-driven signal at ``step``."""
        if layer not in self.first_driven:
            raise KeyError(f"layer {layer!r} is not in this TimeMap (layers: {sorted(self.first_driven)})")
        return step >= self.first_driven[layer]

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (JSON/NetCDF-attribute friendly)."""
        return asdict(self)


def present(
    images: torch.Tensor,
    steps: int,
    on: int = 0,
    off: int | None = None,
    blank: torch.Tensor | float = 0.0,
) -> torch.Tensor:
    """Build an input movie ``[T, B, C, H, W]`` from a batch of images ``[B, C, H, W]``.

    The image is shown from step ``on`` up to (not including) step ``off`` (``None``: until the end);
    all other steps show ``blank``, given in model-input space (after normalisation: for a model that
    normalises with the ImageNet mean, a mid-gray screen is ``0.0``). ``blank`` may be a scalar or a
    tensor broadcastable to ``[C, H, W]``.

    Example
    -------
    >>> movie = present(torch.ones(2, 3, 8, 8), steps=4, on=1, off=3)
    >>> movie.shape, movie[:, 0, 0, 0, 0].tolist()
    (torch.Size([4, 2, 3, 8, 8]), [0.0, 1.0, 1.0, 0.0])
    """
    if images.dim() != 4:
        raise ValueError(f"images must be [B, C, H, W], got shape {tuple(images.shape)}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    stop = steps if off is None else off
    if not 0 <= on <= stop <= steps:
        raise ValueError(f"need 0 <= on <= off <= steps, got on={on}, off={off}, steps={steps}")
    blank_t = torch.as_tensor(blank, dtype=images.dtype, device=images.device)
    movie = blank_t.expand(images.shape[1:]).expand(steps, *images.shape).clone()
    movie[on:stop] = images
    return movie


class TemporalModel(nn.Module):
    """Base class of every model neurofit unrolls.

    Subclasses set ``layers`` (the recordable layers, in feedforward order, named as in the paper),
    ``convention``, ``default_steps`` and ``input_size``, and implement :meth:`forward_sequence`.
    The output of ``forward_sequence`` holds every name in ``layers`` (and, for classifiers, ``"logits"``:
    ``[T, B, n_classes]``). Models with a per-image validity mask over time (adaptive halting) override
    :meth:`validity`.

    Example
    -------
    >>> class Tiny(TemporalModel):
    ...     layers = ("V1",)
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = nn.Conv2d(3, 4, 3, padding=1)
    ...     def forward_sequence(self, movie):
    ...         return {"V1": torch.stack([self.conv(frame) for frame in movie])}
    >>> out = Tiny().forward_sequence(torch.zeros(3, 2, 3, 8, 8))
    >>> out["V1"].shape
    torch.Size([3, 2, 4, 8, 8])
    """

    layers: tuple[str, ...] = ()
    convention: Convention = "sweep"
    default_steps: int = 1
    input_size: int = 32
    in_channels: int = 3
    #: the per-channel normalisation the model expects (images in [0, 1] are normalised with these)
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    #: the architecture's constructor arguments (set by subclasses in ``__init__``); recorded in
    #: checkpoints and cache keys, and enough to rebuild the model with its zoo factory
    config: dict[str, Any]

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unroll over ``movie`` ``[T, B, C, H, W]``; return ``{layer: Tensor[T, B, ...]}``."""
        raise NotImplementedError

    def forward(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_sequence(movie)

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Map images in ``[0, 1]`` (``[B, C, H, W]``) to model-input space."""
        mean = torch.as_tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.as_tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    def declared_arrival(self) -> dict[str, int]:
        """First image-driven step per layer for an image shown from step 0, by the convention."""
        if self.convention == "biological":
            return {layer: k for k, layer in enumerate(self.layers)}
        return dict.fromkeys(self.layers, 0)

    def steps_per_layer(self, steps: int | None = None) -> dict[str, int]:
        """Length of each layer's time axis in ``forward_sequence`` for a movie of ``steps`` frames.

        Every layer shares the movie's length unless a model says otherwise: CORnet-S and hooked modules
        that unroll themselves yield one entry per call of each area (CORnet-S: V2 2, V4 4, IT 2 per
        frame), which a ``table`` time mapping places on the recording's bins.

        Example
        -------
        >>> class One(TemporalModel):
        ...     layers = ("V1", "IT")
        >>> One().steps_per_layer(3)
        {'V1': 3, 'IT': 3}
        """
        steps = self.default_steps if steps is None else steps
        return dict.fromkeys(self.layers, steps)

    def time_map(self, steps: int | None = None, on: int = 0, off: int | None = None,
                 step_ms: float = 10.0, t0_ms: float = 0.0) -> TimeMap:
        """The TimeMap of an unroll of ``steps`` steps with the image on from ``on`` to ``off``.

        Example
        -------
        >>> class Two(TemporalModel):
        ...     layers = ("V1", "V2")
        ...     convention = "biological"
        >>> Two().time_map(steps=4).first_driven
        {'V1': 0, 'V2': 1}
        """
        steps = self.default_steps if steps is None else steps
        arrival = {layer: on + k for layer, k in self.declared_arrival().items()}
        return TimeMap(steps=steps, first_driven=arrival, step_ms=step_ms, t0_ms=t0_ms,
                       onset_step=on, offset_step=off, convention=self.convention)

    def validity(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Per-image validity ``[T, B]`` (bool) of the last unroll, or ``None`` when every step is valid."""
        return None
