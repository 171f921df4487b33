"""The :class:`ActivationSet`: a model's reduced activations, labelled by layer, timestep and stimulus.

Layout of ``ActivationSet.dataset`` (an ``xarray.Dataset``; also the layout of the NetCDF cache files)
------------------------------------------------------------------------------------------------------
Each layer has its own time axis (CORnet-S's areas run 2/4/2 times per frame) and its own feature count,
so each layer ``L`` has its own dims:

* variable ``L``: float32 ``(step_L, presentation, feature_L)``; the reduced features of layer ``L`` at each
  of its steps. Values are finite everywhere; absence is a mask, never a NaN.
* coords along ``step_L``: ``step_L`` (int, the index on the layer's own time axis), ``step_start_ms_L`` and
  ``step_end_ms_L`` (the window the step covers, ms after stimulus onset; a layer with ``k`` entries per
  frame splits each frame's window into ``k`` equal parts) and ``driven_L`` (bool): the step carries
  image-driven signal. A step is driven when it is at or after the layer's first driven step (the larger
  of the TimeMap's declared step and the measured one) *and* the stimuli gave different activations there.
  Undriven steps (before arrival, or a feedforward model's blank frames) must never be used as signal:
  :meth:`ActivationSet.features` refuses them unless asked.
* coords along ``presentation``: ``stimulus_id`` (str) and the stimulus table's scalar metadata columns
  (``object_name``, ``category_name``, ``variation``, ...). One presentation per stimulus, in the order
  of the stimulus set.
* variable ``validity`` (only for models with a per-image validity mask, e.g. adaptive halting): bool
  ``(frame, presentation)``; ``False`` where the model had halted for that image. Coords ``frame``,
  ``frame_start_ms``, ``frame_end_ms``.
* ``attrs``: ``layers`` (list, feedforward order), ``time_map`` (dict of :class:`TimeMap`),
  ``first_driven`` and ``arrival_declared``/``arrival_measured`` (dicts layer -> step),
  ``n_features_raw`` (dict layer -> flattened size before reduction), ``reduction`` (dict spec),
  ``preprocessing`` (dict), ``model_id``, ``architecture``, ``config``, ``weights_sha256``,
  ``stimulus_set_identifier``, ``stimulus_set_sha256``, ``neurofit_version``, ``cache_key``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurofit.errors import NeurofitError
from neurofit.models.base import TimeMap


def step_dim(layer: str) -> str:
    """Name of ``layer``'s time dimension.

    Example
    -------
    >>> step_dim("IT"), feature_dim("IT")
    ('step_IT', 'feature_IT')
    """
    return f"step_{layer}"


def feature_dim(layer: str) -> str:
    """Name of ``layer``'s feature dimension."""
    return f"feature_{layer}"


class ActivationSet:
    """Reduced activations of one model on one stimulus set, per layer and timestep (module docstring).

    Example
    -------
    >>> import torch
    >>> from neurofit.extract.extract import extract_activations
    >>> from neurofit.models.zoo.feedforward import cornet_z
    >>> from neurofit.data.stimuli import StimulusSet
    >>> import pandas as pd
    >>> ss = StimulusSet.from_arrays(np.random.default_rng(0).integers(0, 255, (3, 32, 32, 3), dtype=np.uint8),
    ...                              pd.DataFrame({"stimulus_id": ["a", "b", "c"]}), degrees=8, identifier="toy")
    >>> acts = extract_activations(cornet_z(width=4), ss, reduction=None, progress=False)
    >>> acts.layers, acts.steps("IT")
    (['V1', 'V2', 'V4', 'IT'], [0])
    >>> acts.features("IT", 0).dims
    ('presentation', 'feature')
    """

    def __init__(self, dataset: xr.Dataset) -> None:
        if "layers" not in dataset.attrs:
            raise NeurofitError("this dataset is not an ActivationSet: it has no 'layers' attribute")
        missing = [layer for layer in dataset.attrs["layers"] if layer not in dataset.data_vars]
        if missing:
            raise NeurofitError(f"ActivationSet lists layer {missing[0]!r} but has no variable for it")
        self.dataset = dataset

    def __repr__(self) -> str:
        shapes = ", ".join(f"{layer}: {self.n_steps(layer)} steps x {self.n_features(layer)} features"
                           for layer in self.layers)
        return (f"<ActivationSet {self.attrs.get('model_id', '?')} on {self.attrs.get('stimulus_set_identifier', '?')}"
                f" ({self.dataset.sizes['presentation']} stimuli; {shapes})>")

    # --- descriptors -------------------------------------------------------------------------------------
    @property
    def attrs(self) -> dict[str, Any]:
        return self.dataset.attrs

    @property
    def layers(self) -> list[str]:
        """Layer names in feedforward order."""
        return list(self.dataset.attrs["layers"])

    @property
    def stimulus_ids(self) -> list[str]:
        return [str(s) for s in self.dataset["stimulus_id"].values]

    @property
    def time_map(self) -> TimeMap:
        """The model's TimeMap for this unroll (``first_driven`` as used for the ``driven`` masks)."""
        return TimeMap(**self.dataset.attrs["time_map"])

    def _check_layer(self, layer: str) -> None:
        if layer not in self.layers:
            raise NeurofitError(f"layer {layer!r} is not in this ActivationSet; its layers: {', '.join(self.layers)}")

    def n_steps(self, layer: str) -> int:
        self._check_layer(layer)
        return int(self.dataset.sizes[step_dim(layer)])

    def n_features(self, layer: str) -> int:
        self._check_layer(layer)
        return int(self.dataset.sizes[feature_dim(layer)])

    def steps(self, layer: str) -> list[int]:
        """Every step index of ``layer`` (driven or not)."""
        return list(range(self.n_steps(layer)))

    def driven(self, layer: str) -> np.ndarray:
        """Bool ``[n_steps]``: which steps of ``layer`` carry image-driven signal."""
        self._check_layer(layer)
        return self.dataset[f"driven_{layer}"].values.astype(bool)

    def driven_steps(self, layer: str) -> list[int]:
        """The steps of ``layer`` that carry image-driven signal (the ones to score)."""
        return [int(t) for t in np.flatnonzero(self.driven(layer))]

    def step_window(self, layer: str, step: int) -> tuple[float, float]:
        """``(start_ms, end_ms)`` covered by ``step`` of ``layer``."""
        self._check_layer(layer)
        return (float(self.dataset[f"step_start_ms_{layer}"].values[step]),
                float(self.dataset[f"step_end_ms_{layer}"].values[step]))

    # --- data ----------------------------------------------------------------------------------------------
    def layer(self, layer: str) -> xr.DataArray:
        """All steps of ``layer`` as ``(step, presentation, feature)`` (dims renamed to the plain names)."""
        self._check_layer(layer)
        da = self.dataset[layer]
        return da.rename({step_dim(layer): "step", feature_dim(layer): "feature"})

    def features(self, layer: str, step: int, *, allow_undriven: bool = False) -> xr.DataArray:
        """The ``(presentation, feature)`` matrix of ``layer`` at ``step``, labelled by stimulus.

        Raises NeurofitError for a step that carries no image-driven signal (before the layer's arrival),
        unless ``allow_undriven=True``.
        """
        n = self.n_steps(layer)
        if not 0 <= step < n:
            raise NeurofitError(f"step {step} is out of range for layer {layer!r} (0..{n - 1})")
        if not allow_undriven and not self.driven(layer)[step]:
            raise NeurofitError(
                f"layer {layer!r} carries no image-driven signal at step {step} (driven steps: "
                f"{self.driven_steps(layer)}); pass allow_undriven=True to read it anyway"
            )
        da = self.dataset[layer].isel({step_dim(layer): step}).rename({feature_dim(layer): "feature"})
        return da.drop_vars([c for c in da.coords if c.startswith(("step_", "driven_"))])

    @property
    def validity(self) -> xr.DataArray | None:
        """Bool ``(frame, presentation)`` validity mask of adaptive-halting models, else ``None``."""
        return self.dataset["validity"] if "validity" in self.dataset.data_vars else None

    def valid(self, layer: str, step: int) -> np.ndarray:
        """Bool ``[presentation]``: which images are valid at ``step`` of ``layer`` (all True without a mask).

        A layer with ``k`` entries per frame maps step ``s`` to frame ``s // k``.
        """
        n = self.n_steps(layer)
        mask = self.validity
        if mask is None:
            return np.ones(self.dataset.sizes["presentation"], dtype=bool)
        per_frame = max(n // mask.sizes["frame"], 1)
        return mask.values[min(step // per_frame, mask.sizes["frame"] - 1)].astype(bool)

    # --- files ---------------------------------------------------------------------------------------------
    def to_netcdf(self, path: str | os.PathLike[str], *, checksum: bool = False) -> Path:
        """Write the ActivationSet as NetCDF4 atomically (``checksum=True``: with its content sha256)."""
        from neurofit.data.io import write_netcdf

        return write_netcdf(self.dataset, path, checksum=checksum)


def read_activations(path: str | os.PathLike[str], *, verify: bool = False) -> ActivationSet:
    """Read an ActivationSet written by :meth:`ActivationSet.to_netcdf` (or a cache entry).

    ``verify=True`` requires and checks the content sha256 written by ``to_netcdf(..., checksum=True)``.

    Example
    -------
    >>> read_activations("missing.nc")
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: file not found: missing.nc
    """
    from neurofit.data.io import read_dataset

    ds = read_dataset(path, verify=verify)
    for name in list(ds.coords):
        if name.startswith("driven_"):
            ds = ds.assign_coords({name: ds[name].astype(bool)})
    if "validity" in ds.data_vars:
        ds["validity"] = ds["validity"].astype(bool)
    return ActivationSet(ds)
