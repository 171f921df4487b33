"""compare(): each ScoreSet against the first, per region and bin, with one correction over all comparisons."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.stats import wilcoxon
from statsmodels.stats.multitest import multipletests

from neurofit.errors import NeurofitError
from neurofit.scoring.compare import compare, comparison_table, recurrence_helps


def _scoreset(values: np.ndarray, name: str, benchmark: str = "toy") -> xr.Dataset:
    n_sites, n_bins = values.shape
    return xr.Dataset(
        {"ceiled": (("neuroid", "time_bin"), values)},
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
    diff = b.ceiled.values - a.ceiled.values
    np.testing.assert_allclose(result.median_difference.values[0, 0], np.median(b.ceiled.values, 0)
                               - np.median(a.ceiled.values, 0))
    # reference: Wilcoxon per bin, Benjamini-Hochberg over both comparisons' bins together
    p = [wilcoxon(x).pvalue for d in (diff, c.ceiled.values - a.ceiled.values) for x in d.T]
    expected_q = multipletests(p, method="fdr_bh")[1].reshape(2, 3)
    np.testing.assert_allclose(result.q.values[:, 0], expected_q, rtol=1e-10)


def test_recurrence_helps_lists_only_significantly_better_bins(three):
    a, b, _ = three
    result = compare(a, b, n_boot=200)
    helps = recurrence_helps(result)
    assert [(region, start) for region, start, _, _ in helps] == [("IT", 20.0)]
    assert helps[0][3] == pytest.approx(float(result.median_difference.isel(comparison=0, region=0, time_bin=2)))
    table = comparison_table(result)
    assert "recurrent vs feedforward" in table and table.count(" *") == 1


def test_scoresets_of_different_benchmarks_are_not_compared(three):
    a, b, _ = three
    with pytest.raises(NeurofitError, match="different benchmarks"):
        compare(a, b.assign_attrs(benchmark="other"))
