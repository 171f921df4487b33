"""Content-addressed on-disk cache of ActivationSets (NetCDF files named by the sha256 of their inputs).

The key hashes everything that can change the numbers: the weights' content, the architecture and its
config, the stimulus set's content hash (images, table, degrees, screen placement), the preprocessing
(image size, steps, onset/offset, normalisation, blank, autocast), the layers, the reduction spec (seed,
dimension, PCA fitting ids) and the neurofit version. Any changed input gives another key, so a stale
entry can never be returned.

Each entry carries the key it was made for (attr ``cache_key``) and a checksum of its content (attr
``content_sha256``, :func:`neurofit.data.io.content_sha256`), both verified on every read: a flipped byte,
a truncated file or an entry copied under another key's name is a logged miss, recomputed and rewritten,
never a different number. A failed write (full disk, read-only cache) is logged and ignored: the result
in memory is valid and the run goes on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from neurofit.extract.activations import ActivationSet, read_activations

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """``$NEUROFIT_HOME/activations`` (``NEUROFIT_HOME`` defaults to ``pooch.os_cache("neurofit")``).

    Example
    -------
    >>> default_cache_dir().name
    'activations'
    """
    from neurofit.data.fetch import cache_dir

    return cache_dir() / "activations"


def weights_sha256(model: nn.Module) -> str:
    """sha256 of a model's state (names, dtypes, shapes and bytes of every parameter and buffer).

    Two models with equal weights hash equally wherever they live (CPU or GPU) and whatever file they
    came from; changing one weight changes the hash.

    Example
    -------
    >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    >>> _ = b.load_state_dict(a.state_dict())
    >>> weights_sha256(a) == weights_sha256(b)
    True
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        # bfloat16 and friends have no numpy dtype: hash the raw bytes through a uint8 view
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cache_key(parts: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of ``parts`` (sorted keys).

    Example
    -------
    >>> cache_key({"a": 1, "b": [1, 2]}) == cache_key({"b": [1, 2], "a": 1})
    True
    """
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def cache_path(cache_dir: str | os.PathLike[str], key: str) -> Path:
    """Where the entry of ``key`` lives: ``<cache_dir>/<key[:2]>/<key>.nc``."""
    return Path(cache_dir) / key[:2] / f"{key}.nc"


def load_cached(cache_dir: str | os.PathLike[str], key: str) -> ActivationSet | None:
    """The cached ActivationSet of ``key``, or ``None`` on a miss (absent, unreadable or unverified entry).

    Example
    -------
    >>> import tempfile
    >>> load_cached(tempfile.mkdtemp(), "0" * 64) is None
    True
    """
    path = cache_path(cache_dir, key)
    if not path.exists():
        return None
    try:
        acts = read_activations(path, verify=True)
    except Exception as err:  # any unreadable or corrupt entry (truncated, flipped bytes, not NetCDF) is a miss
        log.warning("activation cache entry %s is unreadable or corrupt (%s); recomputing it", path, err)
        return None
    if acts.attrs.get("cache_key") != key:
        log.warning("activation cache entry %s was made for key %s, not for its file name's; recomputing it",
                    path, acts.attrs.get("cache_key"))
        return None
    return acts


def store(cache_dir: str | os.PathLike[str], key: str, acts: ActivationSet) -> Path | None:
    """Write ``acts`` under ``key`` atomically, with its checksum; a failed write is logged and ignored.

    The result is valid without its cache entry, so neither a full disk (which netCDF reports as a
    ``RuntimeError``) nor a read-only cache stops the run.
    """
    path = cache_path(cache_dir, key)
    if acts.attrs.get("cache_key") != key:
        raise ValueError(f"an ActivationSet made for key {acts.attrs.get('cache_key')} cannot be stored under {key}")
    try:
        return acts.to_netcdf(path, checksum=True)
    except (OSError, RuntimeError) as err:  # DiskFullError is an OSError
        log.warning("could not write activation cache entry %s (%s); the run goes on without it", path, err)
        return None
