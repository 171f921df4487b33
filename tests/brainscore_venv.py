"""The second virtualenv in which Brain-Score 2.4.2 lives: built from a pinned recipe, cached only when verified.

Brain-Score pins an old xarray (``brainscore-core`` needs ``xarray<2022.6``), so it cannot share neurofit's
environment. Tests that compare with Brain-Score's own code run that code in this environment, as a
subprocess, on files both sides read.

The recipe is ``brainscore_env/requirements.txt``: issue 19's recipe resolved once and pinned to exact
versions, installed with ``--no-deps`` (torch first, so that pip takes the CPU wheel), so a build installs
exactly the listed packages and resolves nothing.

Cache. A build takes 2 to 6 minutes on the CI machine (pip unpacking torch, scipy and pandas), more than the
test that needs it, so a finished build is kept. CI runs on a clean clone, so nothing inside the repository
survives between runs: the cache lives in ``$NEUROFIT_BRAINSCORE_ENV_CACHE``, else
``$XDG_CACHE_HOME/neurofit`` (default ``~/.cache/neurofit``), beside pip's own cache, in a folder named by
the sha256 of the recipe file, this builder's version, the Python version and the platform. A cached build is
reused only after every file in it has been checked against the sha256 manifest its build wrote as its last
step (so an interrupted build, a missing, changed or extra file means a fresh build, never a silent reuse),
and it is only ever run with ``-B`` so that running it writes no bytecode into it. Builds and checks hold a
file lock, so two test runs never build into the same folder at once. Older builds (other keys) are removed
when a new one is made, once unused for a day. The manifest guards against corruption and partial builds; it
sits in the same folder, so the cache is exactly as trusted as the user's home directory (where pip's cache
already is).
``NEUROFIT_BRAINSCORE_ENV_CACHE=off`` builds into a temporary folder removed at the end of the session.

Run ``python tests/brainscore_venv.py`` to build (or check) the environment and print its python.
"""

from __future__ import annotations

import atexit
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

RECIPE = Path(__file__).parent / "brainscore_env" / "requirements.txt"
BUILDER_VERSION = "1"
MANIFEST = "neurofit-manifest.json"
# environment of every run inside the Brain-Score environment: no bytecode written into the cache, no
# plugin requirements installed by Brain-Score at import, no result caching under ~/.result_caching, no progress
# bars, one BLAS thread (CI has 2 cores)
RUN_ENV = {"BS_INSTALL_DEPENDENCIES": "no", "TQDM_DISABLE": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "RESULTCACHING_DISABLE": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def pinned() -> dict[str, str]:
    """The recipe as ``{normalised name: version}``."""
    out = {}
    for line in RECIPE.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            out[_normalise(name)] = version.strip()
    return out


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-").replace(".", "-")


def cache_key() -> str:
    h = hashlib.sha256()
    for part in (RECIPE.read_bytes(), BUILDER_VERSION.encode(), sys.version.encode(),
                 sysconfig.get_platform().encode(), os.path.realpath(sys._base_executable).encode()):
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:20]


def cache_root() -> Path | None:
    setting = os.environ.get("NEUROFIT_BRAINSCORE_ENV_CACHE", "")
    if setting.lower() == "off":
        return None
    if setting:
        return Path(setting).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "neurofit"


def _tree(root: Path) -> dict[str, list]:
    """Every entry under ``root`` (but the manifest): files with size and sha256, symlinks with their target."""
    out: dict[str, list] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if rel == MANIFEST:
                continue
            if os.path.islink(path):
                out[rel] = ["link", os.readlink(path)]
            else:
                with open(path, "rb") as handle:
                    out[rel] = [os.path.getsize(path), hashlib.file_digest(handle, "sha256").hexdigest()]
    return out


def _verified(env: Path, key: str) -> bool:
    manifest = env / MANIFEST
    if not manifest.is_file():
        return False
    try:
        recorded = json.loads(manifest.read_text())
    except ValueError:
        return False
    return recorded.get("key") == key and recorded.get("files") == _tree(env)


def _pip(env: Path, *args: str) -> None:
    # neurofit's own (current) pip installs into the target interpreter: no pip inside the cache to upgrade
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env / "bin" / "python"), "install", "--quiet",
                    "--disable-pip-version-check", "--no-deps", *args], check=True)


def _build(env: Path, key: str) -> None:
    if env.exists():
        shutil.rmtree(env)
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env)], check=True)
    versions = pinned()
    _pip(env, f"torch=={versions.pop('torch')}")
    _pip(env, *[f"{name}=={version}" for name, version in versions.items()])
    check = ("import json, importlib.metadata as m, brainscore_vision, brainscore_core, torch, safetensors, xarray; "
             "print(json.dumps({d.metadata['Name']: d.version for d in m.distributions()}))")
    result = subprocess.run([str(env / "bin" / "python"), "-I", "-B", "-c", check], check=True, capture_output=True,
                            text=True, env={**os.environ, **RUN_ENV}, cwd=env)
    installed = {_normalise(k): v.split("+")[0] for k, v in json.loads(result.stdout.splitlines()[-1]).items()}
    if installed != pinned():
        raise RuntimeError(f"the Brain-Score environment holds {installed}, not the recipe {pinned()}")
    (env / MANIFEST).write_text(json.dumps({"key": key, "files": _tree(env)}))


_VERIFIED: dict[str, Path] = {}


def brainscore_python() -> Path:
    """The python of a verified Brain-Score environment, built (or rebuilt) when needed (checked once a process).

    Example
    -------
    >>> python = brainscore_python()  # doctest: +SKIP
    """
    key = cache_key()
    if key in _VERIFIED:
        return _VERIFIED[key]
    _VERIFIED[key] = _checked_python(key)
    return _VERIFIED[key]


def _checked_python(key: str) -> Path:
    root = cache_root()
    if root is None:
        env = Path(tempfile.mkdtemp(prefix="neurofit-brainscore-env-"))
        atexit.register(shutil.rmtree, env, ignore_errors=True)
        _build(env, key)
        return env / "bin" / "python"
    root.mkdir(parents=True, exist_ok=True)
    env = root / f"brainscore-env-{key}"
    with open(root / "brainscore-env.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _verified(env, key):
            _build(env, key)
            for old in root.glob("brainscore-env-*"):
                # builds of other recipes, unused for a day (a day's grace for a concurrent run of another branch)
                if old.is_dir() and old != env and time.time() - old.stat().st_mtime > 86400:
                    shutil.rmtree(old, ignore_errors=True)
    return env / "bin" / "python"


def run_in_brainscore(args: list[str], *, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -I -B ARGS`` in the Brain-Score environment; raise with its stderr if it fails.

    Isolated mode (``-I``): neither the working directory nor the script's folder nor user site-packages join
    its ``sys.path``, so nothing of neurofit's environment leaks in; ``-B``: nothing is written into the cache.
    """
    python = brainscore_python()
    kwargs.setdefault("cwd", tempfile.gettempdir())
    result = subprocess.run([str(python), "-I", "-B", *args], capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **RUN_ENV}, **kwargs)
    if result.returncode:
        raise RuntimeError(f"{' '.join(args)} failed in the Brain-Score environment:\n{result.stderr[-6000:]}")
    return result


if __name__ == "__main__":
    start = time.perf_counter()
    print(brainscore_python(), f"({time.perf_counter() - start:.0f} s)")
