"""The dask runner: same ScoreSet as the local runner, small tasks, killed workers, unreachable schedulers."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import numpy as np
import pytest
from dask_tasks import SlowWeightedSum

from conftest import TOY_BENCHMARK, toy
from neurofit.errors import NeurofitError
from neurofit.runners.arrays import externalize, internalize
from neurofit.runners.dask_runner import DaskRunner
from neurofit.runners.local import UnitStore, WorkUnit
from neurofit.scoring.score import score


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    with DaskRunner(workers=2, cache_dir=tmp_path_factory.mktemp("shared"), dashboard_address=":0",
                    progress=False) as run:
        yield run


@pytest.fixture(scope="module")
def toy_problem(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin"))
    rec, stimuli, acts = toy(n_obj=8, per_obj=8, d=64)
    return path, rec, stimuli, acts


def test_dask_scoreset_equals_the_local_one_bit_for_bit(runner, toy_problem, tmp_path):
    path, rec, stimuli, acts = toy_problem
    # named layers keep the run short; latency offsets are still committed, so commit and score units both run
    options = dict(data=(rec, stimuli), progress=False, created="2026-01-01T00:00:00Z", layers={"V4": "a", "IT": "b"})
    local = score(acts, path, work_dir=tmp_path / "local", keep_work=True, **options)
    submitted = runner.stats["submitted"]
    remote = score(acts, path, work_dir=tmp_path / "dask", runner=runner, **options)
    assert set(local.data_vars) == set(remote.data_vars)
    for name in local.data_vars:
        np.testing.assert_array_equal(local[name].values, remote[name].values, err_msg=name)
    assert local.attrs == remote.attrs
    # every unit of the run went to the cluster
    n_units = len(list((tmp_path / "local").glob("*/*.npz")))
    assert n_units >= 20 and runner.stats["submitted"] - submitted == n_units


def test_tasks_carry_file_paths_not_the_features(runner, toy_problem, tmp_path):
    big = np.random.default_rng(0).normal(size=(2000, 500))  # 8 MB
    weights = np.random.default_rng(1).normal(size=(4, 2000))
    fn = SlowWeightedSum(big, weights, pause=0.0)
    units = [WorkUnit("score", "IT", {"layer": "x"}, f) for f in range(4)]
    results = [res for _, res in runner.bind(UnitStore(tmp_path)).map(fn, units)]
    for f, res in enumerate(results):
        np.testing.assert_allclose(res["value"], weights[f] @ big, rtol=1e-12)
    # the pickled task (function payload + unit) is a few kB, against 8 MB of data in the function
    assert 0 < runner.stats["task_bytes"] < 20_000 < big.nbytes
    stored = list((runner.arrays.root).rglob("*.npy"))
    assert any(p.stat().st_size >= big.nbytes for p in stored)


def test_units_are_submitted_when_map_is_called_so_several_maps_overlap(runner, tmp_path):
    fn = SlowWeightedSum(np.eye(3), np.eye(3), pause=0.0)
    before = runner.stats["submitted"]
    bound = runner.bind(UnitStore(tmp_path))
    first = bound.map(fn, [WorkUnit("score", "IT", {"layer": "x"}, f) for f in range(3)])
    second = bound.map(fn, [WorkUnit("score", "IT", {"layer": "y"}, f) for f in range(3)])
    assert runner.stats["submitted"] - before == 6  # both on the cluster before either is read
    assert [res["value"].tolist() for _, res in second] == np.eye(3).tolist()
    assert [res["value"].tolist() for _, res in first] == np.eye(3).tolist()


def test_progress_counts_units_done_out_of_the_total(runner, tmp_path, capsys):
    fn = SlowWeightedSum(np.eye(3), np.eye(3), pause=0.0)
    units = [WorkUnit("score", "IT", {"layer": "x"}, f) for f in range(3)]
    list(runner.bind(UnitStore(tmp_path), progress=True).map(fn, units, desc="score IT x"))
    err = capsys.readouterr().err
    assert "score IT x" in err and "3/3" in err


def test_a_closure_that_would_pickle_its_data_into_every_task_is_refused(runner, tmp_path):
    big = np.ones((1000, 200))
    units = [WorkUnit("score", "IT", {"layer": "x"}, 0)]
    with pytest.raises(NeurofitError, match="would carry"):
        list(runner.bind(UnitStore(tmp_path)).map(lambda u: {"s": big.sum(axis=0)}, units))


def test_externalize_stores_each_array_once_and_round_trips(tmp_path):
    from neurofit.runners.arrays import ArrayStore

    store = ArrayStore(tmp_path)
    x = np.random.default_rng(0).normal(size=(300, 40))
    fn = SlowWeightedSum(x, x[:100].copy(), pause=0.0)
    fn.extra = [x, x, x.copy()]  # the same content three times
    light = externalize(fn, store)
    assert fn.data is x  # the original is untouched
    assert len(list(store.root.rglob("*.npy"))) == 2  # x and the weights
    back = internalize(light)
    np.testing.assert_array_equal(back.data, x)
    np.testing.assert_array_equal(back.extra[2], x)


def test_an_address_that_does_not_answer_is_a_clear_error_within_seconds(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    start = time.monotonic()
    named = f"(could not connect to the|no) dask scheduler (answered )?at '{re.escape(address)}'"
    with pytest.raises(NeurofitError, match=named):
        DaskRunner(address, cache_dir=tmp_path)
    assert time.monotonic() - start < 20


def test_a_scheduler_without_workers_is_a_clear_error_not_a_hang(tmp_path):
    from distributed import LocalCluster

    with LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as empty:
        start = time.monotonic()
        with pytest.raises(NeurofitError, match="has no worker after 2 s: start some with `dask worker"):
            DaskRunner(empty.scheduler_address, cache_dir=tmp_path, worker_wait=2)
        assert time.monotonic() - start < 15


def test_the_files_a_run_wrote_are_removed_when_it_closes(tmp_path):
    from neurofit.runners.arrays import ArrayStore

    store = ArrayStore(tmp_path)
    store.put(np.ones(10))
    store.remove_written()
    assert not list(store.root.rglob("*"))


def test_a_cluster_run_without_a_shared_cache_dir_or_with_both_targets_is_refused():
    with pytest.raises(NeurofitError, match="cache_dir="):
        DaskRunner("tcp://127.0.0.1:8786")
    with pytest.raises(NeurofitError, match="not both"):
        DaskRunner("tcp://127.0.0.1:8786", workers=2, cache_dir=".")


def test_an_existing_scheduler_is_used_by_its_address(runner, tmp_path):
    address = runner.cluster.scheduler_address
    with DaskRunner(address, cache_dir=runner.cache_dir, progress=False) as remote:
        fn = SlowWeightedSum(np.arange(12.0).reshape(3, 4), np.eye(3), pause=0.0)
        units = [WorkUnit("score", "IT", {"layer": "x"}, f) for f in range(3)]
        got = [res["value"].tolist() for _, res in remote.bind(UnitStore(tmp_path)).map(fn, units)]
    assert got == [[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0], [8.0, 9.0, 10.0, 11.0]]
    assert runner.client.status == "running"  # closing the second client left the cluster alone


def test_a_worker_killed_mid_run_loses_no_finished_unit_and_the_run_completes(runner, tmp_path):
    rng = np.random.default_rng(2)
    data, weights = rng.normal(size=(3000, 8)), rng.normal(size=(16, 3000))
    fn = SlowWeightedSum(data, weights, pause=0.4)
    units = [WorkUnit("score", "IT", {"layer": "x"}, f) for f in range(16)]
    store = UnitStore(tmp_path)
    bound = runner.bind(store)
    pids = set(runner.worker_pids().values())
    results, saved_before_kill, victim = {}, {}, None
    for unit, res in bound.map(fn, units):
        results[unit.fold] = res
        if len(results) == 3 and victim is None:
            saved_before_kill = {p.name: p.read_bytes() for p in tmp_path.glob("*.npz")}
            # kill a worker that is computing right now (the other worker computed the units seen so far or not)
            victim = next(iter(pids))
            os.kill(victim, signal.SIGKILL)
    assert victim is not None and len(saved_before_kill) >= 3
    assert sorted(results) == list(range(16))
    for f, res in results.items():
        np.testing.assert_allclose(res["value"], weights[f] @ data, rtol=1e-12)
    # units finished before the kill are on disk untouched, and every unit is saved exactly once
    for name, content in saved_before_kill.items():
        assert (tmp_path / name).read_bytes() == content
    assert store.count() == 16 and bound.computed == 16
    # the kill was real: the victim is no longer among the cluster's workers
    assert victim not in set(runner.worker_pids().values())
