"""Comparing RDMs: similarities, pooling, rsatoolbox's noise ceilings and pattern bootstrap.

Condensed RDMs (see :mod:`neurofit.metrics.rdm`) are compared with one of

- ``cosine``: cosine similarity of the dissimilarity vectors (rsatoolbox's default);
- ``corr``: Pearson correlation;
- ``spearman``: Pearson correlation of average ranks;
- ``tau_a``: Kendall's tau-a, ``(concordant - discordant) / (n (n - 1) / 2)``, which does not reward
  a model for predicting ties (Nili et al. 2014); computed from scipy's O(n log n) tau-b.

Positions that are NaN in any compared RDM are left out of every comparison (rsatoolbox's rule). The
noise ceiling follows rsatoolbox's ``boot_noise_ceiling``: with one RDM per independent data subset
("subject": here, a group of repetitions or an animal), the lower bound is the mean similarity of each
subject's RDM to the pooled RDM of the *other* subjects, the upper bound its similarity to the pooled
RDM of *all* subjects; pooling is the average that maximises the method (:func:`pool_rdms`). A model's
score is its mean similarity to the subjects' RDMs (rsatoolbox's ``eval_fixed``), on the same scale as
the ceilings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.stats
import torch

from neurofit.errors import NeurofitError
from neurofit.metrics.draws import rsa_draws
from neurofit.metrics.rdm import Array, _out, _tensor, correlation_rdm, crossnobis_rdm, squareform

Method = Literal["cosine", "corr", "spearman", "tau_a"]
METHODS: tuple[str, ...] = ("cosine", "corr", "spearman", "tau_a")


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise NeurofitError(f"unknown RDM comparison {method!r}; use one of {', '.join(METHODS)}")


def _cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    na = torch.linalg.vector_norm(a, dim=-1)
    nb = torch.linalg.vector_norm(b, dim=-1)
    cos = (a @ b.mT) / (na[..., :, None] * nb[..., None, :])
    # rsatoolbox: a zero-length RDM is dissimilar to everything (0), not undefined
    return torch.where((na[..., :, None] > 0) & (nb[..., None, :] > 0), cos, torch.zeros_like(cos))


def _rank(v: torch.Tensor) -> torch.Tensor:
    # average ranks (scipy's default) along the last axis
    ranks = scipy.stats.rankdata(v.cpu().numpy(), axis=-1)
    return torch.as_tensor(ranks, dtype=v.dtype, device=v.device)


def _tau_a(x: np.ndarray, y: np.ndarray) -> float:
    # tau-b = (C - D) / sqrt((T - Xt)(T - Yt)), hence tau-a = (C - D) / T.
    total = len(x) * (len(x) - 1) / 2
    ties_x = _tied_pairs(x)
    ties_y = _tied_pairs(y)
    if ties_x == total or ties_y == total:
        return 0.0
    tau_b = scipy.stats.kendalltau(x, y).statistic
    return float(np.clip(tau_b * np.sqrt((total - ties_x) * (total - ties_y)) / total, -1.0, 1.0))


def _tied_pairs(v: np.ndarray) -> float:
    _, counts = np.unique(v, return_counts=True)
    return float((counts * (counts - 1) // 2).sum())


def _finite_columns(*sets: torch.Tensor) -> torch.Tensor:
    keep = None
    for s in sets:
        ok = torch.isfinite(s).reshape(-1, s.shape[-1]).all(0) if s.numel() else torch.ones(s.shape[-1], dtype=bool)
        keep = ok if keep is None else keep & ok
    return keep


def compare_rdms(a: Array, b: Array, method: Method = "cosine") -> Array:
    """Similarity of every RDM in ``a`` with every RDM in ``b``: ``[A, P] x [B, P] -> [A, B]``.

    Equal to ``rsatoolbox.rdm.compare(a, b, method)`` (rsatoolbox's names: ``cosine``, ``corr``,
    ``spearman``, ``tau-a``). Leading batch dimensions are allowed for ``cosine``, ``corr`` and
    ``spearman`` (``[..., A, P] x [..., B, P] -> [..., A, B]``).

    Example
    -------
    >>> a = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]])
    >>> compare_rdms(a, a[:, ::-1] * 2, "corr").round(6).tolist()
    [[-1.0]]
    """
    _check_method(method)
    x, as_numpy = _tensor(a)
    y = _tensor(b)[0].to(x)
    if x.shape[-1] != y.shape[-1]:
        raise NeurofitError(f"RDMs of {x.shape[-1]} and {y.shape[-1]} dissimilarities cannot be compared")
    keep = _finite_columns(x, y)
    if int(keep.sum()) < 2:  # e.g. a silent bin: every pattern constant, no dissimilarity defined
        return _out(torch.full((*x.shape[:-1], y.shape[-2]), float("nan"), dtype=x.dtype), as_numpy)
    if not bool(keep.all()):
        x, y = x[..., keep], y[..., keep]
    if method == "tau_a":
        if x.ndim != 2 or y.ndim != 2:
            raise NeurofitError("tau_a compares 2-d sets of RDMs ([A, P] x [B, P])")
        xs, ys = x.cpu().numpy(), y.cpu().numpy()
        out = torch.tensor([[_tau_a(u, v) for v in ys] for u in xs], dtype=x.dtype)
        return _out(out.to(x.device), as_numpy)
    if method == "spearman":
        x, y = _rank(x), _rank(y)
    if method in ("corr", "spearman"):
        x = x - x.mean(-1, keepdim=True)
        y = y - y.mean(-1, keepdim=True)
    return _out(_cosine(x, y), as_numpy)


def pool_rdms(rdms: Array, method: Method = "cosine") -> Array:
    """The RDM that best represents a set under ``method``: ``[..., S, P] -> [..., P]``.

    rsatoolbox's ``pool_rdm``: cosine averages RDMs scaled to unit root-mean-square; corr averages
    z-scored RDMs (shifted to be positive); the rank methods average ranks. NaN positions stay NaN.

    Example
    -------
    >>> pool_rdms(np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0]]), "cosine").round(4).tolist()
    [0.4629, 0.9258, 1.3887]
    """
    _check_method(method)
    v, as_numpy = _tensor(rdms)
    nan = torch.isnan(v)
    if method == "cosine":
        v = v / torch.sqrt(torch.nanmean(v**2, -1, keepdim=True))
        pooled = v.mean(-2)
    elif method == "corr":
        v = v - torch.nanmean(v, -1, keepdim=True)
        std = torch.sqrt(torch.nanmean(v**2, -1, keepdim=True))
        pooled = (v / std).mean(-2)
        low = torch.where(torch.isnan(pooled), torch.full_like(pooled, float("inf")), pooled).amin(-1, keepdim=True)
        pooled = pooled - low + 0.01
    else:
        if bool(nan.any()):
            ranks = torch.full_like(v, float("nan"))
            flat, rflat = v.reshape(-1, v.shape[-1]), ranks.reshape(-1, v.shape[-1])
            for i in range(flat.shape[0]):
                ok = ~torch.isnan(flat[i])
                rflat[i, ok] = _rank(flat[i, ok])
            v = ranks
        else:
            v = _rank(v)
        pooled = v.mean(-2)
    # rsatoolbox keeps the NaN pattern of the first RDM
    pooled = torch.where(nan[..., 0, :], torch.full_like(pooled, float("nan")), pooled)
    return _out(pooled, as_numpy)


def evaluate(model_rdms: Array, data_rdms: Array, method: Method = "cosine") -> Array:
    """A model RDM's score: its mean similarity to the data (subject) RDMs, ``[M, P] x [S, P] -> [M]``.

    rsatoolbox's ``eval_fixed`` evaluation, on the scale of :func:`noise_ceiling`.

    Example
    -------
    >>> data = np.array([[1.0, 2.0, 3.0], [1.0, 3.0, 2.0]])
    >>> evaluate(data[:1], data, "corr").round(3).tolist()
    [0.75]
    """
    sims = compare_rdms(model_rdms, data_rdms, method)
    return sims.mean(-1)


def noise_ceiling(rdms: Array, method: Method = "cosine") -> tuple[float, float]:
    """rsatoolbox's lower and upper noise ceilings of a set of subject RDMs ``[S, P]`` (``S >= 2``).

    Lower: mean over subjects of the similarity of the subject's RDM to the pooled RDM of the others
    (leave one subject out); upper: to the pooled RDM of all subjects. Equal to
    ``rsatoolbox.inference.boot_noise_ceiling(rdms, method)``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=45)
    >>> lower, upper = noise_ceiling(truth + rng.normal(size=(4, 45)), "corr")
    >>> bool(0 < lower < upper < 1)
    True
    """
    lower, upper = ceiling_per_subject(rdms, method)
    return float(np.mean(lower)), float(np.mean(upper))


def ceiling_per_subject(rdms: Array, method: Method = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """Each subject's leave-one-out (lower) and all-subjects (upper) similarity, ``(S,)`` each.

    Their means are :func:`noise_ceiling`; their spread tells whether the lower ceiling is reliably above
    zero.

    Example
    -------
    >>> lower, upper = ceiling_per_subject(np.array([[1.0, 2.0, 3.0], [1.0, 2.5, 3.0]]), "corr")
    >>> lower.shape
    (2,)
    """
    v, _ = _tensor(rdms)
    if v.ndim != 2 or v.shape[0] < 2:
        raise NeurofitError(f"a noise ceiling needs at least two subject RDMs [S, P]; got {tuple(v.shape)}")
    everyone = pool_rdms(v, method)[None]
    lower, upper = [], []
    for s in range(v.shape[0]):
        others = torch.cat([v[:s], v[s + 1:]])
        lower.append(float(compare_rdms(pool_rdms(others, method)[None], v[s:s + 1], method)[0, 0]))
        upper.append(float(compare_rdms(everyone, v[s:s + 1], method)[0, 0]))
    return np.array(lower), np.array(upper)


def bootstrap_patterns(n_conditions_: int, n_draws: int, seed: int = 0) -> np.ndarray:
    """Bootstrap samples of conditions (stimuli), each sorted: ``[n_draws, n_conditions]`` int indices.

    Example
    -------
    >>> bootstrap_patterns(5, 2, seed=0).shape
    (2, 5)
    """
    rng = np.random.default_rng(seed)
    return np.sort(rng.integers(0, n_conditions_, size=(n_draws, n_conditions_)), axis=1)


def subsample_rdm(rdms: Array, index: np.ndarray) -> Array:
    """RDMs over a resampled set of conditions: ``[..., P] -> [..., P']`` with NaN for repeated pairs.

    ``index`` (sorted, with repeats) selects rows and columns as rsatoolbox's
    ``RDMs.subsample_pattern`` does: a pair of two copies of one condition has no dissimilarity (NaN),
    so comparisons leave it out.

    Example
    -------
    >>> subsample_rdm(np.array([1.0, 2.0, 5.0]), np.array([0, 0, 2])).tolist()
    [nan, 2.0, 2.0]
    """
    v, as_numpy = _tensor(rdms)
    index = np.sort(np.asarray(index))
    m = squareform(v, diagonal=float("nan"))
    idx = torch.as_tensor(index, device=v.device)
    sub = m[..., idx, :][..., :, idx]
    i, j = torch.triu_indices(len(index), len(index), offset=1, device=v.device)
    return _out(sub[..., i, j], as_numpy)



def repetition_groups(n_repetitions: int, n_groups: int, seed: int = 0) -> np.ndarray:
    """Assign repetitions to ``n_groups`` disjoint, near-equal groups at random: ``(n_repetitions,)`` labels.

    The groups are the independent data subsets ("subjects") of the RSA noise ceiling.

    Example
    -------
    >>> np.bincount(repetition_groups(10, 3)).tolist()
    [4, 3, 3]
    """
    if not 2 <= n_groups <= n_repetitions:
        raise NeurofitError(f"need 2 <= n_groups <= repetitions ({n_repetitions}), got {n_groups}")
    order = np.random.default_rng(seed).permutation(n_repetitions)
    labels = np.empty(n_repetitions, dtype=int)
    labels[order] = np.arange(n_repetitions) % n_groups
    return labels


@dataclass(frozen=True)
class RSAOverTime:
    """Per bin: ``score`` (mean similarity to the group RDMs), rsatoolbox's ``lower``/``upper`` ceilings,
    ``reliable`` (the lower ceiling is more than 2 standard errors over groups above zero) and ``ceiled =
    score / lower`` (NaN in unreliable bins); with bootstrap draws over stimuli (``score_draws``,
    ``ceiled_draws``: ``(n_draws, n_bins)``; empty without a bootstrap)."""

    score: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    ceiled: np.ndarray
    reliable: np.ndarray
    score_draws: np.ndarray
    ceiled_draws: np.ndarray


def neural_group_rdms(trials: np.ndarray, groups: np.ndarray, dissimilarity: str = "correlation") -> torch.Tensor:
    """One RDM per repetition group and bin from trials ``(stimuli, repetitions, sites, bins)``: ``(bins, G, P)``.

    ``correlation``: correlation distance of each group's repetition means (NaN trials ignored);
    ``crossnobis``: crossnobis over the group's repetitions (leave one repetition out, identity
    precision), which needs complete trials and at least two repetitions per group.

    Example
    -------
    >>> trials = np.random.default_rng(0).normal(size=(6, 4, 5, 2))
    >>> neural_group_rdms(trials, np.array([0, 0, 1, 1])).shape
    torch.Size([2, 2, 15])
    """
    t = torch.as_tensor(np.asarray(trials, dtype=np.float64)).permute(3, 1, 0, 2)  # bins, reps, stimuli, sites
    out = []
    for g in np.unique(groups):
        sel = t[:, torch.as_tensor(groups == g)]
        if dissimilarity == "correlation":
            out.append(correlation_rdm(torch.nanmean(sel, dim=1)))
        elif dissimilarity == "crossnobis":
            if sel.shape[1] < 2 or bool(torch.isnan(sel).any()):
                raise NeurofitError("crossnobis needs complete trials and at least 2 repetitions in every group")
            out.append(crossnobis_rdm(sel))
        else:
            raise NeurofitError(f"unknown dissimilarity {dissimilarity!r}; use 'correlation' or 'crossnobis'")
    return torch.stack(out, dim=1)


def score_and_ceilings(data: torch.Tensor, model: torch.Tensor, method: Method = "spearman"
                       ) -> tuple[float, float, float, float]:
    """One bin's RSA: the model's score, rsatoolbox's lower and upper ceilings and the lower ceiling's SE.

    ``data``: the subjects' (repetition groups') RDMs ``[S, P]``; ``model``: the model RDM ``[P]``. The score
    is :func:`evaluate`, the ceilings :func:`ceiling_per_subject`'s means; the standard error is over
    subjects. Positions NaN in any of the RDMs are left out of all of them (NaN everywhere if fewer than two
    remain). Spearman ranks each RDM once (a pooled RDM is a mean of ranks, ranked again).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> truth = rng.normal(size=45)
    >>> data = torch.as_tensor(truth + rng.normal(size=(4, 45)))
    >>> score, lower, upper, se = score_and_ceilings(data, torch.as_tensor(truth), "corr")
    >>> bool(0 < lower < upper < 1 and 0 < score < 1)
    True
    """
    d, m = data, model
    if method != "spearman":
        lower, upper = ceiling_per_subject(d, method)
        return float(evaluate(m[None], d, method)[0]), float(lower.mean()), float(upper.mean()), _se(lower)
    keep = _finite_columns(d, m[None])
    if int(keep.sum()) < 2:
        return float("nan"), float("nan"), float("nan"), float("nan")
    d, m = d[:, keep], m[keep]
    ranks = _rank(d)
    pooled = _rank(torch.stack([ranks.mean(0)] + [torch.cat([ranks[:g], ranks[g + 1:]]).mean(0)
                                                    for g in range(len(d))]))
    sims = compare_rdms(torch.cat([pooled, _rank(m)[None]]), ranks, "corr")
    lower = sims[1:-1].diagonal().numpy()
    return float(sims[-1].mean()), float(lower.mean()), float(sims[0].mean()), _se(lower)


def rsa_over_time(
    trials: np.ndarray,
    model: np.ndarray,
    *,
    method: Method = "spearman",
    dissimilarity: str = "correlation",
    n_groups: int = 5,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> RSAOverTime:
    """RSA per time bin: the model's RDM against the neural RDMs of repetition groups, with ceilings.

    Parameters
    ----------
    trials : ndarray (n_stimuli, n_repetitions, n_sites, n_bins)
        One region's NaN-padded trials.
    model : ndarray (n_bins, n_stimuli, n_features)
        The model features standing for each bin; their RDM is the correlation distance.
    method : {"cosine", "corr", "spearman", "tau_a"}
    dissimilarity : {"correlation", "crossnobis"}
        The neural RDMs' dissimilarity (crossnobis only with complete trials).
    n_groups : int
        Repetition groups ("subjects") for the noise ceiling; the score is the mean similarity to them.
    n_bootstrap : int
        Draws over stimuli (rsatoolbox's pattern bootstrap: resampled stimuli, repeated pairs left out);
        score and ceiling are recomputed in every draw.
    seed : int
        Seed of the grouping and of the bootstrap.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(30, 6))
    >>> trials = (latent @ rng.normal(size=(6, 20)))[:, None, :, None] + rng.normal(size=(30, 10, 20, 1))
    >>> res = rsa_over_time(trials, latent[None], method="corr")
    >>> bool(res.score[0] > 0.5 and res.lower[0] < res.upper[0])
    True
    """
    trials = np.asarray(trials, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    if trials.ndim != 4 or model.ndim != 3 or model.shape[:2] != (trials.shape[3], trials.shape[0]):
        raise NeurofitError(f"trials must be (stimuli, repetitions, sites, bins) and model (bins, stimuli, "
                            f"features); got {trials.shape} and {model.shape}")
    groups = repetition_groups(trials.shape[1], n_groups, seed)
    data = neural_group_rdms(trials, groups, dissimilarity)  # (bins, G, P)
    model_rdm = correlation_rdm(torch.as_tensor(model))  # (bins, P)

    n_bins = trials.shape[3]
    full = np.array([score_and_ceilings(data[b], model_rdm[b], method) for b in range(n_bins)]).reshape(n_bins, 4)
    score, lower, upper, lower_se = full.T
    # a bin's RDMs are reliable when the lower ceiling is 2 standard errors (over groups) above zero
    reliable = lower > 2 * lower_se
    draws = np.empty((0, n_bins))
    ceiled_draws = np.empty((0, n_bins))
    if n_bootstrap:
        draws = np.empty((n_bootstrap, n_bins))
        ceiled_draws = np.empty((n_bootstrap, n_bins))
        indices = bootstrap_patterns(trials.shape[0], n_bootstrap, seed)
        # the draws' pairs weighted by how often each draw holds them (neurofit.metrics.draws), else subsampled
        weighted = rsa_draws(data, model_rdm, indices, method)
        for k, index in enumerate(indices):
            for b in range(n_bins):
                s, lo = ((weighted[0][k, b], weighted[1][k, b]) if weighted is not None else
                         score_and_ceilings(subsample_rdm(data[b], index), subsample_rdm(model_rdm[b], index),
                                            method)[:2])
                draws[k, b], ceiled_draws[k, b] = s, (s / lo if reliable[b] and lo > 0 else np.nan)
    with np.errstate(all="ignore"):
        ceiled = np.where(reliable, score / lower, np.nan)
    return RSAOverTime(score=score, lower=lower, upper=upper, ceiled=ceiled, reliable=reliable, score_draws=draws,
                       ceiled_draws=ceiled_draws)


def _se(values: np.ndarray) -> float:
    return float(np.std(values, ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
