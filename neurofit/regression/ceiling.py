"""Noise ceilings per site and time bin, and the rules that turn r into a ceiled score.

Trials come as the NaN-padded array of :func:`neurofit.data.recording.trial_array`,
``[n_stimuli, max_repetitions, n_neuroids, n_bins]``; NaN trials are ignored, never imputed.

* :func:`split_half_ceiling` (default): 10 random halvings of each stimulus's repetitions (seed 0), Pearson
  r across stimuli between the two half-means, Spearman-Brown corrected (``2r / (1 + r)``), averaged over
  halvings. Unequal repetition counts are fine: each stimulus's own valid repetitions are halved.
* :func:`brainscore_ceiling`: Brain-Score's ``InternalConsistency``: 10 ``ShuffleSplit(train_size=0.5,
  random_state=1)`` halvings of the repetition *indices* shared by all stimuli, Spearman-Brown per
  neuroid; the reported value is the median over neuroids averaged over halvings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
from sklearn.model_selection import ShuffleSplit

from neurofit.errors import NeurofitError
from neurofit.regression.correlation import pearson_r_valid
from neurofit.regression.memo import content_key, memoized

Normalisation = Literal["r2_over_ceiling", "legacy", "feve"]
NORMALISATIONS = ("r2_over_ceiling", "legacy", "feve")


class SingleRepetitionError(NeurofitError):
    """A ceiling was asked of trials with one repetition per stimulus; each caller names its own way out."""


def _check_trials(trials: np.ndarray) -> np.ndarray:
    trials = np.asarray(trials, dtype=np.float64)
    if trials.ndim != 4:
        raise NeurofitError(
            f"trials must be [stimulus, repetition, neuroid, time_bin], got shape {trials.shape}"
        )
    valid = ~np.isnan(trials)
    n_reps = valid.any(axis=(2, 3)).sum(axis=1)
    if trials.shape[1] < 2 or n_reps.max(initial=0) < 2:
        raise SingleRepetitionError(
            "a noise ceiling needs at least 2 repetitions per stimulus, but the recording has only one "
            "(no ceiling is invented)"
        )
    return trials


def spearman_brown(r: np.ndarray, factor: float = 2.0) -> np.ndarray:
    """Spearman-Brown prophecy ``factor * r / (1 + (factor - 1) * r)``.

    Example
    -------
    >>> float(spearman_brown(np.array(0.5)))
    0.6666666666666666
    """
    return factor * r / (1.0 + (factor - 1.0) * r)


def halving_masks(trials: np.ndarray, n_splits: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random halvings of each stimulus's valid repetitions.

    Returns
    -------
    half_a, half_b : np.ndarray of bool, shape (n_splits, n_stimuli, max_repetitions)
        ``floor(k/2)`` of a stimulus's ``k`` valid repetitions go to ``half_a``, the rest to ``half_b``.

    Example
    -------
    >>> a, b = halving_masks(np.ones((3, 4, 1, 1)), n_splits=2)
    >>> a.sum(axis=2).tolist(), bool((a & b).any())
    ([[2, 2, 2], [2, 2, 2]], False)
    """
    valid = ~np.isnan(np.asarray(trials)).all(axis=(2, 3))  # a slot with data for any site/bin
    rng = np.random.default_rng(seed)
    keys = rng.random((n_splits, *valid.shape))
    keys[:, ~valid] = np.inf
    ranks = np.argsort(np.argsort(keys, axis=-1), axis=-1)
    half = (valid.sum(axis=1) // 2)[None, :, None]
    return (ranks < half) & valid[None], (ranks >= half) & valid[None]


def _masked_mean(trials0: np.ndarray, valid: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Mean over repetitions in ``mask`` [stim, rep] of finite trials; NaN where none."""
    m = mask[:, :, None, None]
    count = (valid & m).sum(axis=1)
    total = np.where(m, trials0, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def half_means(
    trials: np.ndarray, half_a: np.ndarray, half_b: np.ndarray
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield the two half-means ``[n_stimuli, n_neuroids, n_bins]`` for each halving (NaN: empty half)."""
    valid = ~np.isnan(trials)
    trials0 = np.where(valid, trials, 0.0)
    for a, b in zip(half_a, half_b):
        yield _masked_mean(trials0, valid, a), _masked_mean(trials0, valid, b)


def split_half_ceiling(trials: np.ndarray, n_splits: int = 10, seed: int = 0) -> np.ndarray:
    """Spearman-Brown corrected split-half reliability per site and time bin.

    Parameters
    ----------
    trials : np.ndarray, shape (n_stimuli, max_repetitions, n_neuroids, n_bins)
        NaN-padded trials (:func:`neurofit.data.recording.trial_array`).
    n_splits : int
        Number of random halvings (averaged).
    seed : int

    Returns
    -------
    ceiling : np.ndarray, shape (n_neuroids, n_bins)
        Mean over halvings of ``2r / (1 + r)``; NaN for a site that is constant in a half.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=(200, 1, 3, 1))
    >>> trials = signal + rng.normal(size=(200, 8, 3, 1))  # reliability of an 8-trial mean: 8/9
    >>> c = split_half_ceiling(trials)
    >>> bool(np.all(np.abs(c - 8 / 9) < 0.05))
    True
    """
    trials = _check_trials(trials)

    def compute() -> np.ndarray:
        half_a, half_b = halving_masks(trials, n_splits, seed)
        rs = [spearman_brown(pearson_r_valid(a, b)) for a, b in half_means(trials, half_a, half_b)]
        return np.mean(rs, axis=0)

    return memoized(("split_half_ceiling", content_key(trials), int(n_splits), int(seed)), compute)


def brainscore_ceiling(trials: np.ndarray, n_splits: int = 10, seed: int = 1) -> tuple[np.ndarray, float]:
    """Brain-Score's internal-consistency ceiling.

    The repetition indices (shared by all stimuli) are halved by ``ShuffleSplit(n_splits, train_size=0.5,
    random_state=seed)``; each half is averaged per stimulus (NaN trials ignored), Pearson r per neuroid and
    bin, Spearman-Brown corrected.

    Returns
    -------
    per_site : np.ndarray, shape (n_neuroids, n_bins)
        Mean over halvings of the corrected r.
    aggregate : np.ndarray, shape (n_bins,)
        Brain-Score's number: the median over neuroids, averaged over halvings.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> trials = rng.normal(size=(100, 1, 4, 1)) + rng.normal(size=(100, 6, 4, 1))
    >>> per_site, agg = brainscore_ceiling(trials)
    >>> per_site.shape, agg.shape
    ((4, 1), (1,))
    """
    per_split = brainscore_ceiling_splits(trials, n_splits, seed)
    return per_split.mean(axis=0), np.nanmedian(per_split, axis=1).mean(axis=0)


def brainscore_ceiling_splits(trials: np.ndarray, n_splits: int = 10, seed: int = 1) -> np.ndarray:
    """The per-halving values of :func:`brainscore_ceiling`: ``[halving, neuroid, bin]`` (Brain-Score's ``raw``).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> trials = rng.normal(size=(100, 1, 4, 1)) + rng.normal(size=(100, 6, 4, 1))
    >>> brainscore_ceiling_splits(trials, n_splits=3).shape
    (3, 4, 1)
    """
    trials = _check_trials(trials)
    n_reps = trials.shape[1]
    splitter = ShuffleSplit(n_splits=n_splits, train_size=0.5, random_state=seed)
    valid = ~np.isnan(trials)
    trials0 = np.where(valid, trials, 0.0)
    per_split = []
    for a_idx, b_idx in splitter.split(np.arange(n_reps)):
        ma = np.zeros((trials.shape[0], n_reps), dtype=bool)
        mb = np.zeros_like(ma)
        ma[:, a_idx] = True
        mb[:, b_idx] = True
        r = pearson_r_valid(_masked_mean(trials0, valid, ma), _masked_mean(trials0, valid, mb))
        per_split.append(spearman_brown(r))
    return np.asarray(per_split)


def ceil_scores(r: np.ndarray, ceiling: np.ndarray, rule: Normalisation = "r2_over_ceiling") -> np.ndarray:
    """Ceiled score per site and bin.

    ``r2_over_ceiling``: ``r**2 / ceiling`` (the default: explained variance over explainable variance);
    ``legacy``: ``(r / ceiling)**2``. A non-positive or NaN ceiling gives NaN. FEVe needs trials and
    predictions: use :func:`feve`.

    Example
    -------
    >>> r, c = np.array([0.5]), np.array([0.5])
    >>> ceil_scores(r, c).tolist(), ceil_scores(r, c, "legacy").tolist()
    ([0.5], [1.0])
    """
    r = np.asarray(r, dtype=np.float64)
    ceiling = np.asarray(ceiling, dtype=np.float64)
    good = np.isfinite(ceiling) & (ceiling > 0)
    safe = np.where(good, ceiling, 1.0)
    if rule == "r2_over_ceiling":
        out = r**2 / safe
    elif rule == "legacy":
        out = (r / safe) ** 2
    else:
        raise NeurofitError(f"unknown normalisation {rule!r} for ceil_scores: use one of {NORMALISATIONS}")
    return np.where(good, out, np.nan)


def feve(prediction: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Fraction of explainable variance explained (Cadena et al. 2019) per site and bin.

    ``1 - (MSE - noise_var) / (total_var - noise_var)`` over all valid trials, where ``noise_var`` is the
    mean within-stimulus variance across repetitions (ddof=1) and ``total_var`` the variance of all trials.

    Parameters
    ----------
    prediction : np.ndarray, shape (n_stimuli, n_neuroids, n_bins)
    trials : np.ndarray, shape (n_stimuli, max_repetitions, n_neuroids, n_bins)

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=(500, 2, 1))
    >>> trials = signal[:, None] + 0.5 * rng.normal(size=(500, 10, 2, 1))
    >>> bool(np.all(np.abs(feve(signal, trials) - 1) < 0.05))
    True
    """
    trials = _check_trials(trials)
    valid = ~np.isnan(trials)
    with np.errstate(invalid="ignore", divide="ignore"):
        mse = np.nanmean((trials - prediction[:, None]) ** 2, axis=(0, 1))
        total = np.nanvar(trials, axis=(0, 1))
        per_stim = np.nanvar(trials, axis=1, ddof=1)
        per_stim[valid.sum(axis=1) < 2] = np.nan
        noise = np.nanmean(per_stim, axis=0)
        return 1.0 - (mse - noise) / (total - noise)
