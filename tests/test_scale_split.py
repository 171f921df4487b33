"""The dask runner splits fold units by bin and site chunks (issue 20 item 4) and gives the local runner's results:
per-bin fits (PLS and ridge) cut by bins, ridge also by sites; PLS2 (joint over sites), span_time (one fit over
all bins) and bins with missing responses (the valid-stimulus rule spans all bins) stay whole.

Whole units are bit for bit the local runner's. Pieces agree to 1e-12 (relative to the largest prediction), not
bit for bit: a piece's products have fewer columns (a site chunk's ``X^T Y``, a bin chunk's stacked responses
of a shared design), and BLAS blocks a product by its shape, its edge-tile kernels accumulating in another
order, so a column's value can move in the last bit with the number of columns beside it (shown below for
``X^T Y``). Measured: at most 3e-15 absolute, 3e-14 relative."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from conftest import TOY_BENCHMARK, toy
from neurofit.runners.dask_runner import DaskRunner
from neurofit.runners.local import LocalRunner, UnitStore, WorkUnit, merge_parts, split_unit
from neurofit.scoring.benchmark import RegressionSection
from neurofit.scoring.fit import _Problem
from neurofit.scoring.score import score

N, SITES, BINS, FOLDS = 60, 7, 3, 4


@pytest.fixture(scope="module")
def runner(tmp_path_factory):
    with DaskRunner(workers=2, cache_dir=tmp_path_factory.mktemp("shared"), dashboard_address=":0",
                    progress=False, parts=4) as run:
        yield run


def _problem(metric: str, mode: str = "per_bin", shared: bool = False, missing: bool = False) -> _Problem:
    rng = np.random.default_rng(hash((metric, mode, shared, missing)) % 2**32)
    feats = [rng.normal(size=(N, 12)) for _ in range(BINS)]
    if shared:
        feats = [feats[0]] * BINS
    targets = np.einsum("nd,dsb->nsb", feats[0][:, :4], rng.normal(size=(4, SITES, BINS)))
    targets += rng.normal(size=targets.shape)
    if missing:
        targets[5, 2, 1] = np.nan
    test = np.arange(N)[None] % FOLDS == np.arange(FOLDS)[:, None]
    reg = RegressionSection(metric=metric, n_components=3, n_splits=FOLDS, temporal_mode=mode)
    return _Problem(reg, feats, targets, ~test, test, "cpu")


def _run(run, prob, tmp_path, name):
    units = [WorkUnit("score", "IT", {"layer": name}, f) for f in range(FOLDS)]
    return [res["prediction"] for _, res in run.map(prob, units)]


@pytest.mark.parametrize("metric, mode, shared, missing, pieces", [
    ("ridge", "per_bin", False, False, 4),   # bins x sites: 2 x 2
    ("ridge", "per_bin", True, False, 4),
    ("pls", "per_bin", False, False, 3),     # bins only (PLS2 is joint over sites)
    ("pls", "per_bin", True, False, 3),
    ("ridge", "per_bin", False, True, 4),    # missing responses: sites only
    ("pls", "per_bin", False, True, 1),
    ("pls", "span_time", False, False, 1),   # one fit over all bins
])
def test_split_units_give_the_local_runners_predictions(runner, tmp_path, metric, mode, shared,
                                                                     missing, pieces):
    prob = _problem(metric, mode, shared, missing)
    local = _run(LocalRunner(progress=False), prob, tmp_path, "local")
    before = runner.stats["submitted"]
    remote = _run(runner.bind(UnitStore(tmp_path / "dask")), prob, tmp_path, "dask")
    assert runner.stats["submitted"] - before == FOLDS * pieces
    for a, b in zip(local, remote):
        assert a.shape == b.shape
        if pieces == 1:
            np.testing.assert_array_equal(a, b)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.nanmax(np.abs(a)))
            assert (np.isnan(a) == np.isnan(b)).all()
    # the store holds whole units (one file per fold), as a local run's
    assert UnitStore(tmp_path / "dask").count() == FOLDS


def test_split_and_merge_cover_every_bin_and_site_once():
    unit = WorkUnit("score", "IT", {"layer": "x"}, 2)
    for parts, sites in [(1, True), (5, True), (6, True), (40, True), (5, False)]:
        pieces = split_unit(unit, parts, n_bins=3, n_sites=7, sites=sites)
        assert len(pieces) <= max(parts, 1) or len(pieces) <= 3 * 7
        cover = np.zeros((7, 3), int)
        for piece in pieces:
            if piece.part is not None:
                b0, b1, s0, s1 = piece.part
                cover[s0:s1, b0:b1] += 1
                assert piece.key != unit.key and dataclasses.replace(piece, part=None).key == unit.key
        assert (cover == 1).all() or (len(pieces) == 1 and pieces[0] is unit)
    merged = merge_parts([(p, {"prediction": np.full((2, p.part[3] - p.part[2], p.part[1] - p.part[0]),
                                                      float(p.part[0] * 10 + p.part[2]))})
                          for p in split_unit(unit, 6, n_bins=3, n_sites=7)], 2, 7, 3)["prediction"]
    assert not np.isnan(merged).any() and merged[0, 6, 2] == 20 + split_unit(unit, 6, 3, 7)[-1].part[2]


def test_a_split_ridge_scoreset_equals_the_local_one(runner, tmp_path):
    path = tmp_path / "toy.toml"
    path.write_text(TOY_BENCHMARK.format(mode="per_bin").replace("n_components = 5", 'metric = "ridge"'))
    rec, stimuli, acts = toy(n_obj=8, per_obj=8, d=64)
    options = dict(data=(rec, stimuli), progress=False, created="2026-01-01T00:00:00Z", layers={"V4": "a", "IT": "b"})
    local = score(acts, path, work_dir=tmp_path / "local", keep_work=True, **options)
    before = runner.stats["submitted"]
    remote = score(acts, path, work_dir=tmp_path / "dask", runner=runner, **options)
    n_units = len(list((tmp_path / "local").glob("*/*.npz")))
    assert runner.stats["submitted"] - before > n_units  # units went out in pieces
    assert set(local.data_vars) == set(remote.data_vars) and set(local.attrs) == set(remote.attrs)
    for key, value in local.attrs.items():
        if key == "commitment_criteria":  # numbers: each candidate's held-out criterion
            for region, crit in value.items():
                assert crit.keys() == remote.attrs[key][region].keys()
                np.testing.assert_allclose([remote.attrs[key][region][c] for c in crit], list(crit.values()),
                                           rtol=1e-12, atol=1e-14)
        else:
            assert remote.attrs[key] == value, key
    for name in local.data_vars:
        a, b = local[name].values, remote[name].values
        if a.dtype.kind == "f":
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12 * np.nanmax(np.abs(a)), err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_why_pieces_are_not_bit_for_bit_a_products_columns_depend_on_its_width():
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(60, 12, dtype=torch.float64, generator=g), torch.randn(60, 7, dtype=torch.float64, generator=g)
    with torch.autograd.grad_mode.no_grad():
        whole, piece = X.T @ Y, X.T @ Y[:, :4].contiguous()
    torch.testing.assert_close(whole[:, :4], piece, rtol=1e-13, atol=1e-13)
