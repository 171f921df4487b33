"""Activation extraction: batching, device, feature reduction, content-addressed cache.

>>> from neurofit.extract import extract_activations, RandomProjection, PCA, ActivationSet
"""

from neurofit.extract.activations import ActivationSet, read_activations
from neurofit.extract.extract import extract_activations
from neurofit.extract.reduce import PCA, RandomProjection

__all__ = ["PCA", "ActivationSet", "RandomProjection", "extract_activations", "read_activations"]
