"""Atomic file writes: write to a temporary file beside the target, then rename onto it.

A crash mid-write leaves the previous file (or nothing) in place, never a half-written one. The temporary
file is hidden (``.<name>.nf-<host>-<pid>.<random>.tmp``); one left behind by a killed process (``kill -9``) is
removed by the next write into the same directory, once its process is known to be gone (same host, pid
no longer running) or after :data:`STALE_TMP_SECONDS` (another host, or a name without a pid). A finished
file gets the permissions a plain ``open()`` would give it under the user's umask, whatever the writer did.
A write that fails because the disk (or quota) is full raises :class:`~neurofit.errors.DiskFullError`,
which says so, whether the writer reported ``ENOSPC`` or, like netCDF/HDF5, only a ``RuntimeError``.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from neurofit.errors import DiskFullError, NeurofitError

#: a temporary file whose owner cannot be checked is stale after this long (1 day)
STALE_TMP_SECONDS = 24 * 3600
#: a failed write is blamed on a full disk when less than this is left free beside the target
DISK_FULL_FREE_BYTES = 16 * 2**20

_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:40] or "host"
# ours: .<name>.nf-<host>-<pid>.<random>.tmp; older neurofit versions wrote .<name>.<8 random>.tmp
_TMP_PATTERN = re.compile(r"^\..+?\.(?:nf-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)\.[a-z0-9_]+|[a-z0-9_]{8})\.tmp$")
_swept: set[str] = set()


def current_umask() -> int:
    """The process's umask (``os.umask`` can only be read by setting it; it is restored at once).

    Example
    -------
    >>> 0 <= current_umask() <= 0o777
    True
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def remove_stale_temporaries(directory: str | os.PathLike[str], now: float | None = None) -> list[Path]:
    """Remove the hidden temporary files of :func:`atomic_path` whose writer is gone; return what was removed.

    A file is stale when it names this host and a pid that no longer runs, or when it is older than
    :data:`STALE_TMP_SECONDS` (written on another host, or by an older neurofit that did not record a pid).
    Files of live writers are never touched.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / f".x.nc.nf-{_HOST}-999999999.abc123.tmp").write_text("half")
    >>> [p.name.startswith(".x.nc.") for p in remove_stale_temporaries(d)]
    [True]
    """
    now = time.time() if now is None else now
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_PATTERN.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        pid = match.group("pid")
        dead = pid is not None and match.group("host") == _HOST and int(pid) != os.getpid() and not _pid_alive(int(pid))
        if dead or age > STALE_TMP_SECONDS:
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


def check_writable_target(path: str | os.PathLike[str]) -> Path:
    """Refuse, before any work is done, a target that cannot become a file (a directory, below a file, unwritable).

    Example
    -------
    >>> import tempfile
    >>> check_writable_target(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: cannot write .../...: it is a directory; name a file in it instead
    """
    target = Path(path)
    if target.is_dir():
        raise NeurofitError(f"cannot write {target}: it is a directory; name a file in it instead")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NeurofitError(f"cannot write {target}: {parent} is a file, not a directory")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise NeurofitError(f"cannot write {target}: the directory {parent} is not writable")
            break
    return target


def disk_full_error(path: str | os.PathLike[str], err: BaseException) -> DiskFullError | None:
    """A :class:`DiskFullError` for ``err`` if it means the disk or quota beside ``path`` is full, else ``None``.

    ``ENOSPC``/``EDQUOT`` always count; any other ``OSError`` or ``RuntimeError`` (netCDF reports a full
    disk as ``RuntimeError('NetCDF: HDF error')``) counts when less than :data:`DISK_FULL_FREE_BYTES` are free.

    Example
    -------
    >>> import errno
    >>> disk_full_error("/tmp/x.nc", OSError(errno.ENOSPC, "No space left on device")) is not None
    True
    >>> disk_full_error("/tmp/x.nc", KeyError("x")) is None
    True
    """
    target = Path(path)
    if isinstance(err, NeurofitError):
        return None  # already a user-facing error (a nested write may have reported the full disk)
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"no space left on the device for {target} ({err}); free some space and rerun")
    if not isinstance(err, (OSError, RuntimeError)):
        return None
    directory = next((p for p in (target.parent, *target.parents) if p.exists()), None)
    if directory is None:
        return None
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return None
    if free >= DISK_FULL_FREE_BYTES:
        return None
    return DiskFullError(f"no space left on the device for {target}: writing it failed ({err}) with "
                         f"{free / 2**20:.1f} MiB free in {directory}; free some space and rerun")


def _raise_disk_full(target: Path, err: BaseException) -> None:
    full = disk_full_error(target, err)
    if full is not None:
        raise full from err


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in ``path``'s directory; on success rename it onto ``path``.

    On any exception the temporary file is removed and ``path`` is left untouched; a full disk is reported
    as :class:`~neurofit.errors.DiskFullError`. Parent directories are created. The first write into a
    directory in a process also removes stale temporaries there (:func:`remove_stale_temporaries`).

    Example
    -------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "out.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    target = check_writable_target(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _raise_disk_full(target, err)
        raise NeurofitError(f"cannot write {target}: {err.strerror or err}") from err
    directory = str(target.parent.resolve())
    if directory not in _swept:
        _swept.add(directory)
        remove_stale_temporaries(directory)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.nf-{_HOST}-{os.getpid()}.", suffix=".tmp",
                                        dir=target.parent)
    except OSError as err:
        _raise_disk_full(target, err)
        raise NeurofitError(f"cannot write {target}: {err.strerror or err}") from err
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp (and writers that replace the file, such as safetensors) leave 0600; give the result the
        # permissions a plain open() would, so shared caches and outputs stay readable
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except BaseException as err:
        # judge a full disk before the partial file is removed and frees its space
        full = disk_full_error(target, err) if isinstance(err, Exception) else None
        tmp.unlink(missing_ok=True)
        if full is not None:
            raise full from err
        raise
