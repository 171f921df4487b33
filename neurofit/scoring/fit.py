"""Step 5 of a score: cross-validated regression of one region's sites on the mapped features, fold by fold.

A :class:`_Problem` holds one region's features per bin (through the time mapping, :func:`_mapping`), responses
and folds; called on a :class:`~neurofit.runners.local.WorkUnit` it fits one fold (PLS or ridge, per bin or
spanning time) and returns the held-out predictions. Runners (local or dask) map it over the folds.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from neurofit.errors import NeurofitError, quiet_nan
from neurofit.extract import reduce
from neurofit.models.base import TimeMap
from neurofit.regression.backend import default_device, default_dtype
from neurofit.regression.crossval import pls_cross_validated, ridge_cross_validated
from neurofit.regression.ridge import DEFAULT_ALPHAS
from neurofit.regression.splits import StimulusSplits, make_splits
from neurofit.runners.local import Result, WorkUnit, merge_parts, split_unit
from neurofit.scoreset import site_ceiled, site_ceiling, site_r
from neurofit.scoring import timemap as tmap
from neurofit.scoring.benchmark import Benchmark, MappingSection, RegressionSection
from neurofit.scoring.missing import fit_on_valid_stimuli

if TYPE_CHECKING:
    from neurofit.scoring.data import PreparedData
    from neurofit.scoring.extraction import Extracted

OFFSET_POLICIES = ("one_to_one", "portion", "graded")


def _pls_components(regression: RegressionSection, n_train: int, n_features: int) -> int:
    return int(min(regression.n_components, n_train - 1, n_features))


def _components_used(prob: _Problem) -> set[int]:
    """The PLS components a problem's fits use: ``min(requested, training rows - 1, features)`` per fit."""
    if prob.regression.metric != "pls":
        return set()
    mapped = [x for x in prob.features if x is not None]
    if not mapped:
        return set()
    rows = len(mapped) if prob.regression.temporal_mode == "span_time" else 1  # span_time stacks bins as samples
    return {_pls_components(prob.regression, int(train.sum()) * rows, x.shape[1]) for train in prob.train
            for x in {id(x): x for x in mapped}.values()}


def _span(values: set[int]) -> str:
    """``"25"`` for one value, ``"5to25"`` for several (smallest to largest), ``""`` for none."""
    return "" if not values else (str(min(values)) if len(values) == 1 else f"{min(values)}to{max(values)}")


def _regression_device(device: str | None) -> str:
    """The device the regression runs on, and its dtype (float64 on CPU, float32 on accelerators)."""
    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return f"{dev.type} ({'float64' if dev.type == 'cpu' else 'float32'})"


def _cross_validated(regression: RegressionSection, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
                     device: str | None, dtype: torch.dtype | None = None,
                     alphas: np.ndarray = DEFAULT_ALPHAS) -> np.ndarray:
    """One fold of the benchmark's regression through the engine's cross-validated solvers.

    ``x``: ``[n_x, n, D]`` (``n_x`` = 1: one design shared by every bin), ``y``: ``[n_bins, n, q]``,
    ``train``/``test``: bool ``[n]``. Returns the test predictions ``[n_bins, n_test, q]``. Sites lacking some
    stimuli (NaN in ``y``) are fitted on their valid stimuli (:mod:`neurofit.scoring.missing`). ``dtype``:
    float64 on CPU and float32 on accelerators unless given; ``alphas``: the ridge penalties tried per site.
    """
    return fit_on_valid_stimuli(lambda *args: _fold_fit(regression, *args, device, dtype, alphas), x, y, train, test)


def _fold_fit(regression: RegressionSection, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray,
              device: str | None, dtype: torch.dtype | None = None, alphas: np.ndarray = DEFAULT_ALPHAS) -> np.ndarray:
    dev = torch.device(device) if device else default_device()
    dtype = dtype or default_dtype(dev)
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
        if regression.metric == "pls":
            n_components = _pls_components(regression, int(train.sum()), x.shape[2])
            pred = pls_cross_validated(xt, yt, tr, te, n_components, algorithm=regression.algorithm)[0]
        elif regression.alpha is not None:  # one fixed penalty (Brain-Score's Ridge(alpha))
            pred = ridge_cross_validated(xt, yt, tr, te, alphas=[regression.alpha])[0]
        else:
            pred = ridge_cross_validated(xt, yt, tr, te, alphas)[0]
    finally:
        torch.set_num_threads(threads)
    return pred.to(torch.float64).cpu().numpy()


class _Problem:
    """Everything a fold fit needs: features per bin, responses, folds and the ``[regression]`` settings."""

    def __init__(self, regression: RegressionSection, features: list[np.ndarray | None], targets: np.ndarray,
                 train: np.ndarray, test: np.ndarray, device: str | None, dtype: torch.dtype | None = None,
                 alphas: np.ndarray = DEFAULT_ALPHAS) -> None:
        self.regression = regression
        self.features = features  # per bin: [n, D] or None (unmapped)
        self.targets = targets  # [n, q, B]
        self.train = train
        self.test = test
        self.device = device
        self.dtype = dtype
        self.alphas = alphas
        present = [x for x in features if x is not None]
        self.shared = bool(present) and all(x is present[0] for x in present)

    def __call__(self, unit: WorkUnit) -> Result:
        # a runner's work function: a picklable object whose arrays a dask runner ships as files
        return self.fold(unit.fold) if unit.part is None else self._piece(unit.part).fold(unit.fold)

    def split(self, unit: WorkUnit, parts: int) -> list[WorkUnit]:
        """``unit`` in at most ``parts`` pieces whose fits are those of the whole (for a runner that spreads a
        fold over several workers): chunks of bins in per_bin mode (each bin its own fit) when no response is
        missing (the valid-stimulus rule spans all bins), chunks of sites for ridge (fitted site by site;
        PLS2 is joint over a region's sites)."""
        _, n_sites, n_bins = self.targets.shape
        bins = self.regression.temporal_mode == "per_bin" and not bool(np.isnan(self.targets).any())
        return split_unit(unit, parts, n_bins, n_sites, bins=bins, sites=self.regression.metric == "ridge")

    def merge(self, unit: WorkUnit, parts: list[tuple[WorkUnit, Result]]) -> Result:
        """The result of ``unit`` from those of its pieces (:meth:`split`)."""
        _, n_sites, n_bins = self.targets.shape
        return merge_parts(parts, int(self.test[unit.fold].sum()), n_sites, n_bins)

    def _piece(self, part: tuple[int, int, int, int]) -> _Problem:
        b0, b1, s0, s1 = part
        return _Problem(self.regression, self.features[b0:b1], self.targets[:, s0:s1, b0:b1], self.train, self.test,
                        self.device, self.dtype, self.alphas)

    def fold(self, f: int) -> Result:
        train, test = self.train[f], self.test[f]
        n, n_sites, n_bins = self.targets.shape
        out = np.full((int(test.sum()), n_sites, n_bins), np.nan)
        mapped = [b for b in range(n_bins) if self.features[b] is not None]
        if not mapped:
            return {"prediction": out}
        dims = {self.features[b].shape[1] for b in mapped}
        if self.regression.temporal_mode == "span_time":
            if len(dims) > 1:
                raise NeurofitError("the span_time mode needs one feature space for all bins, but the mapping "
                                    "uses layers of different sizes; use temporal_mode = 'per_bin'")
            # bins stacked as samples: one mapping shared by all bins, predictions per bin
            x = np.concatenate([self.features[b] for b in mapped])[None]
            y = np.concatenate([self.targets[:, :, b] for b in mapped])[None]
            pred = self._fit(x, y, np.tile(train, len(mapped)), np.tile(test, len(mapped)))[0]
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
                pred = np.stack([self._fit(self.features[b][None], y[i:i + 1], train, test)[0]
                                 for i, b in enumerate(mapped)])
            else:
                pred = self._fit(x, y, train, test)
        for i, b in enumerate(mapped):
            out[:, :, b] = pred[i]
        return {"prediction": out}

    def _fit(self, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
        return _cross_validated(self.regression, x, y, train, test, self.device, self.dtype, self.alphas)


def _r_from_folds(regression: RegressionSection, preds: list[np.ndarray], targets: np.ndarray, test: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(r [q, B], r_fold [F, q, B], pooled predictions [n, q, B] or None for overlapping test sets)."""
    r_fold = np.stack([site_r(p, targets[test[f]]) for f, p in enumerate(preds)])
    if regression.split_scheme == "kfold":
        pooled = np.full(targets.shape, np.nan)
        for f, p in enumerate(preds):
            pooled[test[f]] = p
        return site_r(pooled, targets), r_fold, pooled
    with quiet_nan():
        return np.nanmean(r_fold, axis=0), r_fold, None


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
            out = self._narrowed[key] = reduce.gram_compress(out, keep_all=True, dtype=np.float64)
        return out


def _layer_time_map(acts: Any, layer: str) -> tuple[TimeMap, int]:
    """A per-layer TimeMap from the ActivationSet's step windows and measured driven steps."""
    n_steps = acts.n_steps(layer)
    driven = acts.driven_steps(layer)
    start, end = acts.step_window(layer, 0)
    first = driven[0] if driven else n_steps
    tm = TimeMap(steps=n_steps, first_driven={layer: first}, step_ms=end - start, t0_ms=start)
    return tm, n_steps


def _mapping(mapping: MappingSection, time_bins: Sequence[tuple[float, float]], policy: str, acts: Any, layer: str,
             offset: float, layers_in_order: Sequence[str]) -> tmap.BinMapping:
    """The benchmark's bins mapped onto ``layer``'s steps (all layers for ``graded``) by :func:`tmap.map_time`.

    ``mapping``: the benchmark's ``[mapping]`` section (its step tables); ``time_bins``: its bins.
    """
    if policy == "graded":
        first_layer_tm, n_steps = _layer_time_map(acts, layers_in_order[0])
        merged = {}
        for name in layers_in_order:
            tm, _ = _layer_time_map(acts, name)
            merged.update(tm.first_driven)
        tm = dataclasses.replace(first_layer_tm, first_driven=merged)
        return tmap.map_time("graded", time_bins, list(layers_in_order), tm, offset_ms=offset, n_steps=n_steps)
    tm, n_steps = _layer_time_map(acts, layer)
    if policy == "table":
        table = mapping.tables.get(layer)
        if table is None:
            raise NeurofitError(f"the benchmark's [mapping] has no time table for layer {layer!r} "
                                f"(tables for: {', '.join(mapping.tables)})")
        return tmap.map_time("table", time_bins, layer, tm, step_table=table, n_steps=n_steps)
    if policy == "constant":
        return tmap.map_time("constant", time_bins, layer, tm, n_steps=n_steps)
    return tmap.map_time(policy, time_bins, layer, tm, offset_ms=offset, n_steps=n_steps)


def narrow_designs(regression: RegressionSection) -> bool:
    """Whether wide designs are fitted through their exact Gram compression (every mode but ``span_time``)."""
    return regression.temporal_mode != "span_time"


def stimulus_splits(ids: Sequence[str], scheme: str, object_name: np.ndarray | None, n_splits: int,
                    seed: int, train_size: float = 0.9, stratify: bool = True) -> StimulusSplits:
    """:func:`~neurofit.regression.splits.make_splits` over ``ids``, without sklearn's thin-strata warning.

    Objects with fewer stimuli than folds (common in a held-out commitment set) make sklearn warn; the
    stratification is still the best possible, so the warning says nothing the user can act on.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The least populated class", UserWarning)
        return make_splits(ids, scheme=scheme, object_name=object_name, n_splits=n_splits, seed=seed,
                           train_size=train_size, stratify=stratify)


def region_problem(regression: RegressionSection, data: PreparedData, ids: Sequence[str], region_sites: np.ndarray,
                   refs_per_bin: Sequence[Sequence[tmap.FeatureRef]], splits: StimulusSplits,
                   features: _Features, device: str | None) -> _Problem:
    """The fold problem of one region's sites on ``ids`` with the mapped features of every bin."""
    targets = data.targets(ids)[:, region_sites]
    feats = [features.combine(refs) for refs in refs_per_bin]
    return _Problem(regression, feats, targets, splits.train, splits.test, device)


@dataclass
class RegionScores:
    """Per-site results of the scored stimuli: ``r``, ``r_fold``, ``ceiling``, ``ceiled``, the pooled held-out
    predictions (K-fold), each region's time mapping and PLS components, and the splits, targets and trials."""

    r: np.ndarray
    r_fold: np.ndarray
    ceiling: np.ndarray
    ceiled: np.ndarray
    pooled: np.ndarray
    mappings: dict[str, tmap.BinMapping]
    components: dict[str, set[int]]
    splits: StimulusSplits
    targets: np.ndarray
    trials: np.ndarray


def score_regions(bench: Benchmark, policy: str, committed: dict[str, tuple[str, float]], ext: Extracted,
                  data: PreparedData, runner: Any, device: str | None) -> RegionScores:
    """Cross-validate each region's committed mapping on the scored stimuli, one work unit per fold."""
    score_ids = data.score_ids
    splits = stimulus_splits(score_ids, bench.regression.split_scheme, data.object_labels(score_ids),
                             bench.regression.n_splits, bench.regression.seed, bench.regression.train_size,
                             bench.regression.stratify)
    position = ext.position
    features = _Features(ext.acts, np.array([position[s] for s in score_ids], dtype=np.int64),
                         narrow=narrow_designs(bench.regression))
    trials = data.trials_of(score_ids)
    targets = data.targets(score_ids)
    n_sites, n_bins = targets.shape[1], targets.shape[2]
    site_region = data.site_region
    model_layers = list(ext.acts.layers)
    r = np.full((n_sites, n_bins), np.nan)
    r_fold = np.full((splits.n_folds, n_sites, n_bins), np.nan)
    ceiled = np.full((n_sites, n_bins), np.nan)
    ceiling = site_ceiling(trials, bench.ceiling.method, bench.ceiling.n_splits, bench.ceiling.seed, bench.id)
    pooled_all = np.full(targets.shape, np.nan)
    mappings: dict[str, tmap.BinMapping] = {}
    components: dict[str, set[int]] = {}
    for region in bench.regions:
        layer, off = committed[region]
        mapping = _mapping(bench.mapping, bench.time_bins, policy, ext.acts, layer, off, model_layers)
        mappings[region] = mapping
        sites = np.flatnonzero(site_region == region)
        prob = region_problem(bench.regression, data, score_ids, sites, mapping.refs, splits, features, device)
        components[region] = _components_used(prob)
        units = [WorkUnit("score", region, {"layer": layer, "offset_ms": off}, f) for f in range(splits.n_folds)]
        preds = [res["prediction"] for _, res in runner.map(prob, units,
                                                             desc=f"score {region} {layer}@{off:g}ms")]
        r_region, r_fold_region, pooled = _r_from_folds(bench.regression, preds, prob.targets, splits.test)
        r[sites], r_fold[:, sites] = r_region, r_fold_region
        ceiled[sites] = site_ceiled(r_region, ceiling[sites], pooled, trials[:, :, sites], bench.ceiling.method,
                                    bench.ceiling.normalisation)
        if pooled is not None:
            pooled_all[:, sites] = pooled
    return RegionScores(r, r_fold, ceiling, ceiled, pooled_all, mappings, components, splits, targets, trials)
