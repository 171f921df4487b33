"""The regression engine's CPU threading policy: no intra-op threads inside iterative solvers.

A PLS fit issues a few hundred small torch operations per component (Gram updates, Rayleigh-Ritz steps,
Cholesky factorisations, thin products). With several intra-op threads every one of them is a parallel
region that ends in a barrier, and on a machine where another process is busy one of our threads is often
descheduled, so each barrier waits a scheduler time slice: a 74 x 74 product measured 25 ms instead of
0.23 ms, a whole fit 7-13x slower than idle. The policy:

* **iterative work runs on one thread**: the per-component algebra and the passes over the data of
  batches of problems, with no barrier inside;
* **parallelism comes from independent problems**: (bin, fold) problems are split into chunks that
  :func:`map_chunks` hands to a pool of worker threads (torch releases the GIL inside every operation),
  each computing on one thread; a descheduled worker delays only its own chunk and the other worker takes
  the remaining ones, so the only waits are one per chunk;
* **big one-off products keep the caller's threads** (``X^T Y``, centring, predictions): a handful of
  parallel regions, each long enough that a barrier costs little.

On accelerators nothing changes (a CUDA stream has no such barriers).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

T = TypeVar("T")


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch (and MKL) intra-op threads, then restore the previous count.

    Example
    -------
    >>> with torch_threads(1):
    ...     torch.get_num_threads()
    1
    """
    old = torch.get_num_threads()
    if old == n:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def workers(device: torch.device | str) -> int:
    """Worker threads for independent chunks on ``device``: the caller's torch threads on CPU, else 1."""
    return torch.get_num_threads() if torch.device(device).type == "cpu" else 1


def map_chunks(fn: Callable[[T], object], chunks: Sequence[T], n_workers: int) -> list:
    """``[fn(c) for c in chunks]``, computed by ``n_workers`` threads each running torch on one thread.

    Chunks are taken in order by whichever worker is free (dynamic balance under contention); results come
    back in the order of ``chunks``. With one worker or one chunk everything runs here, on one thread.

    Example
    -------
    >>> map_chunks(lambda c: torch.ones(c).sum().item(), [1, 2, 3], n_workers=2)
    [1.0, 2.0, 3.0]
    """
    with torch_threads(1):
        if n_workers <= 1 or len(chunks) <= 1:
            return [fn(c) for c in chunks]
        with ThreadPoolExecutor(max_workers=min(n_workers, len(chunks))) as pool:
            return list(pool.map(fn, chunks))


def split_range(n: int, parts: int) -> list[tuple[int, int]]:
    """``[0, n)`` cut into ``min(parts, n)`` contiguous ranges of near-equal length.

    Example
    -------
    >>> split_range(10, 3)
    [(0, 3), (3, 7), (7, 10)]
    """
    parts = max(1, min(parts, n))
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]
