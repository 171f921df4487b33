"""``score()``: a model (or its features) against a benchmark, giving a ScoreSet.

The run, step by step:

1. The benchmark's dataset is loaded (``synthetic-ventral`` is generated, a manifest id is loaded, or
   ``data=(recording, stimulus_set)`` is given), checked against the stimulus set, restricted to the
   benchmark's regions, and brought to its time bins (equal bins are selected; a wider bin that is a union
   of consecutive recording bins is their sum for counts, their duration-weighted mean for rates).
2. The stimuli are shown to the model on a gray screen at the model's visual angle and the activations of
   every layer and step are extracted (cached on disk by content hash).
3. The stimuli are split into a commitment set and the scored set (:mod:`neurofit.scoring.commit`). For each
   region every candidate layer (x latency offset) is cross-validated on the commitment set; the best is
   kept. ``layers=`` skips the layer choice.
4. The committed mapping is cross-validated on the scored set: one work unit per fold, saved as it
   finishes (:mod:`neurofit.runners.local`). Per site and bin: Pearson r of held-out predictions with the
   repetition-averaged response, the noise ceiling of the scored stimuli, and the ceiled score under the
   benchmark's rule. Per region and bin: the median over sites with bootstrap CIs over stimuli (the ceiling
   recomputed in every draw) and over sites.
5. Optionally (``grid=True``) every layer x every driven step is scored against every bin.

A feedforward model (one step) on a temporal benchmark uses the ``constant`` policy: its one response is
compared with every bin, and the ScoreSet says so.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import warnings
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from neurofit import __version__
from neurofit.data.recording import average_repetitions, trial_array, validate
from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError, ValidationError
from neurofit.models.base import TemporalModel, TimeMap
from neurofit.regression.correlation import pearson_on_valid
from neurofit.runners.local import LocalRunner, Result, UnitStore, WorkUnit
from neurofit.scoreset import CENTRED_INTERVAL, centred_interval
from neurofit.scoring import timemap as tmap
from neurofit.scoring.benchmark import SYNTHETIC, Benchmark, load_benchmark
from neurofit.scoring.commit import choose, commitment_criterion, commitment_split
from neurofit.scoring.missing import MISSING_DATA_RULE, apply_missing_data_rule, fit_on_valid_stimuli

OFFSET_POLICIES = ("one_to_one", "portion", "graded")
UNTRAINED_SEED = 0


# ------------------------------------------------------------------------------------------------ data
def load_benchmark_data(benchmark: Benchmark, *, images: bool = True) -> tuple[xr.DataArray, StimulusSet | None]:
    """The benchmark's recording and stimulus set: generated for ``synthetic-ventral``, else loaded.

    ``images=False`` (precomputed features: nothing is shown) also accepts a dataset without stimulus images; its
    stimulus set is then ``None``.

    Example
    -------
    >>> rec, stimuli = load_benchmark_data(load_benchmark("synthetic-ventral-it-temporal"))  # doctest: +SKIP
    """
    if benchmark.datasets:
        raise NeurofitError(f"benchmark {benchmark.id!r} pools several datasets ({', '.join(benchmark.datasets)}); "
                            "load each with load_dataset(id)")
    if benchmark.dataset == SYNTHETIC:
        from neurofit.data.synthetic import generate_synthetic_ventral

        return generate_synthetic_ventral(**benchmark.dataset_options)
    from neurofit.data.fetch import load_dataset

    try:
        loaded = load_dataset(benchmark.dataset)
    except NeurofitError as err:
        raise NeurofitError(
            f"benchmark {benchmark.id!r} needs dataset {benchmark.dataset!r}, which could not be loaded ({err}); "
            "pass your own copy with --recording FILE --stimuli CSV (Python: data=(recording, stimulus_set))"
        ) from err
    recording, stimuli = loaded[0], loaded[1]
    if stimuli is None and images:
        raise NeurofitError(f"dataset {benchmark.dataset!r} has no stimulus images, so no model can be scored on it")
    return recording, stimuli


def prepare_recording(recording: xr.DataArray, benchmark: Benchmark) -> xr.DataArray:
    """The benchmark's regions and time bins of ``recording`` (bins selected, or summed from finer bins).

    Example
    -------
    >>> from neurofit.data.recording import make_recording
    >>> rec = make_recording(np.ones((2, 1, 3)), stimulus_id=["a", "b"], repetition=[0, 0], neuroid_id=["n"],
    ...                      region="IT", time_bin_start=[60, 70, 80], time_bin_end=[70, 80, 90],
    ...                      identifier="t", stimulus_set_identifier="t")
    >>> b = dataclasses.replace(load_benchmark("majajhong2015-it-brainscore"), time_bins=((70.0, 90.0),))
    >>> prepare_recording(rec, b).values[:, 0, 0].tolist()
    [2.0, 2.0]
    """
    regions = np.asarray(recording.coords["region"].values).astype(str)
    keep = np.isin(regions, benchmark.regions)
    missing = [r for r in benchmark.regions if r not in set(regions.tolist())]
    if missing:
        raise ValidationError(
            f"benchmark {benchmark.id!r} scores region(s) {missing}, but recording "
            f"{recording.attrs.get('identifier', '?')!r} has sites only in {sorted(set(regions.tolist()))}"
        )
    rec = recording.isel(neuroid=np.flatnonzero(keep))
    starts = rec.coords["time_bin_start"].values.astype(float)
    ends = rec.coords["time_bin_end"].values.astype(float)
    rate_units = "/s" in str(rec.attrs.get("units", "")) or "hz" in str(rec.attrs.get("units", "")).lower()
    columns = []
    for lo, hi in benchmark.time_bins:
        exact = np.flatnonzero(np.isclose(starts, lo) & np.isclose(ends, hi))
        if len(exact):
            columns.append(rec.values[..., exact[0]].astype(np.float64))
            continue
        inside = np.flatnonzero((starts >= lo - 1e-9) & (ends <= hi + 1e-9))
        covered = ends[inside] - starts[inside]
        if not len(inside) or abs(covered.sum() - (hi - lo)) > 1e-6:
            have = ", ".join(f"{s:g}-{e:g}" for s, e in zip(starts[:6], ends[:6]))
            raise ValidationError(
                f"benchmark {benchmark.id!r} needs the time bin {lo:g}-{hi:g} ms, which the recording's bins "
                f"({have}{', ...' if len(starts) > 6 else ''} ms) do not tile"
            )
        values = rec.values[..., inside].astype(np.float64)
        if rate_units:
            columns.append((values * covered).sum(axis=-1) / covered.sum())
        else:
            columns.append(values.sum(axis=-1))
    data = np.stack(columns, axis=-1)
    out = xr.DataArray(
        data, dims=rec.dims,
        coords={name: coord for name, coord in rec.coords.items() if "time_bin" not in coord.dims},
        name="rates", attrs=dict(rec.attrs),
    )
    return out.assign_coords(
        time_bin_start=("time_bin", np.array([b[0] for b in benchmark.time_bins])),
        time_bin_end=("time_bin", np.array([b[1] for b in benchmark.time_bins])),
    )


def recording_sha256(recording: xr.DataArray) -> str:
    """Content hash of a recording: values, every coordinate and the identifier."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(recording.values, dtype=np.float64).tobytes())
    for name in sorted(recording.coords):
        h.update(name.encode())
        h.update(np.asarray(recording.coords[name].values).astype(str).tobytes())
    h.update(str(recording.attrs.get("identifier", "")).encode())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------ models
def activations_from_arrays(
    features: Mapping[str, np.ndarray],
    stimulus_ids: Sequence[str],
    *,
    step_ms: float = 10.0,
    t0_ms: float = 0.0,
    first_driven: Mapping[str, int] | None = None,
    model_id: str = "features",
    weights_sha256: str = "",
) -> Any:
    """An :class:`~neurofit.extract.activations.ActivationSet` from arrays ``{layer: [T, n_stimuli, D]}``.

    This is how precomputed features (a generator's hidden units, another toolkit's activations) are
    scored: pass the result to :func:`score` in place of a model.

    Example
    -------
    >>> acts = activations_from_arrays({"IT": np.zeros((2, 3, 4))}, ["a", "b", "c"])
    >>> acts.layers, acts.n_steps("IT"), acts.n_features("IT")
    (['IT'], 2, 4)
    """
    from neurofit.extract.activations import ActivationSet, feature_dim, step_dim

    ids = np.asarray([str(s) for s in stimulus_ids])
    coords: dict[str, Any] = {"stimulus_id": ("presentation", ids)}
    data_vars: dict[str, Any] = {}
    first = dict(first_driven or {})
    steps = 0
    for layer, values in features.items():
        values = np.asarray(values, dtype=np.float32)
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


WEIGHTS_CHOICES = ("auto", "trained", "random")


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


# ------------------------------------------------------------------------------------------------ regression
def _pls_components(bench: Benchmark, n_train: int, n_features: int) -> int:
    return int(min(bench.n_components, n_train - 1, n_features))


def _components_used(prob: _Problem) -> set[int]:
    """The PLS components a problem's fits use: ``min(requested, training rows - 1, features)`` per fit."""
    if prob.bench.metric != "pls":
        return set()
    mapped = [x for x in prob.features if x is not None]
    if not mapped:
        return set()
    rows = len(mapped) if prob.bench.temporal_mode == "span_time" else 1  # span_time stacks bins as samples
    return {_pls_components(prob.bench, int(train.sum()) * rows, x.shape[1]) for train in prob.train
            for x in {id(x): x for x in mapped}.values()}


def _span(values: set[int]) -> str:
    """``"25"`` for one value, ``"5to25"`` for several (smallest to largest), ``""`` for none."""
    return "" if not values else (str(min(values)) if len(values) == 1 else f"{min(values)}to{max(values)}")


def _regression_device(device: str | None) -> str:
    """The device the regression runs on, and its dtype (float64 on CPU, float32 on accelerators)."""
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return f"{dev.type} ({'float64' if dev.type == 'cpu' else 'float32'})"


def _bin_ranges(rec: xr.DataArray, mask: np.ndarray) -> str:
    """The masked time bins of ``rec`` as ``"a-b, c-d ms"`` (``""`` for none)."""
    from neurofit.scoreset import ranges

    return ranges(rec.coords["time_bin_start"].values.astype(float), rec.coords["time_bin_end"].values.astype(float),
                  np.asarray(mask, dtype=bool))


def _site_interval(values: np.ndarray, site_region: np.ndarray, regions: Sequence[str], estimate: np.ndarray,
                   bench: Benchmark) -> tuple[np.ndarray, np.ndarray]:
    """95% site-bootstrap interval of each region's median over sites, centred on ``estimate`` [region, bin].

    Sites are resampled with replacement (``bench.n_bootstrap`` draws; region ``k`` seeded
    ``bootstrap_seed + k``); the interval is :func:`neurofit.scoreset.centred_interval` of the draws.
    """
    from neurofit.stats.bootstrap import hierarchical_median

    low = np.full((len(regions), values.shape[1]), np.nan)
    high = low.copy()
    for k, region in enumerate(regions):
        sel = values[site_region == region]
        if len(sel):
            draws = hierarchical_median(sel, n_boot=bench.n_bootstrap, seed=bench.bootstrap_seed + k)
            low[k], high[k] = centred_interval(draws, estimate[k])
    return low, high


def _cross_validated(bench: Benchmark, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                     device: str | None) -> np.ndarray:
    """One fold of the benchmark's regression through the engine's cross-validated solvers.

    ``x``: ``[n_x, n, D]`` (``n_x`` = 1: one design shared by every bin), ``y``: ``[n_bins, n, q]``,
    ``train``/``test``: bool ``[n]``. Returns the test predictions ``[n_bins, n_test, q]``. Sites lacking some
    stimuli (NaN in ``y``) are fitted on their valid stimuli (:mod:`neurofit.scoring.missing`).
    """
    return fit_on_valid_stimuli(lambda *args: _fold_fit(bench, *args, device), x, y, train, test)


def _fold_fit(bench: Benchmark, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
              device: str | None) -> np.ndarray:
    from neurofit.regression.crossval import pls_cross_validated, ridge_cross_validated

    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float64 if dev.type == "cpu" else torch.float32
    # fresh torch-allocated copies: BLAS kernels may round differently on differently aligned buffers (an
    # array read from a file or a view), which would break bit-for-bit reproducibility across runners
    xt = torch.tensor(np.ascontiguousarray(x), dtype=dtype, device=dev)
    yt = torch.tensor(np.ascontiguousarray(y), dtype=dtype, device=dev)
    tr = torch.as_tensor(train[None], device=dev)
    te = torch.as_tensor(test[None], device=dev)
    threads = torch.get_num_threads()
    # One thread on CPU: results then do not depend on the machine's or the worker's thread count (reductions
    # split over threads round differently), and small fits, dominated by thread synchronisation, run up to
    # 100x faster on a busy machine. Parallelism comes from running units side by side (a dask runner).
    if dev.type == "cpu":
        torch.set_num_threads(1)
    try:
        if bench.metric == "pls":
            n_components = _pls_components(bench, int(train.sum()), x.shape[2])
            pred = pls_cross_validated(xt, yt, tr, te, n_components, algorithm=bench.algorithm)[0]
        else:
            pred = ridge_cross_validated(xt, yt, tr, te)[0]
    finally:
        torch.set_num_threads(threads)
    return pred.to(torch.float64).cpu().numpy()


class _Problem:
    """Everything a fold fit needs: features per bin, responses, folds and settings (kept in memory)."""

    def __init__(self, bench: Benchmark, features: list[np.ndarray | None], targets: np.ndarray,
                 train: np.ndarray, test: np.ndarray, device: str | None) -> None:
        self.bench = bench
        self.features = features  # per bin: [n, D] or None (unmapped)
        self.targets = targets  # [n, q, B]
        self.train = train
        self.test = test
        self.device = device
        present = [x for x in features if x is not None]
        self.shared = bool(present) and all(x is present[0] for x in present)

    def __call__(self, unit: WorkUnit) -> Result:
        # a runner's work function: a picklable object whose arrays a dask runner ships as files
        return self.fold(unit.fold)

    def fold(self, f: int) -> Result:
        train, test = self.train[f], self.test[f]
        n, n_sites, n_bins = self.targets.shape
        out = np.full((int(test.sum()), n_sites, n_bins), np.nan)
        mapped = [b for b in range(n_bins) if self.features[b] is not None]
        if not mapped:
            return {"prediction": out}
        dims = {self.features[b].shape[1] for b in mapped}
        if self.bench.temporal_mode == "span_time":
            if len(dims) > 1:
                raise NeurofitError("the span_time mode needs one feature space for all bins, but the mapping "
                                    "uses layers of different sizes; use temporal_mode = 'per_bin'")
            # bins stacked as samples: one mapping shared by all bins, predictions per bin
            x = np.concatenate([self.features[b] for b in mapped])[None]
            y = np.concatenate([self.targets[:, :, b] for b in mapped])[None]
            pred = _cross_validated(self.bench, x, y, np.tile(train, len(mapped)), np.tile(test, len(mapped)),
                                    self.device)[0]
            pred = pred.reshape(len(mapped), int(test.sum()), n_sites)
        else:
            if self.shared:
                # one design for every bin (a constant mapping): the engine forms its products once
                x = self.features[mapped[0]][None]
            else:
                if len(dims) > 1:
                    x = None
                else:
                    x = np.stack([self.features[b] for b in mapped])
            y = np.stack([self.targets[:, :, b] for b in mapped])
            if x is None:  # layers of different widths (graded): one fit per bin
                pred = np.stack([_cross_validated(self.bench, self.features[b][None], y[i:i + 1], train, test,
                                                  self.device)[0] for i, b in enumerate(mapped)])
            else:
                pred = _cross_validated(self.bench, x, y, train, test, self.device)
        for i, b in enumerate(mapped):
            out[:, :, b] = pred[i]
        return {"prediction": out}


def _pearson(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    return pearson_on_valid(pred, target)  # each site over its valid stimuli; constant sites are NaN


def _r_from_folds(bench: Benchmark, preds: list[np.ndarray], targets: np.ndarray, test: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(r [q, B], r_fold [F, q, B], pooled predictions [n, q, B] or None for overlapping test sets)."""
    r_fold = np.stack([_pearson(p, targets[test[f]]) for f, p in enumerate(preds)])
    if bench.split_scheme == "kfold":
        pooled = np.full(targets.shape, np.nan)
        for f, p in enumerate(preds):
            pooled[test[f]] = p
        return _pearson(pooled, targets), r_fold, pooled
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(r_fold, axis=0), r_fold, None


# ------------------------------------------------------------------------------------------------ ceilings
def _halvings(bench: Benchmark, trials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The repetition halvings behind the benchmark's ceiling, as masks ``[H, n_stimuli, max_reps]``."""
    from neurofit.regression.ceiling import halving_masks

    if bench.ceiling == "split_half":
        return halving_masks(trials, bench.ceiling_splits, bench.ceiling_seed)
    from sklearn.model_selection import ShuffleSplit

    n_reps = trials.shape[1]
    splitter = ShuffleSplit(n_splits=bench.ceiling_splits, train_size=0.5, random_state=bench.ceiling_seed)
    halves = list(splitter.split(np.arange(n_reps)))
    a = np.zeros((len(halves), trials.shape[0], n_reps), dtype=bool)
    b = np.zeros_like(a)
    for h, (ia, ib) in enumerate(halves):
        a[h][:, ia] = True
        b[h][:, ib] = True
    return a, b


def _ceiling(bench: Benchmark, trials: np.ndarray) -> np.ndarray:
    from neurofit.regression.ceiling import SingleRepetitionError, brainscore_ceiling, split_half_ceiling

    if bench.ceiling == "none":
        return np.full(trials.shape[2:], np.nan)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if bench.ceiling == "split_half":
                return split_half_ceiling(trials, bench.ceiling_splits, bench.ceiling_seed)
            return brainscore_ceiling(trials, bench.ceiling_splits, bench.ceiling_seed)[0]
    except SingleRepetitionError as err:
        raise SingleRepetitionError(f"{err}: benchmark {bench.id!r} asks for one (ceiling.method = "
                                    f"{bench.ceiling!r}); use a benchmark with ceiling.method = 'none' to score r "
                                    "alone") from None


def _ceil(bench: Benchmark, r: np.ndarray, ceiling: np.ndarray, pooled: np.ndarray | None,
          trials: np.ndarray) -> np.ndarray:
    from neurofit.regression.ceiling import ceil_scores, feve

    if bench.ceiling == "none":
        return np.full(r.shape, np.nan)  # no ceiling, no ceiled score: r stands alone
    if bench.normalisation == "feve":
        if pooled is None:
            raise NeurofitError("FEVe needs every stimulus predicted once: use split_scheme = 'kfold'")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return feve(pooled, trials)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return ceil_scores(r, ceiling, bench.normalisation)


# ------------------------------------------------------------------------------------------------ the run
class _Features:
    """Feature matrices of (layer, step) in the run's stimulus order, float64, read once each.

    With ``narrow`` (every mode but ``span_time``, which stacks bins as samples of one feature space) a
    combined design wider than it is tall is replaced by its exact Gram compression
    (:func:`neurofit.extract.reduce.gram_compress`, all ``n`` columns kept): the same inner products, so the
    same PLS and ridge predictions, at a fraction of the cost (the kernel form, issue 14).
    """

    def __init__(self, acts: Any, order: np.ndarray, narrow: bool = False) -> None:
        self.acts = acts
        self.order = order
        self.narrow = narrow
        self._cache: dict[tuple[str, int], np.ndarray] = {}
        self._narrowed: dict[tuple[tuple[str, int, float], ...], np.ndarray] = {}

    def get(self, layer: str, step: int) -> np.ndarray:
        key = (layer, step)
        if key not in self._cache:
            values = self.acts.features(layer, step).values
            self._cache[key] = np.asarray(values, dtype=np.float64)[self.order]
        return self._cache[key]

    def combine(self, refs: Sequence[tmap.FeatureRef]) -> np.ndarray | None:
        if not refs:
            return None
        key = tuple((ref.layer, int(ref.step), float(ref.weight)) for ref in refs)
        if key in self._narrowed:
            return self._narrowed[key]  # one object per design: bins that share it are recognised as one
        if len(refs) == 1 and refs[0].weight == 1.0:
            # the cached matrix itself: bins that share it are recognised as one design
            out = self.get(refs[0].layer, refs[0].step)
        else:
            out = None
            for ref in refs:
                term = self.get(ref.layer, ref.step) * ref.weight
                out = term if out is None else out + term
        if self.narrow and out.shape[1] > out.shape[0]:
            from neurofit.extract.reduce import gram_compress

            out = self._narrowed[key] = gram_compress(out, keep_all=True, dtype=np.float64)
        return out


def _layer_time_map(acts: Any, layer: str) -> tuple[TimeMap, int]:
    """A per-layer TimeMap from the ActivationSet's step windows and measured driven steps."""
    n_steps = acts.n_steps(layer)
    driven = acts.driven_steps(layer)
    start, end = acts.step_window(layer, 0)
    first = driven[0] if driven else n_steps
    tm = TimeMap(steps=n_steps, first_driven={layer: first}, step_ms=end - start, t0_ms=start)
    return tm, n_steps


def _mapping(bench: Benchmark, policy: str, acts: Any, layer: str, offset: float,
             layers_in_order: Sequence[str]) -> tmap.BinMapping:
    if policy == "graded":
        first_layer_tm, n_steps = _layer_time_map(acts, layers_in_order[0])
        merged = {}
        for name in layers_in_order:
            tm, _ = _layer_time_map(acts, name)
            merged.update(tm.first_driven)
        tm = dataclasses.replace(first_layer_tm, first_driven=merged)
        return tmap.graded(bench.time_bins, list(layers_in_order), tm, offset_ms=offset, n_steps=n_steps)
    tm, n_steps = _layer_time_map(acts, layer)
    if policy == "table":
        table = bench.tables.get(layer)
        if table is None:
            raise NeurofitError(f"benchmark {bench.id!r} has no time table for layer {layer!r} "
                                f"(tables for: {', '.join(bench.tables)})")
        return tmap.table(bench.time_bins, layer, tm, table, n_steps=n_steps)
    if policy == "constant":
        return tmap.constant(bench.time_bins, layer, tm, n_steps=n_steps)
    fn = tmap.one_to_one if policy == "one_to_one" else tmap.portion
    return fn(bench.time_bins, layer, tm, offset_ms=offset, n_steps=n_steps)


def _needed_steps(bench: Benchmark, step_ms: float = 10.0) -> int:
    span = max(end for _, end in bench.time_bins) - min(bench.offsets_ms)
    return max(1, int(np.ceil(span / step_ms - 1e-9)))


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
            raise NeurofitError(f"--layers names no layer for region {region!r}; give e.g. {region}=<layer>")
        unknown = [layer for layer in chosen if layer not in model_layers]
        if unknown:
            raise NeurofitError(f"layer {unknown[0]!r} is not a layer of the model; its layers: "
                                f"{', '.join(model_layers)}")
        out[region] = chosen
    return out


def _default_work_root() -> Path:
    from neurofit.data.fetch import cache_dir

    return cache_dir() / "work"


def _check_run_options(steps: Any, device: Any, out: Any, work_dir: Any) -> None:
    """Options the user typed fail in one line before any model, data or work is touched."""
    from neurofit.atomic import check_writable_target
    from neurofit.extract.extract import check_steps, resolve_device

    if steps is not None:
        check_steps(steps)
    resolve_device(device)
    if out is not None:
        check_writable_target(out)
    if work_dir is not None and Path(work_dir).exists() and not Path(work_dir).is_dir():
        raise NeurofitError(f"work_dir {work_dir} is a file, not a directory")


def score(
    model: Any,
    benchmark: str | os.PathLike[str] | Benchmark,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    arch: str | None = None,
    layers: Sequence[str] | Mapping[str, str] | None = None,
    grid: bool = False,
    data: tuple[xr.DataArray, StimulusSet] | None = None,
    device: str | None = None,
    out: str | os.PathLike[str] | None = None,
    work_dir: str | os.PathLike[str] | None = None,
    keep_work: bool = False,
    steps: int | None = None,
    reduction: Any = "default",
    cache: bool = True,
    progress: bool | None = None,
    created: str | None = None,
    model_id: str | None = None,
    runner: Any = None,
    weights: str = "auto",
    **config: Any,
) -> xr.Dataset:
    """Score a model against a benchmark; return (and optionally write) its ScoreSet.

    Parameters
    ----------
    model : str, path, TemporalModel or ActivationSet
        A zoo name, an import path ``package.module:factory``, a checkpoint file (``arch`` names its
        architecture unless the file does), a model object, or precomputed features
        (:func:`activations_from_arrays`).
    benchmark : str, path or Benchmark
        A benchmark id (``neurofit.scoring.benchmark.list_benchmarks``) or a TOML file.
    checkpoint, arch : optional
        Weights for a zoo/import-path ``model``, or the architecture of a checkpoint ``model``.
    weights : {"auto", "trained", "random"}
        Which weights a zoo name gets (:func:`resolve_model`): by default its shipped trained checkpoint when
        neurofit has one, else random init (seed 0); ``"random"`` scores the same architecture untrained.
        The ScoreSet's ``weights`` attr says which (``trained: ...`` or ``untrained (random init, seed 0)``).
    layers : sequence of str or mapping, optional
        Score these layers without layer commitment: ``["IT"]`` (every region), ``["V4=conv3", "IT=conv4"]``
        or ``{"IT": "conv4"}``. Latency offsets are still committed on the held-out stimuli.
    grid : bool
        Also score every layer x every driven step against every bin (``grid_ceiled``, ``grid_r``).
    data : (recording, StimulusSet), optional
        Use this recording instead of the benchmark's dataset. Precomputed features need no images:
        ``(recording, None)``.
    device : str, optional
        Torch device for extraction and regression (default CUDA when available). CPU runs are bit-for-bit
        reproducible.
    out : path, optional
        Write the ScoreSet there (NetCDF, atomically).
    work_dir : path, optional
        Root of the resumable work directories (default ``$NEUROFIT_HOME/work``); each run uses
        ``<work_dir>/<hash of its inputs>``, removed after success unless ``keep_work``.
    steps : int, optional
        Unroll length (default: enough 10 ms steps to cover the benchmark's last bin; 1 for feedforward).
    reduction : optional
        Feature reduction for extraction (default ``neurofit.extract.reduce.DEFAULT_REDUCTION``: per layer every
        feature, an exact Gram-matrix compression, or a seeded random projection to 1000 features where the
        stimuli x steps are too many; ``None``: every feature).
    created : str, optional
        The ScoreSet's ``created`` attr (default: now, UTC); fix it to make files byte-identical.
    runner : DaskRunner, optional
        Where the work units run (:class:`neurofit.runners.dask_runner.DaskRunner`); default: in this process.
    **config
        Architecture arguments for zoo models (``width=...``).

    Returns
    -------
    xarray.Dataset
        The ScoreSet: ``r``, ``ceiling``, ``ceiled`` (neuroid, time_bin), ``r_fold`` (fold, neuroid,
        time_bin), ``median_ceiled`` with ``_low``/``_high`` (stimulus bootstrap) and ``_sites_low/high``
        (site bootstrap) per (region, time_bin), optional grid, and provenance attrs.

    Example
    -------
    >>> scores = score("cornet_z", "synthetic-ventral-it-temporal", width=8)  # doctest: +SKIP
    >>> scores.median_ceiled.sel(region="IT")  # doctest: +SKIP
    """
    _check_run_options(steps, device, out, work_dir)
    bench = load_benchmark(benchmark)
    if bench.datasets:
        return _score_pooled(model, bench, checkpoint=checkpoint, arch=arch, layers=layers, grid=grid, data=data,
                             device=device, out=out, work_dir=work_dir, keep_work=keep_work, steps=steps,
                             reduction=reduction, cache=cache, progress=progress, created=created,
                             model_id=model_id, runner=runner, weights=weights, **config)
    # the model first: a wrong name or checkpoint fails before any data is generated or fetched
    resolved, default_id, weights_sha, weights_text = resolve_model(model, checkpoint, arch, weights, **config)
    if progress is not False:
        print(f"neurofit: scoring {model_id or default_id} on {bench.id}: weights {weights_text}", file=sys.stderr)
    from neurofit.extract.activations import ActivationSet

    precomputed = isinstance(resolved, ActivationSet)  # features given: no image is shown, no stimulus set needed
    recording, stimuli = data if data is not None else load_benchmark_data(bench, images=not precomputed)
    if stimuli is None and not precomputed:
        raise NeurofitError("a model must be shown the stimuli: give data=(recording, stimulus_set); only "
                            "precomputed features (an ActivationSet) are scored without a stimulus set")
    validate(recording, stimuli)
    rec = prepare_recording(recording, bench)
    # trial slots follow the repetition index (Brain-Score halves repetition indices, not arrival order)
    rec = rec.isel(presentation=np.lexsort((rec.coords["repetition"].values, rec.coords["stimulus_id"].values)))
    rec_sha = recording_sha256(rec)
    rec, sites_missing, sites_dropped = apply_missing_data_rule(rec)  # missing data shrinks a site, never a region
    averaged = average_repetitions(rec)
    all_ids = [str(s) for s in averaged.coords["stimulus_id"].values]
    object_names = averaged.coords["object_name"].values.astype(str) if "object_name" in averaged.coords else None
    commit_ids, score_ids = commitment_split(all_ids, bench.commitment_fraction, bench.commitment_seed, object_names)
    commit_ids, score_ids = sorted(commit_ids), sorted(score_ids)
    position = {sid: i for i, sid in enumerate(all_ids)}
    trials_all, trial_ids = trial_array(rec)
    trial_pos = {str(sid): i for i, sid in enumerate(trial_ids)}

    model_id = model_id or default_id
    if precomputed:
        if not (isinstance(reduction, str) and reduction == "default"):
            raise NeurofitError("reduction applies to a model's activations as they are extracted; these are "
                                "precomputed features: reduce them before passing them")
        acts = resolved
        reduction_attr = dict(acts.attrs.get("reduction") or {"method": "none by neurofit (precomputed features)"})
        unroll = max(acts.n_steps(layer) for layer in acts.layers)
        activation_key = acts.attrs.get("cache_key", "") or _activation_hash(acts)
    else:
        feedforward = int(getattr(resolved, "default_steps", 1)) == 1
        unroll = int(steps) if steps is not None else (1 if feedforward else _needed_steps(bench))
        from neurofit.extract.extract import extract_activations
        from neurofit.extract.reduce import DEFAULT_REDUCTION, reduction_spec

        red = DEFAULT_REDUCTION if isinstance(reduction, str) and reduction == "default" else reduction
        shown = dataclasses.replace(stimuli.subset(all_ids), degrees=bench.degrees, _sha256=None)
        acts = extract_activations(resolved, shown.place_on_screen(bench.model_degrees), steps=unroll,
                                   reduction=red, device=device, cache=cache, progress=progress)
        activation_key = str(acts.attrs.get("cache_key", ""))
        reduction_attr = dict(acts.attrs.get("reduction") or reduction_spec(red))
    missing = [sid for sid in all_ids if sid not in set(acts.stimulus_ids)]
    if missing:
        source = str(acts.attrs.get("source", "")) if precomputed else ""
        raise NeurofitError(f"stimulus_id {missing[0]!r} of the recording is not in the features"
                            f"{f' {source}' if source else ''} ({len(missing)} of {len(all_ids)} recorded stimuli "
                            "missing): give features for every stimulus of the benchmark")
    act_pos = {sid: i for i, sid in enumerate(acts.stimulus_ids)}

    policy = bench.mapping_policy
    if unroll == 1 and policy in ("one_to_one", "portion"):
        policy = "constant"  # a feedforward response stands for every bin, declared in the attrs
    offsets = bench.offsets_ms if policy in OFFSET_POLICIES else (0.0,)
    model_layers = list(acts.layers)
    candidates_by_region = _parse_layers(layers, bench.regions, model_layers)
    for layer in {name for names in candidates_by_region.values() for name in names}:
        if not acts.driven_steps(layer):
            raise NeurofitError(f"layer {layer!r} never receives image-driven input within the {unroll} steps "
                                "unrolled; unroll more steps (--steps) or choose other layers")

    dataset_sha = hashlib.sha256((rec_sha + (stimuli.sha256() if stimuli is not None else "")).encode()).hexdigest()
    run_key = hashlib.sha256(json.dumps({
        "benchmark": bench.sha256(), "activations": activation_key, "weights": weights_sha, "dataset": dataset_sha,
        "layers": {k: v for k, v in candidates_by_region.items()}, "grid": grid, "policy": policy,
        "neurofit": __version__, "device": str(device),
    }, sort_keys=True).encode()).hexdigest()[:24]
    work = Path(work_dir if work_dir is not None else _default_work_root()) / run_key
    store = UnitStore(work)
    # a DaskRunner (neurofit.runners.dask_runner) sends the units to a cluster; they are saved here all the same
    runner = LocalRunner(store, progress=progress) if runner is None else runner.bind(store, progress=progress)
    site_region = rec.coords["region"].values.astype(str)
    regions = list(bench.regions)

    def problem_for(ids: list[str], region_sites: np.ndarray, refs_per_bin: Sequence[Sequence[tmap.FeatureRef]],
                    splits: Any, features: _Features) -> _Problem:
        rows = np.array([position[s] for s in ids])
        targets = np.asarray(averaged.values, dtype=np.float64)[rows][:, region_sites]
        feats = [features.combine(refs) for refs in refs_per_bin]
        return _Problem(bench, feats, targets, splits.train, splits.test, device)

    from neurofit.regression.splits import make_splits

    def object_labels(ids: list[str]) -> np.ndarray | None:
        return None if object_names is None else np.array([object_names[position[s]] for s in ids])

    # -- commitment on the held-out stimuli ----------------------------------------------------------------
    committed: dict[str, tuple[str, float]] = {}
    criteria_attr: dict[str, dict[str, float]] = {}
    commitment_folds: set[int] = set()
    commitment_components: set[int] = set()
    narrow = bench.temporal_mode != "span_time"  # exact Gram compression of wide designs (see _Features)
    commit_features = _Features(acts, np.array([act_pos[s] for s in commit_ids], dtype=np.int64), narrow=narrow)
    for region in regions:
        cands = [(layer, float(off)) for layer in candidates_by_region[region] for off in offsets]
        if policy == "graded":
            cands = [(model_layers[0], float(off)) for off in offsets]
        if len(cands) == 1:
            committed[region] = cands[0]
            continue
        if not commit_ids:
            raise NeurofitError(f"benchmark {bench.id!r} holds no stimuli out for commitment (commitment.fraction "
                                f"= 0): name the layer of each region with --layers")
        sites = np.flatnonzero(site_region == region)
        with warnings.catch_warnings():
            # a few stimuli per object in the held-out set: sklearn warns about thin strata, expectedly
            warnings.simplefilter("ignore", UserWarning)
            splits = make_splits(commit_ids, scheme="kfold", object_name=object_labels(commit_ids),
                                 n_splits=min(bench.commitment_splits, len(commit_ids)), seed=bench.commitment_seed)
        criteria: dict[tuple[str, float], float] = {}
        for layer, off in cands:
            mapping = _mapping(bench, policy, acts, layer, off, model_layers)
            prob = problem_for(commit_ids, sites, mapping.refs, splits, commit_features)
            commitment_folds.add(int(splits.n_folds))
            commitment_components |= _components_used(prob)
            units = [WorkUnit("commit", region, {"layer": layer, "offset_ms": off}, f) for f in range(splits.n_folds)]
            preds = [res["prediction"] for _, res in runner.map(prob, units,
                                                                 desc=f"commit {region} {layer}@{off:g}ms")]
            r, _, _ = _r_from_folds(dataclasses.replace(bench, split_scheme="kfold"), preds, prob.targets,
                                    splits.test)
            criteria[(layer, off)] = commitment_criterion(r, mapping.mapped)
        committed[region] = choose(criteria)
        criteria_attr[region] = {f"{layer}@{off:g}ms": value for (layer, off), value in criteria.items()}
    del commit_features

    # -- scoring on the scored stimuli ----------------------------------------------------------------------
    with warnings.catch_warnings():
        # objects with fewer stimuli than folds: sklearn warns, the stratification is still the best possible
        warnings.simplefilter("ignore", UserWarning)
        splits = make_splits(score_ids, scheme=bench.split_scheme, object_name=object_labels(score_ids),
                             n_splits=bench.n_splits, seed=bench.split_seed)
    score_features = _Features(acts, np.array([act_pos[s] for s in score_ids], dtype=np.int64), narrow=narrow)
    trials = trials_all[[trial_pos[s] for s in score_ids]]
    targets_all = np.asarray(averaged.values, dtype=np.float64)[[position[s] for s in score_ids]]
    n_sites, n_bins = targets_all.shape[1], targets_all.shape[2]
    r = np.full((n_sites, n_bins), np.nan)
    r_fold = np.full((splits.n_folds, n_sites, n_bins), np.nan)
    ceiled = np.full((n_sites, n_bins), np.nan)
    ceiling = _ceiling(bench, trials)
    pooled_all = np.full(targets_all.shape, np.nan)
    mappings: dict[str, tmap.BinMapping] = {}
    components: dict[str, set[int]] = {}
    for region in regions:
        layer, off = committed[region]
        mapping = _mapping(bench, policy, acts, layer, off, model_layers)
        mappings[region] = mapping
        sites = np.flatnonzero(site_region == region)
        prob = problem_for(score_ids, sites, mapping.refs, splits, score_features)
        components[region] = _components_used(prob)
        units = [WorkUnit("score", region, {"layer": layer, "offset_ms": off}, f) for f in range(splits.n_folds)]
        preds = [res["prediction"] for _, res in runner.map(prob, units,
                                                             desc=f"score {region} {layer}@{off:g}ms")]
        r_region, r_fold_region, pooled = _r_from_folds(bench, preds, prob.targets, splits.test)
        r[sites], r_fold[:, sites] = r_region, r_fold_region
        ceiled[sites] = _ceil(bench, r_region, ceiling[sites], pooled, trials[:, :, sites])
        if pooled is not None:
            pooled_all[:, sites] = pooled

    # -- aggregates with bootstrap CIs ----------------------------------------------------------------------
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        medians = np.stack([np.nanmedian(ceiled[site_region == region], axis=0) for region in regions])
        median_r = np.stack([np.nanmedian(r[site_region == region], axis=0) for region in regions])
        median_ceiling = np.stack([np.nanmedian(ceiling[site_region == region], axis=0) for region in regions])
    stim_low = np.full_like(medians, np.nan)
    stim_high = np.full_like(medians, np.nan)
    site_low = np.full_like(medians, np.nan)
    site_high = np.full_like(medians, np.nan)
    r_stim_low, r_stim_high = np.full_like(medians, np.nan), np.full_like(medians, np.nan)
    r_site_low, r_site_high = np.full_like(medians, np.nan), np.full_like(medians, np.nan)
    stimulus_ci = bench.n_bootstrap > 0 and bench.split_scheme == "kfold" and bench.ceiling == "split_half" \
        and bench.normalisation != "feve"
    # the median r needs no ceiling: its stimulus bootstrap only needs every stimulus predicted once (K-fold)
    stimulus_ci_r = bench.n_bootstrap > 0 and bench.split_scheme == "kfold"
    if bench.n_bootstrap > 0:
        from neurofit.stats.bootstrap import bootstrap_stimuli

        with warnings.catch_warnings():
            # bins no step maps to are NaN in every draw: their CI is NaN, without a warning per bin
            warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
            if stimulus_ci:
                # each stimulus is predicted once (K-fold): r and the split-half ceiling are redrawn together
                boot = bootstrap_stimuli(pooled_all, targets_all, trials, groups=site_region,
                                         rule=bench.normalisation, n_boot=bench.n_bootstrap,
                                         seed=bench.bootstrap_seed, n_halvings=bench.ceiling_splits,
                                         ceiling_seed=bench.ceiling_seed)
                order = [list(boot["groups"]).index(region) for region in regions]
                stim_low, stim_high = centred_interval(boot["draws"][:, order], medians)
            if stimulus_ci_r:
                boot = bootstrap_stimuli(pooled_all, targets_all, None, groups=site_region,
                                         n_boot=bench.n_bootstrap, seed=bench.bootstrap_seed)
                order = [list(boot["groups"]).index(region) for region in regions]
                r_stim_low, r_stim_high = centred_interval(boot["draws"][:, order], median_r)
        site_low, site_high = _site_interval(ceiled, site_region, regions, medians, bench)
        r_site_low, r_site_high = _site_interval(r, site_region, regions, median_r, bench)

    neuroid_coords = {name: ("neuroid", rec.coords[name].values) for name, coord in rec.coords.items()
                      if coord.dims == ("neuroid",)}
    coords = {
        **neuroid_coords,
        "time_bin_start": ("time_bin", rec.coords["time_bin_start"].values.astype(float)),
        "time_bin_end": ("time_bin", rec.coords["time_bin_end"].values.astype(float)),
        "fold": ("fold", np.arange(splits.n_folds)),
        # the aggregates' region labels: a coordinate named 'region' would clash with the sites' 'region'
        "region_name": ("region", np.array(regions)),
    }
    variables: dict[str, Any] = {
        "r": (("neuroid", "time_bin"), r),
        "ceiling": (("neuroid", "time_bin"), ceiling),
        "ceiled": (("neuroid", "time_bin"), ceiled),
        "r_fold": (("fold", "neuroid", "time_bin"), r_fold),
        "median_ceiled": (("region", "time_bin"), medians),
        "median_ceiled_low": (("region", "time_bin"), stim_low),
        "median_ceiled_high": (("region", "time_bin"), stim_high),
        "median_ceiled_sites_low": (("region", "time_bin"), site_low),
        "median_ceiled_sites_high": (("region", "time_bin"), site_high),
        "median_r": (("region", "time_bin"), median_r),
        "median_r_low": (("region", "time_bin"), r_stim_low),
        "median_r_high": (("region", "time_bin"), r_stim_high),
        "median_r_sites_low": (("region", "time_bin"), r_site_low),
        "median_r_sites_high": (("region", "time_bin"), r_site_high),
        "median_ceiling": (("region", "time_bin"), median_ceiling),
    }
    if bench.aggregate == "brainscore":
        from neurofit.regression.ceiling import brainscore_ceiling, ceil_scores

        bs_r = np.stack([np.nanmean(np.nanmedian(r_fold[:, site_region == region], axis=1), axis=0)
                         for region in regions])
        bs_ceiling = np.stack([brainscore_ceiling(trials[:, :, site_region == region], bench.ceiling_splits,
                                                  bench.ceiling_seed)[1] for region in regions])
        rule = bench.normalisation if bench.normalisation != "feve" else "r2_over_ceiling"
        per_split = np.stack([np.nanmedian(r_fold[:, site_region == region], axis=1) for region in regions])
        variables["benchmark_r"] = (("region", "time_bin"), bs_r)
        # Brain-Score's error: population std over splits / sqrt(n_splits)
        variables["benchmark_r_error"] = (("region", "time_bin"),
                                          np.nanstd(per_split, axis=1) / np.sqrt(per_split.shape[1]))
        variables["benchmark_ceiling"] = (("region", "time_bin"), bs_ceiling)
        variables["benchmark_score"] = (("region", "time_bin"), ceil_scores(bs_r, bs_ceiling, rule))

    if grid:
        grid_ceiled, grid_r, grid_layers, max_steps = _grid(bench, acts, model_layers, score_ids, act_pos,
                                                            targets_all, splits, trials, ceiling, site_region,
                                                            regions, runner, device)
        coords["layer"] = ("layer", np.array(grid_layers))
        coords["step"] = ("step", np.arange(max_steps))
        variables["grid_ceiled"] = (("region", "layer", "step", "time_bin"), grid_ceiled)
        variables["grid_r"] = (("region", "layer", "step", "time_bin"), grid_r)

    if bench.metric == "pls":
        fitted = set().union(*components.values()) if components else set()
        metric = f"pls{_span(fitted) or bench.n_components}-{bench.algorithm}"
    else:
        metric = bench.metric
    attrs = {
        "benchmark": bench.id,
        "benchmark_version": bench.version,
        "benchmark_sha256": bench.sha256(),
        "model_id": model_id,
        "weights": weights_text,
        "weights_sha256": weights_sha,
        "dataset": bench.dataset if data is None else str(recording.attrs.get("identifier", "user data")),
        "dataset_sha256": dataset_sha,
        "neurofit_version": __version__,
        "seed": int(bench.split_seed),
        "split_scheme": bench.split_scheme,
        "n_splits": int(splits.n_folds),
        "temporal_mode": bench.temporal_mode,
        "metric": metric,
        "n_components_requested": int(bench.n_components) if bench.metric == "pls" else 0,
        "n_components_fitted": {region: _span(used) for region, used in components.items()},
        "n_components_commitment": _span(commitment_components),
        "reduction": reduction_attr,
        "n_features": {layer: int(acts.n_features(layer)) for layer in model_layers},
        "n_features_raw": {str(k): int(v) for k, v in dict(acts.attrs.get("n_features_raw") or {}).items()},
        "regression_device": _regression_device(device),
        "ceiling_method": bench.ceiling,
        "ceiling_halvings": int(bench.ceiling_splits) if bench.ceiling != "none" else 0,
        "ceiling_seed": int(bench.ceiling_seed),
        "normalisation": bench.normalisation,
        "aggregate": bench.aggregate,
        "mapping_policy": policy,
        "mapping_policy_benchmark": bench.mapping_policy,
        "committed_layers": {region: layer for region, (layer, _) in committed.items()},
        "committed_offsets_ms": {region: off for region, (_, off) in committed.items()},
        "commitment_criteria": criteria_attr,
        "commitment": (f"{len(commit_ids)} stimuli held out (fraction {bench.commitment_fraction}, seed "
                       f"{bench.commitment_seed}); "
                       + (f"candidates cross-validated ({_span(commitment_folds)}-fold) on them only; criterion: "
                          "mean over bins of the median r over sites" if commitment_folds
                          else "not used: one candidate layer and offset per region")),
        "commitment_fraction": float(bench.commitment_fraction),
        "commitment_seed": int(bench.commitment_seed),
        "commitment_n_splits": int(max(commitment_folds)) if commitment_folds else 0,
        "offsets_ms_candidates": [float(o) for o in offsets],
        "bins_not_mapped": {region: _bin_ranges(rec, ~np.asarray(m.mapped)) for region, m in mappings.items()},
        "layers_named": layers is not None,
        "mapping": {region: m.to_attrs() for region, m in mappings.items()},
        "unroll_steps": int(unroll),
        "n_stimuli_scored": len(score_ids),
        "n_stimuli_commitment": len(commit_ids),
        "n_bootstrap": int(bench.n_bootstrap),
        "bootstrap_seed": int(bench.bootstrap_seed),
        "bootstrap": (f"{bench.n_bootstrap} draws (seed {bench.bootstrap_seed}); 95% intervals of the median "
                      f"over sites ({CENTRED_INTERVAL}); over stimuli with the ceiling recomputed in each draw"
                      + ("" if stimulus_ci else " (not computed: needs K-fold splits and the split-half ceiling)")
                      + ", and over sites"),
        "missing_data": MISSING_DATA_RULE,
        "sites_missing_stimuli": sites_missing,
        "sites_dropped": sites_dropped,
        "created": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    scoreset = xr.Dataset(variables, coords=coords, attrs=attrs)
    from neurofit.scoreset import bin_reliability

    reliability = bin_reliability(scoreset)
    scoreset.attrs["bins_unreliable"] = reliability.unreliable_text(scoreset)
    scoreset.attrs["reliability_rule"] = reliability.rule
    if out is not None:
        write_scoreset(scoreset, out)
    if runner.reused:
        print(f"neurofit: resumed {runner.reused} finished work units from {work}", file=sys.stderr)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
    return scoreset


BASELINES = ("random",)


def baseline_path(out: str | os.PathLike[str], baseline: str = "random") -> Path:
    """Where a baseline's ScoreSet goes beside the model's: ``<stem>-<baseline>.nc``.

    Example
    -------
    >>> baseline_path("out/bl-it.nc").as_posix()
    'out/bl-it-random.nc'
    """
    out = Path(out)
    return out.with_name(f"{out.stem}-{baseline}{out.suffix or '.nc'}")


def score_with_baseline(
    model: Any,
    benchmark: str | os.PathLike[str] | Benchmark,
    *,
    baseline: str = "random",
    out: str | os.PathLike[str] | None = None,
    baseline_out: str | os.PathLike[str] | None = None,
    **options: Any,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Score ``model`` and, beside it, the same architecture with random weights (the ``random`` baseline).

    The two ScoreSets are scored identically (same data, splits, commitment rule, reduction and seeds); only
    the weights differ, and each ScoreSet's ``weights`` attr says which it has (``trained: ...`` or
    ``untrained (random init, seed 0)``). The gap between them is what training adds; a trained model's
    number close to its baseline's says the architecture, not the learned weights, explains the data.
    ``baseline_out`` defaults to :func:`baseline_path` of ``out``.

    Example
    -------
    >>> trained, random = score_with_baseline("cornet_z", "synthetic-ventral-it-temporal")  # doctest: +SKIP
    >>> trained.attrs["weights"][:8], random.attrs["weights"]  # doctest: +SKIP
    ('trained:', 'untrained (random init, seed 0)')
    """
    if baseline not in BASELINES:
        raise NeurofitError(f"unknown baseline {baseline!r}; baselines: {', '.join(BASELINES)}")
    if options.get("weights", "auto") == "random":
        raise NeurofitError("the random baseline is scored beside a model; weights='random' would score it twice")
    from neurofit.extract.activations import ActivationSet

    if isinstance(model, ActivationSet):
        raise NeurofitError("a random baseline needs a model architecture to re-initialise; these are "
                            "precomputed features")
    if baseline_out is None and out is not None:
        baseline_out = baseline_path(out, baseline)
    scored = score(model, benchmark, out=out, **options)
    base_options = {k: v for k, v in options.items() if k != "model_id"}
    if options.get("model_id"):
        base_options["model_id"] = f"{options['model_id']} (random init)"
    base = score(model, benchmark, out=baseline_out, weights="random", **base_options)
    return scored, base


# per-session attrs of a pooled ScoreSet: always given per session, even where the sessions agree
_PER_SESSION_ATTRS = ("dataset", "dataset_sha256", "ceiling_method", "committed_layers", "committed_offsets_ms",
                      "commitment_criteria", "commitment", "mapping", "n_stimuli_scored", "n_stimuli_commitment")


def has_trial_repeats(recording: xr.DataArray) -> bool:
    """Whether some stimulus of ``recording`` was shown more than once (a noise ceiling needs repeats).

    Example
    -------
    >>> from neurofit.data.recording import make_recording
    >>> rec = make_recording(np.ones((2, 1, 1)), stimulus_id=["a", "b"], repetition=[0, 0], neuroid_id=["n"],
    ...                      region="V4", time_bin_start=[50], time_bin_end=[150], identifier="t",
    ...                      stimulus_set_identifier="t")
    >>> has_trial_repeats(rec)
    False
    """
    ids = np.asarray(recording.coords["stimulus_id"].values).astype(str)
    return len(np.unique(ids)) < len(ids)


def _score_pooled(model: Any, bench: Benchmark, *, grid: bool, data: Any, out: str | os.PathLike[str] | None,
                  created: str | None, **kwargs: Any) -> xr.Dataset:
    """A pooled benchmark: each session scored on its own (stimuli, splits, commitment), sites concatenated.

    Sessions without trial repeats are scored with no ceiling (``ceiling`` and ``ceiled`` NaN, ``r`` kept).
    Per region: ``median_ceiled`` over the sites that have a ceiling, ``median_r`` over all sites, and per
    session ``session_median_r`` / ``session_median_ceiled``.
    """
    if grid:
        raise NeurofitError(f"benchmark {bench.id!r} pools sessions with different stimuli: a layer x step grid is "
                            "per session; score one session's benchmark with --grid instead")
    if data is not None:
        raise NeurofitError(f"benchmark {bench.id!r} pools the sessions {', '.join(bench.datasets)}: data= replaces "
                            "one dataset; score a single-dataset benchmark with your data instead")
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts: list[xr.Dataset] = []
    with_ceiling: list[str] = []
    for dataset in bench.datasets:
        sub = dataclasses.replace(bench, id=f"{bench.id}/{dataset}", dataset=dataset, datasets=())
        recording, stimuli = load_benchmark_data(sub)
        if has_trial_repeats(recording) and bench.ceiling != "none":
            with_ceiling.append(dataset)
        else:
            # repetition-averaged responses only: a ceiling cannot be measured, so none is reported
            sub = dataclasses.replace(sub, ceiling="none", normalisation="r2_over_ceiling",
                                      aggregate="median")
        part = score(model, sub, data=(recording, stimuli), created=created, **kwargs)
        parts.append(part.assign_coords(session=("neuroid", np.full(part.sizes["neuroid"], dataset))))

    names = set.intersection(*[{n for n, c in p.coords.items() if c.dims == ("neuroid",)} for p in parts])
    per_site = [p[["r", "ceiling", "ceiled", "r_fold"]].reset_coords(
        [n for n, c in p.coords.items() if c.dims == ("neuroid",) and n not in names], drop=True) for p in parts]
    sites = xr.concat(per_site, dim="neuroid", join="outer", coords="minimal", compat="override")
    ids = sites["neuroid_id"].values.astype(str)
    if len(set(ids.tolist())) != len(ids):
        raise NeurofitError(f"benchmark {bench.id!r}: the sessions share neuroid ids, so their sites cannot be pooled")
    r, ceiling, ceiled = (np.asarray(sites[name].values, dtype=np.float64) for name in ("r", "ceiling", "ceiled"))
    site_region = sites["region"].values.astype(str)
    site_session = sites["session"].values.astype(str)
    regions = list(bench.regions)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN: a region or session without ceilings

        def medians(values: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
            keep = np.ones(len(values), dtype=bool) if mask is None else mask
            return np.stack([np.nanmedian(values[keep & (site_region == region)], axis=0) for region in regions])

        variables: dict[str, Any] = {
            "median_ceiled": (("region", "time_bin"), medians(ceiled)),
            "median_r": (("region", "time_bin"), medians(r)),
            "median_ceiling": (("region", "time_bin"), medians(ceiling)),
            "session_median_r": (("session", "region", "time_bin"),
                                 np.stack([medians(r, site_session == d) for d in bench.datasets])),
            "session_median_ceiled": (("session", "region", "time_bin"),
                                      np.stack([medians(ceiled, site_session == d) for d in bench.datasets])),
        }
    nan = np.full((len(regions), r.shape[1]), np.nan)
    if len(with_ceiling) == 1:
        # the ceiled sites are one session's: its stimulus bootstrap is the pooled median's
        source = parts[bench.datasets.index(with_ceiling[0])]
        low, high = source["median_ceiled_low"].values, source["median_ceiled_high"].values
    else:
        low, high = nan, nan.copy()
    variables["median_ceiled_low"] = (("region", "time_bin"), low)
    variables["median_ceiled_high"] = (("region", "time_bin"), high)
    for name, values in (("median_ceiled", ceiled), ("median_r", r)):
        site_low, site_high = nan, nan.copy()
        if bench.n_bootstrap > 0:
            site_low, site_high = _site_interval(values, site_region, regions, variables[name][1], bench)
        variables[f"{name}_sites_low"] = (("region", "time_bin"), site_low)
        variables[f"{name}_sites_high"] = (("region", "time_bin"), site_high)

    attrs: dict[str, Any] = {}
    for key in parts[0].attrs:
        values = [p.attrs.get(key) for p in parts]
        same = all(json.dumps(v, sort_keys=True, default=str) == json.dumps(values[0], sort_keys=True, default=str)
                   for v in values)
        attrs[key] = values[0] if same and key not in _PER_SESSION_ATTRS else dict(zip(bench.datasets, values))
    attrs.update({
        "benchmark": bench.id,
        "benchmark_version": bench.version,
        "benchmark_sha256": bench.sha256(),
        "dataset_sha256": hashlib.sha256("".join(p.attrs["dataset_sha256"] for p in parts).encode()).hexdigest(),
        "dataset_sha256_per_session": dict(zip(bench.datasets, (p.attrs["dataset_sha256"] for p in parts))),
        "sessions": list(bench.datasets),
        "sessions_with_ceiling": with_ceiling,
        "sessions_without_ceiling": [d for d in bench.datasets if d not in with_ceiling],
        "n_sites_per_session": {d: int((site_session == d).sum()) for d in bench.datasets},
        "pooling": ("each session scored on its own (own stimuli, splits and layer commitment), sites "
                    "concatenated; sessions without trial repeats have no ceiling (ceiling, ceiled NaN; r kept); "
                    "median_ceiled is over the sites with a ceiling, median_r over all sites; the stimulus "
                    "bootstrap CI is given only when one session has ceilings"),
        "created": created,
    })
    scoreset = xr.Dataset(variables, coords={"region_name": ("region", np.array(regions)),
                                             "session_id": ("session", np.array(bench.datasets))}, attrs=attrs)
    scoreset = xr.merge([sites, scoreset], combine_attrs="override")
    scoreset.attrs = attrs
    if out is not None:
        write_scoreset(scoreset, out)
    return scoreset


def _activation_hash(acts: Any) -> str:
    h = hashlib.sha256()
    for layer in acts.layers:
        h.update(layer.encode())
        h.update(np.ascontiguousarray(acts.dataset[layer].values).tobytes())
        h.update(acts.driven(layer).tobytes())
    h.update("|".join(acts.stimulus_ids).encode())
    return h.hexdigest()


def _grid(bench: Benchmark, acts: Any, model_layers: list[str], score_ids: list[str], act_pos: dict[str, int],
          targets: np.ndarray, splits: Any, trials: np.ndarray, ceiling: np.ndarray, site_region: np.ndarray,
          regions: list[str], runner: LocalRunner, device: str | None
          ) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    """Median ceiled score and median r per region for every layer x driven step x bin (NaN elsewhere)."""
    max_steps = max(acts.n_steps(layer) for layer in model_layers)
    n_bins = targets.shape[2]
    grid_ceiled = np.full((len(regions), len(model_layers), max_steps, n_bins), np.nan)
    grid_r = np.full_like(grid_ceiled, np.nan)
    features = _Features(acts, np.array([act_pos[s] for s in score_ids], dtype=np.int64))
    for li, layer in enumerate(model_layers):
        for step in acts.driven_steps(layer):
            x = features.get(layer, step)
            prob = _Problem(bench, [x] * n_bins, targets, splits.train, splits.test, device)
            units = [WorkUnit("grid", "all", {"layer": layer, "step": int(step)}, f) for f in range(splits.n_folds)]
            preds = [res["prediction"] for _, res in runner.map(prob, units,
                                                                 desc=f"grid {layer}@{step}")]
            r, _, pooled = _r_from_folds(bench, preds, targets, splits.test)
            ceiled = _ceil(bench, r, ceiling, pooled, trials)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                for k, region in enumerate(regions):
                    grid_ceiled[k, li, step] = np.nanmedian(ceiled[site_region == region], axis=0)
                    grid_r[k, li, step] = np.nanmedian(r[site_region == region], axis=0)
        features._cache.clear()
    return grid_ceiled, grid_r, model_layers, max_steps


# ------------------------------------------------------------------------------------------------ files, text
def write_scoreset(scoreset: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write a ScoreSet as NetCDF4 atomically (nested attrs are JSON-encoded and restored on reading)."""
    from neurofit.data.io import write_netcdf

    return write_netcdf(scoreset, path)


def read_scoreset(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a ScoreSet written by :func:`write_scoreset`; a file that is not one is a clear error."""
    from neurofit.data.io import read_dataset

    ds = read_dataset(path)
    missing = [name for name in ("r", "ceiled") if name not in ds.data_vars]
    if missing:
        raise NeurofitError(f"{path} is not a ScoreSet: it has no variable {missing[0]!r}")
    return ds


def region_names(scoreset: xr.Dataset) -> list[str]:
    """Labels of the aggregates' ``region`` dim (the ``region_name`` coordinate).

    Example
    -------
    >>> region_names(xr.Dataset(coords={"region_name": ("region", ["V4", "IT"])}))
    ['V4', 'IT']
    """
    if "region_name" not in scoreset.coords:
        raise NeurofitError("this ScoreSet has no per-region aggregates (no 'region_name' coordinate)")
    return [str(v) for v in scoreset["region_name"].values]


def region_values(scoreset: xr.Dataset, name: str, region: str) -> np.ndarray:
    """The per-bin values of aggregate ``name`` for ``region``.

    Example
    -------
    >>> ds = xr.Dataset({"median_ceiled": (("region", "time_bin"), [[0.1], [0.2]])},
    ...                 coords={"region_name": ("region", ["V4", "IT"])})
    >>> region_values(ds, "median_ceiled", "IT").tolist()
    [0.2]
    """
    names = region_names(scoreset)
    if region not in names:
        raise NeurofitError(f"this ScoreSet has no region {region!r}; it has {', '.join(names)}")
    return np.asarray(scoreset[name].isel(region=names.index(region)).values)


def summary_table(scoreset: xr.Dataset) -> str:
    """Region x time bin: median ceiled score with its stimulus-bootstrap CI (and site CI), as text.

    Example
    -------
    >>> ds = xr.Dataset({"median_ceiled": (("region", "time_bin"), [[0.5]]),
    ...                  "median_ceiled_low": (("region", "time_bin"), [[0.4]]),
    ...                  "median_ceiled_high": (("region", "time_bin"), [[0.6]])},
    ...                 coords={"region_name": ("region", ["IT"]), "time_bin_start": ("time_bin", [70.0]),
    ...                         "time_bin_end": ("time_bin", [170.0])})
    >>> print(summary_table(ds))
    region  window (ms)  median ceiled  95% CI (stimuli)  95% CI (sites)
    IT      70-170               0.500     [0.400, 0.600]               -
    """
    def fmt(v: float) -> str:
        return "nan" if not np.isfinite(v) else f"{v:.3f}"

    rows = [("region", "window (ms)", "median ceiled", "95% CI (stimuli)", "95% CI (sites)")]
    starts = scoreset["time_bin_start"].values
    ends = scoreset["time_bin_end"].values
    names = region_names(scoreset)
    for k, region in enumerate(names):
        for b in range(len(starts)):
            med = float(scoreset["median_ceiled"].values[k, b])
            cis = []
            for low, high in (("median_ceiled_low", "median_ceiled_high"),
                              ("median_ceiled_sites_low", "median_ceiled_sites_high")):
                if low in scoreset and np.isfinite(scoreset[low].values[k, b]):
                    lo = float(scoreset[low].values[k, b])
                    hi = float(scoreset[high].values[k, b])
                    cis.append(f"[{fmt(lo)}, {fmt(hi)}]")
                else:
                    cis.append("-")
            rows.append((str(region), f"{starts[b]:g}-{ends[b]:g}", fmt(med), *cis))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        lines.append("  ".join([row[0].ljust(widths[0]), row[1].ljust(widths[1])]
                               + [cell.rjust(widths[i + 2]) for i, cell in enumerate(row[2:])]))
    if "benchmark_score" in scoreset:
        for k, region in enumerate(names):
            values = ", ".join(fmt(v) for v in scoreset["benchmark_score"].values[k])
            lines.append(f"{region} benchmark score ({scoreset.attrs.get('aggregate', '')} aggregate): {values}")
    return "\n".join(lines)


__all__ = ["activations_from_arrays", "baseline_path", "has_trial_repeats", "load_benchmark_data",
           "prepare_recording", "read_scoreset", "resolve_model", "score", "score_with_baseline", "summary_table",
           "untrained_text", "write_scoreset"]

