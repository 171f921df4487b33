"""Shallow ConvRNNs of Nayebi et al. (2018): a feedforward backbone with local recurrent cells in its upper layers.

Paper
-----
Nayebi, Bear, Kubilius, Kar, Ganguli, Sussillo, DiCarlo & Yamins (2018). Task-driven convolutional
recurrent models of the visual system. NeurIPS 31. (Cells and unrolling as in the authors' ``convrnns``
/ ``tnn`` code; the longer treatment is Nayebi et al. 2022, Neural Computation 34(8).)

Architecture (a small, configurable version of the paper's 6-layer shallow base model)
--------------------------------------------------------------------------------------
Layers ``conv1 .. convN`` (default N = 6, widths ``(16, 32, 32, 32, 32, 32)``, 3x3 kernels, 2x2 max-pool
after ``conv1``, ``conv2`` and ``conv4``; at 32 px the maps are 16, 8, 8, 4, 4, 4 px after pooling). A
layer without a cell computes ``ReLU(W * input)``; the layers in ``cell_layers`` (default the upper three,
``conv4 .. conv6``) replace that with a local recurrent cell of one kind (``vanilla``, ``lstm``, ``gru``,
``ugrnn``, ``timedecay`` or ``rgc``, the reciprocal gated cell; equations in
:mod:`neurofit.models.zoo._cells`), whose own input convolution is the layer's feedforward convolution.
Pooling follows the cell, so a cell runs at the resolution of its input. Long-range feedback edges
``(src, dst)`` (1-based layer numbers, ``src > dst``) resize ``conv{src}``'s output to the size of
``conv{dst}``'s feedforward input (bilinear) and concatenate it along channels (the "harbor" of the authors' code).
``logits_t`` is a linear readout of the global average of the last layer at step ``t``.

The unroll (``convention = "biological"``)
------------------------------------------
Every inter-area connection costs one step: layer ``k`` (0-based) at step ``t`` reads the input frame
``movie[t]`` (``k = 0``) or layer ``k - 1``'s output at step ``t - 1``; feedback from ``src`` is also read
at ``t - 1``; a cell's own state is from ``t - 1``. Before a layer's first drive its input is zero, so
layer ``k`` first carries image-driven signal at step ``k`` exactly (``declared_arrival``), which the
tests measure by comparing two images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neurofit.errors import NeurofitError
from neurofit.models.zoo._blocks import RecurrentStack, check_steps, check_widths
from neurofit.models.zoo._cells import CELLS, check_movie, make_cell

_DEFAULT_CHANNELS = (16, 32, 32, 32, 32, 32)


def _default_pools(n: int) -> tuple[int, ...]:
    return tuple(k for k in (1, 2, 4) if k <= n)


def _default_cell_layers(n: int) -> tuple[int, ...]:
    return tuple(range(n // 2 + 1, n + 1))


class ConvRNN(RecurrentStack):
    """A Nayebi-2018 shallow ConvRNN unrolled with the biological convention.

    Parameters
    ----------
    channels : sequence of int
        Widths of ``conv1 .. convN``.
    kernel_size : int
        Kernel of every feedforward and cell convolution.
    pool_after : sequence of int, optional
        1-based layers followed by a 2x2 max-pool (default: those of 1, 2, 4 that exist).
    cell : str
        Cell kind of the recurrent layers: ``vanilla``, ``lstm``, ``gru``, ``ugrnn``, ``timedecay``, ``rgc``.
    cell_layers : sequence of int, optional
        1-based layers that hold a cell (default: the upper half, ``conv4 .. conv6`` of six; empty: the
        feedforward backbone, unrolled biologically).
    feedback : sequence of (src, dst)
        Long-range feedback edges, 1-based, ``src > dst``, read at ``t - 1``.
    steps, num_classes, input_size, in_channels : int
        Default unroll length, readout classes, image side in pixels, input channels.

    Example
    -------
    >>> model = ConvRNN(cell="rgc", feedback=[(6, 4)], steps=7)
    >>> out = model.forward_sequence(torch.zeros(7, 2, 3, 32, 32))
    >>> out["conv6"].shape, out["logits"].shape
    (torch.Size([7, 2, 32, 4, 4]), torch.Size([7, 2, 10]))
    >>> model.time_map().first_driven["conv6"]
    5
    """

    convention = "biological"

    def __init__(
        self,
        channels: Sequence[int] = _DEFAULT_CHANNELS,
        kernel_size: int = 3,
        pool_after: Sequence[int] | None = None,
        cell: str = "rgc",
        cell_layers: Sequence[int] | None = None,
        feedback: Sequence[Sequence[int]] = (),
        steps: int = 10,
        num_classes: int = 10,
        input_size: int = 32,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        channels = check_widths("ConvRNN", channels)
        n = len(channels)
        if cell not in CELLS:
            raise NeurofitError(f"ConvRNN cell must be one of {sorted(CELLS)}, got {cell!r}")
        pool_after = tuple(sorted(int(k) for k in (_default_pools(n) if pool_after is None else pool_after)))
        cell_layers = tuple(sorted(int(k) for k in (
            _default_cell_layers(n) if cell_layers is None else cell_layers)))
        feedback = tuple((int(src), int(dst)) for src, dst in feedback)
        for what, ks in (("pool_after", pool_after), ("cell_layers", cell_layers)):
            if any(not 1 <= k <= n for k in ks):
                raise NeurofitError(f"ConvRNN {what} {ks} must name layers 1..{n} (1-based)")
        for src, dst in feedback:
            if not 1 <= dst < src <= n:
                raise NeurofitError(
                    f"ConvRNN feedback edge ({src}, {dst}) must go from a higher to a lower layer: "
                    f"1 <= dst < src <= {n}"
                )
        check_steps("ConvRNN", steps)
        if input_size < 2 ** len(pool_after):
            raise NeurofitError(f"ConvRNN input_size {input_size} is too small for {len(pool_after)} poolings")
        self._record({
            "channels": list(channels), "kernel_size": kernel_size, "pool_after": list(pool_after),
            "cell": cell, "cell_layers": list(cell_layers), "feedback": [list(e) for e in feedback],
            "steps": steps, "num_classes": num_classes, "input_size": input_size, "in_channels": in_channels,
        }, [f"conv{k + 1}" for k in range(n)], steps=steps, input_size=input_size, in_channels=in_channels)
        self.channels = channels
        self.pool_after = pool_after
        self.cell_layers = cell_layers
        self.feedback = feedback
        self.blocks = nn.ModuleDict()
        for k, name in enumerate(self.layers):
            c_in = (in_channels if k == 0 else channels[k - 1]) + sum(
                channels[src - 1] for src, dst in feedback if dst == k + 1
            )
            if k + 1 in cell_layers:
                self.blocks[name] = make_cell(cell, c_in, channels[k], kernel_size)
            else:
                self.blocks[name] = nn.Conv2d(c_in, channels[k], kernel_size, padding=kernel_size // 2)
        self.readout = nn.Linear(channels[-1], num_classes)

    def _output_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        sizes = []
        for k in range(len(self.layers)):
            if k + 1 in self.pool_after:
                height, width = height // 2, width // 2
            sizes.append((height, width))
        return sizes

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unroll over ``movie`` ``[T, B, C, H, W]`` (biological convention).

        Returns ``{"conv1": [T, B, C1, h1, w1], ..., "convN": [T, B, CN, hN, wN],
        "logits": [T, B, num_classes]}``; each layer's entry is its output after pooling (what the next
        layer reads).
        """
        check_movie(movie, self.in_channels, type(self).__name__)
        steps, batch = movie.shape[:2]
        sizes = self._output_sizes(*movie.shape[-2:])
        if min(min(s) for s in sizes) < 1:
            raise NeurofitError(f"ConvRNN frames {tuple(movie.shape[-2:])} are too small for its poolings")
        # outputs at t - 1: zero before the first step, so layer k is first driven at step k
        previous = [movie.new_zeros(batch, c, *s) for c, s in zip(self.channels, sizes)]
        states: dict[str, tuple[torch.Tensor, ...]] = {}
        outputs = self._new_outputs()
        for t in range(steps):
            current = []
            for k, name in enumerate(self.layers):
                ff = movie[t] if k == 0 else previous[k - 1]
                fb = [F.interpolate(previous[src - 1], size=ff.shape[-2:], mode="bilinear", align_corners=False)
                      for src, dst in self.feedback if dst == k + 1]
                x = torch.cat([ff, *fb], dim=1) if fb else ff
                block = self.blocks[name]
                if k + 1 in self.cell_layers:
                    if name not in states:
                        states[name] = block.init_state(x)
                    y, states[name] = block(x, states[name])
                else:
                    y = F.relu(block(x))
                if k + 1 in self.pool_after:
                    y = F.max_pool2d(y, 2)
                current.append(y)
                outputs[name].append(y)
            outputs["logits"].append(self._logits(current[-1]))
            previous = current
        return self._stacked(outputs)


def _build(cell: str, kwargs: dict[str, Any]) -> ConvRNN:
    if kwargs.get("cell", cell) != cell:
        raise NeurofitError(
            f"this ConvRNN factory builds cell={cell!r} but got cell={kwargs['cell']!r}; use convrnn_"
            f"{kwargs['cell']} or ConvRNN directly"
        )
    return ConvRNN(**{**kwargs, "cell": cell})


def convrnn_vanilla(**kwargs: Any) -> ConvRNN:
    """ConvRNN with vanilla ReLU RNN cells in ``cell_layers``.

    Example
    -------
    >>> convrnn_vanilla().config["cell"]
    'vanilla'
    """
    return _build("vanilla", kwargs)


def convrnn_lstm(**kwargs: Any) -> ConvRNN:
    """ConvRNN with convolutional LSTM cells.

    Example
    -------
    >>> type(convrnn_lstm().blocks["conv4"]).__name__
    'ConvLSTMCell'
    """
    return _build("lstm", kwargs)


def convrnn_gru(**kwargs: Any) -> ConvRNN:
    """ConvRNN with convolutional GRU cells.

    Example
    -------
    >>> type(convrnn_gru().blocks["conv5"]).__name__
    'ConvGRUCell'
    """
    return _build("gru", kwargs)


def convrnn_ugrnn(**kwargs: Any) -> ConvRNN:
    """ConvRNN with update-gate RNN cells (Collins et al. 2017).

    Example
    -------
    >>> type(convrnn_ugrnn().blocks["conv6"]).__name__
    'ConvUGRNNCell'
    """
    return _build("ugrnn", kwargs)


def convrnn_timedecay(**kwargs: Any) -> ConvRNN:
    """ConvRNN with time-decay cells (learned per-channel time constants).

    Example
    -------
    >>> type(convrnn_timedecay().blocks["conv4"]).__name__
    'ConvTimeDecayCell'
    """
    return _build("timedecay", kwargs)


def convrnn_rgc(**kwargs: Any) -> ConvRNN:
    """ConvRNN with reciprocal gated cells, no long-range feedback.

    Example
    -------
    >>> convrnn_rgc().config["feedback"]
    []
    """
    return _build("rgc", kwargs)


def convrnn_rgc_feedback(**kwargs: Any) -> ConvRNN:
    """ConvRNN with reciprocal gated cells and long-range feedback.

    Without an explicit ``feedback``, one edge runs from the last layer to the first cell layer
    (``conv6 -> conv4`` by default), read at ``t - 1``.

    Example
    -------
    >>> convrnn_rgc_feedback().config["feedback"]
    [[6, 4]]
    """
    if "feedback" not in kwargs:
        n = len(kwargs.get("channels", _DEFAULT_CHANNELS))
        cell_layers = kwargs.get("cell_layers")
        first_cell = min(_default_cell_layers(n) if cell_layers is None else cell_layers, default=n)
        if first_cell >= n:
            raise NeurofitError(
                "convrnn_rgc_feedback needs a cell layer below the last layer to receive feedback; pass "
                "feedback=[(src, dst), ...] explicitly"
            )
        kwargs = {**kwargs, "feedback": [(n, first_cell)]}
    if not kwargs["feedback"]:
        raise NeurofitError("convrnn_rgc_feedback got feedback=[]; use convrnn_rgc for the model without it")
    return _build("rgc", kwargs)
