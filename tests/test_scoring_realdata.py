"""Scoring on real data: the Cowley 2023 V4 benchmark end to end (needs the data mirror; slow)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from neurofit.scoreset import region_aggregate
from neurofit.scoring.score import score

MIRROR = Path(os.environ.get("NEUROFIT_DATA_PATH", "").split(os.pathsep)[0] or "/nonexistent")


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not (MIRROR / "cowley2023_v4/responses_raw/responses_210325.npy").is_file(),
                    reason="Cowley 2023 mirror absent (set NEUROFIT_DATA_PATH)")
def test_shipped_feedforward_model_scores_cowley_v4_with_finite_ceiled_scores(monkeypatch, tmp_path):
    from neurofit.models.train import shipped_checkpoint

    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(MIRROR))
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path))
    scores = score(str(shipped_checkpoint("cornet_z")), "cowley2023-v4-210325", progress=False,
                   out=tmp_path / "cowley.nc")
    assert scores.sizes["neuroid"] == 50 and scores.sizes["time_bin"] == 1
    assert scores.attrs["mapping_policy"] == "constant" and scores.attrs["committed_layers"]["V4"] in (
        "V1", "V2", "V4", "IT")
    ceiling = np.nanmedian(scores["ceiling"].values)
    assert 0.65 < ceiling < 0.85  # the session's split-half reliability (about 0.77 on all 640 images)
    median = region_aggregate(scores, "median_ceiled", "V4")[0]
    low, high = (region_aggregate(scores, name, "V4")[0] for name in ("median_ceiled_low", "median_ceiled_high"))
    assert np.isfinite(median) and 0.0 < median < 1.0 and low <= median <= high
    assert (tmp_path / "cowley.nc").exists()
