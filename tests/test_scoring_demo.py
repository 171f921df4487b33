"""``neurofit demo`` end to end on the embedded dataset (slow)."""

from __future__ import annotations

import pytest

from neurofit.cli import main
from neurofit.scoring.demo import BENCHMARKS, demo_models
from neurofit.scoring.score import read_scoreset


@pytest.mark.slow
def test_demo_scores_feedforward_and_recurrent_and_reports_where_recurrence_helps(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "home"))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "where recurrence helps" in text
    (_, ff, _), (_, rec, _) = demo_models()
    for bench in BENCHMARKS:
        for name in (ff, rec):
            scores = read_scoreset(tmp_path / "demo" / f"{name}-{bench}.nc")
            assert scores.attrs["benchmark"] == bench and scores.sizes["time_bin"] == 25
        assert (tmp_path / "demo" / f"compare-{bench}.nc").exists()
    feedforward = read_scoreset(tmp_path / "demo" / f"{ff}-{BENCHMARKS[1]}.nc")
    assert feedforward.attrs["mapping_policy"] == "constant"
