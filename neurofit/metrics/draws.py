"""Stimulus-bootstrap draws of RSA and CKA from the full-stimulus matrices, not recomputed per draw.

A bootstrap draw of stimuli (sorted indices with repeats, :func:`neurofit.metrics.rsa.bootstrap_patterns`)
selects rows and columns of every stimulus x stimulus matrix. The drawn RDM's pair ``(a, b)`` is the full
RDM's pair ``(index[a], index[b])``, left out (NaN) where both are one stimulus (rsatoolbox's
``subsample_pattern``), and the drawn Gram's entry ``(a, b)`` is the full Gram's. Every sum over the drawn
pairs is therefore a sum over the full pairs weighted by how often the draw holds them: pair ``(i, j)``,
``i < j``, appears ``c_i c_j`` times, ``c`` the draw's stimulus counts (:func:`draw_counts`). So a draw costs
a pass over the pairs (RSA: weighted ranks, means and correlations) or a column of one GEMM with the count
matrix (CKA: ``(K o L) C``, ``K C``), instead of new RDMs, Grams and rank sorts over the drawn stimuli.

- :func:`rsa_draws`: score and lower ceiling of every draw, equal to scoring the subsampled RDMs
  (:func:`neurofit.metrics.rsa.rsa_over_time`'s draws) for cosine, Pearson and Spearman comparisons (ranks
  are average ranks over the drawn pairs: a pair held ``w`` times is ``w`` tied values, as rsatoolbox ranks
  the subsampled RDM); Kendall's tau-a has no weighted form here (``None``: the caller subsamples).
- :func:`cka_draws`: score, ceiling and ceiled of every draw, equal to
  :func:`neurofit.metrics.cka.cka_over_time` of the drawn trials and features. The score comes from the full
  Grams and the count matrix; the ceiling's repetition halvings are the drawn trials' own (they are drawn
  by position in the drawn set, so each draw has its own half-means), computed in feature space
  (``||A^T B||^2`` instead of ``n x n`` Grams). Features are shifted by a fixed vector first: linear HSIC,
  biased and unbiased, is exactly invariant to it and the sums lose less to cancellation.

Equality with the per-draw computations is the test (tests/test_metrics_draws.py: 1e-12).
"""

from __future__ import annotations

import numpy as np
import torch

from neurofit.errors import NeurofitError, quiet_nan
from neurofit.metrics.rdm import n_conditions

WEIGHTED_METHODS: tuple[str, ...] = ("cosine", "corr", "spearman")


def draw_counts(indices: np.ndarray, n: int) -> np.ndarray:
    """How often each of ``n`` stimuli is in each draw: ``[n_draws, n]`` int64 counts.

    Example
    -------
    >>> draw_counts(np.array([[0, 0, 2], [0, 1, 2]]), 3).tolist()
    [[2, 0, 1], [1, 1, 1]]
    """
    idx = np.atleast_2d(np.asarray(indices, dtype=np.int64))
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise NeurofitError(f"draw indices must lie in [0, {n}); got {idx.min()}..{idx.max()}")
    flat = idx + n * np.arange(len(idx))[:, None]
    return np.bincount(flat.ravel(), minlength=len(idx) * n).reshape(len(idx), n)


# ------------------------------------------------------------------------------------------------------ RSA
class _Ranks:
    """Average ranks of one vector's values under any weights (a value held ``w`` times: ``w`` ties)."""

    def __init__(self, values: np.ndarray) -> None:
        order = np.argsort(values)  # ties are grouped by value, so any sort order serves
        ordered = values[order]
        starts = np.ones(len(values), dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        self.n_groups = int(starts.sum())
        self.group = np.empty(len(values), dtype=np.int64)
        self.group[order] = np.cumsum(starts) - 1

    def __call__(self, weights: np.ndarray, at: np.ndarray | None = None) -> np.ndarray:
        """Ranks of the elements ``at`` (all if None) with ``weights`` (float, exact integers)."""
        group = self.group if at is None else self.group[at]
        totals = np.bincount(group, weights=weights if at is None else weights[at], minlength=self.n_groups)
        before = np.cumsum(totals) - totals
        # scipy's average rank of a tie group: before + (size + 1) / 2, exact in float64
        return (before + (totals + 1.0) / 2.0)[group]


def _weighted_ranks(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Average ranks of ``values`` whose element ``k`` is held ``weights[k] > 0`` times."""
    return _Ranks(values)(weights)


def _integer_ranks(keys: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """:func:`_weighted_ranks` of non-negative integer ``keys``, sorted by 16-bit radix passes (numpy's stable
    sort of uint16 is a counting sort: several times faster than a comparison sort here)."""
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    top, shift = int(keys.max()) if len(keys) else 0, 16
    while top >> shift:
        order = order[np.argsort(((keys[order] >> shift) & 0xFFFF).astype(np.uint16), kind="stable")]
        shift += 16
    ordered = keys[order]
    starts = np.ones(len(keys), dtype=bool)
    starts[1:] = ordered[1:] != ordered[:-1]
    group = np.cumsum(starts) - 1
    totals = np.bincount(group, weights=weights[order])
    before = np.cumsum(totals) - totals
    ranks = np.empty(len(keys))
    ranks[order] = (before + (totals + 1.0) / 2.0)[group]
    return ranks


def _wcorr(x: np.ndarray, y: np.ndarray, w: np.ndarray, total: float, centre: bool) -> np.ndarray:
    """Row-wise weighted Pearson (``centre``) or cosine of ``x`` and ``y`` ``[..., P]``: 0 for a zero vector."""
    # weighted sums by einsum's own loops: a BLAS matrix-vector product here would wake BLAS's thread pool for
    # microseconds of work per call, which costs more than the sum on a loaded machine
    if centre:
        x = x - (np.einsum("...p,p->...", x, w) / total)[..., None]
        y = y - (np.einsum("...p,p->...", y, w) / total)[..., None]
    xw, yw = x * w, y * w
    nx = np.sqrt(np.einsum("...p,...p->...", xw, x))
    ny = np.sqrt(np.einsum("...p,...p->...", yw, y))
    with np.errstate(all="ignore"):
        return np.where((nx > 0) & (ny > 0), np.einsum("...p,...p->...", xw, y) / (nx * ny), 0.0)


def _rsa_spearman(d: np.ndarray, m: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], counts: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Spearman score and lower ceiling of every draw for one bin (subject RDMs ``d`` [G, P], model ``m`` [P])."""
    keep = np.isfinite(d).all(0) & np.isfinite(m)
    d, m = d[:, keep], m[keep]
    i, j = pairs[0][keep], pairs[1][keep]
    rankers = [_Ranks(v) for v in (*d, m)]
    n_groups = len(d)
    score = np.full(len(counts), np.nan)
    lower = np.full(len(counts), np.nan)
    for k, c in enumerate(counts):
        w_all = (c[i] * c[j]).astype(np.float64)
        at = np.flatnonzero(w_all)
        w = w_all[at]
        total = float(w.sum())
        if total < 2:
            continue
        ranks = np.stack([r(w_all, at) for r in rankers[:-1]])
        model = rankers[-1](w_all, at)
        # pooled RDM of the other groups: the mean of their ranks, ranked again; the sums of their half-integer
        # ranks are exact and order the means as they do, so twice the sums are integer sort keys
        others = (2.0 * (ranks.sum(0) - ranks)).astype(np.int64)
        pooled = np.stack([_integer_ranks(others[g], w) for g in range(n_groups)])
        lower[k] = float(np.mean(_wcorr(pooled, ranks, w, total, True)))
        score[k] = float(np.mean(_wcorr(model[None], ranks, w, total, True)))
    return score, lower


def _wmean(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted mean of each row over its finite entries (rsatoolbox's nanmean over the drawn pairs)."""
    ok = np.isfinite(v)
    return np.einsum("gp,p->g", np.where(ok, v, 0.0), w) / np.einsum("gp,p->g", ok.astype(np.float64), w)


def _rsa_linear(d: np.ndarray, m: np.ndarray, pairs: tuple[np.ndarray, np.ndarray], counts: np.ndarray,
                method: str) -> tuple[np.ndarray, np.ndarray]:
    """Cosine or Pearson score and lower ceiling of every draw for one bin (rsatoolbox's pooling and NaN rules)."""
    i, j = pairs
    centre = method == "corr"
    finite_d = np.isfinite(d).all(0)
    finite_m = np.isfinite(m)
    n_groups = len(d)
    score = np.full(len(counts), np.nan)
    lower = np.full(len(counts), np.nan)
    for k, c in enumerate(counts):
        w_all = (c[i] * c[j]).astype(np.float64)
        present = w_all > 0
        # the score: the model against each group, on the pairs finite in all of them
        keep = present & finite_d & finite_m
        if w_all[keep].sum() >= 2:
            w = w_all[keep]
            score[k] = float(np.mean(_wcorr(m[keep][None], d[:, keep], w, float(w.sum()), centre)))
        # the lower ceiling: each group against the pooled RDM of the others (pool_rdms over the drawn pairs)
        at = np.flatnonzero(present)
        v, w = d[:, at], w_all[at]
        with np.errstate(all="ignore"):
            if centre:
                v = v - _wmean(v, w)[:, None]
            z = v / np.sqrt(_wmean(v * v, w))[:, None]
        sims = np.full(n_groups, np.nan)
        for g in range(n_groups):
            pooled = np.delete(z, g, axis=0).mean(0)
            if centre:
                finite = np.isfinite(pooled)
                pooled = pooled - (pooled[finite].min() if finite.any() else np.inf) + 0.01
            ok = np.isfinite(pooled) & np.isfinite(d[g, at])
            if w[ok].sum() >= 2:
                sims[g] = _wcorr(pooled[ok], d[g, at][ok], w[ok], float(w[ok].sum()), centre)
        lower[k] = float(np.mean(sims))
    return score, lower


def rsa_draws(data: torch.Tensor | np.ndarray, model: torch.Tensor | np.ndarray, indices: np.ndarray,
              method: str = "spearman") -> tuple[np.ndarray, np.ndarray] | None:
    """Score and lower ceiling of every stimulus draw and bin, from the full-stimulus RDMs.

    Equal (to rounding) to comparing the subsampled RDMs (:func:`neurofit.metrics.rsa.subsample_rdm` of every
    draw: repeated pairs left out) as :func:`neurofit.metrics.rsa.rsa_over_time` compares the full ones.

    Parameters
    ----------
    data : array or Tensor (n_bins, n_groups, n_pairs)
        The neural RDMs of the repetition groups ("subjects") per bin, condensed.
    model : array or Tensor (n_bins, n_pairs)
        The model RDM per bin.
    indices : int array (n_draws, n_stimuli)
        The draws (:func:`neurofit.metrics.rsa.bootstrap_patterns`).
    method : {"cosine", "corr", "spearman"}
        Other comparisons (``tau_a``) return None: the caller compares subsampled RDMs.

    Returns
    -------
    score, lower : ndarray (n_draws, n_bins), or None

    Example
    -------
    >>> from neurofit.metrics.rdm import correlation_rdm
    >>> x = np.random.default_rng(0).normal(size=(2, 6, 8))  # a bin, 6 stimuli, 8 channels
    >>> data = correlation_rdm(x)[None]  # (1 bin, 2 groups, 15 pairs)
    >>> score, lower = rsa_draws(data, data[:, 0], np.array([[0, 1, 1, 2, 4, 5]]), "corr")
    >>> score.shape
    (1, 1)
    """
    if method not in WEIGHTED_METHODS:
        return None
    d_all = np.asarray(data.cpu() if isinstance(data, torch.Tensor) else data, dtype=np.float64)
    m_all = np.asarray(model.cpu() if isinstance(model, torch.Tensor) else model, dtype=np.float64)
    n = n_conditions(d_all.shape[-1])
    pairs = np.triu_indices(n, 1)
    counts = draw_counts(indices, n)
    score = np.full((len(counts), len(d_all)), np.nan)
    lower = np.full_like(score, np.nan)
    for b in range(len(d_all)):
        if method == "spearman":
            score[:, b], lower[:, b] = _rsa_spearman(d_all[b], m_all[b], pairs, counts)
        else:
            score[:, b], lower[:, b] = _rsa_linear(d_all[b], m_all[b], pairs, counts, method)
    return score, lower


# ------------------------------------------------------------------------------------------------------ CKA
def _hsic_of_draws(k: torch.Tensor, l: torch.Tensor, c: torch.Tensor, n: int, unbiased: bool
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """HSIC(K, L), HSIC(K, K), HSIC(L, L) of the drawn Grams and the unbiased HSIC(L, L): ``[D]`` each.

    ``c`` [m, D]: each draw's counts of the ``m`` stimuli of the Grams ``k``, ``l`` [m, m]; ``n`` the draw size.
    Biased: ``tr(K H L H)``; unbiased: Song et al. (2012) with the drawn Grams' diagonals zeroed (a stimulus
    drawn twice keeps its off-diagonal copies, ``K_ii``, as the drawn Gram does).
    """
    kc, lc = k @ c, l @ c
    dk, dl = k.diagonal(), l.diagonal()

    def weighted(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (c * ((a * b) @ c)).sum(0)  # sum_ij c_i c_j a_ij b_ij

    full = {"kl": weighted(k, l), "kk": weighted(k, k), "ll": weighted(l, l)}

    def hsic_u(tr: torch.Tensor, da: torch.Tensor, db: torch.Tensor, ra: torch.Tensor, rb: torch.Tensor
               ) -> torch.Tensor:
        tr = tr - c.mT @ (da * db)
        ra, rb = ra - da[:, None], rb - db[:, None]
        sa, sb = (c * ra).sum(0), (c * rb).sum(0)
        return (tr + sa * sb / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (c * ra * rb).sum(0)) / (n * (n - 3))

    def hsic_b(tr: torch.Tensor, ra: torch.Tensor, rb: torch.Tensor) -> torch.Tensor:
        sa, sb = (c * ra).sum(0), (c * rb).sum(0)
        return tr - 2.0 / n * (c * ra * rb).sum(0) + sa * sb / n**2

    ll_u = hsic_u(full["ll"], dl, dl, lc, lc)
    if unbiased:
        return hsic_u(full["kl"], dk, dl, kc, lc), hsic_u(full["kk"], dk, dk, kc, kc), ll_u, ll_u
    return hsic_b(full["kl"], kc, lc), hsic_b(full["kk"], kc, kc), hsic_b(full["ll"], lc, lc), ll_u


def _cka_score_draws(x: torch.Tensor, y: torch.Tensor, counts: np.ndarray, debiased: bool
                     ) -> tuple[np.ndarray, np.ndarray]:
    """CKA of model features ``x`` [n, p] and neural means ``y`` [n, q] in every draw, and HSIC_u(L, L)."""
    n = counts.shape[1]
    k, l = x @ x.mT, y @ y.mT
    if bool(torch.isfinite(k).all() and torch.isfinite(l).all()):
        c = torch.as_tensor(counts.T, dtype=k.dtype)
        kl, kk, ll, total = _hsic_of_draws(k, l, c, n, debiased)
    else:
        # NaN entries (a stimulus without data): each draw on its own stimuli, so NaN reaches only its draws
        out = []
        for row in counts:
            s = torch.as_tensor(np.flatnonzero(row))
            c = torch.as_tensor(row[row > 0][:, None], dtype=k.dtype)
            out.append(torch.cat(_hsic_of_draws(k[s][:, s], l[s][:, s], c, n, debiased)))
        kl, kk, ll, total = torch.stack(out).mT
    denom = torch.sqrt(kk * ll)
    cka = torch.where(denom > 0, kl / denom, torch.full_like(kl, float("nan")))
    return cka.numpy(), total.numpy()


def _hsic_u_features(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Unbiased HSIC of the linear Grams of ``a`` and ``b`` [..., n, q] from feature space: ``[...]``."""
    n = a.shape[-2]
    na, nb = (a * a).sum(-1), (b * b).sum(-1)  # the Grams' diagonals
    tr = (a.mT @ b).square().sum((-2, -1)) - (na * nb).sum(-1)
    ra = (a @ a.sum(-2)[..., None])[..., 0] - na  # row sums without the diagonal
    rb = (b @ b.sum(-2)[..., None])[..., 0] - nb
    sa, sb = ra.sum(-1), rb.sum(-1)
    return (tr + sa * sb / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * (ra * rb).sum(-1)) / (n * (n - 3))


def cka_draws(trials: np.ndarray, model: np.ndarray, indices: np.ndarray, *, debiased: bool = True,
              n_splits: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Linear CKA of every stimulus draw and bin: ``cka_over_time(trials[i], model[:, i])`` for each draw ``i``.

    Parameters
    ----------
    trials : ndarray (n_stimuli, max_repetitions, n_sites, n_bins)
        NaN-padded trials of one region.
    model : ndarray (n_bins, n_stimuli, n_features)
    indices : int array (n_draws, n_stimuli)
        The draws (:func:`neurofit.metrics.rsa.bootstrap_patterns`).
    debiased, n_splits, seed
        As :func:`neurofit.metrics.cka.cka_over_time` (the ceiling's halvings of each drawn trial set).

    Returns
    -------
    dict with ``score``, ``ceiling`` and ``ceiled``, each ``(n_draws, n_bins)``.

    Example
    -------
    >>> from neurofit.metrics.cka import cka_over_time
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(20, 3))
    >>> trials = (latent @ rng.normal(size=(3, 6)))[:, None, :, None] + rng.normal(size=(20, 4, 6, 1))
    >>> index = np.sort(rng.integers(0, 20, size=(1, 20)), axis=1)
    >>> fast = cka_draws(trials, latent[None], index, n_splits=2)["score"][0, 0]
    >>> slow = cka_over_time(trials[index[0]], latent[None][:, index[0]], n_splits=2)["score"][0]
    >>> bool(abs(fast - slow) < 1e-12)
    True
    """
    trials = np.asarray(trials, dtype=np.float64)
    model = np.asarray(model, dtype=np.float64)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1, trials.shape[0])
    n, n_rep, n_sites, n_bins = trials.shape
    if model.shape[:2] != (n_bins, n):
        raise NeurofitError(f"model must be (bins, stimuli, features) = ({n_bins}, {n}, ...); got {model.shape}")
    if n < 4 and (debiased or n_splits):
        raise NeurofitError(f"debiased CKA and its ceiling need at least 4 stimuli, got {n}")
    n_draws = len(indices)
    counts = draw_counts(indices, n)
    score = np.full((n_draws, n_bins), np.nan)
    total = np.full((n_draws, n_bins), np.nan)
    with quiet_nan():
        means = np.nanmean(trials, axis=1).transpose(2, 0, 1)  # (bins, stimuli, sites)
        # features shifted by a fixed vector (HSIC does not change) so the sums cancel less
        shift = np.nan_to_num(np.nanmean(means, axis=1))  # (bins, sites)
        centres = np.nan_to_num(np.nanmean(model, axis=1))  # (bins, features)
    for b in range(n_bins):
        x = torch.as_tensor(model[b] - centres[b])
        y = torch.as_tensor(means[b] - shift[b])
        score[:, b], total[:, b] = _cka_score_draws(x, y, counts, debiased)
    ceiling = np.full_like(score, np.nan)
    if n_splits and n_draws:
        signal = _halves_signal(trials, indices, shift, n_splits, seed)
        with np.errstate(all="ignore"):
            ceiling = np.where((signal > 0) & (total > 0), np.sqrt(signal / total), np.nan)
    with np.errstate(all="ignore"):
        return {"score": score, "ceiling": ceiling, "ceiled": score / ceiling}


def _halves_signal(trials: np.ndarray, indices: np.ndarray, shift: np.ndarray, n_splits: int, seed: int
                   ) -> np.ndarray:
    """Mean over the drawn trials' halvings of HSIC_u(half A, half B): ``(n_draws, n_bins)``."""
    from neurofit.regression.ceiling import halving_masks

    n, n_rep, n_sites, n_bins = trials.shape
    valid = ~np.isnan(trials)
    slots = valid.any(axis=(2, 3))  # a repetition with data for any site or bin (halving_masks' rule)
    by_bin = torch.as_tensor(np.where(valid, trials, 0.0).transpose(3, 0, 1, 2).copy())  # (bins, n, reps, sites)
    counted = None if valid.all() else torch.as_tensor(valid.transpose(3, 0, 1, 2).astype(np.float64))
    signal = np.full((len(indices), n_bins), np.nan)
    masks = None
    for k, index in enumerate(indices):
        if masks is None or not slots.all():
            # halvings are drawn by position in the drawn set from the drawn stimuli's repetitions (with every
            # repetition present in every stimulus, the same masks in every draw)
            proxy = np.where(slots[index], 0.0, np.nan)[:, :, None, None]
            half_a, half_b = halving_masks(proxy, n_splits, seed)  # (splits, n, reps)
            masks = torch.as_tensor(np.concatenate([half_a, half_b]).transpose(1, 0, 2).astype(np.float64))
        idx = torch.as_tensor(index)
        cross = torch.empty(n_bins, n_splits, dtype=torch.float64)
        for b in range(n_bins):
            sums = masks @ by_bin[b][idx]  # (n, 2 splits, sites)
            count = masks.sum(-1, keepdim=True) if counted is None else masks @ counted[b][idx]
            halves = torch.where(count > 0, sums / count.clamp(min=1), torch.full_like(sums, float("nan")))
            halves = (halves - torch.as_tensor(shift[b])).transpose(0, 1)  # (2 splits, n, sites)
            cross[b] = _hsic_u_features(halves[:n_splits], halves[n_splits:])
        signal[k] = cross.mean(1).numpy()
    return signal


__all__ = ["WEIGHTED_METHODS", "cka_draws", "draw_counts", "rsa_draws"]
