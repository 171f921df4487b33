"""RSA and CKA of many model representations against many neural ones, streamed over stimulus blocks.

The layer x step x bin grid compares every model representation (a layer at a step) with every neural
one (a region in a bin). At HvM scale (5760 stimuli) one RDM has 16.6 million entries, so holding the
~150 RDMs of a grid is out of the question; but cosine and Pearson comparisons of RDMs, and both CKA
estimators, need only sums over the entries: per RDM the sum and the sum of squares, per pair the sum of
products, and for CKA the Grams' row sums and diagonals. Those sums are accumulated over blocks of
stimulus rows: each block costs one GEMM per representation (the Gram block of its column-centred
features, float32 by default), from which the correlation-distance block (RSA, rsatoolbox's definition:
patterns centred over their own features) follows by rank-one corrections in float64, and one GEMM
between the blocks of all model and all neural representations.

Rank comparisons (Spearman, tau-a) need whole RDMs: use :mod:`neurofit.metrics.rsa` for those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neurofit.errors import NeurofitError


@dataclass
class _Prepared:
    """One group of representations ``(R, n, p)`` ready for blocked Grams.

    ``xc``: column-centred features. With ``c`` the column means, ``m_i``, ``sigma_i`` the mean and norm of
    row ``i`` centred over its own features and ``mu`` the mean correlation over stimulus pairs, the
    correlation of two rows minus ``mu`` is ``(xc_i . xc_j + A_i . B_j) / (sigma_i sigma_j)`` with the
    rank-4 correction ``A_i = [xc_i . c, 1, m_i, sigma_i]``, ``B_j = [1, xc_j . c + c . c, -p m_j, -mu sigma_j]``.
    """

    xc: torch.Tensor  # (R, n, p) compute dtype
    a: torch.Tensor  # (R, n, 4) compute dtype
    b: torch.Tensor  # (R, n, 4) compute dtype
    inv_sigma: torch.Tensor  # (R, n) compute dtype
    mu: torch.Tensor  # (R,) float64: mean correlation over pairs
    diag: torch.Tensor  # (R, n) float64: diagonal of the centred Gram


def _prepare(features: torch.Tensor | Sequence[torch.Tensor], dtype: torch.dtype) -> _Prepared:
    # few passes over the features in the compute dtype, float64 only where sums accumulate; mu need not be
    # exact (it only centres the sums, and the same value is used throughout)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("a", "b", "inv_sigma", "mu", "diag")}
    n, p = features[0].shape
    f64 = torch.float64
    # written in place: the caller's features plus one centred copy is the whole footprint
    xc_all = torch.empty(len(features), n, p, dtype=dtype)
    ones_n = torch.ones(n, dtype=dtype)
    ones_p = torch.ones(p, dtype=dtype)
    for k, rep in enumerate(features):
        # reductions as matrix-vector products: several times faster than strided sums on CPU
        x = rep.to(dtype)
        c = (ones_n @ x).to(f64) / n
        m = (x @ ones_p).to(f64) / p
        xr = x - m.to(dtype)[:, None]
        sigma = torch.sqrt((xr.unsqueeze(1) @ xr.unsqueeze(2))[:, 0, 0].to(f64))
        z_sum = (xr.mT @ (1.0 / sigma).to(dtype)).to(f64)
        mu = ((z_sum * z_sum).sum() - n) / (n * (n - 1))
        xc = torch.sub(x, c.to(dtype), out=xc_all[k])
        u = (xc @ c.to(dtype)).to(f64)
        ones = torch.ones_like(u)
        parts["a"].append(torch.stack([u, ones, m, sigma], dim=1).to(dtype))
        parts["b"].append(torch.stack([ones, u + c @ c, -p * m, -mu * sigma], dim=1).to(dtype))
        parts["inv_sigma"].append((1.0 / sigma).to(dtype))
        parts["mu"].append(mu)
        parts["diag"].append((xc.unsqueeze(1) @ xc.unsqueeze(2))[:, 0, 0].to(f64))
    return _Prepared(xc=xc_all, **{k: torch.stack(v) for k, v in parts.items()})


def _gram_blocks(prepared: list[_Prepared], a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows ``[a, b)`` x columns ``[a, n)`` of every representation: centred Gram ``Kc`` and centred
    correlation ``R - mu``, with entries on or below the diagonal set to 0 (only pairs ``i < j`` count)."""
    kcs, rs = [], []
    for p in prepared:
        kc = p.xc[:, a:b] @ p.xc[:, a:].mT
        r = torch.baddbmm(kc, p.a[:, a:b], p.b[:, a:].mT)
        r.mul_(p.inv_sigma[:, a:b, None]).mul_(p.inv_sigma[:, None, a:])
        lower = torch.ones(b - a, b - a, dtype=torch.bool).tril()
        kc[:, :, :b - a].masked_fill_(lower, 0.0)
        r[:, :, :b - a].masked_fill_(lower, 0.0)
        kcs.append(kc)
        rs.append(r)
    return torch.cat(kcs), torch.cat(rs)


@dataclass(frozen=True)
class GridComparison:
    """Tables ``(n_model, n_neural)``: RSA by ``cosine`` and ``corr`` of correlation-distance RDMs, and
    ``cka`` (biased) and ``cka_debiased`` of linear Grams."""

    cosine: np.ndarray
    corr: np.ndarray
    cka: np.ndarray
    cka_debiased: np.ndarray


def compare_grid(
    model: torch.Tensor | Sequence[torch.Tensor],
    neural: torch.Tensor | Sequence[torch.Tensor],
    *,
    block: int = 64,
    dtype: torch.dtype = torch.float32,
) -> GridComparison:
    """Compare every model representation with every neural one by RSA (cosine, corr) and CKA.

    Parameters
    ----------
    model : Tensor (M, n, p) or sequence of Tensors (n, p_m)
        Model representations over the same ``n`` stimuli (a sequence may mix widths).
    neural : Tensor (K, n, s) or sequence of Tensors (n, s_k)
        Neural representations (e.g. repetition means of each region in each bin).
    block : int
        Stimulus rows per block: memory is about ``3 * (M + K) * block * n`` times the dtype's size.
    dtype : torch.dtype
        Dtype of the Gram GEMMs (the sums are float64). float32 is the fast default (agreement with the
        float64 definitions to ~1e-5); float64 agrees to ~1e-12.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(2, 40, 6, generator=g, dtype=torch.float64)
    >>> out = compare_grid(x, x[:1], dtype=torch.float64)
    >>> [round(float(v), 6) for v in (out.corr[0, 0], out.cka[0, 0], out.cka_debiased[0, 0])]
    [1.0, 1.0, 1.0]
    """
    sides = [_group_by_width(model), _group_by_width(neural)]
    n = sides[0][0][0][0].shape[0]
    if any(t.ndim != 2 or t.shape[0] != n for side in sides for group, _ in side for t in group):
        raise NeurofitError("every model and neural representation must be (n, width) over the same n stimuli")
    if n < 4:
        raise NeurofitError(f"RSA and debiased CKA need at least 4 stimuli, got {n}")
    prepared = [[_prepare(t, dtype) for t, _ in side] for side in sides]
    tables = _compare(prepared, n, block)
    orders = [np.argsort(np.concatenate([idx for _, idx in side])) for side in sides]
    return GridComparison(**{k: v[orders[0]][:, orders[1]] for k, v in tables.items()})


def _group_by_width(reps: torch.Tensor | Sequence[torch.Tensor]) -> list[tuple[list[torch.Tensor], np.ndarray]]:
    # lists, not stacked copies: a grid's features are gigabytes
    if isinstance(reps, torch.Tensor):
        return [(list(reps), np.arange(reps.shape[0]))]
    widths = np.array([r.shape[-1] for r in reps])
    return [([reps[i] for i in np.flatnonzero(widths == w)], np.flatnonzero(widths == w)) for w in np.unique(widths)]


def _compare(prepared: list[list[_Prepared]], n: int, block: int) -> dict[str, np.ndarray]:
    M, K = (sum(p.xc.shape[0] for p in side) for side in prepared)
    f64 = dict(dtype=torch.float64)
    mu = [torch.cat([p.mu for p in side]) for side in prepared]
    diag = [torch.cat([p.diag for p in side]) for side in prepared]
    # sums over pairs i < j: of r = R - mu, of r^2, of Kc^2; per pair of representations r_x r_y, Kc_x Kc_y;
    # row sums of the zero-diagonal Kc (an upper entry (i, j) feeds row i and, by symmetry, row j)
    s1 = [torch.zeros(M, **f64), torch.zeros(K, **f64)]
    s2 = [torch.zeros(M, **f64), torch.zeros(K, **f64)]
    t_xx = [torch.zeros(M, **f64), torch.zeros(K, **f64)]
    rows = [torch.zeros(M, n, **f64), torch.zeros(K, n, **f64)]
    sxy = torch.zeros(M, K, **f64)
    t_xy = torch.zeros(M, K, **f64)
    for a in range(0, n, block):
        b = min(n, a + block)
        flat = []
        for side in range(2):
            kc, r = _gram_blocks(prepared[side], a, b)
            # per-block sums in the compute dtype (centred values: no cancellation), accumulated in float64
            r_flat = r.reshape(r.shape[0], -1)
            s1[side] += (r_flat @ torch.ones(r_flat.shape[1], dtype=r.dtype)).to(torch.float64)
            s2[side] += (torch.linalg.vector_norm(r, dim=(1, 2)) ** 2).to(torch.float64)
            t_xx[side] += (torch.linalg.vector_norm(kc, dim=(1, 2)) ** 2).to(torch.float64)
            rows[side][:, a:b] += (kc @ torch.ones(kc.shape[2], 1, dtype=kc.dtype))[..., 0].to(torch.float64)
            rows[side][:, a:] += (torch.ones(1, b - a, dtype=kc.dtype) @ kc)[:, 0].to(torch.float64)
            flat.append((kc.reshape(kc.shape[0], -1), r_flat))
        t_xy += (flat[0][0] @ flat[1][0].mT).to(torch.float64)
        sxy += (flat[0][1] @ flat[1][1].mT).to(torch.float64)
    P = n * (n - 1) / 2
    # RSA on d = 1 - R = (1 - mu) - r
    cov = sxy - s1[0][:, None] * s1[1][None, :] / P
    var = [s2[i] - s1[i] ** 2 / P for i in range(2)]
    corr = cov / torch.sqrt(var[0][:, None] * var[1][None, :])
    c = [1.0 - mu[i] for i in range(2)]
    dxy = (P * c[0][:, None] * c[1][None, :] - c[0][:, None] * s1[1][None, :] - c[1][None, :] * s1[0][:, None]
           + sxy)
    dd = [P * c[i] ** 2 - 2 * c[i] * s1[i] + s2[i] for i in range(2)]
    cosine = dxy / torch.sqrt(dd[0][:, None] * dd[1][None, :])
    # biased CKA on column-centred Grams: <Kc, Lc> over all entries = 2 * upper + diagonal products
    full_xy = 2 * t_xy + diag[0] @ diag[1].mT
    full_xx = [2 * t_xx[i] + (diag[i] ** 2).sum(1) for i in range(2)]
    cka = full_xy / torch.sqrt(full_xx[0][:, None] * full_xx[1][None, :])
    # debiased: unbiased HSIC of the zero-diagonal Grams (translation invariant, so Kc serves)
    tot = [rows[i].sum(1) for i in range(2)]

    def hsic_u(tr, ta, tb, ra_rb):
        return (tr + ta * tb / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * ra_rb) / (n * (n - 3))

    cross = hsic_u(2 * t_xy, tot[0][:, None], tot[1][None, :], rows[0] @ rows[1].mT)
    self_ = [hsic_u(2 * t_xx[i], tot[i], tot[i], (rows[i] ** 2).sum(1)) for i in range(2)]
    cka_d = cross / torch.sqrt(self_[0][:, None] * self_[1][None, :])
    return {"cosine": cosine.numpy(), "corr": corr.numpy(), "cka": cka.numpy(), "cka_debiased": cka_d.numpy()}
