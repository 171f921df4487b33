"""Step 3 of a score: the activations to score, extracted from a model or taken as given.

A model is shown the benchmark's stimuli on a gray screen at its own visual angle and unrolled for enough
10 ms steps to cover the benchmark's last bin (one step for a feedforward model); its activations are reduced
(:data:`neurofit.extract.reduce.DEFAULT_REDUCTION` unless told otherwise) and cached by content hash.
Precomputed features are scored as they are.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from neurofit.errors import NeurofitError
from neurofit.extract.activations import ActivationSet
from neurofit.extract.extract import extract_activations
from neurofit.extract.reduce import parse_reduction, reduction_spec
from neurofit.scoring.benchmark import Benchmark
from neurofit.scoring.data import PreparedData
from neurofit.scoring.resolve import _activation_hash, _needed_steps


@dataclass
class Extracted:
    """The activations of a run, how many steps were unrolled, their cache key and the reduction used."""

    acts: ActivationSet
    unroll: int
    activation_key: str
    reduction: dict[str, Any]

    @property
    def position(self) -> dict[str, int]:
        """Row of each stimulus in the activations."""
        return {sid: i for i, sid in enumerate(self.acts.stimulus_ids)}


def extract(resolved: Any, bench: Benchmark, data: PreparedData, *, steps: int | None, reduction: Any,
            device: str | None, cache: bool, progress: bool | None) -> Extracted:
    """The activations of every stimulus of ``data``: extracted from the model ``resolved``, or its features."""
    if isinstance(resolved, ActivationSet):
        if not (isinstance(reduction, str) and reduction == "default"):
            raise NeurofitError("reduction applies to a model's activations as they are extracted; these are "
                                "precomputed features: reduce them before passing them")
        acts = resolved
        reduction_attr = dict(acts.attrs.get("reduction") or {"method": "none by neurofit (precomputed features)"})
        unroll = max(acts.n_steps(layer) for layer in acts.layers)
        activation_key = acts.attrs.get("cache_key", "") or _activation_hash(acts)
    else:
        feedforward = int(getattr(resolved, "default_steps", 1)) == 1
        unroll = int(steps) if steps is not None else (1 if feedforward else _needed_steps(bench))
        red = parse_reduction(reduction) if isinstance(reduction, str) else reduction
        shown = dataclasses.replace(data.stimuli.subset(data.all_ids), degrees=bench.degrees, _sha256=None)
        acts = extract_activations(resolved, shown.place_on_screen(bench.model_degrees), steps=unroll,
                                   reduction=red, device=device, cache=cache, progress=progress)
        activation_key = str(acts.attrs.get("cache_key", ""))
        reduction_attr = dict(acts.attrs.get("reduction") or reduction_spec(red))
    missing = [sid for sid in data.all_ids if sid not in set(acts.stimulus_ids)]
    if missing:
        source = str(acts.attrs.get("source", "")) if isinstance(resolved, ActivationSet) else ""
        raise NeurofitError(f"stimulus_id {missing[0]!r} of the recording is not in the features"
                            f"{f' {source}' if source else ''} ({len(missing)} of {len(data.all_ids)} recorded "
                            "stimuli missing): give features for every stimulus of the benchmark")
    return Extracted(acts, unroll, activation_key, reduction_attr)
