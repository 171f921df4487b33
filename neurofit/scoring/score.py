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
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurofit import __version__
from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError, quiet_nan
from neurofit.extract.activations import ActivationSet
from neurofit.runners.local import LocalRunner, UnitStore, WorkUnit
from neurofit.scoreset import CENTRED_INTERVAL, bin_reliability, ranges, region_medians, site_ceiled, write_scoreset
from neurofit.scoring.aggregate import aggregate, site_interval
from neurofit.scoring.benchmark import METRICS, Benchmark, load_benchmark
from neurofit.scoring.commit import Commitment, commit_layers
from neurofit.scoring.data import PreparedData, has_trial_repeats, load_benchmark_data, prepare_data
from neurofit.scoring.extraction import Extracted, extract
from neurofit.scoring.fit import (
    OFFSET_POLICIES,
    RegionScores,
    _Features,
    _Problem,
    _r_from_folds,
    _regression_device,
    _span,
    score_regions,
)
from neurofit.scoring.metric import PartitionModel, is_regression, metric_scoreset
from neurofit.scoring.metric_latency import LATENCIES, site_lags
from neurofit.scoring.missing import MISSING_DATA_RULE
from neurofit.scoring.resolve import _parse_layers, resolve_model

# ------------------------------------------------------------------------------------------------ models


# ------------------------------------------------------------------------------------------------ regression


# ------------------------------------------------------------------------------------------------ ceilings


# ------------------------------------------------------------------------------------------------ the run


def _bin_ranges(rec: xr.DataArray, mask: np.ndarray) -> str:
    """The masked time bins of ``rec`` as ``"a-b, c-d ms"`` (``""`` for none)."""
    return ranges(rec.coords["time_bin_start"].values.astype(float), rec.coords["time_bin_end"].values.astype(float),
                  np.asarray(mask, dtype=bool))


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
    metric: str | None = None,
    latency: str = "region",
    partition_with: Any = None,
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
        stimuli x steps are too many; ``None``: every feature; or a text form such as ``"sparse"`` or
        ``"auto:sparse"``, the opt-in very sparse projection: :func:`neurofit.extract.reduce.parse_reduction`).
    created : str, optional
        The ScoreSet's ``created`` attr (default: now, UTC); fix it to make files byte-identical.
    metric : str, optional
        Replace the benchmark's ``[regression] metric``: ``pls``, ``ridge``, or a metric beyond regression
        (``rsa``, ``cka``, ``reverse_pls``, ``reverse_ridge``, ``partition``: :mod:`neurofit.scoring.metric`),
        scored on the same data, commitment and time map, written in the same ScoreSet schema.
    latency : {"region", "site"}
        ``"site"`` also fits each site's latency offset on the commitment stimuli and adds its lag and scores
        beside the region-level ones (:mod:`neurofit.scoring.metric_latency`); the main score keeps the region's.
    partition_with : model or sequence of models, optional
        With ``metric="partition"``: partition the variance between this model and these other models (each
        given like ``model``: zoo name with its default weights, import path, checkpoint file, model object or
        ActivationSet) instead of between the model's first driven step and its later steps. Each other model
        is extracted (its default unroll) and committed by the same rule as ``model`` (over all its layers),
        and its features are a feature space of their own (:mod:`neurofit.scoring.metric`).
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
    bench = _with_metric(load_benchmark(benchmark), metric)
    if latency not in LATENCIES:
        raise NeurofitError(f"latency must be one of {', '.join(LATENCIES)}, got {latency!r}")
    if latency == "site" and (not is_regression(bench.regression.metric) or bench.datasets):
        raise NeurofitError("per-site latency (latency='site') is fitted for a regression metric on one dataset")
    if partition_with is not None and bench.regression.metric != "partition":
        raise NeurofitError(f"partition_with= names the other feature spaces of metric 'partition'; this run's "
                            f"metric is {bench.regression.metric!r} (metric='partition')")
    if not is_regression(bench.regression.metric) and (bench.datasets or (grid and bench.regression.metric
                                                                          not in ("cka", "rsa"))):
        raise NeurofitError(f"metric {bench.regression.metric!r} scores one dataset's committed mapping: "
                            + ("a pooled benchmark is scored by regression only" if bench.datasets
                               else "the layer x step grid is scored by regression, rsa and cka only (grid=False)"))
    if bench.datasets:
        return _score_pooled(model, bench, checkpoint=checkpoint, arch=arch, layers=layers, grid=grid, data=data,
                             device=device, out=out, work_dir=work_dir, keep_work=keep_work, steps=steps,
                             reduction=reduction, cache=cache, progress=progress, created=created,
                             model_id=model_id, runner=runner, weights=weights, **config)
    # the model first: a wrong name or checkpoint fails before any data is generated or fetched
    resolved, default_id, weights_sha, weights_text = resolve_model(model, checkpoint, arch, weights, **config)
    if progress is not False:
        print(f"neurofit: scoring {model_id or default_id} on {bench.id}: weights {weights_text}", file=sys.stderr)
    prepared = prepare_data(bench, data, precomputed=isinstance(resolved, ActivationSet))
    ext = extract(resolved, bench, prepared, steps=steps, reduction=reduction, device=device, cache=cache,
                  progress=progress)
    policy, offsets, candidates = _plan(bench, ext, layers)
    run_key = _run_key(bench, ext, prepared, weights_sha, candidates, grid, policy, device)
    work = Path(work_dir if work_dir is not None else _default_work_root()) / run_key
    store = UnitStore(work)
    given_runner = runner
    # a DaskRunner (neurofit.runners.dask_runner) sends the units to a cluster; they are saved here all the same
    runner = LocalRunner(store, progress=progress) if runner is None else runner.bind(store, progress=progress)
    if not is_regression(bench.regression.metric):
        # one commitment rule for every metric: the forward PLS criterion on the held-out stimuli
        commitment = commit_layers(bench.replace(regression={"metric": "pls"}), policy, offsets, candidates, ext,
                                   prepared, runner, device)
        identity = {"model_id": model_id or default_id, "weights": weights_text, "weights_sha256": weights_sha,
                    "dataset": bench.dataset if data is None else str(prepared.recording.attrs.get("identifier",
                                                                                                   "user data")),
                    "layers_named": layers is not None}
        others, other_work = [], []
        if partition_with is not None:
            others, other_work = _partition_models(partition_with, bench, prepared, device=device,
                                                   reduction=reduction, cache=cache, progress=progress,
                                                   work_root=work.parent, runner=given_runner)
        scoreset = metric_scoreset(bench, policy, commitment, ext, prepared, identity=identity, created=created,
                                   grid=grid, others=others)
        if out is not None:
            write_scoreset(scoreset, out)
        if not keep_work:
            for path in (work, *other_work):
                shutil.rmtree(path, ignore_errors=True)
        return scoreset
    commitment = commit_layers(bench, policy, offsets, candidates, ext, prepared, runner, device)
    scores = score_regions(bench, policy, commitment.committed, ext, prepared, runner, device)
    site_region, regions = prepared.site_region, list(bench.regions)
    aggregates, stimulus_ci = aggregate(bench.aggregate, bench.ceiling, bench.regression.split_scheme, scores,
                                        site_region, regions)
    rec = prepared.rec
    neuroid_coords = {name: ("neuroid", rec.coords[name].values) for name, coord in rec.coords.items()
                      if coord.dims == ("neuroid",)}
    coords = {
        **neuroid_coords,
        "time_bin_start": ("time_bin", rec.coords["time_bin_start"].values.astype(float)),
        "time_bin_end": ("time_bin", rec.coords["time_bin_end"].values.astype(float)),
        "fold": ("fold", np.arange(scores.splits.n_folds)),
        # the aggregates' region labels: a coordinate named 'region' would clash with the sites' 'region'
        "region_name": ("region", np.array(regions)),
    }
    variables: dict[str, Any] = {
        "r": (("neuroid", "time_bin"), scores.r),
        "ceiling": (("neuroid", "time_bin"), scores.ceiling),
        "ceiled": (("neuroid", "time_bin"), scores.ceiled),
        "r_fold": (("fold", "neuroid", "time_bin"), scores.r_fold),
        **aggregates,
    }
    if bench.aggregate.method == "brainscore":
        # Brain-Score mode stores its splits: which scored stimuli each fold trained and tested on
        coords["stimulus_id"] = ("stimulus", np.asarray(scores.splits.stimulus_ids).astype(str))
        coords["ceiling_split"] = ("ceiling_split", np.arange(bench.ceiling.n_splits))
        variables["split_train"] = (("fold", "stimulus"), scores.splits.train)
        variables["split_test"] = (("fold", "stimulus"), scores.splits.test)
    if grid:
        position = ext.position
        grid_ceiled, grid_r, grid_layers, max_steps = _grid(bench, ext.acts, list(ext.acts.layers),
                                                            prepared.score_ids, position, scores.targets,
                                                            scores.splits, scores.trials, scores.ceiling,
                                                            site_region, regions, runner, device)
        coords["layer"] = ("layer", np.array(grid_layers))
        coords["step"] = ("step", np.arange(max_steps))
        variables["grid_ceiled"] = (("region", "layer", "step", "time_bin"), grid_ceiled)
        variables["grid_r"] = (("region", "layer", "step", "time_bin"), grid_r)
    attrs = _provenance(bench, prepared, ext, commitment, scores, model_id=model_id or default_id,
                        weights_text=weights_text, weights_sha=weights_sha, user_data=data is not None,
                        policy=policy, offsets=offsets, layers_named=layers is not None, device=device,
                        stimulus_ci=stimulus_ci, created=created)
    if latency == "site":
        extra_vars, extra_coords, extra_attrs = site_lags(bench, policy, offsets, commitment, ext, prepared, runner,
                                                          device, scores)
        variables.update(extra_vars)
        coords.update(extra_coords)
        attrs.update(extra_attrs)
    scoreset = xr.Dataset(variables, coords=coords, attrs=attrs)
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


def _partition_models(partition_with: Any, bench: Benchmark, prepared: PreparedData, *, device: str | None,
                      reduction: Any, cache: bool, progress: bool | None, work_root: Path, runner: Any
                      ) -> tuple[list[PartitionModel], list[Path]]:
    """The other models of a variance partition, each extracted and committed as ``score`` commits its model."""
    given = [partition_with] if isinstance(partition_with, (str, os.PathLike, ActivationSet)) or not isinstance(
        partition_with, Sequence) else list(partition_with)
    if not given:
        raise NeurofitError("partition_with= names no model: give one or more models to partition against")
    others, works = [], []
    for model in given:
        resolved, model_id, weights_sha, weights_text = resolve_model(model)
        if not isinstance(resolved, ActivationSet) and prepared.stimuli is None:
            raise NeurofitError(f"model {model_id!r} of partition_with= must be shown the stimuli, but this run has "
                                "no stimulus set (the scored model is precomputed features): give that model's "
                                "features as an ActivationSet too, or data=(recording, stimulus_set)")
        if progress is not False:
            print(f"neurofit: partitioning against {model_id}: weights {weights_text}", file=sys.stderr)
        ext = extract(resolved, bench, prepared, steps=None, device=device, cache=cache, progress=progress,
                      reduction="default" if isinstance(resolved, ActivationSet) else reduction)
        policy, offsets, candidates = _plan(bench, ext, None)
        work = work_root / _run_key(bench, ext, prepared, weights_sha, candidates, False, policy, device)
        store = UnitStore(work)
        bound = LocalRunner(store, progress=progress) if runner is None else runner.bind(store, progress=progress)
        commitment = commit_layers(bench.replace(regression={"metric": "pls"}), policy, offsets, candidates, ext,
                                   prepared, bound, device)
        identity = {"model_id": model_id, "weights": weights_text, "weights_sha256": weights_sha}
        others.append(PartitionModel(identity, policy, commitment, ext))
        works.append(work)
    return others, works


def _with_metric(bench: Benchmark, metric: str | None) -> Benchmark:
    """``bench`` with its ``[regression] metric`` replaced by ``metric`` (checked against the known metrics)."""
    if metric is None or metric == bench.regression.metric:
        return bench
    if metric not in METRICS:
        raise NeurofitError(f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}")
    return bench.replace(regression={"metric": metric})


def _plan(bench: Benchmark, ext: Extracted, layers: Sequence[str] | Mapping[str, str] | None
          ) -> tuple[str, tuple[float, ...], dict[str, list[str]]]:
    """The time-mapping policy actually used, the latency offsets to try and the candidate layers per region."""
    policy = bench.mapping.policy
    if ext.unroll == 1 and policy in ("one_to_one", "portion"):
        policy = "constant"  # a feedforward response stands for every bin, declared in the attrs
    offsets = bench.mapping.offsets_ms if policy in OFFSET_POLICIES else (0.0,)
    candidates = _parse_layers(layers, bench.regions, list(ext.acts.layers))
    for layer in {name for names in candidates.values() for name in names}:
        if not ext.acts.driven_steps(layer):
            raise NeurofitError(f"layer {layer!r} never receives image-driven input within the {ext.unroll} steps "
                                "unrolled; unroll more steps (steps=) or choose other layers")
    return policy, offsets, candidates


def _run_key(bench: Benchmark, ext: Extracted, prepared: PreparedData, weights_sha: str,
             candidates: dict[str, list[str]], grid: bool, policy: str, device: str | None) -> str:
    """The hash of every input of a run: its resumable work directory's name."""
    return hashlib.sha256(json.dumps({
        "benchmark": bench.sha256(), "activations": ext.activation_key, "weights": weights_sha,
        "dataset": prepared.dataset_sha256(), "layers": {k: v for k, v in candidates.items()}, "grid": grid,
        "policy": policy, "neurofit": __version__, "device": str(device),
    }, sort_keys=True).encode()).hexdigest()[:24]


def _provenance(bench: Benchmark, prepared: PreparedData, ext: Extracted, commitment: Commitment,
                scores: RegionScores, *, model_id: str, weights_text: str, weights_sha: str, user_data: bool,
                policy: str, offsets: Sequence[float], layers_named: bool, device: str | None, stimulus_ci: bool,
                created: str | None) -> dict[str, Any]:
    """The ScoreSet's attrs: every setting that changes a number, with the value used."""
    components, splits, acts = scores.components, scores.splits, ext.acts
    committed, commitment_folds = commitment.committed, commitment.folds
    commit_ids, score_ids = prepared.commit_ids, prepared.score_ids
    if bench.regression.metric == "pls":
        fitted = set().union(*components.values()) if components else set()
        metric = f"pls{_span(fitted) or bench.regression.n_components}-{bench.regression.algorithm}"
    else:
        metric = bench.regression.metric
    attrs = {
        "benchmark": bench.id,
        "benchmark_version": bench.version,
        "benchmark_sha256": bench.sha256(),
        "model_id": model_id,
        "weights": weights_text,
        "weights_sha256": weights_sha,
        "dataset": bench.dataset if not user_data else str(prepared.recording.attrs.get("identifier", "user data")),
        "dataset_sha256": prepared.dataset_sha256(),
        "neurofit_version": __version__,
        "seed": int(bench.regression.seed),
        "split_scheme": bench.regression.split_scheme,
        "n_splits": int(splits.n_folds),
        "temporal_mode": bench.regression.temporal_mode,
        "metric": metric,
        "n_components_requested": int(bench.regression.n_components) if bench.regression.metric == "pls" else 0,
        "n_components_fitted": {region: _span(used) for region, used in components.items()},
        "n_components_commitment": _span(commitment.components),
        "reduction": ext.reduction,
        # what each layer got (method none/gram/random_projection/pca, dim, seed, fitting set): issue 14
        "reduction_layers": {str(k): dict(v) for k, v in dict(acts.attrs.get("reduction_layers") or {}).items()},
        "n_features": {layer: int(acts.n_features(layer)) for layer in acts.layers},
        "n_features_raw": {str(k): int(v) for k, v in dict(acts.attrs.get("n_features_raw") or {}).items()},
        "regression_device": _regression_device(device),
        "ceiling_method": bench.ceiling.method,
        "ceiling_halvings": int(bench.ceiling.n_splits) if bench.ceiling.method != "none" else 0,
        "ceiling_seed": int(bench.ceiling.seed),
        "normalisation": bench.ceiling.normalisation,
        "aggregate": bench.aggregate.method,
        **_brainscore_attrs(bench),
        "mapping_policy": policy,
        "mapping_policy_benchmark": bench.mapping.policy,
        "committed_layers": {region: layer for region, (layer, _) in committed.items()},
        "committed_offsets_ms": {region: off for region, (_, off) in committed.items()},
        "commitment_criteria": commitment.criteria,
        "commitment": (f"{len(commit_ids)} stimuli held out (fraction {bench.commitment.fraction}, seed "
                       f"{bench.commitment.seed}); "
                       + (f"candidates cross-validated ({_span(commitment_folds)}-fold) on them only; criterion: "
                          "mean over bins of the median r over sites" if commitment_folds
                          else "not used: one candidate layer and offset per region")),
        "commitment_fraction": float(bench.commitment.fraction),
        "commitment_seed": int(bench.commitment.seed),
        "commitment_n_splits": int(max(commitment_folds)) if commitment_folds else 0,
        "offsets_ms_candidates": [float(o) for o in offsets],
        "bins_not_mapped": {region: _bin_ranges(prepared.rec, ~np.asarray(m.mapped))
                            for region, m in scores.mappings.items()},
        "layers_named": layers_named,
        "mapping": {region: m.to_attrs() for region, m in scores.mappings.items()},
        "unroll_steps": int(ext.unroll),
        "n_stimuli_scored": len(score_ids),
        "n_stimuli_commitment": len(commit_ids),
        "n_bootstrap": int(bench.aggregate.n_bootstrap),
        "bootstrap_seed": int(bench.aggregate.seed),
        "bootstrap": (f"{bench.aggregate.n_bootstrap} draws (seed {bench.aggregate.seed}); 95% intervals of the median "
                      f"over sites ({CENTRED_INTERVAL}); over stimuli with the ceiling recomputed in each draw"
                      + ("" if stimulus_ci else " (not computed: needs K-fold splits and the split-half ceiling)")
                      + ", and over sites"),
        "missing_data": MISSING_DATA_RULE,
        "sites_missing_stimuli": prepared.sites_missing,
        "sites_dropped": prepared.sites_dropped,
        "created": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    return attrs


def _brainscore_attrs(bench: Benchmark) -> dict[str, Any]:
    """The settings Brain-Score's metrics have that neurofit's defaults leave unset, where a run sets them, and
    the headline of a Brain-Score-mode ScoreSet (its number and error)."""
    attrs: dict[str, Any] = {}
    if bench.regression.alpha is not None:
        attrs["ridge_alpha"] = float(bench.regression.alpha)  # one fixed penalty (else per site, leave-one-out)
    if bench.regression.split_scheme == "brainscore":
        attrs["split_train_size"] = float(bench.regression.train_size)
    if bench.regression.split_scheme == "brainscore" or not bench.regression.stratify:
        attrs["split_stratified"] = bool(bench.regression.stratify)
    if bench.aggregate.method == "brainscore":
        attrs["headline"] = "benchmark_score"
        attrs["headline_error"] = "benchmark_score_error"
        attrs["headline_text"] = BRAINSCORE_HEADLINE
    return attrs


BRAINSCORE_HEADLINE = (
    "Brain-Score's number: benchmark_score = benchmark_r**2 / benchmark_ceiling (mean over splits of the median r "
    "over sites; mean over halvings of the median internal-consistency ceiling); its error is Brain-Score's, the raw "
    "r's standard error over splits (benchmark_r_error); per split: benchmark_r_split, benchmark_ceiling_split, "
    "r_fold, ceiling_split_sites; the splits: split_train, split_test")


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


def _score_pooled(model: Any, bench: Benchmark, *, grid: bool, data: Any, out: str | os.PathLike[str] | None,
                  created: str | None, **kwargs: Any) -> xr.Dataset:
    """A pooled benchmark: each session scored on its own (stimuli, splits, commitment), sites concatenated.

    Sessions without trial repeats are scored with no ceiling (``ceiling`` and ``ceiled`` NaN, ``r`` kept).
    Per region: ``median_ceiled`` over the sites that have a ceiling, ``median_r`` over all sites, and per
    session ``session_median_r`` / ``session_median_ceiled``.
    """
    if grid:
        raise NeurofitError(f"benchmark {bench.id!r} pools sessions with different stimuli: a layer x step grid is "
                            "per session; score one session's benchmark with grid=True instead")
    if data is not None:
        raise NeurofitError(f"benchmark {bench.id!r} pools the sessions {', '.join(bench.datasets)}: data= replaces "
                            "one dataset; score a single-dataset benchmark with your data instead")
    created = created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    parts: list[xr.Dataset] = []
    with_ceiling: list[str] = []
    for dataset in bench.datasets:
        sub = dataclasses.replace(bench, id=f"{bench.id}/{dataset}", dataset=dataset, datasets=())
        recording, stimuli = load_benchmark_data(sub)
        if has_trial_repeats(recording) and bench.ceiling.method != "none":
            with_ceiling.append(dataset)
        else:
            # repetition-averaged responses only: a ceiling cannot be measured, so none is reported
            sub = sub.replace(ceiling={"method": "none", "normalisation": "r2_over_ceiling"},
                              aggregate={"method": "median"})
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
    with quiet_nan():  # all-NaN: a region or session without ceilings

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
        if bench.aggregate.n_bootstrap > 0:
            site_low, site_high = site_interval(values, site_region, regions, variables[name][1], bench.aggregate)
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
            prob = _Problem(bench.regression, [x] * n_bins, targets, splits.train, splits.test, device)
            units = [WorkUnit("grid", "all", {"layer": layer, "step": int(step)}, f) for f in range(splits.n_folds)]
            preds = [res["prediction"] for _, res in runner.map(prob, units,
                                                                 desc=f"grid {layer}@{step}")]
            r, _, pooled = _r_from_folds(bench.regression, preds, targets, splits.test)
            ceiled = site_ceiled(r, ceiling, pooled, trials, bench.ceiling.method, bench.ceiling.normalisation)
            grid_ceiled[:, li, step] = region_medians(ceiled, site_region, regions)
            grid_r[:, li, step] = region_medians(r, site_region, regions)
        features._cache.clear()
    return grid_ceiled, grid_r, model_layers, max_steps


# ------------------------------------------------------------------------------------------------ files, text


__all__ = ["baseline_path", "score", "score_with_baseline"]

