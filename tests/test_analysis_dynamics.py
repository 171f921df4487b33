"""analyze_dynamics and `neurofit analyze dynamics`: the assembled Dataset agrees with the analyses it is made of."""

import numpy as np
import pytest
import torch

from neurofit.analysis import geometry, readout
from neurofit.analysis.dynamics import analyze_dynamics
from neurofit.analysis.figures import dynamics_figures
from neurofit.data.io import read_dataset, write_recording
from neurofit.data.recording import make_recording
from neurofit.data.stimuli import StimulusSet, write_stimulus_set
from neurofit.data.synthetic_stimuli import render_stimuli
from neurofit.errors import NeurofitError
from neurofit.models.zoo.halting import halting_convgru

CLASSES = 8


@pytest.fixture(scope="module")
def stimuli():
    images, table = render_stimuli({0: 1}, image_size=32, supersample=1)
    return StimulusSet.from_arrays(images, table, degrees=8.0, identifier="tiny-synthetic")


@pytest.fixture(scope="module")
def recording(stimuli):
    """Category-tuned sites that are silent before bin 2: decodable from bin 2 on."""
    rng = np.random.default_rng(0)
    labels = np.unique(stimuli.table["category_name"], return_inverse=True)[1]
    n, sites, bins = len(labels), 8, 5
    rates = np.full((n, sites, bins), 3.0)
    rates[:, :, 2:] += (np.eye(CLASSES)[labels] @ rng.normal(size=(CLASSES, sites)) * 4)[:, :, None]
    rates[:, :, 2:] += rng.normal(scale=0.3, size=(n, sites, bins - 2))
    return make_recording(rates, stimulus_id=stimuli.table["stimulus_id"], repetition=[0] * n,
                          neuroid_id=[f"s{k}" for k in range(sites)], region="IT",
                          time_bin_start=np.arange(bins) * 10.0, time_bin_end=np.arange(bins) * 10.0 + 10,
                          identifier="toy-it", stimulus_set_identifier="tiny-synthetic",
                          presentation_coords={"category_name": stimuli.table["category_name"]})


def _model():
    torch.manual_seed(0)
    return halting_convgru(stem_channels=4, channels=(4, 4), steps=3, num_classes=CLASSES).eval()


def test_dataset_matches_the_analyses_it_is_assembled_from(stimuli, recording):
    model = _model()
    ds = analyze_dynamics(model, stimuli, recording=recording, neural_label="category_name", extrapolation=False,
                          n_splits=4, n_boot=50, figures=False)
    labels = np.unique(stimuli.table["category_name"], return_inverse=True)[1]
    run = readout.run_readout(model, stimuli.load_images(32), 3)
    correct = readout.correct_per_step(run.logits, labels)
    assert ds.sizes["step"] == 3 and ds.sizes["presentation"] == len(stimuli)
    np.testing.assert_array_equal(ds.correct.values.astype(bool), correct)
    np.testing.assert_allclose(ds.accuracy, correct.mean(1))
    assert (ds.accuracy_low <= ds.accuracy).all() and (ds.accuracy <= ds.accuracy_high).all()
    np.testing.assert_array_equal(ds.first_correct_step, readout.first_correct_step(correct)[0])
    np.testing.assert_allclose(ds.margin, geometry.zone_margins(run.penultimate, labels, run.weight, run.bias))
    np.testing.assert_allclose(ds.norm, readout.l2_norms(run.penultimate))
    np.testing.assert_allclose(ds.norm_correct, readout.mean_by_correctness(ds.norm.values, correct)[0])
    assert ds.corrected.values.tolist() == geometry.count_transitions(correct)[0].tolist()
    # halting, its difficulty correlations, and the neural solution times decodable from bin 2 (centre 25 ms)
    assert ds.halting_step.dtype.kind == "i" and "halting_rho" in ds
    times = ds.neural_solution_time.values
    assert np.isfinite(times).all() and (times > 15).all() and (times <= 25).all()
    assert list(ds.model_measure.values) == ["first_correct_step", "halting_step"]
    assert ds.attrs["steps"] == 3 and ds.attrs["label_column"] == "category_name"


def test_cli_writes_the_dataset_and_figures_from_a_checkpoint_csv_and_recording(tmp_path, stimuli, recording):
    from neurofit.cli import main
    from neurofit.models.checkpoint import save_checkpoint

    ckpt = save_checkpoint(_model(), tmp_path / "halting.safetensors", arch="halting_convgru")
    csv = write_stimulus_set(stimuli, tmp_path / "stimuli.csv")
    rec = write_recording(recording, tmp_path / "rec.nc")
    out = tmp_path / "out"
    status = main(["analyze", "dynamics", "--model", str(ckpt), "--stimuli", str(csv), "--recording", str(rec),
                   "--neural-label", "category_name", "--no-extrapolation", "--n-boot", "20", "--formats", "png",
                   "--out", str(out)])
    assert status == 0
    ds = read_dataset(out / "dynamics.nc")
    assert {"accuracy", "margin", "halting_step", "neural_solution_time"} <= set(ds.data_vars)
    for name in ("accuracy_over_time", "norm_over_time", "margin_trajectories", "halting_vs_difficulty",
                 "solution_time"):
        assert (out / f"{name}.png").is_file()


def test_extrapolation_series_goes_beyond_the_training_range(tmp_path, stimuli):
    ds = analyze_dynamics(_model(), stimuli, extrapolation_levels={0: 0.0, 12: 2.0}, extrapolation_views=1,
                          n_boot=20, figures=False)
    assert ds.extrapolation_difficulty.values.tolist() == [0.0, 2.0]
    assert ds.max_steps.values.tolist() == [3, 6]
    assert ds.extrap_fraction_halted.dims == ("extrapolation_level", "max_steps")
    # without a recording there is no solution-time figure; the others are written
    paths = dynamics_figures(ds, tmp_path, formats=("png",))
    assert set(paths) == {"accuracy_over_time", "norm_over_time", "margin_trajectories", "halting_vs_difficulty"}


def test_first_correct_steps_and_transitions_start_when_a_biological_readout_is_driven(tmp_path, stimuli):
    from neurofit.models.zoo.convrnn import convrnn_gru

    torch.manual_seed(0)
    model = convrnn_gru(channels=(4, 4, 4), pool_after=(1, 2), cell_layers=(3,), steps=5, num_classes=CLASSES)
    ds = analyze_dynamics(model.eval(), stimuli, n_boot=10, figures=False)
    assert ds.readout_driven.values.tolist() == [False, False, True, True, True]  # conv3 arrives at step 2
    first = ds.first_correct_step.values
    assert np.nanmin(first) >= 2 and ds.corrected.values[:3].tolist() == [0, 0, 0]
    # before arrival every image gets the same answer, so "correct" there is just the images of one class
    assert len(np.unique(ds.logits.isel(step=0).argmax("class"))) == 1
    assert "accuracy_over_time" in dynamics_figures(ds, tmp_path, formats=("png",))


def test_a_label_the_model_does_not_know_is_named(stimuli):
    with pytest.raises(NeurofitError, match="not among the model's classes"):
        analyze_dynamics(_model(), stimuli, classes=[f"c{i}" for i in range(CLASSES)], extrapolation=False,
                         figures=False)


@pytest.mark.slow  # renders the 1152-image synthetic training set (about 30 s on a loaded 2-core machine)
def test_holdout_stimuli_reproduce_the_checkpoints_recorded_heldout_accuracy(tmp_path):
    from neurofit.models.train import train_model

    _, metrics = train_model("cornet_z", "synthetic-ventral", epochs=0, size=32, model_kwargs={"width": 4},
                             out=tmp_path / "z.safetensors", progress=False)
    ds = analyze_dynamics(tmp_path / "z.safetensors", "holdout", n_boot=10, figures=False)
    assert ds.sizes["presentation"] == metrics["n_holdout"]
    assert round(float(ds.accuracy[-1]), 4) == metrics["accuracy_last"]
    assert ds.attrs["stimulus_set"].endswith("-holdout")


@pytest.mark.parametrize("arch", ["halting_convgru", "convgru"])
def test_task_stimuli_get_accuracy_per_level_at_one_two_and_four_times_the_training_steps(tmp_path, arch):
    from neurofit.cli import main
    from neurofit.models.checkpoint import save_checkpoint
    from neurofit.models.zoo import get_factory

    torch.manual_seed(0)
    model = get_factory(arch)(stem_channels=4, channels=(4,), steps=2, num_classes=2, input_size=17,
                              stem_kernel=3, stem_pool=False, readout_pool="max").eval()
    ckpt = save_checkpoint(model, tmp_path / f"{arch}.safetensors", arch=arch)
    out = tmp_path / "out"
    assert main(["analyze", "dynamics", "--model", str(ckpt), "--stimuli", "mazes", "--task-per-level", "4",
                 "--n-boot", "20", "--formats", "png", "--out", str(out)]) == 0
    ds = read_dataset(out / "dynamics.nc")
    assert ds.extrapolation_level.values.tolist() == [9, 13, 17] and ds.max_steps.values.tolist() == [2, 4, 8]
    assert ds.extrap_correct.dims == ("presentation", "max_steps") and ds.sizes["presentation"] == 12
    np.testing.assert_allclose(ds.extrap_accuracy.sel(max_steps=2),
                               ds.extrap_correct.sel(max_steps=2).groupby(ds.difficulty).mean().values)
    assert (out / "extrapolation.png").is_file()
    assert ("halting_rho" in ds) == (arch == "halting_convgru")
    if arch == "halting_convgru":
        assert set(ds.difficulty_measure.values) == {"difficulty", "path_length"}
        np.testing.assert_array_equal(ds.extrap_halting_step.sel(max_steps=2), ds.halting_step)
