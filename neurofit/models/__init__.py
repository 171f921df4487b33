"""Models: the TemporalModel contract, the hook adapter, arrival probing, checkpoints and the zoo.

Importing any model code (:mod:`neurofit.models.base`) turns on flushing of denormal floats on CPU
(:func:`flush_denormals`): gated recurrent cells whose states decay towards zero run up to 20x slower on
denormals, and flushing them changes results by less than the smallest normal float32 (1.2e-38). The names
below are imported on first use, so that importing the package (e.g. for the command line) imports no torch.

Example
-------
>>> from neurofit.models import load_model, probe_arrival
>>> probe_arrival(load_model("cornet_rt", width=8), "IT", steps=5)
3
"""

from __future__ import annotations

from neurofit._lazy import lazy_exports

# public name -> module; resolved on first access, so that `neurofit models --help` imports no torch
_PUBLIC = {
    "HookOptions": "neurofit.models.hooks",
    "HookedModel": "neurofit.models.hooks",
    "TemporalModel": "neurofit.models.base",
    "TimeMap": "neurofit.models.base",
    "check_arrival": "neurofit.models.probe",
    "file_sha256": "neurofit.models.checkpoint",
    "flush_denormals": "neurofit.models.base",
    "load_model": "neurofit.models.checkpoint",
    "list_models": "neurofit.models.catalog",
    "present": "neurofit.models.base",
    "probe_arrival": "neurofit.models.probe",
    "save_checkpoint": "neurofit.models.checkpoint",
    "wrap": "neurofit.models.hooks",
    "wrap_static": "neurofit.models.hooks",
}


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)

__all__ = sorted(_PUBLIC)
