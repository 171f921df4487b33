"""Loaders that turn a dataset's verified files into the Recording contract.

A loader is ``loader(paths, manifest, **options) -> (recording, stimulus_set or None)`` where ``paths``
maps each manifest file's relative path to a verified local path (see
:func:`neurofit.data.fetch.fetch_dataset`). Manifests name their loader by the keys of :data:`LOADERS`;
the name ``files`` marks a dataset that is only files (model weights), with no recording.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from neurofit.errors import NeurofitError

# loader name -> "module:function"; imported on first use so that listing datasets stays cheap.
LOADERS: dict[str, str] = {
    "cowley2023": "neurofit.data.loaders.cowley2023:load_cowley2023",
    "zhang_desimone": "neurofit.data.loaders.zhang_desimone:load_zhang_desimone",
    "brainio": "neurofit.data.loaders.brainio:load_brainio",
}

FILES_ONLY = "files"


def get_loader(name: str, manifest: Any = None) -> Callable[..., tuple[Any, Any]]:
    """The loader function registered under ``name``.

    Raises
    ------
    NeurofitError
        If ``name`` is ``files`` (the dataset holds no recording) or unknown (the valid names are listed).

    Example
    -------
    >>> get_loader("cowley2023").__name__
    'load_cowley2023'
    """
    where = f" (dataset '{manifest.id}', {manifest.source})" if manifest is not None else ""
    if name == FILES_ONLY:
        raise NeurofitError(
            f"dataset holds files only, no recording{where}; "
            "use neurofit.data.fetch.fetch_dataset to get them"
        )
    target = LOADERS.get(name)
    if target is None:
        raise NeurofitError(f"unknown loader '{name}'{where}; valid loaders: {', '.join(sorted(LOADERS))}")
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)
