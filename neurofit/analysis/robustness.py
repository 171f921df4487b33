"""Robustness over time of a recurrent classifier (Greco et al. 2025): noise, adversarial attacks, geometry.

Greco, D'Alessandro, Friston, Pezzulo & Siegel (2025, arXiv:2508.07115) report that ConvRNNs with top-down
feedback trained with dropout ("randomly silencing single units") trade speed for accuracy better, resist
pixel noise and adversarial attacks better, keep the activity of their post-integration layer on a
lower-dimensional manifold and have more stable dynamics. This module measures each of those for any
:class:`~neurofit.models.base.TemporalModel` classifier, per step of its unroll:

* :func:`correct_per_step`: correctness of the model's own readout at every step (the speed-accuracy
  curve is its mean over images), optionally with dropout kept active at evaluation (:func:`stochastic`,
  averaged over ``samples`` stochastic passes);
* :func:`gaussian_noise`: images plus i.i.d. Gaussian pixel noise of standard deviation ``sigma`` (pixel
  values in ``[0, 1]``, clipped);
* :func:`fgsm` (Goodfellow et al. 2015): one step ``x + epsilon * sign(grad_x L)``, clipped to ``[0, 1]``;
  :func:`pgd` (Madry et al. 2018): ``iterations`` steps of size ``alpha`` from a random start in the
  L-infinity ball, each projected back onto the ball and ``[0, 1]``. ``L`` is the cross-entropy of the
  readout averaged over the steps at which it is image-driven (the ``all_steps`` training loss) or at the
  last step; attacks see the deterministic model (dropout off, BatchNorm in eval mode);
* :func:`participation_ratio`: ``(sum_i l_i)^2 / sum_i l_i^2`` of the eigenvalues ``l_i`` of the
  covariance of a layer's activity over images (Gao et al. 2017), computed from the traces
  ``tr(C)^2 / tr(C^2)`` without an eigendecomposition;
* :func:`trajectory_divergence` and :func:`trajectory_movement`: how far the last hidden layer's
  trajectory under a perturbed input departs from the clean one, relative to the clean activity's norm,
  and how far the clean activity still moves from one step to the next (the dynamics settle when it
  shrinks).

:func:`analyze_robustness` runs all of them on one model and one labelled stimulus set and returns one
:class:`xarray.Dataset` holding the per-image values, so that two models run on the same images can be
compared pairwise (``neurofit analyze robustness``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
import xarray as xr
from torch import nn

from neurofit import __version__
from neurofit.errors import NeurofitError
from neurofit.models.base import TemporalModel, present
from neurofit.stats.bootstrap import mean_ci, percentile_interval

AttackLoss = Literal["all_steps", "last_step"]
#: default pixel-noise standard deviations (pixel values in [0, 1])
NOISE_LEVELS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3)
#: default L-infinity budgets of the attacks (in 1/255 units of an 8-bit image: 1, 2, 4)
ATTACK_EPSILONS: tuple[float, ...] = (1 / 255, 2 / 255, 4 / 255)


@contextlib.contextmanager
def stochastic(model: nn.Module) -> Iterator[nn.Module]:
    """Keep the model in eval mode but its dropout layers active ("neural stochasticity" at test time).

    Example
    -------
    >>> from neurofit.models.zoo.blt import bl
    >>> m = bl(channels=(4, 8), steps=2, dropout=0.5).eval()
    >>> with stochastic(m):
    ...     m.dropout.training, m.norms["conv1"][0].training
    (True, False)
    >>> m.dropout.training
    False
    """
    dropouts = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    states = [d.training for d in dropouts]
    try:
        for d in dropouts:
            d.train()
        yield model
    finally:
        for d, state in zip(dropouts, states):
            d.train(state)


def _readout_start(model: TemporalModel, steps: int) -> int:
    first = model.time_map(steps=steps).first_driven
    return min(int(first.get(model.layers[-1], 0)) if model.layers else 0, steps - 1)


def _attack_loss(model: TemporalModel, images: torch.Tensor, labels: torch.Tensor, steps: int,
                 loss: AttackLoss) -> torch.Tensor:
    logits = model.forward_sequence(present(model.normalize(images), steps))["logits"]
    if loss == "last_step":
        return F.cross_entropy(logits[-1], labels, reduction="sum")
    start = _readout_start(model, steps)
    return torch.stack([F.cross_entropy(logits[t], labels, reduction="sum")
                        for t in range(start, steps)]).mean()


def _input_gradient(model: TemporalModel, images: torch.Tensor, labels: torch.Tensor, steps: int,
                    loss: AttackLoss) -> torch.Tensor:
    x = images.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        value = _attack_loss(model, x, labels, steps, loss)
        (grad,) = torch.autograd.grad(value, x)
    return grad


def _check_attack(model: nn.Module, epsilon: float, loss: str) -> None:
    if epsilon < 0:
        raise NeurofitError(f"attack epsilon must be >= 0, got {epsilon}")
    if loss not in ("all_steps", "last_step"):
        raise NeurofitError(f"attack loss must be 'all_steps' or 'last_step', got {loss!r}")
    if model.training:
        raise NeurofitError("attack an evaluation-mode model (model.eval()): BatchNorm statistics and dropout "
                            "must not change under the attack")


def fgsm(model: TemporalModel, images: torch.Tensor, labels: torch.Tensor, epsilon: float, *,
         steps: int | None = None, loss: AttackLoss = "all_steps") -> torch.Tensor:
    """Fast gradient sign attack: ``clip(x + epsilon * sign(grad_x L), 0, 1)``.

    Parameters
    ----------
    model : TemporalModel (in eval mode)
    images : Tensor [N, C, H, W] in ``[0, 1]``; labels : int Tensor [N]
    epsilon : float
        L-infinity budget in pixel units.
    steps : int, optional
        Movie length (default ``model.default_steps``).
    loss : {"all_steps", "last_step"}
        Cross-entropy averaged over the readout's driven steps, or at the last step.

    Example
    -------
    >>> from neurofit.models.zoo.blt import b
    >>> m = b(channels=(4, 8), steps=2, num_classes=3).eval()
    >>> x = torch.rand(2, 3, 32, 32)
    >>> adv = fgsm(m, x, torch.tensor([0, 1]), 0.01)
    >>> bool((adv - x).abs().max() <= 0.01 + 1e-7)
    True
    """
    _check_attack(model, epsilon, loss)
    steps = int(model.default_steps if steps is None else steps)
    grad = _input_gradient(model, images, labels, steps, loss)
    return (images + epsilon * grad.sign()).clamp(0.0, 1.0).detach()


def pgd(model: TemporalModel, images: torch.Tensor, labels: torch.Tensor, epsilon: float, *,
        steps: int | None = None, iterations: int = 10, alpha: float | None = None, random_start: bool = True,
        loss: AttackLoss = "all_steps", seed: int = 0) -> torch.Tensor:
    """Projected gradient descent attack in the L-infinity ball of radius ``epsilon`` (Madry et al. 2018).

    Each of ``iterations`` steps moves ``alpha`` (default ``2.5 * epsilon / iterations``) along the sign of
    the loss gradient, then projects back onto ``[x - epsilon, x + epsilon]`` and ``[0, 1]``; the start is
    uniform in the ball when ``random_start`` (seeded).

    Example
    -------
    >>> from neurofit.models.zoo.blt import b
    >>> m = b(channels=(4, 8), steps=2, num_classes=3).eval()
    >>> x = torch.rand(2, 3, 32, 32)
    >>> adv = pgd(m, x, torch.tensor([0, 1]), 0.02, iterations=3)
    >>> bool((adv - x).abs().max() <= 0.02 + 1e-7), bool(adv.min() >= 0 and adv.max() <= 1)
    (True, True)
    """
    _check_attack(model, epsilon, loss)
    if iterations < 1:
        raise NeurofitError(f"pgd needs iterations >= 1, got {iterations}")
    steps = int(model.default_steps if steps is None else steps)
    alpha = 2.5 * epsilon / iterations if alpha is None else float(alpha)
    low, high = (images - epsilon).clamp(0.0, 1.0), (images + epsilon).clamp(0.0, 1.0)
    x = images.clone()
    if random_start:
        generator = torch.Generator().manual_seed(seed)
        x = x + (torch.rand(x.shape, generator=generator, dtype=x.dtype) * 2 - 1) * epsilon
        x = torch.maximum(torch.minimum(x, high), low)
    for _ in range(iterations):
        grad = _input_gradient(model, x, labels, steps, loss)
        x = torch.maximum(torch.minimum(x + alpha * grad.sign(), high), low).detach()
    return x


def gaussian_noise(images: torch.Tensor, sigma: float, *, seed: int = 0) -> torch.Tensor:
    """``clip(images + sigma * N(0, 1), 0, 1)`` with seeded noise (pixel values in ``[0, 1]``).

    Example
    -------
    >>> x = torch.full((1, 3, 4, 4), 0.5)
    >>> float((gaussian_noise(x, 0.1, seed=1) - x).std()) > 0.05
    True
    """
    if sigma < 0:
        raise NeurofitError(f"noise sigma must be >= 0, got {sigma}")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator, dtype=images.dtype)
    return (images + sigma * noise).clamp(0.0, 1.0)


def correct_per_step(model: TemporalModel, images: torch.Tensor, labels: np.ndarray | torch.Tensor, *,
                     steps: int | None = None, batch_size: int = 64, dropout: bool = False, samples: int = 1,
                     seed: int = 0, layer: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Correctness of the readout at every step, and optionally one layer's activity per step.

    Parameters
    ----------
    dropout : bool
        Keep dropout active at evaluation (:func:`stochastic`); the correctness is then the fraction of
        ``samples`` stochastic passes (seeded with ``seed``) that answer correctly.
    layer : str, optional
        Also return this layer's activity, flattened, ``[T, N, D]`` (float32; from the deterministic pass,
        or the first stochastic one).

    Returns
    -------
    (correct [T, N] float in [0, 1], activity [T, N, D] or None)

    Example
    -------
    >>> from neurofit.models.zoo.blt import bl
    >>> m = bl(channels=(4, 8), steps=3, num_classes=2).eval()
    >>> c, h = correct_per_step(m, torch.rand(5, 3, 32, 32), np.array([0, 1, 0, 1, 0]), layer="conv2")
    >>> c.shape, h.shape
    ((3, 5), (3, 5, 2048))
    """
    steps = int(model.default_steps if steps is None else steps)
    labels = torch.as_tensor(np.asarray(labels))
    if samples < 1:
        raise NeurofitError(f"samples must be >= 1, got {samples}")
    passes = samples if dropout else 1
    was_training = model.training
    model.eval()
    correct = torch.zeros(steps, len(images), dtype=torch.float64)
    activity: list[torch.Tensor] = []
    try:
        context = stochastic(model) if dropout else contextlib.nullcontext()
        with context, torch.no_grad():
            torch.manual_seed(seed)
            for k in range(passes):
                for start in range(0, len(images), batch_size):
                    out = model.forward_sequence(present(model.normalize(images[start:start + batch_size]), steps))
                    y = labels[start:start + batch_size]
                    correct[:, start:start + len(y)] += (out["logits"].argmax(-1) == y[None]).double()
                    if layer is not None and k == 0:
                        if layer not in out:
                            raise NeurofitError(f"{type(model).__name__} has no layer {layer!r}; layers: "
                                                f"{', '.join(model.layers)}")
                        activity.append(out[layer].flatten(2).float())
    finally:
        model.train(was_training)
    hidden = torch.cat(activity, dim=1).numpy() if activity else None
    return (correct / passes).numpy(), hidden


def participation_ratio(activity: np.ndarray | torch.Tensor) -> float:
    """Participation ratio ``(sum l)^2 / sum l^2`` of the covariance eigenvalues of ``activity`` [N, D].

    Computed as ``tr(C)^2 / tr(C^2)`` with ``C`` the covariance over the ``N`` rows, through whichever of
    the ``N x N`` Gram matrix of the centred data and the ``D x D`` scatter matrix is smaller (they share
    their non-zero eigenvalues); it lies in ``[1, min(N - 1, D)]``.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(500, 3)) * np.sqrt([4.0, 1.0, 1.0])  # eigenvalues ~ 4, 1, 1: (6^2)/18 = 2
    >>> round(participation_ratio(x), 1)
    2.0
    """
    x = np.asarray(activity, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise NeurofitError(f"participation_ratio needs activity [N >= 2, D], got shape {x.shape}")
    x = x - x.mean(0)
    gram = x @ x.T if x.shape[0] <= x.shape[1] else x.T @ x
    total = float(np.trace(gram))
    if total == 0:
        return float("nan")
    return total**2 / float((gram * gram).sum())


def _basic_interval(estimate: float, draws: np.ndarray, ci: float) -> tuple[float, float]:
    """The basic (reverse-percentile) bootstrap interval ``[2 est - q_high, 2 est - q_low]``."""
    low, high = percentile_interval(draws, ci)
    return 2 * estimate - float(high), 2 * estimate - float(low)


def participation_ratio_ci(activity: np.ndarray, *, n_boot: int = 1000, seed: int = 0, ci: float = 0.95
                           ) -> tuple[float, float, float]:
    """Participation ratio of ``activity`` [N, D] with a basic bootstrap CI over the rows (images).

    Resampling images with replacement repeats some of them, which lowers the participation ratio of every
    draw (fewer distinct images span fewer dimensions), so the percentile interval lies below the estimate
    and misses the population value; the sample's own participation ratio is biased low the same way. The
    basic interval ``[2 PR - q_high, 2 PR - q_low]`` (``q`` the draws' percentiles) reflects the draws'
    deviation about the estimate and so corrects for that shift (Davison & Hinkley 1997, eq. 5.6). It may
    lie above the estimate when every draw falls below it.

    Example
    -------
    >>> x = np.random.default_rng(1).normal(size=(60, 5))
    >>> pr, lo, hi = participation_ratio_ci(x, n_boot=50)
    >>> bool(lo < hi)
    True
    """
    x = np.asarray(activity, dtype=np.float64)
    x = x - x.mean(0)
    estimate = participation_ratio(x)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    n, d = x.shape
    gram = x @ x.T if n <= d else None
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        if gram is None:
            draws[b] = participation_ratio(x[idx])
            continue
        g = gram[np.ix_(idx, idx)]
        # re-centre the resampled rows: C_b uses the draw's own mean
        g = g - g.mean(0, keepdims=True) - g.mean(1, keepdims=True) + g.mean()
        draws[b] = np.trace(g) ** 2 / (g * g).sum()
    low, high = _basic_interval(estimate, draws, ci)
    return estimate, low, high


def participation_ratio_difference_ci(first: np.ndarray, second: np.ndarray, *, n_boot: int = 1000, seed: int = 0,
                                      ci: float = 0.95) -> tuple[float, float, float]:
    """``PR(first) - PR(second)`` of two activities ``[N, D1]``, ``[N, D2]`` of the same ``N`` images, with a
    paired basic bootstrap CI (each draw resamples the same images for both; basic interval as in
    :func:`participation_ratio_ci`).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(200, 4))
    >>> d, lo, hi = participation_ratio_difference_ci(z * [3.0, 1, 1, 1], z, n_boot=100)
    >>> bool(lo <= d <= hi < 0)
    True
    """
    a, b = (np.asarray(x, dtype=np.float64) for x in (first, second))
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise NeurofitError(f"paired participation ratios need activities [N, D] of the same images, got shapes "
                            f"{a.shape} and {b.shape}")
    estimate = participation_ratio(a) - participation_ratio(b)
    grams = [(x - x.mean(0)) @ (x - x.mean(0)).T for x in (a, b)]
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    n = len(a)
    for k in range(n_boot):
        idx = rng.integers(0, n, n)
        values = []
        for gram in grams:
            g = gram[np.ix_(idx, idx)]
            g = g - g.mean(0, keepdims=True) - g.mean(1, keepdims=True) + g.mean()
            values.append(np.trace(g) ** 2 / (g * g).sum())
        draws[k] = values[0] - values[1]
    low, high = _basic_interval(estimate, draws, ci)
    return estimate, low, high


def trajectory_divergence(clean: np.ndarray, perturbed: np.ndarray) -> np.ndarray:
    """Per step and image ``||h_pert - h_clean|| / ||h_clean||`` of activities ``[T, N, D]``.

    Example
    -------
    >>> h = np.ones((2, 1, 4))
    >>> trajectory_divergence(h, 1.5 * h)[:, 0].tolist()
    [0.5, 0.5]
    """
    clean = np.asarray(clean, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.linalg.norm(np.asarray(perturbed, dtype=np.float64) - clean, axis=-1) / np.linalg.norm(clean,
                                                                                                           axis=-1)


def trajectory_movement(activity: np.ndarray) -> np.ndarray:
    """Per step and image ``||h_t - h_{t-1}|| / ||h_t||`` (NaN at step 0) of activities ``[T, N, D]``.

    Example
    -------
    >>> h = np.stack([np.ones((1, 2)), 2 * np.ones((1, 2))])
    >>> trajectory_movement(h)[:, 0].tolist()
    [nan, 0.5]
    """
    h = np.asarray(activity, dtype=np.float64)
    out = np.full(h.shape[:2], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[1:] = np.linalg.norm(h[1:] - h[:-1], axis=-1) / np.linalg.norm(h[1:], axis=-1)
    return out


def _conditions(noise: Sequence[float], fgsm_eps: Sequence[float], pgd_eps: Sequence[float]) -> list[tuple[str, float]]:
    return ([("clean", 0.0)] + [("noise", float(s)) for s in noise] + [("fgsm", float(e)) for e in fgsm_eps]
            + [("pgd", float(e)) for e in pgd_eps])


def analyze_robustness(
    model: str | os.PathLike[str] | TemporalModel,
    stimuli: str | os.PathLike[str] = "holdout",
    *,
    arch: str | None = None,
    steps: int | None = None,
    label_column: str | None = None,
    noise: Sequence[float] = NOISE_LEVELS,
    fgsm_eps: Sequence[float] = ATTACK_EPSILONS,
    pgd_eps: Sequence[float] = ATTACK_EPSILONS,
    pgd_iterations: int = 10,
    attack_loss: AttackLoss = "all_steps",
    dropout: bool = False,
    samples: int = 10,
    stability_sigma: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    batch_size: int = 64,
    out: str | os.PathLike[str] | None = None,
    figures: bool = True,
    figure_formats: Sequence[str] = ("pdf", "svg", "png"),
) -> xr.Dataset:
    """Accuracy per step under noise and attacks, participation ratio and trajectory stability of one model.

    Parameters
    ----------
    model : zoo name, checkpoint path or TemporalModel
    stimuli : "holdout", "synthetic-ventral", CSV path
        Labelled images (as for :func:`neurofit.analysis.dynamics.analyze_dynamics`; default the checkpoint's
        held-out training images).
    steps : int, optional
        Movie length (default the training length).
    noise : sequence of float
        Gaussian pixel-noise standard deviations.
    fgsm_eps, pgd_eps : sequence of float
        L-infinity budgets of the FGSM and PGD attacks (pixel units); ``pgd_iterations`` steps each.
    attack_loss : {"all_steps", "last_step"}
        What the attacks maximise.
    dropout : bool
        Evaluate with dropout active (:func:`stochastic`), each image's correctness averaged over ``samples``
        stochastic passes; attacks, the participation ratio and the trajectory measures are still computed
        on the deterministic model (so they describe the trained network, not one draw of its noise).
    stability_sigma : float, optional
        Noise level whose trajectories are compared with the clean ones (default the middle noise level).
    n_boot, seed, batch_size, out, figures, figure_formats : as for ``analyze_dynamics``.

    Returns
    -------
    Dataset with dims ``condition`` (``clean``, ``noise``, ``fgsm``, ``pgd`` with coord ``strength``),
    ``step``, ``presentation``: ``correct`` ``[condition, step, presentation]`` and ``accuracy`` (mean
    with ``_low``/``_high`` bootstrap CIs over images); ``participation_ratio`` per step of the last hidden
    layer on clean images (``_low``/``_high``); ``divergence`` ``[step, presentation]`` (trajectory under
    ``stability_sigma`` noise vs clean) and ``movement`` ``[step, presentation]`` (clean, step to step) with
    their means and CIs; provenance in ``attrs``.

    Example
    -------
    >>> ds = analyze_robustness("neurofit/checkpoints/bt.safetensors")  # doctest: +SKIP
    """
    from neurofit.analysis.dynamics import _labels, resolve_model, resolve_stimuli
    from neurofit.models import flush_denormals

    flush_denormals()
    net, meta = resolve_model(model, arch)
    stimulus_set, _ = resolve_stimuli(stimuli, meta)
    table = stimulus_set.table
    label_column = label_column or meta.get("label_column") or "category_name"
    from neurofit.analysis.readout import find_readout

    labels, classes = _labels(table, label_column, meta.get("classes"), find_readout(net).out_features)
    steps = int(meta.get("steps") or net.default_steps) if steps is None else int(steps)
    net.eval()
    images = stimulus_set.load_images(net.input_size)
    target = torch.as_tensor(labels)
    conditions = _conditions(noise, fgsm_eps, pgd_eps)
    sigma = (float(sorted(noise)[len(noise) // 2]) if noise else 0.1) if stability_sigma is None else stability_sigma
    last = net.layers[-1]

    correct = np.zeros((len(conditions), steps, len(images)))
    clean_activity = None
    for c, (kind, strength) in enumerate(conditions):
        parts = []
        for start in range(0, len(images), batch_size):
            x, y = images[start:start + batch_size], target[start:start + batch_size]
            if kind == "noise":
                x = gaussian_noise(x, strength, seed=seed + start)
            elif kind == "fgsm":
                x = fgsm(net, x, y, strength, steps=steps, loss=attack_loss)
            elif kind == "pgd":
                x = pgd(net, x, y, strength, steps=steps, iterations=pgd_iterations, loss=attack_loss,
                        seed=seed + start)
            parts.append(x)
        perturbed = torch.cat(parts)
        want = last if kind == "clean" and not dropout else None
        correct[c], activity = correct_per_step(net, perturbed, labels, steps=steps, batch_size=batch_size,
                                                dropout=dropout, samples=samples, seed=seed, layer=want)
        if kind == "clean":
            clean_activity = activity
    if clean_activity is None:  # geometry and stability come from the deterministic network
        _, clean_activity = correct_per_step(net, images, labels, steps=steps, batch_size=batch_size, layer=last)
    assert clean_activity is not None
    noisy = torch.cat([gaussian_noise(images[s:s + batch_size], sigma, seed=seed + s)
                       for s in range(0, len(images), batch_size)])
    _, noisy_activity = correct_per_step(net, noisy, labels, steps=steps, batch_size=batch_size, layer=last)
    assert noisy_activity is not None

    ds = xr.Dataset(coords={
        "condition": [f"{k}" if k == "clean" else f"{k} {s:.4g}" for k, s in conditions],
        "attack": ("condition", [k for k, _ in conditions]),
        "strength": ("condition", [s for _, s in conditions]),
        "step": np.arange(steps),
        "stimulus_id": ("presentation", table["stimulus_id"].astype(str).to_numpy()),
    })
    ds["label"] = ("presentation", labels)
    ds["correct"] = (("condition", "step", "presentation"), correct)
    mean, low, high = mean_ci(correct, n_boot=n_boot, seed=seed)
    ds["accuracy"], ds["accuracy_low"], ds["accuracy_high"] = (
        (("condition", "step"), mean), (("condition", "step"), low), (("condition", "step"), high))
    pr = np.array([participation_ratio_ci(clean_activity[t], n_boot=n_boot, seed=seed) for t in range(steps)])
    ds["participation_ratio"] = ("step", pr[:, 0])
    ds["participation_ratio_low"] = ("step", pr[:, 1])
    ds["participation_ratio_high"] = ("step", pr[:, 2])
    for name, values in (("divergence", trajectory_divergence(clean_activity, noisy_activity)),
                         ("movement", trajectory_movement(clean_activity))):
        ds[name] = (("step", "presentation"), values)
        m, lo, hi = mean_ci(values, n_boot=n_boot, seed=seed)
        ds[f"{name}_mean"], ds[f"{name}_low"], ds[f"{name}_high"] = (("step",), m), (("step",), lo), (("step",), hi)
    ds.attrs.update({
        "analysis": "robustness over time (neurofit.analysis.robustness.analyze_robustness)",
        "model_id": str(getattr(net, "arch", type(net).__name__)),
        "checkpoint": str(meta.get("checkpoint", "")),
        "model_config": dict(getattr(net, "config", {})),
        "stimulus_set": stimulus_set.identifier, "dataset_sha256": stimulus_set.sha256(),
        "label_column": label_column, "classes": list(classes), "steps": steps, "image_size": int(net.input_size),
        "hidden_layer": last, "attack_loss": attack_loss, "pgd_iterations": pgd_iterations,
        "pgd_alpha": "2.5 * epsilon / iterations, random start in the ball",
        "pixel_range": "[0, 1]; epsilon and sigma in pixel units", "dropout_at_evaluation": int(dropout),
        "dropout_samples": samples if dropout else 1, "stability_sigma": sigma,
        "geometry_network": "deterministic (dropout off, BatchNorm in eval mode), also when dropout_at_evaluation",
        "participation_ratio": "(sum l)^2 / sum l^2 of the covariance over images of the flattened last hidden "
                               "layer on clean images, per step; basic bootstrap interval over images",
        "divergence": "||h(noisy) - h(clean)|| / ||h(clean)|| of the last hidden layer, per image and step",
        "movement": "||h_t - h_{t-1}|| / ||h_t|| of the last hidden layer on clean images",
        "n_boot": n_boot, "ci": 0.95, "seed": seed, "neurofit_version": __version__,
        "torch_version": torch.__version__,
    })
    if out is not None:
        from neurofit.data.io import write_netcdf

        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        write_netcdf(ds, folder / "robustness.nc")
        if figures:
            from neurofit.analysis.figures import robustness_figures

            robustness_figures(ds, folder, formats=figure_formats)
    return ds
