"""Layer commitment: which layer (and latency offset) stands for each region, chosen on held-out stimuli.

The benchmark declares a commitment split: a seeded, ``object_name``-stratified share of the stimuli is
held out from the scored ones. Every candidate (layer, and for temporal maps the offset of the model's time
axis) is cross-validated on those held-out stimuli only, and the best one is then scored on the rest. The
scored stimuli, and therefore the test folds, never influence the choice.

The criterion is the mean over the benchmark's bins of the median raw Pearson r over the region's sites;
an unmapped bin (no driven step covers it) counts as r = 0. Raw r is used rather than ceiled scores because
``r^2 / ceiling`` explodes in bins whose ceiling is near zero (before the response starts).

:func:`commit_layers` is step 4 of a score.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import StratifiedShuffleSplit

from neurofit.errors import NeurofitError, quiet_nan
from neurofit.runners.local import WorkUnit
from neurofit.scoring.benchmark import Benchmark
from neurofit.scoring.fit import (
    _components_used,
    _Features,
    _mapping,
    _Problem,
    _r_from_folds,
    narrow_designs,
    region_problem,
    stimulus_splits,
)

if TYPE_CHECKING:
    from neurofit.scoring.data import PreparedData
    from neurofit.scoring.extraction import Extracted


def commitment_split(
    stimulus_ids: Sequence[str],
    fraction: float,
    seed: int = 0,
    object_name: Sequence[str] | None = None,
) -> tuple[list[str], list[str]]:
    """Split stimuli into a commitment set (``fraction`` of them) and the scored set (the rest).

    Stratified by ``object_name`` when every object has at least two stimuli; seeded. ``fraction = 0`` holds
    nothing out. Both lists keep the order of ``stimulus_ids``.

    Parameters
    ----------
    stimulus_ids : sequence of str
        Unique stimulus ids.
    fraction : float
        Share held out for commitment, in ``[0, 1)``.
    seed : int
    object_name : sequence of str, optional
        Stratification label per stimulus.

    Returns
    -------
    commit_ids, score_ids : list of str

    Example
    -------
    >>> ids = [f"s{i}" for i in range(20)]
    >>> commit, scored = commitment_split(ids, 0.25, object_name=["a", "b"] * 10)
    >>> len(commit), len(scored), sorted(commit + scored) == sorted(ids)
    (5, 15, True)
    """
    ids = [str(s) for s in stimulus_ids]
    if len(set(ids)) != len(ids):
        raise NeurofitError("commitment_split needs unique stimulus ids")
    if not 0.0 <= fraction < 1.0:
        raise NeurofitError(f"commitment fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return [], ids
    n = len(ids)
    n_commit = int(round(fraction * n))
    if n_commit < 2 or n - n_commit < 2:
        raise NeurofitError(f"a commitment fraction of {fraction} of {n} stimuli leaves too few on one side")
    order = np.arange(n)
    labels = None if object_name is None else np.asarray(object_name).astype(str)
    if labels is not None and len(labels) != n:
        raise NeurofitError(f"object_name has {len(labels)} entries for {n} stimuli")
    stratify = labels is not None and np.unique(labels, return_counts=True)[1].min() >= 2 and \
        len(np.unique(labels)) <= min(n_commit, n - n_commit)
    if stratify:
        splitter = StratifiedShuffleSplit(n_splits=1, test_size=n_commit, random_state=seed)
        score_idx, commit_idx = next(splitter.split(order, labels))
    else:
        rng = np.random.default_rng(seed)
        commit_idx = rng.permutation(n)[:n_commit]
    commit_mask = np.zeros(n, dtype=bool)
    commit_mask[commit_idx] = True
    return [ids[i] for i in order[commit_mask]], [ids[i] for i in order[~commit_mask]]


def commitment_criterion(r: np.ndarray, mapped: Sequence[bool]) -> float:
    """Mean over bins of the median r over sites; unmapped bins (and bins with no valid site) count as 0.

    Parameters
    ----------
    r : np.ndarray, shape (n_sites, n_bins)
    mapped : sequence of bool, shape (n_bins,)

    Example
    -------
    >>> round(commitment_criterion(np.array([[0.2, 0.4], [0.4, 0.6]]), [True, False]), 6)
    0.15
    """
    r = np.asarray(r, dtype=np.float64)
    with quiet_nan():  # all-NaN bins
        medians = np.nanmedian(r, axis=0) if r.shape[0] else np.full(r.shape[1], np.nan)
    medians = np.where(np.asarray(mapped, dtype=bool) & np.isfinite(medians), medians, 0.0)
    return float(np.mean(medians))


def choose(criteria: Mapping[Any, float]) -> Any:
    """The candidate with the highest criterion; ties go to the one listed first.

    Example
    -------
    >>> choose({("V4", 0.0): 0.3, ("IT", 0.0): 0.5, ("IT", 10.0): 0.5})
    ('IT', 0.0)
    """
    if not criteria:
        raise NeurofitError("no candidate layers to commit to")
    best_key, best_value = None, -np.inf
    for key, value in criteria.items():
        if value > best_value:
            best_key, best_value = key, value
    return best_key if best_key is not None else next(iter(criteria))


class _Candidates:
    """A runner's work function over the units of several candidates: each unit goes to its candidate's
    :class:`~neurofit.scoring.fit._Problem` (a plain object of numpy arrays, so a dask runner ships them as files)."""

    def __init__(self, problems: dict[tuple[str, float], _Problem]) -> None:
        self.problems = problems

    def _of(self, unit: WorkUnit) -> _Problem:
        return self.problems[(unit.candidate["layer"], float(unit.candidate["offset_ms"]))]

    def __call__(self, unit: WorkUnit) -> Any:
        return self._of(unit)(unit)

    def split(self, unit: WorkUnit, parts: int) -> list[WorkUnit]:
        """The unit's pieces, as its candidate's problem cuts them (:meth:`_Problem.split`)."""
        return self._of(unit).split(unit, parts)

    def merge(self, unit: WorkUnit, parts: list[tuple[WorkUnit, Any]]) -> Any:
        """The unit's result from its pieces' (:meth:`_Problem.merge`)."""
        return self._of(unit).merge(unit, parts)


@dataclass
class Commitment:
    """Each region's committed ``(layer, offset_ms)``, the criteria of every candidate, and what the fits used."""

    committed: dict[str, tuple[str, float]]
    criteria: dict[str, dict[str, float]]
    folds: set[int]
    components: set[int]


def commit_layers(bench: Benchmark, policy: str, offsets: Sequence[float], candidates: Mapping[str, Sequence[str]],
                  ext: Extracted, data: PreparedData, runner: Any, device: str | None) -> Commitment:
    """Cross-validate every candidate layer x offset of each region on the held-out commitment stimuli only.

    A region with one candidate keeps it without a fit. The criterion is :func:`commitment_criterion` (mean
    over the mapped bins of the median r over sites); :func:`choose` breaks ties by the earliest layer/offset.
    """
    commit_ids = data.commit_ids
    model_layers = list(ext.acts.layers)
    site_region = data.site_region
    position = ext.position
    committed: dict[str, tuple[str, float]] = {}
    criteria_attr: dict[str, dict[str, float]] = {}
    folds: set[int] = set()
    components: set[int] = set()
    features = _Features(ext.acts, np.array([position[s] for s in commit_ids], dtype=np.int64),
                         narrow=narrow_designs(bench.regression))
    for region in bench.regions:
        cands = [(layer, float(off)) for layer in candidates[region] for off in offsets]
        if policy == "graded":
            cands = [(model_layers[0], float(off)) for off in offsets]
        if len(cands) == 1:
            committed[region] = cands[0]
            continue
        if not commit_ids:
            raise NeurofitError(f"benchmark {bench.id!r} holds no stimuli out for commitment (commitment.fraction "
                                f"= 0): name the layer of each region with layers=")
        sites = np.flatnonzero(site_region == region)
        splits = stimulus_splits(commit_ids, "kfold", data.object_labels(commit_ids),
                                 min(bench.commitment.n_splits, len(commit_ids)), bench.commitment.seed)
        # every candidate x fold of the region is one batch of units, so a runner keeps all its workers busy
        # (a candidate alone has only a few folds)
        problems: dict[tuple[str, float], tuple[Any, _Problem]] = {}
        units = []
        for layer, off in cands:
            mapping = _mapping(bench.mapping, bench.time_bins, policy, ext.acts, layer, off, model_layers)
            prob = region_problem(bench.regression, data, commit_ids, sites, mapping.refs, splits, features, device)
            problems[(layer, off)] = (mapping, prob)
            folds.add(int(splits.n_folds))
            components |= _components_used(prob)
            units += [WorkUnit("commit", region, {"layer": layer, "offset_ms": off}, f) for f in range(splits.n_folds)]
        preds: dict[tuple[str, float], list[np.ndarray]] = {cand: [] for cand in problems}
        for unit, res in runner.map(_Candidates({cand: prob for cand, (_, prob) in problems.items()}), units,
                                    desc=f"commit {region} ({len(problems)} candidates)"):
            preds[(unit.candidate["layer"], unit.candidate["offset_ms"])].append(res["prediction"])
        criteria: dict[tuple[str, float], float] = {}
        for (layer, off), (mapping, prob) in problems.items():
            r, _, _ = _r_from_folds(dataclasses.replace(bench.regression, split_scheme="kfold"), preds[(layer, off)],
                                    prob.targets, splits.test)
            criteria[(layer, off)] = commitment_criterion(r, mapping.mapped)
        committed[region] = choose(criteria)
        criteria_attr[region] = {f"{layer}@{off:g}ms": value for (layer, off), value in criteria.items()}
    return Commitment(committed, criteria_attr, folds, components)
