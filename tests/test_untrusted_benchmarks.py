"""Bad-input corpus, benchmark files: every value is range-checked on load, in one line naming file and key.

The audit's cases (issue 15, items 4, 7 and 8): ``offsets_ms = [-100000]`` and ``time_bins = {start = 0, end =
1e9, width = 1}`` tried to allocate gigabytes; ``regions = ["IT", "IT"]``, ``degrees = inf``, ``ceiling.n_splits``
0 or negative, seeds out of numpy's range, NaN/Inf in ``time_bins`` or offsets, ill-typed ``dataset.options``
or ``mapping.tables`` were accepted or gave tracebacks.
"""

from __future__ import annotations

import re
import time

import pytest

from neurofit.cli import main
from neurofit.errors import ValidationError
from neurofit.scoring.benchmark import MAX_BINS, MAX_SEED, load_benchmark

GOOD = """
id = "toy"
version = "2"

[dataset]
id = "synthetic-ventral"

[neural]
regions = ["IT"]
time_bins = { start = 0, end = 250, width = 10 }

[stimuli]
degrees = 8.0
"""
BINS = "time_bins = { start = 0, end = 250, width = 10 }"

CASES = [
    # (edit, key, message): the exact behaviour for each case
    ("[mapping]\noffsets_ms = [-100000]", "mapping.offsets_ms[0]",
     "is -100000 ms; a latency offset must be finite and within +-250 ms, the span of the benchmark's time bins "
     "(0-250 ms)"),
    ("[mapping]\noffsets_ms = [0, 260]", "mapping.offsets_ms[1]", "is 260 ms; a latency offset must be finite"),
    ("[mapping]\noffsets_ms = [nan]", "mapping.offsets_ms[0]", "is nan ms"),
    ("[mapping]\noffsets_ms = [0, inf]", "mapping.offsets_ms[1]", "is inf ms"),
    ((BINS, "time_bins = { start = 0, end = 1e9, width = 1 }"), "neural.time_bins.end",
     "must be a time in ms in [-100000, 100000], got 1000000000.0"),
    ((BINS, "time_bins = { start = 0, end = 100000, width = 0.5 }"), "neural.time_bins",
     f"gives 200000 bins (0-100000 ms in 0.5 ms bins); at most {MAX_BINS} are allowed"),
    ((BINS, "time_bins = { start = nan, end = 250, width = 10 }"), "neural.time_bins.start",
     "must be a time in ms in [-100000, 100000], got nan"),
    ((BINS, "time_bins = { start = 0, end = inf, width = 10 }"), "neural.time_bins.end", "got inf"),
    ((BINS, "time_bins = { start = 0, end = 250, width = nan }"), "neural.time_bins.width",
     "must be a width in ms in [0, 200000], got nan"),
    ((BINS, "bins = [[0, inf]]"), "neural.bins[0]", "must be a time in ms in [-100000, 100000], got inf"),
    ((BINS, "bins = [[nan, 10]]"), "neural.bins[0]", "must be [start_ms, end_ms] with end > start, got [nan, 10]"),
    (('["IT"]', '["IT", "IT"]'), "neural.regions", "names 'IT' twice; list each region once"),
    (("degrees = 8.0", "degrees = inf"), "stimuli.degrees", "must be a finite number > 0, got inf"),
    (("degrees = 8.0", "degrees = nan"), "stimuli.degrees", "must be a finite number > 0, got nan"),
    (("degrees = 8.0", "degrees = -2"), "stimuli.degrees", "must be a finite number > 0, got -2.0"),
    (("degrees = 8.0", "degrees = 8.0\nmodel_degrees = inf"), "stimuli.model_degrees",
     "must be a finite number > 0, got inf"),
    ("[ceiling]\nn_splits = 0", "ceiling.n_splits", "must be a whole number in [1, 1000], got 0"),
    ("[ceiling]\nn_splits = -3", "ceiling.n_splits", "must be a whole number in [1, 1000], got -3"),
    ("[ceiling]\nn_splits = 1000000000", "ceiling.n_splits", "got 1000000000"),
    ("[regression]\nn_splits = 1", "regression.n_splits", "must be a whole number in [2, 1000], got 1"),
    ("[regression]\nn_splits = 1000000000", "regression.n_splits", "got 1000000000"),
    ("[commitment]\nn_splits = 1", "commitment.n_splits", "must be a whole number in [2, 1000], got 1"),
    ("[regression]\nn_components = 1000000000000", "regression.n_components",
     "must be a whole number in [1, 10000], got 1000000000000"),
    ("[aggregate]\nn_bootstrap = 1000000000000", "aggregate.n_bootstrap",
     "must be a whole number in [0, 100000], got 1000000000000"),
    ("[regression]\nseed = -1", "regression.seed", f"must be a seed in [0, {MAX_SEED}], got -1"),
    ("[ceiling]\nseed = 4294967296", "ceiling.seed", "got 4294967296"),
    ("[commitment]\nseed = -5", "commitment.seed", "got -5"),
    ("[aggregate]\nseed = 9223372036854775807", "aggregate.seed", "got 9223372036854775807"),
    ("[dataset.options]\nseed = -1", "dataset.options.seed", "must be a whole number in [0, 4294967295], got -1"),
    ("[dataset.options]\nseed = \"abc\"", "dataset.options.seed", "must be int, got 'abc'"),
    ("[dataset.options]\nsize = 1000000000", "dataset.options.size", "got 1000000000"),
    ("[dataset.options]\naveraged = 1", "dataset.options.averaged", "must be bool, got 1"),
    ("[dataset.options]\ncommand = \"rm\"", "dataset.options.command",
     "is not a generator option; valid options: size, n_v4, n_it, repetitions, seed, averaged"),
    ("[mapping]\npolicy = \"table\"\ntables = { conv = 3 }", "mapping.tables.conv",
     "must be a non-empty table {step = start_ms or [start_ms, end_ms]}, got 3"),
    ("[mapping]\npolicy = \"table\"\ntables = { conv = { x = 1 } }", "mapping.tables.conv.x",
     "must be keyed by a step number 0-100000"),
    ("[mapping]\npolicy = \"table\"\ntables = { conv = { 0 = \"abc\" } }", "mapping.tables.conv.0",
     "must be start_ms or [start_ms, end_ms], got 'abc'"),
    ("[mapping]\npolicy = \"table\"\ntables = { conv = { 0 = [1, 2, 3] } }", "mapping.tables.conv.0",
     "must be start_ms or [start_ms, end_ms], got [1, 2, 3]"),
    ("[mapping]\npolicy = \"table\"\ntables = { conv = { 0 = nan } }", "mapping.tables.conv.0",
     "must be a time in ms in [-100000, 100000], got nan"),
]


def edited(edit) -> str:
    if isinstance(edit, tuple):
        assert edit[0] in GOOD
        return GOOD.replace(*edit)
    return GOOD + "\n" + edit + "\n"


@pytest.mark.parametrize(("edit", "key", "message"), CASES, ids=[c[1] + ":" + str(i) for i, c in enumerate(CASES)])
def test_an_out_of_range_value_is_one_line_naming_file_and_key(tmp_path, edit, key, message):
    path = tmp_path / "toy.toml"
    path.write_text(edited(edit))
    started = time.monotonic()
    with pytest.raises(ValidationError) as info:
        load_benchmark(path)
    assert time.monotonic() - started < 2  # refused before anything is allocated
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"benchmark {path}: key '{key}' ") and message in text, text


def test_values_at_the_limits_are_accepted(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(GOOD.replace(BINS, "time_bins = { start = 0, end = 10000, width = 1 }")
                    + f"\n[mapping]\noffsets_ms = [-10000, 0, 10000]\n[regression]\nseed = {MAX_SEED}\n"
                    + "[ceiling]\nn_splits = 1\n[dataset.options]\nsize = \"small\"\nseed = 3\n")
    bench = load_benchmark(path)
    assert len(bench.time_bins) == MAX_BINS and bench.mapping.offsets_ms == (-10000.0, 0.0, 10000.0)
    assert bench.regression.seed == MAX_SEED and bench.ceiling.n_splits == 1
    assert bench.dataset_options == {"size": "small", "seed": 3}


def test_a_table_benchmark_with_valid_tables_loads(tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(GOOD + '\n[mapping]\npolicy = "table"\ntables = { conv = { 0 = [70, 170], 1 = 170 } }\n')
    assert load_benchmark(path).mapping.tables == {"conv": {"0": [70, 170], "1": 170}}


@pytest.mark.parametrize(("edit", "key"), [("[mapping]\noffsets_ms = [-100000]", "mapping.offsets_ms[0]"),
                                            ((BINS, "time_bins = { start = 0, end = 1e9, width = 1 }"),
                                             "neural.time_bins.end"),
                                            (('["IT"]', '["IT", "IT"]'), "neural.regions")])
def test_the_cli_exits_2_in_one_line_with_no_output(tmp_path, capsys, edit, key):
    path = tmp_path / "toy.toml"
    path.write_text(edited(edit))
    out = tmp_path / "s.nc"
    code = main(["score", "--model", "cornet_z", "--benchmark", str(path), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and re.search(rf"{re.escape(str(path))}: key '{re.escape(key)}'", err)
    assert not out.exists()


def test_at_score_time_the_bins_and_so_the_offsets_must_lie_in_the_recording(tmp_path):
    # offsets are bounded by the benchmark's bins on load; the bins must tile the recording's when it is scored
    from conftest import TOY_BENCHMARK, toy
    from neurofit.scoring.score import score

    rec, stimuli, acts = toy(n_obj=4, per_obj=4, n_bins=2)  # bins 0-10, 10-20 ms
    path = tmp_path / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin").replace("end = 50", "end = 30"))
    with pytest.raises(ValidationError) as info:
        score(acts, path, data=(rec, stimuli), progress=False, work_dir=tmp_path / "work")
    assert str(info.value) == ("benchmark 'toy' needs the time bin 20-30 ms, which the recording's bins (0-10, 10-20 "
                               "ms) do not tile")
