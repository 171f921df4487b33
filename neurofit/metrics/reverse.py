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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from neurofit.errors import NeurofitError
from neurofit.regression.ceiling import half_means, halving_masks, spearman_brown
from neurofit.regression.correlation import pearson_r
from neurofit.regression.crossval import pls_cross_validated, ridge_cross_validated


@dataclass(frozen=True)
class ReverseResult:
    """Per bin and model unit: ``r``, ``ceiling`` and ``ceiled`` (each ``(n_bins, n_units)``)."""

    r: np.ndarray
    ceiling: np.ndarray
    ceiled: np.ndarray

    def median(self) -> dict[str, np.ndarray]:
        """Median over units per bin of ``r``, ``ceiling`` and ``ceiled`` (NaN units left out).

        Example
        -------
        >>> res = ReverseResult(np.array([[0.5, np.nan, 0.7]]), np.ones((1, 3)), np.ones((1, 3)))
        >>> res.median()["r"].tolist()
        [0.6]
        """
        out = {}
        for k in ("r", "ceiling", "ceiled"):
            x = getattr(self, k)
            ok = np.isfinite(x).any(axis=1)  # a bin without any finite unit (no ceiling) stays NaN, silently
            out[k] = np.full(x.shape[0], np.nan)
            out[k][ok] = np.nanmedian(x[ok], axis=1)
        return out


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
    pred = _predict(means, model, train, test, regression, n_components)
    r = pearson_r(pred, model, dim=1)
    ceiling = np.full_like(r, np.nan)
    if n_splits:
        half_a, half_b = halving_masks(trials, n_splits, seed)
        rs = []
        for a, b in half_means(trials, half_a, half_b):
            pa = _predict(a.transpose(2, 0, 1), model, train, test, regression, n_components)
            pb = _predict(b.transpose(2, 0, 1), model, train, test, regression, n_components)
            rs.append(spearman_brown(pearson_r(pa, pb, dim=1)))
        ceiling = np.mean(rs, axis=0)
    with np.errstate(all="ignore"):
        ceiled = r**2 / ceiling
    return ReverseResult(r=r, ceiling=ceiling, ceiled=ceiled)

