"""Time mapping policies: which (layer, step, weight) each recording bin uses."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.errors import NeurofitError
from neurofit.models.base import TimeMap
from neurofit.scoring import timemap as tmap

BINS_10 = [(float(s), float(s + 10)) for s in range(0, 100, 10)]


def _steps(mapping: tmap.BinMapping) -> list[list[int]]:
    return [[r.step for r in refs] for refs in mapping.refs]


def test_one_to_one_step_t_covers_its_own_window():
    tm = TimeMap(steps=10, first_driven={"IT": 0})
    m = tmap.one_to_one(BINS_10, "IT", tm)
    assert _steps(m) == [[t] for t in range(10)]
    assert all(r.weight == 1.0 for refs in m.refs for r in refs)


def test_one_to_one_offset_and_t0_shift_the_model_later():
    tm = TimeMap(steps=10, first_driven={"IT": 0}, t0_ms=10.0)
    m = tmap.one_to_one(BINS_10, "IT", tm, offset_ms=30.0)
    # step t covers [40 + 10 t, 50 + 10 t): bins before 40 ms have no step
    assert _steps(m) == [[], [], [], [], [0], [1], [2], [3], [4], [5]]
    assert len(m.skipped) == 4 and "outside" in m.skipped[0]


def test_one_to_one_never_uses_steps_before_arrival():
    tm = TimeMap(steps=10, first_driven={"IT": 3})
    m = tmap.one_to_one(BINS_10, "IT", tm)
    assert _steps(m)[:4] == [[], [], [], [3]]
    assert all(r.step >= 3 for refs in m.refs for r in refs)
    assert "before 'IT' is driven" in m.skipped[0]


def test_one_to_one_rejects_bins_wider_than_a_step():
    tm = TimeMap(steps=10, first_driven={"IT": 0})
    with pytest.raises(NeurofitError, match="use mapping policy 'portion'"):
        tmap.one_to_one([(70, 170)], "IT", tm)


def test_layer_never_driven_within_the_unroll_is_an_error():
    tm = TimeMap(steps=3, first_driven={"IT": 3})
    for policy in ("one_to_one", "portion", "constant"):
        with pytest.raises(NeurofitError, match="never receives image-driven input within the 3 steps"):
            tmap.map_time(policy, BINS_10[:3], "IT", tm)


def test_table_takes_the_nearest_start_among_driven_steps():
    # Brain-Score's CORnet-S IT commitment: 2 steps of 100 ms starting at 100 ms
    tm = TimeMap(steps=2, first_driven={"IT": 0})
    bins = [(70.0, 80.0), (140.0, 150.0), (150.0, 160.0), (160.0, 170.0), (240.0, 250.0)]
    m = tmap.table(bins, "IT", tm, {0: (100, 200), 1: (200, 300)})
    # 150 is equidistant from 100 and 200: the earlier step wins
    assert _steps(m) == [[0], [0], [0], [1], [1]]
    late = TimeMap(steps=2, first_driven={"IT": 1})
    assert _steps(tmap.table(bins, "IT", late, {0: 100, 1: 200})) == [[1]] * 5


def test_portion_weights_are_overlap_fractions_and_sum_to_one():
    rng = np.random.default_rng(0)
    tm = TimeMap(steps=30, first_driven={"V4": 2}, step_ms=10.0)
    for _ in range(50):
        start = rng.uniform(0, 200)
        end = start + rng.uniform(1, 60)
        m = tmap.portion([(start, end)], "V4", tm)
        refs = m.refs[0]
        if not refs:
            assert end <= 20.0
            continue
        weights = np.array([r.weight for r in refs])
        assert np.isclose(weights.sum(), 1.0)
        # reference: overlap of [start, end) with each driven step window, normalised
        expected = {}
        for t in range(2, 30):
            ov = min(end, 10 * t + 10) - max(start, 10 * t)
            if ov > 1e-9:
                expected[t] = ov
        total = sum(expected.values())
        assert {r.step: r.weight for r in refs} == pytest.approx({t: v / total for t, v in expected.items()})


def test_portion_of_an_aligned_bin_is_one_to_one():
    tm = TimeMap(steps=10, first_driven={"IT": 0})
    assert tmap.portion(BINS_10, "IT", tm).refs == tmap.one_to_one(BINS_10, "IT", tm).refs


def test_constant_uses_the_single_feedforward_response_everywhere():
    tm = TimeMap(steps=1, first_driven={"IT": 0})
    m = tmap.constant(BINS_10, "IT", tm)
    assert _steps(m) == [[0]] * 10
    with pytest.raises(NeurofitError, match="before the layer is driven"):
        tmap.constant(BINS_10, "IT", TimeMap(steps=5, first_driven={"IT": 3}), step=1)


def test_graded_maps_successive_layers_to_successive_bins():
    tm = TimeMap(steps=1, first_driven={"V1": 0, "V2": 0, "V4": 0, "IT": 0})
    m = tmap.graded(BINS_10[:7], ["V1", "V2", "V4", "IT"], tm, offset_ms=20.0)
    layers = [[r.layer for r in refs] for refs in m.refs]
    assert layers == [[], [], ["V1"], ["V2"], ["V4"], ["IT"], ["IT"]]
    wide = tmap.graded([(15.0, 35.0)], ["V1", "V2", "V4"], tm)
    assert [(r.layer, r.weight) for r in wide.refs[0]] == [("V2", 0.25), ("V4", 0.75)]


def test_unknown_policy_lists_the_valid_ones():
    tm = TimeMap(steps=1, first_driven={"IT": 0})
    with pytest.raises(NeurofitError, match="valid policies: one_to_one, table, portion, constant, graded"):
        tmap.map_time("nearest", BINS_10, "IT", tm)


def test_mapping_is_recorded_as_plain_attrs():
    tm = TimeMap(steps=10, first_driven={"IT": 0})
    attrs = tmap.one_to_one(BINS_10, "IT", tm, offset_ms=20).to_attrs()
    assert attrs["policy"] == "one_to_one" and attrs["options"]["offset_ms"] == 20.0
    assert attrs["refs"][2] == [["IT", 0, 1.0]]
