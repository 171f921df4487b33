"""PathFinder: are the two marked endpoints joined by one dashed contour? Graded by contour length.

Papers
------
* Linsley, Kim, Veerabadran, Windolf & Serre (2018). Learning long-range spatial dependencies with
  horizontal gated recurrent units. NeurIPS 31. (PathFinder: two circles at the ends of one curved dashed
  path, or at ends of two different paths, among distractor paths; difficulty = path length in
  "paddles", 6, 9 and 14.)
* Veerabadran et al. (2023). Adaptive recurrent vision performs zero-shot computation scaling to unseen
  difficulty levels. NeurIPS 36. (Trained on shorter paths, tested on longer ones.)

The task
--------
Every image holds ``2 + distractors`` dashed contours of ``segments`` segments each on a black canvas.
A segment is a two-pixel dash followed by a one-pixel gap, drawn on the pixel grid along one of eight
compass directions; between segments the direction turns by 45 degrees with probability ``turn``, so
contours curve. Two red 3x3 markers are placed:

* ``connected``: at both ends of contour A;
* ``disconnected``: at one end of contour A and one end of contour B.

Both classes have the same number of contours of the same length and the same ink, so only tracing the
contour tells them apart. Distinct contours (markers included) stay at least three pixels apart
(Chebyshev distance), a contour never comes within two pixels of its own earlier, non-adjacent dashes, and
the two markers' centres are at least five pixels apart; so the BFS solver
(:func:`neurofit.data.tasks.solver.bfs` with moves of Chebyshev distance <= 2, which bridge the gaps)
joins the markers exactly when the generator says they are connected. Difficulty is ``segments``; the
quantity it drives is ``contour_pixels``, the number of pixels from one end of contour A to the other
(``3 * segments - 1``), which is also the BFS distance between connected markers (tested).

Every image draws from its own random stream ``(seed, segments, index)``; classes alternate within each
level (balanced to within one image).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import ndimage

from neurofit.data.stimuli import StimulusSet
from neurofit.data.tasks.solver import Solution, bfs
from neurofit.errors import NeurofitError

#: contour lengths of the task in segments (Linsley et al. 2018), easiest first
PATHFINDER_SEGMENTS: tuple[int, ...] = (6, 9, 14)
#: canvas side in pixels shared by every level
PATHFINDER_CANVAS = 32
MARKER_RGB = (255, 0, 0)
INK = 255
CLASSES = ("connected", "disconnected")
DASH, GAP = 2, 1
_DIRECTIONS = ((0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1), (-1, 0), (-1, 1))
_STREAM = 22
_SEPARATION = 2  # pixels of other contours are never within this Chebyshev distance


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = mask.copy()
    h, w = mask.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] |= \
                mask[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def _marker(shape: tuple[int, int], centre: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[centre[0] - 1:centre[0] + 2, centre[1] - 1:centre[1] + 2] = True
    return mask


def draw_contour(segments: int, blocked: np.ndarray, rng: np.random.Generator, turn: float = 0.4,
                 tries: int = 200) -> list[tuple[int, int]] | None:
    """Pixels of one dashed contour of ``segments`` segments avoiding ``blocked`` (None if none fits).

    Between segments the direction turns by 45 degrees with probability ``turn``; when the preferred
    direction would leave the canvas or hit ``blocked`` the other two (straight, or the other turns) are
    tried, so the contour steers around obstacles without ever turning more than 45 degrees. Both ends keep
    one pixel from the canvas edge, so a 3x3 marker fits on either end.

    Example
    -------
    >>> pixels = draw_contour(6, np.zeros((32, 32), dtype=bool), np.random.default_rng(0))
    >>> len(pixels)  # 6 dashes of 2 pixels
    12
    """
    h, w = blocked.shape

    def fits(point: tuple[int, int], own: np.ndarray) -> bool:
        if not (1 <= point[0] < h - 1 and 1 <= point[1] < w - 1) or blocked[point]:
            return False
        # no earlier, non-adjacent part of this contour within the separation distance
        return not own[max(point[0] - _SEPARATION, 0):point[0] + _SEPARATION + 1,
                       max(point[1] - _SEPARATION, 0):point[1] + _SEPARATION + 1].any()

    # starts whose 3x3 block (a possible marker) is clear of other contours, one pixel from the edge
    clear = ~_dilate(blocked, 1)
    clear[[0, -1], :] = False
    clear[:, [0, -1]] = False
    starts = np.argwhere(clear)
    if not len(starts):
        return None
    for _ in range(tries):
        start = tuple(int(v) for v in starts[int(rng.integers(len(starts)))])
        direction = int(rng.integers(8))
        own = np.zeros_like(blocked)
        pixels: list[tuple[int, int]] = []
        for s in range(segments):
            if s == 0:
                options = [direction]
            else:
                side = 1 if rng.random() < 0.5 else -1
                turns = [side, 0, -side] if rng.random() < turn else [0, side, -side]
                options = [(direction + t) % 8 for t in turns]
            dash: list[tuple[int, int]] = []
            for option in options:
                dy, dx = _DIRECTIONS[option]
                first = start if s == 0 else (pixels[-1][0] + (GAP + 1) * dy, pixels[-1][1] + (GAP + 1) * dx)
                candidate = [(first[0] + k * dy, first[1] + k * dx) for k in range(DASH)]
                if all(fits(p, own) for p in candidate):
                    dash, direction = candidate, option
                    break
            if not dash:
                break
            # the previous dash becomes "earlier" only now, so the current one may sit next to it
            for p in pixels[-DASH:]:
                own[p] = True
            pixels.extend(dash)
        # a marker may go on either end: its 3x3 block must keep clear of the other contours as well
        if len(pixels) == DASH * segments and not any(
                blocked[p[0] - 1:p[0] + 2, p[1] - 1:p[1] + 2].any() for p in (pixels[0], pixels[-1])):
            return pixels
    return None


def make_pathfinder(segments: int, connected: bool, rng: np.random.Generator, *, canvas: int = PATHFINDER_CANVAS,
                    distractors: int = 1, turn: float = 0.4) -> dict:
    """One PathFinder image: contour pixel lists, marker centres and the label.

    Returns
    -------
    dict with ``contours`` (list of pixel lists; contour 0 is A, 1 is B, the rest distractors),
    ``markers`` (two (row, col) centres), ``connected``.

    Example
    -------
    >>> d = make_pathfinder(6, True, np.random.default_rng(0))
    >>> len(d["contours"]), d["markers"][0] == d["contours"][0][0]
    (3, True)
    """
    if segments < 2:
        raise NeurofitError(f"a PathFinder contour needs at least 2 segments, got {segments}")
    for _ in range(200):
        blocked = np.zeros((canvas, canvas), dtype=bool)
        contours: list[list[tuple[int, int]]] = []
        for _c in range(2 + distractors):
            pixels = draw_contour(segments, blocked, rng, turn=turn)
            if pixels is None:
                break
            contours.append(pixels)
            ink = np.zeros_like(blocked)
            for p in pixels:
                ink[p] = True
            # markers may sit on either end: keep other contours clear of the 3x3 blocks too
            ink |= _marker(ink.shape, pixels[0]) | _marker(ink.shape, pixels[-1])
            blocked |= _dilate(ink, _SEPARATION)
        if len(contours) < 2 + distractors:
            continue
        a, b = contours[0], contours[1]
        if connected:
            markers = [a[0], a[-1]]
        else:
            markers = [a[0] if rng.random() < 0.5 else a[-1], b[0] if rng.random() < 0.5 else b[-1]]
        if max(abs(markers[0][0] - markers[1][0]), abs(markers[0][1] - markers[1][1])) >= 5:
            return {"contours": contours, "markers": markers, "connected": connected}
    raise NeurofitError(f"could not place {2 + distractors} contours of {segments} segments on a {canvas}-px "
                        f"canvas in 200 tries; use a larger canvas or fewer distractors")


def render_pathfinder(image: dict, canvas: int) -> np.ndarray:
    """A PathFinder image as uint8 RGB ``[canvas, canvas, 3]``: white dashes, red markers, black ground.

    Example
    -------
    >>> d = make_pathfinder(6, False, np.random.default_rng(1))
    >>> render_pathfinder(d, 32).shape
    (32, 32, 3)
    """
    out = np.zeros((canvas, canvas, 3), dtype=np.uint8)
    for pixels in image["contours"]:
        for p in pixels:
            out[p] = INK
    for centre in image["markers"]:
        out[_marker((canvas, canvas), centre)] = MARKER_RGB
    return out


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """8-connected components of a bool mask, each as a bool mask (in scan order)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    return [labels == k for k in range(1, n + 1)]


def solve_pathfinder_image(image: np.ndarray) -> Solution:
    """BFS on a rendered PathFinder image: from one red marker to the other through ink, bridging gaps.

    Example
    -------
    >>> d = make_pathfinder(6, True, np.random.default_rng(2))
    >>> solve_pathfinder_image(render_pathfinder(d, 32)).reachable
    True
    """
    image = np.asarray(image)
    red = np.all(image == MARKER_RGB, axis=-1)
    markers = _components(red)
    if len(markers) != 2:
        raise NeurofitError(f"a PathFinder image needs exactly two red markers, found {len(markers)}")
    return bfs(image.any(axis=-1), markers[0], markers[1], "chebyshev2")


def pathfinder_stimuli(
    segments: Sequence[int] = PATHFINDER_SEGMENTS,
    per_level: int = 200,
    *,
    seed: int = 0,
    canvas: int = PATHFINDER_CANVAS,
    distractors: int = 1,
    turn: float = 0.4,
) -> StimulusSet:
    """A balanced PathFinder stimulus set: ``per_level`` images per contour length, classes alternating.

    Parameters
    ----------
    segments : sequence of int
        Contour lengths in segments; the ``difficulty`` column.
    per_level : int
        Images per length (half ``connected``; the extra one is connected when odd).
    seed : int
        Seed of every draw (each image has its own stream ``(seed, segments, index)``).
    canvas : int
        Image side in pixels (default :data:`PATHFINDER_CANVAS`).
    distractors : int
        Contours besides A and B (default 1).
    turn : float
        Probability of a 45-degree turn between segments.

    Returns
    -------
    StimulusSet with columns ``stimulus_id``, ``category_name`` (``connected`` / ``disconnected``),
    ``connected`` (1/0), ``difficulty`` and ``segments``, ``contour_pixels``, ``marker_distance``
    (Chebyshev distance between the markers' centres, px), ``canvas``, ``seed``.

    Example
    -------
    >>> ss = pathfinder_stimuli((6,), per_level=4)
    >>> len(ss), ss.table["connected"].tolist()
    (4, [1, 0, 1, 0])
    """
    segments = [int(s) for s in segments]
    if not segments or per_level < 1:
        raise NeurofitError(f"need at least one contour length and per_level >= 1, got {segments}, {per_level}")
    rows, images = [], []
    for length in segments:
        for index in range(per_level):
            rng = np.random.default_rng([_STREAM, seed, length, index])
            connected = index % 2 == 0
            drawn = make_pathfinder(length, connected, rng, canvas=canvas, distractors=distractors, turn=turn)
            images.append(render_pathfinder(drawn, canvas))
            (r0, c0), (r1, c1) = drawn["markers"]
            rows.append({
                "stimulus_id": f"pathfinder{length:02d}_{index:05d}",
                "category_name": CLASSES[0 if connected else 1], "connected": int(connected),
                "difficulty": length, "segments": length, "contour_pixels": DASH * length + GAP * (length - 1),
                "marker_distance": max(abs(r0 - r1), abs(c0 - c1)), "canvas": canvas, "seed": seed,
            })
    name = "-".join(str(s) for s in segments)
    return StimulusSet.from_arrays(np.stack(images), pd.DataFrame(rows), degrees=8.0,
                                   identifier=f"pathfinder-{name}-n{per_level}-canvas{canvas}-seed{seed}")
