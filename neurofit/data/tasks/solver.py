"""Breadth-first search on a pixel grid: the ground truth that labels every maze and PathFinder image.

The solver reads only the rendered image (walls/background black, everything else open), never the
generator's internal state, so the tests that compare its answer with the generator's label check the
images themselves: a maze whose goal the generator calls unreachable really has no open path to it, and a
PathFinder image called "connected" really has one contour joining its two markers.

* Mazes: 4-connected moves between open pixels (``neighbourhood="von_neumann"``).
* PathFinder: moves to any ink pixel within Chebyshev distance 2 (``neighbourhood="chebyshev2"``), which
  bridges the one-pixel gaps of a dashed contour; the generator keeps distinct contours at least three
  pixels apart, so no move crosses from one contour to another.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from neurofit.errors import NeurofitError

_OFFSETS: dict[str, tuple[tuple[int, int], ...]] = {
    "von_neumann": ((-1, 0), (1, 0), (0, -1), (0, 1)),
    "chebyshev2": tuple((dy, dx) for dy in range(-2, 3) for dx in range(-2, 3) if (dy, dx) != (0, 0)),
}


@dataclass(frozen=True)
class Solution:
    """What the BFS found: whether any goal pixel is reachable, and the shortest path when it is.

    Attributes
    ----------
    reachable : bool
    distance : int
        Moves on the shortest path from a start pixel to a goal pixel; -1 when unreachable.
    path : list of (row, col)
        The pixels of one shortest path, start to goal (empty when unreachable).
    visited : int
        Pixels reached from the start before the search stopped (the start's whole component when the goal
        is unreachable).
    """

    reachable: bool
    distance: int
    path: list[tuple[int, int]]
    visited: int


def bfs(open_mask: np.ndarray, start: np.ndarray, goal: np.ndarray, neighbourhood: str = "von_neumann") -> Solution:
    """Shortest path from any ``start`` pixel to any ``goal`` pixel through ``open_mask``.

    Parameters
    ----------
    open_mask : bool array [H, W]
        Pixels that may be entered (start and goal pixels count as open).
    start, goal : bool arrays [H, W]
        Source and target pixels.
    neighbourhood : {"von_neumann", "chebyshev2"}
        4-connected moves, or moves to any pixel within Chebyshev distance 2.

    Example
    -------
    >>> grid = np.array([[1, 1, 0, 1],
    ...                  [0, 1, 0, 1],
    ...                  [0, 1, 1, 1]], dtype=bool)
    >>> s = np.zeros_like(grid); s[0, 0] = True
    >>> g = np.zeros_like(grid); g[0, 3] = True
    >>> sol = bfs(grid, s, g)
    >>> sol.reachable, sol.distance, sol.path[:3]
    (True, 7, [(0, 0), (0, 1), (1, 1)])
    """
    if neighbourhood not in _OFFSETS:
        raise NeurofitError(f"neighbourhood must be one of {sorted(_OFFSETS)}, got {neighbourhood!r}")
    open_mask = np.asarray(open_mask, dtype=bool)
    start = np.asarray(start, dtype=bool)
    goal = np.asarray(goal, dtype=bool)
    if open_mask.ndim != 2 or start.shape != open_mask.shape or goal.shape != open_mask.shape:
        raise NeurofitError(f"open_mask, start and goal must be 2-d arrays of one shape, got {open_mask.shape}, "
                            f"{start.shape}, {goal.shape}")
    if not start.any() or not goal.any():
        raise NeurofitError("bfs needs at least one start and one goal pixel")
    passable = open_mask | start | goal
    h, w = passable.shape
    parent = np.full((h, w, 2), -1, dtype=np.int64)
    seen = np.zeros((h, w), dtype=bool)
    queue: deque[tuple[int, int]] = deque()
    for r, c in zip(*np.nonzero(start)):
        seen[r, c] = True
        queue.append((int(r), int(c)))
    offsets = _OFFSETS[neighbourhood]
    found: tuple[int, int] | None = None
    while queue:
        r, c = queue.popleft()
        if goal[r, c]:
            found = (r, c)
            break
        for dr, dc in offsets:
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w and passable[rr, cc] and not seen[rr, cc]:
                seen[rr, cc] = True
                parent[rr, cc] = (r, c)
                queue.append((rr, cc))
    if found is None:
        return Solution(reachable=False, distance=-1, path=[], visited=int(seen.sum()))
    path = [found]
    while parent[path[-1]][0] >= 0:
        path.append((int(parent[path[-1]][0]), int(parent[path[-1]][1])))
    path.reverse()
    return Solution(reachable=True, distance=len(path) - 1, path=path, visited=int(seen.sum()))
