"""Helpers shared by the test files (suite-wide settings are in the repository's root ``conftest.py``).

Test files import them as ``from conftest import toy`` (pytest puts this folder on ``sys.path``).
"""

import numpy as np
import pandas as pd

from neurofit.data.recording import make_recording
from neurofit.data.stimuli import StimulusSet
from neurofit.scoring.resolve import activations_from_arrays

# scripts run inside the Brain-Score virtualenv (they import brainscore_core), not modules of this suite: the
# doctest collector (--doctest-modules) would import them
collect_ignore = ["brainscore_env"]


TOY_BENCHMARK = """
id = "toy"
version = "1"
[dataset]
id = "toy"
[neural]
regions = ["V4", "IT"]
time_bins = {{ start = 0, end = 50, width = 10 }}
[stimuli]
degrees = 8.0
[regression]
n_components = 5
n_splits = 5
temporal_mode = "{mode}"
[mapping]
offsets_ms = [0, 10]
[commitment]
fraction = 0.2
[aggregate]
n_bootstrap = 200
"""


def toy(n_obj=12, per_obj=10, reps=8, n_v4=6, n_it=8, n_bins=5, d=30, seed=0, noise=1.5):
    """A recording whose V4 sites read latent A and IT sites latent B, per bin; layer 'a' carries A, 'b' B."""
    rng = np.random.default_rng(seed)
    n = n_obj * per_obj
    ids = [f"s{i:03d}" for i in range(n)]
    objs = [f"o{i // per_obj}" for i in range(n)]
    lat_v4 = rng.normal(size=(n, n_bins, 5))
    lat_it = rng.normal(size=(n, n_bins, 5))
    w4, wi = rng.normal(size=(5, n_v4)), rng.normal(size=(5, n_it))
    signal = np.concatenate([np.einsum("ntk,ks->nst", lat_v4, w4), np.einsum("ntk,ks->nst", lat_it, wi)], axis=1)
    trials = signal[:, None] + noise * rng.normal(size=(n, reps, *signal.shape[1:]))
    rec = make_recording(
        trials.reshape(n * reps, *signal.shape[1:]), stimulus_id=np.repeat(ids, reps),
        repetition=np.tile(np.arange(reps), n),
        neuroid_id=[f"v{i}" for i in range(n_v4)] + [f"i{i}" for i in range(n_it)],
        region=["V4"] * n_v4 + ["IT"] * n_it, time_bin_start=10.0 * np.arange(n_bins),
        time_bin_end=10.0 * np.arange(1, n_bins + 1), identifier="toy", stimulus_set_identifier="toy",
        units="spikes/s", presentation_coords={"object_name": np.repeat(objs, reps)})
    imgs = rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8)
    stimuli = StimulusSet.from_arrays(imgs, pd.DataFrame({"stimulus_id": ids, "object_name": objs}), degrees=8,
                                      identifier="toy")
    mix = rng.normal(size=(5, d))
    feats = {"a": np.einsum("ntk,kd->tnd", lat_v4, mix) + 0.3 * rng.normal(size=(n_bins, n, d)),
             "b": np.einsum("ntk,kd->tnd", lat_it, mix) + 0.3 * rng.normal(size=(n_bins, n, d))}
    return rec, stimuli, activations_from_arrays(feats, ids, model_id="toy-features")


def brainscore_assembly(n_obj=10, per_obj=10, reps=6, n_sites=12, d=40, seed=5):
    """A one-bin IT recording in scrambled presentation order with a missing trial, its stimuli and features:
    ``(recording, stimuli, features, ids, objects, trials)`` (Brain-Score-mode checks)."""
    rng = np.random.default_rng(seed)
    n = n_obj * per_obj
    # ids deliberately not in sorted order of appearance: Brain-Score sorts by stimulus_id
    ids = [f"img{int(k):04d}" for k in rng.permutation(n) * 7]
    objs = [f"obj{i % n_obj}" for i in range(n)]
    latent = rng.normal(size=(n, 6))
    signal = latent @ rng.normal(size=(6, n_sites))
    trials = signal[:, None] + 1.2 * rng.normal(size=(n, reps, n_sites))
    trials[3, 2, 5] = np.nan  # a missing trial is ignored, never imputed
    order = rng.permutation(n * reps)  # presentations in a scrambled order
    stim_idx, rep_idx = np.divmod(np.arange(n * reps), reps)
    rec = make_recording(trials.reshape(n * reps, n_sites, 1)[order],
                         stimulus_id=np.array(ids)[stim_idx][order], repetition=rep_idx[order],
                         neuroid_id=[f"n{i}" for i in range(n_sites)], region="IT", time_bin_start=[70.0],
                         time_bin_end=[170.0], identifier="toy-majajhong", stimulus_set_identifier="toy",
                         units="spikes/s",  # Gaussian responses: not counts
                         presentation_coords={"object_name": np.array(objs)[stim_idx][order]})
    feats = latent @ rng.normal(size=(6, d)) + 0.8 * rng.normal(size=(n, d))
    stimuli = StimulusSet.from_arrays(np.zeros((n, 4, 4, 3), np.uint8),
                                      pd.DataFrame({"stimulus_id": ids, "object_name": objs}), 8.0, "toy")
    return rec, stimuli, feats, ids, objs, trials


def pearson_columns(a, b):
    """Pearson r of every column pair along axis 0, the textbook formula (a reference for the engines)."""
    a, b = a - a.mean(0), b - b.mean(0)
    return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))


def toy_metric_benchmark(directory, metric_section: str):
    """The toy benchmark (per bin, 30 ms, 3 ceiling halvings, 50 draws) with a ``[metric]`` section, written to
    ``directory/toy.toml``: the benchmark of the metric tests."""
    path = directory / "toy.toml"
    text = TOY_BENCHMARK.format(mode="per_bin").replace("n_bootstrap = 200", "n_bootstrap = 50")
    path.write_text(text.replace("end = 50", "end = 30").replace("[aggregate]", "[ceiling]\nn_splits = 3\n[aggregate]")
                    + metric_section)
    return path


def two_squares_stimuli(directory):
    """24 noisy 16-px images of two classes a small network can tell apart: a small or a large bright square at
    a random place, written as a stimulus set to ``directory/stimuli.csv``."""
    from neurofit.data.stimuli import write_stimulus_set

    rng = np.random.default_rng(0)
    images = rng.uniform(0.1, 0.5, size=(24, 16, 16))
    names = ["large", "small"] * 12
    for i, name in enumerate(names):
        side = rng.integers(5, 8) if name == "large" else rng.integers(2, 5)
        row, column = rng.integers(0, 16 - side, size=2)
        images[i, row:row + side, column:column + side] += 0.45
    table = pd.DataFrame({"stimulus_id": [f"s{i:02d}" for i in range(24)], "category_name": names})
    stimuli = StimulusSet.from_arrays((np.clip(images, 0, 1) * 255).astype(np.uint8), table, 8.0, "two-squares")
    return write_stimulus_set(stimuli, directory / "stimuli.csv")
