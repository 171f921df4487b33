"""Real features on real data: the trained CIFAR ResNet-20 predicts Cowley 210325 V4 better than random weights."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

MIRROR = Path(os.environ.get("NEUROFIT_DATA_PATH", "").split(os.pathsep)[0] or "/nonexistent")


def heldout_median_r(features: np.ndarray, responses: np.ndarray) -> float:
    """Median over sites of Pearson r between 10-fold held-out ridge predictions and the responses."""
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict

    ridge = RidgeCV(alphas=np.logspace(-2, 5, 15))
    predicted = cross_val_predict(ridge, features, responses, cv=KFold(10, shuffle=True, random_state=0))
    p = predicted - predicted.mean(axis=0)
    y = responses - responses.mean(axis=0)
    return float(np.median((p * y).sum(0) / np.sqrt((p * p).sum(0) * (y * y).sum(0))))


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(
    not (MIRROR / "cowley2023_v4/responses_raw/responses_210325.npy").is_file()
    or not (MIRROR / "cifar10_resnet/resnet20-12fca82f.th").is_file(),
    reason="Cowley 2023 or ResNet-20 mirror absent",
)
def test_trained_resnet20_predicts_v4_better_than_random_weights(monkeypatch, tmp_path):
    import torch

    from neurofit.data.fetch import fetch_dataset, load_dataset
    from neurofit.data.recording import average_repetitions
    from neurofit.models.checkpoint import load_model

    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(MIRROR))
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path))
    recording, stimuli = load_dataset("cowley2023-v4-210325")
    responses = average_repetitions(recording).values[:, :, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        images = stimuli.load_images(32)  # the images in recording order: both follow image0001..0640
    assert list(average_repetitions(recording).coords["stimulus_id"].values) == stimuli.stimulus_ids
    weights = fetch_dataset("cifar10-resnet20")["cifar10_resnet/resnet20-12fca82f.th"]
    torch.manual_seed(0)
    scores = {}
    for name, model in (("trained", load_model("resnet20_cifar", weights)), ("random", load_model("resnet20_cifar"))):
        with torch.no_grad():
            layer2 = model.forward_sequence(images[None])["layer2"][0]
        features = torch.nn.functional.adaptive_avg_pool2d(layer2, 4).flatten(1).double().numpy()
        scores[name] = heldout_median_r(features, responses)
    assert scores["trained"] > 0.4, scores
    assert scores["trained"] > scores["random"] + 0.05, scores
