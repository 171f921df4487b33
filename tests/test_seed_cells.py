"""The cell comparison of Nayebi et al. 2018 (issue 18 item 4): matched parameter counts checked against the
closed-form count of every convolution, the shipped cells_* checkpoints, and the report rerun at small settings."""

from __future__ import annotations

import importlib.util
import shlex
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import two_squares_stimuli
from neurofit.analysis.cells import (
    CELL_ORDER,
    MATCHED_WIDTHS,
    REFERENCE,
    cell_config,
    matched_counts,
    matched_widths,
    parameter_count,
)
from neurofit.errors import NeurofitError

ROOT = Path(__file__).resolve().parent.parent
#: gated cells: one input and one state convolution, each with this many outputs per channel (one per gate)
GATES = {"vanilla": 1, "lstm": 4, "gru": 3, "ugrnn": 2}


def _conv(c_in: int, c_out: int, k: int = 3) -> int:
    return c_in * c_out * k * k + c_out


def _cell_formula(cell: str, c_in: int, w: int) -> int:
    """Parameters of one cell layer by hand (the equations of neurofit.models.zoo._cells)."""
    if cell in GATES:
        g = GATES[cell]
        return _conv(c_in, g * w) + _conv(w, g * w)
    if cell == "timedecay":
        return _conv(c_in, w) + w  # W*x and one time constant per channel
    if cell == "rgc":
        return _conv(c_in, w) + 5 * _conv(w, w)  # w_x, then w_ac, w_cc, w_hc, w_hh, w_ch
    raise AssertionError(cell)


def _formula(cell: str, width: int, base=(16, 32), layers: int = 2, classes: int = 8) -> int:
    total, c_in = 0, 3
    for c in base:
        total += _conv(c_in, c)
        c_in = c
    for _ in range(layers):
        total += _cell_formula(cell, c_in, width)
        c_in = width
    return total + width * classes + classes  # linear readout of the top layer's spatial mean


@pytest.mark.parametrize("cell", CELL_ORDER)
def test_parameter_count_equals_the_closed_form_count(cell):
    rng = np.random.default_rng(CELL_ORDER.index(cell))
    for _ in range(3):
        width, layers = int(rng.integers(1, 30)), int(rng.integers(1, 4))
        base = tuple(int(c) for c in rng.integers(1, 20, 2))
        assert parameter_count(cell, width, base=base, cell_layers=layers) == _formula(cell, width, base, layers)


def test_the_shipped_widths_are_the_closest_to_the_reference_budget_and_matched():
    target = parameter_count(*REFERENCE)
    assert matched_widths() == MATCHED_WIDTHS and MATCHED_WIDTHS[REFERENCE[0]] == REFERENCE[1]
    counts = matched_counts()
    assert counts == {cell: _formula(cell, w) for cell, w in MATCHED_WIDTHS.items()}
    for cell, width in MATCHED_WIDTHS.items():
        gap = abs(counts[cell] - target)
        assert gap / target < 0.03, (cell, counts[cell], target)  # matched within 3 % (the issue asks 10 %)
        # one channel more or less is further from the budget
        assert all(abs(_formula(cell, w) - target) >= gap for w in (width - 1, width + 1))


def test_cell_config_builds_cells_on_top_of_a_feedforward_base():
    from neurofit.models.zoo import get_factory
    from neurofit.models.zoo._cells import CELLS

    for cell in CELL_ORDER:
        model = get_factory(f"convrnn_{cell}")(**cell_config(cell, 5), num_classes=8)
        assert [type(model.blocks[n]).__name__ for n in ("conv1", "conv2")] == ["Conv2d", "Conv2d"]
        assert all(isinstance(model.blocks[n], CELLS[cell]) for n in ("conv3", "conv4"))
        assert model.config["channels"] == [16, 32, 5, 5] and model.time_map(steps=6).first_driven["conv4"] == 3


def test_bad_requests_are_one_line_errors():
    with pytest.raises(NeurofitError, match="unknown cell 'lstmm'"):
        cell_config("lstmm", 4)
    with pytest.raises(NeurofitError, match="width and cell_layers must be >= 1"):
        cell_config("gru", 0)
    with pytest.raises(NeurofitError, match="raise max_width"):
        matched_widths(10**7, ["vanilla"], max_width=20)
    with pytest.raises(NeurofitError, match="positive number of parameters"):
        matched_widths(0)


def _effects():
    spec = importlib.util.spec_from_file_location("cells_effects", ROOT / "reports/cells/effects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_report_prints_the_same_budget_for_every_cell(capsys):
    effects = _effects()
    assert effects.main(["--print-commands"]) == 0
    lines = capsys.readouterr().out.splitlines()
    train = [line for line in lines if line.startswith("neurofit train")]
    assert len(train) == 6 and len(lines) == 6 + 6 + 12 + 2
    for cell, line in zip(CELL_ORDER, train):
        w = MATCHED_WIDTHS[cell]
        assert f"--model convrnn_{cell} --arg 'channels=[16,32,{w},{w}]'" in line
        # everything but the model and its file is the same command
        assert line.replace(cell, "CELL").replace(f"{w},{w}", "W,W") == train[0].replace(
            CELL_ORDER[0], "CELL").replace(f"{MATCHED_WIDTHS[CELL_ORDER[0]]},{MATCHED_WIDTHS[CELL_ORDER[0]]}", "W,W")
    assert sum("--layers V4=conv3 --quiet" in line for line in lines) == 6
    assert sum("--layers IT=conv4 --quiet" in line for line in lines) == 6


SHIPPED = {f"cells_{cell}": cell for cell in CELL_ORDER}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_cell_checkpoints_are_small_documented_and_share_one_budget(name):
    from neurofit.models.checkpoint import load_model
    from neurofit.models.train import checkpoint_metadata, shipped_checkpoint

    cell = SHIPPED[name]
    path = shipped_checkpoint(name)
    assert path.stat().st_size < 400_000
    assert f"`{name}`" in (path.parent / "README.md").read_text()
    meta = checkpoint_metadata(path)
    reference = checkpoint_metadata(shipped_checkpoint("cells_rgc"))
    for key in ("data", "data_sha256", "seed", "epochs", "steps", "lr", "batch_size", "loss", "image_size"):
        assert meta[key] == reference[key], key
    assert meta["architecture"] == f"convrnn_{cell}" and meta["seed"] == 0
    model = load_model(path)
    assert model.config["cell"] == cell
    assert model.config["channels"] == cell_config(cell, MATCHED_WIDTHS[cell])["channels"]
    assert sum(p.numel() for p in model.parameters()) == matched_counts()[cell]
    # 232 held-out images of 8 classes (chance 0.125): the readout is driven from step 3
    assert meta["n_holdout"] == 232 and max(meta["accuracy_per_step"]) > 0.2


TINY_BENCHMARK = """
id = "tiny-{region}"
version = "1"
[dataset]
id = "synthetic-ventral"
options = {{ seed = 0, size = "small" }}
[neural]
regions = ["{region_upper}"]
time_bins = {{ start = 0, end = 150, width = 10 }}
[stimuli]
degrees = 8.0
[regression]
n_components = 4
n_splits = 3
[mapping]
offsets_ms = [0, 20]
[commitment]
fraction = 0.2
[aggregate]
n_bootstrap = 40
"""


@pytest.fixture(scope="module")
def squares_csv(tmp_path_factory):
    return two_squares_stimuli(tmp_path_factory.mktemp("stimuli"))


def test_train_through_cli_main_records_its_own_command_line(tmp_path, squares_csv):
    """A report script trains through neurofit.cli.main: the checkpoint records that command, not sys.argv."""
    from neurofit.cli import main
    from neurofit.models.train import checkpoint_metadata

    out = tmp_path / "m.safetensors"
    argv = ["train", "--model", "convrnn_gru", "--arg", "channels=[4,4,3,3]", "--arg", "steps=5", "--stimuli",
            str(squares_csv), "--epochs", "0", "--size", "16", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    assert checkpoint_metadata(out)["command"] == "neurofit " + " ".join(shlex.quote(a) for a in argv)


@pytest.mark.slow  # end to end at small settings: 6 trainings, 6 accuracy runs, 12 scores, 2 comparisons (~3-10 min)
def test_report_reruns_at_small_settings(tmp_path, squares_csv):
    import csv

    from neurofit.data.io import read_dataset
    from neurofit.scoreset import read_scoreset, site_values

    effects = _effects()
    benchmarks = []
    for region in ("V4", "IT"):
        path = tmp_path / f"tiny-{region.lower()}.toml"
        path.write_text(TINY_BENCHMARK.format(region=region.lower(), region_upper=region))
        benchmarks.append(str(path))
    out, scores = tmp_path / "report", tmp_path / "scores"
    argv = ["--checkpoints", str(tmp_path / "ckpt"), "--out", str(out), "--scores", str(scores),
            "--benchmarks", *benchmarks, "--stimuli", str(squares_csv), "--n-boot", "40"]
    train = ["--train-stimuli", str(squares_csv), "--epochs", "1", "--size", "16"]
    assert effects.main(["--train", "--run", "--figure", *train, *argv]) == 0
    assert (out / "cells_comparison.png").is_file()
    tables = (out / "tables.md").read_text()
    for cell in CELL_ORDER:
        assert f"| {effects.NAMES[cell]} | {MATCHED_WIDTHS[cell]} | {matched_counts(num_classes=2)[cell]:,} |" in tables
    # one paired accuracy cell recomputed here: GRU - reciprocal gated at the last step, mean over images
    gru, rgc = (read_dataset(out / cell / "robustness.nc") for cell in ("gru", "rgc"))
    diff = float((gru.correct.values[0, -1] - rgc.correct.values[0, -1]).mean())
    row = next(line for line in tables.splitlines() if line.startswith("| GRU - reciprocal gated |"))
    assert row.split(" | ")[3].startswith(f"{diff:.3f} ["), (diff, row)
    # the summary holds each ScoreSet's median ceiled score per bin: recomputed from its per-site scores
    with (out / "predictivity.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["cell"] == "lstm" and r["region"] == "IT"]
    ceiled = site_values(read_scoreset(scores / "cells_lstm-tiny-it.nc"), "ceiled", "IT")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # bins before the model's arrival: every site NaN
        medians = np.nanmedian(ceiled, axis=0)
    assert len(rows) == 15 and {r["layer"] for r in rows} == {"conv4"}
    np.testing.assert_allclose([float(r["median_ceiled"]) for r in rows], medians, rtol=1e-5, equal_nan=True)
    assert np.isfinite(medians).sum() >= 3
    # the comparison counts are neurofit compare's marks: better / worse / tested in V4
    result = read_dataset(out / "compare-tiny-v4.nc").isel(comparison=CELL_ORDER.index("lstm"))
    marked = result["significant"].values & result["tested"].values
    difference = result["median_difference"].values
    expected = (f"{int((marked & (difference > 0)).sum())} / {int((marked & (difference < 0)).sum())} / "
                f"{int(result['tested'].values.sum())}")
    row = next(line for line in tables.splitlines() if line.startswith("| LSTM - reciprocal gated |"))
    assert [c.strip() for c in row.strip("|").split("|")][-2] == expected, (expected, row)
    # rerunning from the written summaries gives the same tables (no --run)
    assert effects.main(argv) == 0 and (out / "tables.md").read_text() == tables
