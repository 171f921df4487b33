"""Work units and the runners that execute them, with finished units saved as they finish.

A scoring run is a list of :class:`WorkUnit` s: one cross-validation fold of one regression fit (one
region, one candidate layer/offset or grid cell, one fold). A runner maps a function over units and yields
their results; :class:`LocalRunner` does them in this process. A :class:`UnitStore` keeps each finished
unit's result as one small ``.npz`` file in a work directory keyed by the run's input hashes, written
atomically, so an interrupted run resumes where it stopped and never reads a half-written unit. Each file
carries the key it was made for (the run's and the unit's) and a sha256 of its content, both verified on
reading: a flipped byte, a file swapped with another unit's or copied from another run, or one without a
checksum is a logged miss, recomputed, never a different number. A dask runner only needs the same ``map``
method.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from neurofit.atomic import atomic_path

Result = dict[str, np.ndarray]
log = logging.getLogger(__name__)
KEY_FIELD = "__neurofit_unit_key__"
CHECKSUM_FIELD = "__neurofit_content_sha256__"


def result_sha256(key: str, result: Result) -> str:
    """sha256 of a unit's key and its arrays (names, dtypes, shapes and bytes, in name order).

    Example
    -------
    >>> a = result_sha256("k", {"x": np.arange(3.0)})
    >>> a == result_sha256("k", {"x": np.arange(3.0)}), a == result_sha256("k2", {"x": np.arange(3.0)})
    (True, False)
    """
    h = hashlib.sha256(key.encode())
    for name in sorted(result):
        value = np.ascontiguousarray(result[name])
        h.update(json.dumps([name, value.dtype.str, list(value.shape)]).encode())
        h.update(value.tobytes())
    return h.hexdigest()


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
    part : tuple of int, optional
        A piece of the fold's fit, ``(first bin, end bin, first site, end site)``: what a runner sends to a
        worker when it splits a unit (see :func:`split_unit`); ``None`` for the whole fold.
    """

    stage: str
    region: str
    candidate: Mapping[str, Any] = field(hash=False)
    fold: int
    part: tuple[int, int, int, int] | None = None

    @property
    def key(self) -> str:
        """A stable file-name-safe id of the unit."""
        fields = [self.stage, self.region, dict(self.candidate), self.fold]
        text = json.dumps(fields if self.part is None else [*fields, list(self.part)], sort_keys=True)
        return f"{self.stage}-{hashlib.sha256(text.encode()).hexdigest()[:20]}"

    def describe(self) -> str:
        cand = ", ".join(f"{k}={v}" for k, v in self.candidate.items())
        part = "" if self.part is None else " bins {}:{} sites {}:{}".format(*self.part)
        return f"{self.stage} {self.region} [{cand}] fold {self.fold}{part}"


def split_unit(unit: WorkUnit, parts: int, n_bins: int, n_sites: int, *, bins: bool = True, sites: bool = True
               ) -> list[WorkUnit]:
    """``unit`` cut into at most ``parts`` pieces: contiguous chunks of bins first, then of sites.

    ``bins`` / ``sites`` say whether the fit is separable along that axis (the pieces' results are then
    exactly those of the whole fit); a unit that cannot be cut is returned alone.

    Example
    -------
    >>> unit = WorkUnit("score", "IT", {"layer": "V4"}, 0)
    >>> [u.part for u in split_unit(unit, 4, n_bins=2, n_sites=10)]
    [(0, 1, 0, 5), (0, 1, 5, 10), (1, 2, 0, 5), (1, 2, 5, 10)]
    >>> [u.part for u in split_unit(unit, 4, n_bins=3, n_sites=10, sites=False)]
    [(0, 1, 0, 10), (1, 2, 0, 10), (2, 3, 0, 10)]
    >>> len(split_unit(unit, 6, n_bins=3, n_sites=1)), len(split_unit(unit, 4, n_bins=3, n_sites=10))
    (3, 4)
    """
    from neurofit.regression.parallel import split_range

    if n_bins < 1 or n_sites < 1:
        return [unit]
    # the most pieces within ``parts``, with as many bin chunks as possible among equals
    most_bins = min(parts, n_bins) if bins else 1
    grid = [(b * (min(parts // b, n_sites) if sites else 1), b) for b in range(1, most_bins + 1)]
    count, n_b = max(grid)
    n_s = count // n_b
    if count <= 1:
        return [unit]
    return [dataclasses.replace(unit, part=(b0, b1, s0, s1)) for b0, b1 in split_range(n_bins, n_b)
            for s0, s1 in split_range(n_sites, n_s)]


def merge_parts(parts: Sequence[tuple[WorkUnit, Result]], n_test: int, n_sites: int, n_bins: int,
                name: str = "prediction") -> Result:
    """The whole unit's ``{name: [n_test, n_sites, n_bins]}`` from its pieces' blocks (see :func:`split_unit`).

    Example
    -------
    >>> unit = WorkUnit("score", "IT", {}, 0)
    >>> pieces = [(u, {"prediction": np.full((1, u.part[3] - u.part[2], u.part[1] - u.part[0]), float(i))})
    ...           for i, u in enumerate(split_unit(unit, 2, n_bins=1, n_sites=3))]
    >>> merge_parts(pieces, 1, 3, 1)["prediction"][0, :, 0].tolist()
    [0.0, 0.0, 1.0]
    """
    out = np.full((n_test, n_sites, n_bins), np.nan)
    for unit, result in parts:
        b0, b1, s0, s1 = unit.part
        out[:, s0:s1, b0:b1] = result[name]
    return {name: out}


class UnitStore:
    """Finished work units on disk: ``<root>/<unit.key>.npz``, each written atomically and verified on reading.

    Each file holds the unit's arrays plus the key it was made for (the store's ``run_key``, by default the
    work directory's name, which :func:`neurofit.scoring.score.score` makes from the run's input hashes, and
    the unit's description) and a sha256 of key and arrays (:func:`result_sha256`). A file that cannot be
    read, whose checksum does not match (a flipped byte), that was made for another unit or run (files
    swapped or copied), or that has no checksum counts as not finished: it is logged and recomputed.

    Example
    -------
    >>> import tempfile
    >>> store = UnitStore(tempfile.mkdtemp())
    >>> unit = WorkUnit("score", "IT", {"layer": "IT"}, 0)
    >>> store.put(unit, {"prediction": np.ones(3)})
    >>> store.get(unit)["prediction"].tolist()
    [1.0, 1.0, 1.0]
    >>> store.get(WorkUnit("score", "IT", {"layer": "IT"}, 1)) is None
    True
    """

    def __init__(self, root: str | os.PathLike[str], run_key: str | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_key = self.root.name if run_key is None else str(run_key)

    def path(self, unit: WorkUnit) -> Path:
        return self.root / f"{unit.key}.npz"

    def unit_key(self, unit: WorkUnit) -> str:
        """What a unit's file must say it was made for: this run and this unit."""
        fields = [self.run_key, unit.stage, unit.region, dict(unit.candidate), unit.fold]
        return json.dumps(fields if unit.part is None else [*fields, list(unit.part)], sort_keys=True, default=str)

    def get(self, unit: WorkUnit) -> Result | None:
        path = self.path(unit)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                stored = {name: data[name] for name in data.files}
        except Exception as err:  # any unreadable file (a damaged zip, header or array) is a miss
            log.warning("work unit %s: cannot read %s (%s: %s); recomputing it", unit.describe(), path,
                        type(err).__name__, err)
            return None
        key = stored.pop(KEY_FIELD, None)
        checksum = stored.pop(CHECKSUM_FIELD, None)
        expected = self.unit_key(unit)
        if key is None or checksum is None:
            log.warning("work unit %s: %s has no key or checksum (an older or foreign file); recomputing it",
                        unit.describe(), path)
            return None
        if str(key) != expected:
            log.warning("work unit %s: %s was made for another unit or run (%s); recomputing it", unit.describe(),
                        path, str(key))
            return None
        if str(checksum) != result_sha256(expected, stored):
            log.warning("work unit %s: %s fails its content checksum (a damaged file); recomputing it",
                        unit.describe(), path)
            return None
        return stored

    def put(self, unit: WorkUnit, result: Result) -> None:
        bad = [name for name in result if name in (KEY_FIELD, CHECKSUM_FIELD)]
        if bad:
            raise ValueError(f"a work unit's result may not be named {bad[0]!r}")
        key = self.unit_key(unit)
        fields = {**result, KEY_FIELD: np.array(key), CHECKSUM_FIELD: np.array(result_sha256(key, result))}
        with atomic_path(self.path(unit)) as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **fields)

    def count(self) -> int:
        return len(list(self.root.glob("*.npz")))


class Runner(Protocol):
    def map(self, fn: Callable[[WorkUnit], Result], units: Iterable[WorkUnit], *, desc: str = "") -> Iterator[
            tuple[WorkUnit, Result]]: ...


class LocalRunner:
    """Run work units in this process, side by side on worker threads, skipping those already in ``store``.

    The units of one :meth:`map` call are computed when it is called, by ``workers`` threads that each run
    torch on one intra-op thread (:mod:`neurofit.regression.parallel`: torch releases the GIL inside its
    operations), and saved as each finishes; the results come back in the order of the units. A unit's
    result does not depend on which thread ran it or on how many ran at once (each runs on one thread, as a
    dask worker's unit does), so the numbers are those of a one-at-a-time run.

    Parameters
    ----------
    store : UnitStore, optional
        Where finished units are saved (and found on a rerun). ``None``: nothing is saved.
    progress : bool, optional
        Show a tqdm bar over the units (default: when stderr is a terminal).
    workers : int, optional
        Worker threads (default: torch's intra-op thread count, i.e. the cores, on a machine without a CUDA
        device; 1 with one, where the device runs one unit at a time anyway).

    Example
    -------
    >>> runner = LocalRunner(progress=False)
    >>> units = [WorkUnit("score", "IT", {"layer": "IT"}, f) for f in range(3)]
    >>> [float(r["x"]) for _, r in runner.map(lambda u: {"x": np.array(u.fold * 2.0)}, units)]
    [0.0, 2.0, 4.0]
    """

    def __init__(self, store: UnitStore | None = None, progress: bool | None = None,
                 workers: int | None = None) -> None:
        self.store = store
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        self.workers = workers
        self.computed = 0
        self.reused = 0

    def n_workers(self) -> int:
        """The worker threads a :meth:`map` uses."""
        if self.workers is not None:
            return max(1, int(self.workers))
        import torch

        return 1 if torch.cuda.is_available() else max(1, torch.get_num_threads())

    def map(self, fn: Callable[[WorkUnit], Result], units: Iterable[WorkUnit], *, desc: str = "") -> Iterator[
            tuple[WorkUnit, Result]]:
        """Compute every unit not already in the store (now, on the worker threads); iterate ``(unit, result)``
        in the order of ``units``."""
        from concurrent.futures import ThreadPoolExecutor

        from neurofit.regression.parallel import torch_threads

        units = list(units)
        results: list[Result | None] = [self.store.get(u) if self.store is not None else None for u in units]
        todo = [i for i, result in enumerate(results) if result is None]
        self.reused += len(units) - len(todo)
        with tqdm(total=len(units), initial=len(units) - len(todo), desc=desc or "fits", unit="fit",
                  disable=not self.progress) as bar:

            def run(i: int) -> Result:
                result = fn(units[i])
                if self.store is not None:
                    self.store.put(units[i], result)
                bar.update(1)
                return result

            n_workers = min(self.n_workers(), len(todo))
            if n_workers <= 1:
                for i in todo:
                    results[i] = run(i)
            else:
                # one intra-op thread per worker (torch's setting is process-wide): restored when all are done
                with torch_threads(1):
                    pool = ThreadPoolExecutor(max_workers=n_workers)
                    try:
                        for i, result in zip(todo, pool.map(run, todo)):
                            results[i] = result
                    finally:  # on an error or an interrupt the queued units are dropped, not run
                        pool.shutdown(wait=True, cancel_futures=True)
            self.computed += len(todo)
        return iter(list(zip(units, results)))
