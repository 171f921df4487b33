"""Public names of a package imported on first use: the one ``__getattr__``/``__dir__`` of every package.

A package lists ``name -> "module"`` (the attribute of that name) or ``name -> "module:attribute"`` and
asks :func:`lazy_exports` for its ``__getattr__`` and ``__dir__`` (PEP 562), so that importing the package (for
the command line's ``--help``, say) imports neither torch, xarray nor matplotlib until a name is used.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, public: Mapping[str, str], *, keep: bool = False
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose ``public`` names resolve on first access.

    ``keep`` stores a resolved name in the package, so that later accesses skip ``__getattr__``.

    Example
    -------
    >>> getattr_, dir_ = lazy_exports("neurofit", {"dumps": "json", "root": "math:sqrt"})
    >>> getattr_("dumps")([1]), getattr_("root")(9.0), "dumps" in dir_()
    ('[1]', 3.0, True)
    >>> getattr_("missing")
    Traceback (most recent call last):
    ...
    AttributeError: module 'neurofit' has no attribute 'missing'
    """
    def __getattr__(name: str) -> Any:
        target = public.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = target.partition(":")
        value = getattr(importlib.import_module(module), attribute or name)
        if keep:
            setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return __getattr__, __dir__
