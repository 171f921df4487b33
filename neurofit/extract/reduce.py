"""Feature reduction of a layer's activations: the default :class:`Auto`, seeded random projection or PCA.

* :class:`Auto` (the default, :data:`DEFAULT_REDUCTION`) decides per layer, from the layer's size alone:
  every feature when there are at most ``fallback.dim`` of them; otherwise, when the stimuli x steps rows
  are few (``min(p, n * steps) <= exact_max_dim``) and their raw activations fit ``raw_bytes``, an exact
  compression (:func:`gram_compress`: the rows' coordinates in an orthonormal basis of their own span, a
  square root of the Gram matrix ``X X^T``), which changes no inner product and so no PLS or ridge result
  (both depend on the features only through inner products: they are invariant to a rotation of feature
  space); otherwise the seeded random projection ``fallback``. The per-layer choice is recorded in the
  ActivationSet's ``reduction_layers`` attr.
* Random projection and PCA are applied on the fly, batch by batch, so the full activations never sit in
  memory (the exact compression holds one layer's raw activations, within ``raw_bytes`` in all).

* :class:`RandomProjection` multiplies the flattened layer output ``[n, p]`` by a ``p x D`` matrix of
  i.i.d. entries (Gaussian ``N(0, 1/D)``, or Achlioptas' sparse ``sqrt(3/D) * {+1, 0, -1}`` with
  probabilities ``1/6, 2/3, 1/6``), so squared distances are preserved in expectation
  (Johnson-Lindenstrauss). The matrix is a function of ``(seed, layer, p, D)`` only: it is generated in
  row blocks of ``block_rows`` rows, each from its own generator seeded by ``sha256(seed, layer, block)``,
  so it is identical for every batch size and device, and a huge ``p`` never needs the whole matrix at
  once. The same matrix serves every timestep of a layer, so a layer's steps share one feature space.
* :class:`PCA` is fit on a declared fitting set of stimulus ids (per layer and timestep, centred, exact
  SVD in float64, signs fixed as scikit-learn's ``svd_flip`` does) and then projects every stimulus.

A layer with ``p <= D`` features is kept as it is (no reduction) under every method.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from neurofit.errors import NeurofitError

#: a full projection matrix above this many bytes is streamed in row blocks instead of kept on the device
MATRIX_BYTES_LIMIT = 512 * 2**20


def _block_seed(seed: int, layer: str, block: int) -> int:
    digest = hashlib.sha256(f"neurofit-random-projection:{seed}:{layer}:{block}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1  # torch seeds must fit in a signed 64-bit int


@dataclass(frozen=True)
class RandomProjection:
    """Seeded random projection to ``dim`` features, generated deterministically per (layer, seed).

    Parameters
    ----------
    dim : int
        Number of output features ``D``; layers with at most ``D`` features are kept as they are.
    seed : int
        Seed of the matrix (with the layer name and the block index).
    kind : {"gaussian", "achlioptas"}
        Dense Gaussian entries or Achlioptas' sparse ternary entries.
    block_rows : int
        Rows per independently seeded block of the matrix (part of the spec: changing it changes the matrix).

    Example
    -------
    >>> rp = RandomProjection(dim=3, seed=0)
    >>> rp.matrix("IT", 5).shape
    torch.Size([5, 3])
    >>> bool((rp.matrix("IT", 5) == rp.matrix("IT", 5)).all()), bool((rp.matrix("IT", 5) == rp.matrix("V4", 5)).all())
    (True, False)
    """

    dim: int = 1000
    seed: int = 0
    kind: Literal["gaussian", "achlioptas"] = "gaussian"
    block_rows: int = 2048

    def __post_init__(self) -> None:
        if int(self.dim) < 1:
            raise NeurofitError(f"RandomProjection dim must be >= 1, got {self.dim}")
        if self.kind not in ("gaussian", "achlioptas"):
            raise NeurofitError(f"RandomProjection kind must be 'gaussian' or 'achlioptas', got {self.kind!r}")
        if int(self.block_rows) < 1:
            raise NeurofitError(f"RandomProjection block_rows must be >= 1, got {self.block_rows}")

    def spec(self) -> dict[str, Any]:
        """The JSON-able description that enters cache keys and provenance."""
        return {"method": "random_projection", "dim": int(self.dim), "seed": int(self.seed), "kind": self.kind,
                "block_rows": int(self.block_rows)}

    def matrix_block(self, layer: str, block: int, n_features: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``block * block_rows`` up to ``min((block + 1) * block_rows, n_features)`` of the matrix.

        ``out`` (float32, CPU, contiguous, of the block's shape) receives the block in place.
        """
        start = block * self.block_rows
        rows = min(self.block_rows, n_features - start)
        if rows <= 0:
            raise ValueError(f"block {block} is past the end of a {n_features}-row matrix")
        generator = torch.Generator().manual_seed(_block_seed(self.seed, layer, block))
        if out is None:
            out = torch.empty(rows, self.dim)
        if self.kind == "gaussian":
            # the same draws and the same rounding as torch.randn(rows, dim, generator=...) / sqrt(dim)
            return out.normal_(generator=generator).div_(math.sqrt(self.dim))
        u = torch.rand(rows, self.dim, generator=generator)
        signs = (u < 1 / 6).float() - (u >= 5 / 6).float()
        return torch.mul(signs, math.sqrt(3.0 / self.dim), out=out)

    def matrix(self, layer: str, n_features: int) -> torch.Tensor:
        """The whole ``n_features x dim`` matrix of ``layer`` (float32, CPU).

        The blocks are written in place (no concatenation) and, on a CPU with several torch threads,
        generated side by side on worker threads: each block has its own generator, so the matrix is the
        same whatever the thread count.
        """
        from concurrent.futures import ThreadPoolExecutor

        full = torch.empty(n_features, self.dim)
        starts = range(0, n_features, self.block_rows)
        workers = min(torch.get_num_threads(), len(starts))

        def fill(block: int) -> None:
            start = starts[block]
            self.matrix_block(layer, block, n_features, out=full[start:start + self.block_rows])

        if workers <= 1:
            for block in range(len(starts)):
                fill(block)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(fill, range(len(starts))))
        return full

    def reducer(self, layer: str, n_features: int, device: torch.device | str = "cpu") -> LayerReducer:
        """A callable that maps ``[n, n_features]`` to ``[n, dim]`` (or keeps a small layer as it is)."""
        return _Projector(self, layer, n_features, torch.device(device))


@dataclass(frozen=True)
class PCA:
    """PCA to ``dim`` components, fit per (layer, timestep) on the stimuli ``fit_ids``.

    The number of components is ``min(dim, len(fit_ids), p)``. Fitting holds the fitting set's flattened
    activations of one pass in memory (``len(fit_ids) x p`` per layer and step); keep the fitting set to a
    few hundred stimuli for wide layers, or use :class:`RandomProjection`.

    Example
    -------
    >>> PCA(dim=10, fit_ids=["a", "b", "c"]).spec()["n_fit"]
    3
    """

    dim: int = 1000
    fit_ids: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "fit_ids", tuple(str(s) for s in self.fit_ids))
        if int(self.dim) < 1:
            raise NeurofitError(f"PCA dim must be >= 1, got {self.dim}")
        if len(self.fit_ids) < 2:
            raise NeurofitError("PCA needs a fitting set of at least 2 stimulus ids: PCA(dim=..., fit_ids=[...])")
        if len(set(self.fit_ids)) != len(self.fit_ids):
            raise NeurofitError("PCA fit_ids lists a stimulus id twice; pass each fitting stimulus once")

    def spec(self) -> dict[str, Any]:
        """The JSON-able description that enters cache keys and provenance (fit ids by their hash)."""
        digest = hashlib.sha256("\n".join(self.fit_ids).encode()).hexdigest()
        return {"method": "pca", "dim": int(self.dim), "n_fit": len(self.fit_ids), "fit_ids_sha256": digest}


@dataclass(frozen=True)
class Auto:
    """Per layer: every feature, an exact Gram-matrix compression, or a seeded random projection.

    For a layer of ``p`` features extracted for ``n`` stimuli at ``steps`` steps (``N = n * steps`` rows):

    * ``p <= fallback.dim``: every feature (``"none"``);
    * ``min(p, N) <= exact_max_dim`` and the layer's raw ``[N, p]`` float32 activations fit what is left of
      ``raw_bytes`` (layers are taken in order): every feature when ``p <= N`` (``"none"``), else the exact
      compression to at most ``N`` features (``"gram"``, :func:`gram_compress`), fitted on all ``N`` rows
      (every stimulus at every step of the set: one basis for all steps, so weighted sums of steps stay
      exact);
    * otherwise the random projection ``fallback`` (``"random_projection"``).

    Neither ``"none"`` nor ``"gram"`` changes a PLS or ridge prediction: both depend on the features only
    through inner products of centred rows, and ``gram`` keeps every inner product (to float32 rounding).
    The choice depends on the model, the layer list and the stimulus count only, never on the machine.

    Example
    -------
    >>> auto = Auto()
    >>> [auto.plan(p, rows, 0) for p, rows in [(500, 640), (8192, 640), (8192, 5760 * 17)]]
    ['none', 'gram', 'random_projection']
    >>> auto.spec()["fallback"]["dim"]
    1000
    """

    exact_max_dim: int = 4096
    raw_bytes: int = 2**30
    fallback: RandomProjection = field(default_factory=lambda: RandomProjection(dim=1000, seed=0))

    def __post_init__(self) -> None:
        if int(self.exact_max_dim) < 1:
            raise NeurofitError(f"Auto exact_max_dim must be >= 1, got {self.exact_max_dim}")
        if int(self.raw_bytes) < 0:
            raise NeurofitError(f"Auto raw_bytes must be >= 0, got {self.raw_bytes}")
        if not isinstance(self.fallback, RandomProjection):
            raise NeurofitError(f"Auto fallback must be a RandomProjection, got {self.fallback!r}")

    def spec(self) -> dict[str, Any]:
        """The JSON-able description that enters cache keys and provenance."""
        return {"method": "auto", "exact_max_dim": int(self.exact_max_dim), "raw_bytes": int(self.raw_bytes),
                "fallback": self.fallback.spec()}

    def plan(self, n_features: int, n_rows: int, raw_bytes_used: int) -> str:
        """``"none"``, ``"gram"`` or ``"random_projection"`` for a layer of ``n_features`` and ``n_rows`` rows,
        given the raw bytes earlier layers already hold."""
        if n_features <= self.fallback.dim:
            return "none"
        fits = raw_bytes_used + 4 * n_rows * n_features <= self.raw_bytes
        if min(n_features, n_rows) <= self.exact_max_dim and fits:
            return "none" if n_features <= n_rows else "gram"
        return "random_projection"


#: the default reduction (issue 14): exact where the rows are few, the seeded RP-1000 of old otherwise
DEFAULT_REDUCTION = Auto()

Reduction = RandomProjection | PCA | Auto


def gram_compress(x: np.ndarray | torch.Tensor, chunk: int = 4096, *, keep_all: bool = False,
                  dtype: Any = np.float32) -> np.ndarray:
    """Exact compression of ``x`` ``[N, p]`` to ``[N, r]`` (``r <= min(N, p)``) keeping every inner product.

    With the Gram matrix ``K = x x^T = U diag(lam) U^T`` (float64, accumulated over column chunks), the result
    is ``U diag(sqrt(lam))`` restricted to the numerical rank ``r`` (eigenvalues above ``lam_max * N * eps``,
    numpy's ``matrix_rank`` rule), columns in decreasing eigenvalue order, each column's entry of largest
    magnitude positive. It equals ``x @ V`` for an orthonormal basis ``V`` of the rows' span (the right
    singular vectors), so every inner product between rows, and with them every centred inner product, is
    kept: a PLS or ridge fit on any subset of the rows predicts any other row exactly as on ``x``.
    ``keep_all=True`` keeps all ``min(N, p)`` columns (those past the rank near zero), so a fit's component
    limit ``min(k, n_train - 1, features)`` is the same as on ``x``; ``dtype`` is the result's.

    Example
    -------
    >>> x = np.random.default_rng(0).normal(size=(5, 40)).astype(np.float32)
    >>> z = gram_compress(x)
    >>> z.shape, bool(np.allclose(z @ z.T, x.astype(np.float64) @ x.T.astype(np.float64), atol=1e-4))
    ((5, 5), True)
    """
    from neurofit.regression.memo import content_key, memoized
    from neurofit.regression.parallel import torch_threads

    xt = torch.as_tensor(x)
    key = ("gram_compress", content_key(xt.detach().cpu().numpy()), int(chunk), bool(keep_all), np.dtype(dtype).str)
    # on one intra-op thread: the result then does not depend on the machine's thread count, and a threaded
    # eigh of a few hundred rows costs several times the CPU of a serial one (20x on a busy 2-core machine)
    with torch_threads(1):
        return memoized(key, lambda: _gram_compress(xt, chunk, keep_all, dtype))


def _gram_compress(xt: torch.Tensor, chunk: int, keep_all: bool, dtype: Any) -> np.ndarray:
    n, p = xt.shape
    gram = torch.zeros(n, n, dtype=torch.float64)
    for start in range(0, p, chunk):
        part = xt[:, start:start + chunk].double()
        gram += part @ part.T
    lam, vecs = torch.linalg.eigh(gram)
    lam, vecs = lam.flip(0).clamp(min=0.0), vecs.flip(1)
    top = float(lam[0]) if n else 0.0
    if keep_all:
        rank = min(n, p)
    elif top <= 0.0:
        return np.zeros((n, 1), dtype=dtype)
    else:
        rank = max(1, int((lam > top * n * torch.finfo(torch.float64).eps).sum()))
    vecs = vecs[:, :rank]
    signs = torch.sign(vecs.gather(0, vecs.abs().argmax(dim=0, keepdim=True)))
    signs[signs == 0] = 1.0
    z = vecs * signs * lam[:rank].sqrt()
    return z.numpy().astype(dtype, copy=False)


class LayerReducer:
    """Maps flattened activations ``[n, p]`` of one layer (and step) to ``[n, n_out]`` float32."""

    n_out: int
    reduced: bool

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class _Identity(LayerReducer):
    def __init__(self, n_features: int) -> None:
        self.n_out, self.reduced = n_features, False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


class _Projector(LayerReducer):
    def __init__(self, rp: RandomProjection, layer: str, n_features: int, device: torch.device) -> None:
        self.rp, self.layer, self.n_features, self.device = rp, layer, n_features, device
        self.reduced = n_features > rp.dim
        self.n_out = rp.dim if self.reduced else n_features
        self.full: torch.Tensor | None = None
        if self.reduced and n_features * rp.dim * 4 <= MATRIX_BYTES_LIMIT:
            self.full = rp.matrix(layer, n_features).to(device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if not self.reduced:
            return x
        if x.shape[1] != self.n_features:
            raise ValueError(f"layer {self.layer!r} has {x.shape[1]} features, the projection was made for "
                             f"{self.n_features}")
        if self.full is not None:
            return x @ self.full
        out = x.new_zeros(x.shape[0], self.rp.dim)
        for block, start in enumerate(range(0, self.n_features, self.rp.block_rows)):
            part = self.rp.matrix_block(self.layer, block, self.n_features).to(self.device)
            out += x[:, start:start + part.shape[0]] @ part
        return out


class _PCAProjector(LayerReducer):
    """A fitted PCA: ``(x - mean_) @ components_.T``."""

    def __init__(self, mean: torch.Tensor, components: torch.Tensor) -> None:
        self.mean_, self.components_ = mean, components
        self.n_out, self.reduced = components.shape[0], True

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x.float() - self.mean_) @ self.components_.T


def fit_pca(x: torch.Tensor, n_components: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact PCA of ``x`` ``[n, p]`` in float64: ``(mean [p], components [k, p], explained_variance [k])``.

    Components are the top right singular vectors of the centred data, with scikit-learn's sign rule
    (``svd_flip(u_based_decision=False)``: the entry of largest magnitude of each component is positive),
    so the projections equal ``sklearn.decomposition.PCA(n_components=k, svd_solver="full")``'s.

    Example
    -------
    >>> x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [4.0, 0.1]])
    >>> mean, comps, var = fit_pca(x, 1)
    >>> [round(v, 3) for v in mean.tolist()], comps.shape
    ([2.0, 0.033], torch.Size([1, 2]))
    """
    x = x.double()
    n, p = x.shape
    k = int(n_components)
    if not 1 <= k <= min(n, p):
        raise ValueError(f"n_components must be in [1, min(n, p) = {min(n, p)}], got {k}")
    mean = x.mean(dim=0)
    xc = x - mean
    _, s, vt = torch.linalg.svd(xc, full_matrices=False)
    vt = vt[:k]
    signs = torch.sign(vt.gather(1, vt.abs().argmax(dim=1, keepdim=True)))
    signs[signs == 0] = 1.0
    vt = vt * signs
    variance = s[:k] ** 2 / max(n - 1, 1)
    return mean, vt, variance


def pca_reducer(fit_features: torch.Tensor, dim: int, device: torch.device | str = "cpu") -> LayerReducer:
    """Fit a PCA reducer on ``fit_features`` ``[n_fit, p]``; a layer with ``p <= dim`` is kept as it is."""
    n, p = fit_features.shape
    if p <= dim:
        return _Identity(p)
    mean, components, _ = fit_pca(fit_features, min(dim, n, p))
    return _PCAProjector(mean.float().to(device), components.float().to(device))


def identity_reducer(n_features: int) -> LayerReducer:
    """No reduction (``reduction=None``)."""
    return _Identity(n_features)


def reduction_spec(reduction: Reduction | None) -> dict[str, Any]:
    """The spec of a reduction, ``{"method": "none"}`` for ``None``.

    Example
    -------
    >>> reduction_spec(None)
    {'method': 'none'}
    """
    if reduction is None:
        return {"method": "none"}
    if isinstance(reduction, (RandomProjection, PCA, Auto)):
        return reduction.spec()
    raise NeurofitError(f"reduction must be Auto(...), RandomProjection(...), PCA(...) or None, got {reduction!r}")


def check_fit_ids(reduction: Reduction | None, stimulus_ids: Sequence[str], identifier: str) -> None:
    """Raise NeurofitError naming the first PCA fitting id that is not in the stimulus set."""
    if isinstance(reduction, PCA):
        known = set(stimulus_ids)
        missing = [s for s in reduction.fit_ids if s not in known]
        if missing:
            raise NeurofitError(f"PCA fit_ids include {missing[0]!r}, which is not in the stimulus set "
                                f"{identifier!r} ({len(missing)} missing); fit on stimuli of the set")
