"""Mazes graded by size: is the goal reachable from the start?

Papers
------
* Schwarzschild, Borgnia, Gupta, Bansal, Emam, Huang, Goldblum & Goldstein (2021). Datasets for studying
  generalization from easy to hard examples. arXiv:2108.06011. (Mazes of growing size; a maze of size
  ``n`` is an ``n x n`` grid of squares counting walls, so its ``(n - 1) / 2`` rooms per side; their 9x9
  mazes are 24 x 24 px images.)
* Veerabadran, Ravishankar, Tang, Raina & de Sa (2023). Adaptive recurrent vision performs zero-shot
  computation scaling to unseen difficulty levels. NeurIPS 36. (ConvRNNs trained on small mazes, tested on
  larger ones.)

The task
--------
A maze of size ``n`` (odd, >= 5) is a perfect maze (one path between any two rooms) carved by a randomised
depth-first search over ``k = (n - 1) / 2`` rooms per side: room ``(i, j)`` is the square ``(2i + 1,
2j + 1)``, and an open passage between neighbouring rooms is the square between them. A start room (red)
and a goal room (green) are drawn at random; then exactly one passage is closed:

* ``unreachable`` images: a passage on the start-goal path, so the goal is cut off;
* ``reachable`` images: a passage off that path, so the goal stays reachable by the same path.

Both classes therefore have the same number of open squares, and the answer needs the path traced.
Classes alternate within each size (balanced to within one image). Difficulty is the maze size; the
quantity it drives is ``path_length``, the number of squares moved through on the start-goal path of the
uncut maze (it grows with the maze: about 10, 19 and 29 for sizes 9, 13, 17).

Rendering: one pixel per square on a black canvas of ``canvas`` pixels (default
:data:`MAZE_CANVAS`, the same for every size so that all levels share one image size and one model sees
them all at their native resolution); the maze sits at a random position. Corridors are white, walls and
the canvas black. Every image draws from its own random stream ``(seed, size, index)``, so an image does
not depend on which other images are generated with it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from neurofit.data.stimuli import StimulusSet
from neurofit.data.tasks.solver import Solution, bfs
from neurofit.errors import NeurofitError

#: the maze sizes of the task (squares per side, walls included), easiest first
MAZE_SIZES: tuple[int, ...] = (9, 13, 17)
#: canvas side in pixels shared by every default size (the largest default level fills it)
MAZE_CANVAS = 17
START_RGB = (255, 0, 0)
GOAL_RGB = (0, 255, 0)
CLASSES = ("reachable", "unreachable")
_STREAM = 21


def carve_maze(size: int, rng: np.random.Generator) -> np.ndarray:
    """A perfect maze of ``size x size`` squares (randomised depth-first search); True = open.

    Example
    -------
    >>> grid = carve_maze(5, np.random.default_rng(0))
    >>> grid.shape, int(grid.sum())  # 4 rooms + 3 passages
    ((5, 5), 7)
    """
    if size < 5 or size % 2 == 0:
        raise NeurofitError(f"maze size must be odd and >= 5 (squares per side, walls included), got {size}")
    k = (size - 1) // 2
    grid = np.zeros((size, size), dtype=bool)
    seen = np.zeros((k, k), dtype=bool)
    first = (int(rng.integers(k)), int(rng.integers(k)))
    stack = [first]
    seen[first] = True
    grid[2 * first[0] + 1, 2 * first[1] + 1] = True
    while stack:
        i, j = stack[-1]
        options = [(i + di, j + dj) for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))
                   if 0 <= i + di < k and 0 <= j + dj < k and not seen[i + di, j + dj]]
        if not options:
            stack.pop()
            continue
        ni, nj = options[int(rng.integers(len(options)))]
        seen[ni, nj] = True
        grid[2 * ni + 1, 2 * nj + 1] = True
        grid[i + ni + 1, j + nj + 1] = True  # the passage between (i, j) and (ni, nj)
        stack.append((ni, nj))
    return grid


def _single(shape: tuple[int, int], square: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[square] = True
    return mask


def make_maze(size: int, reachable: bool, rng: np.random.Generator) -> dict:
    """One maze of the task: grid, start, goal, the closed passage and the uncut path length.

    Returns
    -------
    dict with ``grid`` (bool [size, size], True = open, after closing one passage), ``start`` and ``goal``
    (square coordinates), ``closed`` (the closed passage), ``path_length`` (squares moved through on the
    start-goal path of the uncut maze) and ``reachable``.

    Example
    -------
    >>> m = make_maze(9, False, np.random.default_rng(0))
    >>> m["reachable"], bool(m["grid"][m["closed"]])
    (False, False)
    """
    k = (size - 1) // 2
    for _ in range(100):
        grid = carve_maze(size, rng)
        rooms = rng.choice(k * k, size=2, replace=False)
        start = (2 * int(rooms[0] // k) + 1, 2 * int(rooms[0] % k) + 1)
        goal = (2 * int(rooms[1] // k) + 1, 2 * int(rooms[1] % k) + 1)
        solution = bfs(grid, _single(grid.shape, start), _single(grid.shape, goal))
        # passages are the open squares with one even coordinate; those on the path are path squares
        passages = np.argwhere(grid & ((np.indices(grid.shape).sum(0) % 2) == 1))
        on_path = {p for p in solution.path if (p[0] + p[1]) % 2 == 1}
        candidates = [tuple(int(v) for v in p) for p in passages if (tuple(p) in on_path) != reachable]
        if candidates:
            closed = candidates[int(rng.integers(len(candidates)))]
            grid[closed] = False
            return {"grid": grid, "start": start, "goal": goal, "closed": closed,
                    "path_length": solution.distance, "reachable": reachable}
    raise NeurofitError(f"could not draw a size-{size} maze with an off-path passage in 100 tries")


def render_maze(maze: dict, canvas: int, offset: tuple[int, int]) -> np.ndarray:
    """The maze as a uint8 RGB image ``[canvas, canvas, 3]`` with its top-left square at ``offset``.

    Example
    -------
    >>> m = make_maze(5, True, np.random.default_rng(1))
    >>> render_maze(m, 8, (0, 0)).shape
    (8, 8, 3)
    """
    grid = maze["grid"]
    size = grid.shape[0]
    top, left = offset
    if top < 0 or left < 0 or top + size > canvas or left + size > canvas:
        raise NeurofitError(f"a size-{size} maze at {offset} does not fit a {canvas}-px canvas")
    image = np.zeros((canvas, canvas, 3), dtype=np.uint8)
    image[top:top + size, left:left + size][grid] = 255
    image[top + maze["start"][0], left + maze["start"][1]] = START_RGB
    image[top + maze["goal"][0], left + maze["goal"][1]] = GOAL_RGB
    return image


def solve_maze_image(image: np.ndarray) -> Solution:
    """BFS on a rendered maze image: from the red pixel to the green one through non-black pixels.

    Example
    -------
    >>> m = make_maze(9, True, np.random.default_rng(2))
    >>> solve_maze_image(render_maze(m, 12, (1, 2))).reachable
    True
    """
    image = np.asarray(image)
    start = np.all(image == START_RGB, axis=-1)
    goal = np.all(image == GOAL_RGB, axis=-1)
    if start.sum() != 1 or goal.sum() != 1:
        raise NeurofitError(f"a maze image needs exactly one start (red) and one goal (green) pixel, found "
                            f"{int(start.sum())} and {int(goal.sum())}")
    return bfs(image.any(axis=-1), start, goal, "von_neumann")


def maze_stimuli(
    sizes: Sequence[int] = MAZE_SIZES,
    per_size: int = 200,
    *,
    seed: int = 0,
    canvas: int | None = None,
) -> StimulusSet:
    """A balanced stimulus set of mazes at each size: ``per_size`` images per size, classes alternating.

    Parameters
    ----------
    sizes : sequence of odd int
        Maze sizes (squares per side, walls included); the ``difficulty`` column.
    per_size : int
        Images per size (half ``reachable``, half ``unreachable``; the extra one is reachable when odd).
    seed : int
        Seed of every draw (each image has its own stream ``(seed, size, index)``).
    canvas : int, optional
        Image side in pixels (default :data:`MAZE_CANVAS`, or the largest size when that is larger).

    Returns
    -------
    StimulusSet with columns ``stimulus_id``, ``category_name`` (``reachable`` / ``unreachable``: the class),
    ``reachable`` (1/0), ``difficulty`` and ``maze_size`` (the size), ``path_length``, ``start_row``,
    ``start_col``, ``goal_row``, ``goal_col`` (pixels), ``canvas``, ``seed``.

    Example
    -------
    >>> ss = maze_stimuli((9, 13), per_size=4, seed=0)
    >>> len(ss), ss.table.groupby("difficulty")["reachable"].sum().tolist()
    (8, [2, 2])
    """
    sizes = [int(s) for s in sizes]
    if not sizes or per_size < 1:
        raise NeurofitError(f"need at least one maze size and per_size >= 1, got {sizes} and {per_size}")
    canvas = max(MAZE_CANVAS, max(sizes)) if canvas is None else int(canvas)
    if max(sizes) > canvas:
        raise NeurofitError(f"maze size {max(sizes)} does not fit a {canvas}-px canvas; pass a larger canvas")
    rows, images = [], []
    for size in sizes:
        for index in range(per_size):
            rng = np.random.default_rng([_STREAM, seed, size, index])
            reachable = index % 2 == 0
            maze = make_maze(size, reachable, rng)
            offset = (int(rng.integers(canvas - size + 1)), int(rng.integers(canvas - size + 1)))
            images.append(render_maze(maze, canvas, offset))
            rows.append({
                "stimulus_id": f"maze{size:02d}_{index:05d}", "category_name": CLASSES[0 if reachable else 1],
                "reachable": int(reachable), "difficulty": size, "maze_size": size,
                "path_length": maze["path_length"],
                "start_row": offset[0] + maze["start"][0], "start_col": offset[1] + maze["start"][1],
                "goal_row": offset[0] + maze["goal"][0], "goal_col": offset[1] + maze["goal"][1],
                "canvas": canvas, "seed": seed,
            })
    name = "-".join(str(s) for s in sizes)
    return StimulusSet.from_arrays(np.stack(images), pd.DataFrame(rows), degrees=8.0,
                                   identifier=f"mazes-{name}-n{per_size}-canvas{canvas}-seed{seed}")
