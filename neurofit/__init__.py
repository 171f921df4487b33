"""neurofit: score vision models, above all ConvRNNs, against visual-cortex recordings.

The public API is re-exported here lazily (importing :mod:`neurofit` does not import torch):

>>> import neurofit
>>> neurofit.__version__
'0.1.0'
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> "module:attribute"; resolved on first access.
_PUBLIC: dict[str, str] = {
    "NeurofitError": "neurofit.errors:NeurofitError",
    "validate": "neurofit.data.recording:validate",
    "make_recording": "neurofit.data.recording:make_recording",
    "average_repetitions": "neurofit.data.recording:average_repetitions",
    "read_recording": "neurofit.data.io:read_recording",
    "write_recording": "neurofit.data.io:write_recording",
    "StimulusSet": "neurofit.data.stimuli:StimulusSet",
    "load_dataset": "neurofit.data.fetch:load_dataset",
    "fetch_dataset": "neurofit.data.fetch:fetch_dataset",
    "verify_dataset": "neurofit.data.fetch:verify_dataset",
    "list_datasets": "neurofit.data.fetch:list_datasets",
    "generate_synthetic_ventral": "neurofit.data.synthetic:generate_synthetic_ventral",
    "convert_brainio": "neurofit.data.loaders.brainio:convert_brainio",
    "load_model": "neurofit.models.checkpoint:load_model",
    "wrap": "neurofit.models.hooks:wrap",
    "wrap_static": "neurofit.models.hooks:wrap_static",
    "probe_arrival": "neurofit.models.probe:probe_arrival",
    "extract_activations": "neurofit.extract.extract:extract_activations",
    "ActivationSet": "neurofit.extract.activations:ActivationSet",
    "train_model": "neurofit.models.train:train_model",
    "report": "neurofit.report:report",
    "load_benchmark": "neurofit.scoring.benchmark:load_benchmark",
    "score": "neurofit.scoring.score:score",
    "compare": "neurofit.stats.compare:compare",
    "DaskRunner": "neurofit.runners.dask_runner:DaskRunner",
    "score_models": "neurofit.runners.multi:score_models",
    "analyze_dynamics": "neurofit.analysis.dynamics:analyze_dynamics",
}


def __getattr__(name: str) -> Any:
    target = _PUBLIC.get(name)
    if target is None:
        raise AttributeError(f"module 'neurofit' has no attribute {name!r}")
    module_name, attr = target.split(":")
    value = getattr(importlib.import_module(module_name), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])


__all__ = ["__version__", *_PUBLIC]
