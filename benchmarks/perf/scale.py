"""Scale-out benchmark: the dask runner (a LocalCluster) against the local runner on synthetic-ventral.

What is timed: ``score()`` of one set of features on a synthetic-ventral temporal benchmark (layer and latency
commitment on the held-out stimuli, then the 10-fold scoring), once with the local runner and once with a
``LocalCluster`` of ``--workers`` single-threaded worker processes. Features are given as an ActivationSet,
so extraction is outside both timings; the cluster's start-up is timed separately. The features are the
hidden generator's own V4 and IT units plus a ``mixed`` layer (a fixed random projection of all of them to
1000 features, as extraction would give), each per 10 ms step.

Also measured: the per-task overhead of the dask runner (no-op work units, all at once and in batches of 5
like the commitment folds), and that both runners give the same ScoreSet.

Run (from the repository root; the machine should be otherwise idle for meaningful numbers)::

    python benchmarks/perf/scale.py --workers 2 --benchmark synthetic-ventral-it-temporal --size default
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from neurofit.runners.dask_runner import DaskRunner
from neurofit.runners.local import UnitStore, WorkUnit
from neurofit.scoring.benchmark import load_benchmark
from neurofit.scoring.resolve import activations_from_arrays
from neurofit.scoring.score import score


class Noop:
    """A work unit that does nothing: what remains is the runner's own cost per task."""

    def __call__(self, unit: WorkUnit) -> dict[str, np.ndarray]:
        return {"x": np.zeros(1)}


def synthetic_features(size: str, seed: int = 0, mixed_dim: int = 1000):
    from neurofit.data.synthetic import hidden_features

    hidden = hidden_features(size, seed=seed)  # (presentation, feature, time_bin)
    values = np.asarray(hidden.values, dtype=np.float64).transpose(2, 0, 1)  # [T, N, F]
    stage = hidden.coords["stage"].values.astype(str)
    rng = np.random.default_rng(seed)
    projection = rng.normal(size=(values.shape[2], mixed_dim)) / np.sqrt(values.shape[2])
    layers = {"V4": values[:, :, stage == "V4"], "IT": values[:, :, stage == "IT"], "mixed": values @ projection}
    ids = hidden.coords["stimulus_id"].values.astype(str)
    return activations_from_arrays(layers, ids, model_id=f"synthetic-ventral-{size}-hidden")


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def overhead(runner: DaskRunner, n: int, work: Path) -> dict[str, float]:
    units = [WorkUnit("score", "IT", {"layer": "noop"}, f) for f in range(n)]
    list(runner.bind(None).map(Noop(), units[:4]))  # warm the workers
    start = time.perf_counter()
    list(runner.bind(UnitStore(work / "noop-all")).map(Noop(), units))
    at_once = (time.perf_counter() - start) / n
    start = time.perf_counter()
    store = UnitStore(work / "noop-batches")
    for k in range(0, n, 5):
        list(runner.bind(store).map(Noop(), units[k:k + 5]))
    batched = (time.perf_counter() - start) / n
    return {"noop_ms_per_task_at_once": 1e3 * at_once, "noop_ms_per_task_batches_of_5": 1e3 * batched}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", default="synthetic-ventral-it-temporal")
    parser.add_argument("--size", default="default", help="synthetic-ventral size (small, default, majajhong)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--noop", type=int, default=200, help="no-op tasks for the overhead measurement")
    parser.add_argument("--json", metavar="FILE", help="also write the numbers as JSON")
    args = parser.parse_args(argv)

    torch.set_num_threads(1)  # the local reference on one thread, like each dask worker
    bench = load_benchmark(args.benchmark)
    bench = dataclasses.replace(bench, dataset_options={**bench.dataset_options, "size": args.size})
    acts = synthetic_features(args.size, seed=int(bench.dataset_options.get("seed", 0)))
    work = Path(tempfile.mkdtemp(prefix="neurofit-scale-"))
    created = "2026-01-01T00:00:00Z"
    score(acts, bench, progress=False, work_dir=work / "warm", created=created,
          layers=["mixed"])  # loads/generates the dataset once, outside the timings

    start, cpu = time.perf_counter(), time.process_time()
    local = score(acts, bench, progress=False, work_dir=work / "local", keep_work=True, created=created)
    t_local, cpu_local = time.perf_counter() - start, time.process_time() - cpu
    n_units = len(list((work / "local").glob("*/*.npz")))

    start = time.perf_counter()
    with DaskRunner(workers=args.workers, cache_dir=work / "shared", dashboard_address=":0", progress=False) as runner:
        t_startup = time.perf_counter() - start
        workers_before = runner.client.run(_cpu_seconds)
        start, cpu = time.perf_counter(), time.process_time()
        remote = score(acts, bench, progress=False, work_dir=work / "dask", runner=runner, created=created)
        t_dask, cpu_client = time.perf_counter() - start, time.process_time() - cpu
        workers_after = runner.client.run(_cpu_seconds)
        cpu_workers = sorted(workers_after[w] - workers_before[w] for w in workers_after)
        task_bytes = runner.stats["task_bytes"]
        costs = overhead(runner, args.noop, work)

    identical = all(np.array_equal(local[v].values, remote[v].values, equal_nan=True) for v in local.data_vars)
    max_diff = max(float(np.nanmax(np.abs(local[v].values - remote[v].values), initial=0.0))
                   for v in local.data_vars)
    result = {
        "benchmark": args.benchmark, "size": args.size, "n_stimuli": int(local.attrs["n_stimuli_scored"]
                                                                          + local.attrs["n_stimuli_commitment"]),
        "n_sites": int(local.sizes["neuroid"]), "n_units": n_units, "workers": args.workers,
        "local_s": t_local, "dask_s": t_dask, "cluster_startup_s": t_startup, "speedup": t_local / t_dask,
        "local_cpu_s": cpu_local, "dask_client_cpu_s": cpu_client, "dask_worker_cpu_s": cpu_workers,
        # what the wall time would be with one free core per process: the busiest process's CPU time
        "speedup_cpu_bound": cpu_local / max(cpu_workers + [cpu_client]),
        "local_s_per_unit": t_local / n_units, "task_bytes_max": task_bytes, "identical": identical,
        "max_abs_diff": max_diff, **costs,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
                   f"{os.getloadavg()[0]:.1f} at the end",
    }
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":  # the LocalCluster's worker processes are spawned: they must not rerun this
    main(sys.argv[1:])
