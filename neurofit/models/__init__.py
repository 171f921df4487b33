"""Models: the TemporalModel contract, the hook adapter, arrival probing, checkpoints and the zoo.

Importing this package turns on flushing of denormal floats on CPU (:func:`flush_denormals`): gated
recurrent cells whose states decay towards zero run up to 20x slower on denormals, and flushing them
changes results by less than the smallest normal float32 (1.2e-38).

Example
-------
>>> from neurofit.models import load_model, probe_arrival
>>> probe_arrival(load_model("cornet_rt", width=8), "IT", steps=5)
3
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from neurofit.models.base import TemporalModel, TimeMap, present
from neurofit.models.checkpoint import file_sha256, load_model, save_checkpoint
from neurofit.models.hooks import HookedModel, wrap, wrap_static
from neurofit.models.probe import check_arrival, probe_arrival

if TYPE_CHECKING:
    import pandas


def flush_denormals() -> bool:
    """Flush denormal floats to zero on CPU; returns whether the CPU supports it (x86 with SSE3).

    Example
    -------
    >>> flush_denormals() in (True, False)
    True
    """
    return bool(torch.set_flush_denormal(True))


flush_denormals()


def list_models() -> pandas.DataFrame:
    """Every zoo model with parameter count, convention, default steps and layers.

    Lazy twin of :func:`neurofit.models.commands.list_models` (importing it imports pandas).
    """
    from neurofit.models.commands import list_models as _list_models

    return _list_models()


__all__ = [
    "HookedModel", "TemporalModel", "TimeMap", "check_arrival", "file_sha256", "flush_denormals",
    "list_models", "load_model", "present", "probe_arrival", "save_checkpoint", "wrap", "wrap_static",
]
