"""Adaptive computation analyses of the ACT halting ConvGRU (Graves 2016; Veerabadran et al. 2023).

Veerabadran et al. (2023) report that a ConvRNN with a learned halting unit spends more steps on harder
inputs, and that when it is allowed more steps at test time than in training it keeps computing on
inputs harder than any it was trained on ("zero-shot computation scaling"). The analyses here measure
both for any model exposing ``halt_prob`` (and ``act_logits``) in ``forward_sequence``, such as
:class:`neurofit.models.zoo.halting.HaltingConvGRU`:

* :func:`halting_per_image`: per image, the ACT halting step ``N - 1`` (0-based), the remainder, the ponder
  cost ``N + R`` and whether the cumulative halting probability reached ``1 - epsilon`` within the movie
  (computed with the zoo's own :func:`~neurofit.models.zoo.halting.act_halting`);
* :func:`halting_vs_difficulty`: mean halting step per difficulty level with bootstrap CIs, and the
  Spearman correlation of halting step with a continuous difficulty (bootstrap CI over images);
* :func:`difficulty_stimuli`: synthetic-ventral images at chosen points of the stimulus generator's
  continuous difficulty axis, including points beyond the training range (difficulty > 1 extrapolates
  position, scale and rotation jitter, clutter and occlusion);
* :func:`zero_shot_extrapolation`: ACT accuracy and halting per difficulty level when the movie is as long
  as in training and when it is ``k`` times longer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError
from neurofit.models.base import TemporalModel, present
from neurofit.models.zoo.halting import act_halting
from neurofit.stats.bootstrap import mean_ci, spearman_ci

#: difficulty points of the default extrapolation series: V0, V3, V6 (the training range) and two beyond it
EXTRAPOLATION_LEVELS: dict[int, float] = {0: 0.0, 3: 0.5, 6: 1.0, 9: 1.5, 12: 2.0}


def halting_per_image(halt_prob: np.ndarray | torch.Tensor, epsilon: float = 0.01) -> dict[str, np.ndarray]:
    """ACT halting quantities per image from halting probabilities ``[T, N]``.

    Returns
    -------
    dict of arrays [N]: ``halting_step`` (0-based index of the last step used), ``n_steps`` (``N``),
    ``remainder`` (``R``), ``ponder_cost`` (``N + R``), ``halted`` (cumulative probability reached
    ``1 - epsilon`` within the movie; False means the movie ended first).

    Example
    -------
    >>> out = halting_per_image(np.array([[0.3], [0.5], [0.4], [0.9]]))
    >>> int(out["halting_step"][0]), round(float(out["ponder_cost"][0]), 4), bool(out["halted"][0])
    (2, 3.2, True)
    """
    h = torch.as_tensor(np.asarray(halt_prob, dtype=np.float64))
    if h.dim() != 2:
        raise NeurofitError(f"halt_prob must be [T, N], got shape {tuple(h.shape)}")
    act = act_halting(h, epsilon)
    return {
        "halting_step": act.halting_step.numpy(),
        "n_steps": act.n_steps.numpy(),
        "remainder": act.remainder.numpy(),
        "ponder_cost": act.ponder_cost.numpy(),
        "halted": (torch.cumsum(h, 0) >= 1.0 - epsilon).any(0).numpy(),
    }


def halting_vs_difficulty(
    halting_step: np.ndarray,
    level: Sequence | np.ndarray,
    difficulty: Sequence[float] | np.ndarray | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> xr.Dataset:
    """Mean halting step per difficulty level (bootstrap CI over images) and its Spearman rho with difficulty.

    Parameters
    ----------
    halting_step : array [N]
    level : array [N]
        Group of each image (e.g. the variation level 0/3/6).
    difficulty : array [N], optional
        A continuous difficulty (e.g. clutter, occlusion, the generator's difficulty); default ``level``.

    Returns
    -------
    Dataset with dim ``level``: ``mean_halting_step``, ``mean_halting_step_low``/``_high``, ``n_images``;
    attrs ``spearman_rho``, ``spearman_low``, ``spearman_high``, ``spearman_p``, ``n``.

    Example
    -------
    >>> ds = halting_vs_difficulty(np.array([1, 1, 2, 3]), np.array([0, 0, 6, 6]))
    >>> ds.mean_halting_step.values.tolist(), ds.attrs["spearman_rho"] > 0
    ([1.0, 2.5], True)
    """
    steps = np.asarray(halting_step, dtype=np.float64)
    level = np.asarray(level)
    if level.shape != steps.shape:
        raise NeurofitError(f"level has shape {level.shape}, halting_step {steps.shape}: one per image")
    values = np.asarray(level if difficulty is None else difficulty, dtype=np.float64)
    names = np.unique(level)
    means, lows, highs, counts = [], [], [], []
    for g, name in enumerate(names):
        m, lo, hi = mean_ci(steps[level == name], n_boot=n_boot, seed=seed + g, ci=ci)
        means.append(float(m))
        lows.append(float(lo))
        highs.append(float(hi))
        counts.append(int((level == name).sum()))
    rho = spearman_ci(steps, values, n_boot=n_boot, seed=seed, ci=ci)
    return xr.Dataset(
        {"mean_halting_step": ("level", means), "mean_halting_step_low": ("level", lows),
         "mean_halting_step_high": ("level", highs), "n_images": ("level", counts)},
        coords={"level": names},
        attrs={"spearman_rho": rho["rho"], "spearman_low": rho["low"], "spearman_high": rho["high"],
               "spearman_p": rho["p"], "n": rho["n"], "ci": ci, "n_boot": n_boot, "seed": seed},
    )


def difficulty_stimuli(
    levels: Mapping[int, float] | None = None,
    views: int = 2,
    *,
    seed: int = 0,
    catalogue_seed: int | None = None,
    image_size: int = 64,
) -> StimulusSet:
    """Synthetic-ventral images at chosen points of the generator's continuous difficulty axis.

    Parameters
    ----------
    levels : mapping of int to float
        Level name -> difficulty (default :data:`EXTRAPOLATION_LEVELS`: V0, V3, V6 = 0, 0.5, 1 and 1.5, 2
        beyond the training range).
    views : int
        Images per object (64 objects) per level.
    seed : int
        Seed of the per-image view draws (position, scale, rotation, clutter, occluders).
    catalogue_seed : int, optional
        Seed of the object catalogue (default ``seed``). The synthetic training set of ``neurofit train``
        uses catalogue 1 and the benchmark catalogue 0; pass the training catalogue with another ``seed``
        to get new views of the trained objects.

    Example
    -------
    >>> ss = difficulty_stimuli({0: 0.0, 9: 1.5}, views=1, image_size=16)
    >>> len(ss), sorted(ss.table["variation"].unique().tolist())
    (128, [0, 9])
    """
    from neurofit.data.synthetic_stimuli import object_catalog, render_views, sample_views

    levels = dict(EXTRAPOLATION_LEVELS if levels is None else levels)
    if views < 1:
        raise NeurofitError(f"views must be >= 1, got {views}")
    catalogue_seed = seed if catalogue_seed is None else int(catalogue_seed)
    objects = object_catalog(catalogue_seed)
    table = sample_views(dict.fromkeys(levels, views), seed=seed, levels=levels, objects=objects)
    images = render_views(table, image_size=image_size, objects=objects)
    name = "-".join(f"{k}:{v:g}" for k, v in levels.items())
    return StimulusSet.from_arrays(images, table, degrees=8.0,
                                   identifier=f"synthetic-difficulty-catalogue{catalogue_seed}-views{seed}-{name}")


def zero_shot_extrapolation(
    model: TemporalModel,
    images: torch.Tensor,
    labels: Sequence[int] | np.ndarray,
    level: Sequence | np.ndarray,
    *,
    train_steps: int | None = None,
    factors: Sequence[int] = (1, 2),
    batch_size: int = 64,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
    progress: bool = False,
) -> xr.Dataset:
    """Accuracy (and, for ACT models, halting) per difficulty level with ``max_steps = factor * train_steps``.

    The model runs on the images held on for ``max_steps`` steps. An ACT model's answer is the ACT output
    of the whole movie (``act_logits[-1]``): an image whose cumulative halting probability reaches
    ``1 - epsilon`` within ``train_steps`` gets the same answer at every ``max_steps``, and only images
    still computing at the training length can change, which is the zero-shot extrapolation. A fixed-step
    model's answer is its readout at the last step (the baseline: does merely running longer help?).

    Parameters
    ----------
    model : TemporalModel
        A classifier; with ``halt_prob`` and ``act_logits`` outputs (the halting ConvGRU) the ACT variables
        are filled, else they are NaN.
    images : Tensor [N, C, H, W] in ``[0, 1]``; labels : int array [N]; level : array [N]
    train_steps : int, optional
        Movie length in training (default ``model.default_steps``).
    factors : sequence of int
        Multiples of ``train_steps`` to test (default 1 and 2).
    progress : bool
        Show a progress bar over the images of every step budget (on stderr).

    Returns
    -------
    Dataset with dims ``(level, max_steps)``: ``accuracy`` (the model's answer: ACT output, else the last
    step's readout; ``_low``/``_high``), ``act_accuracy`` (``_low``/``_high``), ``last_step_accuracy``
    (the per-step readout at the last step), ``mean_halting_step`` (``_low``/``_high``), ``fraction_halted``,
    ``mean_ponder_cost``; per image (dim ``image``, coord ``image_level``): ``correct`` and
    ``halting_step`` over ``max_steps``; coords ``max_steps`` and ``factor``.

    Example
    -------
    >>> from neurofit.models.zoo.halting import halting_convgru
    >>> m = halting_convgru(stem_channels=4, channels=(4,), steps=2, num_classes=3)
    >>> ds = zero_shot_extrapolation(m, torch.rand(4, 3, 32, 32), [0, 1, 2, 0], [0, 0, 6, 6], n_boot=10)
    >>> dict(ds.sizes), ds.max_steps.values.tolist()
    ({'level': 2, 'max_steps': 2, 'image': 4}, [2, 4])
    """
    labels = np.asarray(labels)
    level = np.asarray(level)
    if labels.shape != (len(images),) or level.shape != (len(images),):
        raise NeurofitError(f"labels {labels.shape} and level {level.shape} need one entry per image ({len(images)})")
    train_steps = int(model.default_steps if train_steps is None else train_steps)
    epsilon = float(getattr(model, "epsilon", 0.01))
    names = np.unique(level)
    max_steps = [int(f) * train_steps for f in factors]
    shape = (len(names), len(max_steps))
    result = {key: np.full(shape, np.nan) for key in (
        "accuracy", "accuracy_low", "accuracy_high", "act_accuracy", "act_accuracy_low", "act_accuracy_high",
        "last_step_accuracy", "mean_halting_step", "mean_halting_step_low", "mean_halting_step_high",
        "fraction_halted", "mean_ponder_cost")}
    per_image = {key: np.full((len(images), len(max_steps)), np.nan) for key in ("correct", "halting_step")}
    is_act = False
    was_training = model.training
    model.eval()
    try:
        for j, steps in enumerate(max_steps):
            act_right, last_right, halt_prob = [], [], []
            with torch.no_grad(), tqdm(total=len(images), desc=f"extrapolation {steps} steps", unit="img",
                                       disable=not progress) as bar:
                for start in range(0, len(images), batch_size):
                    out = model.forward_sequence(present(model.normalize(images[start:start + batch_size]), steps))
                    bar.update(out["logits"].shape[1])
                    is_act = "halt_prob" in out and "act_logits" in out
                    y = labels[start:start + batch_size]
                    last_right.append(out["logits"][-1].argmax(-1).numpy() == y)
                    if is_act:
                        act_right.append(out["act_logits"][-1].argmax(-1).numpy() == y)
                        halt_prob.append(out["halt_prob"].double().numpy())
            last = np.concatenate(last_right).astype(np.float64)
            act = np.concatenate(act_right).astype(np.float64) if is_act else None
            answer = act if act is not None else last
            per_image["correct"][:, j] = answer
            halting = halting_per_image(np.concatenate(halt_prob, axis=1), epsilon) if is_act else None
            if halting is not None:
                per_image["halting_step"][:, j] = halting["halting_step"]
            for g, name in enumerate(names):
                members = level == name
                m, lo, hi = mean_ci(answer[members], n_boot=n_boot, seed=seed + g, ci=ci)
                result["accuracy"][g, j], result["accuracy_low"][g, j], result["accuracy_high"][g, j] = m, lo, hi
                result["last_step_accuracy"][g, j] = last[members].mean()
                if act is None or halting is None:
                    continue
                result["act_accuracy"][g, j], result["act_accuracy_low"][g, j], result["act_accuracy_high"][g, j] = (
                    m, lo, hi)
                m, lo, hi = mean_ci(halting["halting_step"][members].astype(np.float64), n_boot=n_boot,
                                    seed=seed + g, ci=ci)
                (result["mean_halting_step"][g, j], result["mean_halting_step_low"][g, j],
                 result["mean_halting_step_high"][g, j]) = (m, lo, hi)
                result["fraction_halted"][g, j] = halting["halted"][members].mean()
                result["mean_ponder_cost"][g, j] = halting["ponder_cost"][members].mean()
    finally:
        model.train(was_training)
    data = {key: (("level", "max_steps"), value) for key, value in result.items()}
    data.update({key: (("image", "max_steps"), value) for key, value in per_image.items()})
    return xr.Dataset(
        data,
        coords={"level": names, "max_steps": max_steps, "factor": ("max_steps", [int(f) for f in factors]),
                "image_level": ("image", level)},
        attrs={"train_steps": train_steps, "epsilon": epsilon, "ci": ci, "n_boot": n_boot, "seed": seed,
               "answer": "ACT output of the whole movie" if is_act else "readout at the last step"},
    )
