"""Ground truth on synthetic-ventral: the pipeline recovers what the hidden generator put in (slow)."""

from __future__ import annotations

import numpy as np
import pytest

from neurofit.scoreset import region_aggregate
from neurofit.scoring.benchmark import load_benchmark
from neurofit.scoring.resolve import activations_from_arrays
from neurofit.scoring.score import score
from neurofit.stats.compare import compare

SIZE = "small"
RESPONSE_WINDOW = (120.0, 250.0)  # IT input arrives at 70-110 ms
# Recovering a site's sparse readout of 256 hidden IT units from noisy 10 ms counts needs more stimuli and
# repetitions than the default set has (768 x 20: ridge reaches ~0.4 ceiled there); at 1536 stimuli x 30
# repetitions the hidden features score 0.89-0.94 (measured), which is what this check is about.
LARGE = {"size": 1536, "repetitions": 30, "n_v4": 8, "n_it": 40}


@pytest.fixture(scope="module")
def synthetic():
    from neurofit.data.synthetic import generate_synthetic_ventral

    return generate_synthetic_ventral(SIZE)


@pytest.fixture(scope="module")
def benchmark():
    # every stimulus scored, the generator's own time axis (offset 0): this checks the regression and the
    # ceiling, not the commitment
    return load_benchmark("synthetic-ventral-it-temporal").replace(
        commitment={"fraction": 0.0}, mapping={"offsets_ms": (0.0,)}, aggregate={"n_bootstrap": 200})


def _hidden(ablate: bool, size=SIZE):
    from neurofit.data.synthetic import hidden_features

    feats = hidden_features(size, ablate_recurrence=ablate)
    it = feats.values[:, feats["stage"].values == "IT"].transpose(2, 0, 1)  # (bin, stimulus, unit)
    label = "generator IT, recurrence ablated" if ablate else "generator IT"
    return activations_from_arrays({"IT": it}, feats["stimulus_id"].values, model_id=label)


def _window(scores):
    start = scores["time_bin_start"].values
    return (start >= RESPONSE_WINDOW[0]) & (start < RESPONSE_WINDOW[1])


@pytest.fixture(scope="module")
def full_scores(synthetic, benchmark):
    return score(_hidden(False), benchmark, data=synthetic, progress=False)


def _rates(stimuli, recording, ablate: bool) -> np.ndarray:
    """The generator's noise-free IT rates ``(bin, stimulus, site)``, with or without its recurrence."""
    from neurofit.data.synthetic import VentralGenerator, resolve_size

    spec = resolve_size(SIZE)
    generator = VentralGenerator(seed=spec.seed, n_v4=spec.n_v4, n_it=spec.n_it)
    rates = generator.rates(stimuli.arrays, ablate_recurrence=ablate)[:, recording["region"].values == "IT"]
    return rates.transpose(2, 0, 1)


@pytest.fixture(scope="module")
def perfect_scores(synthetic, benchmark):
    """The noise-free rates of the sites themselves are the perfect model (ridge reads each site's own rate)."""
    recording, stimuli = synthetic
    perfect = activations_from_arrays({"IT": _rates(stimuli, recording, False)}, stimuli.stimulus_ids,
                                      model_id="generator rates")
    return score(perfect, benchmark.replace(regression={"metric": "ridge"}), data=synthetic, progress=False)


@pytest.mark.slow
def test_generator_rates_score_near_the_noise_ceiling(perfect_scores):
    window = region_aggregate(perfect_scores, "median_ceiled", "IT")[_window(perfect_scores)]
    # measured 0.70-0.84 on the small set (192 stimuli): the cross-validated ridge fit costs the rest
    assert np.all((window > 0.65) & (window < 1.15)), window


@pytest.mark.slow
def test_generator_features_score_far_above_random_features(synthetic, benchmark, full_scores):
    ids = synthetic[1].stimulus_ids
    noise = np.random.default_rng(0).normal(size=(25, len(ids), 256))
    random_scores = score(activations_from_arrays({"IT": noise}, ids, model_id="random"), benchmark, data=synthetic,
                          progress=False)
    hidden = region_aggregate(full_scores, "median_ceiled", "IT")[_window(full_scores)]
    random = region_aggregate(random_scores, "median_ceiled", "IT")[_window(random_scores)]
    assert np.all(random < 0.05), random
    assert np.all(hidden > 5 * np.maximum(random, 0.01)), (hidden, random)


@pytest.mark.slow
def test_ablating_recurrence_lowers_late_it_scores_but_not_early_ones(synthetic, benchmark, perfect_scores):
    """The generator's own rates without its recurrence (feedforward sweep only) against the full rates."""
    recording, stimuli = synthetic
    sweep = activations_from_arrays({"IT": _rates(stimuli, recording, True)}, stimuli.stimulus_ids,
                                    model_id="generator rates, recurrence ablated")
    ablated = score(sweep, benchmark.replace(regression={"metric": "ridge"}), data=synthetic, progress=False)
    result = compare(ablated, perfect_scores, n_boot=200).isel(comparison=0, region=0)  # full minus ablated
    start = result["time_bin_start"].values
    early = start < 90.0  # the recurrent loop adds its 20 ms after the first IT input at 70 ms
    late = start >= 120.0
    assert not result["significant"].values[early].any()
    np.testing.assert_array_equal(result["median_difference"].values[early], 0.0)
    late_better = result["significant"].values[late] & (result["median_difference"].values[late] > 0)
    assert late_better.sum() >= late.sum() // 2, (result["median_difference"].values[late], result["q"].values[late])


@pytest.fixture(scope="module")
def large():
    from neurofit.data.synthetic import generate_synthetic_ventral

    return generate_synthetic_ventral(LARGE["size"], repetitions=LARGE["repetitions"], n_v4=LARGE["n_v4"],
                                      n_it=LARGE["n_it"])


@pytest.fixture(scope="module")
def large_scores(large, benchmark):
    ridge = benchmark.replace(regression={"metric": "ridge"})
    return {ablate: score(_hidden(ablate, LARGE["size"]), ridge, data=large, progress=False)
            for ablate in (False, True)}


@pytest.mark.slow
def test_generator_hidden_features_score_above_0_8_in_the_response_window(large, benchmark, large_scores):
    full = large_scores[False]
    hidden = region_aggregate(full, "median_ceiled", "IT")[_window(full)]
    assert np.all(hidden > 0.8), hidden
    ids = large[1].stimulus_ids
    noise = np.random.default_rng(0).normal(size=(25, len(ids), 256))
    random_scores = score(activations_from_arrays({"IT": noise}, ids, model_id="random"),
                          benchmark.replace(regression={"metric": "ridge"}), data=large, progress=False)
    random = region_aggregate(random_scores, "median_ceiled", "IT")[_window(random_scores)]
    assert np.all(random < 0.1), random


@pytest.mark.slow
def test_ablating_the_generators_recurrence_lowers_its_features_late_scores_not_early(large_scores):
    """The generator's hidden features with recurrence ablated (feedforward sweep) against its full features."""
    result = compare(large_scores[True], large_scores[False], n_boot=200).isel(comparison=0, region=0)
    start = result["time_bin_start"].values
    early = start < 90.0  # the loop adds its 20 ms after the first IT input at 70 ms
    late = start >= 120.0
    assert not result["significant"].values[early].any()
    np.testing.assert_array_equal(result["median_difference"].values[early], 0.0)
    late_better = result["significant"].values[late] & (result["median_difference"].values[late] > 0)
    assert late_better.all(), (result["median_difference"].values[late], result["q"].values[late])
