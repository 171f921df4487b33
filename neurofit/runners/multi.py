"""Scoring several models on one benchmark, with the local runner or one shared dask cluster.

The one module of this package that calls up into scoring (:func:`neurofit.scoring.score.score`, imported
when a run starts); the runners themselves know nothing of benchmarks or models.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurofit.errors import NeurofitError

if TYPE_CHECKING:
    from neurofit.runners.dask_runner import DaskRunner


def output_names(models: Sequence[str], benchmark: str) -> list[str]:
    """One ScoreSet file name per model: ``<model stem>-<benchmark stem>.nc``; clashing stems are an error.

    Example
    -------
    >>> output_names(["runs/a.pt", "runs/b.pt"], "synthetic-ventral-it-temporal")
    ['a-synthetic-ventral-it-temporal.nc', 'b-synthetic-ventral-it-temporal.nc']
    """
    names = [f"{Path(m).stem}-{Path(benchmark).stem}.nc" for m in models]
    seen: dict[str, str] = {}
    for model, name in zip(models, names):
        if name in seen:
            raise NeurofitError(f"models {seen[name]!r} and {model!r} would both be written to {name}: give "
                                "checkpoints distinct file names")
        seen[name] = model
    return names


def score_models(models: Sequence[Any], benchmark: str | os.PathLike[str], *, out_dir: str | os.PathLike[str],
                 runner: DaskRunner | None = None, **options: Any) -> dict[Path, Any]:
    """Score several models (zoo names or checkpoints) on one benchmark; write one ScoreSet per model.

    All models share ``runner`` (one cluster for the whole run); with ``runner.concurrent_runs`` > 1 that many
    models are scored at once, each by its own client process connected to the runner's scheduler. Each
    model's run is resumable on its own: rerunning after an interruption reuses every unit already saved.

    Parameters
    ----------
    models : sequence of str
        Zoo names or checkpoint files (with ``arch=`` in ``options`` when they do not name it).
    benchmark : str or path
    out_dir : path
        Where ``<model stem>-<benchmark stem>.nc`` is written for each model.
    runner : DaskRunner, optional
        ``None``: the local runner.
    **options
        Passed to :func:`neurofit.scoring.score.score` (``work_dir``, ``arch``, ``layers``, ``data``, ...).

    Returns
    -------
    dict
        Path written -> ScoreSet, in the order of ``models``.

    Example
    -------
    >>> score_models(["a.pt", "b.pt"], "synthetic-ventral-it-temporal", out_dir="scores",
    ...              arch="cornet_rt")  # doctest: +SKIP
    """
    from neurofit.scoring.score import score

    out = Path(out_dir)
    names = output_names([str(m) for m in models], str(benchmark))
    paths = [out / name for name in names]
    concurrent = min(getattr(runner, "concurrent_runs", 1), len(paths))
    if concurrent <= 1:
        return {path: score(model, benchmark, out=path, runner=runner, **options) for model, path in zip(models, paths)}
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # Separate client processes, not threads: each run seeds torch's global RNG for untrained zoo models and
    # sets torch's thread count, which threads would share.
    import torch

    address = runner.client.scheduler.address
    # the children get this process's torch and BLAS thread counts (their environment says otherwise: starting
    # a LocalCluster sets OMP_NUM_THREADS=1 in this process's environment, which spawned children inherit), so
    # that client-side sums (the bootstrap's matrix products) reduce as in a one-model run: OpenBLAS splits a
    # product's columns among its threads and the edge tiles take another kernel, so the thread count can move
    # the last bit of a sum
    from threadpoolctl import threadpool_info

    threads = (torch.get_num_threads(),
               max([pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"], default=1))
    with ProcessPoolExecutor(max_workers=concurrent, mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_score_on_cluster, address, str(runner.cache_dir), model, benchmark, path, options,
                            threads) for model, path in zip(models, paths)]
        return {path: job.result() for path, job in zip(paths, jobs)}


def _score_on_cluster(address: str, cache_dir: str, model: Any, benchmark: Any, out: Path,
                      options: dict[str, Any], threads: tuple[int, int]) -> Any:
    import torch
    from threadpoolctl import threadpool_limits

    from neurofit.runners.dask_runner import DaskRunner
    from neurofit.scoring.score import score

    torch_threads, blas_threads = threads
    torch.set_num_threads(torch_threads)
    with threadpool_limits(limits=blas_threads, user_api="blas"), \
            DaskRunner(address, cache_dir=cache_dir, progress=False) as runner:
        return score(model, benchmark, out=out, runner=runner, **{**options, "progress": False})
