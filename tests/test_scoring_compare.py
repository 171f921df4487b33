"""compare(): each ScoreSet against the first (B - A), per region and bin, with one correction over all comparisons."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from statsmodels.stats.multitest import multipletests

from neurofit.errors import NeurofitError
from neurofit.stats.bootstrap import bootstrap_p, hierarchical_median
from neurofit.stats.compare import compare, comparison_table, verdict, verdict_text


def _scoreset(values: np.ndarray, name: str, benchmark: str = "toy") -> xr.Dataset:
    n_sites, n_bins = values.shape
    return xr.Dataset(
        {"ceiled": (("neuroid", "time_bin"), values), "r": (("neuroid", "time_bin"), np.sqrt(np.abs(values))),
         "ceiling": (("neuroid", "time_bin"), np.full(values.shape, 0.8))},
        coords={"neuroid_id": ("neuroid", [f"n{i}" for i in range(n_sites)]),
                "region": ("neuroid", ["IT"] * n_sites),
                "time_bin_start": ("time_bin", 10.0 * np.arange(n_bins)),
                "time_bin_end": ("time_bin", 10.0 * np.arange(1, n_bins + 1))},
        attrs={"model_id": name, "benchmark": benchmark},
    )


@pytest.fixture()
def three():
    rng = np.random.default_rng(0)
    base = rng.normal(0.5, 0.1, (40, 3))
    better_late = base + np.array([0.0, 0.0, 0.15]) + rng.normal(0, 0.02, (40, 3))
    same = base + rng.normal(0, 0.02, (40, 3))
    return _scoreset(base, "feedforward"), _scoreset(better_late, "recurrent"), _scoreset(same, "control")


def test_every_scoreset_is_compared_with_the_first_and_corrected_together(three):
    a, b, c = three
    result = compare(a, b, c, n_boot=200)
    assert result.sizes["comparison"] == 2
    assert list(result.model_b.values) == ["recurrent", "control"] and set(result.model_a.values) == {"feedforward"}
    diffs = [b.ceiled.values - a.ceiled.values, c.ceiled.values - a.ceiled.values]
    np.testing.assert_allclose(result.median_difference.values[:, 0], [np.median(d, 0) for d in diffs])
    # reference: the bootstrap p of each bin (seed 0 for the one region), Benjamini-Hochberg over both comparisons
    p = np.concatenate([bootstrap_p(hierarchical_median(d, n_boot=200, seed=0)) for d in diffs])
    np.testing.assert_allclose(result.p.values[:, 0].ravel(), p)
    expected_q = multipletests(p, method="fdr_bh")[1].reshape(2, 3)
    np.testing.assert_allclose(result.q.values[:, 0], expected_q, rtol=1e-10)


def test_the_verdict_lists_better_worse_and_undetectable_bins(three):
    a, b, _ = three
    worse_late = a.assign(ceiled=a.ceiled - np.array([0.0, 0.15, 0.0])).assign_attrs(model_id="worse")
    result = compare(a, b, worse_late, n_boot=200)
    better = verdict(result, 0)
    assert better["better"] == [("IT", 20.0, 30.0)] and better["worse"] == []
    assert [w[:2] for w in better["no_difference"]] == [("IT", 0.0), ("IT", 10.0)]
    assert verdict(result, 1)["worse"] == [("IT", 10.0, 20.0)]
    lines = verdict_text(result, 1)
    assert lines[0].startswith("worse (B) vs feedforward (A, reference), ceiled score")
    assert "  IT worse: 10-20 ms" in lines
    table = comparison_table(result)
    assert table.splitlines()[0].startswith("compared: ceiled score per site, B - A")
    assert "recurrent vs feedforward" in table and table.count(" *") == 2
    for line in table.splitlines():
        if line.endswith("*") or " * " in line:
            interval = line[line.index("[") + 1:line.index("]")]
            low, high = (float(v) for v in interval.split(","))
            assert low > 0 or high < 0, line


def test_scoresets_of_different_benchmarks_are_not_compared(three):
    a, b, _ = three
    with pytest.raises(NeurofitError, match="different benchmarks"):
        compare(a, b.assign_attrs(benchmark="other"))
