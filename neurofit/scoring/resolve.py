"""Step 2 of a score: what is scored, a model (zoo name, import path, checkpoint, object) or its features.

:func:`resolve_model` turns the user's ``model`` into a TemporalModel or an ActivationSet with its id and weights
hash; :func:`activations_from_arrays` wraps precomputed features; :func:`_parse_layers` reads ``layers=``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from neurofit.errors import NeurofitError
from neurofit.models.base import TemporalModel, TimeMap
from neurofit.scoring.benchmark import Benchmark

UNTRAINED_SEED = 0


WEIGHTS_CHOICES = ("auto", "trained", "random")


def activations_from_arrays(
    features: Mapping[str, np.ndarray],
    stimulus_ids: Sequence[str],
    *,
    step_ms: float = 10.0,
    t0_ms: float = 0.0,
    first_driven: Mapping[str, int] | None = None,
    model_id: str = "features",
    weights_sha256: str = "",
    dtype: str | None = None,
) -> Any:
    """An :class:`~neurofit.extract.activations.ActivationSet` from arrays ``{layer: [T, n_stimuli, D]}``.

    Precision: with ``dtype=None`` float64 arrays stay float64 and float32 stay float32 (other numbers become
    float64), so scores of float64 features are computed in float64 throughout (Brain-Score's numbers to
    ~1e-13); ``dtype="float32"`` stores them in single precision (half the memory).

    This is how precomputed features (a generator's hidden units, another toolkit's activations) are
    scored: pass the result to :func:`score` in place of a model.

    Example
    -------
    >>> acts = activations_from_arrays({"IT": np.zeros((2, 3, 4))}, ["a", "b", "c"])
    >>> acts.layers, acts.n_steps("IT"), acts.n_features("IT"), acts.dataset["IT"].dtype.name
    (['IT'], 2, 4, 'float64')
    """
    from neurofit.extract.activations import ActivationSet, feature_dim, step_dim

    ids = np.asarray([str(s) for s in stimulus_ids])
    coords: dict[str, Any] = {"stimulus_id": ("presentation", ids)}
    data_vars: dict[str, Any] = {}
    first = dict(first_driven or {})
    steps = 0
    if dtype not in (None, "float32", "float64"):
        raise NeurofitError(f"dtype must be None (keep float64/float32 as given), 'float32' or 'float64', "
                            f"got {dtype!r}")
    for layer, values in features.items():
        values = np.asarray(values)
        if values.dtype.kind not in "fiu":
            raise NeurofitError(f"features of layer {layer!r} must be numbers, got dtype {values.dtype}")
        keep = values.dtype if values.dtype in (np.float32, np.float64) else np.float64
        values = values.astype(dtype or keep, copy=False)
        if values.ndim != 3 or values.shape[1] != len(ids):
            raise NeurofitError(f"features of layer {layer!r} must be [steps, {len(ids)} stimuli, features], "
                                f"got {values.shape}")
        if not np.isfinite(values).all():
            raise NeurofitError(f"features of layer {layer!r} hold NaN or Inf values")
        n_steps = values.shape[0]
        steps = max(steps, n_steps)
        sdim = step_dim(layer)
        starts = t0_ms + step_ms * np.arange(n_steps)
        first.setdefault(layer, 0)
        coords[sdim] = (sdim, np.arange(n_steps))
        coords[f"step_start_ms_{layer}"] = (sdim, starts)
        coords[f"step_end_ms_{layer}"] = (sdim, starts + step_ms)
        coords[f"driven_{layer}"] = (sdim, np.arange(n_steps) >= first[layer])
        data_vars[layer] = ((sdim, "presentation", feature_dim(layer)), values)
    tm = TimeMap(steps=max(steps, 1), first_driven={k: int(v) for k, v in first.items()}, step_ms=step_ms,
                 t0_ms=t0_ms)
    ds = xr.Dataset(data_vars, coords=coords)
    ds.attrs = {"layers": list(features), "time_map": tm.to_dict(), "first_driven": dict(tm.first_driven),
                "model_id": model_id, "weights_sha256": weights_sha256}
    return ActivationSet(ds)


def untrained_text(seed: int = UNTRAINED_SEED) -> str:
    """How an untrained network's weights are described on the terminal, in attrs and in reports.

    Example
    -------
    >>> untrained_text()
    'untrained (random init, seed 0)'
    """
    return f"untrained (random init, seed {int(seed)})"


def _random_init(arch: str, **config: Any) -> Any:
    from neurofit.models.checkpoint import load_model

    # an untrained model is initialised from a fixed seed, so that its scores reproduce like any other's
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        return load_model(arch, **config)


def resolve_model(model: Any, checkpoint: str | os.PathLike[str] | None = None, arch: str | None = None,
                  weights: str = "auto", **config: Any) -> tuple[Any, str, str, str]:
    """A model (or ActivationSet) with its id, weights sha256 and a description of its weights.

    ``model`` is a zoo name, an import path ``package.module:factory``, a checkpoint file (with ``arch``
    unless the file names its architecture), a :class:`TemporalModel`, or an ActivationSet.

    ``weights`` says which weights a zoo name gets: ``"auto"`` (the default) uses neurofit's shipped trained
    checkpoint of that name when there is one (``neurofit models list``, column ``weights``) and no
    architecture arguments (``**config``) ask for another network, else random init; ``"trained"``
    requires the shipped checkpoint; ``"random"`` builds the same architecture (of a zoo name, import path or
    checkpoint file) with random weights, the baseline that shows what a trained network's number means.
    Random weights are always drawn under ``torch.manual_seed(0)`` (the global RNG state is restored).

    The description is ``"trained: ..."`` (a checkpoint file and its sha256), ``"untrained (random init,
    seed 0)"``, or what was given (a model object, precomputed features).

    Example
    -------
    >>> m, model_id, sha, how = resolve_model("cornet_z", width=4)
    >>> model_id, how
    ('cornet_z', 'untrained (random init, seed 0)')
    >>> resolve_model("cornet_z")[3].startswith("trained: shipped checkpoint cornet_z.safetensors (sha256 ")
    True
    >>> resolve_model("cornet_z", weights="random")[1:4:2]
    ('cornet_z (random init)', 'untrained (random init, seed 0)')
    """
    from neurofit.extract.activations import ActivationSet
    from neurofit.extract.cache import weights_sha256

    if weights not in WEIGHTS_CHOICES:
        raise NeurofitError(f"weights must be one of {', '.join(WEIGHTS_CHOICES)}, got {weights!r}")
    if isinstance(model, ActivationSet):
        if weights != "auto":
            raise NeurofitError(f"weights={weights!r} needs a model to build; these are precomputed features")
        how = str(model.attrs.get("weights") or "precomputed features (weights not known to neurofit)")
        return (model, str(model.attrs.get("model_id", "features")), str(model.attrs.get("weights_sha256", "")),
                how)
    if isinstance(model, TemporalModel):
        name = str(getattr(model, "arch", type(model).__name__))
        if weights == "random":
            if not hasattr(model, "arch"):
                raise NeurofitError(f"weights='random' needs the architecture of this {type(model).__name__}: "
                                    "pass its zoo name or checkpoint file")
            built = _random_init(model.arch, **dict(getattr(model, "config", {}) or {}))
            return built, f"{name} (random init)", weights_sha256(built), untrained_text()
        sha = weights_sha256(model)
        return model, name, sha, f"given model object (weights sha256 {sha})"
    if not isinstance(model, (str, os.PathLike)):
        raise NeurofitError(f"cannot score a {type(model).__name__}: pass a zoo name, a checkpoint path, a "
                            "TemporalModel or an ActivationSet")
    from neurofit.models.checkpoint import file_sha256, load_model

    text = os.fspath(model)
    is_file = Path(text).is_file() or Path(text).suffix.lower() in (".safetensors", ".pt", ".pth", ".th", ".bin")
    if is_file:
        built = load_model(arch, checkpoint=text, **config) if arch else load_model(text, **config)
        name = str(getattr(built, "arch", arch))
        if weights == "random":
            built = _random_init(name, **dict(getattr(built, "config", {}) or {}))
            return built, f"{name} (random init)", weights_sha256(built), untrained_text()
        sha = file_sha256(text)
        return built, f"{name}:{Path(text).name}", sha, f"trained: checkpoint {Path(text).name} (sha256 {sha})"
    shipped = None
    if ":" not in text:
        from neurofit.models.zoo import ZOO, get_factory

        if text not in ZOO:
            get_factory(text)  # raises, listing the valid names
        if checkpoint is None and weights != "random":
            from neurofit.models.train import shipped_checkpoint

            try:
                shipped = shipped_checkpoint(text)
            except NeurofitError:
                if weights == "trained":
                    raise NeurofitError(f"zoo model {text!r} has no shipped trained checkpoint (`neurofit models "
                                        "list` shows which have); pass a checkpoint file") from None
            if shipped is not None and config and weights == "auto":
                shipped = None  # architecture arguments ask for another network than the shipped one
    if checkpoint is not None:
        built = load_model(text, checkpoint=checkpoint, **config)
        if weights == "random":  # the checkpoint's architecture and configuration, re-initialised
            built = _random_init(text, **dict(getattr(built, "config", {}) or {}))
            return built, f"{text} (random init)", weights_sha256(built), untrained_text()
        sha = file_sha256(checkpoint)
        return (built, f"{text}:{Path(checkpoint).name}", sha,
                f"trained: checkpoint {Path(checkpoint).name} (sha256 {sha})")
    if shipped is not None:
        built = load_model(shipped, **config)
        sha = file_sha256(shipped)
        return built, text, sha, f"trained: shipped checkpoint {shipped.name} (sha256 {sha})"
    if weights == "trained":
        raise NeurofitError(f"weights='trained' for {text!r}: give a checkpoint, or no architecture arguments "
                            "so that the shipped checkpoint fits")
    built = _random_init(text, **config)
    return built, text if weights == "auto" else f"{text} (random init)", weights_sha256(built), untrained_text()


def _activation_hash(acts: Any) -> str:
    h = hashlib.sha256()
    for layer in acts.layers:
        h.update(layer.encode())
        h.update(np.ascontiguousarray(acts.dataset[layer].values).tobytes())
        h.update(acts.driven(layer).tobytes())
    h.update("|".join(acts.stimulus_ids).encode())
    return h.hexdigest()


def _parse_layers(layers: Sequence[str] | Mapping[str, str] | None, regions: Sequence[str],
                  model_layers: Sequence[str]) -> dict[str, list[str]]:
    """Candidate layers per region: all layers, or the ones named (``IT``, ``V4=conv3``, or a mapping)."""
    if layers is None:
        return {region: list(model_layers) for region in regions}
    if isinstance(layers, Mapping):
        named = {str(k): [str(v)] for k, v in layers.items()}
    else:
        named: dict[str, list[str]] = {}
        common: list[str] = []
        for item in layers:
            if "=" in item:
                region, layer = item.split("=", 1)
                named.setdefault(region, []).append(layer)
            else:
                common.append(item)
        for region in regions:
            named.setdefault(region, []).extend(common)
    out = {}
    for region in regions:
        chosen = named.get(region)
        if not chosen:
            raise NeurofitError(f"layers= names no layer for region {region!r}; give one as {region}=<layer>")
        unknown = [layer for layer in chosen if layer not in model_layers]
        if unknown:
            raise NeurofitError(f"layer {unknown[0]!r} is not a layer of the model; its layers: "
                                f"{', '.join(model_layers)}")
        out[region] = chosen
    return out


def _needed_steps(bench: Benchmark, step_ms: float = 10.0) -> int:
    span = max(end for _, end in bench.time_bins) - min(bench.mapping.offsets_ms)
    return max(1, int(np.ceil(span / step_ms - 1e-9)))
