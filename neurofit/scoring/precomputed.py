"""Scoring precomputed features against a benchmark: the twin of ``neurofit score --features FILE``.

Features extracted elsewhere (a file, or arrays with their stimulus ids) become an ActivationSet
(:mod:`neurofit.extract.precomputed`) and are scored exactly as a model's activations are: the benchmark's
recording, regions and bins, its layer (and latency) commitment on held-out stimuli, or the layers you name,
the same splits, regression, ceiling and bootstrap. No image is shown, so no stimulus set is needed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neurofit.errors import NeurofitError

if TYPE_CHECKING:  # the command line imports this module for its options: no heavy import at module level
    import xarray as xr

    from neurofit.data.stimuli import StimulusSet
    from neurofit.extract.activations import ActivationSet


def load_features(
    features: str | os.PathLike[str] | ActivationSet | Mapping[str, Any] | xr.Dataset,
    stimulus_ids: Sequence[str] | str | os.PathLike[str] | None = None,
    *,
    step_ms: float = 10.0,
    t0_ms: float = 0.0,
) -> ActivationSet:
    """An ActivationSet from a features file, from arrays (+ ``stimulus_ids``), or as given.

    Example
    -------
    >>> import numpy as np
    >>> load_features({"IT": np.eye(3)}, ["a", "b", "c"]).layers
    ['IT']
    """
    import xarray as xr

    from neurofit.extract.activations import ActivationSet
    from neurofit.extract.precomputed import features_from_arrays, read_features

    if isinstance(features, ActivationSet):
        if stimulus_ids is not None:
            raise NeurofitError("an ActivationSet carries its own stimulus ids; drop stimulus_ids")
        return features
    if isinstance(features, (str, os.PathLike)):
        return read_features(features, stimulus_ids, step_ms=step_ms, t0_ms=t0_ms)
    if isinstance(features, (Mapping, xr.Dataset)):
        return features_from_arrays(features, stimulus_ids, step_ms=step_ms, t0_ms=t0_ms)
    raise NeurofitError(f"cannot read features from a {type(features).__name__}: give a file, a mapping of layer -> "
                        "array (with stimulus_ids) or an ActivationSet")


def score_precomputed(
    features: str | os.PathLike[str] | ActivationSet | Mapping[str, Any] | xr.Dataset,
    benchmark: Any,
    *,
    stimulus_ids: Sequence[str] | str | os.PathLike[str] | None = None,
    layers: Sequence[str] | Mapping[str, str] | None = None,
    recording: xr.DataArray | None = None,
    stimuli: StimulusSet | None = None,
    step_ms: float = 10.0,
    t0_ms: float = 0.0,
    model_id: str | None = None,
    **options: Any,
) -> xr.Dataset:
    """Score precomputed features against a benchmark; return (and with ``out=`` write) the ScoreSet.

    Parameters
    ----------
    features : path, mapping of layer -> array, xr.Dataset or ActivationSet
        A features file (:func:`neurofit.extract.precomputed.read_features`: ActivationSet NetCDF, labelled
        NetCDF, ``.npz``, ``.npy``, torch, safetensors, HDF5, text, MATLAB) or arrays with stimuli along the first
        axis (keys ``LAYER:k`` for step ``k - 1``).
    benchmark : str, path or Benchmark
    stimulus_ids : sequence of str or a stimulus-order file, optional
        The stimulus of each row, where the features carry no ids.
    layers : optional
        Score these layers without layer commitment (``["IT"]``, ``["V4=conv3", "IT=conv4"]``); by default the
        benchmark commits a layer per region on held-out stimuli, as for a model.
    recording, stimuli : optional
        Score against this recording instead of the benchmark's dataset; a stimulus set is not needed.
    step_ms, t0_ms : float
        Step ``t`` of the features covers ``[t0_ms + t * step_ms, t0_ms + (t + 1) * step_ms)`` ms after onset.
    model_id : str, optional
        Name in the ScoreSet (default: the file's name, or ``features``).
    **options
        Passed to :func:`neurofit.scoring.score.score`: ``out``, ``grid``, ``device``, ``work_dir``,
        ``progress``, ``created``, ``runner``, ...

    Example
    -------
    >>> scores = score_precomputed("features.npz", "synthetic-ventral-it-temporal")  # doctest: +SKIP
    >>> scores.attrs["committed_layers"]  # doctest: +SKIP
    """
    from neurofit.scoring.score import score

    acts = load_features(features, stimulus_ids, step_ms=step_ms, t0_ms=t0_ms)
    if "weights" in options and options["weights"] != "auto":
        raise NeurofitError(f"weights={options['weights']!r} needs a model to build; these are precomputed features")
    data = None if recording is None else (recording, stimuli)
    return score(acts, benchmark, layers=layers, data=data, model_id=model_id, **options)


# ------------------------------------------------------------------------------------------------ the CLI
def add_feature_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``neurofit score --features`` (besides ``--features`` itself).

    Example
    -------
    >>> p = argparse.ArgumentParser(); add_feature_arguments(p)
    >>> p.parse_args(["--stimulus-order", "ids.txt"]).step_ms
    10.0
    """
    group = parser.add_argument_group("precomputed features (--features)")
    group.add_argument("--stimulus-order", metavar="FILE",
                       help="the stimulus of each row, for feature files without ids: one id per line (thingsvision's "
                            "file_names.txt works: image names stand for their ids) or a CSV with a stimulus_id column")
    group.add_argument("--stimulus-column", metavar="NAME", help="the CSV column of --stimulus-order holding the ids")
    group.add_argument("--step-ms", type=float, default=10.0, help="duration of one step of the features (default 10)")
    group.add_argument("--t0-ms", type=float, default=0.0,
                       help="start of step 0 after stimulus onset (default 0)")


MODEL_ONLY_FLAGS = (("--checkpoint", "checkpoint"), ("--arch", "arch"), ("--steps", "steps"),
                    ("--baseline", "baseline"))


def score_features_command(args: argparse.Namespace) -> int:
    """``neurofit score --features FILE --benchmark ID``: score, print the summary, write the ScoreSet."""
    from neurofit.extract.precomputed import read_features, read_stimulus_order
    from neurofit.runners.commands import runner_from_args
    from neurofit.scoring.commands import _print_scores

    used = [flag for flag, name in MODEL_ONLY_FLAGS if getattr(args, name, None) is not None]
    if getattr(args, "weights", "auto") != "auto":
        used.append("--weights")
    if used:
        raise NeurofitError(f"{used[0]} applies to a model; --features are precomputed")
    if args.stimulus_column and not args.stimulus_order:
        raise NeurofitError("--stimulus-column names a column of --stimulus-order; give that file")
    recording = stimuli = None
    if args.recording is not None:
        from neurofit.data.io import read_recording

        recording = read_recording(args.recording)
    if args.stimuli is not None:
        if args.recording is None:
            raise NeurofitError("--stimuli goes with --recording")
        from neurofit.data.stimuli import read_stimulus_set

        stimuli = read_stimulus_set(args.stimuli)
    ids = read_stimulus_order(args.stimulus_order, args.stimulus_column) if args.stimulus_order else None
    acts = read_features(args.features, ids, step_ms=args.step_ms, t0_ms=args.t0_ms)
    out = args.out or Path(args.out_dir or ".") / f"{Path(args.features).stem}-{Path(args.benchmark).stem}.nc"
    runner = runner_from_args(args)
    try:
        scores = score_precomputed(acts, args.benchmark, layers=args.layers, recording=recording, stimuli=stimuli,
                                   grid=args.grid, device=args.device, out=out, work_dir=args.work_dir,
                                   progress=False if args.quiet else None, runner=runner, metric=args.metric)
    finally:
        if runner is not None:
            runner.close()
    _print_scores(scores, out)
    return 0


__all__ = ["add_feature_arguments", "load_features", "score_features_command", "score_precomputed"]
