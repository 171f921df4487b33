"""Property-based bad-input corpus: random malformed files never give a traceback and never hang.

For each parser of untrusted input (the manifest and benchmark parsers, the recording validator and NetCDF
reader, the stimulus-set loader) hypothesis generates malformed inputs, mostly single mutations of a valid one so
that every key is reached. The property: the call either succeeds or raises a
:class:`~neurofit.errors.NeurofitError` (which the CLI prints as one line), within a few seconds.
Example counts are kept small: the whole file adds a few seconds to CI.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofit.data.io import read_recording, to_contract
from neurofit.data.manifest import load_manifest, parse_manifest
from neurofit.data.recording import average_repetitions, make_recording, trial_array, validate
from neurofit.data.stimuli import read_stimulus_set
from neurofit.errors import NeurofitError
from neurofit.scoring.benchmark import load_benchmark, parse_benchmark

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
SECONDS = 10  # no single example may take longer: a hang is a failure


@contextlib.contextmanager
def time_limit(seconds: int = SECONDS):
    def expire(signum, frame):
        raise TimeoutError(f"an input took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def only_neurofit_errors(action) -> None:
    """Run ``action``; anything but success or a NeurofitError fails the test (with the traceback)."""
    with time_limit():
        try:
            action()
        except NeurofitError as err:
            assert "\n" not in str(err).strip() or "Traceback" not in str(err)


# --- random values of every TOML/JSON type, and mutations of valid tables ------------------------------------
scalars = (st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_subnormal=False)
           | st.text(max_size=12) | st.sampled_from(["", "..", "/etc/passwd", "a" * 300, "os:system", "-1"]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


def paths_of(table, prefix=()):
    yield prefix
    if isinstance(table, dict):
        for key, value in table.items():
            yield from paths_of(value, (*prefix, key))
    elif isinstance(table, list):
        for i, value in enumerate(table):
            yield from paths_of(value, (*prefix, i))


@st.composite
def mutated(draw, valid):
    """``valid`` (a nested dict) with one value replaced, one key deleted, or one unknown key added."""
    table = json.loads(json.dumps(valid))
    path = draw(st.sampled_from([p for p in paths_of(table) if p]))
    parent = table
    for step in path[:-1]:
        parent = parent[step]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = draw(values)
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[draw(st.text(max_size=8))] = draw(values)
    else:
        parent.append(draw(values))
    return table


# --- manifests ------------------------------------------------------------------------------------------------
VALID_MANIFEST = {
    "id": "toy-data", "description": "d", "citation": "c", "license": "CC0",
    "loader": {"name": "cowley2023", "options": {"session": "210325"}},
    "files": [{"path": "toy/a.zip", "url": "https://example.org/a.zip", "sha256": "0" * 64, "size": 10},
              {"path": "toy/b.npy", "url": "https://example.org/b.npy", "sha256": "1" * 64, "size": 20}],
}


def test_the_valid_manifest_parses():
    assert parse_manifest(VALID_MANIFEST, "toy.toml").id == "toy-data"


@SETTINGS
@given(mutated(VALID_MANIFEST))
def test_a_mutated_manifest_parses_or_is_one_error(table):
    only_neurofit_errors(lambda: parse_manifest(table, "toy.toml"))


@SETTINGS
@given(st.dictionaries(st.text(max_size=10), values, max_size=6))
def test_a_random_table_as_manifest_is_one_error(table):
    only_neurofit_errors(lambda: parse_manifest(table, "toy.toml"))


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_random_bytes_as_a_manifest_file_are_one_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.toml"
        path.write_bytes(content)
        only_neurofit_errors(lambda: load_manifest(path))


# --- benchmarks -----------------------------------------------------------------------------------------------
VALID_BENCHMARK = {
    "id": "toy", "version": "1", "description": "d", "citation": "c",
    "dataset": {"id": "synthetic-ventral", "options": {"size": "small", "seed": 1, "n_it": 8, "repetitions": 4,
                                                       "averaged": False}},
    "neural": {"regions": ["V4", "IT"], "time_bins": {"start": 0, "end": 100, "width": 10}},
    "stimuli": {"degrees": 8.0, "model_degrees": 8.0},
    "regression": {"metric": "pls", "n_components": 5, "algorithm": "exact", "split_scheme": "kfold",
                   "n_splits": 5, "seed": 0, "temporal_mode": "per_bin"},
    "ceiling": {"method": "split_half", "n_splits": 10, "seed": 0, "normalisation": "r2_over_ceiling"},
    "mapping": {"policy": "table", "offsets_ms": [0, 10], "tables": {"conv": {"0": [0, 10], "1": 10}}},
    "commitment": {"fraction": 0.2, "seed": 0, "n_splits": 3},
    "aggregate": {"method": "median", "n_bootstrap": 100, "seed": 0},
}
VALID_BENCHMARK_TOML = """id = "toy"
version = "1"
[dataset]
id = "synthetic-ventral"
options = { size = "small", seed = 1 }
[neural]
regions = ["V4", "IT"]
time_bins = { start = 0, end = 100, width = 10 }
[stimuli]
degrees = 8.0
[regression]
n_components = 5
n_splits = 5
seed = 0
[ceiling]
n_splits = 10
[mapping]
offsets_ms = [0, 10]
[aggregate]
n_bootstrap = 100
"""


def test_the_valid_benchmark_parses():
    assert parse_benchmark(VALID_BENCHMARK, "toy.toml").regions == ("V4", "IT")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "toy.toml").write_text(VALID_BENCHMARK_TOML)
        assert load_benchmark(Path(folder) / "toy.toml").aggregate.n_bootstrap == 100


@SETTINGS
@given(mutated(VALID_BENCHMARK))
def test_a_mutated_benchmark_parses_or_is_one_error(table):
    only_neurofit_errors(lambda: parse_benchmark(table, "toy.toml"))


@SETTINGS
@given(st.dictionaries(st.sampled_from(sorted(VALID_BENCHMARK)) | st.text(max_size=8), values, max_size=8))
def test_a_random_table_as_benchmark_is_one_error(table):
    only_neurofit_errors(lambda: parse_benchmark(table, "toy.toml"))


@st.composite
def mangled_toml(draw):
    """The valid benchmark's text with a few characters replaced, deleted or inserted (values, brackets, quotes)."""
    text = VALID_BENCHMARK_TOML
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        piece = draw(st.sampled_from(["", "-", "9", "1e9", "nan", "inf", "-inf", '"', "[", "]", "{", "}", "=", ",",
                                      "\n", "\x00", "é", "-100000", "0.0", "true"]) | st.text(max_size=3))
        text = text[:i] + piece + text[i + draw(st.integers(0, 3)):]
    return text.encode("utf-8", "surrogatepass")


@SETTINGS
@given(mangled_toml() | st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_malformed_benchmark_files_load_or_are_one_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "toy.toml"
        path.write_bytes(content)
        only_neurofit_errors(lambda: load_benchmark(path))


# --- recordings -----------------------------------------------------------------------------------------------
def valid_recording() -> xr.DataArray:
    rng = np.random.default_rng(0)
    return make_recording(rng.poisson(3, (6, 3, 2)).astype(float), stimulus_id=["a", "a", "b", "b", "c", "c"],
                          repetition=[0, 1] * 3, neuroid_id=["n0", "n1", "n2"], region=["V4", "IT", "IT"],
                          time_bin_start=[0, 10], time_bin_end=[10, 20], identifier="toy",
                          stimulus_set_identifier="toy", presentation_coords={"object_name": list("xxyyzz")})


coord_values = st.lists(scalars, min_size=0, max_size=7)


@st.composite
def mutated_recording(draw):
    rec = valid_recording()
    kind = draw(st.sampled_from(["value", "coord", "attr", "drop", "dtype", "transpose"]))
    if kind == "value":
        data = rec.values.copy()
        index = tuple(draw(st.integers(0, n - 1)) for n in data.shape)
        data[index] = draw(st.floats(allow_subnormal=False) | st.sampled_from([1e300, -1.0, np.inf, np.nan, 1e13]))
        rec = rec.copy(data=data)
    elif kind == "coord":
        name = draw(st.sampled_from(list(rec.coords)))
        dim = rec.coords[name].dims[0]
        n = rec.sizes[dim]
        new = draw(st.lists(scalars, min_size=n, max_size=n))
        rec = rec.assign_coords({name: (dim, np.asarray(new, dtype=object))})
    elif kind == "attr":
        rec.attrs[draw(st.sampled_from([*rec.attrs, "units", "repetitions_averaged"]))] = draw(values)
    elif kind == "drop":
        rec = rec.drop_vars(draw(st.sampled_from(list(rec.coords))))
    elif kind == "dtype":
        rec = rec.astype(draw(st.sampled_from([np.int8, np.uint8, np.float32, np.complex64, object, bool, str])))
    else:
        rec = rec.transpose(*draw(st.permutations(list(rec.dims))))
    return rec


def test_the_valid_recording_validates():
    validate(valid_recording())


@SETTINGS
@given(mutated_recording())
def test_a_mutated_recording_validates_or_is_one_error_and_a_valid_one_can_be_averaged(rec):
    def check():
        validate(rec)
        average_repetitions(rec)  # what scoring does first with a recording that passed
        trial_array(rec)

    only_neurofit_errors(check)


@st.composite
def random_arrays(draw):
    dims = draw(st.lists(st.sampled_from(["presentation", "neuroid", "time_bin", "image", "x"]), min_size=0,
                         max_size=4, unique=True))
    shape = [draw(st.integers(0, 3)) for _ in dims]
    size = int(np.prod(shape))
    data = np.asarray(draw(st.lists(st.floats(allow_subnormal=False), min_size=size, max_size=size)),
                      dtype=float).reshape(shape)
    coords = {}
    for name in draw(st.lists(st.sampled_from(["stimulus_id", "image_id", "repetition", "neuroid_id", "region",
                                               "time_bin_start", "time_bin_end", "time_bin"]), max_size=5,
                              unique=True)):
        if dims:
            dim = draw(st.sampled_from(dims))
            n = shape[dims.index(dim)]
            coords[name] = (dim, np.asarray(draw(st.lists(scalars, min_size=n, max_size=n)), dtype=object))
    attrs = draw(st.dictionaries(st.sampled_from(["time_bin_start", "time_bin_end", "units", "identifier"]),
                                 scalars, max_size=3))
    return xr.DataArray(data, dims=dims, coords=coords, attrs=attrs)


@SETTINGS
@given(random_arrays())
def test_any_array_is_brought_to_the_contract_or_refused_in_one_error(array):
    def check():
        validate(to_contract(array))

    only_neurofit_errors(check)


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes_as_a_netcdf_recording_are_one_error(content):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "r.nc"
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + content if content[:1] == b"\x00" else content)
        only_neurofit_errors(lambda: read_recording(path))


# --- stimulus sets -------------------------------------------------------------------------------------------
def png(seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@st.composite
def stimulus_files(draw):
    table = draw(st.sampled_from(["stimulus_id,filename\na,a.png\nb,b.png\n", "stimulus_id\na\n", "", "x,y\n1,2\n",
                                  "stimulus_id,filename\na,../a.png\n", "stimulus_id,filename\na,a.png\na,a.png\n"])
                 | st.text(max_size=80))
    sidecar = draw(st.none() | st.just({"degrees": 8.0, "identifier": "toy", "images": "toy.zip"})
                   | mutated({"degrees": 8.0, "identifier": "toy", "images": "toy.zip"}).map(json.dumps)
                   | st.text(max_size=40))
    members = draw(st.dictionaries(st.sampled_from(["a.png", "b.png", "../c.png", "/abs.png", "d/a.png"]),
                                   st.sampled_from([png(0), png(1), b"", b"not an image"]) | st.binary(max_size=64),
                                   max_size=3))
    as_zip = draw(st.booleans())
    return table, sidecar, members, as_zip, draw(st.binary(max_size=64))


@SETTINGS
@given(stimulus_files())
def test_a_malformed_stimulus_set_loads_or_is_one_error(files):
    table, sidecar, members, as_zip, junk = files
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "toy.csv").write_text(table)
        if sidecar is not None:
            (root / "toy.json").write_text(sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
        if as_zip:
            with zipfile.ZipFile(root / "toy.zip", "w") as zf:
                for name, data in members.items():
                    zf.writestr(name, data)
        else:
            (root / "toy.zip").write_bytes(junk)

        def load():
            stimuli = read_stimulus_set(root / "toy.csv", degrees=None if sidecar is not None else 8.0)
            stimuli.sha256()
            stimuli.load_images(8)

        only_neurofit_errors(load)


def test_the_time_limit_catches_a_hang():
    with pytest.raises(TimeoutError):
        with time_limit(1):
            while True:
                pass

