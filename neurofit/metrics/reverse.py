"""Reverse predictivity (Muzellec & Kar 2025): each model unit predicted from the neural population.

Forward predictivity asks whether a model's features predict each recorded site; reverse predictivity
asks whether the recorded population predicts each model unit. A model can score well forward while
carrying many units that no neural population can explain (dimensions the brain does not have).

Per time bin: the repetition-averaged responses of a region's sites are the design, the model's units
(the features that stand for that bin) the targets; cross-validated predictions (the project's PLS or
ridge engine, folds over stimuli) give a Pearson r per unit.

Ceiling, as in Muzellec & Kar's released code (``get_neural_model_splithalfcorr``): the model unit is
deterministic (reliability 1); what is noisy is the predictor. So the ceiling of a unit is the
split-half reliability of its *prediction*: the unit is predicted (same folds) from the mean of one half
of the repetitions and from the other half, the two predictions are correlated and Spearman-Brown
corrected; averaged over random halvings. A unit's ceiled score is ``r^2 / ceiling`` (their explained
variance ``(r / sqrt(rho_xx * rho_yy))^2`` with ``rho_yy = 1``). The region's score is the median over
units (NaN units, e.g. constant ones, left out; pearson_r warns once with their count).

Stimulus bootstrap (``draws``): what is resampled is the scored stimuli's **held-out predictions**, not the fits.
Each stimulus's cross-validated prediction (and its two half-repetition predictions, for the ceiling) is computed
once, by maps fitted without that stimulus; a draw resamples the stimuli with replacement and recomputes every
unit's r, its ceiling and ``r^2 / ceiling`` on the drawn (prediction, unit) pairs, then the medians. The interval
is therefore conditional on the fitted maps: it covers which stimuli the score is evaluated on (the variability of
the Pearson r's over the stimulus population), not the variability of the fitted maps themselves (r is stationary
at the best linear map, so a map's error enters r at second order, but at finite n it is not nothing: on a
300-stimulus problem the refit bootstrap's SD of the median ceiled score was 0.0061 against 0.0050 here, 100
draws each, ``benchmarks/perf/metrics_reverse_draws.py --stimuli 300 --sites 50 --units 50 --bins 1 --halvings 4
--widths``). Why not refit per draw: a draw has duplicated stimuli, so a refit needs folds that keep every copy of
a stimulus on one side, and it costs ``1 + 2 * n_splits`` cross-validated fits per draw: 10.8 CPU s per draw
against 0.14 CPU s for all 100 resampled draws at 1000 stimuli x 100 sites -> 200 units, 2 bins, 10 halvings (the
kernel without draws: 10.6 s). The draws of two models of one benchmark resample the same stimuli, so their
difference pairs (``compare``); on two models of identical distribution the paired per-bin test rejected 3.1% at
0.05 over 1600 tests (tests/test_metrics_reverse.py, slow). A draw with stimulus counts ``w`` gives every moment
as a weighted sum, ``w @ x``, so all draws of a bin are a few GEMMs over the stimuli (:func:`resampled_pearson`,
equal to explicit resampling to ~1e-15).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from neurofit.errors import NeurofitError
from neurofit.metrics.draws import draw_counts
from neurofit.regression.ceiling import half_means, halving_masks, spearman_brown
from neurofit.regression.correlation import pearson_r
from neurofit.regression.crossval import pls_cross_validated, ridge_cross_validated


@dataclass(frozen=True)
class ReverseResult:
    """Per bin and model unit: ``r``, ``ceiling`` and ``ceiled`` (each ``(n_bins, n_units)``).

    ``draws`` (when stimulus draws were asked for): per stimulus draw and bin, the median over units of each,
    ``{"r", "ceiling", "ceiled"}`` of shape ``(n_draws, n_bins)``; None otherwise.
    """

    r: np.ndarray
    ceiling: np.ndarray
    ceiled: np.ndarray
    draws: dict[str, np.ndarray] | None = None

    def median(self) -> dict[str, np.ndarray]:
        """Median over units per bin of ``r``, ``ceiling`` and ``ceiled`` (NaN units left out).

        Example
        -------
        >>> res = ReverseResult(np.array([[0.5, np.nan, 0.7]]), np.ones((1, 3)), np.ones((1, 3)))
        >>> res.median()["r"].tolist()
        [0.6]
        """
        return {k: _median_units(getattr(self, k)) for k in ("r", "ceiling", "ceiled")}


def _median_units(x: np.ndarray) -> np.ndarray:
    """Median over the last axis (units), NaN units left out; a row without any finite unit stays NaN, silently."""
    ok = np.isfinite(x).any(axis=-1)
    out = np.full(x.shape[:-1], np.nan)
    out[ok] = np.nanmedian(x[ok], axis=-1)
    return out


def draw_weights(index: np.ndarray, n: int) -> np.ndarray:
    """Stimulus counts of bootstrap draws as float64 weights (:func:`~neurofit.metrics.draws.draw_counts`):
    ``index`` ``(n_draws, n_drawn)`` int -> ``(n_draws, n)``.

    Example
    -------
    >>> draw_weights(np.array([[0, 0, 2]]), 3).tolist()
    [[2.0, 0.0, 1.0]]
    """
    index = np.asarray(index)
    if index.ndim != 2 or (index.size and (index.min() < 0 or index.max() >= n)):
        raise NeurofitError(f"draws must be (n_draws, n_drawn) indices into {n} stimuli; got shape {index.shape}")
    return draw_counts(index, n).astype(np.float64)


def resampled_pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson r of every column of ``x`` with ``y`` on each bootstrap draw of the rows, without resampling.

    ``x``, ``y``: ``(n, q)``; ``weights``: ``(n_draws, n)`` counts (:func:`draw_weights`). Draw ``d``'s r equals
    ``pearson_r(x[idx_d], y[idx_d])`` for the rows ``idx_d`` it drew: every moment is a weighted sum over the
    rows, taken of columns centred on the full sample's means (so the few differences of sums lose no digits).
    A column constant over all rows (as :func:`~neurofit.regression.correlation.pearson_r` judges it) is NaN in
    every draw; r is clipped to [-1, 1]. Returns ``(n_draws, q)``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    >>> idx = rng.integers(0, 50, size=(2, 50))
    >>> ours = resampled_pearson(x, y, draw_weights(idx, 50))
    >>> bool(np.allclose(ours[1], pearson_r(x[idx[1]], y[idx[1]]), rtol=0, atol=1e-12))
    True
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    xc, yc = x - x.mean(0), y - y.mean(0)
    eps = np.finfo(np.float64).eps
    n = x.shape[0]
    constant = (((xc * xc).sum(0) <= (eps * np.abs(x).max(0)) ** 2 * n)
                | ((yc * yc).sum(0) <= (eps * np.abs(y).max(0)) ** 2 * n))
    total = w.sum(1, keepdims=True)
    mx, my = (w @ xc) / total, (w @ yc) / total
    sxx = w @ (xc * xc) - total * mx * mx
    syy = w @ (yc * yc) - total * my * my
    sxy = w @ (xc * yc) - total * mx * my
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.clip(sxy / np.sqrt(sxx * syy), -1.0, 1.0)
    r[:, constant] = np.nan
    return r


def _predict(X: np.ndarray, Y: np.ndarray, train: np.ndarray, test: np.ndarray, regression: str,
             n_components: int) -> np.ndarray:
    """Cross-validated predictions of every sample, ``(n_bins, N, q)``, from designs ``(n_bins, N, p)``."""
    Xt = torch.as_tensor(X, dtype=torch.float64)
    Yt = torch.as_tensor(Y, dtype=torch.float64)
    tr, te = torch.as_tensor(train), torch.as_tensor(test)
    if regression == "pls":
        k = min(n_components, X.shape[-1], int(train.sum(1).min()) - 1)
        folds = pls_cross_validated(Xt, Yt, tr, te, k)
    else:
        folds = ridge_cross_validated(Xt, Yt, tr, te)
    out = np.full(Y.shape, np.nan)
    for f, pred in enumerate(folds):
        out[:, test[f]] = pred.cpu().numpy()
    return out


def reverse_predictivity(
    trials: np.ndarray,
    model: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    *,
    regression: Literal["pls", "ridge"] = "pls",
    n_components: int = 25,
    n_splits: int = 5,
    seed: int = 0,
    draws: np.ndarray | None = None,
) -> ReverseResult:
    """Reverse predictivity of each model unit per bin, with the Muzellec & Kar ceiling.

    Parameters
    ----------
    trials : ndarray (n_stimuli, max_repetitions, n_sites, n_bins)
        NaN-padded neural trials of one region (:func:`neurofit.data.recording.trial_array`).
    model : ndarray (n_bins, n_stimuli, n_units)
        The model features that stand for each bin (same stimulus order).
    train, test : ndarray of bool (n_folds, n_stimuli)
        Folds over stimuli; every stimulus is in exactly one test set.
    regression : {"pls", "ridge"}
        The project's cross-validated engine (PLS with ``n_components``, or ridge with a per-target
        penalty chosen by leave-one-out inside each training set).
    n_splits : int
        Random halvings of the repetitions for the ceiling (averaged); 0 for no ceiling (NaN).
    seed : int
        Seed of the halvings.
    draws : ndarray of int (n_draws, n_stimuli), optional
        Stimulus-bootstrap draws (indices with repeats, e.g. :func:`neurofit.metrics.rsa.bootstrap_patterns`):
        the held-out predictions are resampled (see the module docstring) and ``ReverseResult.draws`` holds the
        per-draw medians of ``r``, ``ceiling`` and ``ceiled``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(120, 4))
    >>> trials = (latent @ rng.normal(size=(4, 30)))[:, None, :, None] + rng.normal(size=(120, 6, 30, 1))
    >>> model = (latent @ rng.normal(size=(4, 10)))[None]
    >>> test = np.arange(120)[None] % 5 == np.arange(5)[:, None]
    >>> res = reverse_predictivity(trials, model, ~test, test, n_components=4, n_splits=2)
    >>> bool(res.median()["r"][0] > 0.8)
    True
    >>> from neurofit.metrics.rsa import bootstrap_patterns
    >>> res = reverse_predictivity(trials, model, ~test, test, n_components=4, n_splits=2,
    ...                            draws=bootstrap_patterns(120, 50, seed=0))
    >>> res.draws["ceiled"].shape
    (50, 1)
    """
    trials = np.asarray(trials, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    if trials.ndim != 4 or model.ndim != 3 or model.shape[1] != trials.shape[0] or model.shape[0] != trials.shape[3]:
        raise NeurofitError(f"trials must be (stimuli, repetitions, sites, bins) and model (bins, stimuli, units); "
                            f"got {trials.shape} and {model.shape}")
    if regression not in ("pls", "ridge"):
        raise NeurofitError(f"regression must be 'pls' or 'ridge', got {regression!r}")
    with np.errstate(invalid="ignore"):
        means = np.nanmean(trials, axis=1).transpose(2, 0, 1)  # (bins, stimuli, sites)
    if not np.isfinite(means).all():
        raise NeurofitError("every stimulus needs at least one trial of every site in every bin")
    weights = None if draws is None else draw_weights(draws, model.shape[1])
    pred = _predict(means, model, train, test, regression, n_components)
    r = pearson_r(pred, model, dim=1)
    r_draws = None if weights is None else _per_bin_draws(pred, model, weights)
    ceiling = np.full_like(r, np.nan)
    ceiling_draws = None if weights is None else np.full_like(r_draws, np.nan)
    if n_splits:
        half_a, half_b = halving_masks(trials, n_splits, seed)
        rs = []
        if weights is not None:
            ceiling_draws = np.zeros_like(r_draws)  # the halvings' mean, summed as they come (bounded memory)
        for a, b in half_means(trials, half_a, half_b):
            pa = _predict(a.transpose(2, 0, 1), model, train, test, regression, n_components)
            pb = _predict(b.transpose(2, 0, 1), model, train, test, regression, n_components)
            rs.append(spearman_brown(pearson_r(pa, pb, dim=1)))
            if weights is not None:
                ceiling_draws += spearman_brown(_per_bin_draws(pa, pb, weights)) / n_splits
        ceiling = np.mean(rs, axis=0)
    with np.errstate(all="ignore"):
        ceiled = r**2 / ceiling
    summary = None
    if weights is not None:
        with np.errstate(all="ignore"):
            ceiled_draws = r_draws**2 / ceiling_draws
        summary = {k: _median_units(v) for k, v in
                   (("r", r_draws), ("ceiling", ceiling_draws), ("ceiled", ceiled_draws))}
    return ReverseResult(r=r, ceiling=ceiling, ceiled=ceiled, draws=summary)


def _per_bin_draws(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """:func:`resampled_pearson` per bin of ``(n_bins, n, q)`` inputs: ``(n_draws, n_bins, q)``."""
    return np.stack([resampled_pearson(x[b], y[b], weights) for b in range(x.shape[0])], axis=1)

