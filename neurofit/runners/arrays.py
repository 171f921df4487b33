"""Array shipping for cluster runs: large arrays go to a shared directory once, tasks carry their paths.

A work function is a callable object (scoring's fold problem) whose large arrays (feature matrices,
responses) are written once, content-addressed, as ``.npy`` files under a directory every worker can read
(:class:`ArrayStore`); :func:`externalize` swaps them for :class:`StoredArray` references, so the task itself
is a few kB whatever the size of the benchmark, and :func:`internalize` on the worker memory-maps them back.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import socket
import types
from pathlib import Path
from typing import Any

import numpy as np

from neurofit.atomic import atomic_path
from neurofit.errors import NeurofitError

# Arrays at least this large go to the shared cache directory; smaller ones ride in the task.
MIN_STORED_BYTES = 4096


@dataclasses.dataclass(frozen=True)
class StoredArray:
    """A reference to an array saved as ``.npy`` on shared storage (what a task carries instead of the data)."""

    path: str
    shape: tuple[int, ...]
    dtype: str

    def load(self) -> np.ndarray:
        try:
            # copy-on-write: pages come from (and are shared through) the page cache, and the array is writable,
            # which torch.as_tensor expects of what it wraps
            return np.load(self.path, mmap_mode="c", allow_pickle=False)
        except FileNotFoundError:
            raise NeurofitError(
                f"worker on host {socket.gethostname()!r} cannot read {self.path}: cache_dir= must be a "
                "directory that every dask worker sees at the same path (a shared filesystem)") from None


class ArrayStore:
    """Content-addressed ``.npy`` files under ``<root>/arrays[/<run>]``, each written once, atomically.

    A runner uses its own ``run`` folder, so that removing its files when it ends can never pull a file from
    under another run that shares the cache directory.

    Example
    -------
    >>> import tempfile
    >>> store = ArrayStore(tempfile.mkdtemp())
    >>> ref = store.put(np.arange(5.0))
    >>> ref == store.put(np.arange(5.0)), ref.load().tolist()
    (True, [0.0, 1.0, 2.0, 3.0, 4.0])
    """

    def __init__(self, root: str | os.PathLike[str], run: str = "") -> None:
        self.root = Path(root) / "arrays" / run if run else Path(root) / "arrays"
        self.written: list[Path] = []

    def put(self, array: np.ndarray) -> StoredArray:
        array = np.ascontiguousarray(array)
        h = hashlib.sha256()
        h.update(f"{array.dtype.str}|{array.shape}".encode())
        h.update(memoryview(array.reshape(-1)).cast("B"))
        digest = h.hexdigest()
        path = self.root / digest[:2] / f"{digest}.npy"
        if not path.exists():
            with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                np.save(handle, array, allow_pickle=False)
            self.written.append(path)
        return StoredArray(str(path), tuple(array.shape), array.dtype.str)

    def remove_written(self) -> None:
        """Delete the files this store wrote (a run's intermediates), leaving other runs' files alone."""
        for path in self.written:
            path.unlink(missing_ok=True)
            for folder in (path.parent, self.root):
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    pass
        self.written.clear()


def _is_plain_object(obj: Any) -> bool:
    # functions, classes and modules are pickled by cloudpickle as they are (and then weighed)
    return hasattr(obj, "__dict__") and not isinstance(
        obj, (type, types.FunctionType, types.MethodType, types.ModuleType, types.BuiltinFunctionType))


def externalize(obj: Any, store: ArrayStore, min_bytes: int = MIN_STORED_BYTES, _memo: dict | None = None,
                _depth: int = 0) -> Any:
    """A copy of ``obj`` whose numpy arrays of ``min_bytes`` or more are :class:`StoredArray` references.

    Descends into lists, tuples, dicts and the attributes of plain objects (including frozen dataclasses);
    an array that appears several times is stored once. ``obj`` itself is not modified.

    Example
    -------
    >>> import tempfile
    >>> light = externalize({"x": np.zeros(10_000), "n": 3}, ArrayStore(tempfile.mkdtemp()))
    >>> type(light["x"]).__name__, light["n"]
    ('StoredArray', 3)
    """
    memo = {} if _memo is None else _memo
    if isinstance(obj, np.ndarray):
        if obj.nbytes < min_bytes or obj.dtype.hasobject:
            return obj
        if id(obj) not in memo:
            memo[id(obj)] = store.put(obj)
        return memo[id(obj)]
    if _depth > 4:
        return obj
    if isinstance(obj, (list, tuple)):
        items = [externalize(v, store, min_bytes, memo, _depth + 1) for v in obj]
        return type(obj)(items) if not hasattr(obj, "_fields") else type(obj)(*items)
    if isinstance(obj, dict):
        return {k: externalize(v, store, min_bytes, memo, _depth + 1) for k, v in obj.items()}
    if _is_plain_object(obj):
        state = vars(obj)
        new = {k: externalize(v, store, min_bytes, memo, _depth + 1) for k, v in state.items()}
        if all(new[k] is state[k] for k in state):
            return obj
        clone = copy.copy(obj)
        for k, v in new.items():
            object.__setattr__(clone, k, v)
        return clone
    return obj


def internalize(obj: Any, _depth: int = 0) -> Any:
    """The inverse of :func:`externalize`: :class:`StoredArray` references become memory-mapped arrays.

    Example
    -------
    >>> import tempfile
    >>> store = ArrayStore(tempfile.mkdtemp())
    >>> float(internalize([externalize(np.ones(4096), store)])[0].sum())
    4096.0
    """
    if isinstance(obj, StoredArray):
        return obj.load()
    if _depth > 4:
        return obj
    if isinstance(obj, (list, tuple)):
        items = [internalize(v, _depth + 1) for v in obj]
        return type(obj)(items) if not hasattr(obj, "_fields") else type(obj)(*items)
    if isinstance(obj, dict):
        return {k: internalize(v, _depth + 1) for k, v in obj.items()}
    if _is_plain_object(obj):
        state = vars(obj)
        new = {k: internalize(v, _depth + 1) for k, v in state.items()}
        if all(new[k] is state[k] for k in state):
            return obj
        clone = copy.copy(obj)
        for k, v in new.items():
            object.__setattr__(clone, k, v)
        return clone
    return obj
