"""Exceptions for user mistakes, and the one place where an expected numerical warning is silenced.

A :class:`NeurofitError` is a problem with the user's input (a missing file, a schema violation, an
unknown name). The CLI prints its message as one line and exits non-zero, without a traceback; library
users catch it like any other exception. Programming errors stay ordinary exceptions.

:func:`quiet_nan` is the single helper that silences numpy's all-NaN / empty-slice / invalid-value warnings
and :class:`ConstantInputWarning` where a NaN cell is the documented result (a site without a ceiling, a bin
no step maps to, a constant site's correlation); nothing else in neurofit calls
``warnings.simplefilter("ignore")`` for them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager


class NeurofitError(Exception):
    """A user-facing error whose message names the thing at fault and, where possible, the fix.

    Example
    -------
    >>> try:
    ...     raise NeurofitError("stimulus_id 'img_0042' is in the recording but not in the stimulus set")
    ... except NeurofitError as err:
    ...     print(err)
    stimulus_id 'img_0042' is in the recording but not in the stimulus set
    """


class ValidationError(NeurofitError, ValueError):
    """A recording, stimulus set, benchmark or manifest breaks the data contract."""


class ChecksumError(NeurofitError):
    """A file's sha256 does not match the one its manifest declares."""


class DiskFullError(NeurofitError, OSError):
    """A write failed because the disk (or the user's quota) is full; finished files are kept."""


class ConstantInputWarning(UserWarning):
    """A column was constant, so its correlation is undefined (returned as NaN)."""


def did_you_mean(name: str, valid: list[str] | tuple[str, ...] | set[str] | dict) -> str:
    """``" (did you mean 'x'?)"`` for the valid name closest to a misspelt ``name``, else ``""``.

    Example
    -------
    >>> did_you_mean("cornet_zz", ["cornet_z", "cornet_rt", "bl"])
    " (did you mean 'cornet_z'?)"
    >>> did_you_mean("xyz", ["cornet_z"])
    ''
    """
    import difflib

    close = difflib.get_close_matches(str(name), [str(v) for v in valid], n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@contextmanager
def quiet_nan() -> Iterator[None]:
    """Silence numpy's all-NaN, empty-slice and invalid-value warnings and :class:`ConstantInputWarning`: a cell
    without data, or a constant site's correlation, is NaN by contract.

    Example
    -------
    >>> import numpy as np
    >>> with quiet_nan():
    ...     float(np.nanmedian(np.array([np.nan, np.nan])))
    nan
    """
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", ConstantInputWarning)
        with np.errstate(all="ignore"):
            yield
