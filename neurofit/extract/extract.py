"""Stream a stimulus set through a TemporalModel and keep every (layer, timestep) reduced to at most D features.

Batches of images are loaded, placed in a movie with :func:`neurofit.models.base.present` (gray screen
before onset and after offset, in model-input space), normalised, unrolled with ``forward_sequence``
under ``torch.no_grad`` (GPU when present, optional bf16/fp16 autocast), and each layer's output is
reduced at once (:mod:`neurofit.extract.reduce`): only the reduced ``[steps, stimuli, D]`` arrays grow with
the stimulus set, never the raw activations. Results are cached on disk under a content hash
(:mod:`neurofit.extract.cache`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from neurofit import __version__
from neurofit.data.stimuli import GRAY, StimulusSet
from neurofit.errors import NeurofitError
from neurofit.extract import cache as _cache
from neurofit.extract.activations import ActivationSet, feature_dim, step_dim
from neurofit.extract.reduce import (
    DEFAULT_REDUCTION,
    PCA,
    Auto,
    LayerReducer,
    RandomProjection,  # noqa: F401 (the docstring examples use it)
    Reduction,
    _gram_compress,
    check_fit_ids,
    identity_reducer,
    parse_reduction,
    pca_reducer,
    reduction_spec,
)
from neurofit.models.base import TemporalModel, present

log = logging.getLogger(__name__)

#: the PCA fitting pass keeps the fitting set's raw activations; refuse beyond this many bytes
PCA_FIT_BYTES_LIMIT = 3 * 2**30
#: a step counts as image-driven when some stimulus differs from the first by more than this (relative)
ARRIVAL_RTOL = 1e-5

_AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """The torch device to run on: ``device`` checked to exist on this machine, or CUDA when present, else CPU.

    Example
    -------
    >>> resolve_device("cpu")
    device(type='cpu')
    >>> resolve_device("bogus")
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: device 'bogus' is not a torch device; use 'cpu', 'cuda', 'cuda:<index>' or 'mps'
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise NeurofitError(f"device {device!r} is not a torch device; use 'cpu', 'cuda', 'cuda:<index>' or "
                            "'mps'") from err
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise NeurofitError(f"device {device!r} was asked for, but {why}; use 'cpu'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise NeurofitError(f"device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not torch.backends.mps.is_available():
            raise NeurofitError(f"device {device!r} was asked for, but Apple MPS is not available here; use 'cpu'")
    elif dev.type != "cpu":
        raise NeurofitError(f"device {device!r} is not supported; use 'cpu', 'cuda', 'cuda:<index>' or 'mps'")
    return dev


def check_steps(steps: Any, name: str = "steps") -> int:
    """``steps`` as a positive int (an unroll of at least one step), or a one-line error.

    Example
    -------
    >>> check_steps(0)
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: steps must be a whole number >= 1, got 0
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise NeurofitError(f"{name} must be a whole number >= 1, got {steps!r}")
    return int(steps)


def model_identity(model: TemporalModel) -> dict[str, Any]:
    """Model id, architecture and config as recorded in provenance and cache keys.

    Example
    -------
    >>> from neurofit.models.zoo.feedforward import cornet_z
    >>> model_identity(cornet_z(width=4))["model_id"]
    'cornet_z'
    """
    cls = type(model)
    return {
        "model_id": str(getattr(model, "model_id", None) or getattr(model, "arch", None) or cls.__name__),
        "architecture": f"{cls.__module__}.{cls.__qualname__}",
        "config": dict(getattr(model, "config", {}) or {}),
    }


def _table_coords(stimuli: StimulusSet, reserved: set[str]) -> dict[str, tuple[str, np.ndarray]]:
    coords: dict[str, tuple[str, np.ndarray]] = {}
    for column in stimuli.table.columns:
        if column in reserved or column == "filename":
            continue
        values = stimuli.table[column]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            coords[str(column)] = ("presentation", values.to_numpy())
        else:
            coords[str(column)] = ("presentation", values.astype(str).to_numpy())
    return coords


class _Runner:
    """Runs batches of stimuli through the model: images -> movie -> outputs (on the chosen device)."""

    def __init__(self, model: TemporalModel, stimuli: StimulusSet, steps: int, on: int, off: int | None,
                 device: torch.device, autocast: str | None) -> None:
        self.model, self.stimuli, self.steps, self.on, self.off = model, stimuli, steps, on, off
        self.device = device
        self.size = int(model.input_size)
        self.autocast = autocast
        gray = torch.full((1, int(model.in_channels), 1, 1), GRAY)
        self.blank = model.normalize(gray)[0].to(device)

    def __call__(self, ids: Sequence[str]) -> tuple[dict[str, torch.Tensor], torch.Tensor | None]:
        images = self.stimuli.load_images(self.size, ids=ids)
        if images.shape[1] != self.model.in_channels:
            if self.model.in_channels == 1:
                images = images.mean(dim=1, keepdim=True)
            else:
                raise NeurofitError(f"the model expects {self.model.in_channels} input channels; stimulus images "
                                    f"have {images.shape[1]}")
        images = self.model.normalize(images.to(self.device))
        movie = present(images, self.steps, on=self.on, off=self.off, blank=self.blank)
        with torch.no_grad():
            if self.autocast is None:
                outputs = self.model.forward_sequence(movie)
            else:
                with torch.autocast(device_type=self.device.type, dtype=_AUTOCAST[self.autocast]):
                    outputs = self.model.forward_sequence(movie)
            validity = self.model.validity(outputs)
        return outputs, validity


def _check_layers(outputs: dict[str, torch.Tensor], layers: Sequence[str], model: TemporalModel) -> None:
    missing = [layer for layer in layers if layer not in outputs]
    if missing:
        raise NeurofitError(f"layer {missing[0]!r} is not an output of {type(model).__name__}; "
                            f"its outputs: {', '.join(outputs)}")


def _flat(output: torch.Tensor, layer: str) -> torch.Tensor:
    if output.dim() < 2:
        raise NeurofitError(f"layer {layer!r} returned shape {tuple(output.shape)}; forward_sequence must give "
                            f"[T, B, ...] per layer")
    return output.reshape(output.shape[0], output.shape[1], -1)


def _fit_pca(runner: _Runner, reduction: PCA, layers: Sequence[str], batch_size: int, device: torch.device,
             bar: tqdm) -> dict[str, list[LayerReducer]]:
    """First pass: the fitting stimuli's raw activations, then one PCA per (layer, step)."""
    fit_ids = list(reduction.fit_ids)
    collected: dict[str, list[torch.Tensor]] = {layer: [] for layer in layers}
    for start in range(0, len(fit_ids), batch_size):
        outputs, _ = runner(fit_ids[start:start + batch_size])
        _check_layers(outputs, layers, runner.model)
        for layer in layers:
            collected[layer].append(_flat(outputs[layer], layer).float().cpu())
        if start == 0:
            per_image = sum(x.shape[0] * x.shape[2] * 4 for x in (c[0] for c in collected.values()))
            if per_image * len(fit_ids) > PCA_FIT_BYTES_LIMIT:
                raise NeurofitError(
                    f"PCA fitting on {len(fit_ids)} stimuli would hold {per_image * len(fit_ids) / 2**30:.1f} GiB of "
                    f"raw activations (limit {PCA_FIT_BYTES_LIMIT / 2**30:.0f} GiB); pass fewer fit_ids or use "
                    f"RandomProjection"
                )
        del outputs
        bar.update(min(batch_size, len(fit_ids) - start))
    reducers: dict[str, list[LayerReducer]] = {}
    for layer in layers:
        feats = torch.cat(collected.pop(layer), dim=1)  # [T_l, n_fit, p]
        reducers[layer] = [pca_reducer(feats[t], reduction.dim, device) for t in range(feats.shape[0])]
    return reducers


def _arrival(values: np.ndarray, declared: int) -> tuple[np.ndarray, int | None, int]:
    """Per-step 'stimuli differ' flags, the measured first differing step, and the driven mask's start."""
    n_steps, n = values.shape[:2]
    varies = np.zeros(n_steps, dtype=bool)
    for t in range(n_steps):
        x = values[t]
        scale = float(np.abs(x).max()) if x.size else 0.0
        spread = float(np.abs(x - x[:1]).max()) if x.size else 0.0
        varies[t] = spread > ARRIVAL_RTOL * scale
    if n < 2:
        # one stimulus cannot show a difference: fall back on the declared arrival
        return np.ones(n_steps, dtype=bool), None, declared
    hits = np.flatnonzero(varies)
    measured = int(hits[0]) if len(hits) else None
    first = max(declared, n_steps if measured is None else measured)
    return varies, measured, first


def extract_activations(
    model: TemporalModel,
    stimuli: StimulusSet,
    *,
    steps: int | None = None,
    on: int = 0,
    off: int | None = None,
    layers: Sequence[str] | None = None,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    autocast: Literal["bf16", "fp16"] | None = None,
    reduction: Reduction | str | None = DEFAULT_REDUCTION,
    cache: bool = True,
    cache_dir: str | None = None,
    progress: bool | None = None,
) -> ActivationSet:
    """Run ``stimuli`` through ``model`` and return every (layer, step) reduced to at most ``D`` features.

    Parameters
    ----------
    model : TemporalModel
        The unrolled model (zoo model, hooked module, or a loaded checkpoint).
    stimuli : StimulusSet
        Place it on the model's screen first (``stimuli.place_on_screen(degrees)``) when its visual angle
        differs from the model's; images are resized to ``model.input_size``.
    steps : int, optional
        Movie length (default ``model.default_steps``).
    on, off : int
        The image is shown from step ``on`` up to ``off`` (``None``: to the end); a gray screen otherwise.
    layers : sequence of str, optional
        Outputs of ``forward_sequence`` to keep (default ``model.layers``).
    batch_size : int
        Stimuli per batch; results do not depend on it (to float tolerance).
    device : str or torch.device, optional
        Default: CUDA when available, else CPU.
    autocast : {"bf16", "fp16"}, optional
        Mixed-precision forward pass; reductions run in float32.
    reduction : Auto, RandomProjection, PCA, None or str
        Default :data:`~neurofit.extract.reduce.DEFAULT_REDUCTION`: per layer every feature, an exact
        Gram-matrix compression or a seeded random projection to 1000 features (:class:`Auto`); ``None`` keeps
        every feature. ``RandomProjection(kind="sparse")`` (or ``Auto(fallback=...)`` of it) is the opt-in very
        sparse projection, far cheaper for wide layers but different numbers. A text form such as
        ``"sparse"`` or ``"auto:sparse"`` is read by :func:`~neurofit.extract.reduce.parse_reduction`. What
        each layer got is in the ``reduction_layers`` attr; the reduction's spec is in the cache key.
    cache : bool
        Read and write the on-disk cache (``cache_dir``, default ``$NEUROFIT_HOME/activations``).
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).

    Returns
    -------
    ActivationSet
        Layout in :mod:`neurofit.extract.activations`.

    Example
    -------
    >>> from neurofit.models.zoo.feedforward import cornet_z
    >>> imgs = np.random.default_rng(0).integers(0, 255, (4, 32, 32, 3), dtype=np.uint8)
    >>> ss = StimulusSet.from_arrays(imgs, pd.DataFrame({"stimulus_id": list("abcd")}), degrees=8, identifier="t")
    >>> acts = extract_activations(cornet_z(width=4), ss, reduction=RandomProjection(dim=16), cache=False,
    ...                            progress=False)
    >>> acts.features("V1", 0).shape
    (4, 16)
    """
    if not isinstance(model, TemporalModel):
        raise NeurofitError(f"extract_activations needs a TemporalModel (wrap plain modules with neurofit.wrap), "
                            f"got {type(model).__name__}")
    if autocast not in (None, "bf16", "fp16"):
        raise NeurofitError(f"autocast must be None, 'bf16' or 'fp16', got {autocast!r}")
    if batch_size < 1:
        raise NeurofitError(f"batch_size must be >= 1, got {batch_size}")
    steps = check_steps(model.default_steps if steps is None else steps)
    if isinstance(on, bool) or not (isinstance(on, (int, np.integer)) and on >= 0):
        raise NeurofitError(f"on must be a step >= 0, got {on!r}")
    if off is not None and not (isinstance(off, (int, np.integer)) and on < off):
        raise NeurofitError(f"off must be a step after on={on}, got {off!r}")
    layers = list(model.layers if layers is None else layers)
    if not layers:
        raise NeurofitError(f"{type(model).__name__} declares no layers; pass layers=[...]")
    if len(stimuli) == 0:
        raise NeurofitError(f"stimulus set {stimuli.identifier!r} is empty")
    if isinstance(reduction, str):
        reduction = parse_reduction(reduction)
    reduction_info = reduction_spec(reduction)
    check_fit_ids(reduction, stimuli.stimulus_ids, stimuli.identifier)
    device = resolve_device(device)
    if device.type == "cpu":
        # gated cells produce denormals that make CPU arithmetic up to 20x slower
        torch.set_flush_denormal(True)
    time_map = model.time_map(steps=steps, on=on, off=off)
    identity = model_identity(model)
    preprocessing = {
        "image_size": int(model.input_size), "in_channels": int(model.in_channels), "steps": steps, "on": on,
        "off": off, "mean": [float(m) for m in model.mean], "std": [float(s) for s in model.std],
        "blank": f"gray {GRAY} before normalisation", "autocast": autocast, "step_ms": time_map.step_ms,
        "t0_ms": time_map.t0_ms,
    }
    weights = _cache.weights_sha256(model)
    key_parts = {
        "weights_sha256": weights, "architecture": identity["architecture"], "config": identity["config"],
        "stimulus_set_sha256": stimuli.sha256(), "preprocessing": preprocessing, "layers": layers,
        "reduction": reduction_info, "neurofit_version": __version__,
    }
    key = _cache.cache_key(key_parts)
    directory = (cache_dir if cache_dir is not None else _cache.default_cache_dir()) if cache else None
    if directory is not None:
        hit = _cache.load_cached(directory, key)
        if hit is not None:
            log.info("activation cache hit %s", key)
            return hit

    ids = stimuli.stimulus_ids
    n = len(ids)
    show = sys.stderr.isatty() if progress is None else bool(progress)
    n_fit = len(reduction.fit_ids) if isinstance(reduction, PCA) else 0
    first_param = next(model.parameters(), None)
    home = first_param.device if first_param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    model.to(device)
    try:
        runner = _Runner(model, stimuli, steps, on, off, device, autocast)
        with tqdm(total=n + n_fit, desc=f"extract {identity['model_id']}", unit="img", disable=not show) as bar:
            pca = _fit_pca(runner, reduction, layers, batch_size, device, bar) if isinstance(reduction, PCA) else None
            arrays, raw_sizes, validity, per_layer = _stream(runner, ids, layers, batch_size, reduction, pca, device,
                                                             bar)
    finally:
        model.to(home)
        model.train(was_training)

    dataset = _assemble(arrays, raw_sizes, validity, stimuli, layers, time_map, steps)
    dataset.attrs.update({
        **identity, "weights_sha256": weights, "stimulus_set_identifier": stimuli.identifier,
        "stimulus_set_sha256": stimuli.sha256(), "reduction": reduction_info, "reduction_layers": per_layer,
        "preprocessing": preprocessing,
        "neurofit_version": __version__, "cache_key": key,
    })
    acts = ActivationSet(dataset)
    if directory is not None:
        _cache.store(directory, key, acts)
    return acts


def _layer_plan(reduction: Reduction | None, layer: str, n_steps: int, n: int, p: int, raw_used: int,
                pca: dict[str, list[LayerReducer]] | None, device: torch.device) -> tuple[str, LayerReducer | None]:
    """The method a layer gets (``none``, ``gram``, ``random_projection``, ``pca``) and its batch reducer."""
    if pca is not None:
        return ("pca" if pca[layer][0].reduced else "none"), None
    if reduction is None:
        return "none", identity_reducer(p)
    if isinstance(reduction, Auto):
        method = reduction.plan(p, n_steps * n, raw_used)
        if method == "random_projection":
            return method, reduction.fallback.reducer(layer, p, device)
        return method, identity_reducer(p)
    reducer = reduction.reducer(layer, p, device)  # type: ignore[union-attr]
    return ("random_projection" if reducer.reduced else "none"), reducer


def _layer_record(reduction: Reduction | None, method: str, dim: int, n_rows: int,
                  n_features: int | None = None) -> dict[str, Any]:
    """What one layer got, for the ``reduction_layers`` attr: method, output dimension, seed (and the sparse
    projection's density), fitting set."""
    record: dict[str, Any] = {"method": method, "dim": int(dim)}
    if method == "random_projection":
        rp = reduction.fallback if isinstance(reduction, Auto) else reduction
        record.update({"seed": int(rp.seed), "kind": rp.kind})  # type: ignore[union-attr]
        if rp.kind == "sparse" and n_features is not None:  # type: ignore[union-attr]
            record["density"] = rp.layer_density(int(n_features))  # type: ignore[union-attr]
    elif method == "gram":
        record["fit"] = f"all {n_rows} stimulus x step rows of the set (exact: inner products kept)"
    elif method == "pca":
        record["fit"] = f"{len(reduction.fit_ids)} fit_ids, per step"  # type: ignore[union-attr]
    return record


def _stream(runner: _Runner, ids: list[str], layers: list[str], batch_size: int, reduction: Reduction | None,
            pca: dict[str, list[LayerReducer]] | None, device: torch.device,
            bar: tqdm) -> tuple[dict[str, np.ndarray], dict[str, int], np.ndarray | None, dict[str, dict[str, Any]]]:
    n = len(ids)
    arrays: dict[str, np.ndarray] = {}
    raw_sizes: dict[str, int] = {}
    shared: dict[str, LayerReducer] = {}
    methods: dict[str, str] = {}
    raw_used = 0
    validity: np.ndarray | None = None
    for start in range(0, n, batch_size):
        batch_ids = ids[start:start + batch_size]
        stop = start + len(batch_ids)
        outputs, valid = runner(batch_ids)
        _check_layers(outputs, layers, runner.model)
        for layer in layers:
            flat = _flat(outputs[layer], layer)
            n_steps, batch, p = flat.shape
            if layer not in arrays:
                raw_sizes[layer] = p
                methods[layer], reducer = _layer_plan(reduction, layer, n_steps, n, p, raw_used, pca, device)
                if reducer is None:
                    n_out = pca[layer][0].n_out  # type: ignore[index]
                else:
                    shared[layer] = reducer
                    n_out = reducer.n_out
                if isinstance(reduction, Auto) and methods[layer] != "random_projection" and n_out > \
                        reduction.fallback.dim:
                    raw_used += 4 * n_steps * n * n_out
                arrays[layer] = np.empty((n_steps, n, n_out), dtype=np.float32)
            if flat.shape[0] != arrays[layer].shape[0] or p != raw_sizes[layer]:
                raise NeurofitError(f"layer {layer!r} changed shape between batches ({tuple(flat.shape)}); "
                                    f"forward_sequence must give the same [T, B, ...] for every batch")
            if pca is None:
                reduced = shared[layer](flat.reshape(n_steps * batch, p)).reshape(n_steps, batch, -1)
                arrays[layer][:, start:stop] = reduced.cpu().numpy()
            else:
                for t in range(n_steps):
                    arrays[layer][t, start:stop] = pca[layer][t](flat[t]).cpu().numpy()
        if valid is not None:
            if validity is None:
                validity = np.ones((valid.shape[0], n), dtype=bool)
            validity[:, start:stop] = valid.bool().cpu().numpy()
        del outputs
        bar.update(len(batch_ids))
    per_layer = {}
    for layer in layers:
        if methods.get(layer) == "gram":
            n_steps, _, p = arrays[layer].shape
            # gram_compress's own computation, on one intra-op thread as there, without its memo: a fresh
            # extraction's activations are never seen again, and keying them would hash every raw byte
            from neurofit.regression.parallel import torch_threads

            with torch_threads(1):
                z = _gram_compress(torch.as_tensor(arrays[layer].reshape(n_steps * n, p)), 4096, False, np.float32)
            arrays[layer] = z.reshape(n_steps, n, z.shape[1])
        if layer in arrays:
            per_layer[layer] = _layer_record(reduction, methods[layer], arrays[layer].shape[2],
                                             arrays[layer].shape[0] * n, raw_sizes[layer])
    return arrays, raw_sizes, validity, per_layer


def _assemble(arrays: dict[str, np.ndarray], raw_sizes: dict[str, int], validity: np.ndarray | None,
              stimuli: StimulusSet, layers: list[str], time_map: Any, steps: int) -> xr.Dataset:
    coords: dict[str, Any] = {"stimulus_id": ("presentation", np.asarray(stimuli.stimulus_ids, dtype=str))}
    reserved = {"stimulus_id", "presentation", "frame", "validity", *layers}
    reserved |= {f"{prefix}{layer}" for layer in layers
                 for prefix in ("step_", "feature_", "driven_", "step_start_ms_", "step_end_ms_")}
    coords.update(_table_coords(stimuli, reserved))
    data_vars: dict[str, Any] = {}
    declared_all: dict[str, int] = {}
    measured_all: dict[str, int | None] = {}
    first_all: dict[str, int] = {}
    for layer in layers:
        values = arrays[layer]
        n_steps = values.shape[0]
        declared = int(time_map.first_driven.get(layer, time_map.onset_step))
        varies, measured, first = _arrival(values, declared)
        driven = varies & (np.arange(n_steps) >= first)
        declared_all[layer], measured_all[layer], first_all[layer] = declared, measured, int(first)
        span = time_map.step_ms * steps / n_steps
        starts = time_map.t0_ms + span * np.arange(n_steps)
        sdim = step_dim(layer)
        coords[sdim] = (sdim, np.arange(n_steps))
        coords[f"step_start_ms_{layer}"] = (sdim, starts)
        coords[f"step_end_ms_{layer}"] = (sdim, starts + span)
        coords[f"driven_{layer}"] = (sdim, driven)
        data_vars[layer] = ((sdim, "presentation", feature_dim(layer)), values)
    if validity is not None:
        frames = np.arange(validity.shape[0])
        coords["frame"] = ("frame", frames)
        coords["frame_start_ms"] = ("frame", time_map.t0_ms + time_map.step_ms * frames)
        coords["frame_end_ms"] = ("frame", time_map.t0_ms + time_map.step_ms * (frames + 1))
        data_vars["validity"] = (("frame", "presentation"), validity)
    dataset = xr.Dataset(data_vars, coords=coords)
    tm = time_map.to_dict()
    tm["first_driven"] = {**tm["first_driven"], **first_all}
    dataset.attrs = {
        "layers": layers, "time_map": tm, "first_driven": first_all, "arrival_declared": declared_all,
        "arrival_measured": measured_all, "n_features_raw": raw_sizes,
    }
    return dataset
