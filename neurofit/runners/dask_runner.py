"""The dask runner: work units on a ``dask.distributed`` cluster, finished units saved as they finish.

:class:`DaskRunner` has the :class:`~neurofit.runners.local.LocalRunner` ``map`` interface. It either starts
a ``LocalCluster`` on this machine (``workers=N``: N single-threaded worker processes) or connects to a
running scheduler (``scheduler="tcp://HOST:PORT"``, with ``dask worker`` processes on other nodes).

What travels to the workers: a work function's large arrays are written once under ``cache_dir``, a
directory every worker can read (:mod:`neurofit.runners.arrays`); the task itself carries only their paths
and is a few kB, whatever the size of the benchmark. Workers memory-map the files. A function that would
still carry more than ``max_task_bytes`` after that is refused rather than pickled into every task.

Work split: a unit (one fold of one fit) can go out as several tasks, chunks of its bins and, for ridge, of
its sites (``parts=``; by default only when there are fewer units than workers); the client merges them into
the unit's result.

Fault tolerance: the client writes each unit's result to the :class:`~neurofit.runners.local.UnitStore`
(atomically) the moment it arrives, so finished units survive anything that happens later; a task lost with
a killed worker is rerun elsewhere (``retries``); a killed client is resumed by rerunning the same command,
which reads the saved units and submits only the missing ones.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from neurofit.errors import NeurofitError
from neurofit.runners.arrays import ArrayStore, externalize, internalize
from neurofit.runners.local import Result, UnitStore, WorkUnit

# A task that still weighs more than this after externalisation is refused: it would be pickled N times.
MAX_TASK_BYTES = 1_000_000
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_WORKER_WAIT_S = 60.0


async def _identity(address: str, timeout: float) -> Any:
    from distributed.comm import connect

    comm = await asyncio.wait_for(connect(address, timeout=timeout), timeout)
    try:
        await asyncio.wait_for(comm.write({"op": "identity", "reply": True}), timeout)
        return await asyncio.wait_for(comm.read(), timeout)
    finally:
        comm.abort()


def check_scheduler(address: str, timeout: float = DEFAULT_CONNECT_TIMEOUT_S) -> dict[str, Any]:
    """Ask ``address`` who it is, within ``timeout`` seconds; return the scheduler's identity or raise one line.

    ``distributed.Client`` bounds the TCP connection but not the handshake after it, so a server that
    accepts connections and never answers in dask's protocol (an HTTP server on the port) made it wait
    forever. The question runs on its own thread and event loop, so it works inside notebooks too.

    Example
    -------
    >>> check_scheduler("tcp://127.0.0.1:1", timeout=1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: ...dask scheduler... at 'tcp://127.0.0.1:1'...
    """
    import concurrent.futures

    pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="neurofit-scheduler-check")
    try:
        future = pool.submit(asyncio.run, asyncio.wait_for(_identity(address, timeout), timeout))
        identity = future.result(timeout + 5)
    except (TimeoutError, concurrent.futures.TimeoutError) as err:
        raise NeurofitError(
            f"no dask scheduler answered at {address!r} within {timeout:g} s: nothing answers there, or something "
            "else (an HTTP server?) listens on that port; start one with `dask scheduler` and check the address, "
            "the port and the firewall") from err
    except (OSError, ValueError) as err:
        raise NeurofitError(
            f"could not connect to the dask scheduler at {address!r} ({type(err).__name__}: {err}); start one "
            "with `dask scheduler` and check the address, the port and the firewall") from err
    except Exception as err:  # a peer speaking another protocol fails dask's decoding in many ways
        raise NeurofitError(f"{address!r} answered, but not as a dask scheduler ({type(err).__name__}: {err}); "
                            "check the address and the port") from err
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        kind = identity.get("type") if isinstance(identity, dict) else type(identity).__name__
        raise NeurofitError(f"{address!r} answered, but it is a {kind!r}, not a dask scheduler; give the "
                            "scheduler's address (`dask scheduler` prints it)")
    return identity


def run_unit(payload: Any, unit: WorkUnit, torch_threads: int | None) -> Result:
    """What a dask worker executes: load the function's arrays from shared storage and run one unit."""
    if torch_threads:
        import torch

        # one thread per worker process: a fixed reduction order (bit-identical to a one-thread local run)
        # and no oversubscription when several workers share a node's cores
        torch.set_num_threads(int(torch_threads))
    fn = internalize(payload)
    return {name: np.asarray(value) for name, value in fn(unit).items()}


def _payload_bytes(payload: Any, unit: WorkUnit) -> int:
    import cloudpickle

    return len(cloudpickle.dumps((run_unit, payload, unit)))


class DaskRunner:
    """Run work units on a dask.distributed cluster: a new ``LocalCluster`` or an existing scheduler.

    Parameters
    ----------
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:PORT``). An address that does not answer within
        ``connect_timeout`` seconds is a :class:`~neurofit.errors.NeurofitError`, as is a scheduler that
        has no worker after ``worker_wait`` seconds.
    workers : int, optional
        Without ``scheduler``: start a ``LocalCluster`` of this many single-threaded worker processes
        (default: the number of CPU cores). Its dashboard address is printed.
    cache_dir : path, optional
        Directory every worker can read, where the feature matrices and responses of the work functions are
        written (``<cache_dir>/arrays``). Required with ``scheduler``; with a LocalCluster it defaults to
        ``$NEUROFIT_HOME/dask``. The files a runner writes are removed when it is closed.
    store : UnitStore, optional
        Where finished units are saved (by the client, as they arrive) and found on a rerun.
    progress : bool, optional
        A tqdm bar of units done / total (default: when stderr is a terminal).
    retries : int
        How many times a task lost with its worker (or failed) is resubmitted.
    torch_threads : int, optional
        Torch threads in each task (default 1; ``None`` leaves the worker's setting).
    connect_timeout, worker_wait : float
        Seconds to wait for the scheduler to answer, and for it to have at least one worker.
    dashboard_address : str
        Where a LocalCluster serves its dashboard (``":0"``: any free port).
    max_task_bytes : int
        Refuse work functions whose pickled task would still be larger than this.
    parts : int, optional
        Split each unit into up to this many tasks where its work function can (its ``split`` method: chunks
        of bins in per_bin mode, and of sites for ridge, whose fits are those of the whole fold; PLS2 is joint
        over a region's sites), merged on the client into the unit's result, which is saved as one unit.
        Default: split only when a map has fewer units than the cluster has workers, into enough pieces to
        give every worker one. ``1``: never split. A piece's task holds only its bins' and sites' responses in
        memory (the files are memory-mapped), so a larger value also bounds each worker's memory on a large
        recording. Pieces agree with the whole unit to rounding (~1e-15: BLAS blocks a product by its shape).
    concurrent_runs : int
        How many models :func:`score_models` scores at once on this cluster, each in its own client process
        (default 1: one after another). One model keeps at most its number of folds busy; several at once
        fill a larger cluster.
    stream : file, optional
        Where the dashboard address is printed (default stderr).

    Example
    -------
    >>> from neurofit.scoring.score import score
    >>> with DaskRunner(workers=2) as runner:  # doctest: +SKIP
    ...     scores = score("cornet_rt", "synthetic-ventral-it-temporal", runner=runner)
    """

    def __init__(self, scheduler: str | None = None, *, workers: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, store: UnitStore | None = None,
                 progress: bool | None = None, retries: int = 3, torch_threads: int | None = 1,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT_S, worker_wait: float = DEFAULT_WORKER_WAIT_S,
                 dashboard_address: str = ":8787", max_task_bytes: int = MAX_TASK_BYTES,
                 concurrent_runs: int = 1, stream: Any = None, parts: int | None = None) -> None:
        from distributed import Client, LocalCluster

        if scheduler is not None and workers is not None:
            raise NeurofitError("give either scheduler= (the address of a running scheduler) or workers= (a "
                                "number of local worker processes), not both")
        if scheduler is not None and cache_dir is None:
            raise NeurofitError("a cluster run needs cache_dir= (a directory that every dask worker sees at the "
                                "same path on a shared filesystem, where the features are written for them)")
        stream = sys.stderr if stream is None else stream
        self.store = store
        self.progress = sys.stderr.isatty() if progress is None else bool(progress)
        self.retries = int(retries)
        self.torch_threads = torch_threads
        self.max_task_bytes = int(max_task_bytes)
        self.computed = 0
        self.reused = 0
        # shared with the bound copies: tasks submitted, and the largest pickled task (payload + unit) in bytes
        self.stats = {"submitted": 0, "task_bytes": 0}
        self.cluster = None
        self._owner = True
        if cache_dir is None:
            from neurofit.data.fetch import cache_dir as neurofit_home

            cache_dir = neurofit_home() / "dask"
        self.cache_dir = Path(cache_dir)
        self.arrays = ArrayStore(cache_dir, run=f"run-{uuid.uuid4().hex[:12]}")
        self.concurrent_runs = max(1, int(concurrent_runs))
        if parts is not None and int(parts) < 1:
            raise NeurofitError(f"parts= must be at least 1, got {parts}")
        self.parts = None if parts is None else int(parts)
        if scheduler is not None:
            check_scheduler(scheduler, connect_timeout)
            try:
                self.client = Client(scheduler, timeout=connect_timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as err:
                raise NeurofitError(
                    f"could not connect to the dask scheduler at {scheduler!r} within {connect_timeout:g} s "
                    f"({type(err).__name__}: {err}); start one with `dask scheduler` and check the address, the "
                    "port and the firewall") from err
            try:
                self.client.wait_for_workers(1, timeout=worker_wait)
            except (TimeoutError, OSError) as err:
                self.client.close()
                raise NeurofitError(
                    f"the dask scheduler at {scheduler!r} has no worker after {worker_wait:g} s: start some with "
                    f"`dask worker {scheduler} --nthreads 1` on the compute nodes") from err
        else:
            n = int(workers) if workers is not None else (os.cpu_count() or 1)
            if n < 1:
                raise NeurofitError(f"workers= must be at least 1, got {n}")
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                        dashboard_address=dashboard_address, silence_logs=logging.ERROR)
            self.client = Client(self.cluster, set_as_default=False)
            try:
                import bokeh  # noqa: F401

                note = ""
            except ImportError:
                note = " (served only when the bokeh package is installed: pip install 'bokeh>=3.1')"
            print(f"neurofit: dask LocalCluster of {n} workers; dashboard {self.cluster.dashboard_link}{note}",
                  file=stream, flush=True)

    # -- lifetime ----------------------------------------------------------------------------------------
    def bind(self, store: UnitStore | None, progress: bool | None = None) -> DaskRunner:
        """This runner's cluster with another unit store (and fresh counters): one per scoring run."""
        bound = copy.copy(self)
        bound.store = store
        bound.progress = self.progress if progress is None else bool(progress)
        bound.computed = bound.reused = 0
        bound._owner = False
        return bound

    def worker_pids(self) -> dict[str, int]:
        """Process id of each worker, by address."""
        return self.client.run(os.getpid)

    def close(self) -> None:
        """Disconnect (and stop a LocalCluster this runner started); remove the array files it wrote."""
        if not self._owner:
            return
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.arrays.remove_written()

    def __enter__(self) -> DaskRunner:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- the runner interface ----------------------------------------------------------------------------
    def map(self, fn: Callable[[WorkUnit], Result], units: Iterable[WorkUnit], *, desc: str = ""
            ) -> Iterator[tuple[WorkUnit, Result]]:
        """Run ``fn`` on every unit not already in the store; yield ``(unit, result)`` in the order of ``units``.

        Results are saved to the store as they arrive (in completion order); a unit is yielded as soon as it
        and every unit before it are done. The units are submitted when ``map`` is called, not when the
        iteration starts: a caller may start several maps and then read them one after another, and the
        cluster works on all of them at once.
        """
        units = list(units)
        done: dict[int, Result] = {}
        todo = []
        for i, unit in enumerate(units):
            saved = self.store.get(unit) if self.store is not None else None
            if saved is None:
                todo.append(i)
            else:
                done[i] = saved
                self.reused += 1
        futures = {}
        pieces: dict[int, list] = {}
        if todo:
            n_parts = self._parts(len(todo))
            split = getattr(fn, "split", None) if n_parts > 1 and hasattr(fn, "merge") else None
            for i in todo:
                pieces[i] = [[piece, None] for piece in (split(units[i], n_parts) if split else [units[i]])]
            payload = externalize(fn, self.arrays)
            size = _payload_bytes(payload, pieces[todo[0]][0][0])
            if size > self.max_task_bytes:
                raise NeurofitError(
                    f"each task of {desc or 'this run'} would carry {size / 1e6:.1f} MB: give the runner a callable "
                    "object that holds its data as numpy arrays (they go to the shared cache_dir=), not a closure")
            self.stats["task_bytes"] = max(self.stats["task_bytes"], size)
            run = uuid.uuid4().hex[:8]
            for i in todo:
                for j, (piece, _) in enumerate(pieces[i]):
                    future = self.client.submit(run_unit, payload, piece, self.torch_threads, pure=False,
                                                retries=self.retries, key=f"neurofit-{piece.key}-{run}")
                    futures[future] = (i, j)
                    self.stats["submitted"] += 1
        return self._collect(units, done, futures, pieces, fn, desc)

    def _parts(self, n_units: int) -> int:
        """Pieces per unit: ``parts=`` or, by default, enough for every worker when units are fewer."""
        if self.parts is not None:
            return self.parts
        n_workers = len(self.client.scheduler_info().get("workers", {}))
        return -(-n_workers // n_units) if 0 < n_units < n_workers else 1

    def _collect(self, units: list[WorkUnit], done: dict[int, Result], futures: dict[Any, tuple[int, int]],
                 pieces: dict[int, list], fn: Callable[[WorkUnit], Result], desc: str
                 ) -> Iterator[tuple[WorkUnit, Result]]:
        from distributed import as_completed

        following = 0
        bar = tqdm(total=len(units), initial=len(done), desc=desc or "fits", unit="fit", disable=not self.progress)
        try:
            while following < len(units) and following in done:
                yield units[following], done.pop(following)
                following += 1
            # results come with the completions: no second round trip per unit
            completed = as_completed(list(futures), with_results=True, loop=self.client.loop) if futures else ()
            for future, result in completed:
                i, j = futures.pop(future)
                future.release()
                parts = pieces[i]
                parts[j][1] = result
                if any(r is None for _, r in parts):
                    continue  # the unit's other pieces are still running
                if len(parts) > 1:
                    result = fn.merge(units[i], [(piece, r) for piece, r in parts])
                del pieces[i]
                if self.store is not None:
                    self.store.put(units[i], result)
                self.computed += 1
                bar.update(1)
                done[i] = result
                while following < len(units) and following in done:
                    yield units[following], done.pop(following)
                    following += 1
        finally:
            bar.close()
            for future in futures:
                future.cancel()
