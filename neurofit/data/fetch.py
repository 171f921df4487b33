"""Fetch dataset files reproducibly: mirror first, then the cache, then the manifest's URL.

Lookup order for each file of a manifest (its ``path`` is relative, e.g.
``cowley2023_v4/images/images_210325.zip``):

1. each directory of ``NEUROFIT_DATA_PATH`` (colon-separated), as ``<mirror>/<path>``;
2. the cache ``NEUROFIT_HOME`` (default ``pooch.os_cache("neurofit")``), as ``<cache>/<path>``, so the
   cache has the mirror's layout and can itself serve as a mirror;
3. the URL, downloaded by :func:`pooch.retrieve` with the known hash. pooch writes to a temporary file
   and moves it into place only after the hash matched, so an interrupted or corrupt download never
   becomes a cache entry.

Every file is sha256-verified before it is used. A mismatch raises :class:`ChecksumError` naming the file
and both hashes; the bad file is not used and not deleted (a mirror may be read-only and shared). Hashes
are memoised per process (:func:`neurofit.hashing.file_sha256`), so loading a dataset twice does not re-hash
it. Downloads get the permissions a plain ``open()`` gives under the user's umask.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neurofit.atomic import current_umask
from neurofit.data.manifest import Manifest, ManifestFile, get_manifest, list_manifests
from neurofit.errors import ChecksumError, NeurofitError
from neurofit.hashing import file_sha256


def data_paths() -> list[Path]:
    """Mirror directories from ``NEUROFIT_DATA_PATH`` (colon-separated), in search order.

    Example
    -------
    >>> import os
    >>> os.environ["NEUROFIT_DATA_PATH"] = "/a:/b"
    >>> [str(p) for p in data_paths()]
    ['/a', '/b']
    >>> del os.environ["NEUROFIT_DATA_PATH"]
    """
    raw = os.environ.get("NEUROFIT_DATA_PATH", "")
    return [Path(p).expanduser() for p in raw.split(os.pathsep) if p]


def cache_dir() -> Path:
    """The download cache: ``NEUROFIT_HOME`` or the user cache directory for ``neurofit``.

    Example
    -------
    >>> cache_dir().name  # doctest: +SKIP
    'neurofit'
    """
    home = os.environ.get("NEUROFIT_HOME")
    if home:
        return Path(home).expanduser()
    import pooch

    return Path(pooch.os_cache("neurofit"))


def _check(path: Path, entry: ManifestFile, manifest: Manifest) -> None:
    actual = file_sha256(path)
    if actual != entry.sha256:
        raise ChecksumError(
            f"{path}: sha256 {actual} does not match {entry.sha256} declared for '{entry.path}' in "
            f"{manifest.source}; the file is corrupt or a different version. It was not used: replace it "
            "with the published file (or delete it from the cache and fetch again)."
        )


def _local_copy(entry: ManifestFile) -> Path | None:
    for root in [*data_paths(), cache_dir()]:
        candidate = root / entry.path
        if candidate.is_file():
            return candidate
    return None


def fetch_file(entry: ManifestFile, manifest: Manifest) -> Path:
    """Return a verified local path for one manifest file (mirror, cache, or download).

    Raises
    ------
    ChecksumError
        The first local copy found (or the download) has a different sha256.
    NeurofitError
        The file is in no mirror or cache and cannot be downloaded.

    Example
    -------
    >>> m = get_manifest("cifar10-resnet20")  # doctest: +SKIP
    >>> fetch_file(m.files[0], m).name  # doctest: +SKIP
    'resnet20-12fca82f.th'
    """
    local = _local_copy(entry)
    if local is not None:
        _check(local, entry, manifest)
        return local
    target = cache_dir() / entry.path
    import pooch

    try:
        downloaded = pooch.retrieve(
            entry.url,
            known_hash=f"sha256:{entry.sha256}",
            fname=target.name,
            path=target.parent,
            progressbar=False,
        )
    except ValueError as err:
        # pooch raises ValueError on a hash mismatch and has already removed the temporary download.
        raise ChecksumError(
            f"download of '{entry.path}' from {entry.url} does not match sha256 {entry.sha256} "
            f"declared in {manifest.source}: {err}"
        ) from err
    except Exception as err:  # network errors come from requests/urllib in many types
        mirrors = ", ".join(str(p) for p in data_paths()) or "unset"
        raise NeurofitError(
            f"cannot download '{entry.path}' of dataset '{manifest.id}' from {entry.url}: {err}. "
            f"Offline? Put the file under a mirror directory listed in NEUROFIT_DATA_PATH "
            f"(now: {mirrors}) as <mirror>/{entry.path}."
        ) from err
    # pooch moves its 0600 temporary file into place; a cache is shared like any file the user writes
    os.chmod(downloaded, 0o666 & ~current_umask())
    return Path(downloaded)


def fetch_dataset(dataset_id: str) -> dict[str, Path]:
    """Fetch and verify every file of a dataset; return ``{relative path: local path}``.

    No network access happens when a mirror (``NEUROFIT_DATA_PATH``) or the cache holds every file.

    Example
    -------
    >>> paths = fetch_dataset("cowley2023-v4-210325")  # doctest: +SKIP
    >>> sorted(paths)[0]  # doctest: +SKIP
    'cowley2023_v4/images/images_210325.zip'
    """
    manifest = get_manifest(dataset_id)
    return {entry.path: fetch_file(entry, manifest) for entry in manifest.files}


@dataclass(frozen=True)
class FileCheck:
    """The outcome of checking one file: ``status`` is ``ok``, ``mismatch`` or ``missing``."""

    path: str
    location: Path | None
    expected_sha256: str
    actual_sha256: str | None
    status: str


@dataclass(frozen=True)
class VerifyReport:
    """Per-file results of :func:`verify_dataset`; ``ok`` only if every file is present and matches."""

    dataset_id: str
    files: tuple[FileCheck, ...]

    @property
    def ok(self) -> bool:
        return all(f.status == "ok" for f in self.files)

    def summary(self) -> str:
        """A human-readable table, one line per file that is not ok plus a total line."""
        lines = []
        for check in self.files:
            if check.status == "mismatch":
                lines.append(
                    f"MISMATCH {check.path} at {check.location}: sha256 {check.actual_sha256}, "
                    f"expected {check.expected_sha256}"
                )
            elif check.status == "missing":
                lines.append(f"MISSING  {check.path}: in no mirror or cache (run `neurofit data fetch`)")
        n_ok = sum(c.status == "ok" for c in self.files)
        lines.append(f"{self.dataset_id}: {n_ok}/{len(self.files)} files verified")
        return "\n".join(lines)


def verify_dataset(dataset_id: str) -> VerifyReport:
    """Check the sha256 of every local copy (mirror or cache) of a dataset's files; download nothing.

    Example
    -------
    >>> report = verify_dataset("cowley2023-v4-210325")  # doctest: +SKIP
    >>> report.ok  # doctest: +SKIP
    True
    """
    manifest = get_manifest(dataset_id)
    checks = []
    for entry in manifest.files:
        local = _local_copy(entry)
        if local is None:
            checks.append(FileCheck(entry.path, None, entry.sha256, None, "missing"))
            continue
        actual = file_sha256(local)
        status = "ok" if actual == entry.sha256 else "mismatch"
        checks.append(FileCheck(entry.path, local, entry.sha256, actual, status))
    return VerifyReport(dataset_id, tuple(checks))


def list_datasets() -> list[dict[str, Any]]:
    """One row per known dataset: id, loader, number of files, total bytes, whether all are local.

    Example
    -------
    >>> [row["id"] for row in list_datasets()][:1]  # doctest: +SKIP
    ['cifar10-resnet20']
    """
    rows = []
    for dataset_id, manifest in sorted(list_manifests().items()):
        local = sum(_local_copy(entry) is not None for entry in manifest.files)
        rows.append(
            {
                "id": dataset_id,
                "loader": manifest.loader,
                "n_files": len(manifest.files),
                "size_bytes": manifest.total_size,
                "local_files": local,
                "license": manifest.license,
                "description": manifest.description,
            }
        )
    return rows


def load_dataset(dataset_id: str, **options: Any) -> tuple[Any, Any]:
    """Fetch, verify and load a dataset into the Recording contract.

    Parameters
    ----------
    dataset_id : a manifest id (see :func:`list_datasets`).
    **options : loader keyword arguments; they override the manifest's ``[loader.options]``.

    Returns
    -------
    (recording, stimulus_set or None)
        ``None`` when the images are not public (e.g. ``zhang-desimone-2011-it``).

    Example
    -------
    >>> rec, stimuli = load_dataset("cowley2023-v4-210325")  # doctest: +SKIP
    >>> rec.sizes  # doctest: +SKIP
    Frozen({'presentation': 5010, 'neuroid': 50, 'time_bin': 1})
    """
    from neurofit.data.loaders import check_options, get_loader

    manifest = get_manifest(dataset_id)
    loader: Callable[..., tuple[Any, Any]] = get_loader(manifest.loader, manifest)
    merged = {**manifest.loader_options, **options}
    # a typo in an option should fail before a download, not after
    check_options(merged, loader.converter, manifest, loader.reserved)  # type: ignore[attr-defined]
    paths = fetch_dataset(dataset_id)
    return loader(paths, manifest, **merged)
