"""Loaders that turn a dataset's verified files into the Recording contract.

A loader is ``loader(paths, manifest, **options) -> (recording, stimulus_set or None)`` where ``paths``
maps each manifest file's relative path to a verified local path (see
:func:`neurofit.data.fetch.fetch_dataset`). Manifests name their loader by the keys of :data:`LOADERS`;
the name ``files`` marks a dataset that is only files (model weights), with no recording.
"""

from __future__ import annotations

import collections.abc
import importlib
import inspect
import types
import typing
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
    check_option_types(options, converter, f"loader option{{}}{where}")


def check_option_types(options: Mapping[str, Any], func: Callable[..., Any], what: str = "option{}") -> None:
    """Reject option values whose type does not fit ``func``'s annotation (numbers, strings, lists, tables).

    Options come from files (manifests, benchmarks), so a wrong type must be a one-line error here rather than
    a traceback deep in a loader. ``what`` names the option in the message, ``{}`` standing for `` 'name'``.
    Annotations this check does not understand accept any value.

    Example
    -------
    >>> def convert(path, *, bin_ms: float = 10.0, units: str | None = None): ...
    >>> check_option_types({"bin_ms": 5, "units": None}, convert)
    >>> check_option_types({"bin_ms": "abc"}, convert)
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: option 'bin_ms' must be float, got 'abc'
    """
    try:
        hints = typing.get_type_hints(func)
    except Exception:  # unresolvable annotations: nothing to check against
        return
    for name, value in options.items():
        hint = hints.get(name)
        if hint is not None and not _fits(value, hint):
            raise NeurofitError(f"{what.format(f' {name!r}')} must be {_describe(hint)}, got {value!r}")


def _fits(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, typing.TypeVar):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is typing.Literal:
        return value in args
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        inner = args[0] if len(args) == 1 or (len(args) == 2 and args[1] is Ellipsis) else None
        return inner is None or all(_fits(v, inner) for v in value)
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, Mapping):
            return False
        return len(args) != 2 or all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if hint in (dict, collections.abc.Mapping):
        return isinstance(value, Mapping)
    if hint in (list, collections.abc.Sequence):
        return isinstance(value, (list, tuple))
    return True  # os.PathLike, callables, classes: not option values a file can hold


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if hint is type(None):
        return "None"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is not None:
        return {list: "a list", tuple: "a list", collections.abc.Sequence: "a list", dict: "a table",
                collections.abc.Mapping: "a table"}.get(origin, str(hint))
    return getattr(hint, "__name__", str(hint))
