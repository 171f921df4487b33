"""Noise-ceiling intervals follow the rule of every score interval (issue 14, item 3).

The CI of a bin's median noise ceiling (what decides whether the bin is reliable, and what the summary table
prints beside the median ceiling) is :func:`neurofit.scoreset.centred_interval` of the site-bootstrap draws
around the printed median, as the CIs of the scores are: the estimate always lies inside its own interval.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neurofit.scoreset import RELIABILITY_THRESHOLD, bin_reliability, centred_interval, summary_table
from neurofit.stats.bootstrap import hierarchical_median, percentile_interval


def _ceiling_set(ceiling: np.ndarray, regions: list[str]) -> xr.Dataset:
    n_sites, n_bins = ceiling.shape
    r = np.full_like(ceiling, 0.3)
    return xr.Dataset(
        {"ceiling": (("neuroid", "time_bin"), ceiling), "r": (("neuroid", "time_bin"), r),
         "ceiled": (("neuroid", "time_bin"), r**2 / np.where(ceiling > 0, ceiling, np.nan))},
        coords={"region": ("neuroid", regions), "neuroid_id": ("neuroid", [f"n{i}" for i in range(n_sites)]),
                "time_bin_start": ("time_bin", 10.0 * np.arange(n_bins)),
                "time_bin_end": ("time_bin", 10.0 * np.arange(1, n_bins + 1))})


def test_the_ceiling_interval_is_the_centred_interval_of_the_site_draws():
    rng = np.random.default_rng(1)
    ceiling = np.c_[rng.exponential(0.05, 30) - 0.02, rng.normal(0.5, 0.2, 30), rng.exponential(0.3, 30) ** 2]
    regions = ["V4"] * 12 + ["IT"] * 18
    reliability = bin_reliability(_ceiling_set(ceiling, regions), n_boot=500, seed=3)
    for k, region in enumerate(["V4", "IT"]):  # regions in order of first appearance, seeded seed + k
        sites = ceiling[np.array(regions) == region]
        median = np.median(sites, axis=0)
        low, high = centred_interval(hierarchical_median(sites, n_boot=500, seed=3 + k), median)
        np.testing.assert_array_equal(reliability.median[region], median)
        np.testing.assert_array_equal(reliability.low[region], low)
        np.testing.assert_array_equal(reliability.high[region], high)
        # the spread of the plain percentile interval is kept
        plain_low, plain_high = percentile_interval(hierarchical_median(sites, n_boot=500, seed=3 + k))
        np.testing.assert_allclose(high - low, plain_high - plain_low, atol=1e-12)
    assert "centred on the median ceiling" in reliability.rule


@pytest.mark.parametrize("seed", range(20))
def test_the_median_ceiling_lies_inside_its_interval_and_a_low_median_is_never_reliable(seed):
    rng = np.random.default_rng(seed)
    n_sites = int(rng.integers(3, 40))
    # skewed, partly negative ceilings (bins before the response) and some NaN sites
    ceiling = rng.exponential(rng.uniform(0.01, 0.5, size=6), size=(n_sites, 6)) ** rng.uniform(0.5, 3) - 0.03
    ceiling[rng.random(ceiling.shape) < 0.1] = np.nan
    ceiling[0] = 0.2  # every bin has a site
    reliability = bin_reliability(_ceiling_set(ceiling, ["IT"] * n_sites), n_boot=300)
    median, low, high = (getattr(reliability, name)["IT"] for name in ("median", "low", "high"))
    assert np.all(low <= median + 1e-15) and np.all(median <= high + 1e-15)
    # with the estimate inside its interval, a median ceiling at or below the threshold is never reliable
    assert not np.any(reliability.reliable["IT"] & (median <= RELIABILITY_THRESHOLD))


def test_the_printed_ceiling_interval_contains_the_printed_median():
    rng = np.random.default_rng(0)
    ceiling = np.c_[rng.exponential(0.04, 25) - 0.03, rng.normal(0.45, 0.15, 25)]
    ds = _ceiling_set(ceiling, ["IT"] * 25)
    ds["median_ceiled"] = (("region", "time_bin"), np.nanmedian(ds["ceiled"].values, axis=0)[None])
    ds["median_r"] = (("region", "time_bin"), np.full((1, 2), 0.3))
    ds = ds.assign_coords(region_name=("region", ["IT"]))
    checked = 0
    for line in summary_table(ds).splitlines():
        if line.startswith("IT "):
            cell = line.split("]")[0]
            median, interval = cell.rsplit("[", 1)
            low, high = (float(v) for v in interval.split(","))
            assert low <= float(median.split()[-1]) <= high, line
            checked += 1
    assert checked == 2
