"""Run inside the Brain-Score environment (see tests/brainscore_venv.py), never in neurofit's.

Writes, with Brain-Score's own classes and writer, a temporal NeuroidAssembly (MultiIndex presentation and
neuroid, 10 ms time bins, repetitions with a few missing trials) and its StimulusSet; reads them back with
Brain-Score's loader; runs Brain-Score's regression_correlation metrics and internal-consistency ceilings on
them against model features; and writes every number to ``reference.json`` for neurofit to reproduce.

Usage: python make_reference.py OUT_DIR
"""

import json
import os
import sys
import warnings
import zipfile
from pathlib import Path

os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")
os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np
from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
from brainscore_core.supported_data_standards.brainio.packaging import (
    package_data_assembly_locally,
    package_stimulus_set_locally,
)
from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet
from brainscore_vision import load_ceiling, load_metric
from brainscore_vision.benchmark_helpers.neural_common import average_repetition, explained_variance
from brainscore_vision.metric_helpers.temporal import PerTime, PerTimeRegression
from brainscore_vision.metric_helpers.transformations import Split
from brainscore_vision.metrics.regression_correlation.metric import (
    CrossRegressedCorrelation,
    pearsonr_correlation,
    pls_regression,
    ridge_regression,
)
from joblib import parallel_config
from PIL import Image

N_OBJECTS, PER_OBJECT, REPS, N_IT, N_V4, N_FEATURES = 8, 10, 6, 12, 4, 30
BINS = [(t, t + 10) for t in range(70, 150, 10)]
ASSEMBLY_ID = "neurofit.Toy2024.temporal"
STIMULUS_SET_ID = "neurofit.Toy2024"
CROSSVALIDATION = {"stratification_coord": "object_name"}  # as Brain-Score's MajajHong2015 benchmarks
# every knob of Brain-Score's cross-validation and ridge set away from its default
KNOBS = {"splits": 5, "train_size": 0.8, "stratification_coord": None, "random_state": 3}
KNOB_ALPHA = 0.25


def make_data(rng):
    n = N_OBJECTS * PER_OBJECT
    # stimulus ids not in sorted order of appearance: Brain-Score sorts by stimulus_id
    ids = [f"img{int(k):04d}" for k in rng.permutation(n) * 7]
    objects = [f"obj{i % N_OBJECTS}" for i in range(n)]
    latent = rng.normal(size=(n, 5))
    n_sites, n_bins = N_IT + N_V4, len(BINS)
    loading = rng.normal(size=(5, n_sites))
    latency = rng.integers(2, 6, n_sites)
    time = np.arange(n_bins)
    profile = np.clip(time[None] - latency[:, None], 0, None) * np.exp(-np.clip(time[None] - latency[:, None], 0, None)
                                                                      / 4.0)  # [sites, bins]
    signal = (latent @ loading)[:, :, None] * profile[None] + 5.0  # [n, sites, bins]
    trials = signal[:, None] + 1.5 * rng.normal(size=(n, REPS, n_sites, n_bins))
    trials[3, 2, 5, :] = np.nan  # missing trials are ignored, never imputed
    trials[11, 0, :, 4] = np.nan
    dynamics = np.stack([np.cos(0.3 * time + k) for k in range(N_FEATURES)], axis=1)  # [bins, features]
    features = (latent @ rng.normal(size=(5, N_FEATURES)))[:, :, None] * (1 + 0.5 * dynamics.T[None]) \
        + 0.8 * rng.normal(size=(n, N_FEATURES, n_bins))
    return ids, objects, trials, features


def write_stimuli(ids, objects, rng, work):
    paths = {}
    (work / "images").mkdir(parents=True, exist_ok=True)
    for sid in ids:
        path = work / "images" / f"{sid}.png"
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
        paths[sid] = str(path)
    stimuli = StimulusSet({"stimulus_id": ids, "object_name": objects, "category_name": [o[:4] for o in objects]})
    stimuli.stimulus_paths = paths
    stimuli.identifier = STIMULUS_SET_ID
    return package_stimulus_set_locally(stimuli, STIMULUS_SET_ID, downloads_path=work)


def write_assembly(ids, trials, work):
    n, reps, n_sites, n_bins = trials.shape
    values = trials.reshape(n * reps, n_sites, n_bins)
    stim = np.repeat(ids, reps)
    assembly = NeuroidAssembly(
        values,
        coords={
            "stimulus_id": ("presentation", stim),
            "repetition": ("presentation", np.tile(np.arange(reps), n)),
            "neuroid_id": ("neuroid", [f"site{j:02d}" for j in range(n_sites)]),
            "region": ("neuroid", ["IT"] * N_IT + ["V4"] * N_V4),
            "animal": ("neuroid", ["m1"] * n_sites),
            "time_bin_start": ("time_bin", [b[0] for b in BINS]),
            "time_bin_end": ("time_bin", [b[1] for b in BINS]),
        },
        dims=["presentation", "neuroid", "time_bin"],
    )
    assembly.attrs["units"] = "spikes/s"
    return package_data_assembly_locally(assembly, ASSEMBLY_ID, STIMULUS_SET_ID, downloads_path=work)


def read_back(stimulus_info, assembly_info, work):
    """Brain-Score's own loaders, as a benchmark reads a packaged assembly (stimulus metadata merged in)."""
    unzipped = work / "unzipped"
    with zipfile.ZipFile(stimulus_info["zip_path"]) as archive:
        archive.extractall(unzipped)
    stimuli = StimulusSet.from_files(stimulus_info["csv_path"], unzipped)
    stimuli.identifier = STIMULUS_SET_ID
    return NeuroidAssembly.from_files(assembly_info["path"], stimulus_set_identifier=STIMULUS_SET_ID,
                                      stimulus_set=stimuli)


def region_assembly(assembly, region):
    # as brainscore_vision/benchmarks/majajhong2015/benchmark.py:load_assembly
    assembly = assembly.sel(region=region)
    assembly["region"] = "neuroid", [region] * len(assembly["neuroid"])
    return assembly.transpose("presentation", "neuroid", ...)


def source_assembly(features, ids, objects, bins):
    return NeuroidAssembly(
        features,
        coords={"stimulus_id": ("presentation", ids), "object_name": ("presentation", objects),
                "neuroid_id": ("neuroid", [f"f{k}" for k in range(features.shape[1])]),
                "time_bin_start": ("time_bin", [b[0] for b in bins]),
                "time_bin_end": ("time_bin", [b[1] for b in bins])},
        dims=["presentation", "neuroid", "time_bin"])


def splits_of(assembly, **kwargs):
    """The stimulus ids Brain-Score's Split trains and tests on, per split (its CrossValidation's own splits)."""
    values, splits = Split(**kwargs).build_splits(assembly)
    ids = np.asarray(assembly["stimulus_id"].values).astype(str)
    return [{"train": ids[train].tolist(), "test": ids[test].tolist()} for train, test in splits]


def summary(raw, ceiling):
    """Brain-Score's numbers: raw and ceiling centers and errors, per-split medians, per-split per-site r."""
    ceiled = explained_variance(raw, ceiling)
    per_site = raw.attrs["raw"]  # split x neuroid (x time_bin)
    dims = [d for d in ("split", "neuroid", "time_bin") if d in per_site.dims]
    per_site = per_site.transpose(*dims)
    ceiling_sites = ceiling.attrs["raw"]
    ceiling_dims = [d for d in ("split", "neuroid", "time_bin") if d in ceiling_sites.dims]
    ceiling_sites = ceiling_sites.transpose(*ceiling_dims)
    return {
        "score": np.atleast_1d(ceiled.values).tolist(),
        "score_error": np.atleast_1d(ceiled.attrs["error"].values).tolist(),
        "raw": np.atleast_1d(raw.values).tolist(),
        "raw_error": np.atleast_1d(raw.attrs["error"].values).tolist(),
        "raw_per_split": np.atleast_2d(per_site.median("neuroid").values.T).T.tolist(),
        "r_per_split_site": per_site.values.tolist(),
        "r_neuroid_id": per_site["neuroid_id"].values.tolist(),
        "ceiling": np.atleast_1d(ceiling.values).tolist(),
        "ceiling_error": np.atleast_1d(ceiling.attrs["error"].values).tolist(),
        "ceiling_per_split_site": ceiling_sites.values.tolist(),
    }


def main(out):
    # Brain-Score's PerTime runs each time bin in a joblib process pool: on a small CI machine starting and
    # feeding the pool costs 20x more than the fits; sequential execution gives the same numbers.
    with parallel_config(backend="sequential"), warnings.catch_warnings():
        # Brain-Score's pinned xarray emits FutureWarnings under current pandas by the thousand
        warnings.simplefilter("ignore", FutureWarning)
        compute(Path(out))


def compute(out):
    rng = np.random.default_rng(2024)
    ids, objects, trials, features = make_data(rng)
    stimulus_info = write_stimuli(ids, objects, rng, out)
    assembly_info = write_assembly(ids, trials, out)
    np.savez(out / "features.npz", features=features, stimulus_id=np.array(ids))

    assembly = read_back(stimulus_info, assembly_info, out)
    loaded = assembly.transpose("presentation", "neuroid", "time_bin")
    np.savez(out / "brainscore_loaded.npz", values=loaded.values,
             **{name: np.asarray(loaded[name].values).astype(str) for name in
                ("stimulus_id", "repetition", "object_name", "neuroid_id", "region", "time_bin_start")})
    it_trials = region_assembly(assembly, "IT")
    it = average_repetition(it_trials)
    source = source_assembly(features, ids, objects, BINS)
    reference = {"files": {"assembly": Path(assembly_info["path"]).name, "assembly_sha1": assembly_info["sha1"],
                           "stimulus_csv": Path(stimulus_info["csv_path"]).name,
                           "stimulus_zip": Path(stimulus_info["zip_path"]).name,
                           "csv_sha1": stimulus_info["csv_sha1"], "zip_sha1": stimulus_info["zip_sha1"]},
                 "bins": BINS}

    # temporal, one mapping shared by all bins (Brain-Score's MajajHong2015 temporal benchmarks)
    temporal_ceiling = load_ceiling("internal_consistency_temporal")(it_trials)
    raw = load_metric("spantime_pls", crossvalidation_kwargs=CROSSVALIDATION)(source, it)
    reference["spantime_pls"] = summary(raw, temporal_ceiling)
    # temporal, one mapping per bin: Brain-Score's PerTimeRegression in its regression_correlation metric
    per_bin = CrossRegressedCorrelation(regression=PerTimeRegression(pls_regression()),
                                        correlation=PerTime(pearsonr_correlation()),
                                        crossvalidation_kwargs=CROSSVALIDATION)
    reference["per_bin_pls"] = summary(per_bin(source, it), temporal_ceiling)

    # static: the whole window (mean of its 10 ms bins) and the features of its first bin
    window = list(range(len(BINS)))
    static_trials = it_trials.isel(time_bin=window).mean("time_bin")
    static = average_repetition(static_trials)
    static_source = source.isel(time_bin=window[0]).squeeze()
    static_ceiling = load_ceiling("internal_consistency")(static_trials)
    reference["static_window"] = [BINS[window[0]][0], BINS[window[-1]][1]]
    reference["static_pls"] = summary(load_metric("pls", crossvalidation_kwargs=CROSSVALIDATION)(static_source,
                                                                                                    static),
                                      static_ceiling)
    reference["static_ridge"] = summary(load_metric("ridge", crossvalidation_kwargs=CROSSVALIDATION)(static_source,
                                                                                                      static),
                                        static_ceiling)
    knobs = CrossRegressedCorrelation(regression=ridge_regression({"alpha": KNOB_ALPHA}),
                                      correlation=pearsonr_correlation(), crossvalidation_kwargs=KNOBS)
    reference["static_ridge_knobs"] = summary(knobs(static_source, static), static_ceiling)
    reference["static_ridge_knobs"]["settings"] = {**KNOBS, "alpha": KNOB_ALPHA}
    # the splits Brain-Score's metrics drew on the averaged assembly (train 0.9 stratified by object, seed 1)
    reference["splits"] = splits_of(static, **CROSSVALIDATION)
    reference["splits_knobs"] = splits_of(static, **KNOBS)
    (out / "reference.json").write_text(json.dumps(reference))


if __name__ == "__main__":
    main(sys.argv[1])
