"""RSA of every model representation (a layer at a step) against every region in every bin: the RSA grid.

A grid cell is the RSA score of :func:`neurofit.metrics.rsa.rsa_over_time`: the mean, over the repetition
groups, of the similarity between the model's correlation-distance RDM and the group's neural RDM of that
region and bin. Every cell of a model representation at the step a bin maps to is that bin's RSA score.

RDMs are GEMMs, and the grid is batched on torch in float64:

* ``cosine`` and ``corr`` of correlation-distance RDMs need only sums over the RDMs' entries, so they are
  streamed over blocks of stimuli without forming an RDM (:func:`neurofit.metrics.grid.compare_grid`, one Gram
  block per representation and one GEMM between the blocks of all model and all neural representations);
* ``spearman`` (and any comparison of crossnobis RDMs) needs whole RDMs: every neural group RDM is formed,
  transformed once (ranked for Spearman, centred for corr) and scaled to unit length, and each model RDM, formed
  and transformed once, meets all of them in one matrix-vector product. The neural RDMs are held in chunks of at
  most ``max_bytes``; a model RDM is formed once per chunk. Memory: ``8 * n (n - 1) / 2`` bytes per RDM.
* ``tau_a`` has no product form: each cell is Kendall's tau-a of two whole RDMs (slow; scipy's O(P log P)).

Cells whose RDMs have undefined entries (a constant pattern, a stimulus without trials in a group) are
computed exactly as :func:`~neurofit.metrics.rsa.compare_rdms` does (the positions NaN in any compared RDM are
left out), as are all cells of an input the streamed form cannot take.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from neurofit.errors import NeurofitError
from neurofit.metrics.rdm import correlation_rdm
from neurofit.metrics.rsa import Method, _check_method, _rank, evaluate, neural_group_rdms, repetition_groups

_F64 = torch.float64


def _as_f64(x: np.ndarray | torch.Tensor) -> torch.Tensor:
    return x.to(_F64) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float64))


def _unit(v: torch.Tensor, method: str) -> torch.Tensor:
    """RDM vectors ``[..., P]`` transformed for ``method`` and scaled to unit length (zero if of zero length:
    rsatoolbox's rule that such an RDM is dissimilar, 0, to everything)."""
    if method == "spearman":
        v = _rank(v)
    if method in ("corr", "spearman"):
        v = v - v.mean(-1, keepdim=True)
    norm = torch.linalg.vector_norm(v, dim=-1, keepdim=True)
    return torch.where(norm > 0, v / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(v))


def _regular(x: torch.Tensor) -> bool:
    """Whether every pattern (row) is finite and not constant over its channels (its correlations exist)."""
    if not bool(torch.isfinite(x).all()):
        return False
    centred = x - x.mean(-1, keepdim=True)
    return bool((torch.linalg.vector_norm(centred, dim=-1) > 0).all())


def rsa_grid(
    model: Sequence[np.ndarray | torch.Tensor],
    trials: Sequence[np.ndarray],
    *,
    method: Method = "spearman",
    dissimilarity: str = "correlation",
    n_groups: int = 5,
    seed: int = 0,
    max_bytes: int = 2**30,
) -> np.ndarray:
    """RSA scores of every model representation against every region in every bin: ``(M, R, n_bins)``.

    Parameters
    ----------
    model : sequence of M arrays or Tensors (n_stimuli, n_features)
        Model representations (e.g. every layer at every step) over the same stimuli; widths may differ.
    trials : sequence of R arrays (n_stimuli, n_repetitions, n_sites, n_bins)
        Each region's NaN-padded trials (the same stimuli and bins; sites and repetitions may differ).
    method, dissimilarity, n_groups, seed :
        As :func:`neurofit.metrics.rsa.rsa_over_time` (``seed`` seeds the repetition groups).
    max_bytes : int
        Memory for the RDMs held at once: the neural ones on the whole-RDM path (Spearman, crossnobis), the
        model ones reused across cells that are computed one by one (tau-a, undefined entries).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> latent = rng.normal(size=(2, 20, 4))  # two bins
    >>> trials = np.einsum("bnk,ks->nsb", latent, rng.normal(size=(4, 30)))[:, None]
    >>> trials = trials + 0.5 * rng.normal(size=(20, 6, 30, 2))
    >>> grid = rsa_grid([latent[0], latent[1]], [trials], method="corr", n_groups=3)
    >>> grid.shape, bool(grid[0, 0, 0] > grid[0, 0, 1] and grid[1, 0, 1] > grid[1, 0, 0])
    ((2, 1, 2), True)
    """
    _check_method(method)
    if dissimilarity not in ("correlation", "crossnobis"):
        raise NeurofitError(f"unknown dissimilarity {dissimilarity!r}; use 'correlation' or 'crossnobis'")
    reps = [_as_f64(x) for x in model]
    regions = [np.asarray(t, dtype=np.float64) for t in trials]
    if not reps or not regions:
        raise NeurofitError("an RSA grid needs at least one model representation and one region")
    n = reps[0].shape[0]
    if any(x.ndim != 2 or x.shape[0] != n for x in reps):
        raise NeurofitError("every model representation must be (n_stimuli, width) over the same stimuli")
    if any(t.ndim != 4 or t.shape[0] != n or t.shape[3] != regions[0].shape[3] for t in regions):
        raise NeurofitError(f"every region's trials must be (stimuli, repetitions, sites, bins) over the model's "
                            f"{n} stimuli and the same bins")
    n_bins = regions[0].shape[3]
    groups = [repetition_groups(t.shape[1], n_groups, seed) for t in regions]
    out = np.full((len(reps), len(regions), n_bins), np.nan)
    if method in ("cosine", "corr") and dissimilarity == "correlation":
        _streamed(out, reps, regions, groups, method, max_bytes)
    elif method == "tau_a":
        _exact(out, reps, regions, groups, dissimilarity, method, None, max_bytes)
    else:
        _whole(out, reps, regions, groups, dissimilarity, method, max_bytes)
    return out


def _group_means(t: np.ndarray, groups: np.ndarray) -> torch.Tensor:
    """Repetition means of each group: ``(bins, G, stimuli, sites)``."""
    x = torch.as_tensor(t).permute(3, 1, 0, 2)
    return torch.stack([torch.nanmean(x[:, torch.as_tensor(groups == g)], dim=1) for g in np.unique(groups)], dim=1)


def _streamed(out: np.ndarray, reps: list[torch.Tensor], regions: list[np.ndarray], groups: list[np.ndarray],
              method: str, max_bytes: int) -> None:
    from neurofit.metrics.grid import compare_grid

    means = [_group_means(t, g) for t, g in zip(regions, groups)]
    n_bins = out.shape[2]
    good_model = [k for k, x in enumerate(reps) if _regular(x)]
    # (region, bin) whose every group's patterns are regular: the streamed sums hold; the rest is exact
    good_neural = [(r, b) for r, m in enumerate(means) for b in range(n_bins) if _regular(m[b])]
    if good_model and good_neural:
        neural = [means[r][b, g] for r, b in good_neural for g in range(means[r].shape[1])]
        sizes = [means[r].shape[1] for r, _ in good_neural]
        table = getattr(compare_grid([reps[k] for k in good_model], neural, dtype=_F64), method)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        for j, (r, b) in enumerate(good_neural):
            out[good_model, r, b] = table[:, starts[j]:starts[j + 1]].mean(1)
    todo = np.zeros(out.shape, dtype=bool)
    todo[[k for k in range(len(reps)) if k not in set(good_model)]] = True
    done_neural = np.zeros(out.shape[1:], dtype=bool)
    for r, b in good_neural:
        done_neural[r, b] = True
    todo |= ~done_neural[None]
    if todo.any():
        _exact(out, reps, regions, groups, "correlation", method, todo, max_bytes)


def _neural_rdms(t: np.ndarray, groups: np.ndarray, dissimilarity: str, bins: range) -> torch.Tensor:
    return neural_group_rdms(t[..., bins.start:bins.stop], groups, dissimilarity)  # (len(bins), G, P)


def _exact(out: np.ndarray, reps: list[torch.Tensor], regions: list[np.ndarray], groups: list[np.ndarray],
           dissimilarity: str, method: str, todo: np.ndarray | None, max_bytes: int) -> None:
    """Cells by :func:`~neurofit.metrics.rsa.evaluate` on whole RDMs (``todo``: which; all if None); model RDMs
    are kept for the next cell while they fit in ``max_bytes``."""
    n = reps[0].shape[0]
    n_bins = out.shape[2]
    wanted = np.ones(out.shape, dtype=bool) if todo is None else todo
    models: dict[int, torch.Tensor] = {}
    keep = max(1, max_bytes // max(1, 8 * (n * (n - 1) // 2)))
    for r, (t, g) in enumerate(zip(regions, groups)):
        for b in range(n_bins):
            cells = np.flatnonzero(wanted[:, r, b])
            if not len(cells):
                continue
            data = _neural_rdms(t, g, dissimilarity, range(b, b + 1))[0]
            for k in cells:
                m = models.get(k)
                if m is None:
                    m = correlation_rdm(reps[k])
                    if len(models) < keep:
                        models[k] = m
                out[k, r, b] = float(evaluate(m[None], data, method)[0])


def _whole(out: np.ndarray, reps: list[torch.Tensor], regions: list[np.ndarray], groups: list[np.ndarray],
           dissimilarity: str, method: str, max_bytes: int) -> None:
    """Spearman / crossnobis: unit-length transformed RDMs, one matrix-vector product per model RDM and chunk."""
    n = reps[0].shape[0]
    n_bins = out.shape[2]
    rdm_bytes = 8 * (n * (n - 1) // 2)
    cells = [(r, b) for r in range(len(regions)) for b in range(n_bins)]
    sizes = {r: len(np.unique(g)) for r, g in enumerate(groups)}
    # chunks of (region, bin) cells whose group RDMs fit in max_bytes (at least one cell each)
    chunks, current, used = [], [], 0
    for r, b in cells:
        if current and used + sizes[r] * rdm_bytes > max_bytes:
            chunks.append(current)
            current, used = [], 0
        current.append((r, b))
        used += sizes[r] * rdm_bytes
    chunks.append(current)
    todo = np.zeros(out.shape, dtype=bool)
    # each group's repetition means once per region (correlation); a chunk's RDMs in one batched GEMM per region
    means = [_group_means(t, g) for t, g in zip(regions, groups)] if dissimilarity == "correlation" else None
    for chunk in chunks:
        units, spans = [], []
        for r in sorted({r for r, _ in chunk}):
            bins = [b for rr, b in chunk if rr == r]
            if means is not None:
                data = correlation_rdm(means[r][bins])  # (bins, G, P)
            else:
                data = neural_group_rdms(regions[r][..., bins], groups[r], dissimilarity)
            for j, b in enumerate(bins):
                d = data[j]
                if not bool(torch.isfinite(d).all()):
                    todo[:, r, b] = True
                    d = torch.zeros_like(d)  # a placeholder: the cell is computed exactly below
                spans.append(((r, b), len(units), len(units) + len(d)))
                units.extend(_unit(d, method))
            del data
        matrix = torch.stack(units)  # (sum of G, P)
        del units
        for k, x in enumerate(reps):
            m = correlation_rdm(x)
            if not bool(torch.isfinite(m).all()):
                todo[k] = True
                continue
            sims = (matrix @ _unit(m, method)).numpy()
            for (r, b), lo, hi in spans:
                out[k, r, b] = sims[lo:hi].mean()  # mean over the repetition groups
    if todo.any():
        _exact(out, reps, regions, groups, dissimilarity, method, todo, max_bytes)


__all__ = ["rsa_grid"]
