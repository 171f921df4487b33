"""Recordings and stimulus sets: the data contract, NetCDF IO, manifests, converters, synthetic default."""

from neurofit.data.io import read_recording, write_recording
from neurofit.data.recording import (
    average_repetitions,
    bin_spikes,
    make_recording,
    select,
    trial_array,
    validate,
)
from neurofit.data.stimuli import StimulusSet, read_stimulus_set, write_stimulus_set
from neurofit.data.synthetic import expected_rates, generate_synthetic_ventral, hidden_features

__all__ = [
    "StimulusSet",
    "average_repetitions",
    "bin_spikes",
    "expected_rates",
    "generate_synthetic_ventral",
    "hidden_features",
    "make_recording",
    "read_recording",
    "read_stimulus_set",
    "select",
    "trial_array",
    "validate",
    "write_recording",
    "write_stimulus_set",
]
