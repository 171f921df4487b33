"""Work units and the runners that execute them, with finished units saved as they finish.

A scoring run is a list of :class:`WorkUnit` s: one cross-validation fold of one regression fit (one
region, one candidate layer/offset or grid cell, one fold). A runner maps a function over units and yields
their results; :class:`LocalRunner` does them in this process. A :class:`UnitStore` keeps each finished
unit's result as one small ``.npz`` file in a work directory keyed by the run's input hashes, written
atomically, so an interrupted run resumes where it stopped and never reads a half-written unit. A dask
runner only needs the same ``map`` method.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from neurofit.atomic import atomic_path

Result = dict[str, np.ndarray]


@dataclass(frozen=True)
class WorkUnit:
    """One fold of one regression fit.

    Attributes
    ----------
    stage : str
        ``"commit"`` (layer commitment on held-out stimuli), ``"score"`` or ``"grid"``.
    region : str
        The region whose sites are predicted (``"all"`` for grid units, which predict every site).
    candidate : dict
        What features are used: ``{"layer": ..., "offset_ms": ...}`` or ``{"layer": ..., "step": ...}``.
    fold : int
    """

    stage: str
    region: str
    candidate: Mapping[str, Any] = field(hash=False)
    fold: int

    @property
    def key(self) -> str:
        """A stable file-name-safe id of the unit."""
        text = json.dumps([self.stage, self.region, dict(self.candidate), self.fold], sort_keys=True)
        return f"{self.stage}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"

    def describe(self) -> str:
        cand = ", ".join(f"{k}={v}" for k, v in self.candidate.items())
        return f"{self.stage} {self.region} [{cand}] fold {self.fold}"


class UnitStore:
    """Finished work units on disk: ``<root>/<unit.key>.npz``, each written atomically.

    A file that cannot be read (a crash can leave none half-written, but a disk can fail) counts as not
    finished and is recomputed.

    Example
    -------
    >>> import tempfile
    >>> store = UnitStore(tempfile.mkdtemp())
    >>> unit = WorkUnit("score", "IT", {"layer": "IT"}, 0)
    >>> store.put(unit, {"prediction": np.ones(3)})
    >>> store.get(unit)["prediction"].tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, unit: WorkUnit) -> Path:
        return self.root / f"{unit.key}.npz"

    def get(self, unit: WorkUnit) -> Result | None:
        path = self.path(unit)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                return {name: data[name] for name in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return None

    def put(self, unit: WorkUnit, result: Result) -> None:
        with atomic_path(self.path(unit)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **result)

    def count(self) -> int:
        return len(list(self.root.glob("*.npz")))


class Runner(Protocol):
    def map(self, fn: Callable[[WorkUnit], Result], units: Iterable[WorkUnit], *, desc: str = "") -> Iterator[
            tuple[WorkUnit, Result]]: ...


class LocalRunner:
    """Run work units one after another in this process, skipping those already in ``store``.

    Parameters
    ----------
    store : UnitStore, optional
        Where finished units are saved (and found on a rerun). ``None``: nothing is saved.
    progress : bool, optional
        Show a tqdm bar over the units (default: when stderr is a terminal).

    Example
    -------
    >>> runner = LocalRunner(progress=False)
    >>> units = [WorkUnit("score", "IT", {"layer": "IT"}, f) for f in range(3)]
    >>> [float(r["x"]) for _, r in runner.map(lambda u: {"x": np.array(u.fold * 2.0)}, units)]
    [0.0, 2.0, 4.0]
    """

    def __init__(self, store: UnitStore | None = None, progress: bool | None = None) -> None:
        self.store = store
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        self.computed = 0
        self.reused = 0

    def map(self, fn: Callable[[WorkUnit], Result], units: Iterable[WorkUnit], *, desc: str = "") -> Iterator[
            tuple[WorkUnit, Result]]:
        units = list(units)
        with tqdm(total=len(units), desc=desc or "fits", unit="fit", disable=not self.progress) as bar:
            for unit in units:
                result = self.store.get(unit) if self.store is not None else None
                if result is None:
                    result = fn(unit)
                    if self.store is not None:
                        self.store.put(unit, result)
                    self.computed += 1
                else:
                    self.reused += 1
                bar.update(1)
                yield unit, result
