"""Dataset manifests: one TOML file per dataset naming its files, URLs, sha256, sizes, licence and loader.

A manifest is configuration, so it is data: parsed with :mod:`tomllib`, validated field by field, never
executed. Every error names the manifest file and the key at fault.

Where manifests are found
-------------------------
1. ``NEUROFIT_MANIFESTS`` (a colon-separated list of directories), when set: only those.
2. Otherwise ``data_manifests/`` at the repository root (found as ``Path(neurofit.__file__).parents[1]``,
   which holds for a source checkout and an editable install), then ``neurofit/manifests/`` inside the
   installed package (package data, for wheel installs).

Format
------
.. code-block:: toml

    id = "cowley2023-v4-210325"
    description = "..."
    citation = "..."
    license = "GPL-3.0"

    [loader]
    name = "cowley2023"          # a key of neurofit.data.loaders.LOADERS, or "files" (no recording)
    [loader.options]             # keyword arguments for the loader (optional)
    session = "210325"

    [[files]]
    path = "cowley2023_v4/images/images_210325.zip"   # relative, also the mirror and cache layout
    url = "https://raw.githubusercontent.com/..."
    sha256 = "992774eca3..."
    size = 1841475
"""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import neurofit
from neurofit.errors import NeurofitError, ValidationError

_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = {"id", "description", "citation", "license", "loader", "files"}
_FILE_KEYS = {"path", "url", "sha256", "size"}


@dataclass(frozen=True)
class ManifestFile:
    """One file of a dataset: where it lives relative to a mirror/cache root, where to download it, and
    the sha256 and size that identify the one version the manifest pins."""

    path: str
    url: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A validated dataset manifest (see the module docstring for the TOML format)."""

    id: str
    description: str
    citation: str
    license: str
    loader: str
    loader_options: dict[str, Any]
    files: tuple[ManifestFile, ...]
    source: Path = field(compare=False)

    @property
    def sha256(self) -> str:
        """One hash for the dataset version: sha256 of the sorted ``"<path> <sha256>"`` lines of its files.

        Example
        -------
        >>> len(get_manifest("cifar10-resnet20").sha256)
        64
        """
        lines = "".join(f"{f.path} {f.sha256}\n" for f in sorted(self.files, key=lambda f: f.path))
        return hashlib.sha256(lines.encode()).hexdigest()

    @property
    def total_size(self) -> int:
        """Sum of the declared file sizes in bytes."""
        return sum(f.size for f in self.files)

    def file(self, relpath: str) -> ManifestFile:
        """The entry whose relative path is ``relpath``.

        Example
        -------
        >>> get_manifest("cifar10-resnet20").file("cifar10_resnet/resnet20-12fca82f.th").size
        1099231
        """
        for entry in self.files:
            if entry.path == relpath:
                return entry
        raise NeurofitError(f"dataset '{self.id}' has no file '{relpath}' (manifest {self.source})")


def manifest_dirs() -> list[Path]:
    """Directories searched for ``*.toml`` manifests, in order.

    Example
    -------
    >>> any(d.name == "data_manifests" for d in manifest_dirs())  # doctest: +SKIP
    True
    """
    override = os.environ.get("NEUROFIT_MANIFESTS")
    if override:
        return [Path(p) for p in override.split(os.pathsep) if p]
    package_dir = Path(neurofit.__file__).resolve().parent
    candidates = [package_dir.parent / "data_manifests", package_dir / "manifests"]
    return [d for d in candidates if d.is_dir()]


def _require(table: dict[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in table:
        raise ValidationError(f"{where}: missing key '{key}'")
    value = table[key]
    # bool is an int subclass; a size of `true` is a typo, not a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ValidationError(f"{where}: key '{key}' must be a {names}, got {type(value).__name__} {value!r}")
    return value


def _parse_file(entry: Any, index: int, source: Path) -> ManifestFile:
    where = f"{source}: files[{index}]"
    if not isinstance(entry, dict):
        raise ValidationError(f"{where}: each [[files]] entry must be a table")
    unknown = set(entry) - _FILE_KEYS
    if unknown:
        raise ValidationError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_FILE_KEYS)}")
    path = _require(entry, "path", str, where)
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise ValidationError(f"{where}: key 'path' must be a relative POSIX path without '..', got {path!r}")
    url = _require(entry, "url", str, where)
    if not url.startswith(("https://", "http://")):
        raise ValidationError(f"{where}: key 'url' must be an http(s) URL, got {url!r}")
    sha256 = _require(entry, "sha256", str, where).lower()
    if not _SHA256_PATTERN.match(sha256):
        raise ValidationError(f"{where}: key 'sha256' must be 64 hex digits, got {sha256!r}")
    size = _require(entry, "size", int, where)
    if size < 0:
        raise ValidationError(f"{where}: key 'size' must be >= 0 bytes, got {size}")
    return ManifestFile(path=path, url=url, sha256=sha256, size=size)


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate one manifest file.

    Parameters
    ----------
    path : path to a ``.toml`` manifest.

    Returns
    -------
    Manifest

    Raises
    ------
    ValidationError
        Naming the file and the key at fault (missing key, wrong type, malformed sha256, duplicate
        file path, unknown key).

    Example
    -------
    >>> m = load_manifest(list_manifests()["cifar10-resnet20"].source)
    >>> m.loader
    'files'
    """
    source = Path(path)
    try:
        with source.open("rb") as handle:
            table = tomllib.load(handle)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ValidationError(f"{source}: not valid TOML ({err})") from err
    except OSError as err:
        raise NeurofitError(f"cannot read manifest {source}: {err.strerror or err}") from err
    return parse_manifest(table, source)


def parse_manifest(table: Mapping[str, Any], source: str | os.PathLike[str] = "<dict>") -> Manifest:
    """Validate a manifest given as a parsed TOML mapping (``source`` names it in errors).

    Example
    -------
    >>> parse_manifest({"id": "x"}, "x.toml")
    Traceback (most recent call last):
    ...
    neurofit.errors.ValidationError: x.toml: missing key 'description'
    """
    source = Path(source)
    if not isinstance(table, Mapping):
        raise ValidationError(f"{source}: a manifest must be a table, got {type(table).__name__}")
    unknown = set(table) - _TOP_KEYS
    if unknown:
        raise ValidationError(f"{source}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    where = str(source)
    dataset_id = _require(table, "id", str, where)
    if not _ID_PATTERN.match(dataset_id):
        raise ValidationError(
            f"{source}: key 'id' must be lowercase letters, digits, '.', '_' or '-', got {dataset_id!r}"
        )
    description = _require(table, "description", str, where)
    citation = _require(table, "citation", str, where)
    licence = _require(table, "license", str, where)
    loader = _require(table, "loader", dict, where)
    loader_name = _require(loader, "name", str, f"{source}: [loader]")
    if not _ID_PATTERN.match(loader_name):
        raise ValidationError(f"{source}: [loader] key 'name' must be a loader name, got {loader_name!r}")
    options = loader.get("options", {})
    if not isinstance(options, dict):
        raise ValidationError(f"{source}: [loader.options] must be a table")
    extra = set(loader) - {"name", "options"}
    if extra:
        raise ValidationError(
            f"{source}: [loader] has unknown key(s) {sorted(extra)}; allowed: name, options"
        )
    entries = _require(table, "files", list, where)
    if not entries:
        raise ValidationError(f"{source}: key 'files' must list at least one [[files]] entry")
    files = tuple(_parse_file(entry, i, source) for i, entry in enumerate(entries))
    seen: set[str] = set()
    for entry in files:
        if entry.path in seen:
            raise ValidationError(f"{source}: file path '{entry.path}' is listed twice")
        seen.add(entry.path)
    return Manifest(
        id=dataset_id,
        description=description,
        citation=citation,
        license=licence,
        loader=loader_name,
        loader_options=dict(options),
        files=files,
        source=source,
    )


def list_manifests() -> dict[str, Manifest]:
    """All manifests found in :func:`manifest_dirs`, by dataset id (the first directory wins a tie).

    Raises
    ------
    ValidationError
        If any manifest is malformed, or two files in one directory declare the same id.

    Example
    -------
    >>> "cowley2023-v4-210325" in list_manifests()
    True
    """
    found: dict[str, Manifest] = {}
    for directory in manifest_dirs():
        here: dict[str, Manifest] = {}
        for path in sorted(directory.glob("*.toml")):
            manifest = load_manifest(path)
            if manifest.id in here:
                raise ValidationError(
                    f"{path}: id '{manifest.id}' is already declared by {here[manifest.id].source}"
                )
            here[manifest.id] = manifest
        for dataset_id, manifest in here.items():
            found.setdefault(dataset_id, manifest)
    return found


def get_manifest(dataset_id: str) -> Manifest:
    """The manifest of ``dataset_id``.

    Raises
    ------
    NeurofitError
        If no manifest declares that id; the message lists the valid ids.

    Example
    -------
    >>> get_manifest("cowley2023-v4-210325").loader
    'cowley2023'
    """
    manifests = list_manifests()
    if dataset_id not in manifests:
        valid = ", ".join(sorted(manifests)) or "(none found)"
        dirs = ", ".join(str(d) for d in manifest_dirs()) or "(no manifest directory found)"
        raise NeurofitError(
            f"unknown dataset '{dataset_id}'; valid ids: {valid} (manifests read from {dirs})"
        )
    return manifests[dataset_id]
