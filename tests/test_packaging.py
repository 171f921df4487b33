"""A built wheel (``pip install .``, not editable) carries the benchmarks, manifests and checkpoints and runs.

The wheel is built from this checkout and installed with ``--no-deps`` into a fresh virtualenv whose
dependencies come from the running environment (a ``.pth`` file naming its site-packages, whose own ``.pth``
files, such as an editable install's finder, are not processed), so the test checks what the wheel itself
ships and its ``neurofit`` entry point, in about a minute instead of reinstalling torch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, timeout=600, capture_output=True)
    return next(out.glob("neurofit-*.whl"))


@pytest.mark.slow
def test_the_wheel_ships_every_benchmark_manifest_and_checkpoint(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, target in (("benchmarks", "neurofit/benchmarks"), ("data_manifests", "neurofit/manifests")):
        for path in (ROOT / folder).glob("*.toml"):
            assert f"{target}/{path.name}" in names, path.name
    for path in (ROOT / "neurofit" / "checkpoints").glob("*.safetensors"):
        assert f"neurofit/checkpoints/{path.name}" in names


@pytest.mark.slow
def test_an_installed_wheel_lists_benchmarks_and_scores(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "_neurofit_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if k not in ("NEUROFIT_BENCHMARKS", "NEUROFIT_MANIFESTS")}
    env["NEUROFIT_HOME"] = str(tmp_path / "home")
    run = dict(cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    where = subprocess.run([str(python), "-c", "import neurofit; print(neurofit.__file__)"], check=True, **run)
    assert where.stdout.strip().startswith(site), "the test must exercise the installed wheel, not the checkout"
    listing = subprocess.run([str(venv / "bin" / "neurofit"), "benchmarks", "list"], check=True, **run)
    assert "synthetic-ventral-it-temporal" in listing.stdout and "cowley2023-v4-210325" in listing.stdout
    data = subprocess.run([str(venv / "bin" / "neurofit"), "data", "list"], check=True, **run)
    assert "cowley2023-v4-210325" in data.stdout
    small = tmp_path / "small.toml"
    small.write_text((ROOT / "benchmarks" / "synthetic-ventral-it-temporal.toml").read_text()
                     .replace('id = "synthetic-ventral-it-temporal"', 'id = "small"')
                     .replace('size = "default"', 'size = "small", n_v4 = 6, n_it = 6, repetitions = 6')
                     .replace("n_bootstrap = 1000", "n_bootstrap = 20")
                     .replace("offsets_ms = [0, 30, 60, 90]", "offsets_ms = [0]"))
    scored = subprocess.run([str(venv / "bin" / "neurofit"), "score", "--model", "cornet_z", "--benchmark", str(small),
                             "--quiet", "--out", str(tmp_path / "z.nc")], **run)
    assert scored.returncode == 0, scored.stderr
    assert (tmp_path / "z.nc").exists() and "metric: PLS-25" in scored.stdout
