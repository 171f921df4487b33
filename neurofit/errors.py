"""Exceptions for user mistakes.

A :class:`NeurofitError` is a problem with the user's input (a missing file, a schema violation, an
unknown name). The CLI prints its message as one line and exits non-zero, without a traceback; library
users catch it like any other exception. Programming errors stay ordinary exceptions.
"""

from __future__ import annotations


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
