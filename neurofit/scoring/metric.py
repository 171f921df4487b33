"""Metrics beyond one regression score, scored like one: RSA, CKA, reverse predictivity, variance partitioning.

``metric`` in a benchmark's ``[regression]`` (and ``score(..., metric=...)``, ``neurofit score --metric``) selects
one of :data:`~neurofit.scoring.benchmark.METRICS`. The run is the regression's up to the layer commitment: the
same data, extraction, commitment split and time mapping; layers and latency offsets are committed by the
forward PLS criterion on the held-out stimuli whatever the metric (one commitment rule, so the metrics of one
model are about the same layer and time map). The committed mapping then gives, per region and bin, the model
features that stand for the bin, and the metric is computed on the scored stimuli by the leaf kernels of
:mod:`neurofit.metrics` (checked there against rsatoolbox, himalaya and float64 formulas).

Every metric writes the ScoreSet schema (:mod:`neurofit.scoreset`): ``r``, ``ceiling`` and ``ceiled`` on
``(neuroid, time_bin)``, per-region aggregates ``median_*`` with 95% intervals, provenance in ``attrs``
(``metric``, ``metric_scope``, ``metric_settings``, ``metric_description``: the line ``score`` prints).

* **population metrics** (``rsa``, ``cka``, ``reverse_pls``, ``reverse_ridge``) give one value per region and
  bin: the ScoreSet's ``neuroid`` dim holds one entry per region (``neuroid_id = "<region> population"``,
  ``n_sites`` the sites that entered), so every reader of per-site values reads the region's value.
  ``r`` is the raw metric, ``ceiling`` its noise ceiling, ``ceiled = r / ceiling`` (RSA: rsatoolbox's lower
  bound; CKA: the CKA of the region with itself, noise-corrected; reverse: median over model units of
  ``r^2 / ceiling``). Every population metric stores stimulus-bootstrap draws (``r_boot``, ``ceiled_boot``; the
  same resampled stimuli for every model of one benchmark), so ``compare`` tests two models' difference per bin
  over those draws, and over bins with a bootstrap cluster test. RSA and CKA recompute score and ceiling on the
  drawn stimuli; reverse predictivity resamples its held-out predictions (:mod:`neurofit.metrics.reverse`).
  Reverse predictivity has a second interval, ``median_*_units_low/high``: its model units resampled (attrs
  ``units_bootstrap``; not paired between models). RSA's second interval is over the region's recording sites
  (``median_r_sites_*``, ``median_ceiled_sites_*``: sites drawn with replacement, neural RDMs and ceilings
  recomputed from them, the model RDM fixed; attrs ``n_bootstrap_sites``, ``bootstrap_sites_seed``). With
  ``grid=True`` RSA and CKA also score every layer x driven step (``grid_r``, ``grid_ceiled``).
* **partition** (per site): banded ridge over two feature spaces of the committed layer, its first driven
  step (the feedforward sweep, one design for every bin) and the step mapped to each bin; per site and bin
  the cross-validated ``R^2`` of each alone and jointly, the unique variance of each and the shared
  variance, as fractions of the split-half ceiling. ``ceiled`` is the unique variance of the mapped step
  (what the later steps add beyond the sweep), ``r`` the Pearson r of the joint model's predictions.
  With other models (``score(..., partition_with=...)``: :class:`PartitionModel`) the feature spaces are
  instead the models' own committed features (each model's layer and latency offset committed by the same
  rule, each mapped to the bins by its own time map): space ``model`` (the scored model), ``other_1``, ...;
  ``ceiled`` is the unique variance of the scored model beyond all the others. Two or more other models
  work: every model that drops one space is then a banded ridge over the rest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import xarray as xr

from neurofit import __version__
from neurofit.errors import NeurofitError, quiet_nan
from neurofit.metrics.cka import cka_over_time
from neurofit.metrics.draws import cka_draws
from neurofit.metrics.partition import simplex_grid, variance_partition
from neurofit.metrics.reverse import reverse_predictivity
from neurofit.metrics.rsa import bootstrap_patterns, rsa_over_time
from neurofit.metrics.rsa_sites import rsa_site_bootstrap
from neurofit.scoreset import CENTRED_INTERVAL, bin_reliability, centred_interval, region_medians, site_ceiling, site_r
from neurofit.scoring.aggregate import site_interval
from neurofit.scoring.benchmark import POPULATION_METRICS, REGRESSION_METRICS, Benchmark
from neurofit.scoring.fit import _Features, _mapping, stimulus_splits
from neurofit.scoring.missing import MISSING_DATA_RULE
from neurofit.stats.bootstrap import hierarchical_median

if TYPE_CHECKING:
    from neurofit.scoring.commit import Commitment
    from neurofit.scoring.data import PreparedData
    from neurofit.scoring.extraction import Extracted

SPACES = ("feedforward", "mapped")
# the legend text of each space of a one-model partition (the figure reads the space_label coordinate)
STEP_SPACE_LABELS = {"feedforward": "first driven step (feedforward)", "mapped": "step mapped to the bin (later steps)"}
COMMITMENT_RULE = ("layers and latency offsets committed by the forward PLS criterion on the held-out stimuli (mean "
                   "over bins of the median r over sites), whatever the metric")


def is_regression(metric: str) -> bool:
    """Whether ``metric`` is a regression (``pls``, ``ridge``) scored by the regression path of ``score``.

    Example
    -------
    >>> is_regression("pls"), is_regression("rsa")
    (True, False)
    """
    return metric in REGRESSION_METRICS


def describe(metric: str, bench: Benchmark, models: Sequence[str] = ()) -> str:
    """The one-line description of a metric and its settings (what ``score`` prints first).

    ``models`` (partition with other models): the labels of the feature spaces' models, the scored one first.

    Example
    -------
    >>> from neurofit.scoring.benchmark import load_benchmark
    >>> describe("cka", load_benchmark("synthetic-ventral-it-temporal"))[:40]
    'debiased linear CKA per bin between the '
    """
    m = bench.metric
    if metric == "rsa":
        return (f"RSA per bin: {m.dissimilarity}-distance neural RDMs of {m.n_groups} repetition groups vs the model's "
                f"correlation-distance RDM, compared by {m.comparison}; ceiling: rsatoolbox's lower bound (score / "
                f"lower), {m.n_bootstrap} stimulus- and {m.n_bootstrap} site-bootstrap draws")
    if metric == "cka":
        kind = "debiased" if m.debiased else "plain (biased)"
        return (f"{kind} linear CKA per bin between the region's repetition means and the model's features; "
                f"ceiling: noise-corrected self-CKA from {bench.ceiling.n_splits} repetition halvings (score / "
                f"ceiling), {m.n_bootstrap} stimulus-bootstrap draws")
    if metric.startswith("reverse_"):
        engine = metric.split("_", 1)[1].upper()
        return (f"reverse predictivity per bin: each model unit predicted from the region's sites ({engine}, "
                f"{bench.regression.n_splits}-fold over stimuli), median over units of r^2 / ceiling; ceiling: "
                f"Muzellec & Kar 2025 (split-half reliability of the unit's prediction, {bench.ceiling.n_splits} "
                f"halvings, Spearman-Brown), {m.n_bootstrap} stimulus-bootstrap draws of the held-out predictions")
    if metric == "partition" and models:
        return (f"variance partitioning per site and bin: banded ridge over the committed features of "
                f"{', '.join(models)} (each model's own layer and time map), {bench.regression.n_splits}-fold over "
                f"stimuli; ceiled = unique variance of {models[0]} beyond "
                f"{'the others' if len(models) > 2 else models[1]} / split-half ceiling")
    if metric == "partition":
        return (f"variance partitioning per site and bin: banded ridge over the committed layer's first driven step "
                f"(feedforward) and its step mapped to the bin, {bench.regression.n_splits}-fold over stimuli; "
                "ceiled = unique variance of the mapped step / split-half ceiling")
    return metric


@dataclass(frozen=True)
class PartitionModel:
    """A model whose committed features are one feature space of metric ``partition``.

    What ``score(..., partition_with=...)`` hands over for each other model: its identity attrs (``model_id``,
    ``weights``, ``weights_sha256``), its time-mapping policy, its layer commitment (the forward PLS rule on the
    held-out stimuli, as for the scored model) and its activations on the run's stimuli.

    Example
    -------
    >>> PartitionModel({"model_id": "cornet_z"}, "constant", None, None).identity["model_id"]
    'cornet_z'
    """

    identity: dict[str, Any]
    policy: str
    commitment: Commitment
    ext: Extracted


def metric_scoreset(bench: Benchmark, policy: str, commitment: Commitment, ext: Extracted, prepared: PreparedData,
                    *, identity: dict[str, Any], created: str | None = None, grid: bool = False,
                    others: Sequence[PartitionModel] = ()) -> xr.Dataset:
    """The ScoreSet of a non-regression metric (``bench.regression.metric``) for a committed model.

    ``identity``: the attrs that name the model and data (``model_id``, ``weights``, ``weights_sha256``,
    ``dataset``, ``layers_named``), as the regression path writes them. ``grid`` (CKA and RSA): also every layer x
    driven step against every bin (``grid_r``: the CKA or RSA score, ``grid_ceiled``: over the bin's ceiling),
    from the streamed comparisons of :func:`neurofit.metrics.grid.compare_grid` in float64 (CKA; RSA by cosine
    or corr) or from whole RDMs (RSA by Spearman or tau-a, or of crossnobis RDMs:
    :func:`neurofit.metrics.rsa_grid.rsa_grid`). ``others`` (``partition`` only): other committed models, whose
    features are the other feature spaces (space ``model`` is this one).

    Example
    -------
    >>> scores = score("bl", "synthetic-ventral-it-temporal", metric="rsa")  # doctest: +SKIP
    """
    metric = bench.regression.metric
    if is_regression(metric):
        raise NeurofitError(f"metric {metric!r} is a regression: score() scores it without this module")
    if others and metric != "partition":
        raise NeurofitError(f"other models are feature spaces of metric 'partition', not of {metric!r}")
    score_ids = prepared.score_ids
    features = _Features(ext.acts, np.array([ext.position[s] for s in score_ids], dtype=np.int64))
    other_features = [_Features(m.ext.acts, np.array([m.ext.position[s] for s in score_ids], dtype=np.int64))
                      for m in others]
    other_mappings: list[dict[str, Any]] = [{} for _ in others]
    trials = prepared.trials_of(score_ids)
    site_region = prepared.site_region
    model_layers = list(ext.acts.layers)
    mappings, per_region = {}, {}
    for ri, region in enumerate(bench.regions):
        layer, off = commitment.committed[region]
        mapping = _mapping(bench.mapping, bench.time_bins, policy, ext.acts, layer, off, model_layers)
        mappings[region] = mapping
        sites = np.flatnonzero(site_region == region)
        per_bin = [features.combine(refs) for refs in mapping.refs]
        if metric == "partition" and others:
            spaces = {"model": per_bin}
            for k, (other, other_feats) in enumerate(zip(others, other_features)):
                other_layer, other_off = other.commitment.committed[region]
                other_map = _mapping(bench.mapping, bench.time_bins, other.policy, other.ext.acts, other_layer,
                                     other_off, list(other.ext.acts.layers))
                other_mappings[k][region] = other_map
                spaces[f"other_{k + 1}"] = [other_feats.combine(refs) for refs in other_map.refs]
            per_region[region] = _partition(bench, prepared, sites, spaces, trials)
        elif metric == "partition":
            first = features.get(layer, ext.acts.driven_steps(layer)[0])
            per_region[region] = _partition(bench, prepared, sites, {"feedforward": [first] * len(per_bin),
                                                                     "mapped": per_bin}, trials)
        else:
            # RSA's site draws of region k are seeded as the regression's site interval of region k
            per_region[region] = _population(bench, metric, prepared, trials[:, :, sites], per_bin,
                                             site_seed=bench.aggregate.seed + ri)
    if metric == "partition":
        labels = _space_labels(identity, others)
        ds = _site_scoreset(bench, prepared, per_region, trials, labels, "model" if others else "mapped")
    else:
        ds = _population_scoreset(bench, prepared, per_region)
    if grid:
        ds = _grid(bench, ds, features, ext, trials, site_region)
    ds.attrs = _attrs(bench, policy, commitment, ext, prepared, mappings, identity, created, ds)
    if others:
        ds.attrs.update(_models_attrs(bench, policy, commitment, ext, mappings, identity, others, other_mappings,
                                      labels))
    if metric == "rsa" and bench.metric.n_bootstrap:
        _interval_attrs(bench, ds)
    reliability = bin_reliability(ds)
    ds.attrs["bins_unreliable"] = reliability.unreliable_text(ds)
    ds.attrs["reliability_rule"] = reliability.rule
    return ds


# ------------------------------------------------------------------------------------------------ population
def _groups(per_bin: Sequence[np.ndarray | None]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Mapped bins grouped by feature width: ``(bins, features [len(bins), n, width])`` each."""
    widths: dict[int, list[int]] = {}
    for b, x in enumerate(per_bin):
        if x is not None:
            widths.setdefault(x.shape[1], []).append(b)
    return [(np.array(bins), np.stack([per_bin[b] for b in bins])) for bins in widths.values()]


def _draw_indices(bench: Benchmark, n: int) -> np.ndarray:
    """The stimulus-bootstrap draws of the population metrics (sorted indices with repeats), seeded."""
    return bootstrap_patterns(n, bench.metric.n_bootstrap, bench.aggregate.seed)


def _population(bench: Benchmark, metric: str, prepared: PreparedData, trials: np.ndarray,
                per_bin: Sequence[np.ndarray | None], site_seed: int = 0) -> dict[str, np.ndarray]:
    """One region's values per bin: ``r``, ``ceiling``, ``ceiled`` (and ``ceiling_upper`` for RSA), with draws.

    ``*_units_ci``: model units resampled (reverse predictivity); ``*_sites_ci``: the region's recording sites
    resampled (RSA; ``site_seed``: the seed of its site draws)."""
    n_bins = len(per_bin)
    n_draws = bench.metric.n_bootstrap  # stimulus draws of every population metric (the same draws for each)
    out = {k: np.full(n_bins, np.nan) for k in ("r", "ceiling", "ceiled", "ceiling_upper")}
    draws = {k: np.full((n_draws, n_bins), np.nan) for k in ("r", "ceiled", "ceiling")}
    unit_ci = {k: np.full((2, n_bins), np.nan) for k in ("r", "ceiled", "ceiling")}
    site_ci = {k: np.full((2, n_bins), np.nan) for k in ("r", "ceiled")}
    n_units = 0
    for bins, model in _groups(per_bin):
        sub = trials[..., bins]
        if metric == "rsa":
            n_groups = min(bench.metric.n_groups, sub.shape[1])
            res = rsa_over_time(sub, model, method=bench.metric.comparison, dissimilarity=bench.metric.dissimilarity,
                                n_groups=n_groups, n_bootstrap=n_draws, seed=bench.aggregate.seed)
            out["r"][bins], out["ceiling"][bins], out["ceiled"][bins] = res.score, res.lower, res.ceiled
            out["ceiling_upper"][bins] = res.upper
            if n_draws:
                draws["r"][:, bins], draws["ceiled"][:, bins] = res.score_draws, res.ceiled_draws
                with np.errstate(all="ignore"):
                    # ceiled = score / lower in each draw (NaN where the bin is unreliable): its lower ceiling
                    draws["ceiling"][:, bins] = res.score_draws / res.ceiled_draws
                # sites resampled within the region, the model RDM fixed: the site interval
                by_site = rsa_site_bootstrap(sub, model, method=bench.metric.comparison,
                                             dissimilarity=bench.metric.dissimilarity, n_groups=n_groups,
                                             n_draws=n_draws, seed=bench.aggregate.seed, site_seed=site_seed,
                                             reliable=res.reliable)
                for k, (estimate, site_values) in {"r": (res.score, by_site.score),
                                                   "ceiled": (res.ceiled, by_site.ceiled)}.items():
                    with quiet_nan():
                        site_ci[k][:, bins] = np.stack(centred_interval(site_values, estimate))
        elif metric == "cka":
            kw = dict(debiased=bench.metric.debiased, n_splits=bench.ceiling.n_splits, seed=bench.ceiling.seed)
            res = cka_over_time(sub, model, **kw)
            out["r"][bins], out["ceiling"][bins], out["ceiled"][bins] = res["score"], res["ceiling"], res["ceiled"]
            if n_draws:
                # every draw from the full Grams and the draws' stimulus counts (neurofit.metrics.draws)
                drawn = cka_draws(sub, model, _draw_indices(bench, len(sub)), **kw)
                draws["r"][:, bins], draws["ceiling"][:, bins] = drawn["score"], drawn["ceiling"]
                draws["ceiled"][:, bins] = drawn["ceiled"]
        else:
            ids = prepared.score_ids
            splits = stimulus_splits(ids, "kfold", prepared.object_labels(ids), bench.regression.n_splits,
                                     bench.regression.seed)
            # stimulus draws: the held-out predictions resampled (neurofit.metrics.reverse says why not refits)
            index = _draw_indices(bench, len(sub)) if n_draws else None
            res = reverse_predictivity(sub, model, splits.train, splits.test, regression=metric.split("_", 1)[1],
                                       n_components=bench.regression.n_components, n_splits=bench.ceiling.n_splits,
                                       seed=bench.ceiling.seed, draws=index)
            medians = res.median()
            out["r"][bins], out["ceiling"][bins], out["ceiled"][bins] = (medians[k] for k in ("r", "ceiling",
                                                                                               "ceiled"))
            for k in ("r", "ceiled", "ceiling") if n_draws else ():
                draws[k][:, bins] = res.draws[k]
            n_units = max(n_units, res.r.shape[1])
            if bench.aggregate.n_bootstrap:
                # a second, separate interval: model units resampled (which units of this model the median is
                # over; another model's units are not the same units, so it does not pair between models)
                for k in ("r", "ceiled", "ceiling"):
                    with quiet_nan():
                        unit_draws = hierarchical_median(getattr(res, k).T, n_boot=bench.aggregate.n_bootstrap,
                                                         seed=bench.aggregate.seed)
                    unit_ci[k][:, bins] = np.stack(centred_interval(unit_draws, medians[k]))
    return {**out, **{f"{k}_draws": v for k, v in draws.items()}, **{f"{k}_units_ci": v for k, v in unit_ci.items()},
            **{f"{k}_sites_ci": v for k, v in site_ci.items()},
            "n_units": np.array(n_units)}


def _population_scoreset(bench: Benchmark, prepared: PreparedData, per_region: dict[str, dict[str, np.ndarray]]
                         ) -> xr.Dataset:
    regions = list(bench.regions)
    site_region = prepared.site_region
    stack = {k: np.stack([per_region[r][k] for r in regions]) for k in per_region[regions[0]]}
    n_draws = stack["r_draws"].shape[1]
    dims, site_dims = ("region", "time_bin"), ("neuroid", "time_bin")
    variables: dict[str, Any] = {
        "r": (site_dims, stack["r"]), "ceiling": (site_dims, stack["ceiling"]), "ceiled": (site_dims, stack["ceiled"]),
        "median_r": (dims, stack["r"]), "median_ceiling": (dims, stack["ceiling"]),
        "median_ceiled": (dims, stack["ceiled"]),
    }
    if np.isfinite(stack["ceiling_upper"]).any():
        variables["ceiling_upper"] = (site_dims, stack["ceiling_upper"])
        variables["median_ceiling_upper"] = (dims, stack["ceiling_upper"])
    for name in ("r", "ceiled", "ceiling"):
        # the stimulus-bootstrap interval (every population metric); without draws the ceiling's has none and the
        # reliability rule reads the ceiling itself
        if not n_draws and name == "ceiling":
            continue
        low = high = np.full(stack["r"].shape, np.nan)
        if n_draws:
            with quiet_nan():
                low, high = centred_interval(stack[f"{name}_draws"].transpose(1, 0, 2), stack[name])
        variables[f"median_{name}_low"], variables[f"median_{name}_high"] = (dims, low), (dims, high)
    for name in ("r", "ceiled"):
        # the region's sites resampled: RSA (site_ci); NaN for the other population metrics
        variables[f"median_{name}_sites_low"] = (dims, stack[f"{name}_sites_ci"][:, 0])
        variables[f"median_{name}_sites_high"] = (dims, stack[f"{name}_sites_ci"][:, 1])
    if np.isfinite(stack["r_units_ci"]).any():
        for name in ("r", "ceiled", "ceiling"):
            # reverse predictivity's second interval: the model's units resampled (attrs["units_bootstrap"])
            variables[f"median_{name}_units_low"] = (dims, stack[f"{name}_units_ci"][:, 0])
            variables[f"median_{name}_units_high"] = (dims, stack[f"{name}_units_ci"][:, 1])
    if n_draws:
        variables["r_boot"] = (("boot", *site_dims), stack["r_draws"].transpose(1, 0, 2))
        variables["ceiled_boot"] = (("boot", *site_dims), stack["ceiled_draws"].transpose(1, 0, 2))
    coords = {
        "neuroid_id": ("neuroid", np.array([f"{r} population" for r in regions])),
        "region": ("neuroid", np.array(regions)),
        "n_sites": ("neuroid", np.array([int((site_region == r).sum()) for r in regions])),
        "time_bin_start": ("time_bin", prepared.rec.coords["time_bin_start"].values.astype(float)),
        "time_bin_end": ("time_bin", prepared.rec.coords["time_bin_end"].values.astype(float)),
        "region_name": ("region", np.array(regions)),
    }
    ds = xr.Dataset(variables, coords=coords)
    ds.attrs["n_units"] = {r: int(per_region[r]["n_units"]) for r in regions}
    return ds


def _grid(bench: Benchmark, ds: xr.Dataset, features: _Features, ext: Extracted, trials: np.ndarray,
          site_region: np.ndarray) -> xr.Dataset:
    """Every layer x driven step scored as the committed one is, per region and bin (``grid_r``), and over the
    bin's ceiling (``grid_ceiled``): CKA with the region's repetition means (the streamed comparisons of
    :func:`neurofit.metrics.grid.compare_grid` in float64), or RSA with its repetition-group RDMs
    (:func:`neurofit.metrics.rsa_grid.rsa_grid` with the run's settings, so the committed layer at the step
    mapped to a bin is the bin's RSA score; ``grid_ceiled`` over the lower ceiling, NaN where ``ceiled`` is)."""
    metric = bench.regression.metric
    if metric not in ("cka", "rsa"):
        raise NeurofitError(f"the layer x step grid of metric {metric!r} is not available "
                            "(regression, rsa and cka have one)")
    acts = ext.acts
    layers = list(acts.layers)
    keys = [(li, step) for li, layer in enumerate(layers) for step in acts.driven_steps(layer)]
    model = [torch.as_tensor(features.get(layers[li], step)) for li, step in keys]
    regions = list(bench.regions)
    n_bins = trials.shape[3]
    if metric == "rsa":
        from neurofit.metrics.rsa_grid import rsa_grid

        values = rsa_grid(model, [trials[:, :, site_region == region] for region in regions],
                          method=bench.metric.comparison, dissimilarity=bench.metric.dissimilarity,
                          n_groups=min(bench.metric.n_groups, trials.shape[1]), seed=bench.aggregate.seed)
    else:
        from neurofit.metrics.grid import compare_grid

        with quiet_nan():
            neural = [torch.as_tensor(np.nanmean(trials[:, :, site_region == region, b], axis=1))
                      for region in regions for b in range(n_bins)]
        table = compare_grid(model, neural, dtype=torch.float64)
        values = (table.cka_debiased if bench.metric.debiased else table.cka).reshape(len(keys), len(regions), n_bins)
    max_steps = max(acts.n_steps(layer) for layer in layers)
    grid_r = np.full((len(regions), len(layers), max_steps, n_bins), np.nan)
    for k, (li, step) in enumerate(keys):
        grid_r[:, li, step] = values[k]
    ceiling = ds["median_ceiling"].values  # (region, bin); RSA: the lower ceiling
    with np.errstate(all="ignore"):
        grid_ceiled = grid_r / ceiling[:, None, None, :]
    if metric == "rsa":  # NaN in unreliable and unmapped bins, as ceiled
        grid_ceiled = np.where(np.isfinite(ds["median_ceiled"].values)[:, None, None, :], grid_ceiled, np.nan)
    dims = ("region", "layer", "step", "time_bin")
    out = ds.assign({"grid_r": (dims, grid_r), "grid_ceiled": (dims, grid_ceiled)}).assign_coords(
        layer=("layer", np.array(layers)), step=("step", np.arange(max_steps)))
    if metric == "rsa":
        out["grid_r"].attrs["description"] = (f"RSA ({bench.metric.comparison}) of each layer's correlation-distance "
                                              "RDM at each driven step with the region's repetition-group RDMs of "
                                              "each bin")
        out["grid_ceiled"].attrs["description"] = "grid_r / the bin's lower noise ceiling (NaN where ceiled is NaN)"
    return out


def _interval_attrs(bench: Benchmark, ds: xr.Dataset) -> None:
    """Say on each interval variable of an RSA ScoreSet which resampling it comes from, its draws and seed."""
    draws = int(bench.metric.n_bootstrap)
    seed = int(bench.aggregate.seed)
    for name in ("r", "ceiled", "ceiling"):
        for end in ("low", "high"):
            var = f"median_{name}_{end}"
            if var in ds.variables:
                ds[var].attrs.update({"resampling": "stimuli (rsatoolbox's pattern bootstrap; score and ceilings "
                                                    "recomputed in every draw)", "n_draws": draws, "seed": seed,
                                      "interval": f"95%, {CENTRED_INTERVAL}"})
    for name in ("r", "ceiled"):
        for end in ("low", "high"):
            var = f"median_{name}_sites_{end}"
            if var in ds.variables:
                ds[var].attrs.update({"resampling": "recording sites of the region, with replacement (neural RDMs "
                                                    "and ceilings recomputed from the drawn sites; model RDM fixed)",
                                      "n_draws": draws,
                                      "seed": {region: seed + k for k, region in enumerate(bench.regions)},
                                      "interval": f"95%, {CENTRED_INTERVAL}"})


# ------------------------------------------------------------------------------------------------ partition
def _space_sets(names: Sequence[str]) -> list[tuple[str, tuple[str, ...]]]:
    """The fitted sets of spaces and their ``space_set`` labels: ``joint``, each space alone (labelled by its
    name), and with three or more spaces each set that drops one (``all_but_<space>``)."""
    sets = [("joint", tuple(names)), *((name, (name,)) for name in names)]
    if len(names) > 2:
        sets += [(f"all_but_{drop}", tuple(n for n in names if n != drop)) for drop in names]
    return sets


def _partition(bench: Benchmark, prepared: PreparedData, sites: np.ndarray,
               spaces: dict[str, Sequence[np.ndarray | None]], trials: np.ndarray) -> dict[str, Any]:
    """Per site and bin of one region: R^2 of each set of spaces, unique and shared variance, joint-model r.

    ``spaces``: per space, its design per bin (``None`` where the bin is not mapped); the bins every space maps
    are partitioned. A space whose bins share one design (the same array) enters as one design for every bin.
    """
    ids = prepared.score_ids
    targets = prepared.targets(ids)[:, sites]  # [n, q, B]
    n, q, n_bins = targets.shape
    names = list(spaces)
    sets = _space_sets(names)
    out: dict[str, Any] = {"r": np.full((q, n_bins), np.nan), "shared": np.full((q, n_bins), np.nan),
                           "r2": {label: np.full((q, n_bins), np.nan) for label, _ in sets},
                           "unique": {name: np.full((q, n_bins), np.nan) for name in names}}
    mapped = [b for b in range(n_bins) if all(spaces[name][b] is not None for name in names)]
    if not mapped:
        return out
    designs = {}
    for name in names:
        per_bin = [spaces[name][b] for b in mapped]
        if len({x.shape[1] for x in per_bin}) > 1:
            raise NeurofitError(f"variance partitioning needs one feature space per model for the mapped steps, but "
                                f"the mapping of space {name!r} uses layers of different widths; use a one-layer "
                                "time mapping (mapping.policy)")
        same = all(x is per_bin[0] for x in per_bin)
        designs[name] = per_bin[0][None] if same else np.stack(per_bin)
    y = targets[:, :, mapped]
    if not np.isfinite(y).all():
        raise NeurofitError("variance partitioning needs every site's response to every scored stimulus (a site "
                            "has missing trials for some stimulus); drop those sites or stimuli first")
    splits = stimulus_splits(ids, "kfold", prepared.object_labels(ids), bench.regression.n_splits,
                             bench.regression.seed)
    resolution = bench.metric.band_resolution
    if resolution < len(names):
        raise NeurofitError(f"variance partitioning of {len(names)} feature spaces needs band weightings with every "
                            f"space present: metric.band_resolution must be at least {len(names)}, is {resolution}")
    part = variance_partition(designs, y.transpose(2, 0, 1), splits.train, splits.test,
                              gammas=simplex_grid(len(names), resolution), resolution=resolution, alone=True,
                              keep_prediction=True)
    for label, subset in sets:
        out["r2"][label][:, mapped] = part.r2[subset].T
    for name in names:
        out["unique"][name][:, mapped] = part.unique[name].T
    out["shared"][:, mapped] = part.shared.T
    out["r"][:, mapped] = site_r(part.joint_prediction.transpose(1, 2, 0), y)
    return out


def _space_labels(identity: dict[str, Any], others: Sequence[PartitionModel]) -> dict[str, str]:
    """Each space's name and its label: the model ids (numbered where one repeats), or the steps of one model."""
    if not others:
        return dict(STEP_SPACE_LABELS)
    ids = [str(identity["model_id"]), *(str(m.identity["model_id"]) for m in others)]
    names = ["model", *(f"other_{k + 1}" for k in range(len(others)))]
    return {name: (i if ids.count(i) == 1 else f"{i} [{k + 1}]") for k, (name, i) in enumerate(zip(names, ids))}


def _site_scoreset(bench: Benchmark, prepared: PreparedData, per_region: dict[str, dict[str, Any]],
                   trials: np.ndarray, labels: dict[str, str], ceiled_space: str) -> xr.Dataset:
    regions = list(bench.regions)
    site_region = prepared.site_region
    n_sites, n_bins = trials.shape[2], trials.shape[3]
    names = list(labels)
    set_labels = list(per_region[regions[0]]["r2"])
    r = np.full((n_sites, n_bins), np.nan)
    shared = np.full((n_sites, n_bins), np.nan)
    r2 = np.full((len(set_labels), n_sites, n_bins), np.nan)
    unique = np.full((len(names), n_sites, n_bins), np.nan)
    for region in regions:
        sites = site_region == region
        part = per_region[region]
        r[sites], shared[sites] = part["r"], part["shared"]
        for k, label in enumerate(set_labels):
            r2[k, sites] = part["r2"][label]
        for k, name in enumerate(names):
            unique[k, sites] = part["unique"][name]
    ceiling = site_ceiling(trials, bench.ceiling.method, bench.ceiling.n_splits, bench.ceiling.seed, bench.id)
    with np.errstate(all="ignore"):
        unique_fraction, shared_fraction = unique / ceiling, shared / ceiling
    ceiled = unique_fraction[names.index(ceiled_space)]
    site_dims, dims = ("neuroid", "time_bin"), ("region", "time_bin")
    variables: dict[str, Any] = {
        "r": (site_dims, r), "ceiling": (site_dims, ceiling), "ceiled": (site_dims, ceiled),
        "r2": (("space_set", *site_dims), r2),
        "unique": (("space", *site_dims), unique), "shared": (site_dims, shared),
        "unique_fraction": (("space", *site_dims), unique_fraction), "shared_fraction": (site_dims, shared_fraction),
    }
    for name, per_site in (("ceiled", ceiled), ("r", r), ("ceiling", ceiling), ("shared_fraction", shared_fraction),
                           *((f"unique_fraction_{s}", unique_fraction[i]) for i, s in enumerate(names))):
        estimate = region_medians(per_site, site_region, regions)
        variables[f"median_{name}"] = (dims, estimate)
        low = high = np.full(estimate.shape, np.nan)
        if bench.aggregate.n_bootstrap:
            low, high = site_interval(per_site, site_region, regions, estimate, bench.aggregate)
        variables[f"median_{name}_sites_low"], variables[f"median_{name}_sites_high"] = (dims, low), (dims, high)
    rec = prepared.rec
    coords = {name: ("neuroid", rec.coords[name].values) for name, coord in rec.coords.items()
              if coord.dims == ("neuroid",)}
    coords.update({
        "time_bin_start": ("time_bin", rec.coords["time_bin_start"].values.astype(float)),
        "time_bin_end": ("time_bin", rec.coords["time_bin_end"].values.astype(float)),
        "region_name": ("region", np.array(regions)),
        "space": ("space", np.array(names)), "space_label": ("space", np.array([labels[n] for n in names])),
        "space_set": ("space_set", np.array(set_labels)),
    })
    return xr.Dataset(variables, coords=coords)


def _models_attrs(bench: Benchmark, policy: str, commitment: Commitment, ext: Extracted, mappings: dict[str, Any],
                  identity: dict[str, Any], others: Sequence[PartitionModel], other_mappings: list[dict[str, Any]],
                  labels: dict[str, str]) -> dict[str, Any]:
    """The attrs of a partition over several models: every space's model, weights, layers, offsets and time map."""
    models = [PartitionModel(identity, policy, commitment, ext), *others]
    maps = [mappings, *other_mappings]
    spaces = {}
    for (name, text), model, mapping in zip(labels.items(), models, maps):
        acts = model.ext.acts
        committed = model.commitment.committed
        spaces[name] = {
            "label": text,
            "model_id": str(model.identity["model_id"]),
            "weights": str(model.identity.get("weights", "")),
            "weights_sha256": str(model.identity.get("weights_sha256", "")),
            "committed_layers": {region: layer for region, (layer, _) in committed.items()},
            "committed_offsets_ms": {region: off for region, (_, off) in committed.items()},
            "commitment_criteria": model.commitment.criteria,
            "n_features": {region: int(acts.n_features(layer)) for region, (layer, _) in committed.items()},
            "mapping_policy": model.policy,
            "mapping": {region: m.to_attrs() for region, m in mapping.items()},
            "unroll_steps": int(model.ext.unroll),
            "reduction": model.ext.reduction,
        }
    names = list(labels.values())
    n_weightings = len(simplex_grid(len(names), bench.metric.band_resolution))
    return {
        "metric_description": describe("partition", bench, names),
        "partition_spaces": spaces,
        "partition_ceiled_space": "model",
        "normalisation": ("unique variance of the scored model (space 'model') beyond the other model(s): "
                          "(R^2(joint) - R^2(all spaces but 'model')) / ceiling"),
        "partition_engine": (f"banded ridge (neurofit.metrics.partition; himalaya's random search is its oracle): "
                             f"{n_weightings} band weightings of the {len(names)} spaces, leave-one-out penalty per "
                             "target inside each training fold; bins that every model maps are partitioned"),
    }


# ------------------------------------------------------------------------------------------------ attrs
def _resampling(population: bool, reverse: bool, draws: int) -> str:
    """What the ScoreSet's main interval (``median_*_low/high``) resamples, in a word or three."""
    if not population:
        return "sites"
    if not draws:
        return "none"
    return "stimuli (held-out predictions)" if reverse else "stimuli"


def _attrs(bench: Benchmark, policy: str, commitment: Commitment, ext: Extracted, prepared: PreparedData,
           mappings: dict[str, Any], identity: dict[str, Any], created: str | None, ds: xr.Dataset) -> dict[str, Any]:
    """Provenance of a metric ScoreSet: every setting that changes a number, with the value used."""
    metric = bench.regression.metric
    population = metric in POPULATION_METRICS
    acts = ext.acts
    draws = bench.metric.n_bootstrap if population else 0
    draw_key = hashlib.sha256(json.dumps({"stimuli": prepared.score_ids, "n": draws, "seed": bench.aggregate.seed,
                                          "rule": "rsatoolbox pattern bootstrap"}).encode()).hexdigest()[:16]
    if metric == "rsa":
        ceiling_method = (f"rsatoolbox lower noise ceiling over {bench.metric.n_groups} repetition groups (leave one "
                          "group out); ceiling_upper: the upper bound")
        normalisation = "score / lower noise ceiling (NaN where the lower ceiling is not 2 SE over groups above 0)"
    elif metric == "cka":
        ceiling_method = (f"CKA of the noise-free region with its repetition mean, from {bench.ceiling.n_splits} "
                          "halvings of the repetitions (unbiased HSIC of the halves' means)")
        normalisation = "score / ceiling"
    elif population:
        ceiling_method = (f"Muzellec & Kar 2025: split-half reliability of each unit's prediction "
                          f"({bench.ceiling.n_splits} halvings, Spearman-Brown)")
        normalisation = "median over model units of r^2 / ceiling"
    else:
        ceiling_method = f"split-half ({bench.ceiling.n_splits} halvings, Spearman-Brown) per site"
        normalisation = "unique variance of the mapped step (R^2(joint) - R^2(feedforward)) / ceiling"
    reverse = metric.startswith("reverse_")
    if population and draws and reverse:
        bootstrap = (f"{draws} stimulus draws (rsatoolbox's pattern bootstrap, seed {bench.aggregate.seed}): the "
                     "scored stimuli's held-out predictions (and half-repetition predictions) resampled with "
                     "replacement, every unit's r, ceiling and r^2 / ceiling recomputed on them, then the median "
                     "over units (the fitted maps are not refitted: the interval is conditional on them); 95% "
                     f"intervals median_*_low/high: {CENTRED_INTERVAL}")
    elif population and draws:
        bootstrap = (f"{draws} stimulus draws (rsatoolbox's pattern bootstrap, seed {bench.aggregate.seed}): score "
                     f"and ceiling recomputed in every draw; 95% intervals: {CENTRED_INTERVAL}")
        if metric == "rsa":
            bootstrap += (f". Over sites (median_r_sites_*, median_ceiled_sites_*): {draws} draws of each region's "
                          f"recording sites with replacement (the k-th region seeded {bench.aggregate.seed} + k), "
                          "neural RDMs and ceilings recomputed from the drawn sites against the fixed model RDM; the "
                          "same interval rule")
    elif population:
        bootstrap = "no stimulus bootstrap ([metric] n_bootstrap = 0)"
    else:
        bootstrap = (f"{bench.aggregate.n_bootstrap} draws over sites (seed {bench.aggregate.seed}); no stimulus "
                     "bootstrap")
    attrs = {
        "benchmark": bench.id,
        "benchmark_version": bench.version,
        "benchmark_sha256": bench.sha256(),
        **identity,
        "dataset_sha256": prepared.dataset_sha256(),
        "neurofit_version": __version__,
        "metric": metric,
        "metric_scope": "population" if population else "site",
        "metric_description": describe(metric, bench),
        "metric_settings": {k: (int(v) if isinstance(v, bool) else v)
                            for k, v in bench.metric.__dict__.items()},
        "seed": int(bench.regression.seed),
        "split_scheme": "kfold",
        "n_splits": int(bench.regression.n_splits),
        "n_components_requested": int(bench.regression.n_components) if metric == "reverse_pls" else 0,
        "ceiling_method": ceiling_method,
        "ceiling_halvings": int(bench.ceiling.n_splits),
        "ceiling_seed": int(bench.ceiling.seed),
        "normalisation": normalisation,
        "reduction": ext.reduction,
        "reduction_layers": {str(k): dict(v) for k, v in dict(acts.attrs.get("reduction_layers") or {}).items()},
        "n_features": {layer: int(acts.n_features(layer)) for layer in acts.layers},
        "mapping_policy": policy,
        "mapping_policy_benchmark": bench.mapping.policy,
        "committed_layers": {region: layer for region, (layer, _) in commitment.committed.items()},
        "committed_offsets_ms": {region: off for region, (_, off) in commitment.committed.items()},
        "commitment_criteria": commitment.criteria,
        "commitment": COMMITMENT_RULE,
        "commitment_fraction": float(bench.commitment.fraction),
        "commitment_seed": int(bench.commitment.seed),
        "mapping": {region: m.to_attrs() for region, m in mappings.items()},
        "unroll_steps": int(ext.unroll),
        "n_stimuli_scored": len(prepared.score_ids),
        "n_stimuli_commitment": len(prepared.commit_ids),
        "n_bootstrap": int(draws if population else bench.aggregate.n_bootstrap),
        "bootstrap_seed": int(bench.aggregate.seed),
        "bootstrap": bootstrap,
        "bootstrap_resampling": _resampling(population, reverse, draws),
        "missing_data": MISSING_DATA_RULE,
        "sites_missing_stimuli": prepared.sites_missing,
        "sites_dropped": prepared.sites_dropped,
        "created": created or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        **({"n_units": ds.attrs["n_units"]} if "n_units" in ds.attrs else {}),
    }
    if population and draws:
        attrs["stimulus_draws"] = draw_key
    if metric == "rsa" and draws:
        attrs["n_bootstrap_sites"] = int(draws)
        attrs["bootstrap_sites_seed"] = {region: int(bench.aggregate.seed + k)
                                         for k, region in enumerate(bench.regions)}
    if reverse and bench.aggregate.n_bootstrap:
        attrs["units_bootstrap"] = (f"median_r/ceiled/ceiling_units_low/high: {bench.aggregate.n_bootstrap} draws over "
                                    f"the model's units (seed {bench.aggregate.seed}), 95% {CENTRED_INTERVAL}: how the "
                                    "median depends on which units of this model it is over (e.g. a random "
                                    "projection's); not paired between models, not used by compare")
        attrs["units_bootstrap_draws"] = int(bench.aggregate.n_bootstrap)
    if metric == "partition":
        attrs["partition_spaces"] = {"feedforward": "the committed layer's first driven step, one design for every bin",
                                     "mapped": "the committed layer's step mapped to the bin"}
        attrs["partition_ceiled_space"] = "mapped"
        attrs["partition_engine"] = (f"banded ridge (neurofit.metrics.partition; himalaya's random search is its "
                                     f"oracle): {len(simplex_grid(2, bench.metric.band_resolution))} band weightings, "
                                     "leave-one-out penalty per target inside each training fold")
    return attrs


__all__ = ["PartitionModel", "describe", "is_regression", "metric_scoreset"]
