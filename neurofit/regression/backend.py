"""Where and in what precision the regression engine computes: chosen once, not passed through every call.

As himalaya's ``set_backend``: a run picks its device and dtype once, with :func:`set_backend` (a context)
or an estimator's ``device=``/``dtype=`` parameters, and everything below asks :func:`get_backend`. The
defaults are CUDA when available, else CPU; float64 on CPU (reference precision, what sklearn is checked
against) and float32 on accelerators (speed).

Example
-------
>>> import torch
>>> with set_backend("cpu", torch.float32):
...     get_backend()
(device(type='cpu'), torch.float32)
>>> get_backend("cpu")
(device(type='cpu'), torch.float64)
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_BACKEND: contextvars.ContextVar[tuple[torch.device | None, torch.dtype | None]] = contextvars.ContextVar(
    "neurofit_regression_backend", default=(None, None))


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_dtype(device: torch.device) -> torch.dtype:
    """float64 on CPU (reference precision), float32 on accelerators (speed)."""
    return torch.float64 if device.type == "cpu" else torch.float32


@contextmanager
def set_backend(device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> Iterator[None]:
    """Compute on ``device`` in ``dtype`` inside the block (``None``: the default, or the enclosing choice).

    Example
    -------
    >>> with set_backend("cpu"):
    ...     get_backend()[0].type
    'cpu'
    """
    outer_device, outer_dtype = _BACKEND.get()
    token = _BACKEND.set((torch.device(device) if device is not None else outer_device,
                          dtype if dtype is not None else outer_dtype))
    try:
        yield
    finally:
        _BACKEND.reset(token)


def get_backend(device: str | torch.device | None = None,
                dtype: torch.dtype | None = None) -> tuple[torch.device, torch.dtype]:
    """The ``(device, dtype)`` to compute with: the arguments, else :func:`set_backend`'s, else the defaults.

    Example
    -------
    >>> get_backend("cpu", torch.float32)
    (device(type='cpu'), torch.float32)
    """
    chosen_device, chosen_dtype = _BACKEND.get()
    resolved = torch.device(device) if device is not None else (chosen_device or default_device())
    return resolved, dtype or chosen_dtype or default_dtype(resolved)
