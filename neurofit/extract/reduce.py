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
  i.i.d. entries (Gaussian ``N(0, 1/D)``, Achlioptas' ``sqrt(3/D) * {+1, 0, -1}`` with probabilities
  ``1/6, 2/3, 1/6``, or the very sparse projection of Li, Hastie & Church (2006), ``kind="sparse"``:
  ``sqrt(1/(s D)) * {+1, 0, -1}`` with probabilities ``s/2, 1 - s, s/2`` and density ``s = 1/sqrt(p)`` by
  default, scikit-learn's ``SparseRandomProjection``), so squared distances are preserved in expectation
  (Johnson-Lindenstrauss). The Gaussian and Achlioptas matrices are applied densely (a ``2 p D`` FLOP
  GEMM per row); the sparse one as a sparse product, ``2 s p D`` FLOP per row (``1/sqrt(p)`` of the
  dense cost: 1.1 MFLOP instead of 229 per image-step for bl at 64 px). The default stays Gaussian (a
  different matrix is a different number). The matrix is a function of ``(seed, layer, p, D)`` only: it is generated in
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
#: the kinds of random projection matrix
KINDS = ("gaussian", "achlioptas", "sparse")


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
    kind : {"gaussian", "achlioptas", "sparse"}
        Dense Gaussian entries, Achlioptas' ternary entries (applied densely), or the very sparse ternary
        entries of Li, Hastie & Church (2006) applied as a sparse product (opt-in: far cheaper for wide
        layers, but a different matrix, so different numbers from the default Gaussian one).
    block_rows : int
        Rows per independently seeded block of the matrix (part of the spec: changing it changes the matrix).
    density : float, optional
        ``kind="sparse"`` only: the probability ``s`` of a non-zero entry; default ``1 / sqrt(p)`` for a layer
        of ``p`` features (scikit-learn's ``density="auto"``). Non-zero entries are ``+-sqrt(1 / (s D))``.

    Example
    -------
    >>> rp = RandomProjection(dim=3, seed=0)
    >>> rp.matrix("IT", 5).shape
    torch.Size([5, 3])
    >>> bool((rp.matrix("IT", 5) == rp.matrix("IT", 5)).all()), bool((rp.matrix("IT", 5) == rp.matrix("V4", 5)).all())
    (True, False)
    >>> sparse = RandomProjection(dim=100, seed=0, kind="sparse")
    >>> sparse.layer_density(10000), sparse.components("IT", 10000).shape
    (0.01, (100, 10000))
    """

    dim: int = 1000
    seed: int = 0
    kind: Literal["gaussian", "achlioptas", "sparse"] = "gaussian"
    block_rows: int = 2048
    density: float | None = None

    def __post_init__(self) -> None:
        if int(self.dim) < 1:
            raise NeurofitError(f"RandomProjection dim must be >= 1, got {self.dim}")
        if self.kind not in KINDS:
            raise NeurofitError(f"RandomProjection kind must be one of {', '.join(map(repr, KINDS))}, "
                                f"got {self.kind!r}")
        if int(self.block_rows) < 1:
            raise NeurofitError(f"RandomProjection block_rows must be >= 1, got {self.block_rows}")
        if self.density is not None:
            if self.kind != "sparse":
                raise NeurofitError(f"RandomProjection density applies to kind='sparse' only, got kind={self.kind!r}")
            if isinstance(self.density, bool) or not isinstance(self.density, (int, float)) or \
                    not 0.0 < float(self.density) <= 1.0:
                raise NeurofitError(f"RandomProjection density must be in (0, 1], got {self.density!r}")
            object.__setattr__(self, "density", float(self.density))

    def spec(self) -> dict[str, Any]:
        """The JSON-able description that enters cache keys and provenance."""
        spec: dict[str, Any] = {"method": "random_projection", "dim": int(self.dim), "seed": int(self.seed),
                                "kind": self.kind, "block_rows": int(self.block_rows)}
        if self.kind == "sparse":
            # only the sparse kind has a density: the Gaussian and Achlioptas specs (cache keys) are as before
            spec["density"] = "auto" if self.density is None else float(self.density)
        return spec

    def layer_density(self, n_features: int) -> float:
        """The probability of a non-zero entry for a layer of ``n_features`` (1 for the Gaussian kind, 1/3 for
        Achlioptas')."""
        if self.kind == "gaussian":
            return 1.0
        if self.kind == "achlioptas":
            return 1.0 / 3.0
        return float(self.density) if self.density is not None else 1.0 / math.sqrt(n_features)

    def _sparse_block(self, layer: str, block: int, n_features: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        """The sparse kind's block: flat row-major positions of its non-zeros (ascending), their signs, scale.

        Every entry is non-zero independently with probability ``s`` (the gaps between non-zero positions
        are i.i.d. geometric), each sign is +1 or -1 with probability 1/2, and the scale is
        ``sqrt(1 / s) / sqrt(D)`` (scikit-learn's ``_sparse_random_matrix``: the same distribution).
        """
        start = block * self.block_rows
        rows = min(self.block_rows, n_features - start)
        if rows <= 0:
            raise ValueError(f"block {block} is past the end of a {n_features}-row matrix")
        generator = torch.Generator().manual_seed(_block_seed(self.seed, layer, block))
        s = self.layer_density(n_features)
        size = rows * self.dim
        if s >= 1.0:
            flat = torch.arange(size)
        else:
            expected = size * s
            draw = int(expected + 8 * math.sqrt(expected) + 64)
            parts, last = [], -1.0
            while last < size:
                gaps = torch.empty(draw, dtype=torch.float64).geometric_(s, generator=generator)
                positions = torch.cumsum(gaps, 0).add_(last)
                parts.append(positions)
                last = float(positions[-1])
            flat = torch.cat(parts)
            flat = flat[flat < size].long()
        negative = torch.randint(0, 2, (flat.numel(),), generator=generator) == 1
        return flat, negative, math.sqrt(1.0 / s) / math.sqrt(self.dim)

    def components(self, layer: str, n_features: int) -> Any:
        """The sparse kind's matrix, transposed, as a ``scipy.sparse`` CSR ``[dim, n_features]`` float32 matrix
        (the layout of scikit-learn's ``SparseRandomProjection.components_``; column indices ascending)."""
        import scipy.sparse as sp

        if self.kind != "sparse":
            raise NeurofitError(f"RandomProjection components are the sparse kind's; this one is {self.kind!r}")
        rows, cols, values = [], [], []
        for block, start in enumerate(range(0, n_features, self.block_rows)):
            flat, negative, scale = self._sparse_block(layer, block, n_features)
            flat_np = flat.numpy()
            rows.append(start + flat_np // self.dim)
            cols.append(flat_np % self.dim)
            values.append(np.where(negative.numpy(), np.float32(-scale), np.float32(scale)))
        feature = np.concatenate(rows)
        component = np.concatenate(cols)
        data = np.concatenate(values).astype(np.float32, copy=False)
        # coo -> csr keeps the (ascending-feature) input order within each component's row
        matrix = sp.coo_matrix((data, (component, feature)), shape=(self.dim, n_features)).tocsr()
        matrix.sort_indices()
        return matrix

    def matrix_block(self, layer: str, block: int, n_features: int, out: torch.Tensor | None = None) -> torch.Tensor:
        """Rows ``block * block_rows`` up to ``min((block + 1) * block_rows, n_features)`` of the matrix.

        ``out`` (float32, CPU, contiguous, of the block's shape) receives the block in place.
        """
        start = block * self.block_rows
        rows = min(self.block_rows, n_features - start)
        if rows <= 0:
            raise ValueError(f"block {block} is past the end of a {n_features}-row matrix")
        if out is None:
            out = torch.empty(rows, self.dim)
        if self.kind == "sparse":
            flat, negative, scale = self._sparse_block(layer, block, n_features)
            out.zero_()
            values = torch.full((flat.numel(),), scale, dtype=torch.float32)
            values[negative] = -values[negative]
            out.view(-1)[flat] = values
            return out
        generator = torch.Generator().manual_seed(_block_seed(self.seed, layer, block))
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
        if self.kind == "sparse":
            return _SparseProjector(self, layer, n_features, torch.device(device))
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


class _RandomProjector(LayerReducer):
    """A layer's random projection: features above the target dimension are projected by :meth:`_project`."""

    def __init__(self, rp: RandomProjection, layer: str, n_features: int, device: torch.device) -> None:
        self.rp, self.layer, self.n_features, self.device = rp, layer, n_features, device
        self.reduced = n_features > rp.dim
        self.n_out = rp.dim if self.reduced else n_features

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if not self.reduced:
            return x
        if x.shape[1] != self.n_features:
            raise ValueError(f"layer {self.layer!r} has {x.shape[1]} features, the projection was made for "
                             f"{self.n_features}")
        return self._project(x)

    def _project(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError


class _Projector(_RandomProjector):
    def __init__(self, rp: RandomProjection, layer: str, n_features: int, device: torch.device) -> None:
        super().__init__(rp, layer, n_features, device)
        self.full: torch.Tensor | None = None
        if self.reduced and n_features * rp.dim * 4 <= MATRIX_BYTES_LIMIT:
            self.full = rp.matrix(layer, n_features).to(device)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if self.full is not None:
            return x @ self.full
        out = x.new_zeros(x.shape[0], self.rp.dim)
        for block, start in enumerate(range(0, self.n_features, self.rp.block_rows)):
            part = self.rp.matrix_block(self.layer, block, self.n_features).to(self.device)
            out += x[:, start:start + part.shape[0]] @ part
        return out


def _torch_csr(matrix: Any) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor (checked), without torch's "beta" notice: the one
    sparse operation used, the CSR x dense product, is a stable part of torch."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(torch.from_numpy(matrix.indptr.astype(np.int64)),
                                       torch.from_numpy(matrix.indices.astype(np.int64)),
                                       torch.from_numpy(matrix.data), size=matrix.shape, check_invariants=True)


class _SparseProjector(_RandomProjector):
    """``x @ R`` for the sparse kind, as ``(R^T @ x^T)^T`` with ``R^T`` in CSR (a few non-zeros per feature).

    On the CPU the product is scipy's compressed-column x dense kernel over ``x^T`` (each feature's values
    contiguous): it reads ``x^T`` once, in order, and adds each non-zero's multiple of a feature's row into
    the ``[D, n]`` result, which stays in cache. Every output entry sums its non-zeros in ascending feature
    order, each column (row of ``x``) independently of the others, so a row's result is the same bit for bit
    in any batch and on any thread count. Elsewhere it is torch's sparse CSR product on the device.
    """

    def __init__(self, rp: RandomProjection, layer: str, n_features: int, device: torch.device) -> None:
        super().__init__(rp, layer, n_features, device)
        self.components = rp.components(layer, n_features) if self.reduced else None
        self._by_feature = self.components.tocsc() if self.reduced else None
        self.on_device: torch.Tensor | None = None
        if self.reduced and device.type != "cpu":
            self.on_device = _torch_csr(self.components).to(device)

    def _project(self, x: torch.Tensor) -> torch.Tensor:
        if self.on_device is not None:
            return (self.on_device @ x.T).T
        # a block of rows at a time, transposed to [p, rows] (each feature's values contiguous, so every
        # non-zero is one contiguous multiply-add) within ~16 MB, so that the block is read back from cache;
        # a row's result does not depend on the block it is in
        x = x.detach().cpu()
        out = torch.empty(x.shape[0], self.n_out)
        step = max(16, min(256, 2**24 // (4 * self.n_features)))
        for start in range(0, x.shape[0], step):
            block = x[start:start + step].T.contiguous().numpy()
            out[start:start + step] = torch.from_numpy(self._by_feature @ block).T
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


def parse_reduction(text: str) -> Reduction | None:
    """A reduction from its text form (configuration files, the command line).

    ``"default"`` (:data:`DEFAULT_REDUCTION`), ``"auto"``, ``"none"`` (every feature), ``KIND[:DIM[:SEED]]``
    for a :class:`RandomProjection` of that kind (``gaussian``, ``achlioptas``, ``sparse``; default
    ``D = 1000``, seed 0), or ``auto:KIND[:DIM[:SEED]]`` for :class:`Auto` with that random projection as its
    fallback. PCA needs its fitting stimuli and is built in Python only (:class:`PCA`).

    Example
    -------
    >>> parse_reduction("sparse")
    RandomProjection(dim=1000, seed=0, kind='sparse', block_rows=2048, density=None)
    >>> parse_reduction("auto:sparse:500").fallback.spec()["kind"], parse_reduction("none") is None
    ('sparse', True)
    >>> parse_reduction("default") is DEFAULT_REDUCTION
    True
    """
    if not isinstance(text, str):
        raise NeurofitError(f"reduction= must be a reduction object or its text form, got {text!r}")
    raw = text.strip().lower()
    if raw == "default":
        return DEFAULT_REDUCTION
    if raw == "none":
        return None
    if raw == "auto":
        return Auto()
    words = raw.split(":")
    wrapped = words[0] == "auto"
    if wrapped:
        words = words[1:]
    usage = ("reduction= takes 'default', 'auto', 'none', KIND[:DIM[:SEED]] or auto:KIND[:DIM[:SEED]] with KIND one "
             f"of {', '.join(KINDS)}")
    if not 1 <= len(words) <= 3 or words[0] not in KINDS:
        raise NeurofitError(f"{usage}; got {text!r}")
    try:
        numbers = [int(w) for w in words[1:]]
    except ValueError:
        raise NeurofitError(f"{usage} (DIM and SEED whole numbers); got {text!r}") from None
    dim = numbers[0] if numbers else 1000
    seed = numbers[1] if len(numbers) > 1 else 0
    if seed < 0:
        raise NeurofitError(f"reduction= seed must be >= 0, got {seed} in {text!r}")
    rp = RandomProjection(dim=dim, seed=seed, kind=words[0])  # type: ignore[arg-type]
    return Auto(fallback=rp) if wrapped else rp


def check_fit_ids(reduction: Reduction | None, stimulus_ids: Sequence[str], identifier: str) -> None:
    """Raise NeurofitError naming the first PCA fitting id that is not in the stimulus set."""
    if isinstance(reduction, PCA):
        known = set(stimulus_ids)
        missing = [s for s in reduction.fit_ids if s not in known]
        if missing:
            raise NeurofitError(f"PCA fit_ids include {missing[0]!r}, which is not in the stimulus set "
                                f"{identifier!r} ({len(missing)} missing); fit on stimuli of the set")
