"""The regression engine on real V4 data: Cowley et al. 2023, session 210325 (50 neurons, 640 images).

Skipped when ``NEUROFIT_DATA_PATH`` is unset or the file is absent.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from neurofit.data.recording import make_recording, trial_array
from neurofit.regression import split_half_ceiling
from neurofit.scoring.features import score_features

RAW = "cowley2023_v4/responses_raw/responses_210325.npy"



def _raw_path() -> Path:
    root = os.environ.get("NEUROFIT_DATA_PATH")
    path = Path(root) / RAW if root else None
    if path is None or not path.is_file():
        pytest.skip(f"real data not found: set NEUROFIT_DATA_PATH to a mirror holding {RAW}")
    return path


def _cowley_recording() -> xr.DataArray:
    """(neuron, image, repeat) spike counts -> a recording; NaN (missing repeats) stay NaN."""
    raw = np.load(_raw_path())
    n_neurons, n_images, n_repeats = raw.shape
    rates = np.transpose(raw, (2, 1, 0)).reshape(n_repeats * n_images, n_neurons, 1)
    ids = [f"image{i + 1:04d}" for i in range(n_images)]
    return make_recording(
        rates,
        stimulus_id=ids * n_repeats,
        repetition=np.repeat(np.arange(n_repeats), n_images),
        neuroid_id=[f"210325_n{j:02d}" for j in range(n_neurons)],
        region="V4",
        time_bin_start=[0.0],
        time_bin_end=[100.0],
        identifier="cowley2023-v4-210325",
        stimulus_set_identifier="cowley2023-v4-210325",
    )


def _features(values: np.ndarray, ids) -> xr.DataArray:
    return xr.DataArray(values, dims=("presentation", "feature"), coords={"stimulus_id": ("presentation", ids)})


@pytest.mark.realdata
def test_cowley_split_half_ceiling_median_is_near_the_published_077():
    trials, _ = trial_array(_cowley_recording())
    assert 0.70 <= np.median(split_half_ceiling(trials)) <= 0.84


@pytest.mark.realdata
def test_cowley_bootstrap_intervals_contain_the_point_estimate():
    rec = _cowley_recording()
    averaged = np.nanmean(trial_array(rec)[0], axis=1)[..., 0]  # (image, neuron)
    ids = [str(s) for s in trial_array(rec)[1]]
    # half of the neurons predict the other half
    scores = score_features(_features(averaged[:, :25], ids), rec.isel(neuroid=slice(25, None)),
                           n_components=10, bootstrap=300, device="cpu")
    median = scores.median_ceiled.values
    assert 0.05 < float(median[0, 0]) < 1.5
    for suffix in ("", "_sites"):
        assert (scores[f"median_ceiled{suffix}_low"].values <= median).all()
        assert (median <= scores[f"median_ceiled{suffix}_high"].values).all()


@pytest.mark.realdata
def test_cowley_regression_on_stimulus_shuffled_self_gives_median_r_near_zero():
    rec = _cowley_recording()
    trials, ids = trial_array(rec)
    averaged = np.nanmean(trials, axis=1)[..., 0]
    shuffled = averaged[np.random.default_rng(0).permutation(len(ids))]
    scores = score_features(_features(shuffled, [str(s) for s in ids]), rec, n_components=10, ceiling=False,
                           device="cpu")
    assert abs(float(np.median(scores.r.values))) < 0.1
    unshuffled = score_features(_features(averaged, [str(s) for s in ids]), rec, n_components=40, ceiling=False,
                               device="cpu")
    assert float(np.median(unshuffled.r.values)) > 0.9  # the same pipeline does find signal when it is there
