"""Activation extraction: reductions against references, batch-size invariance, arrival masks, the cache."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA
from torch import nn

from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError
from neurofit.extract import PCA, ActivationSet, RandomProjection, extract_activations, read_activations
from neurofit.extract import cache as cache_mod
from neurofit.extract import reduce as reduce_mod
from neurofit.extract.reduce import fit_pca
from neurofit.models.base import TemporalModel, present


class TinyBiological(TemporalModel):
    """Three conv areas unrolled biologically: area k reads area k-1 at t-1, so it arrives at step k."""

    layers = ("A", "B", "C")
    convention = "biological"
    default_steps = 5
    input_size = 16

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.config = {"width": width}
        torch.manual_seed(0)
        self.convs = nn.ModuleList([nn.Conv2d(3 if k == 0 else width, width, 3, padding=1) for k in range(3)])
        self.lateral = nn.Conv2d(width, width, 3, padding=1)
        self.readout = nn.Linear(width, 2)
        self.calls = 0

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        steps, batch = movie.shape[:2]
        prev = [movie.new_zeros(batch, conv.out_channels, *movie.shape[-2:]) for conv in self.convs]
        out: dict[str, list[torch.Tensor]] = {name: [] for name in (*self.layers, "logits")}
        for t in range(steps):
            cur = []
            for k, conv in enumerate(self.convs):
                x = movie[t] if k == 0 else prev[k - 1]
                y = torch.relu(conv(x) + (self.lateral(prev[k]) if k == 2 else 0))
                cur.append(y)
                out[self.layers[k]].append(y)
            out["logits"].append(self.readout(cur[-1].mean(dim=(2, 3))))
            prev = cur
        return {name: torch.stack(v) for name, v in out.items()}


class TinyHalting(TinyBiological):
    """Declares batch item b valid for the first 2 + b % 3 steps (a stand-in for an adaptive-halting model)."""

    def validity(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        steps, batch = outputs["A"].shape[:2]
        stop = 2 + torch.arange(batch) % 3
        return torch.arange(steps)[:, None] < stop[None, :]


def make_stimuli(n: int = 11, size: int = 16, seed: int = 0, identifier: str = "toy") -> StimulusSet:
    images = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    table = pd.DataFrame({"stimulus_id": [f"s{i:02d}" for i in range(n)],
                          "object_name": [f"o{i % 3}" for i in range(n)]})
    return StimulusSet.from_arrays(images, table, degrees=8.0, identifier=identifier)


def run(model: TemporalModel, stimuli: StimulusSet, **kwargs) -> ActivationSet:
    kwargs.setdefault("cache", False)
    kwargs.setdefault("progress", False)
    return extract_activations(model, stimuli, **kwargs)


def raw_features(model: TemporalModel, stimuli: StimulusSet, layer: str) -> np.ndarray:
    return run(model, stimuli, reduction=None).layer(layer).values.astype(np.float64)


# --- random projection ---------------------------------------------------------------------------------------
def test_random_projection_is_seeded_per_layer_and_seed():
    rp = RandomProjection(dim=7, seed=3, block_rows=5)
    assert torch.equal(rp.matrix("IT", 23), RandomProjection(dim=7, seed=3, block_rows=5).matrix("IT", 23))
    assert not torch.equal(rp.matrix("IT", 23), RandomProjection(dim=7, seed=4, block_rows=5).matrix("IT", 23))
    assert not torch.equal(rp.matrix("IT", 23), rp.matrix("V4", 23))
    # a longer matrix starts with the shorter one's rows: blocks depend on their index only
    assert torch.equal(rp.matrix("IT", 23)[:20], rp.matrix("IT", 20))


@pytest.mark.parametrize("kind", ["gaussian", "achlioptas"])
def test_random_projection_entries_have_variance_one_over_dim(kind):
    m = RandomProjection(dim=200, seed=0, kind=kind).matrix("L", 3000).double()
    assert abs(float(m.mean())) < 3e-3
    assert float(m.var()) == pytest.approx(1 / 200, rel=0.02)
    if kind == "achlioptas":
        assert float((m == 0).double().mean()) == pytest.approx(2 / 3, abs=0.01)


def test_random_projection_matches_float64_matmul_and_preserves_norms():
    rng = np.random.default_rng(1)
    x = torch.from_numpy(rng.normal(size=(30, 5000)).astype(np.float32))
    rp = RandomProjection(dim=1000, seed=2)
    reference = x.double() @ rp.matrix("L", 5000).double()
    projected = rp.reducer("L", 5000)(x)
    np.testing.assert_allclose(projected.numpy(), reference.numpy(), rtol=1e-4, atol=1e-4)
    ratio = projected.double().norm(dim=1) / x.double().norm(dim=1)
    assert float((ratio - 1).abs().max()) < 0.15  # Johnson-Lindenstrauss at D = 1000


def test_streamed_projection_blocks_equal_the_full_matrix(monkeypatch):
    x = torch.randn(9, 700)
    rp = RandomProjection(dim=50, seed=0, block_rows=128)
    full = rp.reducer("L", 700)(x)
    monkeypatch.setattr(reduce_mod, "MATRIX_BYTES_LIMIT", 0)
    streamed = rp.reducer("L", 700)
    assert streamed.full is None
    torch.testing.assert_close(streamed(x), full, rtol=1e-5, atol=1e-5)


def test_layers_no_wider_than_dim_are_kept_as_they_are():
    model, stimuli = TinyBiological(), make_stimuli()
    raw = run(model, stimuli, reduction=None)
    kept = run(model, stimuli, reduction=RandomProjection(dim=4 * 16 * 16))
    np.testing.assert_array_equal(kept.layer("B").values, raw.layer("B").values)
    assert kept.n_features("B") == 4 * 16 * 16


def test_extraction_is_identical_across_batch_sizes():
    model, stimuli = TinyBiological(), make_stimuli(n=11)
    rp = RandomProjection(dim=64, seed=5)
    a = run(model, stimuli, batch_size=2, reduction=rp)
    b = run(model, stimuli, batch_size=11, reduction=rp)
    c = run(model, stimuli, batch_size=4, reduction=rp)
    for layer in model.layers:
        np.testing.assert_allclose(a.layer(layer).values, b.layer(layer).values, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(a.layer(layer).values, c.layer(layer).values, rtol=1e-5, atol=1e-5)


def test_projected_features_equal_raw_features_times_the_matrix():
    model, stimuli = TinyBiological(), make_stimuli()
    rp = RandomProjection(dim=32, seed=0)
    raw = raw_features(model, stimuli, "C")
    projected = run(model, stimuli, reduction=rp).layer("C").values
    expected = raw @ rp.matrix("C", raw.shape[-1]).double().numpy()
    np.testing.assert_allclose(projected, expected, rtol=1e-4, atol=1e-4)


# --- PCA ---------------------------------------------------------------------------------------------------
def test_fit_pca_matches_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 25)) @ rng.normal(size=(25, 25))
    mean, comps, var = fit_pca(torch.from_numpy(x), 6)
    sk = SkPCA(n_components=6, svd_solver="full").fit(x)
    np.testing.assert_allclose(mean.numpy(), sk.mean_, atol=1e-10)
    np.testing.assert_allclose(var.numpy(), sk.explained_variance_, rtol=1e-8)
    new = rng.normal(size=(5, 25))
    np.testing.assert_allclose((torch.from_numpy(new) - mean) @ comps.T, sk.transform(new), atol=1e-8)


def test_pca_extraction_equals_sklearn_fit_on_the_declared_fitting_set():
    model, stimuli = TinyBiological(), make_stimuli(n=12)
    fit_ids = stimuli.stimulus_ids[::2]
    acts = run(model, stimuli, batch_size=5, reduction=PCA(dim=4, fit_ids=fit_ids))
    raw = raw_features(model, stimuli, "C")
    fit_rows = [stimuli.stimulus_ids.index(s) for s in fit_ids]
    for step in acts.driven_steps("C"):
        sk = SkPCA(n_components=4, svd_solver="full").fit(raw[step, fit_rows])
        np.testing.assert_allclose(acts.layer("C").values[step], sk.transform(raw[step]), rtol=1e-3, atol=1e-3)


def test_pca_fit_ids_must_be_in_the_stimulus_set():
    with pytest.raises(NeurofitError, match="'nope', which is not in the stimulus set 'toy'"):
        run(TinyBiological(), make_stimuli(), reduction=PCA(dim=3, fit_ids=["s00", "nope"]))


# --- time axis, arrival, validity -----------------------------------------------------------------------------
def test_pre_arrival_steps_of_a_biological_model_are_marked_absent():
    acts = run(TinyBiological(), make_stimuli(), reduction=RandomProjection(dim=16))
    assert acts.driven("A").tolist() == [True] * 5
    assert acts.driven("C").tolist() == [False, False, True, True, True]
    assert acts.attrs["arrival_measured"] == {"A": 0, "B": 1, "C": 2}
    assert acts.time_map.first_driven["C"] == 2
    with pytest.raises(NeurofitError, match="no image-driven signal at step 1"):
        acts.features("C", 1)
    assert acts.features("C", 1, allow_undriven=True).shape == (11, 16)
    assert acts.step_window("C", 2) == (20.0, 30.0)


def test_blank_frames_after_offset_of_a_feedforward_layer_are_not_driven():
    # layer A only sees the current frame, so after the image is switched off all stimuli look alike
    acts = run(TinyBiological(), make_stimuli(), steps=5, on=1, off=3, reduction=None)
    assert acts.driven("A").tolist() == [False, True, True, False, False]
    assert acts.driven("C").tolist() == [False, False, False, True, True]


def test_validity_mask_of_a_halting_model_is_kept_per_image():
    # batches of 2: the images sit at batch positions 0, 1, 0, 1, 0 and halt after 2, 3, 2, 3, 2 steps
    acts = run(TinyHalting(), make_stimuli(n=5), reduction=None, batch_size=2)
    mask = acts.validity
    assert mask is not None and mask.dims == ("frame", "presentation")
    assert mask.values[:, 2].tolist() == [True, True, False, False, False]
    assert mask.values[:, 3].tolist() == [True, True, True, False, False]
    assert acts.valid("A", 2).tolist() == [False, True, False, True, False]
    assert acts.valid("A", 0).all()
    assert run(TinyBiological(), make_stimuli(n=5), reduction=None).validity is None


def test_stimulus_metadata_labels_the_presentations():
    acts = run(TinyBiological(), make_stimuli(), reduction=None)
    features = acts.features("A", 0)
    assert features.dims == ("presentation", "feature")
    assert features["stimulus_id"].values.tolist()[:2] == ["s00", "s01"]
    assert features["object_name"].values.tolist()[:4] == ["o0", "o1", "o2", "o0"]


def test_unknown_layer_is_named_in_the_error():
    with pytest.raises(NeurofitError, match="layer 'IT' is not an output of TinyBiological"):
        run(TinyBiological(), make_stimuli(), layers=["IT"])


# --- cache -------------------------------------------------------------------------------------------------
def cached(model, stimuli, tmp_path, **kwargs):
    return extract_activations(model, stimuli, cache_dir=str(tmp_path), progress=False,
                               reduction=kwargs.pop("reduction", RandomProjection(dim=16, seed=0)), **kwargs)


def test_cache_hit_returns_the_stored_activations_without_running_the_model(tmp_path):
    model, stimuli = TinyBiological(), make_stimuli()
    first = cached(model, stimuli, tmp_path)
    assert model.calls == 1
    second = cached(model, stimuli, tmp_path)
    assert model.calls == 1
    assert second.attrs["cache_key"] == first.attrs["cache_key"]
    for layer in model.layers:
        np.testing.assert_array_equal(second.layer(layer).values, first.layer(layer).values)
        np.testing.assert_array_equal(second.driven(layer), first.driven(layer))


def test_cache_misses_on_a_changed_weight(tmp_path):
    model, stimuli = TinyBiological(), make_stimuli()
    first = cached(model, stimuli, tmp_path)
    with torch.no_grad():
        model.convs[2].bias[0] += 1e-3
    second = cached(model, stimuli, tmp_path)
    assert model.calls == 2
    assert second.attrs["weights_sha256"] != first.attrs["weights_sha256"]
    assert not np.array_equal(second.layer("C").values, first.layer("C").values)


def test_cache_misses_on_a_changed_stimulus_set(tmp_path):
    model = TinyBiological()
    cached(model, make_stimuli(), tmp_path)
    changed = make_stimuli()
    changed.arrays[3, 0, 0, 0] ^= 1  # one bit of one pixel
    cached(model, StimulusSet.from_arrays(changed.arrays, changed.table, 8.0, "toy"), tmp_path)
    assert model.calls == 2
    cached(model, make_stimuli().place_on_screen(10.0), tmp_path)
    assert model.calls == 3


@pytest.mark.parametrize("change", [
    {"reduction": RandomProjection(dim=16, seed=1)},
    {"reduction": RandomProjection(dim=17, seed=0)},
    {"reduction": PCA(dim=3, fit_ids=["s00", "s01", "s02"])},
    {"steps": 4},
    {"layers": ["A", "B"]},
])
def test_cache_misses_on_a_changed_reduction_or_preprocessing(tmp_path, change):
    model, stimuli = TinyBiological(), make_stimuli()
    cached(model, stimuli, tmp_path)
    cached(model, stimuli, tmp_path, **change)
    assert model.calls >= 2  # PCA runs its fitting set through the model too
    calls = model.calls
    cached(model, stimuli, tmp_path, **change)
    assert model.calls == calls  # and the changed entry is a hit from then on


def test_corrupt_cache_entry_is_a_logged_miss_and_is_rewritten(tmp_path, caplog):
    model, stimuli = TinyBiological(), make_stimuli()
    first = cached(model, stimuli, tmp_path)
    path = cache_mod.cache_path(tmp_path, first.attrs["cache_key"])
    path.write_bytes(path.read_bytes()[:200])  # a truncated file
    with caplog.at_level(logging.WARNING, logger="neurofit.extract.cache"):
        second = cached(model, stimuli, tmp_path)
    assert model.calls == 2
    assert "unreadable" in caplog.text
    np.testing.assert_array_equal(second.layer("C").values, first.layer("C").values)
    assert read_activations(path).attrs["cache_key"] == first.attrs["cache_key"]  # rewritten, readable


def test_activation_set_round_trips_through_netcdf(tmp_path):
    acts = run(TinyHalting(), make_stimuli(n=4), reduction=RandomProjection(dim=8))
    back = read_activations(acts.to_netcdf(tmp_path / "acts.nc"))
    assert back.layers == acts.layers and back.attrs["reduction"] == acts.attrs["reduction"]
    assert back.time_map == acts.time_map
    np.testing.assert_array_equal(back.layer("B").values, acts.layer("B").values)
    assert back.driven("C").dtype == bool and back.driven("C").tolist() == acts.driven("C").tolist()
    assert back.validity.values.tolist() == acts.validity.values.tolist()


def test_weights_hash_ignores_device_and_sees_every_tensor():
    a, b = TinyBiological(), TinyBiological()
    assert cache_mod.weights_sha256(a) == cache_mod.weights_sha256(b)
    with torch.no_grad():
        b.readout.weight[0, 0] = torch.nextafter(b.readout.weight[0, 0], torch.tensor(10.0))
    assert cache_mod.weights_sha256(a) != cache_mod.weights_sha256(b)


# --- zoo models --------------------------------------------------------------------------------------------
def test_cornet_rt_layers_are_absent_before_their_measured_arrival():
    from neurofit.models.zoo.cornet import cornet_rt

    acts = run(cornet_rt(width=4, input_size=16), make_stimuli(n=4), reduction=RandomProjection(dim=32))
    assert acts.attrs["arrival_measured"] == {"V1": 0, "V2": 1, "V4": 2, "IT": 3}
    assert acts.driven("IT").tolist() == [False, False, False, True, True]
    assert acts.driven_steps("V4") == [2, 3, 4]


def test_cornet_s_areas_keep_their_own_number_of_steps():
    from neurofit.models.zoo.cornet import cornet_s

    acts = run(cornet_s(width=4, input_size=16), make_stimuli(n=3), reduction=RandomProjection(dim=32))
    assert [acts.n_steps(layer) for layer in acts.layers] == [1, 2, 4, 2]
    assert acts.step_window("V4", 1) == (2.5, 5.0)
    assert acts.driven("V4").all()


def test_bf16_autocast_stays_close_to_float32_and_is_a_separate_cache_entry(tmp_path):
    model, stimuli = TinyBiological(), make_stimuli()
    full = cached(model, stimuli, tmp_path)
    half = cached(model, stimuli, tmp_path, autocast="bf16", device="cpu")
    assert model.calls == 2 and half.attrs["preprocessing"]["autocast"] == "bf16"
    a, b = full.layer("C").values.ravel(), half.layer("C").values.ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.99
    with pytest.raises(NeurofitError, match="autocast must be None, 'bf16' or 'fp16'"):
        cached(model, stimuli, tmp_path, autocast="int8")


def test_halting_convgru_validity_is_its_act_halting_mask():
    from neurofit.models.zoo.halting import halting_convgru

    model = halting_convgru(stem_channels=4, channels=[4, 4], steps=4, input_size=16).eval()
    stimuli = make_stimuli(n=5)
    acts = run(model, stimuli, reduction=None, batch_size=2)
    images = model.normalize(stimuli.load_images(16))
    with torch.no_grad():
        expected = model.validity(model.forward_sequence(present(images, 4)))
    assert acts.validity.values.tolist() == expected.tolist()
    assert acts.validity.values[0].all() and not acts.validity.values[-1].any()  # untrained: halts after 2 steps
