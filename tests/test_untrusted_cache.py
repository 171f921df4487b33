"""Bad-input corpus, the activation and synthetic-data caches: an entry is verified before reuse, and a failed
write is harmless.

A flipped byte or an entry copied under another key is a logged miss that is recomputed (never a different
number); a cache write that fails (full disk: netCDF raises RuntimeError, not OSError) is logged and the run
goes on.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import xarray as xr
from test_extract_activations import TinyBiological, TinyHalting, make_stimuli

from neurofit.data.io import content_sha256, read_dataset, write_netcdf
from neurofit.errors import ChecksumError, DiskFullError
from neurofit.extract import RandomProjection, extract_activations
from neurofit.extract import cache as cache_mod


def cached(model, stimuli, cache_dir, **kwargs):
    return extract_activations(model, stimuli, cache_dir=str(cache_dir), progress=False,
                               reduction=RandomProjection(dim=16, seed=0), **kwargs)


def same_numbers(a, b) -> bool:
    return all(np.array_equal(a.layer(layer).values, b.layer(layer).values) for layer in a.layers)


def test_the_content_checksum_survives_the_netcdf_round_trip(tmp_path):
    # bools, strings, table columns, validity, nested attrs: what is hashed on writing is what is read back
    acts = extract_activations(TinyHalting(), make_stimuli(n=5), reduction=RandomProjection(dim=8), cache=False,
                               progress=False)
    path = write_netcdf(acts.dataset, tmp_path / "a.nc", checksum=True)
    back = read_dataset(path, verify=True)
    assert content_sha256(back) == content_sha256(acts.dataset)


def test_every_flipped_byte_is_a_miss_or_the_same_numbers_never_different_ones(tmp_path, caplog):
    model, stimuli = TinyBiological(), make_stimuli()
    first = cached(model, stimuli, tmp_path / "cache")
    path = cache_mod.cache_path(tmp_path / "cache", first.attrs["cache_key"])
    pristine = path.read_bytes()
    # a byte inside the stored features (found by value), then bytes spread over the whole file
    marker = first.dataset["C"].values.tobytes()[:16]
    positions = [pristine.index(marker) + 5, *np.linspace(0, len(pristine) - 1, 25).astype(int).tolist()]
    misses = 0
    for position in positions:
        flipped = bytearray(pristine)
        flipped[position] ^= 0x10
        path.write_bytes(bytes(flipped))
        with caplog.at_level(logging.WARNING, logger="neurofit.extract.cache"):
            hit = cache_mod.load_cached(tmp_path / "cache", first.attrs["cache_key"])
        if hit is None:
            misses += 1
        else:
            assert same_numbers(hit, first), f"a flip at byte {position} gave different numbers"
    assert misses >= 1 and "corrupt" in caplog.text


def test_a_flipped_feature_byte_is_recomputed_to_the_same_numbers(tmp_path, caplog):
    model, stimuli = TinyBiological(), make_stimuli()
    first = cached(model, stimuli, tmp_path)
    path = cache_mod.cache_path(tmp_path, first.attrs["cache_key"])
    data = bytearray(path.read_bytes())
    data[data.index(first.dataset["C"].values.tobytes()[:16]) + 5] ^= 0x01
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="neurofit.extract.cache"):
        second = cached(model, stimuli, tmp_path)
    assert model.calls == 2 and "does not match" in caplog.text
    assert same_numbers(second, first)
    assert cache_mod.load_cached(tmp_path, first.attrs["cache_key"]) is not None  # rewritten


def test_an_entry_swapped_with_another_keys_entry_is_a_miss(tmp_path, caplog):
    model = TinyBiological()
    a = cached(model, make_stimuli(seed=0), tmp_path)
    b = cached(model, make_stimuli(seed=1), tmp_path)
    path_a = cache_mod.cache_path(tmp_path, a.attrs["cache_key"])
    path_b = cache_mod.cache_path(tmp_path, b.attrs["cache_key"])
    swap = tmp_path / "swap"
    shutil.move(path_a, swap), shutil.move(path_b, path_a), shutil.move(swap, path_b)
    with caplog.at_level(logging.WARNING, logger="neurofit.extract.cache"):
        again = cached(model, make_stimuli(seed=0), tmp_path)
    assert model.calls == 3 and "was made for key" in caplog.text
    assert same_numbers(again, a)


def test_an_entry_without_a_checksum_is_a_miss(tmp_path):
    model, stimuli = TinyBiological(), make_stimuli()
    first = cached(model, stimuli, tmp_path)
    path = cache_mod.cache_path(tmp_path, first.attrs["cache_key"])
    write_netcdf(first.dataset, path)  # an entry of an older neurofit, or written by hand
    assert cache_mod.load_cached(tmp_path, first.attrs["cache_key"]) is None
    with pytest.raises(ChecksumError, match="carries no 'content_sha256'"):
        read_dataset(path, verify=True)


@pytest.mark.parametrize("failure", [RuntimeError("NetCDF: HDF error"), DiskFullError("no space left"),
                                     PermissionError(13, "Permission denied")])
def test_a_failed_cache_write_is_logged_and_the_run_goes_on(tmp_path, monkeypatch, caplog, failure):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(xr.Dataset, "to_netcdf", fail)
    with caplog.at_level(logging.WARNING, logger="neurofit.extract.cache"):
        acts = cached(TinyBiological(), make_stimuli(), tmp_path)
    assert acts.layers == ["A", "B", "C"] and "could not write activation cache entry" in caplog.text


# --- the synthetic-ventral cache (generated datasets) ---------------------------------------------------------
def test_a_damaged_synthetic_cache_file_is_rebuilt_never_read_as_other_data(tmp_path, monkeypatch, caplog):
    from neurofit.data import synthetic as syn

    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "home"))
    args = {"n_v4": 2, "n_it": 2, "repetitions": 3}
    recording, stimuli = syn.generate_synthetic_ventral("small", **args)
    [path] = (tmp_path / "home" / "synthetic").glob("synthetic-ventral-*.nc")
    pristine = path.read_bytes()
    # a stimulus id (stored uncompressed: netCDF reads a flip there without complaint), then bytes all over
    marker = str(stimuli.table["stimulus_id"].iloc[7]).encode()
    positions = [pristine.index(marker) + len(marker) - 1, *np.linspace(0, len(pristine) - 1, 15).astype(int)]
    for position in positions:
        flipped = bytearray(pristine)
        flipped[position] ^= 0x04
        path.write_bytes(bytes(flipped))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="neurofit.data.synthetic"):
            again, again_stimuli = syn.generate_synthetic_ventral("small", **args)
        assert again.identical(recording), f"a flip at byte {position} gave other data"
        assert again_stimuli.table.equals(stimuli.table) and np.array_equal(again_stimuli.arrays, stimuli.arrays)
        if position == positions[0]:
            assert "does not match" in caplog.text and "regenerating it" in caplog.text
    path.write_bytes(pristine)


def test_a_synthetic_cache_file_without_checksum_is_rebuilt(tmp_path, monkeypatch, caplog):
    from neurofit.data import synthetic as syn

    monkeypatch.setenv("NEUROFIT_HOME", str(tmp_path / "home"))
    args = {"n_v4": 2, "n_it": 2, "repetitions": 3}
    recording, _ = syn.generate_synthetic_ventral("small", **args)
    [path] = (tmp_path / "home" / "synthetic").glob("synthetic-ventral-*.nc")
    ds = read_dataset(path)
    ds.attrs.pop("content_sha256")
    ds["rates"].values[:] = 0  # an older neurofit's file, with other numbers
    path.unlink()
    write_netcdf(ds, path)  # no checksum
    with caplog.at_level(logging.WARNING, logger="neurofit.data.synthetic"):
        again, _ = syn.generate_synthetic_ventral("small", **args)
    assert again.identical(recording) and "carries no 'content_sha256' attr" in caplog.text
