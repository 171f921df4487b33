"""The default reduction (issue 14 item 6): exact where the rows are few, RP-1000 otherwise, recorded per layer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.cross_decomposition import PLSRegression
from sklearn.linear_model import Ridge

from neurofit.errors import NeurofitError
from neurofit.extract import DEFAULT_REDUCTION, Auto, RandomProjection, read_activations
from neurofit.extract.reduce import gram_compress, reduction_spec
from tests.test_extract_activations import TinyBiological, make_stimuli, run

MIRROR = Path(os.environ.get("NEUROFIT_DATA_PATH", "").split(os.pathsep)[0] or "/nonexistent")


def test_gram_compression_keeps_every_inner_product_and_the_numerical_rank():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(30, 6)) @ rng.normal(size=(6, 500))).astype(np.float32)  # rank 6
    z = gram_compress(x, chunk=128)
    ref = x.astype(np.float64) @ x.T.astype(np.float64)
    assert z.shape == (30, 6)
    np.testing.assert_allclose(z.astype(np.float64) @ z.T.astype(np.float64), ref, rtol=0, atol=1e-5 * ref.max())
    np.testing.assert_array_equal(gram_compress(np.zeros((4, 9), np.float32)), np.zeros((4, 1), np.float32))


def test_pls_and_ridge_on_the_compressed_features_predict_as_on_the_full_ones():
    # the reference estimators (sklearn) fitted on train rows predict the held-out rows identically
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 700)).astype(np.float32)
    y = x[:, :5] @ rng.normal(size=(5, 3)) + rng.normal(size=(60, 3))
    z = gram_compress(x)
    train, test = np.arange(45), np.arange(45, 60)
    for make in (lambda: PLSRegression(n_components=4, scale=False), lambda: Ridge(alpha=3.0)):
        full = make().fit(x[train].astype(np.float64), y[train]).predict(x[test].astype(np.float64))
        small = make().fit(z[train].astype(np.float64), y[train]).predict(z[test].astype(np.float64))
        np.testing.assert_allclose(small, full, rtol=1e-4, atol=1e-4 * np.abs(full).max())


def test_auto_plans_per_layer_from_its_size_and_the_raw_budget():
    auto = Auto(exact_max_dim=100, raw_bytes=4 * 50 * 300)
    assert auto.plan(1000, 50, 0) == "none"  # no wider than the fallback's 1000
    assert auto.plan(1200, 50, 0) == "random_projection"  # 50 x 1200 x 4 bytes > the budget
    small = Auto(exact_max_dim=100, raw_bytes=2**30)
    assert small.plan(1200, 50, 0) == "gram" and small.plan(1200, 5000, 0) == "random_projection"
    assert Auto(exact_max_dim=2000).plan(1500, 1800, 0) == "none"  # p <= rows: every feature, no rotation
    assert small.plan(1200, 50, 2**30) == "random_projection"  # earlier layers used the budget
    with pytest.raises(NeurofitError, match="fallback"):
        Auto(fallback=None)  # type: ignore[arg-type]
    assert reduction_spec(DEFAULT_REDUCTION)["method"] == "auto"


def test_default_extraction_records_each_layers_method_and_keeps_the_gram_matrix():
    model, stimuli = TinyBiological(width=4), make_stimuli(n=9)  # 4 x 16 x 16 = 1024 features per layer
    auto = Auto(fallback=RandomProjection(dim=500, seed=3))
    acts = run(model, stimuli, reduction=auto)
    full = run(model, stimuli, reduction=None)
    for layer in model.layers:
        record = acts.attrs["reduction_layers"][layer]
        assert record["method"] == "gram" and record["dim"] <= 9 * 5 and "45" in record["fit"]
        # one basis for every step: inner products across steps (weighted sums of steps) are kept too
        a = acts.layer(layer).values.reshape(-1, record["dim"]).astype(np.float64)
        f = full.layer(layer).values.reshape(45, -1).astype(np.float64)
        np.testing.assert_allclose(a @ a.T, f @ f.T, rtol=0, atol=1e-5 * np.abs(f @ f.T).max())
        assert acts.driven(layer).tolist() == full.driven(layer).tolist()
    rp = run(model, stimuli, reduction=Auto(exact_max_dim=8, fallback=RandomProjection(dim=500, seed=3)))
    assert rp.attrs["reduction_layers"]["A"] == {"method": "random_projection", "dim": 500, "seed": 3,
                                                 "kind": "gaussian"}
    assert full.attrs["reduction_layers"]["A"] == {"method": "none", "dim": 1024}


def test_reduction_layers_survive_the_netcdf_round_trip(tmp_path):
    acts = run(TinyBiological(), make_stimuli(n=4), reduction=RandomProjection(dim=8))
    back = read_activations(acts.to_netcdf(tmp_path / "acts.nc"))
    assert back.attrs["reduction_layers"] == acts.attrs["reduction_layers"]
    assert back.attrs["reduction_layers"]["B"]["method"] == "random_projection"


def test_default_score_equals_the_full_feature_score(tmp_path):
    """score(): the default reduction gives the full features' per-site r (toy recording, a tiny ConvRNN)."""
    from conftest import TOY_BENCHMARK, toy
    from neurofit.scoring.score import score

    bench = tmp_path / "toy.toml"
    bench.write_text(TOY_BENCHMARK.format(mode="per_bin"))
    rec, stimuli, _ = toy(n_obj=6, per_obj=8)
    kwargs = dict(data=(rec, stimuli), layers={"V4": "B", "IT": "C"}, cache=False, progress=False,
                  created="2026-01-01T00:00:00Z", work_dir=tmp_path / "work")
    full = score(TinyBiological(width=4), bench, reduction=None, **kwargs)
    default = score(TinyBiological(width=4), bench, **kwargs)
    old = score(TinyBiological(width=4), bench, reduction=RandomProjection(dim=64, seed=0), **kwargs)
    assert np.isfinite(full["r"].values).sum() >= 30  # the bins after arrival
    np.testing.assert_allclose(default["r"].values, full["r"].values, atol=1e-5)
    # the ScoreSet says what each layer got
    assert default.attrs["reduction"]["method"] == "auto" and full.attrs["reduction"] == {"method": "none"}
    assert default.attrs["reduction_layers"]["B"]["method"] == "gram"
    assert full.attrs["reduction_layers"]["B"] == {"method": "none", "dim": 1024}
    assert old.attrs["reduction_layers"]["C"] == {"method": "random_projection", "dim": 64, "seed": 0,
                                                  "kind": "gaussian"}
    assert np.nanmax(np.abs(old["r"].values - full["r"].values)) > 1e-3  # the comparison can fail


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not (MIRROR / "cifar10_resnet/resnet20-12fca82f.th").is_file()
                    or not (MIRROR / "cowley2023_v4/responses_raw/responses_210325.npy").is_file(),
                    reason="real-data mirror absent (set NEUROFIT_DATA_PATH)")
def test_default_reduction_scores_cowley_210325_within_0_01_median_r_of_the_full_features(monkeypatch, tmp_path):
    from neurofit.scoring.score import score

    monkeypatch.setenv("NEUROFIT_DATA_PATH", str(MIRROR))
    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path))
    kwargs = dict(checkpoint=MIRROR / "cifar10_resnet/resnet20-12fca82f.th", layers={"V4": "layer2"},
                  progress=False, created="2026-01-01T00:00:00Z")
    full = score("resnet20_cifar", "cowley2023-v4-210325", reduction=None, **kwargs)
    default = score("resnet20_cifar", "cowley2023-v4-210325", **kwargs)
    old = score("resnet20_cifar", "cowley2023-v4-210325", reduction=RandomProjection(dim=1000, seed=0), **kwargs)
    median = {name: float(np.nanmedian(s["r"].values)) for name, s in
              (("full", full), ("default", default), ("old", old))}
    assert 0.45 < median["full"] < 0.55  # layer2 of the trained ResNet-20 (0.497 measured)
    assert abs(median["default"] - median["full"]) < 0.01
    assert median["full"] - median["old"] > 0.01  # the old default's loss that this default removes (0.03)


@pytest.mark.parametrize("metric", ["pls", "ridge"])
def test_wide_designs_are_fitted_through_their_exact_gram_compression(tmp_path, monkeypatch, metric):
    """score(): a design wider than tall is compressed exactly before the fits; per-site r is unchanged."""
    from conftest import TOY_BENCHMARK, toy
    from neurofit.extract import reduce
    from neurofit.scoring.score import score

    bench = tmp_path / "toy.toml"
    text = TOY_BENCHMARK.format(mode="per_bin")
    bench.write_text(text if metric == "pls" else text.replace("n_components = 5", 'metric = "ridge"'))
    rec, stimuli, acts = toy(d=300)  # 120 stimuli, 300 features: every design is wide
    shapes = []
    real = reduce.gram_compress
    monkeypatch.setattr(reduce, "gram_compress", lambda x, **kw: shapes.append(x.shape) or real(x, **kw))
    kwargs = dict(data=(rec, stimuli), progress=False, created="2026-01-01T00:00:00Z")
    narrowed = score(acts, bench, work_dir=tmp_path / "a", **kwargs)
    assert shapes and all(p == 300 and n < 300 for n, p in shapes)
    monkeypatch.setattr(reduce, "gram_compress", lambda x, **kw: x)  # the full designs, as before
    full = score(acts, bench, work_dir=tmp_path / "b", **kwargs)
    assert narrowed.attrs["committed_layers"] == full.attrs["committed_layers"]
    np.testing.assert_allclose(narrowed["r"].values, full["r"].values, rtol=0, atol=1e-9)
