"""Linear centred kernel alignment (CKA) and its debiased estimator, batched on torch.

Linear CKA (Kornblith et al. 2019) between representations ``X`` (n x p) and ``Y`` (n x q) of the same
``n`` stimuli is the alignment of their centred Gram matrices,

    ``CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L))``,  ``K = X X^T``, ``L = Y Y^T``,

with the biased estimator ``HSIC(K, L) = tr(K H L H) / (n - 1)^2`` (``H`` the centring matrix). At few
stimuli and many units that estimator is biased upwards (two independent high-dimensional
representations score far above 0). The debiased estimator replaces it with the unbiased HSIC of Song et
al. (2012), with ``K~``, ``L~`` the Grams with zeroed diagonals:

    ``HSIC_u = [tr(K~ L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n (n-3))``.

Both are invariant to orthogonal transforms and isotropic scaling of either representation. Everything is
computed from Gram matrices, so one Gram per representation serves all comparisons
(:func:`cka_from_grams` compares every Gram in one batch with every Gram in another).
"""

from __future__ import annotations

import numpy as np
import torch

from neurofit.errors import NeurofitError
from neurofit.metrics.rdm import Array, _out, _tensor


def gram_linear(features: Array) -> Array:
    """Linear Gram matrices ``[..., n, p] -> [..., n, n]`` (``X X^T``).

    Example
    -------
    >>> import numpy as np
    >>> gram_linear(np.eye(2)).tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    x, as_numpy = _tensor(features)
    return _out(x @ x.mT, as_numpy)


def _centre(k: torch.Tensor) -> torch.Tensor:
    k = k - k.mean(-1, keepdim=True)
    return k - k.mean(-2, keepdim=True)


def _hsic_terms(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Zero-diagonal Gram flattened ``[B, n*n]``, its row sums ``[B, n]`` and total sums ``[B]``."""
    n = k.shape[-1]
    kt = k * (1 - torch.eye(n, dtype=k.dtype, device=k.device))
    rows = kt.sum(-1)
    return kt.reshape(*k.shape[:-2], n * n), rows, rows.sum(-1)


def _hsic_unbiased(a: tuple, b: tuple, n: int) -> torch.Tensor:
    flat_a, rows_a, sum_a = a
    flat_b, rows_b, sum_b = b
    trace = flat_a @ flat_b.mT
    return (trace + sum_a[:, None] * sum_b[None, :] / ((n - 1) * (n - 2))
            - 2.0 / (n - 2) * (rows_a @ rows_b.mT)) / (n * (n - 3))


def cka_from_grams(grams_a: Array, grams_b: Array, debiased: bool = False) -> Array:
    """CKA of every Gram in ``grams_a`` with every Gram in ``grams_b``: ``[A, n, n] x [B, n, n] -> [A, B]``.

    Parameters
    ----------
    grams_a, grams_b : array or Tensor (A, n, n) and (B, n, n)
        Gram matrices over the same ``n`` stimuli (e.g. :func:`gram_linear`).
    debiased : bool
        Use the unbiased HSIC (needs ``n >= 4``); otherwise the biased ``tr(KHLH)``.

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(30, 5))
    >>> g = gram_linear(x)[None]
    >>> float(cka_from_grams(g, g)[0, 0])
    1.0
    """
    ka, as_numpy = _tensor(grams_a)
    kb = _tensor(grams_b)[0].to(ka)
    if ka.ndim != 3 or kb.ndim != 3 or ka.shape[-1] != kb.shape[-1]:
        raise NeurofitError(f"CKA compares Gram stacks [A, n, n] and [B, n, n]; got {tuple(ka.shape)}, "
                            f"{tuple(kb.shape)}")
    n = ka.shape[-1]
    if debiased:
        if n < 4:
            raise NeurofitError(f"debiased CKA needs at least 4 stimuli, got {n}")
        ta, tb = _hsic_terms(ka), _hsic_terms(kb)
        cross = _hsic_unbiased(ta, tb, n)
        self_a = torch.stack([_hsic_unbiased(tuple(t[i:i + 1] for t in ta), tuple(t[i:i + 1] for t in ta), n)[0, 0]
                              for i in range(ka.shape[0])])
        self_b = torch.stack([_hsic_unbiased(tuple(t[i:i + 1] for t in tb), tuple(t[i:i + 1] for t in tb), n)[0, 0]
                              for i in range(kb.shape[0])])
    else:
        ca, cb = _centre(ka).reshape(ka.shape[0], -1), _centre(kb).reshape(kb.shape[0], -1)
        cross = ca @ cb.mT
        self_a, self_b = (ca * ca).sum(-1), (cb * cb).sum(-1)
    denom = torch.sqrt(self_a[:, None] * self_b[None, :])
    # A constant representation has no alignment with anything: NaN, never 0 or 1.
    cka = torch.where(denom > 0, cross / denom, torch.full_like(cross, float("nan")))
    return _out(cka, as_numpy)


def linear_cka(x: Array, y: Array, debiased: bool = False) -> Array:
    """Linear CKA between representations ``x`` (..., n, p) and ``y`` (..., n, q), batched: ``[...]``.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(50, 8))
    >>> q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    >>> round(float(linear_cka(x, 3.0 * x @ q)), 12)  # invariant to rotation and scale
    1.0
    """
    a, as_numpy = _tensor(x)
    b = _tensor(y)[0].to(a)
    if a.shape[:-1] != b.shape[:-1]:
        raise NeurofitError(f"x {tuple(a.shape)} and y {tuple(b.shape)} must share their stimuli (and batch)")
    batch = a.shape[:-2]
    ga = (a @ a.mT).reshape(-1, a.shape[-2], a.shape[-2])
    gb = (b @ b.mT).reshape(-1, b.shape[-2], b.shape[-2])
    pairs = torch.stack([cka_from_grams(ga[i:i + 1], gb[i:i + 1], debiased)[0, 0] for i in range(ga.shape[0])])
    return _out(pairs.reshape(batch), as_numpy)


def hsic_unbiased(grams_a: Array, grams_b: Array) -> Array:
    """Unbiased HSIC (Song et al. 2012) of every Gram in ``grams_a`` with every Gram in ``grams_b``: ``[A, B]``.

    Example
    -------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1, 30, 4))
    >>> float(hsic_unbiased(gram_linear(x), gram_linear(x))[0, 0]) > 0
    True
    """
    ka, as_numpy = _tensor(grams_a)
    kb = _tensor(grams_b)[0].to(ka)
    n = ka.shape[-1]
    if n < 4:
        raise NeurofitError(f"the unbiased HSIC needs at least 4 stimuli, got {n}")
    return _out(_hsic_unbiased(_hsic_terms(ka), _hsic_terms(kb), n), as_numpy)


def cka_over_time(
    trials: np.ndarray, model: np.ndarray, *, debiased: bool = True, n_splits: int = 5, seed: int = 0
) -> dict[str, np.ndarray]:
    """Linear CKA per time bin between a region's repetition-averaged responses and the model's features.

    Parameters
    ----------
    trials : ndarray (n_stimuli, max_repetitions, n_sites, n_bins)
        NaN-padded trials of one region.
    model : ndarray (n_bins, n_stimuli, n_features)
    debiased : bool
        The debiased estimator (default: few stimuli against many units is the usual case).
    n_splits : int
        Random halvings of the repetitions for the ceiling (0: none).

    Returns
    -------
    dict with ``score``, ``ceiling`` and ``ceiled = score / ceiling``, each ``(n_bins,)``.

    The ceiling is the CKA between the noise-free neural representation ``T`` and the measured
    repetition mean ``F``: the score of a model that *is* the region. Noise is independent across
    repetitions, so the unbiased HSIC of two disjoint halves' means estimates ``HSIC(T, T) = HSIC(T, F)``,
    and the ceiling is ``sqrt(HSIC_u(A, B) / HSIC_u(F, F))``, averaged over halvings of ``HSIC_u(A, B)``
    (a noise-corrected ceiling in the spirit of Spearman-Brown; exact for the debiased estimator,
    approximate for the biased one). NaN where the halves share no signal (``HSIC_u(A, B) <= 0``).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(40, 3))
    >>> trials = (latent @ rng.normal(size=(3, 25)))[:, None, :, None] + rng.normal(size=(40, 8, 25, 1))
    >>> out = cka_over_time(trials, latent[None], n_splits=2)
    >>> bool(out["score"][0] > 0.5 and out["ceiling"][0] > out["score"][0])
    True
    """
    from neurofit.regression.ceiling import half_means, halving_masks

    trials = np.asarray(trials, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        means = np.nanmean(trials, axis=1).transpose(2, 0, 1)  # (bins, stimuli, sites)
    g_neural = gram_linear(torch.as_tensor(means))
    g_model = gram_linear(torch.as_tensor(np.asarray(model, dtype=np.float64)))
    n_bins = len(means)
    score = np.array([float(cka_from_grams(g_model[b:b + 1], g_neural[b:b + 1], debiased)[0, 0])
                      for b in range(n_bins)])
    ceiling = np.full_like(score, np.nan)
    if n_splits:
        half_a, half_b = halving_masks(trials, n_splits, seed)
        cross = []
        for a, b in half_means(trials, half_a, half_b):
            ga = gram_linear(torch.as_tensor(a.transpose(2, 0, 1)))
            gb = gram_linear(torch.as_tensor(b.transpose(2, 0, 1)))
            cross.append([float(hsic_unbiased(ga[k:k + 1], gb[k:k + 1])[0, 0]) for k in range(n_bins)])
        signal = np.mean(cross, axis=0)
        total = np.array([float(hsic_unbiased(g_neural[k:k + 1], g_neural[k:k + 1])[0, 0]) for k in range(n_bins)])
        with np.errstate(all="ignore"):
            ceiling = np.where((signal > 0) & (total > 0), np.sqrt(signal / total), np.nan)
    with np.errstate(all="ignore"):
        return {"score": score, "ceiling": ceiling, "ceiled": score / ceiling}
