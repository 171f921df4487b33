"""Activation extraction: batching, device, feature reduction, content-addressed cache.

>>> from neurofit.extract import extract_activations, RandomProjection, PCA, ActivationSet
"""

from neurofit.extract.activations import ActivationSet, read_activations
from neurofit.extract.extract import extract_activations
from neurofit.extract.reduce import DEFAULT_REDUCTION, PCA, Auto, RandomProjection, parse_reduction

__all__ = ["DEFAULT_REDUCTION", "PCA", "ActivationSet", "Auto", "RandomProjection", "extract_activations",
           "parse_reduction", "read_activations"]
