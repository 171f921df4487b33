"""Difficulty-graded tasks (mazes, PathFinder): determinism, balance, BFS labels, difficulty."""

import numpy as np
import pytest

from neurofit.data.tasks import TASKS, native_size, task_stimuli
from neurofit.data.tasks.mazes import carve_maze, maze_stimuli, solve_maze_image
from neurofit.data.tasks.pathfinder import make_pathfinder, pathfinder_stimuli, solve_pathfinder_image
from neurofit.data.tasks.solver import bfs
from neurofit.errors import NeurofitError


def _mask(shape, *points):
    m = np.zeros(shape, dtype=bool)
    for p in points:
        m[p] = True
    return m


def test_bfs_finds_the_shortest_path_and_reports_unreachable_goals():
    grid = np.array([[1, 1, 1, 1],
                     [1, 0, 0, 1],
                     [1, 1, 0, 1]], dtype=bool)
    sol = bfs(grid, _mask(grid.shape, (2, 0)), _mask(grid.shape, (2, 3)))
    assert sol.reachable and sol.distance == 7 and sol.path[0] == (2, 0) and sol.path[-1] == (2, 3)
    assert all(abs(a[0] - b[0]) + abs(a[1] - b[1]) == 1 for a, b in zip(sol.path, sol.path[1:]))
    grid[0, 2] = False
    cut = bfs(grid, _mask(grid.shape, (2, 0)), _mask(grid.shape, (2, 3)))
    assert not cut.reachable and cut.distance == -1 and cut.visited == 5


def test_chebyshev2_moves_bridge_one_pixel_gaps_but_not_two():
    row = np.array([[1, 1, 0, 1, 1, 0, 0, 1]], dtype=bool)
    start = _mask(row.shape, (0, 0))
    assert bfs(row, start, _mask(row.shape, (0, 4)), "chebyshev2").reachable
    assert not bfs(row, start, _mask(row.shape, (0, 7)), "chebyshev2").reachable
    assert not bfs(row, start, _mask(row.shape, (0, 4)), "von_neumann").reachable


def test_carved_mazes_are_perfect_trees():
    for size in (5, 9, 13):
        grid = carve_maze(size, np.random.default_rng(size))
        rooms = ((size - 1) // 2) ** 2
        assert grid.sum() == 2 * rooms - 1  # rooms + (rooms - 1) passages: a spanning tree
        assert not grid[0].any() and not grid[-1].any() and not grid[:, 0].any() and not grid[:, -1].any()
        first = _mask(grid.shape, (1, 1))
        assert bfs(grid, first, first).reachable
        every = bfs(grid, first, _mask(grid.shape, (size - 2, size - 2)))
        assert every.reachable


@pytest.mark.parametrize("task", sorted(TASKS))
def test_tasks_are_deterministic_per_seed_and_images_do_not_depend_on_their_neighbours(task):
    levels = TASKS[task][:2]
    a = task_stimuli(task, levels, per_level=6, seed=3)
    b = task_stimuli(task, levels, per_level=6, seed=3)
    c = task_stimuli(task, levels, per_level=6, seed=4)
    assert np.array_equal(a.arrays, b.arrays) and a.table.equals(b.table) and a.sha256() == b.sha256()
    assert not np.array_equal(a.arrays, c.arrays)
    alone = task_stimuli(task, levels[:1], per_level=6, seed=3)
    assert np.array_equal(alone.arrays, a.arrays[:6])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_classes_are_balanced_within_every_level(task):
    ss = task_stimuli(task, TASKS[task][:2], per_level=9, seed=0)
    counts = ss.table.groupby(["difficulty", "category_name"]).size()
    assert set(counts.to_numpy().tolist()) == {4, 5}
    assert ss.table.groupby("difficulty").size().tolist() == [9, 9]


def test_the_bfs_solver_labels_every_maze_as_the_generator_does():
    ss = maze_stimuli((9, 13, 17), per_size=30, seed=0)
    for image, row in zip(ss.arrays, ss.table.itertuples()):
        solution = solve_maze_image(image)
        assert solution.reachable == bool(row.reachable), row.stimulus_id
        if solution.reachable:  # the closed passage was off the path: the path is the uncut maze's
            assert solution.distance == row.path_length


def test_reachable_and_unreachable_mazes_have_the_same_number_of_open_squares():
    ss = maze_stimuli((9, 13), per_size=20, seed=1)
    open_squares = ss.arrays.any(axis=-1).sum(axis=(1, 2))
    for size in (9, 13):
        rooms = ((size - 1) // 2) ** 2
        assert set(open_squares[ss.table["maze_size"] == size].tolist()) == {2 * rooms - 2}


def test_maze_size_lengthens_the_path_it_names():
    ss = maze_stimuli((9, 13, 17), per_size=60, seed=2)
    means = ss.table.groupby("maze_size")["path_length"].mean()
    assert means[9] < means[13] < means[17]


def test_the_bfs_solver_labels_every_pathfinder_image_as_the_generator_does():
    ss = pathfinder_stimuli((6, 9), per_level=30, seed=0)
    for image, row in zip(ss.arrays, ss.table.itertuples()):
        assert solve_pathfinder_image(image).reachable == bool(row.connected), row.stimulus_id


def test_pathfinder_long_contours_are_labelled_by_the_solver_too():
    ss = pathfinder_stimuli((14,), per_level=4, seed=0)
    assert [solve_pathfinder_image(image).reachable for image in ss.arrays] == [True, False, True, False]


def test_pathfinder_classes_carry_the_same_ink_and_contour_length_sets_the_difficulty():
    ss = pathfinder_stimuli((6, 9), per_level=16, seed=1)
    ink = ss.arrays.any(axis=-1).sum(axis=(1, 2))
    for segments in (6, 9):
        # 3 contours of 2-pixel dashes, and each 3x3 marker adds 7 pixels around its endpoint and next pixel
        assert set(ink[ss.table["segments"] == segments].tolist()) == {3 * 2 * segments + 2 * 7}
    distances = {s: [solve_pathfinder_image(img).distance for img, row in zip(ss.arrays, ss.table.itertuples())
                     if row.connected and row.segments == s] for s in (6, 9)}
    assert np.mean(distances[6]) < np.mean(distances[9])
    drawn = make_pathfinder(9, True, np.random.default_rng(0))
    assert [len(c) for c in drawn["contours"]] == [18, 18, 18]


def test_task_stimuli_errors_and_native_size():
    with pytest.raises(NeurofitError, match="unknown task"):
        task_stimuli("sudoku")
    with pytest.raises(NeurofitError, match="does not fit"):
        maze_stimuli((21,), per_size=2, canvas=17)
    assert native_size(task_stimuli("pathfinder", [6], per_level=2)) == 32
    assert native_size(task_stimuli("mazes", [9, 21], per_level=2)) == 21
