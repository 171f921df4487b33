"""File hashes: sha256 of a file's bytes, streamed and memoised per process.

The memo is keyed on the file's identity and change times (resolved path, device, inode, size, mtime and
ctime): an edit that keeps the size and restores the mtime (``touch -r``, ``cp -p``, ``rsync -t``) still
changes the ctime, which no user call can set. A file changed less than :data:`RACY_SECONDS` before it was
hashed is not memoised, because a second edit within the filesystem's timestamp granularity (a few ms)
would leave every one of those fields unchanged.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

#: chunk size of every streamed read
CHUNK_BYTES = 1 << 20
#: files modified this recently before hashing are re-hashed every time (timestamps are coarse)
RACY_SECONDS = 2.0

_HASH_MEMO: dict[tuple[str, int, int, int, int, int], str] = {}


def file_sha256(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks, memoised per process (see the module docstring).

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.bin"
    >>> _ = p.write_bytes(b"abc")
    >>> file_sha256(p)
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
    """
    resolved = Path(path).resolve()
    stat = resolved.stat()
    key = (str(resolved), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    cached = _HASH_MEMO.get(key)
    if cached is not None:
        return cached
    started = time.time_ns()
    digest = hashlib.sha256()
    with resolved.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    value = digest.hexdigest()
    if max(stat.st_mtime_ns, stat.st_ctime_ns) < started - RACY_SECONDS * 1e9:
        _HASH_MEMO[key] = value
    return value
