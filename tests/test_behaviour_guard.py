"""Behaviour guard for the issue-16 refactor: the numbers and provenance of every scoring path stay the same.

Each case computes a result on small settings and checks it against what was recorded in
``tests/behaviour_guard.json``, at three strengths:

* **attrs** (every machine): the SHA-256 digest of every attribute (dataset's and variables') must be equal;
* **values, to the bit** (the machine that recorded them): the digest of the names, dims, dtypes, shapes and
  bytes of every variable and coordinate. A digest changes when any value changes by one ulp, so it is kept
  per machine *fingerprint* (CPU vendor, torch's CPU capability, the BLAS library and its kernel family):
  another CPU takes other BLAS and oneDNN kernels, whose sums round differently in the last bits (the
  digests recorded on an Intel AVX-512 machine differed on an AMD one in 7 of 21 cases, all attrs equal);
* **values, to 1e-6** (every machine): per variable, the positions of its NaNs (exactly), then its sum, its
  sum with fixed pseudo-random weights and its largest magnitude, each equal to the recorded one within
  1e-6 of the variable's sum of magnitudes. Model forward passes run in float32, so another CPU moves
  features by ~1e-7 relative; any change of behaviour a refactor could make moves these by far more.

A refactor that keeps behaviour keeps all three. To re-record after an *intended* change of behaviour, run
this file with ``NEUROFIT_GUARD_RECORD=1`` (it rewrites the entries of the cases it ran: attrs, this
machine's digests and the moments; digests recorded for other machines are dropped for those cases, since
they no longer hold) and say why in the commit message.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from conftest import TOY_BENCHMARK, brainscore_assembly, toy

CREATED = "2026-01-01T00:00:00Z"
RECORD = Path(__file__).with_name("behaviour_guard.json")
#: how far a moment may move on another machine, relative to the variable's sum of magnitudes
RTOL = 1e-6


def fingerprint() -> str:
    """What decides the last bits of this machine's sums: CPU vendor, torch's CPU capability, BLAS kernels."""
    import torch
    from threadpoolctl import threadpool_info

    vendor = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("vendor_id"):
                vendor = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    blas = sorted(f"{i.get('internal_api')}-{i.get('architecture')}" for i in threadpool_info()
                  if i.get("user_api") == "blas")
    return "/".join([vendor, torch.backends.cpu.get_cpu_capability(), *blas])


def _load_record() -> dict:
    return json.loads(RECORD.read_text()) if RECORD.exists() else {"attrs": {}, "values": {}, "moments": {}}


def _canonical(value):
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, np.ndarray):
        return {"dtype": str(value.dtype), "values": _canonical(value.tolist())}
    if isinstance(value, np.generic):
        return _canonical(value.item())
    if isinstance(value, float):
        return repr(value)
    return value if isinstance(value, (str, int, bool, type(None))) else repr(value)


def _array_bytes(values: np.ndarray) -> bytes:
    values = np.asarray(values)
    if values.dtype.kind in "OUS":
        return json.dumps([str(v) for v in values.ravel().tolist()]).encode()
    return np.ascontiguousarray(values).tobytes()


def _arrays(obj, prefix: str = "") -> dict[str, np.ndarray]:
    """Every array of ``obj`` by a path name (``coord:x``, ``var:r``, ``key/var:r``)."""
    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name=obj.name or "_")
    if isinstance(obj, xr.Dataset):
        return {f"{prefix}{kind}:{name}": np.asarray(mapping[name].values)
                for kind, mapping in (("coord", obj.coords), ("var", obj.data_vars))
                for name in sorted(mapping, key=str)}
    if isinstance(obj, dict):
        out = {}
        for key in sorted(obj, key=str):
            out.update(_arrays(obj[key], f"{prefix}{key}/"))
        return out
    return {f"{prefix}array": np.asarray(obj.detach().cpu().numpy() if hasattr(obj, "detach") else obj)}


def digest(obj) -> str:
    """``VALUES+ATTRS``: SHA-256 (first 24 hex digits) of the names, dims, dtypes, shapes and bytes of every
    variable and coordinate, then of the attrs (dataset's and variables'), so a failure says which changed."""
    values, attrs = hashlib.sha256(), hashlib.sha256()
    if isinstance(obj, xr.DataArray):
        obj = obj.to_dataset(name=obj.name or "_")
    if isinstance(obj, xr.Dataset):
        for kind, mapping in (("coord", obj.coords), ("var", obj.data_vars)):
            for name in sorted(mapping, key=str):
                v = mapping[name]
                values.update(f"{kind}:{name}:{v.dims}:{v.dtype}:{v.shape}:".encode())
                values.update(_array_bytes(v.values))
                attrs.update(f"{kind}:{name}:".encode())
                attrs.update(json.dumps(_canonical(dict(v.attrs)), sort_keys=True).encode())
        attrs.update(json.dumps(_canonical(dict(obj.attrs)), sort_keys=True).encode())
    elif isinstance(obj, dict):
        for key in sorted(obj, key=str):
            v, a = digest(obj[key]).split("+")
            values.update(f"{key}:{v}".encode())
            attrs.update(f"{key}:{a}".encode())
    else:
        arr = np.asarray(obj.detach().cpu().numpy() if hasattr(obj, "detach") else obj)
        values.update(f"{arr.dtype}:{arr.shape}:".encode())
        values.update(_array_bytes(arr))
    return f"{values.hexdigest()[:24]}+{attrs.hexdigest()[:24]}"


def moments(obj) -> dict[str, list]:
    """Per array: ``[dtype and shape, NaN positions' digest, sum, weighted sum, max |x|, sum |x|]`` (numbers),
    or ``[dtype and shape, digest of the values]`` (strings, objects, booleans: machine-independent)."""
    out = {}
    for name, arr in _arrays(obj).items():
        head = f"{arr.dtype}{list(arr.shape)}"
        if arr.dtype.kind not in "iuf" or arr.size == 0:
            out[name] = [head, hashlib.sha256(_array_bytes(arr)).hexdigest()[:16]]
            continue
        x = arr.astype(np.float64).ravel()
        nan = ~np.isfinite(x)
        x = np.where(nan, 0.0, x)
        w = np.random.default_rng(12345).uniform(0.5, 1.5, x.size)
        out[name] = [head, hashlib.sha256(np.packbits(nan).tobytes()).hexdigest()[:16], float(x.sum()),
                     float(w @ x), float(np.abs(x).max()), float(np.abs(x).sum())]
    return out


def _moment_changes(got: dict[str, list], want: dict[str, list]) -> list[str]:
    changed = sorted(set(got) ^ set(want))
    for name in sorted(set(got) & set(want)):
        g, w = got[name], want[name]
        if len(g) != len(w) or g[:2] != w[:2]:
            changed.append(name)
        elif len(g) > 2:
            scale = max(abs(w[5]), abs(g[5]), 1e-300)
            if any(abs(a - b) > RTOL * scale for a, b in zip(g[2:], w[2:])):
                changed.append(name)
    return changed


def check(name: str, obj) -> None:
    got = digest(obj)
    got_values, got_attrs = got.split("+")
    got_moments = moments(obj)
    machine = fingerprint()
    if os.environ.get("NEUROFIT_GUARD_RECORD"):
        record = _load_record()
        record["attrs"][name] = got_attrs
        record["moments"][name] = got_moments
        for table in record["values"].values():
            table.pop(name, None)
        record["values"].setdefault(machine, {})[name] = got_values
        record["values"] = {k: dict(sorted(v.items())) for k, v in sorted(record["values"].items()) if v}
        for key in ("attrs", "moments"):
            record[key] = dict(sorted(record[key].items()))
        RECORD.write_text(json.dumps(record, indent=1) + "\n")
        return
    record = _load_record()
    assert name in record["attrs"], f"no recorded behaviour for {name!r} (record it with NEUROFIT_GUARD_RECORD=1)"
    problems = []
    if got_attrs != record["attrs"][name]:
        problems.append(f"attrs (digest {got_attrs} != recorded {record['attrs'][name]})")
    moved = _moment_changes(got_moments, record["moments"][name])
    if moved:
        problems.append(f"values beyond {RTOL:g} of their scale: {', '.join(moved)}")
    exact = record["values"].get(machine, {}).get(name)
    if exact is not None and got_values != exact:
        problems.append(f"values in the last bits on this machine ({machine}: digest {got_values} != {exact})")
    assert not problems, f"{name}: behaviour changed: {'; '.join(problems)}"


# ------------------------------------------------------------------------------------------------ demo-like
@pytest.fixture(scope="module")
def demo_scores(tmp_path_factory):
    from neurofit.data.synthetic import generate_synthetic_ventral
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.demo import BENCHMARKS, demo_models
    from neurofit.scoring.score import score

    rec, stimuli = generate_synthetic_ventral("small", n_v4=4, n_it=6, repetitions=4, cache=False)
    bins = tuple((float(a), float(a + 10)) for a in range(40, 70, 10))
    out = {}
    for bench_id in BENCHMARKS:
        bench = load_benchmark(bench_id).replace(time_bins=bins, regression={"n_components": 5, "n_splits": 3},
                                                 aggregate={"n_bootstrap": 20}, mapping={"offsets_ms": (0.0, 20.0)})
        for role, name, ckpt in demo_models():
            assert ckpt is not None, "the demo's shipped checkpoints are part of the package"
            out[(bench_id, role)] = score(ckpt, bench, data=(rec, stimuli), progress=False, cache=False,
                                          created=CREATED, model_id=f"{name} ({role})",
                                          work_dir=tmp_path_factory.mktemp("demo"))
    return out


def test_demo_like_scoresets_are_unchanged(demo_scores):
    for (bench_id, role), scores in sorted(demo_scores.items()):
        check(f"demo/{bench_id.split('-')[2]}/{role}", scores)


def test_demo_like_comparison_is_unchanged(demo_scores):
    from neurofit.scoring.demo import BENCHMARKS
    from neurofit.stats.compare import compare_many, stack_comparisons

    pairs = [(demo_scores[(b, "feedforward")], demo_scores[(b, "recurrent")]) for b in BENCHMARKS]
    results = compare_many(pairs, n_boot=50)
    for bench_id, (a, b), res in zip(BENCHMARKS, pairs, results):
        check(f"demo/compare/{bench_id.split('-')[2]}", stack_comparisons([res], [a], [b], ["ff"], ["rec"]))


# ------------------------------------------------------------------------------------------------ toy
@pytest.fixture(scope="module")
def toy_problem():
    return toy(n_obj=8, per_obj=8, d=24)


def _bench(tmp_path, mode="per_bin", **changes):
    from neurofit.scoring.benchmark import load_benchmark

    path = tmp_path / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode=mode))
    return load_benchmark(path).replace(**changes) if changes else path


@pytest.mark.parametrize("case", ["per_bin", "span_time", "ridge", "grid", "layers"])
def test_toy_benchmark_scoresets_are_unchanged(case, toy_problem, tmp_path):
    from neurofit.scoring.score import score

    rec, stimuli, acts = toy_problem
    options = dict(data=(rec, stimuli), progress=False, created=CREATED, work_dir=tmp_path / "work")
    if case == "span_time":
        bench = _bench(tmp_path, "span_time")
    elif case == "ridge":
        bench = _bench(tmp_path, regression={"metric": "ridge"})
    else:
        bench = _bench(tmp_path)
    if case == "grid":
        options["grid"] = True
    if case == "layers":
        options["layers"] = {"V4": "a", "IT": "b"}
    check(f"toy/{case}", score(acts, bench, **options))


def test_toy_brainscore_mode_scoreset_is_unchanged(tmp_path):
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.resolve import activations_from_arrays
    from neurofit.scoring.score import score

    rec, stimuli, feats, ids, _, _ = brainscore_assembly()
    acts = activations_from_arrays({"IT": feats[None]}, ids, model_id="toy")
    bench = load_benchmark("majajhong2015-it-brainscore").replace(aggregate={"n_bootstrap": 20})
    check("toy/brainscore", score(acts, bench, data=(rec, stimuli), progress=False, created=CREATED,
                                  work_dir=tmp_path))


def test_dask_run_scoreset_is_unchanged(toy_problem, tmp_path):
    from neurofit.runners.dask_runner import DaskRunner
    from neurofit.scoring.score import score

    rec, stimuli, acts = toy_problem
    with DaskRunner(workers=1, cache_dir=tmp_path / "shared", dashboard_address=":0", progress=False) as runner:
        got = score(acts, _bench(tmp_path), data=(rec, stimuli), progress=False, created=CREATED,
                    work_dir=tmp_path / "work", runner=runner, layers={"V4": "a", "IT": "b"})
    check("dask/toy", got)


MIRROR = Path(os.environ.get("NEUROFIT_DATA_PATH", "").split(os.pathsep)[0] or "/nonexistent")


@pytest.mark.realdata
@pytest.mark.skipif(not (MIRROR / "cifar10_resnet/resnet20-12fca82f.th").is_file()
                    or not (MIRROR / "cowley2023_v4/responses_raw/responses_210325.npy").is_file(),
                    reason="real-data mirror absent (set NEUROFIT_DATA_PATH)")
def test_cowley_210325_scoreset_is_unchanged(monkeypatch, tmp_path):
    """A real session (Cowley 2023 V4, 210325: 50 sites, 640 images) scored by the real trained ResNet-20."""
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.score import score

    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(MIRROR))
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path))
    bench = load_benchmark("cowley2023-v4-210325").replace(regression={"n_components": 10},
                                                          aggregate={"n_bootstrap": 20})
    check("cowley/210325", score("resnet20_cifar", bench, checkpoint=MIRROR / "cifar10_resnet/resnet20-12fca82f.th",
                                 layers={"V4": "layer2"}, progress=False, cache=False, created=CREATED,
                                 work_dir=tmp_path / "work"))


# ------------------------------------------------------------------------------------------------ pieces
def _features_problem(n_stim=60, reps=4, sites=5, bins=2, d=10, seed=0):
    from neurofit.data.recording import make_recording

    rng = np.random.default_rng(seed)
    ids = [f"img{i:03d}" for i in range(n_stim)]
    feats = rng.normal(size=(bins, n_stim, d))
    signal = np.einsum("bsf,bfq->sqb", feats[:, :, :3], rng.normal(size=(bins, 3, sites)))
    trials = signal[None] + 0.7 * rng.normal(size=(reps, n_stim, sites, bins))
    rec = make_recording(trials.reshape(reps * n_stim, sites, bins), stimulus_id=ids * reps,
                         repetition=np.repeat(np.arange(reps), n_stim), neuroid_id=[f"n{j}" for j in range(sites)],
                         region=["V4", "V4", "IT", "IT", "IT"], time_bin_start=[70, 80][:bins],
                         time_bin_end=[80, 90][:bins], identifier="toy", stimulus_set_identifier="toy",
                         presentation_coords={"object_name": [f"obj{i % 6}" for i in range(n_stim)] * reps})
    blocks = [xr.DataArray(feats[b], dims=("presentation", "feature"),
                           coords={"stimulus_id": ("presentation", ids)}) for b in range(bins)]
    return rec, blocks


@pytest.mark.parametrize("case", ["pls", "ridge", "span_time", "brainscore"])
def test_precomputed_features_scores_are_unchanged(case):
    rec, blocks = _features_problem()
    kwargs = {"pls": dict(bootstrap=30, n_components=4, device="cpu"), "ridge": dict(metric="ridge", device="cpu"),
              "span_time": dict(temporal_mode="span_time", n_components=3, device="cpu"),
              "brainscore": dict(splits="brainscore", n_components=3, device="cpu")}[case]
    from neurofit.scoring.features import score_features

    check(f"features/{case}", score_features(blocks, rec, **kwargs))


def test_stimulus_and_site_bootstraps_are_unchanged():
    rng = np.random.default_rng(3)
    signal = rng.normal(size=(40, 1, 6, 2))
    trials = signal + rng.normal(size=(40, 5, 6, 2))
    trials[2, 1, 3, 0] = np.nan
    groups = np.array(["V4", "V4", "IT", "IT", "IT", "IT"])
    ceiled = rng.normal(size=(6, 2))
    ceiled[4, 1] = np.nan
    from neurofit.stats.bootstrap import bootstrap_sites, bootstrap_stimuli

    stim = bootstrap_stimuli(signal[:, 0], np.nanmean(trials, 1), trials, groups=groups, n_boot=40)
    sites = bootstrap_sites(ceiled, groups=groups, n_boot=40)
    check("bootstrap/stimuli", stim)
    check("bootstrap/sites", sites)


def test_estimator_predictions_are_unchanged():
    from neurofit.regression.pls import PLS
    from neurofit.regression.ridge import RidgeCV

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8))
    Y = X[:, :3] @ rng.normal(size=(3, 4)) + 0.2 * rng.normal(size=(60, 4))
    pls = PLS(n_components=3, device="cpu").fit(X, Y)
    check("estimators/pls", {"predict": np.asarray(pls.predict(X), dtype=np.float64)})
    ridge = RidgeCV(device="cpu").fit(X, Y)
    check("estimators/ridgecv", {"predict": np.asarray(ridge.predict(X), dtype=np.float64),
                                 "alpha": np.asarray(ridge.alpha_, dtype=np.float64)})


def test_the_tolerant_check_ignores_last_bits_and_catches_a_changed_value():
    rng = np.random.default_rng(7)
    ds = xr.Dataset({"r": (("site", "bin"), rng.uniform(-0.2, 0.8, (300, 10)))})
    ds["r"][3, 4] = np.nan
    want = moments(ds)
    last_bits = ds.copy(deep=True)
    last_bits["r"] = last_bits["r"] * (1 + 1e-12 * rng.standard_normal(last_bits["r"].shape))
    assert _moment_changes(moments(last_bits), want) == []
    one_value = ds.copy(deep=True)
    one_value["r"][100, 2] += 0.01  # a refactor that moves one site of one bin
    assert _moment_changes(moments(one_value), want) == ["var:r"]
    one_nan = ds.copy(deep=True)
    one_nan["r"][0, 0] = np.nan
    assert _moment_changes(moments(one_nan), want) == ["var:r"]
    renamed = ds.rename({"r": "r2"})
    assert _moment_changes(moments(renamed), want) == ["var:r", "var:r2"]
