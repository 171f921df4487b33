"""Readout-zone geometry of a softmax (linear) readout (Thorat, Doerig & Kietzmann 2023).

A linear readout ``s = W x + b`` (``W`` ``[C, D]``) with an argmax (softmax) decision splits representation
space into convex *readout zones*, one per class: zone ``c`` is ``{x : s_c(x) >= s_k(x) for all k}``, an
intersection of half-spaces bounded by the hyperplanes ``(w_c - w_k) . x + b_c - b_k = 0``. The signed
Euclidean distance of ``x`` to the boundary of its label's zone is the **margin**::

    margin_c(x) = min_{k != c} ((w_c - w_k) . x + b_c - b_k) / ||w_c - w_k||

positive inside the zone (correctly classified), negative outside. For a point inside, it is exactly the
Euclidean distance to the zone's boundary (the nearest facet); for a point outside, its magnitude is the
largest distance by which the point lies beyond one of the zone's bounding hyperplanes (a lower bound on
its distance to the zone). Pairs with ``w_c == w_k`` have no boundary hyperplane and are skipped.

The **position relative to the zone centre** is given two ways: the Euclidean distance to the class's
mean representation at the same step (:func:`class_centre_distance`), and the projection on the zone's
axis ``u_c = (w_c - mean_k w_k) / ||w_c - mean_k w_k||`` (:func:`zone_axis_projection`), the direction
along which class ``c``'s score grows fastest relative to the others: for ``b = 0`` the zones are cones
around these axes, and far along ``u_c`` lies deep inside zone ``c``.

:func:`count_transitions` counts images crossing into their label's zone (misclassified -> corrected) and
out of it (corrected -> misclassified) between successive steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from neurofit.errors import NeurofitError


def _check(representations: np.ndarray, labels: Sequence[int] | np.ndarray, weight: np.ndarray | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(representations, dtype=np.float64)
    labels = np.asarray(labels)
    if x.ndim < 2:
        raise NeurofitError(f"representations must be [..., N, D], got shape {x.shape}")
    if labels.shape != (x.shape[-2],):
        raise NeurofitError(f"labels has shape {labels.shape}, expected ({x.shape[-2]},) (one per image)")
    if weight is not None:
        weight = np.asarray(weight)
        if weight.ndim != 2 or weight.shape[1] != x.shape[-1]:
            raise NeurofitError(f"readout weight must be [C, {x.shape[-1]}], got shape {weight.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= weight.shape[0]):
            raise NeurofitError(f"labels must be class indices in [0, {weight.shape[0]}), got "
                                f"[{labels.min()}, {labels.max()}]")
    return x, labels


def zone_margins(
    representations: np.ndarray, labels: Sequence[int] | np.ndarray, weight: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """Signed distance of each representation to the boundary of its label's readout zone.

    Parameters
    ----------
    representations : ndarray [..., N, D]
        E.g. ``[T, N, D]`` penultimate representations over steps.
    labels : int array [N]
        Class index of each image (row of ``weight``).
    weight, bias : ndarray [C, D], [C]
        The linear readout.

    Returns
    -------
    ndarray [..., N]: positive inside the label's zone, negative outside (module docstring).

    Example
    -------
    >>> W, b = np.array([[1.0, 0.0], [0.0, 1.0]]), np.zeros(2)
    >>> x = np.array([[2.0, 0.0], [0.0, 2.0]])
    >>> np.round(zone_margins(x, [0, 0], W, b), 4).tolist()  # sqrt(2) inside; sqrt(2) outside
    [1.4142, -1.4142]
    """
    x, labels = _check(representations, labels, weight)
    weight = np.asarray(weight, dtype=np.float64)
    bias = np.asarray(bias, dtype=np.float64)
    if bias.shape != (weight.shape[0],):
        raise NeurofitError(f"readout bias must be [{weight.shape[0]}], got shape {bias.shape}")
    scores = x @ weight.T + bias  # [..., N, C]
    own = np.take_along_axis(scores, np.broadcast_to(labels[:, None], (*scores.shape[:-1], 1)), axis=-1)
    gaps = own - scores  # (w_c - w_k) . x + b_c - b_k
    norms = np.linalg.norm(weight[labels][:, None, :] - weight[None, :, :], axis=-1)  # [N, C]
    with np.errstate(invalid="ignore", divide="ignore"):
        distances = np.where(norms > 0, gaps / norms, np.inf)
    return distances.min(axis=-1)


def class_centre_distance(representations: np.ndarray, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """``[..., N]`` Euclidean distance of each representation to its class's mean at the same step.

    Example
    -------
    >>> x = np.array([[0.0, 0.0], [2.0, 0.0], [5.0, 5.0]])
    >>> class_centre_distance(x, [0, 0, 1]).tolist()
    [1.0, 1.0, 0.0]
    """
    x, labels = _check(representations, labels)
    out = np.empty(x.shape[:-1])
    for c in np.unique(labels):
        members = labels == c
        centre = x[..., members, :].mean(axis=-2, keepdims=True)
        out[..., members] = np.linalg.norm(x[..., members, :] - centre, axis=-1)
    return out


def zone_axes(weight: np.ndarray) -> np.ndarray:
    """``[C, D]`` unit zone axes ``(w_c - mean_k w_k) / ||w_c - mean_k w_k||``.

    Example
    -------
    >>> zone_axes(np.array([[2.0, 0.0], [0.0, 2.0]])).round(4).tolist()
    [[0.7071, -0.7071], [-0.7071, 0.7071]]
    """
    weight = np.asarray(weight, dtype=np.float64)
    centred = weight - weight.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(centred, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise NeurofitError("a readout class weight equals the mean class weight: its zone has no axis")
    return centred / norms


def zone_axis_projection(
    representations: np.ndarray, labels: Sequence[int] | np.ndarray, weight: np.ndarray
) -> np.ndarray:
    """``[..., N]`` projection ``x . u_c`` of each representation on its label's zone axis (:func:`zone_axes`).

    Example
    -------
    >>> W = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> np.round(zone_axis_projection(np.array([[3.0, 1.0]]), [0], W), 4).tolist()
    [1.4142]
    """
    x, labels = _check(representations, labels, weight)
    axes = zone_axes(weight)[labels]  # [N, D]
    return np.einsum("...nd,nd->...n", x, axes)


def count_transitions(correct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step, how many images became correct and how many became incorrect since the previous step.

    Parameters
    ----------
    correct : bool array [T, N]

    Returns
    -------
    corrected, misclassified : int arrays [T]
        ``corrected[t]``: images wrong at ``t - 1`` and right at ``t`` (misclassified -> corrected);
        ``misclassified[t]``: right at ``t - 1`` and wrong at ``t``. Both are 0 at ``t = 0``.

    Example
    -------
    >>> c = np.array([[0, 1, 1], [1, 1, 0], [1, 0, 1]], dtype=bool)
    >>> [a.tolist() for a in count_transitions(c)]
    [[0, 1, 1], [0, 1, 1]]
    """
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2:
        raise NeurofitError(f"correct must be [T, N], got shape {correct.shape}")
    corrected = np.zeros(correct.shape[0], dtype=np.int64)
    misclassified = np.zeros(correct.shape[0], dtype=np.int64)
    corrected[1:] = (~correct[:-1] & correct[1:]).sum(axis=1)
    misclassified[1:] = (correct[:-1] & ~correct[1:]).sum(axis=1)
    return corrected, misclassified
