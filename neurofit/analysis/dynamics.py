"""``analyze_dynamics``: every representation-dynamics analysis of one model on one labelled stimulus set.

The Python twin of ``neurofit analyze dynamics``. It runs the model over the stimuli (images held on for
``steps`` steps) and assembles one :class:`xarray.Dataset`:

* **readout over time** (Thorat et al. 2023): ``logits``, ``correct`` and ``accuracy`` per step (bootstrap
  CI over images), optional cross-validated ``probe_accuracy`` on a chosen layer, per-image
  ``first_correct_step`` and ``stays_correct``, counted from the first step at which the readout is
  image-driven (coord ``readout_driven``; a biological unroll's readout is driven only once the image
  has reached its top layer);
* **movement**: ``movement`` (distance of the penultimate representation from the previous step), and
  ``movement_after_correct`` per step: the mean over images already classified correctly at an earlier
  step (the "not done with classification" effect), with CIs;
* **norms**: ``norm`` per image and step, ``norm_correct`` / ``norm_incorrect`` per step with CIs;
* **readout zones**: ``margin`` (signed distance to the label's zone boundary), ``centre_distance`` (to
  the class mean at that step), ``zone_projection`` (on the zone axis), and the ``corrected`` /
  ``misclassified`` transition counts per step;
* **adaptive computation** (models with a halting unit): ``halt_prob``, ``halting_step``,
  ``ponder_cost``, ``act_correct``; halting step per variation level and its Spearman rho with each
  difficulty column of the stimulus table; zero-shot extrapolation over a difficulty series that extends
  beyond the training range (``extrap_*`` variables over ``(extrapolation_level, max_steps)``);
* **neural counterpart** (with a recording holding object labels): ``neural_solution_time`` per image
  (Kar et al. 2019) and its Spearman rho (bootstrap CI) with the model's first-correct step and, for
  halting models, its halting step.

The run's provenance (model, weights sha256, stimulus set sha256, steps, seeds, settings) is in ``attrs``.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurofit import __version__
from neurofit.analysis import geometry, readout
from neurofit.analysis.halting import (
    EXTRAPOLATION_LEVELS,
    difficulty_stimuli,
    halting_per_image,
    halting_vs_difficulty,
    zero_shot_extrapolation,
)
from neurofit.analysis.solution_time import Decoder, Measure, neural_solution_times, solution_time_correlation
from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError
from neurofit.models.base import TemporalModel
from neurofit.stats.bootstrap import mean_ci

SYNTHETIC = "synthetic-ventral"
#: stimulus-table columns used as difficulty measures for the halting analyses, when present (the first
#: present one groups the images into levels)
DIFFICULTY_COLUMNS: tuple[str, ...] = ("variation", "difficulty", "clutter", "occlusion", "occluded_fraction",
                                       "path_length")
#: view seed of the extrapolation series (plus ``seed``): far from the training (1) and benchmark (0) seeds
EXTRAPOLATION_VIEW_SEED = 1000
#: seed of a task's evaluation images (plus ``seed``): never the training draws (``neurofit train`` uses 1)
TASK_TEST_SEED = 1000
#: step budgets of a task model's extrapolation test, as multiples of its training steps
TASK_FACTORS: tuple[int, ...] = (1, 2, 4)


def resolve_model(model: str | os.PathLike[str] | TemporalModel, arch: str | None = None,
                  num_classes: int | None = None) -> tuple[TemporalModel, dict[str, Any]]:
    """A model and its training metadata from a zoo name, a checkpoint file or a model object.

    A zoo name loads neurofit's shipped checkpoint of that name when there is one, else builds an untrained
    model with ``num_classes`` outputs. A file is loaded with :func:`neurofit.models.checkpoint.load_model`
    (``arch`` names its architecture when the file does not). The metadata is the checkpoint's training
    record (``classes``, ``steps``, ``image_size``, ``label_column``), ``{}`` when there is none.

    Example
    -------
    >>> m, meta = resolve_model("bl", num_classes=4)  # doctest: +SKIP
    """
    from neurofit.models.checkpoint import load_model
    from neurofit.models.train import checkpoint_metadata, shipped_checkpoint
    from neurofit.models.zoo import ZOO

    if isinstance(model, TemporalModel):
        return model, {}
    text = str(model)
    path = Path(text)
    if path.is_file():
        loaded = load_model(arch, path) if arch else load_model(path)
        meta = checkpoint_metadata(path) if path.suffix == ".safetensors" else {}
        meta.setdefault("checkpoint", str(path))
    elif text in ZOO:
        try:
            ckpt = shipped_checkpoint(text)
        except NeurofitError:
            ckpt = None
        if ckpt is not None:
            loaded = load_model(ckpt)
            meta = {**checkpoint_metadata(ckpt), "checkpoint": f"shipped:{text}"}
        else:
            kwargs = {} if num_classes is None else {"num_classes": num_classes}
            loaded = load_model(text, **kwargs)
            meta = {"checkpoint": "none (untrained weights)"}
    else:
        raise NeurofitError(f"model {text!r} is neither a checkpoint file nor a zoo name "
                            f"(`neurofit models list` shows the zoo)")
    if not isinstance(loaded, TemporalModel):
        raise NeurofitError(f"{text!r} builds a {type(loaded).__name__}, not a TemporalModel")
    return loaded, meta


def holdout_stimuli(meta: dict[str, Any]) -> StimulusSet:
    """The held-out images of a checkpoint trained by ``neurofit train`` on the synthetic training set.

    They are rebuilt from the checkpoint's training record (catalogue seed, held-out fraction, seed), so
    they are exactly the images its recorded held-out accuracy was measured on: same objects as in
    training, views never trained on.

    Example
    -------
    >>> holdout_stimuli({"data": "folder"})
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: ...
    """
    from neurofit.models.train import SYNTHETIC_TRAIN_VIEWS, holdout_split, synthetic_training_set

    data = str(meta.get("data", ""))
    prefix = "synthetic-ventral-train-seed"
    if not data.startswith(prefix) or "holdout" not in meta or "seed" not in meta:
        raise NeurofitError(f"stimuli='holdout' needs a checkpoint trained by `neurofit train` on the synthetic "
                            f"training set; this one's training data is {data or 'unrecorded'!r}")
    if not data[len(prefix):].isdigit():
        raise NeurofitError(f"the checkpoint's training data {data!r} does not name a synthetic training seed")
    full = synthetic_training_set(SYNTHETIC_TRAIN_VIEWS, data_seed=int(data[len(prefix):]))
    column = meta.get("label_column", "category_name")
    _, held = holdout_split(full.table[column].astype(str).tolist(), float(meta["holdout"]), int(meta["seed"]))
    if meta.get("data_sha256") and full.sha256() != meta["data_sha256"]:
        raise NeurofitError("the rebuilt synthetic training set differs from the checkpoint's (sha256 mismatch): "
                            "it was trained with another neurofit version or training views")
    subset = full.subset(full.table["stimulus_id"].iloc[held].tolist())
    subset.identifier = f"{full.identifier}-holdout"
    return subset


def resolve_stimuli(stimuli: str | os.PathLike[str] | StimulusSet, meta: dict[str, Any] | None = None, *,
                    per_level: int = 200, seed: int = 0) -> tuple[StimulusSet, xr.DataArray | None]:
    """``"synthetic-ventral"`` (stimuli and their generated recording), ``"holdout"`` (the checkpoint's
    held-out training images, :func:`holdout_stimuli`), a task (``"mazes"``, ``"pathfinder"``: ``per_level``
    new images at every level of the task, drawn with seed ``TASK_TEST_SEED + seed``), a stimulus-set CSV,
    or a set.

    Returns
    -------
    (StimulusSet, recording or None)

    Example
    -------
    >>> stimuli, recording = resolve_stimuli("synthetic-ventral")  # doctest: +SKIP
    >>> len(stimuli), recording.dims  # doctest: +SKIP
    (768, ('presentation', 'neuroid', 'time_bin'))
    """
    from neurofit.data.stimuli import read_stimulus_set
    from neurofit.data.tasks import TASKS, task_stimuli

    if isinstance(stimuli, StimulusSet):
        return stimuli, None
    if str(stimuli) in TASKS:
        return task_stimuli(str(stimuli), None, per_level, seed=TASK_TEST_SEED + seed), None
    if str(stimuli) == "holdout":
        return holdout_stimuli(meta or {}), None
    if str(stimuli) == SYNTHETIC:
        from neurofit.data.synthetic import generate_synthetic_ventral

        recording, stimulus_set = generate_synthetic_ventral()
        return stimulus_set, recording
    path = Path(stimuli)
    if path.suffix.lower() != ".csv":
        raise NeurofitError(f"stimuli {str(stimuli)!r} is neither 'synthetic-ventral', 'holdout', a task "
                            f"({', '.join(TASKS)}) nor a stimulus-set CSV")
    return read_stimulus_set(path), None


def _labels(table, column: str, classes: Sequence[str] | None, n_out: int) -> tuple[np.ndarray, list[str]]:
    if column not in table.columns:
        raise NeurofitError(f"the stimulus table has no label column {column!r}; its columns: "
                            f"{', '.join(map(str, table.columns))}")
    names = table[column].astype(str).to_numpy()
    classes = sorted(set(names.tolist())) if classes is None else [str(c) for c in classes]
    if len(classes) != n_out:
        raise NeurofitError(f"the model's readout has {n_out} outputs but there are {len(classes)} classes "
                            f"({', '.join(classes[:10])}...); pass the checkpoint's classes or a matching model")
    index = {c: i for i, c in enumerate(classes)}
    unknown = sorted(set(names.tolist()) - set(index))
    if unknown:
        raise NeurofitError(f"label(s) {unknown[:5]} of column {column!r} are not among the model's classes "
                            f"{classes}")
    return np.array([index[n] for n in names]), classes


def _presentation_coords(table) -> dict[str, tuple[str, np.ndarray]]:
    coords: dict[str, tuple[str, np.ndarray]] = {}
    for name in table.columns:
        values = table[name].to_numpy()
        if name == "filename":
            continue
        if values.dtype.kind in "biuf":
            coords[name] = ("presentation", values)
        elif values.dtype.kind in "OUS":
            coords[name] = ("presentation", values.astype(str))
    return coords


def _with_ci(ds: xr.Dataset, name: str, values: np.ndarray, dims: tuple[str, ...], n_boot: int, seed: int) -> None:
    """Mean over the last axis (images) with its bootstrap CI, as ``name``, ``name_low``, ``name_high``."""
    mean, low, high = mean_ci(values, n_boot=n_boot, seed=seed)
    ds[name] = (dims, mean)
    ds[f"{name}_low"] = (dims, low)
    ds[f"{name}_high"] = (dims, high)


def analyze_dynamics(
    model: str | os.PathLike[str] | TemporalModel,
    stimuli: str | os.PathLike[str] | StimulusSet = SYNTHETIC,
    *,
    arch: str | None = None,
    recording: str | os.PathLike[str] | xr.DataArray | None = None,
    steps: int | None = None,
    label_column: str | None = None,
    classes: Sequence[str] | None = None,
    probe_layer: str | None = None,
    probe_dim: int = 256,
    extrapolation: bool = True,
    extrapolation_levels: Mapping[int, float] | None = None,
    extrapolation_views: int = 2,
    extrapolation_factor: int = 2,
    extrapolation_factors: Sequence[int] | None = None,
    task_per_level: int = 200,
    neural_label: str = "object_name",
    neural_region: str | None = "IT",
    neural_measure: Measure = "probability",
    neural_decoder: Decoder = "lda",
    threshold: float | None = None,
    sustain: int = 1,
    n_splits: int = 10,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 64,
    out: str | os.PathLike[str] | None = None,
    figures: bool = True,
    figure_formats: Sequence[str] = ("pdf", "svg", "png"),
    progress: bool | None = None,
) -> xr.Dataset:
    """Readout dynamics, readout-zone geometry, adaptive computation and neural solution times of a model.

    Parameters
    ----------
    model : str, path or TemporalModel
        A zoo name (its shipped checkpoint when there is one, else untrained weights), a checkpoint file,
        or a model.
    stimuli : "synthetic-ventral", "holdout", "mazes", "pathfinder", CSV path or StimulusSet
        Labelled images; ``"synthetic-ventral"`` (the benchmark's images: objects no shipped model was
        trained on) also brings its generated recording; ``"holdout"`` is the checkpoint's own held-out
        training images (trained objects, unseen views); a task name draws ``task_per_level`` new images at
        each of the task's difficulty levels (:mod:`neurofit.data.tasks`), shown at their native size.
    arch : str, optional
        Architecture of a checkpoint file that does not record it.
    recording : path or DataArray, optional
        A recording with object labels and (10 ms) time bins for the neural solution times; default the
        synthetic-ventral recording when the stimuli are synthetic-ventral.
    steps : int, optional
        Movie length (default the training length recorded in the checkpoint, else ``model.default_steps``).
    label_column : str, optional
        Stimulus-table column the model classifies (default the checkpoint's, else ``category_name``).
    classes : sequence of str, optional
        Label of each readout unit (default the checkpoint's, else the sorted labels).
    probe_layer : str, optional
        Also fit a cross-validated logistic probe on this layer at every step.
    probe_dim : int
        The probed layer is randomly projected to at most this many features (seeded).
    extrapolation, extrapolation_levels, extrapolation_views, extrapolation_factor, extrapolation_factors
        On a task stimulus set (any model): accuracy per difficulty level with ``extrapolation_factors``
        (default 1, 2, 4) times the training steps, on the stimuli themselves (``extrap_*`` variables;
        the ACT answer for halting models, the last step's readout otherwise). Else, for halting models: run
        the zero-shot test on a synthetic difficulty series (``views`` new images
        per object and level of the objects the model was trained on when it was trained on the synthetic
        training set, else of the benchmark's objects; levels: name -> generator difficulty, default
        :data:`~neurofit.analysis.halting.EXTRAPOLATION_LEVELS`, whose 1.5 and 2.0 lie beyond the training
        range 0-1) with ``max_steps`` = training steps and ``factor`` times that.
    neural_label, neural_region, neural_measure, neural_decoder, threshold, sustain, n_splits
        Settings of :func:`~neurofit.analysis.solution_time.neural_solution_times`.
    n_boot, seed, batch_size : bootstrap draws, seed of every random choice, images per forward pass.
    out : path, optional
        Folder to write ``dynamics.nc`` and (with ``figures``) the figures into.
    figures, figure_formats : whether to draw the figures, and in which formats.
    progress : bool, optional
        Say on stderr what is being done (one line per stage, with the elapsed time) and show progress bars
        over the images (default: when stderr is a terminal).

    Returns
    -------
    xarray.Dataset (module docstring).

    Example
    -------
    >>> ds = analyze_dynamics("halting_convgru", "synthetic-ventral")  # doctest: +SKIP
    >>> ds.accuracy.values  # doctest: +SKIP
    """
    import torch

    from neurofit.models import flush_denormals

    flush_denormals()
    from neurofit.data.tasks import native_size

    show = sys.stderr.isatty() if progress is None else bool(progress)
    started = time.monotonic()

    def stage(text: str) -> None:
        if show:
            print(f"neurofit: analyze dynamics: {text} ({time.monotonic() - started:.0f} s)", file=sys.stderr,
                  flush=True)

    stage(f"loading {model if isinstance(model, (str, os.PathLike)) else type(model).__name__} and the stimuli")
    net, meta = resolve_model(model, arch, num_classes=None)
    stimulus_set, synthetic_recording = resolve_stimuli(stimuli, meta, per_level=task_per_level, seed=seed)
    native = native_size(stimulus_set)
    table = stimulus_set.table
    label_column = label_column or meta.get("label_column") or "category_name"
    classes = classes if classes is not None else meta.get("classes")
    n_out = readout.find_readout(net).out_features
    if isinstance(model, str) and meta.get("checkpoint", "").startswith("none") and classes is None:
        # an untrained zoo model: size its readout to the labels
        n_labels = table[label_column].astype(str).nunique() if label_column in table.columns else n_out
        if n_labels != n_out:
            net, meta = resolve_model(model, arch, num_classes=n_labels)
            n_out = n_labels
    labels, classes = _labels(table, label_column, classes, n_out)
    train_steps = int(meta.get("steps") or net.default_steps)
    steps = int(train_steps if steps is None else steps)
    if steps < 1:
        raise NeurofitError(f"steps must be >= 1, got {steps}")
    # task images are drawn one pixel per square: shown at their own size, never resampled
    images = stimulus_set.load_images(native or net.input_size)
    stage(f"running the model's readout over {len(images)} images x {steps} steps")
    run = readout.run_readout(net, images, steps, probe_layer=probe_layer, probe_dim=probe_dim, batch_size=batch_size,
                              seed=seed, progress=show)
    stage("readout-zone geometry, norms and bootstrap intervals")

    correct = readout.correct_per_step(run.logits, labels)
    time_map = net.time_map(steps=steps)
    windows = np.array([time_map.step_window(t) for t in range(steps)])
    # before the top layer is driven (biological unroll) the readout sees no image: its "correct" answers
    # there are the prior's, so first-correct steps and transitions are counted from the driven steps only
    start = min(int(time_map.first_driven.get(net.layers[-1], 0)) if net.layers else 0, steps - 1)
    driven = np.arange(steps) >= start
    first, stays = readout.first_correct_step(correct, np.broadcast_to(driven[:, None], correct.shape))
    distances = readout.successive_distances(run.penultimate)
    norms = readout.l2_norms(run.penultimate)
    margins = geometry.zone_margins(run.penultimate, labels, run.weight, run.bias)
    corrected = np.zeros(steps, dtype=np.int64)
    misclassified = np.zeros(steps, dtype=np.int64)
    corrected[start:], misclassified[start:] = geometry.count_transitions(correct[start:])

    ds = xr.Dataset(
        coords={"step": np.arange(steps), "step_start_ms": ("step", windows[:, 0]),
                "step_end_ms": ("step", windows[:, 1]), "readout_driven": ("step", driven),
                "class": np.asarray(classes, dtype=str),
                **_presentation_coords(table)},
    )
    dims_sn = ("step", "presentation")
    ds["logits"] = (("step", "presentation", "class"), run.logits)
    ds["label"] = ("presentation", labels)
    ds["correct"] = (dims_sn, correct.astype(np.int8))
    _with_ci(ds, "accuracy", correct.astype(np.float64), ("step",), n_boot, seed)
    ds["first_correct_step"] = ("presentation", first)
    ds["stays_correct"] = ("presentation", stays.astype(np.int8))
    ds["movement"] = (dims_sn, distances)
    t = np.arange(steps)[:, None]
    already = t > np.where(np.isnan(first), np.inf, first)[None, :]
    _with_ci(ds, "movement_after_correct", np.where(already, distances, np.nan), ("step",), n_boot, seed)
    ds["movement_after_first_correct"] = ("presentation", readout.movement_after_first_correct(distances, first))
    ds["norm"] = (dims_sn, norms)
    _with_ci(ds, "norm_correct", np.where(correct, norms, np.nan), ("step",), n_boot, seed)
    _with_ci(ds, "norm_incorrect", np.where(~correct, norms, np.nan), ("step",), n_boot, seed)
    ds["margin"] = (dims_sn, margins)
    ds["centre_distance"] = (dims_sn, geometry.class_centre_distance(run.penultimate, labels))
    ds["zone_projection"] = (dims_sn, geometry.zone_axis_projection(run.penultimate, labels, run.weight))
    ds["corrected"] = ("step", corrected)
    ds["misclassified"] = ("step", misclassified)
    if probe_layer is not None:
        stage(f"cross-validated probe on {probe_layer} at every step")
        probe = readout.probe_correct(run.features, labels, n_splits=min(n_splits, 5), seed=seed)
        _with_ci(ds, "probe_accuracy", probe.astype(np.float64), ("step",), n_boot, seed)

    halting_steps = None
    if run.halt_prob is not None:
        epsilon = float(getattr(net, "epsilon", 0.01))
        halting = halting_per_image(run.halt_prob, epsilon)
        halting_steps = halting["halting_step"].astype(np.float64)
        ds["halt_prob"] = (dims_sn, run.halt_prob)
        ds["halting_step"] = ("presentation", halting["halting_step"])
        ds["ponder_cost"] = ("presentation", halting["ponder_cost"])
        ds["halted"] = ("presentation", halting["halted"].astype(np.int8))
        ds["act_correct"] = ("presentation", (run.act_logits[-1].argmax(-1) == labels).astype(np.int8))
        _add_halting_vs_difficulty(ds, table, halting_steps, n_boot, seed)
    if extrapolation and native is not None and "difficulty" in table.columns:
        factors = tuple(TASK_FACTORS if extrapolation_factors is None else extrapolation_factors)
        stage(f"extrapolation: accuracy per difficulty level at {', '.join(f'{f}x' for f in factors)} the training "
              "steps")
        extra = zero_shot_extrapolation(net, images, labels, table["difficulty"].to_numpy(), train_steps=train_steps,
                                        factors=factors, batch_size=batch_size, n_boot=n_boot, seed=seed,
                                        progress=show)
        extra = extra.rename({"level": "extrapolation_level", "image": "presentation"}).drop_vars("image_level")
        for name in list(extra.data_vars):
            ds[f"extrap_{name}"] = extra[name]
        ds = ds.assign_coords(extrapolation_difficulty=("extrapolation_level", extra.extrapolation_level.values))
        trained = meta.get("difficulty") or []
        ds.attrs["extrapolation_stimuli"] = stimulus_set.identifier
        ds.attrs["extrapolation_train_range"] = (f"trained on difficulty {', '.join(map(str, trained))}"
                                                 if trained else "training levels not recorded")
        ds.attrs["extrapolation_answer"] = extra.attrs["answer"]
    elif run.halt_prob is not None:
        if extrapolation:
            levels = dict(EXTRAPOLATION_LEVELS if extrapolation_levels is None else extrapolation_levels)
            # new views (their own seed) of the objects the model was trained on, when it was trained on
            # the synthetic training set; else of the benchmark's objects
            data = str(meta.get("data", ""))
            prefix = "synthetic-ventral-train-seed"
            catalogue = int(data[len(prefix):]) if data.startswith(prefix) else 0
            series = difficulty_stimuli(levels, views=extrapolation_views, seed=EXTRAPOLATION_VIEW_SEED + seed,
                                        catalogue_seed=catalogue)
            series_labels, _ = _labels(series.table, label_column, classes, n_out)
            stage(f"zero-shot extrapolation on {len(series.table)} new images of graded difficulty")
            extra = zero_shot_extrapolation(
                net, series.load_images(net.input_size), series_labels, series.table["variation"].to_numpy(),
                train_steps=train_steps,
                factors=(1, extrapolation_factor) if extrapolation_factors is None else tuple(extrapolation_factors),
                batch_size=batch_size, n_boot=n_boot, seed=seed, progress=show)
            extra = extra.rename({"level": "extrapolation_level", "image": "extrapolation_image"})
            for name in list(extra.data_vars):
                ds[f"extrap_{name}"] = extra[name]
            ds = ds.assign_coords(extrapolation_difficulty=(
                "extrapolation_level", [levels[int(v)] for v in extra.extrapolation_level.values]))
            ds.attrs["extrapolation_stimuli"] = series.identifier
            ds.attrs["extrapolation_train_range"] = "synthetic training images span difficulty 0-1 (V0-V6)"

    if recording is None and synthetic_recording is not None:
        recording = synthetic_recording
    if recording is not None:
        stage(f"neural solution times ({neural_decoder} decoder of {neural_label}) and their relation to the model's")
        _add_neural(ds, recording, first, halting_steps, table["stimulus_id"].astype(str).to_numpy(),
                    label=neural_label, region=neural_region, measure=neural_measure, decoder=neural_decoder,
                    threshold=threshold, sustain=sustain, n_splits=n_splits, n_boot=n_boot, seed=seed)

    ds.attrs.update({
        "analysis": "representation dynamics (neurofit.analysis.analyze_dynamics)",
        "model_id": str(getattr(net, "arch", type(net).__name__)),
        "checkpoint": str(meta.get("checkpoint", "")),
        "weights_sha256": str(getattr(net, "weights_sha256", "") or ""),
        "model_config": dict(getattr(net, "config", {})),
        "stimulus_set": stimulus_set.identifier, "dataset_sha256": stimulus_set.sha256(),
        "label_column": label_column, "steps": steps, "train_steps": train_steps,
        "image_size": int(net.input_size), "readout": "the model's own linear readout (logits)",
        "penultimate": "input of the model's linear readout, captured per step",
        "probe_layer": probe_layer or "", "n_boot": n_boot, "ci": 0.95, "seed": seed,
        "neurofit_version": __version__, "torch_version": torch.__version__,
    })
    if out is not None:
        from neurofit.data.io import write_netcdf

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        write_netcdf(ds, folder / "dynamics.nc")
        if figures:
            from neurofit.analysis.figures import dynamics_figures

            stage(f"drawing the figures into {folder}")
            dynamics_figures(ds, folder, formats=figure_formats)
    stage("done")
    return ds


def _add_halting_vs_difficulty(ds: xr.Dataset, table, halting_steps: np.ndarray, n_boot: int, seed: int) -> None:
    columns = [c for c in DIFFICULTY_COLUMNS if c in table.columns
               and np.issubdtype(table[c].to_numpy().dtype, np.number)]
    if not columns:
        return
    rhos = {key: [] for key in ("rho", "low", "high", "p")}
    for column in columns:
        result = halting_vs_difficulty(halting_steps, table[columns[0]].to_numpy(), table[column].to_numpy(),
                                       n_boot=n_boot, seed=seed)
        for key in rhos:
            rhos[key].append(result.attrs[f"spearman_{key}"])
    ds.coords["difficulty_measure"] = columns
    ds["halting_rho"] = ("difficulty_measure", rhos["rho"])
    ds["halting_rho_low"] = ("difficulty_measure", rhos["low"])
    ds["halting_rho_high"] = ("difficulty_measure", rhos["high"])
    ds["halting_rho_p"] = ("difficulty_measure", rhos["p"])
    by_level = halting_vs_difficulty(halting_steps, table[columns[0]].to_numpy(), n_boot=n_boot, seed=seed)
    by_level = by_level.rename({"level": "difficulty_level"})
    for name in ("mean_halting_step", "mean_halting_step_low", "mean_halting_step_high", "n_images"):
        ds[f"level_{name}"] = by_level[name]
    ds.attrs["difficulty_level_column"] = columns[0]


def _add_neural(ds: xr.Dataset, recording: str | os.PathLike[str] | xr.DataArray, first: np.ndarray,
                halting_steps: np.ndarray | None, ids: np.ndarray, *, label: str, region: str | None,
                measure: Measure, decoder: Decoder, threshold: float | None, sustain: int, n_splits: int,
                n_boot: int, seed: int) -> None:
    if not isinstance(recording, xr.DataArray):
        from neurofit.data.io import read_recording

        recording = read_recording(recording)
    if region is not None and region not in set(recording.coords["region"].values.tolist()):
        region = None  # a recording of one other area: decode from all of its sites
    neural = neural_solution_times(recording, threshold=threshold, sustain=sustain, label=label, measure=measure,
                                   region=region, decoder=decoder, n_splits=n_splits, seed=seed)
    neural_ids = neural.coords["stimulus_id"].values.astype(str)
    position = {sid: i for i, sid in enumerate(neural_ids)}
    times = np.array([neural.solution_time.values[position[s]] if s in position else np.nan for s in ids])
    ds["neural_solution_time"] = ("presentation", times)
    conf = neural.confidence.values
    ds["neural_confidence"] = (("presentation", "time_bin"), np.array(
        [conf[position[s]] if s in position else np.full(conf.shape[1], np.nan) for s in ids]))
    ds.coords["time_bin_start"] = ("time_bin", neural.coords["time_bin_start"].values)
    ds.coords["time_bin_end"] = ("time_bin", neural.coords["time_bin_end"].values)
    measures = {"first_correct_step": first}
    if halting_steps is not None:
        measures["halting_step"] = halting_steps
    results = {name: solution_time_correlation(neural, values, ids, n_boot=n_boot, seed=seed)
               for name, values in measures.items()}
    ds.coords["model_measure"] = list(results)
    for key in ("rho", "low", "high", "p", "n"):
        ds[f"solution_time_{key}"] = ("model_measure", [results[m][key] for m in results])
    ds.attrs.update({"recording": str(recording.attrs.get("identifier", "")),
                     "solution_time_threshold": float(neural.attrs["threshold"]),
                     "solution_time_sustain_bins": int(sustain),
                     "solution_time_measure": measure, "solution_time_label": label,
                     "solution_time_decoder": neural.attrs["decoder"],
                     "solution_time_region": region or "all"})
