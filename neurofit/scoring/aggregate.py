"""Step 6 of a score: per-region aggregates of the per-site scores, with their bootstrap intervals.

The median over each region's sites (:func:`neurofit.scoreset.region_medians`) of ``ceiled``, ``r`` and
``ceiling``; 95% intervals over stimuli (:func:`neurofit.stats.bootstrap.bootstrap_stimuli`, the ceiling
recomputed in every draw) and over sites (:func:`site_interval`), centred on their estimates
(:func:`neurofit.scoreset.centred_interval`); and Brain-Score's aggregate (mean over splits of the median r).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neurofit.errors import quiet_nan
from neurofit.regression.ceiling import brainscore_ceiling_splits, ceil_scores
from neurofit.scoreset import centred_interval, region_medians
from neurofit.scoring.benchmark import AggregateSection, CeilingSection
from neurofit.scoring.fit import RegionScores
from neurofit.stats.bootstrap import bootstrap_stimuli, hierarchical_median


def site_interval(values: np.ndarray, site_region: np.ndarray, regions: Sequence[str], estimate: np.ndarray,
                   settings: AggregateSection) -> tuple[np.ndarray, np.ndarray]:
    """95% site-bootstrap interval of each region's median over sites, centred on ``estimate`` [region, bin].

    Sites are resampled with replacement (``settings.n_bootstrap`` draws; region ``k`` seeded
    ``settings.seed + k``); the interval is :func:`neurofit.scoreset.centred_interval` of the draws.
    """
    low = np.full((len(regions), values.shape[1]), np.nan)
    high = low.copy()
    for k, region in enumerate(regions):
        sel = values[site_region == region]
        if len(sel):
            draws = hierarchical_median(sel, n_boot=settings.n_bootstrap, seed=settings.seed + k)
            low[k], high[k] = centred_interval(draws, estimate[k])
    return low, high


def aggregate(settings: AggregateSection, ceiling_settings: CeilingSection, split_scheme: str, scores: RegionScores,
              site_region: np.ndarray, regions: Sequence[str]) -> tuple[dict[str, tuple[tuple[str, ...], np.ndarray]],
                                                                      bool]:
    """The per-region variables of a ScoreSet (dims ``(region, time_bin)``) and whether the stimulus CI of the
    ceiled score was computed (it needs K-fold splits and the split-half ceiling).

    ``settings``: the benchmark's ``[aggregate]`` section; ``ceiling_settings``: its ``[ceiling]`` (the ceiling is
    recomputed in every stimulus draw); ``split_scheme``: its ``regression.split_scheme``.
    """
    r, ceiled, ceiling = scores.r, scores.ceiled, scores.ceiling
    medians = region_medians(ceiled, site_region, regions)
    median_r = region_medians(r, site_region, regions)
    median_ceiling = region_medians(ceiling, site_region, regions)
    stim_low = np.full_like(medians, np.nan)
    stim_high = np.full_like(medians, np.nan)
    site_low = np.full_like(medians, np.nan)
    site_high = np.full_like(medians, np.nan)
    r_stim_low, r_stim_high = np.full_like(medians, np.nan), np.full_like(medians, np.nan)
    r_site_low, r_site_high = np.full_like(medians, np.nan), np.full_like(medians, np.nan)
    stimulus_ci = (settings.n_bootstrap > 0 and split_scheme == "kfold"
                   and ceiling_settings.method == "split_half" and ceiling_settings.normalisation != "feve")
    # the median r needs no ceiling: its stimulus bootstrap only needs every stimulus predicted once (K-fold)
    stimulus_ci_r = settings.n_bootstrap > 0 and split_scheme == "kfold"
    if settings.n_bootstrap > 0:
        # bins no step maps to are NaN in every draw: their CI is NaN, without a warning per bin
        with quiet_nan():
            if stimulus_ci:
                # each stimulus is predicted once (K-fold): r and the split-half ceiling are redrawn together
                boot = bootstrap_stimuli(scores.pooled, scores.targets, scores.trials, groups=site_region,
                                         rule=ceiling_settings.normalisation, n_boot=settings.n_bootstrap,
                                         seed=settings.seed, n_halvings=ceiling_settings.n_splits,
                                         ceiling_seed=ceiling_settings.seed)
                order = [list(boot["groups"]).index(region) for region in regions]
                stim_low, stim_high = centred_interval(boot["draws"][:, order], medians)
            if stimulus_ci_r:
                boot = bootstrap_stimuli(scores.pooled, scores.targets, None, groups=site_region,
                                         n_boot=settings.n_bootstrap, seed=settings.seed)
                order = [list(boot["groups"]).index(region) for region in regions]
                r_stim_low, r_stim_high = centred_interval(boot["draws"][:, order], median_r)
        site_low, site_high = site_interval(ceiled, site_region, regions, medians, settings)
        r_site_low, r_site_high = site_interval(r, site_region, regions, median_r, settings)
    dims = ("region", "time_bin")
    variables = {
        "median_ceiled": (dims, medians),
        "median_ceiled_low": (dims, stim_low),
        "median_ceiled_high": (dims, stim_high),
        "median_ceiled_sites_low": (dims, site_low),
        "median_ceiled_sites_high": (dims, site_high),
        "median_r": (dims, median_r),
        "median_r_low": (dims, r_stim_low),
        "median_r_high": (dims, r_stim_high),
        "median_r_sites_low": (dims, r_site_low),
        "median_r_sites_high": (dims, r_site_high),
        "median_ceiling": (dims, median_ceiling),
    }
    if settings.method == "brainscore":
        variables.update(brainscore_aggregate(ceiling_settings, scores.r_fold, scores.trials, site_region, regions))
    return variables, stimulus_ci


def brainscore_aggregate(ceiling_settings: CeilingSection, r_fold: np.ndarray, trials: np.ndarray,
                         site_region: np.ndarray, regions: Sequence[str]
                         ) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """Brain-Score's numbers per region and bin, as its ``CrossRegressedCorrelation`` and ``InternalConsistency``
    give them (``ceiling_settings``: the benchmark's ``[ceiling]``).

    * ``benchmark_r``: the mean over splits of the median r over sites; ``benchmark_r_error``: Brain-Score's
      error, the population std over splits of those medians / sqrt(n_splits); ``benchmark_r_split``
      ``(region, fold, time_bin)``: the per-split medians (the per-site values are ``r_fold``).
    * ``benchmark_ceiling``, ``benchmark_ceiling_error``, ``benchmark_ceiling_split`` ``(region, ceiling_split,
      time_bin)``: the same for the internal-consistency ceiling over halvings of the repetitions (per site and
      halving: ``ceiling_split_sites``).
    * ``benchmark_score``: the ceiled score under the benchmark's rule (``r**2 / ceiling``: Brain-Score's
      ``explained_variance``); ``benchmark_score_error``: Brain-Score's error of it, the raw r's error.

    Medians and means skip NaN (xarray's ``skipna``, as Brain-Score computes them).
    """
    region_dims = ("region", "time_bin")
    with quiet_nan():
        # [region, fold, bin]: the median over each region's sites in each split
        per_split = np.stack([np.nanmedian(r_fold[:, site_region == region], axis=1) for region in regions])
        ceiling_sites = brainscore_ceiling_splits(trials, ceiling_settings.n_splits, ceiling_settings.seed)
        ceiling_split = np.stack([np.nanmedian(ceiling_sites[:, site_region == region], axis=1)
                                  for region in regions])
        bs_r, r_error = np.nanmean(per_split, axis=1), _standard_error(per_split)
        bs_ceiling, ceiling_error = np.nanmean(ceiling_split, axis=1), _standard_error(ceiling_split)
    rule = ceiling_settings.normalisation if ceiling_settings.normalisation != "feve" else "r2_over_ceiling"
    return {
        "benchmark_r": (region_dims, bs_r),
        "benchmark_r_error": (region_dims, r_error),
        "benchmark_r_split": (("region", "fold", "time_bin"), per_split),
        "benchmark_ceiling": (region_dims, bs_ceiling),
        "benchmark_ceiling_error": (region_dims, ceiling_error),
        "benchmark_ceiling_split": (("region", "ceiling_split", "time_bin"), ceiling_split),
        "ceiling_split_sites": (("ceiling_split", "neuroid", "time_bin"), ceiling_sites),
        "benchmark_score": (region_dims, ceil_scores(bs_r, bs_ceiling, rule)),
        # Brain-Score's explained_variance carries the raw score's error over to the ceiled score
        "benchmark_score_error": (region_dims, r_error),
    }


def _standard_error(per_split: np.ndarray) -> np.ndarray:
    """Brain-Score's ``standard_error_of_the_mean`` over axis 1: population std (NaN skipped) / sqrt(n)."""
    return np.nanstd(per_split, axis=1) / np.sqrt(per_split.shape[1])
