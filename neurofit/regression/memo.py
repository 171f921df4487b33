"""Results of pure numeric functions kept for their next identical call, keyed by the inputs' content.

A demo or a batch of runs often repeats a computation on the very same arrays: two models scored on the same
trials share their noise ceilings and the ceilings of every bootstrap draw, and the V4 and IT benchmarks of
one dataset share the model's feature designs. :func:`memoized` returns the earlier result (a copy) when the
key (a function name, :func:`content_key` of each input array and every parameter) is the same, so the
numbers are bit for bit those of a fresh computation. Only results up to :data:`MAX_BYTES` are kept, at most
:data:`MAX_TOTAL_BYTES` together, least recently used first out.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

import numpy as np

MAX_BYTES = 64 * 2**20
MAX_TOTAL_BYTES = 256 * 2**20
_MEMO: OrderedDict[tuple[Hashable, ...], np.ndarray] = OrderedDict()
_LOCK = threading.Lock()


def content_key(array: np.ndarray) -> str:
    """A digest of an array's dtype, shape and bytes.

    Example
    -------
    >>> content_key(np.zeros(3)) == content_key(np.zeros(3)), content_key(np.zeros(3)) == content_key(np.ones(3))
    (True, False)
    """
    array = np.ascontiguousarray(array)
    digest = hashlib.sha1(f"{array.dtype.str}{array.shape}".encode(), usedforsecurity=False)
    digest.update(array.data)
    return digest.hexdigest()


def memoized(key: tuple[Hashable, ...], compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, or a copy of what it returned for an earlier call with the same ``key``.

    ``key`` must name the function and hold every input (arrays through :func:`content_key`).

    Example
    -------
    >>> calls = []
    >>> first = memoized(("doc", 1), lambda: calls.append(1) or np.ones(2))
    >>> again = memoized(("doc", 1), lambda: calls.append(1) or np.ones(2))
    >>> len(calls), again.tolist()
    (1, [1.0, 1.0])
    """
    with _LOCK:
        if key in _MEMO:
            _MEMO.move_to_end(key)
            return _MEMO[key].copy()
    value = compute()
    if isinstance(value, np.ndarray) and value.nbytes <= MAX_BYTES:
        with _LOCK:
            _MEMO[key] = value.copy()
            while sum(v.nbytes for v in _MEMO.values()) > MAX_TOTAL_BYTES:
                _MEMO.popitem(last=False)
    return value


def clear() -> None:
    """Forget every kept result.

    Example
    -------
    >>> clear()
    """
    with _LOCK:
        _MEMO.clear()
