"""The opt-in very sparse random projection (Li, Hastie & Church 2006) against scikit-learn's
SparseRandomProjection: same distribution and scaling, Johnson-Lindenstrauss distortion on fresh data, an exact
sparse product (bit-identical for any batch and thread count), and its own cache keys and attrs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn.random_projection import SparseRandomProjection, johnson_lindenstrauss_min_dim

from neurofit.errors import NeurofitError
from neurofit.extract import Auto, RandomProjection, extract_activations, parse_reduction
from neurofit.extract.reduce import DEFAULT_REDUCTION, _torch_csr, reduction_spec


def _sklearn_components(p: int, dim: int, seed: int) -> np.ndarray:
    srp = SparseRandomProjection(n_components=dim, density="auto", random_state=seed, dense_output=True)
    srp.fit(np.zeros((2, p)))
    return srp.components_.toarray()


def _ours(p: int, dim: int, seed: int) -> np.ndarray:
    return RandomProjection(dim=dim, seed=seed, kind="sparse").components("L", p).toarray().astype(np.float64)


def test_entries_have_sklearns_values_density_signs_and_moments():
    p, dim = 9000, 800
    ours, theirs = _ours(p, dim, 1), _sklearn_components(p, dim, 1)
    s = 1 / math.sqrt(p)
    # the same two non-zero values, +-sqrt(1/s)/sqrt(D)
    value = math.sqrt(1 / s / dim)
    np.testing.assert_allclose(sorted(set(np.unique(theirs)) - {0.0}), [-value, value], rtol=1e-12)
    np.testing.assert_allclose(sorted(set(np.unique(ours)) - {0.0}), [-value, value], rtol=1e-7)
    n = p * dim
    for m in (ours, theirs):
        nz = int((m != 0).sum())
        assert abs(nz - n * s) < 5 * math.sqrt(n * s * (1 - s))  # density s, binomial
        pos = int((m > 0).sum())
        assert abs(pos - nz / 2) < 5 * math.sqrt(nz / 4)  # signs +-1 with probability 1/2
        # moments of an entry: E r = 0, E r^2 = 1/D, E r^4 = 1/(s D^2)
        assert abs(m.mean()) < 5 * math.sqrt(1 / dim / n)
        assert m.var() == pytest.approx(1 / dim, rel=0.02)
        assert (m ** 4).mean() == pytest.approx(1 / (s * dim ** 2), rel=0.02)
    # non-zeros per component (sklearn: Binomial(p, s) per row) and per feature (Binomial(D, s)) alike
    for axis, trials in ((1, p), (0, dim)):
        a, b = (ours != 0).sum(axis=axis), (theirs != 0).sum(axis=axis)
        assert a.mean() == pytest.approx(trials * s, rel=0.03)
        assert a.var() == pytest.approx(trials * s * (1 - s), rel=0.15)
        assert stats.ks_2samp(a, b).pvalue > 1e-3


def test_johnson_lindenstrauss_distortion_on_fresh_data_matches_sklearn():
    rng = np.random.default_rng(12)
    n, p, dim = 60, 12000, 1000
    # fresh data with unequal feature scales, rectified and sparse (ReLU-like activations), as layers give
    x = (np.maximum(rng.normal(size=(n, p)) + 0.3, 0) * rng.gamma(2.0, size=p)).astype(np.float32)
    iu = np.triu_indices(n, 1)

    def squared_distances(z: np.ndarray) -> np.ndarray:
        z = z.astype(np.float64)
        norms = (z ** 2).sum(1)
        return (norms[:, None] + norms[None] - 2 * z @ z.T)[iu]

    d_in = squared_distances(x)
    ours = squared_distances(RandomProjection(dim=dim, seed=3, kind="sparse").reducer("L", p)(
        torch.from_numpy(x)).numpy()) / d_in
    theirs = [squared_distances(SparseRandomProjection(dim, random_state=k).fit_transform(x)) / d_in
              for k in range(3)]
    # the variance of ||R d||^2 / ||d||^2 for i.i.d. entries of density s (Li, Hastie & Church 2006, lemma 1)
    s = 1 / math.sqrt(p)
    x64 = x.astype(np.float64)
    kurt = np.array([((x64[i] - x64[j]) ** 4).sum() / ((x64[i] - x64[j]) ** 2).sum() ** 2 for i, j in zip(*iu)])
    theory_sd = math.sqrt(float(np.mean(2 + (1 / s - 3) * kurt)) / dim)
    eps = 0.3
    assert johnson_lindenstrauss_min_dim(n, eps=eps) <= dim
    for ratio in (ours, *theirs):
        assert np.abs(ratio - 1).max() < eps
        assert abs(ratio.mean() - 1) < 0.025
        assert ratio.std() == pytest.approx(theory_sd, rel=0.3)
    assert ours.std() == pytest.approx(np.mean([r.std() for r in theirs]), rel=0.3)


def test_sparse_product_equals_the_float64_product_of_its_dense_matrix():
    rng = np.random.default_rng(5)
    p, dim = 5000, 300
    rp = RandomProjection(dim=dim, seed=2, kind="sparse", block_rows=700)
    dense = rp.matrix("L", p)
    assert torch.equal(dense, torch.from_numpy(rp.components("L", p).toarray().T.copy()))
    assert torch.equal(rp.matrix_block("L", 3, p), dense[2100:2800])
    x = torch.from_numpy(rng.normal(size=(37, p)).astype(np.float32))
    got = rp.reducer("L", p)(x)
    assert got.shape == (37, dim) and got.dtype == torch.float32
    np.testing.assert_allclose(got.numpy(), (x.double() @ dense.double()).numpy(), rtol=1e-5, atol=1e-5)
    # the device path (torch's sparse CSR product), exercised on the CPU
    reducer = rp.reducer("L", p)
    reducer.on_device = _torch_csr(reducer.components)
    torch.testing.assert_close(reducer(x), got, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("threads", [1, 2])
def test_a_rows_projection_is_the_same_bit_for_bit_in_any_batch_and_thread_count(threads):
    rng = np.random.default_rng(7)
    x = torch.from_numpy(np.maximum(rng.normal(size=(50, 4096)), 0).astype(np.float32))
    reducer = RandomProjection(dim=256, seed=0, kind="sparse").reducer("conv1", 4096)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        whole = reducer(x)
        for lo, hi in [(0, 1), (3, 20), (20, 50)]:
            assert torch.equal(reducer(x[lo:hi]), whole[lo:hi])
    finally:
        torch.set_num_threads(old)
    assert torch.equal(RandomProjection(dim=256, seed=0, kind="sparse").reducer("conv1", 4096)(x), whole)


def test_matrix_is_seeded_per_layer_seed_and_density():
    rp = RandomProjection(dim=50, seed=3, kind="sparse")
    assert torch.equal(rp.matrix("IT", 3000), RandomProjection(dim=50, seed=3, kind="sparse").matrix("IT", 3000))
    assert not torch.equal(rp.matrix("IT", 3000), rp.matrix("V4", 3000))
    assert not torch.equal(rp.matrix("IT", 3000), RandomProjection(dim=50, seed=4, kind="sparse").matrix("IT", 3000))
    half = RandomProjection(dim=50, seed=3, kind="sparse", density=0.5).matrix("IT", 3000)
    assert float((half != 0).double().mean()) == pytest.approx(0.5, abs=0.01)
    assert float(half.abs().max()) == pytest.approx(math.sqrt(2 / 50))
    full = RandomProjection(dim=50, seed=3, kind="sparse", density=1).matrix("IT", 300)
    assert bool((full.abs() == float(np.float32(math.sqrt(1 / 50)))).all())  # dense Rademacher


def test_specs_keep_the_old_cache_keys_and_name_the_sparse_kind():
    assert RandomProjection().spec() == {"method": "random_projection", "dim": 1000, "seed": 0, "kind": "gaussian",
                                         "block_rows": 2048}
    assert reduction_spec(DEFAULT_REDUCTION)["fallback"] == RandomProjection().spec()
    assert RandomProjection(kind="sparse").spec()["density"] == "auto"
    assert RandomProjection(kind="sparse", density=0.1).spec()["density"] == 0.1
    for bad, match in [(dict(kind="gaussian", density=0.1), "kind='sparse' only"),
                       (dict(kind="sparse", density=0.0), r"\(0, 1\]"), (dict(kind="bogus"), "kind must be")]:
        with pytest.raises(NeurofitError, match=match):
            RandomProjection(**bad)


def test_parse_reduction_reads_every_text_form_and_refuses_others():
    assert parse_reduction("default") is DEFAULT_REDUCTION and parse_reduction(" None ") is None
    assert parse_reduction("auto") == Auto()
    assert parse_reduction("sparse:500:7") == RandomProjection(dim=500, seed=7, kind="sparse")
    assert parse_reduction("gaussian") == RandomProjection()
    assert parse_reduction("auto:sparse") == Auto(fallback=RandomProjection(kind="sparse"))
    for bad in ["pca", "sparse:x", "sparse:10:1:2", "auto:none", "sparse:10:-1", ""]:
        with pytest.raises(NeurofitError, match="reduction="):
            parse_reduction(bad)


def test_sparse_extraction_has_its_own_cache_entry_and_says_what_each_layer_got(tmp_path):
    from test_extract_activations import TinyBiological, make_stimuli

    stimuli = make_stimuli(n=6)
    kwargs = dict(cache=True, cache_dir=str(tmp_path), progress=False)
    dense = extract_activations(TinyBiological(), stimuli, reduction=RandomProjection(dim=64), **kwargs)
    sparse = extract_activations(TinyBiological(), stimuli, reduction="sparse:64", **kwargs)
    assert dense.attrs["cache_key"] != sparse.attrs["cache_key"]
    assert sparse.attrs["reduction"]["kind"] == "sparse"
    assert sparse.attrs["reduction_layers"]["C"] == {"method": "random_projection", "dim": 64, "seed": 0,
                                                     "kind": "sparse", "density": 1 / math.sqrt(4 * 16 * 16)}
    again = extract_activations(TinyBiological(), stimuli, reduction=RandomProjection(dim=64, kind="sparse"),
                                **kwargs)
    np.testing.assert_array_equal(again.layer("C").values, sparse.layer("C").values)
    assert not np.allclose(dense.layer("C").values, sparse.layer("C").values)
    raw = extract_activations(TinyBiological(), stimuli, reduction=None, cache=False, progress=False)
    flat = torch.from_numpy(raw.layer("C").values.reshape(-1, 1024))
    want = (flat.double() @ RandomProjection(dim=64, kind="sparse").matrix("C", 1024).double()).numpy()
    np.testing.assert_allclose(sparse.layer("C").values.reshape(-1, 64), want, rtol=1e-5, atol=1e-5)
    auto = extract_activations(TinyBiological(), stimuli, reduction="auto:sparse:64", **kwargs)
    assert auto.attrs["reduction"]["fallback"]["kind"] == "sparse"


def test_score_takes_the_text_form_and_the_command_line_refuses_a_wrong_one(tmp_path, capsys):
    from test_extract_activations import TinyBiological

    from conftest import TOY_BENCHMARK, toy
    from neurofit.cli import main
    from neurofit.scoring.score import score

    bench = tmp_path / "toy.toml"
    bench.write_text(TOY_BENCHMARK.format(mode="per_bin"))
    rec, stimuli, _ = toy(n_obj=6, per_obj=8)
    kwargs = dict(data=(rec, stimuli), layers={"V4": "B", "IT": "C"}, cache=False, progress=False,
                  created="2026-01-01T00:00:00Z", work_dir=tmp_path / "work")
    sparse = score(TinyBiological(width=4), bench, reduction="sparse:64", **kwargs)
    dense = score(TinyBiological(width=4), bench, reduction=RandomProjection(dim=64), **kwargs)
    assert sparse.attrs["reduction"]["kind"] == "sparse" and sparse.attrs["reduction_layers"]["C"]["kind"] == "sparse"
    assert np.isfinite(sparse["r"].values).sum() >= 30
    assert np.nanmax(np.abs(sparse["r"].values - dense["r"].values)) > 1e-4
    assert main(["score", "--model", "cornet_z", "--benchmark", str(bench), "--reduction", "sparse:x"]) == 2
    err = capsys.readouterr().err
    assert "--reduction takes" in err and "reduction=" not in err
