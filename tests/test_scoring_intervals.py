"""No estimate lies outside its own interval (issue 14, item 3): why it happened, and the fix at its cause."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.scoreset import centred_interval, common_bins, regions, summarise
from neurofit.stats.bootstrap import percentile_interval


def test_a_skewed_site_distribution_biases_the_stimulus_draws_and_the_centred_interval_corrects_it():
    # The cause, reproduced: in a bin the neurons hardly respond to, every site's r is near 0 and its ceiled
    # score ~ r^2 (bounded below by 0, skewed). A stimulus draw perturbs each site's r; squaring moves every
    # perturbed value away from 0, so the median over sites of the draws sits above the estimate and the
    # plain percentile interval of the draws lies entirely above it.
    rng = np.random.default_rng(0)
    r = rng.normal(0.0, 0.05, size=(60, 1))
    estimate = np.median(r**2, axis=0)
    draws = np.median((r[None] + rng.normal(0.0, 0.05, size=(1000, 60, 1))) ** 2, axis=1)
    low, high = percentile_interval(draws, 0.95)
    assert estimate[0] < low[0]  # the plain interval excludes its own estimate
    low, high = centred_interval(draws, estimate)
    assert low[0] <= estimate[0] <= high[0]
    # the spread is kept: the width is that of the percentile interval
    plain = np.diff(np.percentile(draws, [2.5, 97.5], axis=0), axis=0)[0]
    np.testing.assert_allclose(high - low, plain)


def test_nan_draws_give_a_nan_interval():
    low, high = centred_interval(np.full((10, 2), np.nan), np.array([np.nan, np.nan]))
    assert np.isnan(low).all() and np.isnan(high).all()


@pytest.fixture(scope="module")
def demo_style(tmp_path_factory):
    """The demo's feedforward checkpoint on small synthetic-ventral data, bins from onset: the early bins have
    ceilings near zero (the IT 0-10 ms case of the issue), the later ones are reliable."""
    from neurofit.data.synthetic import generate_synthetic_ventral
    from neurofit.models.train import shipped_checkpoint
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.score import score

    rec, stimuli = generate_synthetic_ventral("small", n_v4=10, n_it=10, repetitions=8, cache=False)
    bins = tuple((float(a), float(a + 10)) for a in range(0, 140, 20))
    out = []
    for bench_id in ("synthetic-ventral-v4-temporal", "synthetic-ventral-it-temporal"):
        bench = load_benchmark(bench_id).replace(time_bins=bins, regression={"n_components": 5, "n_splits": 3},
                                                 aggregate={"n_bootstrap": 200}, mapping={"offsets_ms": (0.0,)})
        out.append(score(str(shipped_checkpoint("cornet_z")), bench, data=(rec, stimuli), progress=False,
                         cache=False, work_dir=tmp_path_factory.mktemp("work")))
    return out


def test_no_stored_estimate_lies_outside_its_interval_on_demo_style_data(demo_style):
    checked = 0
    for s in demo_style:
        for estimate, interval in (("median_ceiled", "median_ceiled"), ("median_ceiled", "median_ceiled_sites"),
                                   ("median_r", "median_r"), ("median_r", "median_r_sites")):
            value = s[estimate].values
            low, high = s[f"{interval}_low"].values, s[f"{interval}_high"].values
            ok = np.isfinite(low) & np.isfinite(high)
            assert ok.any()
            assert np.all(low[ok] <= value[ok]) and np.all(value[ok] <= high[ok]), (s.attrs["benchmark"], interval)
            checked += int(ok.sum())
        for region in regions(s):
            for variable in ("ceiled", "r"):
                summary = summarise(s, region, common_bins([s], region, variable), variable, n_boot=200)
                assert not np.isfinite(summary.value) or summary.contains_estimate
    assert checked > 40
    # the early bins of this data are the unreliable ones the issue saw
    assert any(s.attrs["bins_unreliable"][r] for s in demo_style for r in regions(s))


def test_no_printed_estimate_lies_outside_its_interval(demo_style):
    from neurofit.scoreset import summary_table

    checked = 0
    for s in demo_style:
        text = summary_table(s)
        assert "CI excludes the estimate" not in text
        for line in text.splitlines():
            if ": mean over the" in line and "[nan" not in line:
                checked += 1
                head, _, tail = line.rpartition(" [")
                estimate = float(head.rsplit(" ", 1)[-1])
                low, high = (float(v) for v in tail.split("]")[0].split(","))
                assert low <= estimate <= high, line
    assert checked >= 1
