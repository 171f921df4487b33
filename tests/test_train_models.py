"""Training: seeded runs, loss modes, ACT ponder cost, checkpoints with metadata, the CLI, shipped checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from neurofit.cli import main
from neurofit.data.stimuli import StimulusSet, write_stimulus_set
from neurofit.errors import NeurofitError
from neurofit.models.base import present
from neurofit.models.checkpoint import load_model
from neurofit.models.train import (
    SYNTHETIC_TRAIN_VIEWS,
    _loss,
    build_model,
    checkpoint_metadata,
    evaluate,
    folder_stimulus_set,
    holdout_split,
    shipped_checkpoint,
    train_model,
)
from neurofit.models.train_commands import parse_model_args

SHIPPED_RECURRENT = ("bl", "convrnn_rgc")


def two_class_set(n_per_class: int = 12, size: int = 16) -> StimulusSet:
    """Dark images with a bright top half (class 'top') or bottom half ('bottom'); flips keep the label."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 60, (2 * n_per_class, size, size, 3), dtype=np.uint8)
    images[:n_per_class, : size // 2] += 180
    images[n_per_class:, size // 2:] += 180
    table = pd.DataFrame({"stimulus_id": [f"s{i:02d}" for i in range(2 * n_per_class)],
                          "category_name": ["top"] * n_per_class + ["bottom"] * n_per_class})
    return StimulusSet.from_arrays(images, table, degrees=8.0, identifier="halves")


def test_holdout_split_is_stratified_disjoint_and_seeded():
    labels = ["a"] * 10 + ["b"] * 20
    train, held = holdout_split(labels, 0.2, seed=3)
    assert sorted([*train, *held]) == list(range(30)) and not set(train) & set(held)
    assert [labels[i] for i in held].count("a") == 2 and [labels[i] for i in held].count("b") == 4
    assert np.array_equal(held, holdout_split(labels, 0.2, seed=3)[1])
    assert not np.array_equal(held, holdout_split(labels, 0.2, seed=4)[1])
    with pytest.raises(NeurofitError, match="class 'a' has 1 images"):
        holdout_split(["a", "b", "b"], 0.5, seed=0)


def test_training_is_deterministic_for_a_seed_and_learns_an_easy_task():
    kwargs = dict(epochs=3, size=16, model_kwargs={"width": 4}, progress=False, holdout=0.25, lr=5e-3)
    a, metrics = train_model("cornet_z", two_class_set(), seed=0, **kwargs)
    b, _ = train_model("cornet_z", two_class_set(), seed=0, **kwargs)
    c, _ = train_model("cornet_z", two_class_set(), seed=1, **kwargs)
    for key, value in a.state_dict().items():
        torch.testing.assert_close(value, b.state_dict()[key], rtol=0, atol=0)
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())
    assert metrics["classes"] == ["bottom", "top"] and metrics["chance"] == 0.5
    assert metrics["n_holdout"] == 6 and metrics["accuracy_last"] > 0.5


def test_checkpoint_records_the_run_and_rebuilds_the_model(tmp_path):
    out = tmp_path / "rt.safetensors"
    model, metrics = train_model("cornet_rt", two_class_set(), epochs=1, size=16, model_kwargs={"width": 4},
                                 progress=False, out=out, command="neurofit train --test")
    meta = checkpoint_metadata(out)
    assert meta["architecture"] == "cornet_rt" and meta["config"]["width"] == 4
    assert meta["accuracy_per_step"] == metrics["accuracy_per_step"] and len(meta["accuracy_per_step"]) == 5
    assert meta["data_sha256"] == two_class_set().sha256()
    assert meta["loss"] == "all_steps" and meta["seed"] == 0 and meta["epochs"] == 1
    assert meta["command"] == "neurofit train --test" and meta["classes"] == ["bottom", "top"]
    loaded = load_model(out)
    movie = present(torch.rand(2, 3, 16, 16), 5)
    torch.testing.assert_close(loaded.forward_sequence(movie)["logits"], model.forward_sequence(movie)["logits"])


def test_loss_modes_average_the_driven_steps_or_take_the_last():
    model = build_model("cornet_rt", 2, 16, width=4)
    outputs = model.forward_sequence(present(torch.rand(3, 3, 16, 16), 5))
    target = torch.tensor([0, 1, 1])
    logits = outputs["logits"]
    # CORnet-RT's IT (and so its readout) is first driven at step 3 of 5
    expected_all = (F.cross_entropy(logits[3], target) + F.cross_entropy(logits[4], target)) / 2
    torch.testing.assert_close(_loss(model, outputs, target, "all_steps", 3, 0.0), expected_all)
    torch.testing.assert_close(_loss(model, outputs, target, "last_step", 3, 0.0),
                               F.cross_entropy(logits[4], target))


def test_halting_model_loss_adds_the_ponder_cost():
    model = build_model("halting_convgru", 2, 16, stem_channels=4, channels=[4, 4], steps=3)
    outputs = model.forward_sequence(present(torch.rand(2, 3, 16, 16), 3))
    target = torch.tensor([1, 0])
    ce = F.cross_entropy(outputs["act_logits"][-1], target)
    ponder = model.halting(outputs).ponder_cost.mean()
    torch.testing.assert_close(_loss(model, outputs, target, "last_step", 0, 0.5), ce + 0.5 * ponder)
    _, metrics = train_model(model, two_class_set(4), epochs=1, size=16, progress=False, holdout=0.25)
    assert "accuracy_act" in metrics


def test_folder_of_class_subfolders_is_a_stimulus_set(tmp_path):
    for label in ("cat", "dog"):
        (tmp_path / label).mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(tmp_path / label / f"{i}.png")
    ss = folder_stimulus_set(tmp_path)
    assert ss.stimulus_ids == ["cat/0.png", "cat/1.png", "dog/0.png", "dog/1.png"]
    assert ss.table["category_name"].tolist() == ["cat", "cat", "dog", "dog"]
    assert ss.load_images(8).shape == (4, 3, 8, 8)


def test_missing_label_column_is_named(tmp_path):
    with pytest.raises(NeurofitError, match="no column 'animal' to classify"):
        train_model("cornet_z", two_class_set(), epochs=1, label_column="animal", progress=False)


def test_train_cli_writes_a_checkpoint_from_a_stimulus_csv(tmp_path, capsys):
    csv = write_stimulus_set(two_class_set(), tmp_path / "halves.csv")
    out = tmp_path / "z.safetensors"
    status = main(["train", "--model", "cornet_z", "--stimuli", str(csv), "--epochs", "1", "--size", "16",
                   "--arg", "width=4", "--loss", "last", "--seed", "2", "--out", str(out), "--no-progress"])
    assert status == 0
    assert "held-out accuracy per step" in capsys.readouterr().out
    meta = checkpoint_metadata(out)
    assert meta["loss"] == "last_step" and meta["seed"] == 2 and meta["image_size"] == 16


def test_ponder_weight_reaches_the_loss_and_the_checkpoint(tmp_path):
    csv = write_stimulus_set(two_class_set(4), tmp_path / "halves.csv")
    out = tmp_path / "act.safetensors"
    assert main(["train", "--model", "halting_convgru", "--stimuli", str(csv), "--epochs", "1", "--size", "16",
                 "--arg", "stem_channels=4", "--arg", "channels=[4]", "--arg", "steps=2", "--loss", "last",
                 "--ponder-weight", "0.003", "--out", str(out), "--no-progress"]) == 0
    assert checkpoint_metadata(out)["ponder_weight"] == 0.003
    for bad in (-0.1, float("nan")):
        with pytest.raises(NeurofitError, match="ponder_weight must be a finite number >= 0"):
            train_model("halting_convgru", two_class_set(4), epochs=1, size=16, ponder_weight=bad, progress=False)


def test_parse_model_args_rejects_a_missing_value():
    assert parse_model_args(["channels=[4, 8]", "cell=gru"]) == {"channels": [4, 8], "cell": "gru"}
    with pytest.raises(NeurofitError, match="KEY=VALUE"):
        parse_model_args(["width"])


# --- shipped checkpoints ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def held_out_synthetic():
    """12 images per category from the shipped runs' held-out split (seed 0) of the synthetic training set."""
    from neurofit.data.synthetic_stimuli import render_views, sample_views

    table = sample_views(SYNTHETIC_TRAIN_VIEWS, seed=1)
    _, held = holdout_split(table["category_name"].tolist(), 0.2, seed=0)
    chosen = table.iloc[held].groupby("category_name", sort=True).head(12)
    images = render_views(chosen, seed=1, image_size=64)
    return StimulusSet.from_arrays(images, chosen, degrees=8.0, identifier="synthetic-train-seed1-holdout")


@pytest.mark.parametrize("name", ["cornet_z", *SHIPPED_RECURRENT])
def test_shipped_checkpoints_are_small_and_documented(name):
    path = shipped_checkpoint(name)
    assert path.stat().st_size < 1_000_000
    meta = checkpoint_metadata(path)
    assert meta["architecture"] == name and meta["command"].startswith("neurofit train")
    assert meta["data"] == "synthetic-ventral-train-seed1" and meta["seed"] == 0 and meta["holdout"] == 0.2
    assert f"`{name}`" in (path.parent / "README.md").read_text()


@pytest.mark.parametrize("name", SHIPPED_RECURRENT)
def test_trained_recurrent_checkpoint_beats_chance_at_its_last_step_on_held_out_stimuli(name, held_out_synthetic):
    path = shipped_checkpoint(name)
    model = load_model(path)
    classes = checkpoint_metadata(path)["classes"]
    targets = torch.tensor([classes.index(c) for c in held_out_synthetic.table["category_name"]])
    acc = evaluate(model, held_out_synthetic.load_images(model.input_size), targets, model.default_steps)
    chance = 1 / len(classes)
    # 96 images: a chance-level classifier reaches 2.5 x chance (30 hits, mean 12, sd 3.2) with p < 1e-6
    assert acc["accuracy_last"] > 2.5 * chance, acc
    arrival = model.time_map().first_driven[model.layers[-1]]
    for step in range(arrival):  # before the top layer is driven, every image gets the same answer
        assert acc["accuracy_per_step"][step] == pytest.approx(chance)


#: ACT ConvGRU and its fixed-step twin, trained on mazes of sizes 5, 7 and 9 (reports/adaptive-halting/)
SHIPPED_MAZES = ("mazes_halting_convgru", "mazes_convgru")


@pytest.fixture(scope="module")
def new_easy_mazes():
    """64 new size-9 mazes (seed 2000; training drew seed 1, the report seed 1000), classes balanced."""
    from neurofit.data.tasks import task_stimuli

    return task_stimuli("mazes", [9], per_level=64, seed=2000)


@pytest.mark.parametrize("name", SHIPPED_MAZES)
def test_shipped_maze_checkpoints_beat_chance_on_new_easy_mazes(name, new_easy_mazes):
    path = shipped_checkpoint(name)
    assert path.stat().st_size < 200_000
    meta = checkpoint_metadata(path)
    assert meta["architecture"] == name.removeprefix("mazes_") and meta["command"].startswith("neurofit train")
    assert meta["task"] == "mazes" and meta["difficulty"] == [5, 7, 9] and meta["seed"] == 0
    assert f"`{name}`" in (path.parent / "README.md").read_text()
    model = load_model(path)
    classes = meta["classes"]
    targets = torch.tensor([classes.index(c) for c in new_easy_mazes.table["category_name"]])
    acc = evaluate(model, new_easy_mazes.load_images(17), targets, model.default_steps)
    answer = acc.get("accuracy_act", acc["accuracy_last"])  # the ACT output is the halting model's answer
    # 64 balanced two-class images: a chance-level classifier gets >= 46 right (0.72) with p < 3e-4
    assert answer >= 0.72, acc


def test_shipped_maze_models_have_the_same_architecture():
    halting, fixed = (load_model(shipped_checkpoint(name)) for name in SHIPPED_MAZES)
    extra = {"epsilon", "halting_bias"}
    assert {k: v for k, v in halting.config.items() if k not in extra} == fixed.config
    n_halt, n_fixed = (sum(p.numel() for p in m.parameters()) for m in (halting, fixed))
    assert n_halt - n_fixed == halting.config["channels"][-1] + 1  # the halting unit only


def test_unknown_shipped_checkpoint_lists_the_shipped_ones():
    with pytest.raises(NeurofitError, match="shipped: .*cornet_z"):
        shipped_checkpoint("alexnet")


def test_training_metadata_is_json():
    meta = checkpoint_metadata(shipped_checkpoint("cornet_z"))
    assert json.loads(json.dumps(meta)) == meta
    assert len(meta["accuracy_per_step"]) == 1
