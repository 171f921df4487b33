"""``neurofit demo`` end to end on the embedded dataset (slow)."""

from __future__ import annotations

import pytest

from neurofit.cli import main
from neurofit.scoreset import read_scoreset
from neurofit.scoring.demo import BENCHMARKS, demo_models


@pytest.mark.slow
def test_demo_scores_feedforward_and_recurrent_and_gives_a_verdict(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "home"))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"neurofit demo: writing ScoreSets and comparisons to {tmp_path / 'demo'}")
    verdict = text[text.index("verdict: recurrent (B) vs feedforward (A)"):]
    for bench in BENCHMARKS:
        for outcome in ("better", "worse", "no detectable difference"):
            assert f"{bench}: {'V4' if 'v4' in bench else 'IT'} {outcome}: " in verdict
    assert "metric: PLS-25 (exact), 10-fold cross-validation over stimuli, r^2 / split-half ceiling" in text
    (_, ff, _), (_, rec, _) = demo_models()
    for bench in BENCHMARKS:
        for name in (ff, rec):
            scores = read_scoreset(tmp_path / "demo" / f"{name}-{bench}.nc")
            assert scores.attrs["benchmark"] == bench and scores.sizes["time_bin"] == 25
        assert (tmp_path / "demo" / f"compare-{bench}.nc").exists()
    feedforward = read_scoreset(tmp_path / "demo" / f"{ff}-{BENCHMARKS[1]}.nc")
    assert feedforward.attrs["mapping_policy"] == "constant"
