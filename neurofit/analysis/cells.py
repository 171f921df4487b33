"""The six local cells of Nayebi et al. (2018) inside one ConvRNN backbone, at matched parameter counts.

Nayebi, Bear, Kubilius, Kar, Ganguli, Sussillo, DiCarlo & Yamins (2018, NeurIPS) compare local recurrent
cells (vanilla RNN, LSTM, GRU, UGRNN, time-decay, reciprocal gated) placed in the same convolutional
backbone *at the same number of parameters*: a cell with more gates gets fewer channels. This module fixes
that comparison for neurofit's zoo ConvRNN (:class:`neurofit.models.zoo.convrnn.ConvRNN`): a feedforward
base (``conv1``, ``conv2``; default 16 and 32 channels) under cell layers of one width each (default two:
``conv3`` and ``conv4``), and finds for every cell the width whose trainable-parameter count is closest to
a target.

* :func:`cell_config`: the ConvRNN keyword arguments of one cell at one width (what ``neurofit train``
  takes as ``--arg`` values);
* :func:`parameter_count`: the trainable parameters of that model, counted on the built model;
* :func:`matched_widths`: per cell, the width closest to a parameter budget (by default the budget of the
  reciprocal gated cell at width 22, about 60 000 parameters).

The counts are exact (the model is built); a narrow cell's count grows with its width, so the closest width
is found by walking up the widths. The report ``reports/cells/`` trains and compares the six models of
:data:`MATCHED_WIDTHS`.

Example
-------
>>> widths = matched_widths()
>>> widths["rgc"], widths["vanilla"]
(22, 40)
>>> counts = [parameter_count(cell, width) for cell, width in widths.items()]
>>> max(counts) / min(counts) < 1.05
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from neurofit.errors import NeurofitError

#: the cells, in the order of the report's tables (the reciprocal gated cell, the reference, last)
CELL_ORDER: tuple[str, ...] = ("vanilla", "lstm", "gru", "ugrnn", "timedecay", "rgc")
#: channels of the feedforward layers below the cells (``conv1``, ``conv2``)
BASE_CHANNELS: tuple[int, ...] = (16, 32)
#: the reference cell and width whose parameter count the others are matched to
REFERENCE: tuple[str, int] = ("rgc", 22)
#: the width of each cell's layers at the reference's parameter count (:func:`matched_widths` at its defaults;
#: a test checks that they agree)
MATCHED_WIDTHS: dict[str, int] = {"vanilla": 40, "lstm": 18, "gru": 21, "ugrnn": 27, "timedecay": 63, "rgc": 22}


def cell_config(cell: str, width: int, *, base: Sequence[int] = BASE_CHANNELS, cell_layers: int = 2) -> dict[str, Any]:
    """ConvRNN keyword arguments: ``base`` feedforward layers, then ``cell_layers`` layers of ``cell`` at ``width``.

    The pooling is the ConvRNN's default (after ``conv1``, ``conv2`` and ``conv4``); the cells sit in the
    top ``cell_layers`` layers.

    Example
    -------
    >>> cell_config("gru", 21)
    {'cell': 'gru', 'channels': [16, 32, 21, 21], 'cell_layers': [3, 4]}
    """
    from neurofit.models.zoo._cells import CELLS

    if cell not in CELLS:
        raise NeurofitError(f"unknown cell {cell!r}; valid cells: {', '.join(CELL_ORDER)}")
    if int(width) < 1 or int(cell_layers) < 1:
        raise NeurofitError(f"width and cell_layers must be >= 1, got width={width}, cell_layers={cell_layers}")
    channels = [int(c) for c in base] + [int(width)] * int(cell_layers)
    return {"cell": cell, "channels": channels, "cell_layers": list(range(len(base) + 1, len(channels) + 1))}


def parameter_count(cell: str, width: int, *, base: Sequence[int] = BASE_CHANNELS, cell_layers: int = 2,
                    num_classes: int = 8, in_channels: int = 3, kernel_size: int = 3) -> int:
    """Trainable parameters of the ConvRNN of :func:`cell_config` (readout of ``num_classes`` included).

    Example
    -------
    >>> parameter_count("vanilla", 40)
    60296
    """
    from neurofit.models.zoo.convrnn import ConvRNN

    model = ConvRNN(**cell_config(cell, width, base=base, cell_layers=cell_layers), num_classes=num_classes,
                    in_channels=in_channels, kernel_size=kernel_size)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def matched_widths(target: int | None = None, cells: Sequence[str] = CELL_ORDER, *, max_width: int = 512,
                   **model: Any) -> dict[str, int]:
    """Per cell, the width whose :func:`parameter_count` is closest to ``target`` (ties: the narrower width).

    Parameters
    ----------
    target : int, optional
        The parameter budget (default: the count of :data:`REFERENCE`, the reciprocal gated cell at width 22).
    cells : sequence of str
        Cell kinds (:data:`CELL_ORDER`).
    max_width : int
        The widest width tried; a budget that needs more is an error.
    **model
        ``base``, ``cell_layers``, ``num_classes``, ``in_channels``, ``kernel_size`` of :func:`parameter_count`.

    Example
    -------
    >>> matched_widths(20000, ["vanilla", "lstm"])
    {'vanilla': 19, 'lstm': 7}
    """
    if target is None:
        target = parameter_count(*REFERENCE, **model)
    if int(target) < 1:
        raise NeurofitError(f"target must be a positive number of parameters, got {target}")
    out: dict[str, int] = {}
    for cell in cells:
        best, best_gap, width = 0, None, 1
        while width <= max_width:
            count = parameter_count(cell, width, **model)
            gap = abs(count - int(target))
            if best_gap is None or gap < best_gap:
                best, best_gap = width, gap
            if count >= target:  # the count grows with the width: wider is only further away
                break
            width += 1
        else:
            raise NeurofitError(f"the {cell} cell needs more than max_width={max_width} channels for {target} "
                                "parameters; raise max_width")
        out[cell] = best
    return out


def matched_counts(widths: Mapping[str, int] | None = None, **model: Any) -> dict[str, int]:
    """:func:`parameter_count` of every cell at its width (default :data:`MATCHED_WIDTHS`).

    Example
    -------
    >>> matched_counts({"rgc": 22})
    {'rgc': 59788}
    """
    return {cell: parameter_count(cell, width, **model) for cell, width in (widths or MATCHED_WIDTHS).items()}
