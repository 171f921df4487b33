"""Long commands say what they are doing (issue 14, item 9): analyze dynamics stage lines and image bars,
scoring's extraction and commitment/scoring bars, training's bar; all on stderr, none with --quiet."""

from __future__ import annotations

import torch
from test_analysis_dynamics import _model, stimuli  # noqa: F401  (fixture)

from neurofit.analysis.dynamics import analyze_dynamics


def test_analyze_dynamics_reports_each_stage_and_the_images_on_stderr(stimuli, capsys):  # noqa: F811
    torch.set_flush_denormal(True)
    analyze_dynamics(_model(), stimuli, extrapolation_levels={0: 0.0, 12: 2.0}, extrapolation_views=1, n_boot=10,
                     figures=False, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err
    for stage in ("loading", f"running the model's readout over {len(stimuli)} images x 3 steps",
                  "zero-shot extrapolation on", "done"):
        assert f"neurofit: analyze dynamics: {stage}" in err
    assert "readout 3 steps" in err and "extrapolation 6 steps" in err  # the progress bars over the images


def test_analyze_dynamics_is_silent_without_progress(stimuli, capsys):  # noqa: F811
    analyze_dynamics(_model(), stimuli, extrapolation=False, n_boot=10, figures=False, progress=False)
    assert capsys.readouterr().err == ""


def test_scoring_shows_extraction_and_fit_progress(capsys, tmp_path):
    from conftest import TOY_BENCHMARK, toy
    from neurofit.scoring.score import score

    rec, images, _ = toy(n_obj=4, per_obj=8, n_bins=2)
    path = tmp_path / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin").replace("end = 50", "end = 20")
                    .replace("n_bootstrap = 200", "n_bootstrap = 10"))
    score("cornet_z", path, data=(rec, images), progress=True, cache=False, work_dir=tmp_path)
    err = capsys.readouterr().err
    assert "weights trained: shipped checkpoint cornet_z.safetensors" in err
    assert "extract cornet_z" in err and "commit V4" in err and "score IT" in err
