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
        assert bench.dataset == "synthetic-ventral" and bench.commitment.fraction > 0


def test_brainscore_benchmarks_follow_brainscore_procedure():
    bench = load_benchmark("majajhong2015-it-brainscore")
    assert (bench.regression.split_scheme, bench.regression.seed, bench.regression.temporal_mode) == ("brainscore",
                                                                                                      1, "span_time")
    assert (bench.regression.metric, bench.regression.n_components, bench.regression.algorithm) == ("pls", 25, "nipals")
    assert (bench.ceiling.method, bench.ceiling.seed, bench.ceiling.normalisation) == ("brainscore", 1,
                                                                                       "r2_over_ceiling")
    assert bench.time_bins == ((70.0, 170.0),)


def test_defaults_fill_in_and_the_hash_follows_the_settings(tmp_path):
    a = load_benchmark(_write(tmp_path, GOOD.format(id="toy")))
    assert (a.regression.metric, a.regression.split_scheme, a.regression.temporal_mode, a.mapping.policy) == (
        "pls", "kfold", "per_bin", "one_to_one")
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


POOLED = """
id = "pooled"
version = "1"
datasets = {datasets}

[neural]
regions = ["V4"]
bins = [[50, 150]]

[stimuli]
degrees = 8.0
"""


def test_pooled_benchmark_lists_its_sessions_and_hashes_them():
    bench = load_benchmark("cowley2023-v4")
    assert bench.datasets == ("cowley2023-v4-210325", "cowley2023-v4-210322", "cowley2023-v4-190923",
                              "cowley2023-v4-210224")
    assert bench.ceiling.method == "split_half" and bench.regions == ("V4",)
    single = load_benchmark("cowley2023-v4-210325")
    assert (bench.time_bins, bench.regression.n_components, bench.regression.n_splits, bench.mapping.offsets_ms) == (
        single.time_bins, single.regression.n_components, single.regression.n_splits, single.mapping.offsets_ms)
    assert bench.sha256() != single.sha256()


def test_benchmark_with_both_dataset_and_datasets_is_rejected(tmp_path):
    text = POOLED.format(datasets="[\"cowley2023-v4-210325\"]") + "\n[dataset]\nid = \"cowley2023-v4-210325\"\n"
    with pytest.raises(ValidationError, match="'datasets' and \\[dataset\\] are exclusive"):
        load_benchmark(_write(tmp_path, text, name="pooled"))


def test_pooled_benchmark_with_an_unknown_session_lists_the_valid_ones(tmp_path):
    path = _write(tmp_path, POOLED.format(datasets='["cowley2023-v4-210325", "cowley2023-v4-999999"]'),
                  name="pooled")
    with pytest.raises(ValidationError, match="names 'cowley2023-v4-999999', which is not a data manifest id; "
                                              "valid ids: .*cowley2023-v4-210322.*cowley2023-v4-210325"):
        load_benchmark(path)


@pytest.mark.parametrize("datasets", ['[]', '"cowley2023-v4-210325"',
                                      '["cowley2023-v4-210325", "cowley2023-v4-210325"]'])
def test_pooled_datasets_must_be_a_list_of_distinct_ids(tmp_path, datasets):
    with pytest.raises(ValidationError, match="'datasets'"):
        load_benchmark(_write(tmp_path, POOLED.format(datasets=datasets), name="pooled"))


def test_repetition_averaged_sessions_have_r_only_benchmarks():
    for session in ("210322", "190923", "210224"):
        bench = load_benchmark(f"cowley2023-v4-{session}")
        assert bench.ceiling.method == "none" and bench.dataset == f"cowley2023-v4-{session}"


@pytest.mark.parametrize(("extra", "key"), [('normalisation = "feve"', "ceiling.normalisation"),
                                            ('[aggregate]\nmethod = "brainscore"', "aggregate.method")])
def test_ceiling_none_rejects_settings_that_need_a_ceiling(tmp_path, extra, key):
    text = GOOD.format(id="toy") + '\n[ceiling]\nmethod = "none"\n' + extra + "\n"
    with pytest.raises(ValidationError, match=f"'{key}'"):
        load_benchmark(_write(tmp_path, text))
