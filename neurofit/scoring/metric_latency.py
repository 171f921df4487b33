"""Per-site latency: the lag between model steps and recording bins fitted for each site (issue 17 item 6).

The default commits one latency offset per region (:mod:`neurofit.scoring.commit`). With ``latency="site"``
(``score(..., latency="site")``, ``neurofit score --latency site``) each site also gets its own offset: every
offset of the benchmark's ``mapping.offsets_ms`` is cross-validated with the region's committed layer on the
held-out commitment stimuli (the same work units as the region's commitment), and each site keeps the offset
with the highest mean over bins of its own r (an unmapped bin counts as 0; ties go to the earliest offset).
The scored stimuli are then scored at every offset and each site takes the scores of its own offset.

The region-level policy stays the ScoreSet's main score (``r``, ``ceiled``, ``median_*``); the per-site lags are
added beside it: ``lag_ms`` (per site), ``r_site_lag``, ``ceiled_site_lag`` (per site and bin),
``median_ceiled_site_lag`` (per region and bin, with a site-bootstrap CI), the lags' distribution
(``site_lags_ms``: sites per offset and region) and how much the scores change (``site_lag_change``: per region
the mean over bins of the median ceiled score with per-site lags minus that with the region's lag).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from neurofit.errors import NeurofitError, quiet_nan
from neurofit.runners.local import WorkUnit
from neurofit.scoreset import region_medians
from neurofit.scoring.aggregate import site_interval
from neurofit.scoring.benchmark import Benchmark
from neurofit.scoring.fit import (
    OFFSET_POLICIES,
    _Features,
    _mapping,
    _r_from_folds,
    narrow_designs,
    region_problem,
    score_regions,
    stimulus_splits,
)

if TYPE_CHECKING:
    from neurofit.scoring.commit import Commitment
    from neurofit.scoring.data import PreparedData
    from neurofit.scoring.extraction import Extracted
    from neurofit.scoring.fit import RegionScores

LATENCIES = ("region", "site")


def site_criteria(r: np.ndarray, mapped: Sequence[bool]) -> np.ndarray:
    """Per site: the mean over bins of its r, an unmapped bin (or an undefined r) counting as 0.

    Example
    -------
    >>> site_criteria(np.array([[0.2, 0.4], [np.nan, 0.6]]), [True, False]).tolist()
    [0.1, 0.0]
    """
    r = np.where(np.asarray(mapped, dtype=bool)[None] & np.isfinite(r), r, 0.0)
    return r.mean(axis=1)


def site_lags(bench: Benchmark, policy: str, offsets: Sequence[float], commitment: Commitment, ext: Extracted,
              prepared: PreparedData, runner: Any, device: str | None, region_scores: RegionScores
              ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Per-site offsets chosen on the commitment stimuli and the scores they give: ``(variables, coords, attrs)``.

    Example
    -------
    >>> scores = score("bl", "synthetic-ventral-it-temporal", latency="site")  # doctest: +SKIP
    >>> scores.lag_ms.values  # doctest: +SKIP
    """
    if policy not in OFFSET_POLICIES or len(offsets) < 2:
        raise NeurofitError(f"per-site latency chooses among latency offsets: benchmark {bench.id!r} needs a "
                            f"mapping.policy of {', '.join(OFFSET_POLICIES)} (this run uses {policy!r}) and at least "
                            f"two mapping.offsets_ms (it has {len(offsets)})")
    commit_ids = prepared.commit_ids
    if not commit_ids:
        raise NeurofitError(f"benchmark {bench.id!r} holds no stimuli out for commitment (commitment.fraction = 0): "
                            "per-site lags are chosen on them")
    site_region = prepared.site_region
    model_layers = list(ext.acts.layers)
    features = _Features(ext.acts, np.array([ext.position[s] for s in commit_ids], dtype=np.int64),
                         narrow=narrow_designs(bench.regression))
    splits = stimulus_splits(commit_ids, "kfold", prepared.object_labels(commit_ids),
                             min(bench.commitment.n_splits, len(commit_ids)), bench.commitment.seed)
    choice = np.zeros(len(site_region), dtype=np.int64)
    for region in bench.regions:
        layer = commitment.committed[region][0]
        sites = np.flatnonzero(site_region == region)
        criteria = np.zeros((len(offsets), len(sites)))
        for k, off in enumerate(offsets):
            mapping = _mapping(bench.mapping, bench.time_bins, policy, ext.acts, layer, float(off), model_layers)
            prob = region_problem(bench.regression, prepared, commit_ids, sites, mapping.refs, splits, features,
                                  device)
            # the region's commitment ran these very units: a run's store hands them back without a fit
            units = [WorkUnit("commit", region, {"layer": layer, "offset_ms": float(off)}, f)
                     for f in range(splits.n_folds)]
            preds = [res["prediction"] for _, res in runner.map(prob, units, desc=f"lags {region} {layer}@{off:g}ms")]
            r, _, _ = _r_from_folds(dataclasses.replace(bench.regression, split_scheme="kfold"), preds, prob.targets,
                                    splits.test)
            criteria[k] = site_criteria(r, mapping.mapped)
        choice[sites] = np.argmax(criteria, axis=0)  # the first of equal criteria: the earliest offset
    r = np.full(region_scores.r.shape, np.nan)
    ceiled = np.full_like(r, np.nan)
    for k, off in enumerate(offsets):
        if not (choice == k).any():
            continue
        committed = {region: (commitment.committed[region][0], float(off)) for region in bench.regions}
        scores = region_scores if committed == commitment.committed else score_regions(
            bench, policy, committed, ext, prepared, runner, device)
        r[choice == k], ceiled[choice == k] = scores.r[choice == k], scores.ceiled[choice == k]
    regions = list(bench.regions)
    lag = np.asarray(offsets, dtype=np.float64)[choice]
    dims = ("region", "time_bin")
    median = region_medians(ceiled, site_region, regions)
    variables: dict[str, Any] = {
        "r_site_lag": (("neuroid", "time_bin"), r),
        "ceiled_site_lag": (("neuroid", "time_bin"), ceiled),
        "median_ceiled_site_lag": (dims, median),
    }
    if bench.aggregate.n_bootstrap:
        low, high = site_interval(ceiled, site_region, regions, median, bench.aggregate)
        variables["median_ceiled_site_lag_sites_low"] = (dims, low)
        variables["median_ceiled_site_lag_sites_high"] = (dims, high)
    region_median = region_medians(region_scores.ceiled, site_region, regions)
    with quiet_nan():
        change = np.nanmean(median - region_median, axis=1)
    attrs = {
        "latency": ("site: each site's latency offset chosen on the commitment stimuli (mean over bins of its r with "
                    "the region's committed layer, an unmapped bin counting as 0); r, ceiled and median_* keep the "
                    "region's offset, the per-site lags' scores are r_site_lag, ceiled_site_lag, "
                    "median_ceiled_site_lag"),
        "site_lags_ms": {region: {f"{off:g}": int(((site_region == region) & (lag == off)).sum()) for off in offsets}
                         for region in regions},
        "site_lag_change": {region: float(c) for region, c in zip(regions, change)},
    }
    return variables, {"lag_ms": ("neuroid", lag)}, attrs


__all__ = ["LATENCIES", "site_criteria", "site_lags"]
