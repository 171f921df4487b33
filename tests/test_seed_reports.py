"""The robustness report (issue 18 item 3, Greco et al. 2025) and the readout-zone comparison (item 6, Thorat
et al. 2023) rerun at small settings; the robustness CLI, the paired participation-ratio CI and the geometry
under dropout at evaluation are checked against direct computations."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import two_squares_stimuli
from neurofit.analysis.robustness import (
    ATTACK_EPSILONS,
    NOISE_LEVELS,
    analyze_robustness,
    participation_ratio,
    participation_ratio_difference_ci,
)
from neurofit.models.base import present
from neurofit.models.checkpoint import load_model, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def _effects(report: str = "robustness"):
    spec = importlib.util.spec_from_file_location(f"{report}_effects", ROOT / f"reports/{report}/effects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def task_csv(tmp_path_factory):
    return two_squares_stimuli(tmp_path_factory.mktemp("stimuli"))


def _tiny(arch: str, dropout: float, seed: int, stimuli=None):
    """A 2-class model of 4 and 8 channels without BatchNorm, fitted for a few steps to ``stimuli`` so that its
    answers vary."""
    from neurofit.models.zoo import get_factory

    torch.manual_seed(seed)
    model = get_factory(arch)(channels=(4, 8), steps=2, num_classes=2, input_size=16, dropout=dropout,
                                   norm="none")
    if stimuli is not None:
        images = model.normalize(stimuli.load_images(16))
        labels = torch.as_tensor((stimuli.table["category_name"] == "small").to_numpy().astype(int))
        optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
        for _ in range(12):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model.forward_sequence(present(images, 2))["logits"][-1], labels)
            loss.backward()
            optimiser.step()
    return model.eval()


def test_cli_defaults_are_the_library_defaults():
    from neurofit.analysis import commands

    assert commands.NOISE_LEVELS == NOISE_LEVELS and commands.ATTACK_EPSILONS == ATTACK_EPSILONS


def test_paired_participation_ratio_ci_equals_explicit_resampling():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(30, 7)) * np.arange(1, 8), rng.normal(size=(30, 50))
    d, lo, hi = participation_ratio_difference_ci(a, b, n_boot=40, seed=5)
    assert d == pytest.approx(participation_ratio(a) - participation_ratio(b))
    draws = []
    resample = np.random.default_rng(5)
    for _ in range(40):
        idx = resample.integers(0, 30, 30)
        draws.append(participation_ratio(a[idx]) - participation_ratio(b[idx]))
    q_low, q_high = np.percentile(draws, [2.5, 97.5])
    assert (lo, hi) == pytest.approx((2 * d - q_high, 2 * d - q_low), rel=1e-9)  # the basic interval


def test_geometry_under_dropout_at_evaluation_is_the_deterministic_networks(task_csv):
    from neurofit.data.stimuli import read_stimulus_set

    stimuli = read_stimulus_set(task_csv)
    model = _tiny("bl", 0.3, 1, stimuli)
    kwargs = dict(noise=(0.1,), fgsm_eps=(), pgd_eps=(), n_boot=20, figures=False)
    on = analyze_robustness(model, stimuli, dropout=True, samples=3, **kwargs)
    off = analyze_robustness(model, stimuli, **kwargs)
    for name in ("participation_ratio", "divergence", "movement"):
        np.testing.assert_array_equal(on[name].values, off[name].values)
    assert on.attrs["dropout_at_evaluation"] == 1 and on.attrs["dropout_samples"] == 3
    # the stochastic passes change the answers: correctness is a fraction of 3 passes, not only 0 or 1
    assert not np.array_equal(on.correct.values, off.correct.values)


def test_cli_writes_the_dataset_and_its_figure(tmp_path, task_csv):
    from neurofit.cli import main
    from neurofit.data.io import read_dataset

    ckpt = save_checkpoint(_tiny("bt", 0.2, 0), tmp_path / "bt.safetensors", arch="bt")
    status = main(["analyze", "robustness", "--model", str(ckpt), "--stimuli", str(task_csv), "--noise", "0.1",
                   "--fgsm", "0.01", "--pgd", "0.01", "--pgd-iterations", "2", "--dropout", "--samples", "2",
                   "--n-boot", "20", "--formats", "png", "--out", str(tmp_path / "out")])
    assert status == 0
    ds = read_dataset(tmp_path / "out" / "robustness.nc")
    assert list(ds.condition.values) == ["clean", "noise 0.1", "fgsm 0.01", "pgd 0.01"]
    assert ds.attrs["pgd_iterations"] == 2 and ds.attrs["dropout_samples"] == 2
    assert (tmp_path / "out" / "robustness.png").is_file()


@pytest.mark.slow  # end to end: 8 or 6 analyses and the report's tables (~5-15 s)
def test_report_reruns_at_small_settings(tmp_path, task_csv):
    from neurofit.data.stimuli import read_stimulus_set

    effects = _effects()
    stimuli = read_stimulus_set(task_csv)
    for arch in effects.ARCHS:
        for suffix, p in (("", 0.0), ("_dropout", 0.2)):
            save_checkpoint(_tiny(arch, p, 1, stimuli), tmp_path / f"rcnn_{arch}{suffix}.safetensors", arch=arch)
    out = tmp_path / "report"
    argv = ["--checkpoints", str(tmp_path), "--out", str(out), "--stimuli", str(task_csv), "--noise", "0.05",
            "0.2", "--fgsm", "0.02", "--pgd", "0.02", "--pgd-iterations", "2", "--samples", "2", "--n-boot", "30"]
    assert effects.main(["--run", "--figure", *argv]) == 0
    assert (out / "robustness_comparison.png").is_file()
    tables = (out / "tables.md").read_text()
    for what, _, _ in effects.comparisons():
        assert f"| {what} |" in tables
    assert "2 classes (chance 0.500)" in tables
    # the B network's clean accuracy at its last step, computed here from its logits, is in the tables
    model = load_model(tmp_path / "rcnn_b.safetensors")
    labels = (stimuli.table["category_name"] == "small").to_numpy().astype(int)  # classes sorted
    with torch.no_grad():
        logits = model.forward_sequence(present(model.normalize(stimuli.load_images(16)), 2))["logits"][-1]
    accuracy = float((logits.argmax(-1).numpy() == labels).mean())
    assert 0.5 < accuracy < 1 and f"| B | {accuracy:.3f} [" in tables, accuracy
    # rerunning from the written runs gives the same tables (no --run)
    assert effects.main(argv) == 0
    assert (out / "tables.md").read_text() == tables


@pytest.mark.slow  # end to end: 8 or 6 analyses and the report's tables (~5-15 s)
def test_readout_zone_report_reruns_at_small_settings(tmp_path, task_csv):
    from neurofit.data.io import read_dataset
    from neurofit.data.stimuli import read_stimulus_set

    effects = _effects("readout-zones")
    stimuli = read_stimulus_set(task_csv)
    for name in effects.RUNS:
        arch = name.removeprefix("rcnn_")
        save_checkpoint(_tiny(arch, 0.0, 1, stimuli), tmp_path / f"{name}.safetensors", arch=arch)
    out = tmp_path / "report"
    argv = ["--checkpoints", str(tmp_path), "--out", str(out), "--stimuli", str(task_csv), "--n-boot", "30",
            "--no-figures"]
    assert effects.main(["--run", *argv]) == 0
    tables = (out / "tables.md").read_text()
    for what, _, _ in effects.COMPARISONS:
        assert f"| {what} |" in tables
    # one paired cell recomputed here: BT - BL correct at the last step, mean over images
    bt, bl = (read_dataset(out / name / "dynamics.nc") for name in ("rcnn_bt", "rcnn_bl"))
    diff = float((bt.correct.values[-1].astype(float) - bl.correct.values[-1]).mean())
    row = next(line for line in tables.splitlines() if line.startswith("| top-down vs lateral (additive)"))
    assert row.split(" | ")[2].startswith(f"{diff:.3f} ["), (diff, row)
    assert effects.main(argv) == 0 and (out / "tables.md").read_text() == tables


#: the B/BL/BT/BLT checkpoints of reports/robustness (with and without dropout) and reports/readout-zones
SHIPPED_RCNN = {f"rcnn_{a}{s}": (a.removesuffix("_mult"), a.endswith("_mult"), 0.1 if s else 0.0)
                for a in ("b", "bl", "bt", "blt") for s in ("", "_dropout")}
SHIPPED_RCNN.update({f"rcnn_{a}_mult": (a, True, 0.0) for a in ("bl", "bt", "blt")})


@pytest.mark.parametrize("name", sorted(SHIPPED_RCNN))
def test_shipped_rcnn_checkpoints_are_small_documented_and_what_their_names_say(name):
    from neurofit.models.train import checkpoint_metadata, shipped_checkpoint

    arch, multiplicative, dropout = SHIPPED_RCNN[name]
    path = shipped_checkpoint(name)
    assert path.stat().st_size < 2_000_000
    assert f"`{name}`" in (path.parent / "README.md").read_text()
    meta = checkpoint_metadata(path)
    assert meta["architecture"] == arch + ("_mult" if multiplicative else "")
    assert (meta["data"], meta["seed"], meta["epochs"], meta["steps"]) == ("synthetic-ventral-train-seed1", 0, 10, 4)
    model = load_model(path)
    assert model.config["dropout"] == dropout and model.config["channels"] == [16, 32, 64]
    assert model.config["interaction"] == ("multiplicative" if multiplicative else "additive")
    assert model.config["lateral"] == ("l" in arch) and model.config["topdown"] == arch.endswith("t")
    # 232 held-out images of 8 classes: chance 0.125; every shipped model learned well above it
    assert min(meta["accuracy_per_step"]) > 0.3
