"""RSA's bootstrap over recording sites: how much a region's RSA score owes to the sites that were recorded.

The stimulus bootstrap of :func:`neurofit.metrics.rsa.rsa_over_time` asks how the score would vary with other
stimuli. This one asks how it would vary with other sites from the same region: each draw resamples the
region's sites with replacement (a site drawn twice counts twice as a channel of every pattern), recomputes the
neural RDM of every repetition group in every bin from the drawn sites, and compares it with the *fixed* model
RDM (the model's features are not resampled). Score, lower ceiling and ``ceiled = score / lower`` are
recomputed in every draw; ``ceiled`` is NaN in the bins the full data call unreliable (as in the stimulus
draws), and where a draw's lower ceiling is not positive.

The sites are drawn as :func:`neurofit.stats.bootstrap.hierarchical_median` draws them
(``numpy.random.default_rng(seed).integers(0, n_sites, (n_draws, n_sites))``), so with the same count and seed a
region's RSA site draws resample the same sites as the site interval of a regression ScoreSet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neurofit.errors import NeurofitError
from neurofit.metrics.rdm import correlation_rdm
from neurofit.metrics.rsa import Method, neural_group_rdms, repetition_groups, rsa_over_time, score_and_ceilings


def site_draws(n_sites: int, n_draws: int, seed: int = 0) -> np.ndarray:
    """Sites drawn with replacement: ``[n_draws, n_sites]`` int indices (unsorted; order does not matter).

    Example
    -------
    >>> site_draws(4, 3, seed=0).shape
    (3, 4)
    """
    if n_sites < 1 or n_draws < 0:
        raise NeurofitError(f"a site bootstrap needs at least one site and a non-negative number of draws; got "
                            f"{n_sites} sites and {n_draws} draws")
    return np.random.default_rng(seed).integers(0, n_sites, size=(n_draws, n_sites))


@dataclass(frozen=True)
class RSASiteDraws:
    """Per draw and bin (``(n_draws, n_bins)``): the RSA ``score``, the ``lower`` ceiling and ``ceiled``; and
    ``index``, the drawn sites ``(n_draws, n_sites)``."""

    score: np.ndarray
    lower: np.ndarray
    ceiled: np.ndarray
    index: np.ndarray


def rsa_site_bootstrap(
    trials: np.ndarray,
    model: np.ndarray,
    *,
    method: Method = "spearman",
    dissimilarity: str = "correlation",
    n_groups: int = 5,
    n_draws: int = 100,
    seed: int = 0,
    site_seed: int = 0,
    reliable: np.ndarray | None = None,
) -> RSASiteDraws:
    """Bootstrap over sites of :func:`~neurofit.metrics.rsa.rsa_over_time`: sites resampled, model RDM fixed.

    Draw ``k`` equals ``rsa_over_time(trials[:, :, index[k]], model, ...)`` (its score and lower ceiling), with
    the repetition groups of the full data (they depend on the repetitions only).

    Parameters
    ----------
    trials : ndarray (n_stimuli, n_repetitions, n_sites, n_bins)
        One region's NaN-padded trials.
    model : ndarray (n_bins, n_stimuli, n_features)
        The model features standing for each bin (their correlation-distance RDMs are computed once).
    method, dissimilarity, n_groups :
        As :func:`~neurofit.metrics.rsa.rsa_over_time`.
    n_draws : int
        Draws over sites.
    seed : int
        Seed of the repetition groups (``rsa_over_time``'s ``seed``).
    site_seed : int
        Seed of the site draws (:func:`site_draws`).
    reliable : ndarray of bool (n_bins,), optional
        The full data's reliable bins (``rsa_over_time(...).reliable``); computed when not given.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(20, 4))
    >>> trials = (latent @ rng.normal(size=(4, 30)))[:, None, :, None] + rng.normal(size=(20, 6, 30, 1))
    >>> out = rsa_site_bootstrap(trials, latent[None], method="corr", n_groups=3, n_draws=20)
    >>> out.score.shape, bool(np.all(out.score > 0.3))
    ((20, 1), True)
    """
    trials = np.asarray(trials, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    if trials.ndim != 4 or model.ndim != 3 or model.shape[:2] != (trials.shape[3], trials.shape[0]):
        raise NeurofitError(f"trials must be (stimuli, repetitions, sites, bins) and model (bins, stimuli, "
                            f"features); got {trials.shape} and {model.shape}")
    n_bins = trials.shape[3]
    if reliable is None:
        reliable = rsa_over_time(trials, model, method=method, dissimilarity=dissimilarity, n_groups=n_groups,
                                 seed=seed).reliable
    reliable = np.asarray(reliable, dtype=bool)
    if reliable.shape != (n_bins,):
        raise NeurofitError(f"reliable must have one flag per bin ({n_bins}), got shape {reliable.shape}")
    index = site_draws(trials.shape[2], n_draws, site_seed)
    groups = repetition_groups(trials.shape[1], n_groups, seed)
    model_rdm = correlation_rdm(torch.as_tensor(model))  # (bins, P): fixed over draws
    means = None
    if dissimilarity == "correlation":
        # each group's repetition means once (bins, G, stimuli, sites); a draw selects its sites from them
        t = torch.as_tensor(trials).permute(3, 1, 0, 2)  # bins, reps, stimuli, sites
        means = torch.stack([torch.nanmean(t[:, torch.as_tensor(groups == g)], dim=1) for g in np.unique(groups)],
                            dim=1)
    score = np.empty((n_draws, n_bins))
    lower = np.empty((n_draws, n_bins))
    for k, drawn in enumerate(index):
        if means is not None:
            data = correlation_rdm(means[..., torch.as_tensor(drawn)])
        else:
            data = neural_group_rdms(trials[:, :, drawn], groups, dissimilarity)
        for b in range(n_bins):
            score[k, b], lower[k, b], _, _ = score_and_ceilings(data[b], model_rdm[b], method)
    with np.errstate(all="ignore"):
        ceiled = np.where(reliable & (lower > 0), score / lower, np.nan)
    return RSASiteDraws(score=score, lower=lower, ceiled=ceiled, index=index)


__all__ = ["RSASiteDraws", "rsa_site_bootstrap", "site_draws"]
