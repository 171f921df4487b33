"""Every bootstrap of neurofit, with one parameter name (``n_boot``) and one CI convention (``ci=0.95``).

Percentile intervals
    :func:`percentile_interval` gives the ``(1 - ci) / 2`` and ``(1 + ci) / 2`` percentiles of the draws
    (numpy's linear interpolation, NaN draws left out). :func:`mean_ci` and :func:`spearman_ci` resample
    images for the dynamics analyses with it.

Test-consistent intervals
    A comparison prints an estimate, an interval and a significance mark. :func:`bootstrap_p` and
    :func:`inverted_interval` come from the same draws and agree exactly: the interval at per-test level
    ``gamma`` excludes a value ``v`` if and only if ``bootstrap_p(draws, v) <= gamma``. This is what lets a
    significance mark (a test after multiple-comparison control) never sit beside an interval that contains
    zero (see :mod:`neurofit.stats.compare`).

Scores over stimuli and over sites
    :func:`bootstrap_stimuli` resamples stimuli with replacement and recomputes, on the drawn stimuli, both
    the prediction-response correlation of every site and its split-half ceiling (the same halvings as the
    point estimate), so the interval covers the ratio, not only r. Nothing is refitted (held-out predictions
    are fixed): r and the ceilings come from per-stimulus sufficient statistics weighted by each draw's
    counts, so a draw costs a few matrix products. The draws' r and their ceilings are computed apart (the
    ceilings depend on the trials and the draws only) and kept by :mod:`neurofit.regression.memo`, so a second model
    scored on the same data, or the r-only interval after the ceiled one, reuses them bit for bit.
    :func:`bootstrap_sites` resamples sites with replacement
    and takes the median of their ceiled scores. Both give percentile intervals of the median over sites
    (NaN sites ignored).

Two-level resampling
    :func:`hierarchical_median` resamples stimuli and sites together: each draw takes one stimulus-bootstrap
    draw of the per-site values (stimuli resampled with replacement and every site's score recomputed on the
    drawn stimuli, as scoring does) and then resamples the sites with replacement; the statistic is the median
    over the drawn sites. Without per-site stimulus draws it resamples the sites only.
"""

from __future__ import annotations

import numpy as np

from neurofit.errors import NeurofitError, quiet_nan
from neurofit.regression.ceiling import Normalisation, ceil_scores, half_means, halving_masks, spearman_brown
from neurofit.regression.correlation import pearson_from_sums, pearson_sums
from neurofit.regression.memo import content_key, memoized

# Draws are processed in chunks so that memory stays near this many float64 values.
_CHUNK_ELEMENTS = 4_000_000


def check_bootstrap(n_boot: int, ci: float = 0.95) -> None:
    """Raise a :class:`NeurofitError` unless ``n_boot >= 1`` and ``0 < ci < 1``.

    Example
    -------
    >>> check_bootstrap(1000, 0.95)
    >>> check_bootstrap(1000, 95.0)
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: ci is a coverage in (0, 1), e.g. 0.95, got 95.0
    """
    if int(n_boot) < 1:
        raise NeurofitError(f"n_boot must be a positive number of bootstrap draws, got {n_boot}")
    if not 0 < ci < 1:
        raise NeurofitError(f"ci is a coverage in (0, 1), e.g. 0.95, got {ci}")


def percentile_interval(draws: np.ndarray, ci: float = 0.95, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The equal-tailed percentile interval of bootstrap ``draws`` along ``axis`` (NaN draws left out).

    Example
    -------
    >>> low, high = percentile_interval(np.arange(101.0), ci=0.9)
    >>> float(low), float(high)
    (5.0, 95.0)
    """
    # rounded so that ci=0.95 gives exactly the 2.5th and 97.5th percentiles
    tail = round(50.0 * (1.0 - ci), 12)
    with quiet_nan():
        low, high = np.nanpercentile(draws, [tail, 100.0 - tail], axis=axis)
    return np.asarray(low), np.asarray(high)


def bootstrap_p(draws: np.ndarray, null: float = 0.0, axis: int = 0) -> np.ndarray:
    """Two-sided bootstrap p value of ``null``: ``2 min(#draws <= null, #draws >= null) / #draws``, at most 1.

    The smallest ``gamma`` at which the equal-tailed interval of the draws (:func:`inverted_interval`)
    excludes ``null``; NaN draws are left out, and a cell without draws is NaN. Its resolution is
    ``2 / n_boot``: 0 means that no draw lies on the far side of ``null``.

    Example
    -------
    >>> float(bootstrap_p(np.array([0.1, 0.2, -0.1, 0.3])))
    0.5
    """
    x = np.moveaxis(np.asarray(draws, dtype=np.float64), axis, 0)
    valid = np.isfinite(x)
    n = valid.sum(axis=0)
    below = (valid & (x <= null)).sum(axis=0)
    above = (valid & (x >= null)).sum(axis=0)
    with quiet_nan():
        p = np.minimum(1.0, 2.0 * np.minimum(below, above) / n)
    return np.where(n > 0, p, np.nan)


def inverted_interval(draws: np.ndarray, gamma: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The equal-tailed interval of ``draws`` at per-test level ``gamma`` (coverage ``1 - gamma``).

    Its bounds are order statistics: with ``n`` valid draws sorted, the ``(j+1)``-th smallest and the
    ``(j+1)``-th largest, where ``j`` is the largest integer with ``2 j / n <= gamma``. So the interval
    excludes a value ``v`` exactly when :func:`bootstrap_p` of ``v`` is at most ``gamma``: a test at level
    ``gamma`` and this interval never disagree.

    Example
    -------
    >>> draws = np.arange(1.0, 101.0)  # 1, 2, ..., 100
    >>> low, high = inverted_interval(draws, 0.05)
    >>> float(low), float(high), float(bootstrap_p(draws, 2.5)) <= 0.05, float(bootstrap_p(draws, 3.5)) <= 0.05
    (3.0, 98.0, True, False)
    """
    if not 0 <= gamma < 1:
        raise NeurofitError(f"gamma is a per-test level in [0, 1), got {gamma}")
    x = np.sort(np.moveaxis(np.asarray(draws, dtype=np.float64), axis, 0), axis=0)  # NaN sorts last
    n = np.isfinite(x).sum(axis=0)
    # j = max{j : 2 j / n <= gamma}, with the float expression bootstrap_p uses, so the two agree at the edge
    j = np.floor(gamma * n / 2.0).astype(np.int64)
    with quiet_nan():
        j = np.where(2.0 * (j + 1) / n <= gamma, j + 1, j)
        j = np.where((j > 0) & (2.0 * j / n > gamma), j - 1, j)
    ok = n > 0
    lo_idx = np.where(ok, j, 0)
    hi_idx = np.where(ok, n - 1 - j, 0)
    low = np.take_along_axis(x, lo_idx[None], axis=0)[0]
    high = np.take_along_axis(x, hi_idx[None], axis=0)[0]
    return np.where(ok, low, np.nan), np.where(ok, high, np.nan)


def hierarchical_median(
    values: np.ndarray,
    stimulus_draws: np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Bootstrap draws of the median over sites, resampling stimuli (when given) and sites.

    Parameters
    ----------
    values : array of shape (n_sites, ...)
        Per-site values (e.g. per-site differences between two models, per bin). NaN sites are left out of
        each median.
    stimulus_draws : array of shape (n_stimulus_draws, n_sites, ...), optional
        Per-site values recomputed on stimulus-bootstrap draws (scoring's ``ceiled_boot``/``r_boot``). Draw
        ``k`` uses stimulus draw ``k mod n_stimulus_draws``; without them only the sites are resampled.
    n_boot, seed : int
        Number of draws and the seed of the site resampling (``numpy.random.default_rng``).

    Returns
    -------
    array of shape (n_boot, ...): the median over the drawn sites of each draw.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> draws = hierarchical_median(rng.normal(1.0, 0.1, (40, 2)), n_boot=200)
    >>> draws.shape, bool(abs(np.median(draws) - 1.0) < 0.05)
    ((200, 2), True)
    """
    check_bootstrap(n_boot)
    base = np.asarray(values, dtype=np.float64)
    n_sites = base.shape[0]
    if n_sites == 0:
        raise NeurofitError("hierarchical_median: no sites to resample")
    if stimulus_draws is not None:
        stimulus_draws = np.asarray(stimulus_draws, dtype=np.float64)
        if stimulus_draws.shape[1:] != base.shape or stimulus_draws.shape[0] < 1:
            raise NeurofitError(f"stimulus_draws {stimulus_draws.shape} must be (n_draws, *{base.shape})")
    rest = base.shape[1:]
    flat = base.reshape(n_sites, -1)
    width = flat.shape[1]
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, width))
    chunk = max(1, _CHUNK_ELEMENTS // max(1, n_sites * width))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        idx = rng.integers(0, n_sites, size=(stop - start, n_sites))
        if stimulus_draws is None:
            drawn = flat[idx]  # (c, sites, width)
        else:
            which = np.arange(start, stop) % stimulus_draws.shape[0]
            source = stimulus_draws.reshape(stimulus_draws.shape[0], n_sites, -1)[which]
            drawn = np.take_along_axis(source, idx[:, :, None], axis=1)
        with quiet_nan():
            out[start:stop] = np.nanmedian(drawn, axis=1)
    return out.reshape(n_boot, *rest)


def mean_ci(
    values: np.ndarray, *, axis: int = -1, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NaN-ignoring mean over ``axis`` (the images) with a percentile bootstrap CI over that axis.

    One draw of images is shared by every other index (e.g. every step), as the images are the sampled
    units.

    Returns
    -------
    mean, low, high : arrays with ``axis`` removed.

    Example
    -------
    >>> m, lo, hi = mean_ci(np.arange(100.0))
    >>> float(m), bool(lo < 49.5 < hi)
    (49.5, True)
    """
    check_bootstrap(n_boot, ci)
    x = np.moveaxis(np.asarray(values, dtype=np.float64), axis, -1)
    n = x.shape[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        finite = np.isfinite(x)
        mean = np.where(finite, x, 0.0).sum(-1) / finite.sum(-1)
        if n == 0:
            nan = np.full(x.shape[:-1], np.nan)
            return nan, nan, nan
        idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
        draws = x[..., idx]  # [..., n_boot, n]
        ok = np.isfinite(draws)
        boot = np.where(ok, draws, 0.0).sum(-1) / ok.sum(-1)
    # an index with no finite value in any draw (e.g. a step before any image is correct) is NaN
    low, high = percentile_interval(boot, ci, axis=-1)
    return mean, low, high


def spearman_ci(
    a: np.ndarray, b: np.ndarray, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> dict[str, float]:
    """Spearman rho of paired values (pairs with a NaN dropped) with a percentile bootstrap CI over pairs.

    Returns
    -------
    dict with ``rho``, ``low``, ``high``, ``p`` (scipy's two-sided p-value) and ``n`` (pairs used).
    Draws in which either variable is constant are left out of the interval.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=200)
    >>> out = spearman_ci(x, x + rng.normal(size=200))
    >>> bool(out["low"] < out["rho"] < out["high"]), out["n"]
    (True, 200)
    """
    from scipy import stats

    check_bootstrap(n_boot, ci)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise NeurofitError(f"spearman_ci needs two 1-d arrays of equal length, got {a.shape} and {b.shape}")
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    n = int(a.size)
    nan = {"rho": np.nan, "low": np.nan, "high": np.nan, "p": np.nan, "n": n}
    if n < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return nan
    result = stats.spearmanr(a, b)
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    ra = stats.rankdata(a[idx], axis=1)
    rb = stats.rankdata(b[idx], axis=1)
    ra -= ra.mean(1, keepdims=True)
    rb -= rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = (ra * rb).sum(1) / np.sqrt((ra * ra).sum(1) * (rb * rb).sum(1))
    draws = draws[np.isfinite(draws)]
    low, high = percentile_interval(draws, ci) if draws.size else (np.nan, np.nan)
    return {"rho": float(result.statistic), "low": float(low), "high": float(high), "p": float(result.pvalue),
            "n": n}


def _draw_counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """How often each of ``n`` items is drawn in each of ``n_boot`` resamples with replacement, ``(n_boot, n)``."""
    idx = rng.integers(0, n, size=(n_boot, n))
    flat = (idx + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def bootstrap_stimuli(
    prediction: np.ndarray,
    target: np.ndarray,
    trials: np.ndarray | None,
    *,
    groups: np.ndarray,
    rule: Normalisation = "r2_over_ceiling",
    n_boot: int = 1000,
    seed: int = 0,
    n_halvings: int = 10,
    ceiling_seed: int = 0,
    ci: float = 0.95,
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
    n_boot, seed : bootstrap draws and their seed.
    n_halvings, ceiling_seed : the split-half ceiling's halvings, as in the point estimate.
    ci : float
        Coverage of the interval in (0, 1).

    Returns
    -------
    dict with ``groups`` (n_groups,), ``low`` and ``high`` (n_groups, n_bins) and ``draws``
    (n_boot, n_groups, n_bins): the median ceiled score of each draw.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> signal = rng.normal(size=(80, 1, 4, 1))
    >>> trials = signal + rng.normal(size=(80, 6, 4, 1))
    >>> out = bootstrap_stimuli(signal[:, 0], np.nanmean(trials, 1), trials, groups=np.array(["IT"] * 4),
    ...                         n_boot=50)
    >>> out["low"].shape, bool(out["low"][0, 0] < out["high"][0, 0])
    ((1, 1), True)
    """
    check_bootstrap(n_boot, ci)
    S, n_sites, n_bins = target.shape
    M = n_sites * n_bins
    rng = np.random.default_rng(seed)
    counts = _draw_counts(rng, n_boot, S)
    # r of every draw from the prediction-response pair; the ceiling of every draw from the halvings' pairs,
    # which depend on the trials and the draws only (two models scored on the same data share them)
    pred2, targ2 = prediction.reshape(S, M), target.reshape(S, M)
    key = ("bootstrap_r", content_key(pred2), content_key(targ2), int(seed), int(n_boot))
    score = memoized(key, lambda: _draw_r(counts, pred2, targ2, chunk, max_bytes))
    if trials is not None:
        key = ("bootstrap_ceilings", content_key(trials), int(n_halvings), int(ceiling_seed), int(seed), int(n_boot))
        ceiling = memoized(key, lambda: _draw_ceilings(counts, trials, n_halvings, ceiling_seed, chunk, max_bytes))
        score = ceil_scores(score, ceiling, rule)
    score = score.reshape(n_boot, n_sites, n_bins)
    names = np.unique(groups)
    draws = np.empty((n_boot, len(names), n_bins))
    for g, name in enumerate(names):
        with quiet_nan():
            draws[:, g] = np.nanmedian(score[:, groups == name], axis=1)
    lo, hi = percentile_interval(draws, ci)
    return {"groups": names, "low": lo, "high": hi, "draws": draws}


def _draw_r(counts: np.ndarray, prediction: np.ndarray, target: np.ndarray, chunk: int, max_bytes: int
            ) -> np.ndarray:
    """Pearson r of every column ``(S, M)`` in every draw (``counts`` ``(n_boot, S)``): ``(n_boot, M)``."""
    (n_boot, S), M = counts.shape, prediction.shape[1]
    out = np.empty((n_boot, M))
    width = max(1, int(max_bytes // (S * 6 * 8)))
    for c0 in range(0, M, width):
        cols = slice(c0, min(M, c0 + width))
        stats = pearson_sums(prediction[:, cols], target[:, cols]).reshape(S, -1)
        for d0 in range(0, n_boot, chunk):
            d1 = min(n_boot, d0 + chunk)
            out[d0:d1, cols] = pearson_from_sums((counts[d0:d1] @ stats).reshape(d1 - d0, 6, -1))
    return out


def _draw_ceilings(counts: np.ndarray, trials: np.ndarray, n_halvings: int, ceiling_seed: int, chunk: int,
                   max_bytes: int) -> np.ndarray:
    """The split-half ceiling (the point estimate's halvings) of every column in every draw: ``(n_boot, M)``."""
    n_boot, S = counts.shape
    M = int(np.prod(trials.shape[2:]))
    half_a, half_b = halving_masks(trials, n_halvings, ceiling_seed)
    out = np.empty((n_boot, M))
    width = max(1, int(max_bytes // (S * n_halvings * 6 * 8)))
    for c0 in range(0, M, width):
        cols = slice(c0, min(M, c0 + width))
        sub = trials.reshape(S, trials.shape[1], M)[:, :, cols][..., None]
        stats = np.stack([pearson_sums(a[..., 0], b[..., 0]) for a, b in half_means(sub, half_a, half_b)],
                         axis=1).reshape(S, -1)
        for d0 in range(0, n_boot, chunk):
            d1 = min(n_boot, d0 + chunk)
            sums = (counts[d0:d1] @ stats).reshape(d1 - d0, n_halvings, 6, -1)
            out[d0:d1, cols] = np.mean([spearman_brown(pearson_from_sums(sums[:, h])) for h in range(n_halvings)],
                                       axis=0)
    return out


def bootstrap_sites(
    ceiled: np.ndarray, *, groups: np.ndarray, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
) -> dict[str, np.ndarray]:
    """Percentile CI of the per-group median over sites, resampling sites within each group.

    Parameters
    ----------
    ceiled : np.ndarray, shape (n_sites, n_bins)
    groups : np.ndarray of str, shape (n_sites,)
    n_boot, seed : bootstrap draws and their seed.
    ci : float
        Coverage of the interval in (0, 1).

    Returns
    -------
    dict with ``groups``, ``low``, ``high`` (n_groups, n_bins) and ``draws`` (n_boot, n_groups, n_bins): the
    median of each draw (for intervals centred on an estimate, :func:`neurofit.scoreset.centred_interval`).

    Example
    -------
    >>> out = bootstrap_sites(np.arange(10.0)[:, None], groups=np.array(["V4"] * 10), n_boot=200)
    >>> bool(out["low"][0, 0] < 4.5 < out["high"][0, 0])
    True
    """
    check_bootstrap(n_boot, ci)
    rng = np.random.default_rng(seed)
    names = np.unique(groups)
    lows, highs, draws = [], [], []
    for name in names:
        vals = ceiled[groups == name]
        idx = rng.integers(0, len(vals), size=(n_boot, len(vals)))
        with quiet_nan():
            med = np.nanmedian(vals[idx], axis=1)  # (n_boot, n_bins)
        lo, hi = percentile_interval(med, ci)
        lows.append(lo)
        highs.append(hi)
        draws.append(med)
    return {"groups": names, "low": np.asarray(lows), "high": np.asarray(highs),
            "draws": np.stack(draws, axis=1) if draws else np.empty((n_boot, 0, ceiled.shape[1]))}
