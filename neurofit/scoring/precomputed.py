"""Scoring precomputed features against a benchmark: the Python twin of ``neurofit score`` with features.

Features extracted elsewhere (a file, or arrays with their stimulus ids) become an ActivationSet
(:mod:`neurofit.extract.precomputed`) and are scored exactly as a model's activations are: the benchmark's
recording, regions and bins, its layer (and latency) commitment on held-out stimuli, or the layers you name,
the same splits, regression, ceiling and bootstrap. No image is shown, so no stimulus set is needed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from neurofit.errors import NeurofitError

if TYPE_CHECKING:  # the command line imports this module: no heavy import at module level
    import xarray as xr

    from neurofit.data.stimuli import StimulusSet
    from neurofit.extract.activations import ActivationSet


def load_features(
    features: str | os.PathLike[str] | ActivationSet | Mapping[str, Any] | xr.Dataset,
    stimulus_ids: Sequence[str] | str | os.PathLike[str] | None = None,
    *,
    step_ms: float = 10.0,
    t0_ms: float = 0.0,
) -> ActivationSet:
    """An ActivationSet from a features file, from arrays (+ ``stimulus_ids``), or as given.

    Example
    -------
    >>> import numpy as np
    >>> load_features({"IT": np.eye(3)}, ["a", "b", "c"]).layers
    ['IT']
    """
    import xarray as xr

    from neurofit.extract.activations import ActivationSet
    from neurofit.extract.precomputed import features_from_arrays, read_features

    if isinstance(features, ActivationSet):
        if stimulus_ids is not None:
            raise NeurofitError("an ActivationSet carries its own stimulus ids; drop stimulus_ids")
        return features
    if isinstance(features, (str, os.PathLike)):
        return read_features(features, stimulus_ids, step_ms=step_ms, t0_ms=t0_ms)
    if isinstance(features, (Mapping, xr.Dataset)):
        return features_from_arrays(features, stimulus_ids, step_ms=step_ms, t0_ms=t0_ms)
    raise NeurofitError(f"cannot read features from a {type(features).__name__}: give a file, a mapping of layer -> "
                        "array (with stimulus_ids) or an ActivationSet")


def score_precomputed(
    features: str | os.PathLike[str] | ActivationSet | Mapping[str, Any] | xr.Dataset,
    benchmark: Any,
    *,
    stimulus_ids: Sequence[str] | str | os.PathLike[str] | None = None,
    layers: Sequence[str] | Mapping[str, str] | None = None,
    recording: xr.DataArray | None = None,
    stimuli: StimulusSet | None = None,
    step_ms: float = 10.0,
    t0_ms: float = 0.0,
    model_id: str | None = None,
    **options: Any,
) -> xr.Dataset:
    """Score precomputed features against a benchmark; return (and with ``out=`` write) the ScoreSet.

    Parameters
    ----------
    features : path, mapping of layer -> array, xr.Dataset or ActivationSet
        A features file (:func:`neurofit.extract.precomputed.read_features`: ActivationSet NetCDF, labelled
        NetCDF, ``.npz``, ``.npy``, torch, safetensors, HDF5, text, MATLAB) or arrays with stimuli along the first
        axis (keys ``LAYER:k`` for step ``k - 1``).
    benchmark : str, path or Benchmark
    stimulus_ids : sequence of str or a stimulus-order file, optional
        The stimulus of each row, where the features carry no ids.
    layers : optional
        Score these layers without layer commitment (``["IT"]``, ``["V4=conv3", "IT=conv4"]``); by default the
        benchmark commits a layer per region on held-out stimuli, as for a model.
    recording, stimuli : optional
        Score against this recording instead of the benchmark's dataset; a stimulus set is not needed.
    step_ms, t0_ms : float
        Step ``t`` of the features covers ``[t0_ms + t * step_ms, t0_ms + (t + 1) * step_ms)`` ms after onset.
    model_id : str, optional
        Name in the ScoreSet (default: the file's name, or ``features``).
    **options
        Passed to :func:`neurofit.scoring.score.score`: ``out``, ``grid``, ``device``, ``work_dir``,
        ``progress``, ``created``, ``runner``, ...

    Example
    -------
    >>> scores = score_precomputed("features.npz", "synthetic-ventral-it-temporal")  # doctest: +SKIP
    >>> scores.attrs["committed_layers"]  # doctest: +SKIP
    """
    from neurofit.scoring.score import score

    acts = load_features(features, stimulus_ids, step_ms=step_ms, t0_ms=t0_ms)
    if "weights" in options and options["weights"] != "auto":
        raise NeurofitError(f"weights={options['weights']!r} needs a model to build; these are precomputed features")
    data = None if recording is None else (recording, stimuli)
    return score(acts, benchmark, layers=layers, data=data, model_id=model_id, **options)


__all__ = ["load_features", "score_precomputed"]
