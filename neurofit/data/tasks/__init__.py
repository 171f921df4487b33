"""Procedural algorithmic tasks graded by difficulty: PathFinder and mazes.

Each task returns a :class:`~neurofit.data.stimuli.StimulusSet` with a ``difficulty`` column, balanced
classes in ``category_name`` and images drawn one pixel per grid square on a fixed canvas (so a model sees
every level at its native resolution). Generation is seeded and deterministic, and every image's label is
the answer of a breadth-first search on the rendered image (:mod:`neurofit.data.tasks.solver`).

* :func:`~neurofit.data.tasks.mazes.maze_stimuli`: is the goal reachable? difficulty = maze size
  (9, 13, 17 squares per side);
* :func:`~neurofit.data.tasks.pathfinder.pathfinder_stimuli`: are the two markers on one dashed contour?
  difficulty = contour length (6, 9, 14 segments).

Example
-------
>>> ss = task_stimuli("mazes", [9], per_level=4, seed=0)
>>> ss.table["difficulty"].tolist(), ss.table["category_name"].tolist()
([9, 9, 9, 9], ['reachable', 'unreachable', 'reachable', 'unreachable'])
"""

from __future__ import annotations

from collections.abc import Sequence

from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError

#: task name -> its default difficulty levels (easiest first)
TASKS: dict[str, tuple[int, ...]] = {"mazes": (9, 13, 17), "pathfinder": (6, 9, 14)}


def native_size(stimulus_set: StimulusSet) -> int | None:
    """The canvas side of a task stimulus set (its images must be shown at this size), else None.

    Example
    -------
    >>> native_size(task_stimuli("mazes", [9], per_level=2))
    17
    """
    table = stimulus_set.table
    if "canvas" not in table.columns:
        return None
    sizes = table["canvas"].unique()
    if len(sizes) != 1:
        raise NeurofitError(f"task stimulus set {stimulus_set.identifier!r} mixes canvas sizes {sorted(sizes)}")
    return int(sizes[0])


def task_stimuli(task: str, difficulty: Sequence[int] | None = None, per_level: int = 200, *, seed: int = 0,
                 canvas: int | None = None) -> StimulusSet:
    """The stimulus set of ``task`` (``"mazes"`` or ``"pathfinder"``) at the given difficulty levels.

    Parameters
    ----------
    task : str
        ``"mazes"`` or ``"pathfinder"``.
    difficulty : sequence of int, optional
        Levels (maze sizes or contour segments); default all of the task's levels.
    per_level : int
        Images per level, classes balanced.
    seed : int
        Seed of the draws.
    canvas : int, optional
        Image side in pixels (default the task's canvas).

    Example
    -------
    >>> task_stimuli("sudoku")
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: unknown task 'sudoku'; tasks: mazes, pathfinder
    """
    if task not in TASKS:
        raise NeurofitError(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    levels = list(TASKS[task] if difficulty is None else difficulty)
    if task == "mazes":
        from neurofit.data.tasks.mazes import maze_stimuli

        return maze_stimuli(levels, per_level, seed=seed, canvas=canvas)
    from neurofit.data.tasks.pathfinder import PATHFINDER_CANVAS, pathfinder_stimuli

    return pathfinder_stimuli(levels, per_level, seed=seed, canvas=PATHFINDER_CANVAS if canvas is None else canvas)
