"""RSA and CKA of many model representations against many neural ones, streamed over stimulus blocks.

The layer x step x bin grid compares every model representation (a layer at a step) with every neural
one (a region in a bin). At HvM scale (5760 stimuli) one RDM has 16.6 million entries, so holding the
~150 RDMs of a grid is out of the question; but cosine and Pearson comparisons of RDMs, and both CKA
estimators, need only sums over the entries: per RDM the sum and the sum of squares, per pair the sum of
products, and for CKA the Grams' row sums and diagonals. The pair sums are accumulated over blocks of
stimulus rows: each block costs one GEMM per representation (the Gram block of its column-centred
features, float32 by default), from which the correlation block (RSA, rsatoolbox's definition: patterns
centred over their own features) follows by a rank-4 correction and a scaling, and one GEMM between the
blocks of all model and all neural representations. What has a closed form is not accumulated: the
correlations' sum over pairs is zero once centred by their exact mean, and a centred Gram's row sums are
minus its diagonal (plus the rounding of the centring, computed in float64).

On CPU the float32 GEMMs go through oneDNN where torch has it (true float32, AVX-512 wherever the CPU has
it; MKL's own path is AVX2 on AMD processors, 2-2.5x slower), and blocks are shared among the caller's
torch threads, each computing on one thread (:mod:`neurofit.regression.parallel`).

Rank comparisons (Spearman, tau-a) need whole RDMs: use :mod:`neurofit.metrics.rsa` for those.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from neurofit.errors import NeurofitError
from neurofit.regression.parallel import map_chunks, workers

_ONEDNN = {"ok": None}


def _onednn_ok(x: torch.Tensor) -> bool:
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    if _ONEDNN["ok"] is None:
        ok = bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        if ok:  # it must be true float32 (not a bf16/tf32 math mode) and agree with torch.matmul
            try:
                g = torch.Generator().manual_seed(0)
                a, b = torch.randn(5, 300, generator=g), torch.randn(7, 300, generator=g)
                out = torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
                ok = bool((out - a @ b.T).abs().max() < 1e-3)
            except (RuntimeError, NotImplementedError):
                ok = False
        _ONEDNN["ok"] = ok
    return bool(_ONEDNN["ok"])


def _nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b^T`` for 2-D ``a (m, k)``, ``b (n, k)``."""
    if _onednn_ok(a):
        return torch.ops.mkldnn._linear_pointwise(a.contiguous(), b.contiguous(), None, "none", [], "")
    return a @ b.mT


@dataclass
class _Prepared:
    """One group of representations ``(R, n, p)`` ready for blocked Grams.

    ``xc``: column-centred features. With ``c`` the column means, ``m_i``, ``sigma_i`` the mean and norm of
    row ``i`` centred over its own features and ``mu`` the mean correlation over stimulus pairs, the
    correlation of two rows minus ``mu`` is ``(xc_i . xc_j + A_i . B_j) / (sigma_i sigma_j)`` with the
    rank-4 correction ``A_i = [xc_i . c, 1, m_i, sigma_i]``, ``B_j = [1, xc_j . c + c . c, -p m_j, -mu sigma_j]``;
    ``a``, ``b`` hold ``A / sigma`` and ``B / sigma``.
    """

    xc: torch.Tensor  # (R, n, p) compute dtype
    a: torch.Tensor  # (R, n, 4) compute dtype
    b: torch.Tensor  # (R, n, 4) compute dtype
    inv_sigma: torch.Tensor  # (R, n) compute dtype
    mu: torch.Tensor  # (R,) float64: mean correlation over pairs
    diag: torch.Tensor  # (R, n) float64: diagonal of the centred Gram
    rows: torch.Tensor  # (R, n) float64: row sums of the centred Gram without its diagonal


def _prepare(features: Sequence[torch.Tensor], dtype: torch.dtype) -> _Prepared:
    # the sums in float64, the stored copy in the compute dtype, written in place: the caller's features
    # plus one centred copy is the whole footprint. One representation per worker thread.
    n, p = features[0].shape
    xc_all = torch.empty(len(features), n, p, dtype=dtype)
    parts = map_chunks(lambda k: _prepare_one(features[k], xc_all[k]), list(range(len(features))),
                       workers(xc_all.device))
    keys = ("a", "b", "inv_sigma", "mu", "diag", "rows")
    return _Prepared(xc=xc_all, **{key: torch.stack([part[i] for part in parts]) for i, key in enumerate(keys)})


def _prepare_one(rep: torch.Tensor, xc: torch.Tensor) -> tuple[torch.Tensor, ...]:
    n, p = rep.shape
    f64 = torch.float64
    x = rep.to(f64)
    c = x.mean(0)
    m = x.mean(1)
    xr = x - m[:, None]
    sigma = torch.linalg.vector_norm(xr, dim=1)
    inv = 1.0 / sigma
    z_sum = xr.mT @ inv
    z_sq = (sigma * inv) ** 2  # 1 per row (NaN for a constant row, as the definition)
    # the exact mean of the correlations over pairs i < j: their centred sum is then 0
    mu = ((z_sum @ z_sum) - z_sq.sum()) / (n * (n - 1))
    del xr
    xc.copy_(x - c)  # never in place: x may be the caller's tensor
    xc64 = xc.to(f64) if xc.dtype != f64 else xc
    u = xc64 @ c
    ones = torch.ones_like(u)
    a = (torch.stack([u, ones, m, sigma], dim=1) * inv[:, None]).to(xc.dtype)
    b = (torch.stack([ones, u + c @ c, -p * m, -mu * sigma], dim=1) * inv[:, None]).to(xc.dtype)
    diag = (xc64 * xc64).sum(1)
    # row sums of xc xc^T without the diagonal: xc_i . (sum_j xc_j) - diag, i.e. -diag but for the rounding
    # of the stored centred copy
    rows = xc64 @ xc64.sum(0) - diag
    return a, b, inv.to(xc.dtype), mu, diag, rows


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
        Stimulus rows per block: memory is about ``2 * (M + K) * block * n`` times the dtype's size per
        worker thread (one per torch thread).
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


def _block_sums(prepared: list[list[_Prepared]], n: int, a: int, b: int, local: threading.local) -> list:
    """Sums over the pairs ``i < j`` with ``i`` in rows ``[a, b)``: per representation of ``r^2`` and
    ``Kc^2`` (``r`` the correlation minus its mean, ``Kc`` the centred Gram), per pair of a model and a
    neural representation of ``r_x r_y`` and ``Kc_x Kc_y``."""
    h, width = b - a, n - a
    dtype = prepared[0][0].xc.dtype
    lower = torch.ones(h, h, dtype=torch.bool).tril()
    flats, selfs = [], []
    for side, groups in enumerate(prepared):
        count = sum(p.xc.shape[0] for p in groups)
        size = 2 * count * h * width
        key = f"buf{side}"
        buf = getattr(local, key, None)
        if buf is None or buf.numel() < size or buf.dtype != dtype:
            buf = torch.empty(size, dtype=dtype)
            setattr(local, key, buf)
        kcs = buf[:size // 2].view(count, h * width)
        rs = buf[size // 2:size].view(count, h * width)
        s_r = torch.empty(count, dtype=torch.float64)
        s_k = torch.empty(count, dtype=torch.float64)
        idx = 0
        for p in groups:
            for k in range(p.xc.shape[0]):
                kc = kcs[idx].view(h, width)
                kc.copy_(_nt(p.xc[k, a:b], p.xc[k, a:]))
                r = rs[idx].view(h, width)
                torch.mul(kc, p.inv_sigma[k, None, a:], out=r)
                r.mul_(p.inv_sigma[k, a:b, None])
                r.addmm_(p.a[k, a:b], p.b[k, a:].mT)
                kc[:, :h].masked_fill_(lower, 0.0)
                r[:, :h].masked_fill_(lower, 0.0)
                s_r[idx] = float(torch.dot(rs[idx], rs[idx]))
                s_k[idx] = float(torch.dot(kcs[idx], kcs[idx]))
                idx += 1
        flats.append((kcs, rs))
        selfs.append((s_r, s_k))
    t_xy = _nt(flats[0][0], flats[1][0]).to(torch.float64)
    sxy = _nt(flats[0][1], flats[1][1]).to(torch.float64)
    return [selfs, t_xy, sxy]


def _compare(prepared: list[list[_Prepared]], n: int, block: int) -> dict[str, np.ndarray]:
    mu = [torch.cat([p.mu for p in side]) for side in prepared]
    diag = [torch.cat([p.diag for p in side]) for side in prepared]
    rows = [torch.cat([p.rows for p in side]) for side in prepared]
    # blocks of rows, largest (first) first; each worker thread keeps its own buffers
    starts = list(range(0, n, block))
    local = threading.local()
    parts = map_chunks(lambda a: _block_sums(prepared, n, a, min(n, a + block), local), starts,
                       workers(prepared[0][0].xc.device))
    # float64 sums over blocks, in block order whatever the thread that computed them
    s2 = [sum(part[0][i][0] for part in parts) for i in range(2)]
    t_xx = [sum(part[0][i][1] for part in parts) for i in range(2)]
    t_xy = sum(part[1] for part in parts)
    sxy = sum(part[2] for part in parts)
    P = n * (n - 1) / 2
    # RSA on d = 1 - R = (1 - mu) - r; r sums to 0 over pairs (mu is the exact mean)
    corr = sxy / torch.sqrt(s2[0][:, None] * s2[1][None, :])
    c = [1.0 - mu[i] for i in range(2)]
    dxy = P * c[0][:, None] * c[1][None, :] + sxy
    dd = [P * c[i] ** 2 + s2[i] for i in range(2)]
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
