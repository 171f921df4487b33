"""Loaders that turn a dataset's verified files into the Recording contract.

A loader is ``loader(paths, manifest, **options) -> (recording, stimulus_set or None)`` where ``paths``
maps each manifest file's relative path to a verified local path (see
:func:`neurofit.data.fetch.fetch_dataset`). Manifests name their loader by the keys of :data:`LOADERS`;
the name ``files`` marks a dataset that is only files (model weights), with no recording.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from neurofit.errors import NeurofitError

# loader name -> "module:function"; imported on first use so that listing datasets stays cheap.
LOADERS: dict[str, str] = {
    "cowley2023": "neurofit.data.loaders.cowley2023:load_cowley2023",
    "zhang_desimone": "neurofit.data.loaders.zhang_desimone:load_zhang_desimone",
    "brainio": "neurofit.data.loaders.brainio:load_brainio",
    "nwb": "neurofit.data.loaders.nwb:load_nwb",
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


def check_options(
    options: Mapping[str, Any], converter: Callable[..., Any], manifest: Any, reserved: Iterable[str] = ()
) -> None:
    """Reject loader options that ``converter`` does not take, naming the valid ones.

    ``reserved`` are keywords the loader fills itself (from the manifest), so users cannot pass them.

    Example
    -------
    >>> def convert(path, *, bin_ms=10.0): ...
    >>> check_options({"bin_ms": 5}, convert, None)
    >>> check_options({"bins": 5}, convert, None)
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: unknown loader option 'bins'; valid options: bin_ms
    """
    params = inspect.signature(converter).parameters
    valid = sorted(
        name for name, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY and name not in reserved
    )
    where = f" for dataset '{manifest.id}' ({manifest.source})" if manifest is not None else ""
    for name in options:
        if name not in valid:
            raise NeurofitError(f"unknown loader option {name!r}{where}; valid options: {', '.join(valid)}")
