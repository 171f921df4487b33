"""Time mapping policies: which model (layer, step) features stand for each recording time bin.

A model unrolled for ``T`` steps has, per layer, one response per step; step ``t`` covers
``[t0 + t * dt, t0 + (t + 1) * dt)`` ms after stimulus onset (:class:`~neurofit.models.base.TimeMap`).
A recording has bins ``[start, end)``. A policy turns the two into, for every bin, a list of
:class:`FeatureRef` ``(layer, step, weight)``; a bin's features are the weighted sum of those
``(layer, step)`` feature matrices. The five policies (DESIGN.md, "Models"):

* ``one_to_one``: the bin is exactly one step's window (bins and steps of the same width, aligned);
* ``table``: a per-layer table ``{step: (start_ms, end_ms)}`` (Brain-Score's CORnet commitments); each bin
  takes the step whose start is nearest to the bin's start;
* ``portion``: the overlap-weighted average of the steps that cover the bin;
* ``constant``: one response (a feedforward model's, ``T = 1``) used for every bin;
* ``graded``: successive feedforward layers stand for successive bins.

Steps before a layer's arrival (``TimeMap.first_driven``) carry no image-driven signal and are never
used: a bin that only such steps would cover is *unmapped* (an empty list, scored as NaN) and the reason is
kept in :attr:`BinMapping.skipped`. A layer that is never driven within the unroll is an error.

Every function here is pure: no model is run, nothing is read or written.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from neurofit.errors import NeurofitError
from neurofit.models.base import TimeMap

POLICIES = ("one_to_one", "table", "portion", "constant", "graded")
Bin = tuple[float, float]
_EPS = 1e-9


@dataclass(frozen=True)
class FeatureRef:
    """One term of a bin's features: ``weight`` times the features of ``layer`` at ``step``."""

    layer: str
    step: int
    weight: float = 1.0


@dataclass(frozen=True)
class BinMapping:
    """The features each recording bin uses under one policy.

    Attributes
    ----------
    policy : str
    bins : tuple of (start_ms, end_ms)
    refs : tuple, one tuple of :class:`FeatureRef` per bin (empty: the bin is unmapped)
    skipped : tuple of str
        Why bins are unmapped (one message per unmapped bin).
    options : dict
        The policy's parameters (offset, table, step...), recorded with every result.
    """

    policy: str
    bins: tuple[Bin, ...]
    refs: tuple[tuple[FeatureRef, ...], ...]
    skipped: tuple[str, ...] = ()
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def mapped(self) -> list[bool]:
        """Whether each bin has features."""
        return [bool(r) for r in self.refs]

    @property
    def layers(self) -> list[str]:
        """The layers used, in order of first use."""
        seen: dict[str, None] = {}
        for refs in self.refs:
            for ref in refs:
                seen.setdefault(ref.layer, None)
        return list(seen)

    def describe(self) -> str:
        """One line per bin: ``start-end ms: layer@step (weight) + ...`` (or why it is unmapped).

        Example
        -------
        >>> tm = TimeMap(steps=2, first_driven={"IT": 0})
        >>> print(one_to_one([(0, 10), (10, 20)], "IT", tm).describe())
        0-10 ms: IT@0
        10-20 ms: IT@1
        """
        lines = []
        for (start, end), refs in zip(self.bins, self.refs):
            if refs:
                terms = " + ".join(
                    f"{r.layer}@{r.step}" + ("" if abs(r.weight - 1.0) < _EPS else f" ({r.weight:.3g})") for r in refs
                )
            else:
                terms = "unmapped"
            lines.append(f"{start:g}-{end:g} ms: {terms}")
        return "\n".join(lines)

    def to_attrs(self) -> dict[str, Any]:
        """A JSON-able record of the mapping for a ScoreSet's attrs."""
        return {
            "policy": self.policy,
            "options": self.options,
            "bins": [[s, e] for s, e in self.bins],
            "refs": [[[r.layer, r.step, r.weight] for r in refs] for refs in self.refs],
            "skipped": list(self.skipped),
        }


def _check_bins(bins: Sequence[Sequence[float]]) -> tuple[Bin, ...]:
    out = []
    for i, pair in enumerate(bins):
        if len(pair) != 2:
            raise NeurofitError(f"time bin {i} must be (start_ms, end_ms), got {pair!r}")
        start, end = float(pair[0]), float(pair[1])
        if not end > start:
            raise NeurofitError(f"time bin {i} ({start:g}-{end:g} ms) must end after it starts")
        out.append((start, end))
    if not out:
        raise NeurofitError("no time bins to map")
    return tuple(out)


def _arrival(time_map: TimeMap, layer: str, n_steps: int) -> int:
    """The layer's first driven step; an error when it is never driven within ``n_steps``."""
    if layer not in time_map.first_driven:
        raise NeurofitError(
            f"layer {layer!r} is not in the model's TimeMap; its layers: {', '.join(time_map.first_driven)}"
        )
    first = time_map.first_driven[layer]
    if first is None or first >= n_steps:
        raise NeurofitError(
            f"layer {layer!r} never receives image-driven input within the {n_steps} steps unrolled "
            f"(first driven step: {first}); unroll more steps or choose another layer"
        )
    return int(first)


def _layer_steps(time_map: TimeMap, n_steps: int | None) -> int:
    return int(time_map.steps if n_steps is None else n_steps)


def one_to_one(
    bins: Sequence[Sequence[float]],
    layer: str,
    time_map: TimeMap,
    *,
    offset_ms: float = 0.0,
    n_steps: int | None = None,
) -> BinMapping:
    """Each bin is one model step: step ``t`` covers ``[t0 + offset + t * dt, t0 + offset + (t + 1) * dt)``.

    Bins must have the step's width and start on a step edge (otherwise use ``portion``). Bins outside
    the unroll or before the layer's arrival are unmapped.

    Parameters
    ----------
    bins : sequence of (start_ms, end_ms)
    layer : str
    time_map : TimeMap
    offset_ms : float
        Shift of the model's time axis (a committed latency offset).
    n_steps : int, optional
        Length of the layer's time axis (default ``time_map.steps``).

    Returns
    -------
    BinMapping

    Example
    -------
    >>> tm = TimeMap(steps=4, first_driven={"IT": 1})
    >>> one_to_one([(0, 10), (10, 20), (20, 30)], "IT", tm, offset_ms=0).refs
    ((), (FeatureRef(layer='IT', step=1, weight=1.0),), (FeatureRef(layer='IT', step=2, weight=1.0),))
    """
    bins = _check_bins(bins)
    steps = _layer_steps(time_map, n_steps)
    first = _arrival(time_map, layer, steps)
    dt = time_map.step_ms
    t0 = time_map.t0_ms + offset_ms
    refs: list[tuple[FeatureRef, ...]] = []
    skipped = []
    for start, end in bins:
        if abs((end - start) - dt) > _EPS * max(1.0, dt):
            raise NeurofitError(
                f"time bin {start:g}-{end:g} ms is not one {dt:g} ms model step wide; the one_to_one policy "
                "needs bins as wide as the model's steps: use mapping policy 'portion'"
            )
        pos = (start - t0) / dt
        step = round(pos)
        if abs(pos - step) > 1e-6:
            raise NeurofitError(
                f"time bin {start:g}-{end:g} ms does not start on a model step edge (steps start at "
                f"{t0:g} + k * {dt:g} ms); use mapping policy 'portion'"
            )
        if step < 0 or step >= steps:
            refs.append(())
            skipped.append(f"{start:g}-{end:g} ms: outside the {steps} steps of {layer!r} (step {step})")
        elif step < first:
            refs.append(())
            skipped.append(f"{start:g}-{end:g} ms: step {step} is before {layer!r} is driven (step {first})")
        else:
            refs.append((FeatureRef(layer, int(step)),))
    return BinMapping("one_to_one", bins, tuple(refs), tuple(skipped),
                      {"layer": layer, "offset_ms": float(offset_ms), "step_ms": dt, "t0_ms": time_map.t0_ms})


def table(
    bins: Sequence[Sequence[float]],
    layer: str,
    time_map: TimeMap,
    step_table: Mapping[int, float | Sequence[float]],
    *,
    n_steps: int | None = None,
) -> BinMapping:
    """Each bin takes the step whose start (from ``step_table``) is nearest to the bin's start.

    This is Brain-Score's temporal commitment for CORnet models: a per-layer table of the window each
    model step stands for (``{step: (start_ms, end_ms)}`` or ``{step: start_ms}``). Only driven steps are
    candidates; ties go to the earlier step.

    Example
    -------
    >>> tm = TimeMap(steps=2, first_driven={"IT": 0})
    >>> m = table([(70, 80), (150, 160), (250, 260)], "IT", tm, {0: (100, 200), 1: (200, 300)})
    >>> [refs[0].step for refs in m.refs]
    [0, 0, 1]
    """
    bins = _check_bins(bins)
    steps = _layer_steps(time_map, n_steps)
    first = _arrival(time_map, layer, steps)
    starts: dict[int, float] = {}
    for key, window in step_table.items():
        step = int(key)
        start = float(window) if isinstance(window, (int, float)) else float(window[0])
        if not 0 <= step < steps:
            raise NeurofitError(f"time table for layer {layer!r} names step {step}, but the layer has {steps} steps")
        starts[step] = start
    candidates = sorted(s for s in starts if s >= first)
    if not candidates:
        raise NeurofitError(
            f"time table for layer {layer!r} lists only steps before the layer is driven (step {first})"
        )
    refs = []
    for start, _ in bins:
        best = min(candidates, key=lambda s: (abs(starts[s] - start), s))
        refs.append((FeatureRef(layer, best),))
    return BinMapping("table", bins, tuple(refs), (),
                      {"layer": layer, "table": {str(k): v for k, v in sorted(starts.items())}})


def portion(
    bins: Sequence[Sequence[float]],
    layer: str,
    time_map: TimeMap,
    *,
    offset_ms: float = 0.0,
    n_steps: int | None = None,
) -> BinMapping:
    """Each bin is the average of the driven steps that overlap it, weighted by overlap in ms.

    Example
    -------
    >>> tm = TimeMap(steps=3, first_driven={"V4": 0})
    >>> [(r.step, r.weight) for r in portion([(5, 20)], "V4", tm).refs[0]]
    [(0, 0.3333333333333333), (1, 0.6666666666666666)]
    """
    bins = _check_bins(bins)
    steps = _layer_steps(time_map, n_steps)
    first = _arrival(time_map, layer, steps)
    dt = time_map.step_ms
    t0 = time_map.t0_ms + offset_ms
    refs: list[tuple[FeatureRef, ...]] = []
    skipped = []
    for start, end in bins:
        lo = max(first, math.floor((start - t0) / dt))
        hi = min(steps - 1, math.ceil((end - t0) / dt))
        terms = []
        for step in range(lo, hi + 1):
            s0 = t0 + step * dt
            overlap = min(end, s0 + dt) - max(start, s0)
            if overlap > _EPS:
                terms.append((step, overlap))
        total = sum(w for _, w in terms)
        if not terms:
            refs.append(())
            skipped.append(f"{start:g}-{end:g} ms: no driven step of {layer!r} overlaps it")
            continue
        refs.append(tuple(FeatureRef(layer, step, w / total) for step, w in terms))
    return BinMapping("portion", bins, tuple(refs), tuple(skipped),
                      {"layer": layer, "offset_ms": float(offset_ms), "step_ms": dt, "t0_ms": time_map.t0_ms})


def constant(
    bins: Sequence[Sequence[float]],
    layer: str,
    time_map: TimeMap,
    *,
    step: int | None = None,
    n_steps: int | None = None,
) -> BinMapping:
    """One response for every bin: a feedforward model's (``T = 1``) or, by default, the last step's.

    Example
    -------
    >>> tm = TimeMap(steps=1, first_driven={"IT": 0})
    >>> constant([(0, 10), (10, 20)], "IT", tm).refs
    ((FeatureRef(layer='IT', step=0, weight=1.0),), (FeatureRef(layer='IT', step=0, weight=1.0),))
    """
    bins = _check_bins(bins)
    steps = _layer_steps(time_map, n_steps)
    first = _arrival(time_map, layer, steps)
    chosen = steps - 1 if step is None else int(step)
    if not 0 <= chosen < steps:
        raise NeurofitError(f"constant mapping step {chosen} is outside the {steps} steps of layer {layer!r}")
    if chosen < first:
        raise NeurofitError(
            f"constant mapping step {chosen} of layer {layer!r} is before the layer is driven (step {first})"
        )
    ref = (FeatureRef(layer, chosen),)
    return BinMapping("constant", bins, tuple(ref for _ in bins), (), {"layer": layer, "step": chosen})


def graded(
    bins: Sequence[Sequence[float]],
    layers: Sequence[str],
    time_map: TimeMap,
    *,
    offset_ms: float = 0.0,
    layer_ms: float | None = None,
    step: int | None = None,
    n_steps: int | None = None,
) -> BinMapping:
    """Successive layers stand for successive bins: layer ``j`` covers ``[t0 + offset + j * w, ... + w)``.

    ``w`` is ``layer_ms`` (default the model's step, 10 ms: one synapse per bin). Bins after the last layer's
    window keep the last layer; bins before ``t0 + offset`` are unmapped. Each layer contributes its
    response at ``step`` (default its last step; ``0`` for a feedforward model), weighted by its overlap
    with the bin.

    Example
    -------
    >>> tm = TimeMap(steps=1, first_driven={"V1": 0, "V2": 0})
    >>> m = graded([(0, 10), (10, 20), (20, 30)], ["V1", "V2"], tm)
    >>> [refs[0].layer for refs in m.refs]
    ['V1', 'V2', 'V2']
    """
    bins = _check_bins(bins)
    layers = list(layers)
    if not layers:
        raise NeurofitError("the graded mapping needs at least one layer")
    steps = _layer_steps(time_map, n_steps)
    chosen = steps - 1 if step is None else int(step)
    for layer in layers:
        first = _arrival(time_map, layer, steps)
        if chosen < first or not 0 <= chosen < steps:
            raise NeurofitError(
                f"graded mapping step {chosen} of layer {layer!r} is not a driven step (driven from {first}, "
                f"{steps} steps)"
            )
    width = float(time_map.step_ms if layer_ms is None else layer_ms)
    t0 = time_map.t0_ms + offset_ms
    refs: list[tuple[FeatureRef, ...]] = []
    skipped = []
    for start, end in bins:
        weights: dict[str, float] = {}
        for j, layer in enumerate(layers):
            lo = t0 + j * width
            hi = math.inf if j == len(layers) - 1 else lo + width
            overlap = min(end, hi) - max(start, lo)
            if overlap > _EPS:
                weights[layer] = weights.get(layer, 0.0) + overlap
        total = sum(weights.values())
        if not weights:
            refs.append(())
            skipped.append(f"{start:g}-{end:g} ms: before the first layer's window (starts at {t0:g} ms)")
            continue
        refs.append(tuple(FeatureRef(layer, chosen, w / total) for layer, w in weights.items()))
    return BinMapping("graded", bins, tuple(refs), tuple(skipped),
                      {"layers": layers, "offset_ms": float(offset_ms), "layer_ms": width, "step": chosen})


def map_time(
    policy: str,
    bins: Sequence[Sequence[float]],
    layer: str | Sequence[str],
    time_map: TimeMap,
    **options: Any,
) -> BinMapping:
    """Apply the named policy (one of :data:`POLICIES`); ``options`` go to the policy's function.

    Example
    -------
    >>> tm = TimeMap(steps=1, first_driven={"IT": 0})
    >>> map_time("constant", [(70, 170)], "IT", tm).policy
    'constant'
    """
    if policy not in POLICIES:
        raise NeurofitError(f"unknown time mapping policy {policy!r}; valid policies: {', '.join(POLICIES)}")
    if policy == "graded":
        layers = [layer] if isinstance(layer, str) else list(layer)
        return graded(bins, layers, time_map, **options)
    if not isinstance(layer, str):
        raise NeurofitError(f"the {policy} policy maps one layer, got {list(layer)}")
    if policy == "table":
        if "step_table" not in options:
            raise NeurofitError("the table policy needs a step table ({step: (start_ms, end_ms)})")
        return table(bins, layer, time_map, **options)
    return {"one_to_one": one_to_one, "portion": portion, "constant": constant}[policy](
        bins, layer, time_map, **options
    )
