"""Per-timestep readout analyses of a recurrent classifier (Thorat, Doerig & Kietzmann 2023).

A :class:`~neurofit.models.base.TemporalModel` classifies at every step through its own linear readout
(``logits_t = W x_t + b``, with ``x_t`` the *penultimate* representation, the readout's input). This module
runs a model over a batch of images and keeps, per image and step, the logits, the penultimate
representation (captured at the readout's input with a forward pre-hook, so whatever pooling the model
applies before its readout is included), and optionally a chosen layer's activity for a cross-validated
logistic probe. The analyses are plain functions of those arrays:

* :func:`correct_per_step` and :func:`accuracy_per_step`: readout accuracy over time;
* :func:`first_correct_step`: the first step at which each image is classified correctly, and whether it
  stays correct at every later step ("solution step");
* :func:`successive_distances` and :func:`movement_after_first_correct`: how far the penultimate
  representation moves from step to step, once the image is already classified correctly (the
  "not done with classification" effect);
* :func:`l2_norms` and :func:`mean_by_correctness`: the representation's L2 norm per image and step,
  averaged separately over correctly and incorrectly classified images;
* :func:`probe_correct`: held-out correctness of a cross-validated logistic-regression probe per step.

Readout-zone geometry (margins, zone centres, transitions) is in :mod:`neurofit.analysis.geometry`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from neurofit.errors import NeurofitError
from neurofit.models.base import TemporalModel, present


@dataclass(frozen=True)
class ReadoutRun:
    """What one unroll of a classifier over ``N`` images and ``T`` steps leaves for the analyses.

    Attributes
    ----------
    logits : ndarray [T, N, C]
        The model's own readout at every step.
    penultimate : ndarray [T, N, D]
        The readout's input (the penultimate representation) at every step.
    weight, bias : ndarray [C, D], [C]
        The linear readout ``logits = penultimate @ weight.T + bias``.
    features : ndarray [T, N, F] or None
        The probed layer (flattened, randomly projected to at most ``probe_dim`` features), if asked.
    halt_prob, act_logits : ndarray [T, N], [T, N, C] or None
        Halting probabilities and ACT outputs per cutoff, for adaptive-halting models.
    """

    logits: np.ndarray
    penultimate: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    features: np.ndarray | None = None
    halt_prob: np.ndarray | None = None
    act_logits: np.ndarray | None = None


def find_readout(model: nn.Module) -> nn.Linear:
    """The model's final linear readout: ``model.readout``, else the last ``nn.Linear`` of ``model.decoder``.

    Example
    -------
    >>> from neurofit.models.zoo.blt import bl
    >>> find_readout(bl(channels=(4, 8), steps=2, num_classes=3)).out_features
    3
    """
    readout = getattr(model, "readout", None)
    if isinstance(readout, nn.Linear):
        return readout
    decoder = getattr(model, "decoder", None)
    if isinstance(decoder, nn.Module):
        linears = [m for m in decoder.modules() if isinstance(m, nn.Linear)]
        if linears:
            return linears[-1]
    raise NeurofitError(
        f"{type(model).__name__} has no linear readout (an nn.Linear attribute 'readout', or one inside "
        "'decoder'); the readout analyses need a classifier whose logits are a linear function of a "
        "penultimate representation"
    )


def run_readout(
    model: TemporalModel,
    images: torch.Tensor,
    steps: int | None = None,
    *,
    probe_layer: str | None = None,
    probe_dim: int = 1000,
    batch_size: int = 64,
    seed: int = 0,
    progress: bool = False,
) -> ReadoutRun:
    """Unroll ``model`` over images held on for ``steps`` steps; keep logits and penultimate representations.

    Parameters
    ----------
    model : TemporalModel
        A classifier whose ``forward_sequence`` returns ``logits`` ``[T, B, C]`` computed by a linear readout
        (:func:`find_readout`) called once per step.
    images : Tensor [N, C, H, W]
        Images in ``[0, 1]`` at the model's input size (normalised here with ``model.normalize``).
    steps : int, optional
        Movie length (default ``model.default_steps``).
    probe_layer : str, optional
        A layer to keep for :func:`probe_correct`; flattened and, above ``probe_dim`` features, reduced by
        neurofit's seeded random projection (:class:`neurofit.extract.reduce.RandomProjection`).
    batch_size, seed : int
        Images per forward pass; seed of the probe's random projection.
    progress : bool
        Show a progress bar over the images (on stderr).

    Returns
    -------
    ReadoutRun

    Example
    -------
    >>> from neurofit.models.zoo.blt import bl
    >>> run = run_readout(bl(channels=(4, 8), steps=3, num_classes=5).eval(), torch.rand(2, 3, 32, 32))
    >>> run.logits.shape, run.penultimate.shape, run.weight.shape
    ((3, 2, 5), (3, 2, 8), (5, 8))
    """
    from neurofit.extract.reduce import RandomProjection

    steps = int(model.default_steps if steps is None else steps)
    if images.dim() != 4:
        raise NeurofitError(f"images must be [N, C, H, W], got shape {tuple(images.shape)}")
    if probe_layer is not None and probe_layer not in model.layers:
        raise NeurofitError(f"probe layer {probe_layer!r} is not a layer of {type(model).__name__}; "
                            f"its layers: {', '.join(model.layers)}")
    readout = find_readout(model)
    captured: list[torch.Tensor] = []
    hook = readout.register_forward_pre_hook(lambda _m, args: captured.append(args[0].detach().clone()))
    parts: dict[str, list[np.ndarray]] = {"logits": [], "penultimate": [], "features": [], "halt_prob": [],
                                          "act_logits": []}
    reducer = None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), tqdm(total=len(images), desc=f"readout {steps} steps", unit="img",
                                   disable=not progress) as bar:
            for start in range(0, len(images), batch_size):
                captured.clear()
                batch = model.normalize(images[start:start + batch_size])
                out = model.forward_sequence(present(batch, steps))
                logits = out["logits"]
                if len(captured) != logits.shape[0]:
                    raise NeurofitError(
                        f"{type(model).__name__}'s readout ran {len(captured)} times for {logits.shape[0]} steps of "
                        "logits; the readout analyses need one readout call per step"
                    )
                parts["logits"].append(logits.double().numpy())
                parts["penultimate"].append(torch.stack(captured).flatten(2).double().numpy())
                if probe_layer is not None:
                    layer = out[probe_layer].flatten(2)
                    if reducer is None:
                        reducer = RandomProjection(dim=probe_dim, seed=seed).reducer(probe_layer, layer.shape[-1])
                    parts["features"].append(torch.stack([reducer(x) for x in layer]).double().numpy())
                if "halt_prob" in out:
                    parts["halt_prob"].append(out["halt_prob"].double().numpy())
                    parts["act_logits"].append(out["act_logits"].double().numpy())
                bar.update(logits.shape[1])
    finally:
        hook.remove()
        model.train(was_training)

    def joined(name: str) -> np.ndarray | None:
        return np.concatenate(parts[name], axis=1) if parts[name] else None

    return ReadoutRun(
        logits=joined("logits"), penultimate=joined("penultimate"),
        weight=readout.weight.detach().double().numpy(),
        bias=(readout.bias.detach().double().numpy() if readout.bias is not None
              else np.zeros(readout.out_features)),
        features=joined("features"), halt_prob=joined("halt_prob"), act_logits=joined("act_logits"),
    )


def _check_tn(name: str, array: np.ndarray, ndim: int) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim != ndim:
        raise NeurofitError(f"{name} must have {ndim} dims ([T, N{', ...' if ndim > 2 else ''}]), "
                            f"got shape {array.shape}")
    return array


def correct_per_step(logits: np.ndarray, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """``[T, N]`` bool: whether the argmax of ``logits`` ``[T, N, C]`` is each image's label.

    Example
    -------
    >>> logits = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # T=2, N=1, C=2
    >>> correct_per_step(logits, [1])[:, 0].tolist()
    [False, True]
    """
    logits = _check_tn("logits", logits, 3)
    labels = np.asarray(labels)
    if labels.shape != (logits.shape[1],):
        raise NeurofitError(f"labels has shape {labels.shape}, expected ({logits.shape[1]},) (one per image)")
    return logits.argmax(-1) == labels[None, :]


def accuracy_per_step(correct: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """``[T]`` fraction of images correct at each step (over the images ``valid`` at that step, if given).

    Example
    -------
    >>> accuracy_per_step(np.array([[True, False], [True, True]])).tolist()
    [0.5, 1.0]
    """
    correct = _check_tn("correct", correct, 2).astype(np.float64)
    if valid is None:
        return correct.mean(axis=1)
    valid = np.asarray(valid, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid, correct, 0.0).sum(1) / valid.sum(1)


def first_correct_step(correct: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """First step at which each image is correct, and whether it stays correct at every later step.

    Parameters
    ----------
    correct : bool array [T, N]
    valid : bool array [T, N], optional
        Steps that count (e.g. up to an adaptive model's halting step); other steps are ignored.

    Returns
    -------
    first : float array [N]
        0-based step index; NaN for an image never correct (at a valid step).
    stays : bool array [N]
        True when the image is correct at every valid step from ``first`` on (False if never correct).

    Example
    -------
    >>> c = np.array([[0, 0, 1], [1, 0, 1], [1, 0, 1]], dtype=bool)  # T=3 steps, N=3 images
    >>> first, stays = first_correct_step(c)
    >>> first.tolist(), stays.tolist()
    ([1.0, nan, 0.0], [True, False, True])
    """
    correct = _check_tn("correct", correct, 2).astype(bool)
    valid = np.ones_like(correct) if valid is None else np.asarray(valid, dtype=bool)
    hit = correct & valid
    ever = hit.any(axis=0)
    first = np.where(ever, hit.argmax(axis=0), -1)
    t = np.arange(correct.shape[0])[:, None]
    after = (t >= first[None, :]) & valid
    stays = ever & np.all(~after | correct, axis=0)
    return np.where(ever, first.astype(np.float64), np.nan), stays


def successive_distances(representations: np.ndarray) -> np.ndarray:
    """``[T, N]`` Euclidean distance ``||x_t - x_{t-1}||`` of each image's representation; NaN at ``t = 0``.

    Example
    -------
    >>> x = np.array([[[0.0, 0.0]], [[3.0, 4.0]], [[3.0, 4.0]]])  # T=3, N=1, D=2
    >>> successive_distances(x)[:, 0].tolist()
    [nan, 5.0, 0.0]
    """
    x = _check_tn("representations", representations, 3)
    out = np.full(x.shape[:2], np.nan)
    out[1:] = np.linalg.norm(np.diff(x, axis=0), axis=-1)
    return out


def movement_after_first_correct(distances: np.ndarray, first: np.ndarray) -> np.ndarray:
    """``[N]`` mean step-to-step distance over the steps after each image's first correct step.

    The moves counted are ``x_{f} -> x_{f+1}, ..., x_{T-2} -> x_{T-1}`` for first-correct step ``f``; NaN
    when the image is never correct or first correct at the last step.

    Example
    -------
    >>> d = np.array([[np.nan, np.nan], [2.0, 1.0], [4.0, 3.0]])  # from successive_distances, T=3, N=2
    >>> movement_after_first_correct(d, np.array([0.0, 1.0])).tolist()
    [3.0, 3.0]
    """
    distances = _check_tn("distances", distances, 2)
    first = np.asarray(first, dtype=np.float64)
    t = np.arange(distances.shape[0])[:, None]
    after = t > np.where(np.isnan(first), np.inf, first)[None, :]
    count = after.sum(axis=0)
    total = np.where(after, np.nan_to_num(distances), 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan)


def l2_norms(representations: np.ndarray) -> np.ndarray:
    """``[T, N]`` L2 norm of each image's representation ``[T, N, D]`` at each step.

    Example
    -------
    >>> l2_norms(np.array([[[3.0, 4.0], [0.0, 1.0]]])).tolist()
    [[5.0, 1.0]]
    """
    return np.linalg.norm(_check_tn("representations", representations, 3), axis=-1)


def mean_by_correctness(values: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step, the mean of ``values`` ``[T, N]`` over correct and over incorrect images (NaN if none).

    Example
    -------
    >>> v = np.array([[1.0, 2.0, 6.0]])
    >>> mean_by_correctness(v, np.array([[True, False, False]]))
    (array([1.]), array([4.]))
    """
    values = _check_tn("values", values, 2)
    correct = np.asarray(correct, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        right = np.where(correct, values, 0.0).sum(1) / correct.sum(1)
        wrong = np.where(~correct, values, 0.0).sum(1) / (~correct).sum(1)
    return right, wrong


def probe_correct(
    features: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    *,
    n_splits: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 1000,
) -> np.ndarray:
    """``[T, N]`` held-out correctness of a cross-validated logistic-regression probe at every step.

    The folds are the regression engine's stimulus splits (:func:`neurofit.regression.splits.make_splits`,
    K-fold stratified by label, seeded), the same for every step; features are standardised on each
    training fold; the probe is scikit-learn's multinomial ``LogisticRegression(C=C)``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> labels = np.repeat([0, 1], 20)
    >>> x = rng.normal(size=(2, 40, 3)); x[1, :, 0] += 10 * labels  # separable at step 1 only
    >>> acc = probe_correct(x, labels).mean(axis=1)
    >>> bool(acc[1] == 1.0), bool(acc[0] < 0.8)
    (True, True)
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from neurofit.regression.splits import make_splits

    features = _check_tn("features", features, 3)
    labels = np.asarray(labels)
    n = features.shape[1]
    if labels.shape != (n,):
        raise NeurofitError(f"labels has shape {labels.shape}, expected ({n},) (one per image)")
    splits = make_splits([str(i) for i in range(n)], object_name=labels.astype(str), n_splits=n_splits, seed=seed)
    out = np.zeros(features.shape[:2], dtype=bool)
    for t in range(features.shape[0]):
        for train, test in zip(splits.train, splits.test):
            if np.unique(labels[train]).size < 2:
                raise NeurofitError("a probe training fold holds a single class; use fewer folds (n_splits)")
            scaler = StandardScaler().fit(features[t, train])
            probe = LogisticRegression(C=C, max_iter=max_iter)
            probe.fit(scaler.transform(features[t, train]), labels[train])
            out[t, test] = probe.predict(scaler.transform(features[t, test])) == labels[test]
    return out
