"""Bad-input corpus, resumable work units: every saved unit is verified before a rerun reuses it (issue 15, item 3).

The audit swapped two work-unit files and the rerun's r moved by 0.16 with exit 0. Units now carry the key they
were made for (run and unit) and a sha256 of their content: flipped bytes, swapped files, files copied from another
run and files without a checksum are logged misses, recomputed, and the ScoreSet equals a clean run's bit for bit.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest

from conftest import TOY_BENCHMARK, toy
from neurofit.runners.local import LocalRunner, UnitStore, WorkUnit, result_sha256
from neurofit.scoring.score import score

CREATED = "2026-01-01T00:00:00Z"
LOGGER = "neurofit.runners.local"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    text = TOY_BENCHMARK.format(mode="per_bin")
    text = text.replace("n_bootstrap = 200", "n_bootstrap = 20").replace("end = 50", "end = 20")
    (root / "toy.toml").write_text(text)
    rec, stimuli, acts = toy(n_obj=6, per_obj=8, n_v4=3, n_it=4, n_bins=2)
    kwargs = dict(data=(rec, stimuli), progress=False, created=CREATED, keep_work=True)
    clean = score(acts, root / "toy.toml", work_dir=root / "clean", **kwargs)
    run = next((root / "clean").iterdir())
    return root, acts, kwargs, clean, run


def rerun(setup, tmp_path, damage):
    """Copy the clean run's work directory, damage it, rerun on it; return the ScoreSet and the stderr note."""
    root, acts, kwargs, _, run = setup
    work = tmp_path / "work"
    shutil.copytree(run, work / run.name)
    damage(work / run.name)
    return score(acts, root / "toy.toml", work_dir=work, **kwargs)


def assert_identical(a, b):
    assert set(a.data_vars) == set(b.data_vars)
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    assert a.attrs == b.attrs


def score_units(run):
    """The score stage's unit files, fold order unknown (their names are hashes)."""
    return sorted(run.glob("score-*.npz"))


def test_an_intact_work_directory_is_reused_bit_for_bit(setup, tmp_path, capsys):
    again = rerun(setup, tmp_path, lambda run: None)
    assert_identical(again, setup[3])
    assert "resumed" in capsys.readouterr().err


def test_swapped_unit_files_are_logged_misses_never_different_numbers(setup, tmp_path, caplog):
    def swap(run):
        a, b = score_units(run)[:2]
        tmp = a.with_suffix(".tmp-swap")
        a.rename(tmp)
        b.rename(a)
        tmp.rename(b)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        again = rerun(setup, tmp_path, swap)
    assert_identical(again, setup[3])
    made_for_other = [r for r in caplog.records if "was made for another unit or run" in r.getMessage()]
    assert len(made_for_other) == 2


def test_a_unit_copied_from_another_run_is_a_miss(setup, tmp_path, caplog):
    _, _, _, _, run = setup
    store = UnitStore(tmp_path / "other-run")  # the same unit, saved by a run with other inputs
    unit = WorkUnit("score", "IT", {"layer": "b", "offset_ms": 0.0}, 0)
    store.put(unit, {"prediction": np.zeros((3, 4, 2))})
    assert store.get(unit) is not None
    copied = UnitStore(tmp_path / run.name)
    shutil.copy(store.path(unit), copied.path(unit))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert copied.get(unit) is None
    assert "was made for another unit or run" in caplog.text and '"other-run"' in caplog.text


def test_every_flipped_byte_is_a_miss_or_the_same_numbers(setup, tmp_path, caplog):
    root, acts, kwargs, clean, run = setup
    unit_file = score_units(run)[0]
    pristine = unit_file.read_bytes()
    positions = np.linspace(0, len(pristine) - 1, 12).astype(int).tolist()
    with np.load(unit_file) as data:
        marker = data["prediction"].tobytes()[:16]
    positions.append(pristine.index(marker) + 3)  # inside the stored predictions
    misses = 0
    for k, position in enumerate(positions):
        flipped = bytearray(pristine)
        flipped[position] ^= 0x10

        def damage(work_run, flipped=flipped):
            (work_run / unit_file.name).write_bytes(bytes(flipped))

        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            again = rerun(setup, tmp_path / str(k), damage)
        assert_identical(again, clean)
        misses += "recomputing it" in caplog.text
    assert misses >= len(positions) - 3  # a flip in zip bookkeeping that no reader uses may pass, harmlessly
    assert "recomputing it" in caplog.text  # the last flip: inside the predictions


def test_content_rewritten_under_its_old_checksum_is_a_miss(setup, tmp_path, caplog):
    # a valid zip (its CRCs recomputed, as a copy tool or a hand edit would) whose numbers changed
    def rewrite(run):
        path = score_units(run)[0]
        with np.load(path) as data:
            fields = {name: data[name] for name in data.files}
        fields["prediction"] = fields["prediction"] + 1e-9
        with open(path, "wb") as handle:
            np.savez(handle, **fields)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        again = rerun(setup, tmp_path, rewrite)
    assert_identical(again, setup[3])
    assert "fails its content checksum" in caplog.text


def test_a_unit_without_checksum_is_recomputed(setup, tmp_path, caplog):
    def legacy(run):
        path = score_units(run)[0]
        with np.load(path) as data:
            prediction = data["prediction"]
        with open(path, "wb") as handle:
            np.savez(handle, prediction=prediction + 1.0)  # an older neurofit's file, and a wrong one

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        again = rerun(setup, tmp_path, legacy)
    assert_identical(again, setup[3])
    assert "has no key or checksum" in caplog.text


def test_an_unreadable_unit_is_recomputed(tmp_path, caplog):
    store = UnitStore(tmp_path)
    unit = WorkUnit("score", "IT", {"layer": "x"}, 0)
    store.path(unit).write_bytes(b"PK\x03\x04 not a zip")
    runner = LocalRunner(store, progress=False)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        [(_, result)] = list(runner.map(lambda u: {"x": np.arange(2.0)}, [unit]))
    assert result["x"].tolist() == [0.0, 1.0] and runner.computed == 1 and "cannot read" in caplog.text
    assert store.get(unit)["x"].tolist() == [0.0, 1.0]


def test_the_checksum_covers_names_dtypes_shapes_and_the_key(tmp_path):
    x = np.arange(4.0)
    base = result_sha256("k", {"x": x})
    assert base != result_sha256("k", {"y": x})
    assert base != result_sha256("k", {"x": x.astype(np.float32)})
    assert base != result_sha256("k", {"x": x.reshape(2, 2)})
    assert base != result_sha256("j", {"x": x})
    with pytest.raises(ValueError, match="may not be named"):
        UnitStore(tmp_path).put(WorkUnit("score", "IT", {}, 0), {"__neurofit_unit_key__": x})
