"""Recordings and stimulus sets: the data contract, NetCDF IO, manifests, converters, synthetic default.

The names below are imported on first use, so that importing the package (e.g. for the command line)
imports neither xarray nor torch.
"""

from __future__ import annotations

from neurofit._lazy import lazy_exports

_PUBLIC = {
    "StimulusSet": "neurofit.data.stimuli",
    "average_repetitions": "neurofit.data.recording",
    "bin_spikes": "neurofit.data.recording",
    "expected_rates": "neurofit.data.synthetic",
    "generate_synthetic_ventral": "neurofit.data.synthetic",
    "hidden_features": "neurofit.data.synthetic",
    "make_recording": "neurofit.data.recording",
    "read_recording": "neurofit.data.io",
    "read_stimulus_set": "neurofit.data.stimuli",
    "select": "neurofit.data.recording",
    "trial_array": "neurofit.data.recording",
    "validate": "neurofit.data.recording",
    "write_recording": "neurofit.data.io",
    "write_stimulus_set": "neurofit.data.stimuli",
}


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)


__all__ = sorted(_PUBLIC)
