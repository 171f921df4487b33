"""Bootstrap confidence intervals for the median ceiled score over sites.

Two resamplings, both seeded and both recorded by scoring:

* over **stimuli** (:func:`bootstrap_stimuli`): each draw resamples stimuli with replacement and recomputes,
  on the drawn stimuli, both the prediction-response correlation of every site and its split-half
  ceiling (the same halvings as the point estimate), so the interval covers the ratio, not only r.
  Nothing is refitted (held-out predictions are fixed): r and the ceilings come from per-stimulus
  sufficient statistics weighted by each draw's counts, so a draw costs a few matrix products.
* over **sites** (:func:`bootstrap_sites`): resample sites with replacement and take the median of their
  ceiled scores.

Intervals are percentile intervals of the median over sites (NaN sites ignored).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from neurofit.regression.ceiling import (
    Normalisation,
    ceil_scores,
    half_means,
    halving_masks,
    spearman_brown,
)


def _draw_counts(rng: np.random.Generator, n_draws: int, n: int) -> np.ndarray:
    idx = rng.integers(0, n, size=(n_draws, n))
    flat = (idx + n * np.arange(n_draws)[:, None]).ravel()
    return np.bincount(flat, minlength=n_draws * n).reshape(n_draws, n).astype(np.float64)


def _pair_statistics(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-stimulus sums for Pearson r of each column pair, ``(S, 6, M)``; NaN rows contribute nothing."""
    ok = np.isfinite(a) & np.isfinite(b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        # centring first keeps the one-pass sums free of cancellation
        a = np.where(ok, a - np.nanmean(np.where(ok, a, np.nan), axis=0), 0.0)
        b = np.where(ok, b - np.nanmean(np.where(ok, b, np.nan), axis=0), 0.0)
    return np.stack([ok.astype(np.float64), a, b, a * a, b * b, a * b], axis=1)


def _r_from_sums(sums: np.ndarray) -> np.ndarray:
    """Pearson r from weighted sums ``(D, 6, M)`` -> ``(D, M)``."""
    n, sa, sb, saa, sbb, sab = np.moveaxis(sums, 1, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = sab - sa * sb / n
        va = saa - sa**2 / n
        vb = sbb - sb**2 / n
        r = cov / np.sqrt(va * vb)
    r[(n < 3) | ~(va > 0) | ~(vb > 0)] = np.nan
    return r


def bootstrap_stimuli(
    prediction: np.ndarray,
    target: np.ndarray,
    trials: np.ndarray | None,
    *,
    groups: np.ndarray,
    rule: Normalisation = "r2_over_ceiling",
    n_draws: int = 1000,
    seed: int = 0,
    n_halvings: int = 10,
    ceiling_seed: int = 0,
    ci: float = 95.0,
    chunk: int = 100,
    max_bytes: int = 256 * 2**20,
) -> dict[str, np.ndarray]:
    """Percentile CI of the per-group median ceiled score, resampling stimuli.

    Parameters
    ----------
    prediction, target : np.ndarray, shape (n_stimuli, n_sites, n_bins)
        Held-out predictions and repetition-averaged responses.
    trials : np.ndarray (n_stimuli, max_repetitions, n_sites, n_bins) or None
        NaN-padded trials for the ceiling; ``None`` bootstraps the median r (no ceiling).
    groups : np.ndarray of str, shape (n_sites,)
        Group (region) of each site; medians are taken within groups.
    rule : {"r2_over_ceiling", "legacy"}
    n_draws, seed : bootstrap draws and their seed.
    n_halvings, ceiling_seed : the split-half ceiling's halvings, as in the point estimate.
    ci : float
        Interval width in percent.

    Returns
    -------
    dict with ``groups`` (n_groups,), ``low`` and ``high`` (n_groups, n_bins) and ``draws``
    (n_draws, n_groups, n_bins): the median ceiled score of each draw.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=(80, 1, 4, 1))
    >>> trials = signal + rng.normal(size=(80, 6, 4, 1))
    >>> out = bootstrap_stimuli(signal[:, 0], np.nanmean(trials, 1), trials, groups=np.array(["IT"] * 4),
    ...                         n_draws=50)
    >>> out["low"].shape, bool(out["low"][0, 0] < out["high"][0, 0])
    ((1, 1), True)
    """
    S, n_sites, n_bins = target.shape
    M = n_sites * n_bins
    pred2 = prediction.reshape(S, M)
    targ2 = target.reshape(S, M)
    half_a = half_b = None
    if trials is not None:
        half_a, half_b = halving_masks(trials, n_halvings, ceiling_seed)
    rng = np.random.default_rng(seed)
    counts = _draw_counts(rng, n_draws, S)
    score = np.empty((n_draws, M))
    n_pairs = 1 + (0 if trials is None else n_halvings)
    width = max(1, int(max_bytes // (S * n_pairs * 6 * 8)))
    for c0 in range(0, M, width):
        cols = slice(c0, min(M, c0 + width))
        # one matrix of per-stimulus statistics: the prediction-response pair, then every halving's pair
        pairs = [(pred2[:, cols], targ2[:, cols])]
        if trials is not None:
            sub = trials.reshape(S, trials.shape[1], M)[:, :, cols][..., None]
            pairs += [(a[..., 0], b[..., 0]) for a, b in half_means(sub, half_a, half_b)]
        stats = np.stack([_pair_statistics(a, b) for a, b in pairs], axis=1).reshape(S, -1)
        for d0 in range(0, n_draws, chunk):
            d1 = min(n_draws, d0 + chunk)
            sums = (counts[d0:d1] @ stats).reshape(d1 - d0, n_pairs, 6, -1)
            r = _r_from_sums(sums[:, 0])
            if trials is None:
                score[d0:d1, cols] = r
            else:
                ceiling = np.mean([spearman_brown(_r_from_sums(sums[:, h])) for h in range(1, n_pairs)], axis=0)
                score[d0:d1, cols] = ceil_scores(r, ceiling, rule)
    score = score.reshape(n_draws, n_sites, n_bins)
    names = np.unique(groups)
    draws = np.empty((n_draws, len(names), n_bins))
    for g, name in enumerate(names):
        with np.errstate(all="ignore"), _quiet():
            draws[:, g] = np.nanmedian(score[:, groups == name], axis=1)
    lo, hi = np.nanpercentile(draws, [(100 - ci) / 2, 100 - (100 - ci) / 2], axis=0)
    return {"groups": names, "low": lo, "high": hi, "draws": draws}


def bootstrap_sites(
    ceiled: np.ndarray, *, groups: np.ndarray, n_draws: int = 1000, seed: int = 0, ci: float = 95.0
) -> dict[str, np.ndarray]:
    """Percentile CI of the per-group median over sites, resampling sites within each group.

    Parameters
    ----------
    ceiled : np.ndarray, shape (n_sites, n_bins)
    groups : np.ndarray of str, shape (n_sites,)

    Returns
    -------
    dict with ``groups``, ``low``, ``high`` (n_groups, n_bins).

    Example
    -------
    >>> out = bootstrap_sites(np.arange(10.0)[:, None], groups=np.array(["V4"] * 10), n_draws=200)
    >>> bool(out["low"][0, 0] < 4.5 < out["high"][0, 0])
    True
    """
    rng = np.random.default_rng(seed)
    names = np.unique(groups)
    lows, highs = [], []
    for name in names:
        vals = ceiled[groups == name]
        idx = rng.integers(0, len(vals), size=(n_draws, len(vals)))
        with np.errstate(all="ignore"), _quiet():
            med = np.nanmedian(vals[idx], axis=1)  # (n_draws, n_bins)
            lo, hi = np.nanpercentile(med, [(100 - ci) / 2, 100 - (100 - ci) / 2], axis=0)
        lows.append(lo)
        highs.append(hi)
    return {"groups": names, "low": np.asarray(lows), "high": np.asarray(highs)}


@contextmanager
def _quiet() -> Iterator[None]:
    """All-NaN medians are expected (sites without a ceiling): NaN, not a warning per draw."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield
