"""The embedded default dataset synthetic-ventral: determinism, contract, latencies, reliability, recurrence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from threadpoolctl import threadpool_limits

from neurofit.cli import main
from neurofit.data import average_repetitions, read_recording, read_stimulus_set, trial_array, validate
from neurofit.data import synthetic as syn
from neurofit.errors import NeurofitError
from neurofit.regression.ceiling import split_half_ceiling


@pytest.fixture(scope="module")
def small():
    return syn.generate_synthetic_ventral("small", cache=False)


@pytest.fixture(scope="module")
def ground_truth(small):
    """Noise-free rates and hidden features (with and without recurrence) for the small stimuli."""
    _, stimuli = small
    generator = syn.VentralGenerator(seed=0, n_v4=16, n_it=32)
    full = generator.features(stimuli.arrays)
    ablated = generator.features(stimuli.arrays, ablate_recurrence=True)
    return generator.rates_from_features(full), full, ablated


@pytest.fixture()
def cache_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "synthetic"


def site_onsets_ms(recording, region: str, k: float = 5.0) -> np.ndarray:
    """Per site: start of the first bin whose mean count exceeds the 0-30 ms baseline by k standard errors."""
    mask = recording.coords["region"].values == region
    counts = recording.values[:, mask, :].astype(np.float64)  # presentation, site, bin
    psth = counts.mean(axis=0)
    baseline = counts[:, :, :3].mean(axis=2)
    threshold = baseline.mean(axis=0) + k * baseline.std(axis=0) / np.sqrt(len(counts))
    above = psth > threshold[:, None]
    assert above.any(axis=1).all(), "every site responds"
    return recording.coords["time_bin_start"].values[np.argmax(above, axis=1)]


def window_split_half(recording, region: str, lo: float = 70, hi: float = 170) -> np.ndarray:
    """Plain numpy split-half reliability (even vs odd repetitions, Spearman-Brown) of counts in [lo, hi)."""
    trials, _ = trial_array(recording)
    starts = recording.coords["time_bin_start"].values
    summed = trials[:, :, recording.coords["region"].values == region][..., (starts >= lo) & (starts < hi)]
    summed = summed.sum(axis=-1)  # stimulus, repetition, site
    a, b = summed[:, 0::2].mean(axis=1), summed[:, 1::2].mean(axis=1)
    r = np.array([np.corrcoef(a[:, i], b[:, i])[0, 1] for i in range(a.shape[1])])
    return 2 * r / (1 + r)


def test_generation_is_bit_identical_for_a_seed(small) -> None:
    recording, stimuli = small
    again, stimuli_again = syn.generate_synthetic_ventral("small", cache=False)
    assert again.dtype == recording.dtype == np.int16
    assert np.array_equal(again.values, recording.values)
    assert again.identical(recording)
    assert np.array_equal(stimuli_again.arrays, stimuli.arrays)
    assert stimuli_again.sha256() == stimuli.sha256()


def test_a_different_seed_gives_different_stimuli_and_counts(small) -> None:
    recording, stimuli = small
    other, other_stimuli = syn.generate_synthetic_ventral("small", seed=1, n_v4=2, n_it=2, repetitions=2,
                                                          cache=False)
    assert not np.array_equal(other_stimuli.arrays, stimuli.arrays)
    assert other.attrs["source_sha256"] != recording.attrs["source_sha256"]
    assert other.attrs["stimulus_set_identifier"] != recording.attrs["stimulus_set_identifier"]


def test_recording_follows_the_contract_and_says_it_is_synthetic(small) -> None:
    recording, stimuli = small
    validate(recording, stimuli)
    assert dict(recording.sizes) == {"presentation": 192 * 20, "neuroid": 48, "time_bin": 25}
    assert recording.coords["time_bin_start"].values.tolist() == list(np.arange(0.0, 250.0, 10.0))
    assert recording.coords["time_bin_end"].values[-1] == 250.0
    assert (recording.coords["region"].values == "V4").sum() == 16
    assert recording.attrs["identifier"] == "synthetic-ventral"
    assert recording.attrs["units"] == "counts"
    assert "synthetic" in recording.attrs["citation"].lower() and "neurofit" in recording.attrs["license"]
    assert recording.attrs["synthetic"] == 1 and "SYNTHETIC" in recording.attrs["description"]
    assert recording.attrs["generator"]["seed"] == 0
    assert recording.attrs["stimulus_set_identifier"] == stimuli.identifier
    reps = np.bincount(np.unique(recording.coords["stimulus_id"].values, return_inverse=True)[1])
    assert (reps == 20).all()
    assert set(recording.coords["variation"].values.tolist()) == {0, 3, 6}
    assert stimuli.table["object_name"].nunique() == 64 and stimuli.table["category_name"].nunique() == 8
    assert stimuli.arrays.shape == (192, 64, 64, 3) and stimuli.degrees == 8.0


def test_v4_responds_before_it(small) -> None:
    recording, _ = small
    v4, it = site_onsets_ms(recording, "V4"), site_onsets_ms(recording, "IT")
    assert v4.mean() + 15 < it.mean()
    # measured onsets track the generator's site latencies (V4 40-70 ms, IT 70-110 ms)
    latency = recording.coords["generator_latency_ms"].values
    onsets = np.concatenate([v4, it])
    assert np.corrcoef(onsets, latency)[0, 1] > 0.8
    assert np.all(np.abs(onsets - latency) <= 20)


def test_it_is_reliable_in_the_response_window(small) -> None:
    recording, _ = small
    reliability = window_split_half(recording, "IT")
    assert np.median(reliability) > 0.5
    # the regression package's ceiling (random halvings) agrees with the plain even/odd split
    trials, _ = trial_array(recording.isel(time_bin=slice(7, 17)))
    ceiling = split_half_ceiling(trials.sum(axis=-1, keepdims=True))[:, 0]
    it = recording.coords["region"].values == "IT"
    assert abs(np.median(ceiling[it]) - np.median(reliability)) < 0.05


def test_counts_are_poisson_around_the_generator_rates(small) -> None:
    recording, _ = small
    expected_rates = syn.expected_rates("small")
    assert expected_rates.coords["neuroid_id"].values.tolist() == recording.coords["neuroid_id"].values.tolist()
    assert expected_rates.attrs["units"] == "spikes/s"
    rates = expected_rates.values
    trials, _ = trial_array(recording)  # stimulus, repetition, site, bin
    expected = rates * 0.010  # spikes per 10 ms bin
    n_reps = trials.shape[1]
    z = (trials.sum(axis=1) - n_reps * expected) / np.sqrt(n_reps * expected)
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.02
    fano = trials.var(axis=1, ddof=1).sum() / trials.mean(axis=1).sum()
    assert abs(fano - 1.0) < 0.02
    assert np.ptp(rates[:, :, :4], axis=0).max() == 0  # before any latency the rate is the site's baseline


def test_recurrence_changes_late_bins_but_not_early_ones(ground_truth) -> None:
    _, full, ablated = ground_truth
    assert np.array_equal(full.v4, ablated.v4)
    starts = np.arange(25) * 10
    early, late = starts < 90, starts >= 120  # IT input arrives at 70 ms; the recurrent loop takes 20 ms
    assert np.array_equal(full.it[:, early], ablated.it[:, early])
    change = np.abs(full.it - ablated.it).mean(axis=(0, 2)) / np.abs(full.it).mean(axis=(0, 2)).clip(1e-12)
    assert change[late].min() > 0.3


def test_hidden_features_predict_the_rates_and_the_feedforward_sweep_falls_short_late(ground_truth) -> None:
    rates, full, ablated = ground_truth
    cv = KFold(5, shuffle=True, random_state=0)

    def median_r(features: np.ndarray, target: np.ndarray) -> float:
        with threadpool_limits(limits=1, user_api="blas"):
            pred = cross_val_predict(RidgeCV(alphas=np.logspace(-3, 5, 17)), features, target, cv=cv)
        return float(np.median([np.corrcoef(pred[:, i], target[:, i])[0, 1] for i in range(target.shape[1])]))

    v4_sites, it_sites = slice(0, 16), slice(16, 48)
    assert median_r(full.v4[:, 12], rates[:, v4_sites, 12]) > 0.95
    bin_ = 20  # 200-210 ms
    recurrent = median_r(np.concatenate([full.v4[:, bin_], full.it[:, bin_]], 1), rates[:, it_sites, bin_])
    sweep = median_r(np.concatenate([ablated.v4[:, bin_], ablated.it[:, bin_]], 1), rates[:, it_sites, bin_])
    assert recurrent > 0.85
    assert recurrent > sweep + 0.04


def test_hidden_features_are_labelled_per_bin_and_take_other_stimuli() -> None:
    from neurofit.data import synthetic_stimuli as stim
    from neurofit.data.stimuli import StimulusSet

    images, table = stim.render_stimuli({9: 1}, levels={9: 1.5}, image_size=64)
    stimuli = StimulusSet.from_arrays(images[:5], table.iloc[:5], degrees=8.0, identifier="hard")
    feats = syn.hidden_features(stimulus_set=stimuli, ablate_recurrence=True)
    assert feats.dims == ("presentation", "feature", "time_bin")
    assert feats.sizes["presentation"] == 5 and feats.sizes["feature"] == 384
    assert feats.coords["stimulus_id"].values.tolist() == table["stimulus_id"].iloc[:5].tolist()
    assert (feats.coords["stage"].values == "IT").sum() == 256
    assert feats.attrs["ablate_recurrence"] == 1


def test_the_cache_returns_identical_data_and_rebuilds_a_corrupt_file(cache_home, monkeypatch) -> None:
    args = {"n_v4": 2, "n_it": 2, "repetitions": 3}
    recording, stimuli = syn.generate_synthetic_ventral("small", **args)
    files = list(cache_home.glob("synthetic-ventral-*.nc"))
    assert len(files) == 1
    build = syn._build
    monkeypatch.setattr(syn, "_build", lambda spec: pytest.fail("a cached dataset was regenerated"))
    cached, cached_stimuli = syn.generate_synthetic_ventral("small", **args)
    assert cached.identical(recording) and cached.dtype == np.int16
    assert np.array_equal(cached_stimuli.arrays, stimuli.arrays) and cached_stimuli.table.equals(stimuli.table)
    files[0].write_bytes(b"not a netcdf file")
    monkeypatch.setattr(syn, "_build", build)
    rebuilt, _ = syn.generate_synthetic_ventral("small", **args)
    assert rebuilt.identical(recording)
    assert read_recording(files[0]).identical(recording)


def test_the_averaged_form_is_the_mean_of_the_same_trials(small) -> None:
    trials, _ = small
    averaged, _ = syn.generate_synthetic_ventral("small", averaged=True, cache=False)
    assert "repetition" not in averaged.coords and averaged.dtype == np.float32
    reference = average_repetitions(trials)
    assert averaged.coords["stimulus_id"].values.tolist() == reference.coords["stimulus_id"].values.tolist()
    np.testing.assert_allclose(averaged.values, reference.values, rtol=1e-6)


def test_sizes_resolve_and_impossible_sizes_are_rejected() -> None:
    majajhong = syn.resolve_size("majajhong")
    assert majajhong.n_images == 5760 and majajhong.n_v4 + majajhong.n_it == 296
    assert majajhong.views == {0: 10, 3: 40, 6: 40}
    assert syn.resolve_size("default").n_images == 768
    assert syn.resolve_size(448).views == {0: 2, 3: 2, 6: 3}
    assert syn.resolve_size("small").key() != syn.resolve_size("small", seed=1).key()
    with pytest.raises(NeurofitError, match="multiple of 64"):
        syn.resolve_size(100)
    with pytest.raises(NeurofitError, match="unknown synthetic-ventral size 'huge'"):
        syn.resolve_size("huge")
    with pytest.raises(NeurofitError, match="repetitions must be >= 2"):
        syn.resolve_size("small", repetitions=1)


def test_cli_generate_writes_the_recording_and_its_stimulus_set(tmp_path, cache_home, capsys) -> None:
    out = tmp_path / "sv" / "synthetic.nc"
    assert main(["data", "generate", "synthetic-ventral", "--size", "small", "--repetitions", "4",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "V4 (16 sites)" in printed and "IT:" in printed
    recording = read_recording(out)
    stimuli = read_stimulus_set(out.with_suffix(".csv"))
    assert out.with_suffix(".zip").exists()
    validate(recording, stimuli)
    assert recording.sizes["presentation"] == 192 * 4
    assert np.array_equal(np.stack(stimuli.read_raw()[:3]), syn.generate_synthetic_ventral(
        "small", repetitions=4)[1].arrays[:3])


def test_cli_generate_rejects_an_impossible_size_in_one_line(tmp_path, capsys) -> None:
    assert main(["data", "generate", "synthetic-ventral", "--size", "100", "--out", str(tmp_path / "x.nc")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "multiple of 64" in err
    assert main(["data", "generate", "synthetic-ventral", "--out", str(tmp_path / "x.csv")]) == 2
    assert ".nc" in capsys.readouterr().err


@pytest.mark.slow
def test_default_size_has_reliable_it_and_v4_before_it() -> None:
    recording, stimuli = syn.generate_synthetic_ventral("default", cache=False)
    validate(recording, stimuli)
    assert dict(recording.sizes) == {"presentation": 768 * 20, "neuroid": 120, "time_bin": 25}
    assert np.median(window_split_half(recording, "IT")) > 0.5
    assert site_onsets_ms(recording, "V4").mean() < site_onsets_ms(recording, "IT").mean()
