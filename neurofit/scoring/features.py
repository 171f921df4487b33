"""Scoring precomputed features: features + recording -> per-site, per-bin scores (a ScoreSet core).

The entry point for features that come from outside a model run (a Brain-Score assembly, a user's own
array): no benchmark file, no layer commitment, every setting an argument. :func:`score_features`
repetition-averages the recording, aligns the features to its stimuli, draws splits over stimuli, and then
runs the steps of :func:`neurofit.scoring.score.score` (one path): the fold fits of
:mod:`neurofit.scoring.fit` (PLS or ridge per fold, for every time bin at once), the correlation of held-out
predictions with the averaged responses per site and bin (``_r_from_folds``), the noise ceiling and the
ceiled score (:func:`neurofit.scoreset.site_ceiled`); optionally it bootstraps the median over sites.
The result is a labelled ``xarray.Dataset`` whose attrs say how it was made (metric, split scheme,
temporal mode, normalisation, seed).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
import xarray as xr

from neurofit.data.recording import average_repetitions, trial_array
from neurofit.errors import NeurofitError, quiet_nan
from neurofit.regression.backend import get_backend
from neurofit.regression.ceiling import (
    NORMALISATIONS,
    Normalisation,
    SingleRepetitionError,
    brainscore_ceiling,
    split_half_ceiling,
)
from neurofit.regression.correlation import ConstantInputWarning
from neurofit.regression.pls import Algorithm
from neurofit.regression.ridge import DEFAULT_ALPHAS
from neurofit.regression.splits import SplitScheme, make_splits
from neurofit.scoreset import centred_interval, site_ceiled
from neurofit.scoring.benchmark import RegressionSection
from neurofit.scoring.fit import _Problem, _r_from_folds
from neurofit.stats.bootstrap import bootstrap_sites, bootstrap_stimuli

Features = xr.DataArray | Mapping[int, xr.DataArray] | Sequence[xr.DataArray]
TemporalMode = Literal["per_bin", "span_time"]
RECORDING_DIMS = ("presentation", "neuroid", "time_bin")


def _bin_label(recording: xr.DataArray, b: int) -> str:
    try:
        start = float(recording.coords["time_bin_start"].values[b])
        end = float(recording.coords["time_bin_end"].values[b])
        return f"time bin {b} ({start:g}-{end:g} ms)"
    except KeyError:
        return f"time bin {b}"


def _feature_matrix(block: xr.DataArray, stimulus_ids: np.ndarray, label: str) -> np.ndarray:
    """Rows of ``block`` in the order of ``stimulus_ids``; errors name the block and the stimulus."""
    if not isinstance(block, xr.DataArray) or block.ndim != 2 or "presentation" not in block.dims:
        raise NeurofitError(f"{label} must be an xarray.DataArray with dims (presentation, feature)")
    if "stimulus_id" not in block.coords:
        raise NeurofitError(f"{label} has no 'stimulus_id' coordinate along 'presentation': add one")
    block = block.transpose("presentation", ...)
    ids = np.asarray(block.coords["stimulus_id"].values).astype(str)
    position = {sid: i for i, sid in enumerate(ids)}
    if len(position) != len(ids):
        raise NeurofitError(f"{label} has repeated stimulus_id values: give one row per stimulus")
    missing = [str(sid) for sid in stimulus_ids if sid not in position]
    if missing:
        raise NeurofitError(
            f"stimulus_id {missing[0]!r} is in the recording but not in {label} "
            f"({len(missing)} missing): extract features for every recorded stimulus"
        )
    values = np.asarray(block.values)[[position[sid] for sid in stimulus_ids]]
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).any(axis=1).sum())
        raise NeurofitError(f"{label} contains NaN or Inf values ({bad} stimuli affected): fix the features")
    return values


def _collect_features(features: Features, recording: xr.DataArray, stimulus_ids: np.ndarray) -> np.ndarray:
    """Feature array ``[n_x, n_stimuli, p]`` with ``n_x`` 1 (shared) or one block per time bin."""
    n_bins = recording.sizes["time_bin"]
    if isinstance(features, xr.DataArray):
        return _feature_matrix(features, stimulus_ids, "features")[None]
    if isinstance(features, Mapping):
        keys = sorted(features)
        if keys != list(range(n_bins)):
            raise NeurofitError(
                f"features per time bin must be keyed 0..{n_bins - 1} (one per recording bin), got {keys}"
            )
        blocks = [features[k] for k in keys]
    else:
        blocks = list(features)
        if len(blocks) != n_bins:
            raise NeurofitError(f"{len(blocks)} feature blocks for {n_bins} time bins: give one per bin")
    mats = [_feature_matrix(b, stimulus_ids, f"features for {_bin_label(recording, i)}") for i, b in enumerate(blocks)]
    widths = {m.shape[1] for m in mats}
    if len(widths) != 1:
        raise NeurofitError(f"feature blocks differ in width {sorted(widths)}: reduce them to one size")
    return np.stack(mats)


def score_features(
    features: Features,
    recording: xr.DataArray,
    *,
    metric: Literal["pls", "ridge"] = "pls",
    splits: SplitScheme = "kfold",
    temporal_mode: TemporalMode = "per_bin",
    ceiling: bool = True,
    normalisation: Normalisation = "r2_over_ceiling",
    bootstrap: int = 0,
    n_splits: int = 10,
    n_components: int = 25,
    pls_algorithm: Algorithm | None = None,
    alphas: np.ndarray = DEFAULT_ALPHAS,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    seed: int = 0,
) -> xr.Dataset:
    """Map features onto a recording with cross-validated regression and score every site and bin.

    Parameters
    ----------
    features : DataArray (presentation, feature) or a mapping/sequence of them, one per time bin
        Must carry a ``stimulus_id`` coordinate along ``presentation`` covering every recorded stimulus.
    recording : DataArray (presentation, neuroid, time_bin)
        A recording per the data contract (trials or already averaged).
    metric : {"pls", "ridge"}
    splits : {"kfold", "brainscore"}
        K-fold over stimuli (seed ``seed``) or Brain-Score's 10 stratified shuffle splits (seed 1).
    temporal_mode : {"per_bin", "span_time"}
        One mapping per bin, or one mapping for all bins (bins stacked as samples).
    ceiling : bool
        Compute the noise ceiling (needs >= 2 repetitions). Split-half (10 halvings, seed 0) for
        ``kfold``; Brain-Score's internal consistency for ``brainscore``.
    normalisation : {"r2_over_ceiling", "legacy", "feve"}
    bootstrap : int
        Number of bootstrap draws (0: none) for per-region median CIs over stimuli and over sites.
    n_splits, n_components, alphas : split and model settings.
    pls_algorithm : {"exact", "nipals"}, optional
        Default ``exact`` for ``kfold`` and ``nipals`` for ``brainscore`` (to reproduce its numbers).
    device, dtype : where and in what precision to fit (default: :func:`neurofit.regression.backend.get_backend`,
        i.e. :func:`~neurofit.regression.backend.set_backend`'s choice, else CUDA/float32 if available, else
        CPU/float64).
    seed : int
        Seed of the K-fold splits and of the bootstrap.

    Returns
    -------
    xr.Dataset
        ``r``, ``ceiling``, ``ceiled`` (neuroid, time_bin), ``r_fold`` (fold, neuroid, time_bin); with
        ``bootstrap``: ``median_ceiled`` and its ``_low``/``_high`` (over stimuli) and ``_sites_low``/
        ``_sites_high`` (region, time_bin). Attrs: ``metric``, ``split_scheme``, ``temporal_mode``,
        ``normalisation``, ``seed``, ...

    Example
    -------
    >>> from neurofit.data.recording import make_recording
    >>> rng = np.random.default_rng(0)
    >>> feats = rng.normal(size=(40, 6)); ids = [f"s{i}" for i in range(40)]
    >>> trials = feats[:, :2] @ rng.normal(size=(2, 3)) + 0.3 * rng.normal(size=(4, 40, 3))
    >>> rec = make_recording(trials.reshape(160, 3, 1), stimulus_id=ids * 4, repetition=np.repeat(range(4), 40),
    ...                      neuroid_id=["n0", "n1", "n2"], region="IT", time_bin_start=[70],
    ...                      time_bin_end=[170], identifier="toy", stimulus_set_identifier="toy")
    >>> X = xr.DataArray(feats, dims=("presentation", "feature"), coords={"stimulus_id": ("presentation", ids)})
    >>> scores = score_features(X, rec, n_components=2, n_splits=5, device="cpu")
    >>> scores.r.dims, bool((scores.r > 0.8).all()), scores.attrs["normalisation"]
    (('neuroid', 'time_bin'), True, 'r2_over_ceiling')
    """
    if metric not in ("pls", "ridge"):
        raise NeurofitError(f"unknown metric {metric!r}: use 'pls' or 'ridge'")
    if temporal_mode not in ("per_bin", "span_time"):
        raise NeurofitError(f"unknown temporal_mode {temporal_mode!r}: use 'per_bin' or 'span_time'")
    if normalisation not in NORMALISATIONS:
        raise NeurofitError(f"unknown normalisation {normalisation!r}: use one of {NORMALISATIONS}")
    if not isinstance(recording, xr.DataArray) or tuple(recording.dims) != RECORDING_DIMS:
        raise NeurofitError(f"recording must be an xarray.DataArray with dims {RECORDING_DIMS}")
    if "stimulus_id" not in recording.coords:
        raise NeurofitError("recording has no 'stimulus_id' coordinate along 'presentation'")
    if normalisation == "feve" and splits != "kfold":
        raise NeurofitError("normalisation='feve' needs every stimulus predicted: use splits='kfold'")
    if bootstrap and splits != "kfold":
        raise NeurofitError("bootstrap over stimuli needs every stimulus predicted: use splits='kfold'")

    averaged = average_repetitions(recording)
    stimulus_ids = np.asarray(averaged.coords["stimulus_id"].values).astype(str)
    target = np.asarray(averaged.values, dtype=np.float64)  # (S, q, nb)
    if np.isnan(target).any():
        s, j, b = np.argwhere(np.isnan(target))[0]
        raise NeurofitError(
            f"stimulus_id {str(stimulus_ids[s])!r} has no valid trial for neuroid "
            f"{str(averaged.coords['neuroid_id'].values[j])!r} in {_bin_label(recording, b)}: drop the stimulus or site"
        )
    S, q, nb = target.shape
    X_np = _collect_features(features, recording, stimulus_ids)
    object_name = averaged.coords["object_name"].values if "object_name" in averaged.coords else None
    split = make_splits(
        stimulus_ids,
        scheme=splits,
        object_name=object_name,
        n_splits=n_splits,
        seed=seed if splits == "kfold" else None,
    )

    device, dtype = get_backend(device, dtype)
    algorithm = pls_algorithm or ("exact" if splits == "kfold" else "nipals")
    if metric == "pls":
        n_train = int(split.train.sum(1).min()) * (nb if temporal_mode == "span_time" else 1)
        if n_components > min(n_train, X_np.shape[-1]):
            raise NeurofitError(
                f"n_components={n_components} exceeds min(training stimuli, features)="
                f"{min(n_train, X_np.shape[-1])}: reduce n_components"
            )
    # the fold fits and correlations of score(): one path (neurofit.scoring.fit)
    regression = RegressionSection(metric=metric, n_components=n_components, algorithm=algorithm,
                                   split_scheme=splits, n_splits=n_splits, seed=seed, temporal_mode=temporal_mode)
    blocks = [X_np[0]] * nb if len(X_np) == 1 else list(X_np)  # one object: a design shared by every bin
    problem = _Problem(regression, blocks, target, split.train, split.test, str(device), dtype=dtype, alphas=alphas)
    n_folds = split.n_folds
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConstantInputWarning)
        preds = [problem.fold(f)["prediction"] for f in range(n_folds)]
        r, r_fold, prediction = _r_from_folds(regression, preds, target, split.test)
    n_constant = sum(1 for w in caught if issubclass(w.category, ConstantInputWarning))
    if n_constant:
        warnings.warn(
            "some sites are constant over the held-out stimuli: their r is NaN", ConstantInputWarning, stacklevel=2
        )

    trials = None
    if ceiling or normalisation == "feve":
        trials, trial_ids = trial_array(recording)
        assert list(trial_ids) == list(stimulus_ids)
    ceiling_values = np.full((q, nb), np.nan)
    if ceiling:
        try:
            ceiling_values = split_half_ceiling(trials) if splits == "kfold" else brainscore_ceiling(trials)[0]
        except SingleRepetitionError as err:
            raise SingleRepetitionError(f"{err}: pass ceiling=False to score r alone") from None
    # FEVe needs no ceiling, only every stimulus's held-out prediction
    ceiled = site_ceiled(r, ceiling_values, prediction, trials, "split_half" if ceiling or normalisation == "feve"
                         else "none", normalisation)

    neuroid_coords = {
        name: ("neuroid", np.asarray(c.values))
        for name, c in recording.coords.items()
        if c.dims == ("neuroid",)
    }
    bin_coords = {
        name: ("time_bin", np.asarray(c.values))
        for name, c in recording.coords.items()
        if c.dims == ("time_bin",)
    }
    ds = xr.Dataset(
        {
            "r": (("neuroid", "time_bin"), r),
            "ceiling": (("neuroid", "time_bin"), ceiling_values),
            "ceiled": (("neuroid", "time_bin"), ceiled),
            "r_fold": (("fold", "neuroid", "time_bin"), r_fold),
        },
        coords={**neuroid_coords, **bin_coords, "fold": np.arange(n_folds)},
    )
    if bootstrap:
        regions = (
            np.asarray(recording.coords["region"].values).astype(str)
            if "region" in recording.coords
            else np.array(["all"] * q)
        )
        use_ceiling = ceiling and normalisation != "feve"
        stim = bootstrap_stimuli(
            prediction,
            target,
            trials if use_ceiling else None,
            groups=regions,
            rule=normalisation if use_ceiling else "r2_over_ceiling",
            n_boot=bootstrap,
            seed=seed,
        )
        point_values = ceiled if (use_ceiling or normalisation == "feve") else r
        sites = bootstrap_sites(point_values, groups=regions, n_boot=bootstrap, seed=seed)
        names = stim["groups"]
        with quiet_nan():
            median = np.stack([np.nanmedian(point_values[regions == g], axis=0) for g in names])
        # the intervals are centred on their estimates, as score()'s are (neurofit.scoreset.centred_interval)
        # (FEVe: the stimulus draws are of the median r, so their interval stays theirs, as bootstrap_note says)
        stim_low, stim_high = ((stim["low"], stim["high"]) if normalisation == "feve"
                               else centred_interval(stim["draws"], median))
        sites_low, sites_high = centred_interval(sites["draws"], median)
        dims = ("region", "time_bin")
        ds = ds.assign(
            median_ceiled=(dims, median),
            median_ceiled_low=(dims, stim_low),
            median_ceiled_high=(dims, stim_high),
            median_ceiled_sites_low=(dims, sites_low),
            median_ceiled_sites_high=(dims, sites_high),
        ).assign_coords(region_name=("region", names))
        ds.attrs["bootstrap_draws"] = int(bootstrap)
        if normalisation == "feve":
            ds.attrs["bootstrap_note"] = "FEVe: the stimulus bootstrap covers the median r (FEVe is not resampled)"
    ds.attrs.update(
        {
            "metric": metric,
            "split_scheme": splits,
            "temporal_mode": temporal_mode,
            "normalisation": normalisation if (ceiling or normalisation == "feve") else "none",
            "ceiling_method": ("split_half" if splits == "kfold" else "brainscore") if ceiling else "none",
            "seed": int(seed),
            "split_seed": int(split.seed),
            "n_splits": int(n_folds),
            "pls_algorithm": algorithm if metric == "pls" else "",
            "n_components": int(n_components) if metric == "pls" else 0,
            "ridge_alphas": np.asarray(alphas, dtype=np.float64) if metric == "ridge" else np.zeros(0),
            "dtype": str(dtype).replace("torch.", ""),
        }
    )
    return ds
