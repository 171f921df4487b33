"""Train a zoo model to classify a stimulus set's categories, over time, and save a provenance-rich checkpoint.

Training is supervised classification of ``label_column`` (default ``category_name``). Every image is
shown as a movie held on for the model's ``steps`` (:func:`neurofit.models.base.present`) and the loss is
the cross-entropy of the model's ``logits`` either averaged over every step at which the readout is
image-driven (``loss="all_steps"``, as Spoerer et al. 2020 train BL/BLT) or at the last step only
(``loss="last_step"``). For the adaptive-halting model the loss is Graves' (2016): the cross-entropy of the
ACT output plus ``ponder_weight`` times the mean ponder cost.

A run is deterministic for a given seed on a given machine: the initialisation (``torch.manual_seed``), the
held-out split, the data order and the augmentation draws all come from the seed. A stratified held-out
split (``holdout``, default 20 % of each class) is never trained on; the checkpoint records the held-out
accuracy at every step.

``synthetic-ventral`` training images are drawn from the same 8 shape families as the embedded benchmark
but with another catalogue seed (``data_seed``, default 1): other objects, other views, so the benchmark
stimuli (seed 0) stay unseen by every shipped model.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from neurofit import __version__
from neurofit.data.stimuli import StimulusSet, read_stimulus_set
from neurofit.errors import NeurofitError
from neurofit.models.base import TemporalModel, present

LossMode = Literal["all_steps", "last_step"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
#: images per object at each variation level of the default synthetic training set (64 objects x 18 = 1152)
SYNTHETIC_TRAIN_VIEWS: dict[int, int] = {0: 6, 3: 6, 6: 6}
#: images per difficulty level of a task training set (mazes, pathfinder) unless told otherwise
TASK_PER_LEVEL = 2000


def synthetic_training_set(views_per_level: Mapping[int, int] | None = None, *, data_seed: int = 1,
                           image_size: int = 64) -> StimulusSet:
    """Synthetic-ventral-style training images: the benchmark's 8 categories, other objects and views.

    Example
    -------
    >>> ss = synthetic_training_set({0: 1}, image_size=16)
    >>> len(ss), ss.table["category_name"].nunique()
    (64, 8)
    """
    from neurofit.data.synthetic_stimuli import render_stimuli

    views = dict(SYNTHETIC_TRAIN_VIEWS if views_per_level is None else views_per_level)
    images, table = render_stimuli(views, seed=data_seed, image_size=image_size)
    return StimulusSet.from_arrays(images, table, degrees=8.0, identifier=f"synthetic-ventral-train-seed{data_seed}")


def folder_stimulus_set(folder: str | os.PathLike[str], degrees: float = 8.0) -> StimulusSet:
    """A stimulus set from a folder of class sub-folders (``folder/<label>/<image>``); label = sub-folder name.

    The label is stored in ``category_name``; ``stimulus_id`` and ``filename`` are the relative paths.

    Example
    -------
    >>> folder_stimulus_set("no/such/folder")
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: stimulus folder no/such/folder does not exist
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NeurofitError(f"stimulus folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    files = [p for p in files if p.parent != folder]
    if not files:
        raise NeurofitError(f"stimulus folder {folder} has no images in class sub-folders (expected "
                            f"{folder}/<label>/<image>.png)")
    rel = [p.relative_to(folder).as_posix() for p in files]
    table = pd.DataFrame({"stimulus_id": rel, "filename": rel,
                          "category_name": [p.relative_to(folder).parts[0] for p in files]})
    return StimulusSet(table=table, images=folder, degrees=float(degrees), identifier=folder.name)


def resolve_stimuli(stimuli: str | os.PathLike[str] | StimulusSet, image_size: int = 64, *,
                    difficulty: Sequence[int] | None = None, per_level: int = TASK_PER_LEVEL,
                    data_seed: int = 1) -> StimulusSet:
    """``"synthetic-ventral"`` (the default training set), a task (``"mazes"``, ``"pathfinder"``: ``per_level``
    images at each ``difficulty``, drawn with ``data_seed``), a stimulus-set CSV, a class-folder tree, or a set.

    Example
    -------
    >>> resolve_stimuli("mazes", difficulty=[9], per_level=4).identifier
    'mazes-9-n4-canvas17-seed1'
    """
    from neurofit.data.tasks import TASKS, task_stimuli

    if isinstance(stimuli, StimulusSet):
        return stimuli
    if difficulty is not None and str(stimuli) not in TASKS:
        raise NeurofitError(f"difficulty levels apply to the tasks {', '.join(TASKS)}, not to {str(stimuli)!r}")
    if str(stimuli) in TASKS:
        return task_stimuli(str(stimuli), difficulty, per_level, seed=data_seed)
    if str(stimuli) == "synthetic-ventral":
        return synthetic_training_set(image_size=image_size)
    path = Path(stimuli)
    if path.suffix.lower() == ".csv":
        return read_stimulus_set(path)
    if path.is_dir():
        return folder_stimulus_set(path)
    raise NeurofitError(f"stimuli {str(stimuli)!r} is neither 'synthetic-ventral', a task "
                        f"({', '.join(TASKS)}), a stimulus-set CSV, nor a folder of class sub-folders")


def build_model(name: str, num_classes: int, input_size: int, **kwargs: Any) -> TemporalModel:
    """A fresh zoo model with ``num_classes`` outputs at ``input_size`` px (``kwargs`` go to its factory).

    Example
    -------
    >>> build_model("cornet_z", 8, 32, width=4).config["num_classes"]
    8
    """
    from neurofit.models.checkpoint import resolve_factory

    model = resolve_factory(name)(num_classes=num_classes, input_size=input_size, **kwargs)
    if not isinstance(model, TemporalModel):
        raise NeurofitError(f"{name!r} builds a {type(model).__name__}, not a TemporalModel; neurofit train "
                            f"trains zoo TemporalModels")
    if not getattr(model, "arch", None):
        model.arch = name
    return model


def holdout_split(labels: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split: ``round(fraction * n_c)`` (at least 1 when ``fraction > 0``) of each class held out.

    Returns ``(train_index, holdout_index)``, each sorted.

    Example
    -------
    >>> train, held = holdout_split(["a"] * 5 + ["b"] * 5, 0.2, seed=0)
    >>> len(train), len(held)
    (8, 2)
    """
    if not 0.0 <= fraction < 1.0:
        raise NeurofitError(f"holdout fraction must be in [0, 1), got {fraction}")
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in sorted(set(labels.tolist())):
        members = np.flatnonzero(labels == label)
        k = 0 if fraction == 0 else max(1, round(fraction * len(members)))
        if k >= len(members):
            raise NeurofitError(f"class {label!r} has {len(members)} images: too few for a held-out split of "
                                f"{fraction}; add images or lower holdout=")
        held.extend(rng.permutation(members)[:k].tolist())
    holdout = np.sort(np.asarray(held, dtype=int))
    train = np.setdiff1d(np.arange(len(labels)), holdout)
    return train, holdout


def _augment(images: torch.Tensor, generator: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random horizontal flips and random crops of a ``pad``-pixel edge-padded image (seeded)."""
    b, _, h, w = images.shape
    flip = torch.rand(b, generator=generator) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=generator)
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


def _dihedral(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random flips (both axes) and transposes, seeded: they keep every maze and contour intact."""
    b = images.shape[0]
    draws = torch.rand(b, 3, generator=generator) < 0.5
    images = torch.where(draws[:, 0, None, None, None], images.flip(-1), images)
    images = torch.where(draws[:, 1, None, None, None], images.flip(-2), images)
    return torch.where(draws[:, 2, None, None, None], images.transpose(-1, -2), images)


def _readout_start(model: TemporalModel, steps: int) -> int:
    """First step at which the readout carries image-driven signal (the top layer's arrival)."""
    first = model.time_map(steps=steps).first_driven
    top = model.layers[-1] if model.layers else None
    start = int(first.get(top, 0)) if top is not None else 0
    if start >= steps:
        raise NeurofitError(f"{type(model).__name__}'s readout is first driven at step {start}, but the movie has "
                            f"{steps} steps; train with more steps (steps=)")
    return start


def _loss(model: TemporalModel, outputs: dict[str, torch.Tensor], target: torch.Tensor, mode: LossMode,
          start: int, ponder_weight: float) -> torch.Tensor:
    halting = getattr(model, "halting", None)
    if callable(halting) and "act_logits" in outputs:
        # Graves (2016): cross-entropy of the ACT output plus tau * ponder cost
        logits = outputs["act_logits"]
        ce = (F.cross_entropy(logits[-1], target) if mode == "last_step"
              else torch.stack([F.cross_entropy(logits[t], target) for t in range(start, logits.shape[0])]).mean())
        return ce + ponder_weight * halting(outputs).ponder_cost.mean()
    logits = outputs["logits"]
    if mode == "last_step":
        return F.cross_entropy(logits[-1], target)
    return torch.stack([F.cross_entropy(logits[t], target) for t in range(start, logits.shape[0])]).mean()


def evaluate(model: TemporalModel, images: torch.Tensor, targets: torch.Tensor, steps: int,
             batch_size: int = 128) -> dict[str, Any]:
    """Accuracy at every step of ``model`` on ``images`` ([N, C, H, W] in [0, 1]) with integer ``targets``.

    Returns ``{"accuracy_per_step": [...], "accuracy_last": float}`` (and ``"accuracy_act"`` for halting
    models: the accuracy of the ACT output of the whole movie).

    Example
    -------
    >>> from neurofit.models.zoo.feedforward import cornet_z
    >>> acc = evaluate(cornet_z(width=4, num_classes=2), torch.rand(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), 1)
    >>> len(acc["accuracy_per_step"])
    1
    """
    was_training = model.training
    model.eval()
    correct: torch.Tensor | None = None
    correct_act = 0
    has_act = False
    try:
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                x = model.normalize(images[start:start + batch_size])
                y = targets[start:start + batch_size]
                out = model.forward_sequence(present(x, steps))
                hits = (out["logits"].argmax(-1) == y[None]).sum(dim=1)
                correct = hits if correct is None else correct + hits
                if "act_logits" in out:
                    has_act = True
                    correct_act += int((out["act_logits"][-1].argmax(-1) == y).sum())
    finally:
        model.train(was_training)
    assert correct is not None
    per_step = (correct.double() / len(images)).tolist()
    result: dict[str, Any] = {"accuracy_per_step": [round(a, 4) for a in per_step],
                              "accuracy_last": round(per_step[-1], 4)}
    if has_act:
        result["accuracy_act"] = round(correct_act / len(images), 4)
    return result


def train_model(
    model: str | TemporalModel,
    stimuli: str | os.PathLike[str] | StimulusSet = "synthetic-ventral",
    *,
    epochs: int = 10,
    loss: LossMode = "all_steps",
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 32,
    seed: int = 0,
    label_column: str = "category_name",
    holdout: float = 0.2,
    out: str | os.PathLike[str] | None = None,
    size: int | None = None,
    steps: int | None = None,
    augment: bool = True,
    ponder_weight: float = 0.01,
    difficulty: Sequence[int] | None = None,
    per_level: int = TASK_PER_LEVEL,
    data_seed: int = 1,
    model_kwargs: Mapping[str, Any] | None = None,
    progress: bool | None = None,
    command: str | None = None,
) -> tuple[TemporalModel, dict[str, Any]]:
    """Train ``model`` to classify ``stimuli`` by ``label_column``; optionally save a safetensors checkpoint.

    Parameters
    ----------
    model : str or TemporalModel
        A zoo name (built with ``num_classes`` = number of labels, ``input_size=size`` and ``model_kwargs``)
        or a model whose readout already has one output per label.
    stimuli : "synthetic-ventral", "mazes", "pathfinder", path or StimulusSet
        The default synthetic training set, a difficulty-graded task (:mod:`neurofit.data.tasks`), a
        stimulus-set CSV, a folder of class sub-folders, or a set.
    epochs, lr, weight_decay, batch_size : training settings (Adam).
    loss : {"all_steps", "last_step"}
        Cross-entropy averaged over the readout's driven steps, or at the last step only.
    seed : int
        Seeds initialisation, held-out split, data order and augmentation.
    holdout : float
        Fraction of each class held out to measure accuracy per step.
    out : path, optional
        Where to write the checkpoint (``*.safetensors``) with the run's metadata.
    size, steps : int
        Image side in pixels (default 32; a task's images are shown at their own canvas size, the only
        size allowed for them) and movie length (default the model's ``default_steps``).
    augment : bool
        Random flips and 2-pixel random crops; for tasks random flips and transposes (a crop could cut a
        maze or a contour).
    ponder_weight : float
        Weight of the ACT ponder cost (adaptive-halting models only).
    difficulty, per_level, data_seed
        For a task: the difficulty levels to train on, images per level, and the seed of the draws
        (default 1, so that evaluation sets drawn with other seeds are new images).

    Returns
    -------
    (TemporalModel, dict)
        The trained model (eval mode) and the metrics: held-out ``accuracy_per_step``, ``accuracy_last``,
        ``chance``, ``loss_per_epoch``, ``classes`` (label of each output unit), sizes and timing.

    Example
    -------
    >>> ss = synthetic_training_set({0: 1}, image_size=16)
    >>> model, metrics = train_model("cornet_z", ss, epochs=1, size=16, model_kwargs={"width": 4}, progress=False)
    >>> metrics["chance"], len(metrics["accuracy_per_step"])
    (0.125, 1)
    """
    if loss not in ("all_steps", "last_step"):
        raise NeurofitError(f"loss must be 'all_steps' or 'last_step', got {loss!r}")
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise NeurofitError(f"need epochs >= 0, batch_size >= 1, lr > 0; got {epochs}, {batch_size}, {lr}")
    if not (math.isfinite(ponder_weight) and ponder_weight >= 0):
        raise NeurofitError(f"ponder_weight must be a finite number >= 0, got {ponder_weight}")
    if out is not None and Path(out).suffix.lower() != ".safetensors":
        raise NeurofitError(f"the checkpoint is written as safetensors; name it *.safetensors, not {Path(out).name}")
    if isinstance(model, str):
        from neurofit.models.checkpoint import resolve_factory

        resolve_factory(model)  # an unknown name fails before the stimuli are rendered
    began = time.perf_counter()
    # rendered at the benchmark's 64 px and resized like benchmark images are, so train and test match
    stimulus_set = resolve_stimuli(stimuli, image_size=64, difficulty=difficulty, per_level=per_level,
                                   data_seed=data_seed)
    from neurofit.data.tasks import native_size

    native = native_size(stimulus_set)
    if native is not None and size is not None and size != native:
        raise NeurofitError(f"task images are drawn one pixel per square on a {native}-px canvas; train at "
                            f"size {native}, not {size} (resizing would blur walls and contours)")
    size = native or (32 if size is None else int(size))
    if label_column not in stimulus_set.table.columns:
        raise NeurofitError(f"stimulus set {stimulus_set.identifier!r} has no column {label_column!r} to classify; "
                            f"its columns: {', '.join(map(str, stimulus_set.table.columns))}")
    labels = stimulus_set.table[label_column].astype(str).to_numpy()
    classes = sorted(set(labels.tolist()))
    if len(classes) < 2:
        raise NeurofitError(f"column {label_column!r} of {stimulus_set.identifier!r} has one class; need >= 2")
    targets = torch.as_tensor([classes.index(label) for label in labels])

    torch.manual_seed(seed)
    if isinstance(model, str):
        model = build_model(model, len(classes), size, **dict(model_kwargs or {}))
    elif model_kwargs:
        raise NeurofitError("model_kwargs only apply when the model is given by name")
    steps = int(model.default_steps if steps is None else steps)
    start = _readout_start(model, steps)
    images = stimulus_set.load_images(size)
    if images.shape[1] != model.in_channels:
        raise NeurofitError(f"{type(model).__name__} expects {model.in_channels} input channels, images have "
                            f"{images.shape[1]}")
    train_idx, held_idx = holdout_split(labels, holdout, seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    n_batches = -(-len(train_idx) // batch_size)
    total_steps = max(1, epochs * n_batches)
    warmup = max(1, total_steps // 20)
    # a short linear warm-up, then cosine decay to 0: short CPU runs cannot afford a long warm-up
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (
        1.0 + math.cos(math.pi * min(i, total_steps) / total_steps)))
    show = sys.stderr.isatty() if progress is None else bool(progress)
    losses: list[float] = []
    model.train()
    with tqdm(total=epochs * n_batches, desc=f"train {getattr(model, 'arch', type(model).__name__)}",
              unit="batch", disable=not show) as bar:
        for _ in range(epochs):
            order = torch.as_tensor(train_idx)[torch.randperm(len(train_idx), generator=generator)]
            total, count = 0.0, 0
            for b in range(n_batches):
                index = order[b * batch_size:(b + 1) * batch_size]
                x = images[index]
                if augment:
                    x = _dihedral(x, generator) if native is not None else _augment(x, generator)
                outputs = model.forward_sequence(present(model.normalize(x), steps))
                value = _loss(model, outputs, targets[index], loss, start, ponder_weight)
                optimizer.zero_grad(set_to_none=True)
                value.backward()
                optimizer.step()
                scheduler.step()
                total += float(value.detach()) * len(index)
                count += len(index)
                bar.update(1)
                bar.set_postfix(loss=f"{total / count:.3f}")
            losses.append(round(total / max(count, 1), 5))
    model.eval()
    held_images = images[held_idx] if len(held_idx) else images[train_idx]
    held_targets = targets[held_idx] if len(held_idx) else targets[train_idx]
    metrics: dict[str, Any] = {
        **evaluate(model, held_images, held_targets, steps),
        "accuracy_split": "holdout" if len(held_idx) else "train (no holdout)",
        "chance": round(1.0 / len(classes), 6),
        "loss_per_epoch": losses,
        "classes": classes,
        "label_column": label_column,
        "n_train": int(len(train_idx)),
        "n_holdout": int(len(held_idx)),
        "seconds": round(time.perf_counter() - began, 1),
    }
    if out is not None:
        from neurofit.models.checkpoint import save_checkpoint

        training = {
            "architecture": getattr(model, "arch", type(model).__name__), "config": getattr(model, "config", {}),
            "data": stimulus_set.identifier, "data_sha256": stimulus_set.sha256(), "epochs": epochs,
            "loss": loss, "lr": lr, "weight_decay": weight_decay, "batch_size": batch_size, "seed": seed,
            "holdout": holdout, "image_size": size, "steps": steps, "augment": augment,
            "task": stimulus_set.identifier.split("-")[0] if native is not None else None,
            "difficulty": sorted(int(d) for d in stimulus_set.table["difficulty"].unique())
            if native is not None else None,
            "ponder_weight": ponder_weight if hasattr(model, "halting") else None,
            "neurofit_version": __version__, "torch_version": torch.__version__,
            "python": platform.python_version(), "command": command, **metrics,
        }
        save_checkpoint(model, out, metadata={
            "neurofit_training": json.dumps(training, sort_keys=True),
            "classes": json.dumps(classes),
            "accuracy_per_step": json.dumps(metrics["accuracy_per_step"]),
            "data_sha256": stimulus_set.sha256(), "epochs": str(epochs), "loss": loss, "seed": str(seed),
            "neurofit_version": __version__, "command": command or "",
        })
        metrics["out"] = str(out)
    return model, metrics


def checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The training metadata of a checkpoint written by :func:`train_model` (``{}`` if it has none).

    Example
    -------
    >>> checkpoint_metadata(shipped_checkpoint("cornet_rt"))["loss"]  # doctest: +SKIP
    'all_steps'
    """
    from neurofit.models.checkpoint import read_checkpoint_metadata, training_record

    meta = read_checkpoint_metadata(path)
    return training_record(meta["neurofit_training"], path) if "neurofit_training" in meta else {}


def shipped_checkpoint(name: str) -> Path:
    """Path of a trained checkpoint shipped with neurofit (``neurofit/checkpoints/<name>.safetensors``).

    Example
    -------
    >>> shipped_checkpoint("cornet_z").name
    'cornet_z.safetensors'
    """
    folder = resources.files("neurofit") / "checkpoints"
    target = folder / f"{name}.safetensors"
    if not target.is_file():
        available = sorted(p.name.removesuffix(".safetensors") for p in folder.iterdir()
                           if p.name.endswith(".safetensors")) if folder.is_dir() else []
        raise NeurofitError(f"no shipped checkpoint {name!r}; shipped: {', '.join(available) or 'none'}")
    return Path(str(target))
