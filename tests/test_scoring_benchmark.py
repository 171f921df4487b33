"""Benchmark files: the shipped ones load, and malformed ones fail naming the file and key."""

from __future__ import annotations

import pytest

from neurofit.errors import NeurofitError, ValidationError
from neurofit.scoring.benchmark import list_benchmarks, load_benchmark

GOOD = """
id = "{id}"
version = "2"

[dataset]
id = "synthetic-ventral"

[neural]
regions = ["IT"]
time_bins = {{ start = 0, end = 250, width = 10 }}

[stimuli]
degrees = 8.0
"""


def _write(tmp_path, text, name="toy"):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def test_every_shipped_benchmark_loads_and_validates():
    found = list_benchmarks()
    for bid in ("synthetic-ventral-v4-temporal", "synthetic-ventral-it-temporal", "majajhong2015-v4-brainscore",
                "majajhong2015-it-brainscore"):
        assert bid in found
    for bid in found:
        bench = load_benchmark(bid)
        assert bench.id == bid and bench.version


def test_synthetic_temporal_benchmarks_have_10ms_bins_from_0_to_250():
    for region in ("V4", "IT"):
        bench = load_benchmark(f"synthetic-ventral-{region.lower()}-temporal")
        assert bench.regions == (region,)
        assert bench.time_bins == tuple((float(s), float(s + 10)) for s in range(0, 250, 10))
        assert bench.dataset == "synthetic-ventral" and bench.commitment_fraction > 0


def test_brainscore_benchmarks_follow_brainscore_procedure():
    bench = load_benchmark("majajhong2015-it-brainscore")
    assert (bench.split_scheme, bench.split_seed, bench.temporal_mode) == ("brainscore", 1, "span_time")
    assert (bench.metric, bench.n_components, bench.algorithm) == ("pls", 25, "nipals")
    assert (bench.ceiling, bench.ceiling_seed, bench.normalisation) == ("brainscore", 1, "r2_over_ceiling")
    assert bench.time_bins == ((70.0, 170.0),)


def test_defaults_fill_in_and_the_hash_follows_the_settings(tmp_path):
    a = load_benchmark(_write(tmp_path, GOOD.format(id="toy")))
    assert (a.metric, a.split_scheme, a.temporal_mode, a.mapping_policy) == ("pls", "kfold", "per_bin", "one_to_one")
    (tmp_path / "v3").mkdir()
    b = load_benchmark(_write(tmp_path / "v3", GOOD.format(id="toy").replace('version = "2"', 'version = "3"')))
    assert a.sha256() != b.sha256()


def test_unknown_benchmark_id_lists_the_valid_ones():
    with pytest.raises(NeurofitError, match="unknown benchmark 'no-such'; valid benchmarks: .*synthetic-ventral-it"):
        load_benchmark("no-such")


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda t: t.replace('[stimuli]', 'metric = "pls"\n[stimuli]'), "neural.metric"),
        (lambda t: t + '\n[regression]\nmetric = "lasso"\n', "regression.metric"),
        (lambda t: t + '\n[regression]\ntemporal_mode = "all"\n', "regression.temporal_mode"),
        (lambda t: t + '\n[regression]\nn_splits = "ten"\n', "regression.n_splits"),
        (lambda t: t.replace('["IT"]', '["MT"]'), "neural.regions"),
        (lambda t: t.replace("width = 10", "width = 7"), "neural.time_bins"),
        (lambda t: t.replace("degrees = 8.0", ""), "stimuli.degrees"),
        (lambda t: t + '\n[mapping]\npolicy = "table"\n', "mapping.tables"),
        (lambda t: t + '\n[commitment]\nfraction = 1.5\n', "commitment.fraction"),
        (lambda t: "extra = 1\n" + t, "extra"),
    ],
)
def test_malformed_benchmark_names_file_and_key(tmp_path, edit, key):
    path = _write(tmp_path, edit(GOOD.format(id="toy")))
    with pytest.raises(ValidationError) as info:
        load_benchmark(path)
    message = str(info.value)
    assert str(path) in message and f"'{key}'" in message


def test_id_must_match_the_file_name(tmp_path):
    path = _write(tmp_path, GOOD.format(id="other"))
    with pytest.raises(ValidationError, match="'id' is 'other' but the file is named toy.toml"):
        load_benchmark(path)


def test_invalid_toml_is_a_validation_error(tmp_path):
    with pytest.raises(ValidationError, match="is not valid TOML"):
        load_benchmark(_write(tmp_path, "id = \n"))
