"""Build hook: ship the benchmark and data-manifest TOML files inside the package.

They live at the repository root (``benchmarks/``, ``data_manifests/``; DESIGN.md's layout) and are found
there in a source checkout or an editable install. A built wheel has no repository root, so the build copies
them to ``neurofit/benchmarks/`` and ``neurofit/manifests/``, the package folders that
``neurofit.scoring.benchmark.benchmark_dirs`` and ``neurofit.data.manifest.manifest_dirs`` search.
All other settings are in pyproject.toml.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = {"benchmarks": "benchmarks", "data_manifests": "manifests"}


class BuildWithDataFiles(build_py):
    def run(self) -> None:
        super().run()
        for source, target in SHIPPED.items():
            files = sorted((ROOT / source).glob("*.toml"))
            if not files:
                continue
            dest = Path(self.build_lib) / "neurofit" / target
            dest.mkdir(parents=True, exist_ok=True)
            for path in files:
                self.copy_file(str(path), str(dest / path.name))


setup(cmdclass={"build_py": BuildWithDataFiles})
