"""``neurofit demo`` end to end on the embedded dataset (slow).

The demo is the README's first command, so ``tests/test_readme.py`` already runs it (from a fresh copy, as
written) whenever the real-data mirror is present, and checks that run with :func:`check_demo_output`. This
module runs the demo itself only where that test cannot run, so CI pays for one demo, not two, and the
demo's promises are checked either way.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_readme import MIRROR, ROOT

from neurofit.cli import main
from neurofit.scoreset import read_scoreset
from neurofit.scoring.demo import BENCHMARKS, demo_models

# the conditions under which tests/test_readme.py runs the README's commands, `neurofit demo` first
README_RUNS_THE_DEMO = ((MIRROR / "cifar10_resnet/resnet20-12fca82f.th").is_file() and shutil.which("git") is not None
                        and (ROOT / ".git").exists())


def check_demo_output(text: str, out_dir: Path) -> None:
    """What the demo promises: its output folder announced first, each model's metric line and table, a
    verdict that says where the recurrent model is better, worse and not detectably different in each
    region, and the four ScoreSets (25 bins each; the feedforward model mapped with the constant policy)
    and two comparisons in the folder."""
    assert text.startswith(f"neurofit demo: writing ScoreSets and comparisons to {Path(out_dir).resolve()}")
    verdict = text[text.index("verdict: recurrent (B) vs feedforward (A)"):]
    for bench in BENCHMARKS:
        for outcome in ("better", "worse", "no detectable difference"):
            assert f"{bench}: {'V4' if 'v4' in bench else 'IT'} {outcome}: " in verdict
    assert "metric: PLS-25 (exact), 10-fold cross-validation over stimuli, r^2 / split-half ceiling" in text
    (_, ff, _), (_, rec, _) = demo_models()
    for bench in BENCHMARKS:
        for name in (ff, rec):
            scores = read_scoreset(Path(out_dir) / f"{name}-{bench}.nc")
            assert scores.attrs["benchmark"] == bench and scores.sizes["time_bin"] == 25
        assert (Path(out_dir) / f"compare-{bench}.nc").exists()
    feedforward = read_scoreset(Path(out_dir) / f"{ff}-{BENCHMARKS[1]}.nc")
    assert feedforward.attrs["mapping_policy"] == "constant"


@pytest.mark.slow
@pytest.mark.skipif(README_RUNS_THE_DEMO, reason="tests/test_readme.py runs `neurofit demo` (the README's first "
                    "command) and checks it with check_demo_output")
def test_demo_scores_feedforward_and_recurrent_and_gives_a_verdict(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "home"))
    assert main(["demo", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    check_demo_output(capsys.readouterr().out, tmp_path / "demo")
