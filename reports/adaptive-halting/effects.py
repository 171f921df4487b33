"""Tables and the comparison figure of the adaptive-halting reproduction, from the two ``dynamics.nc`` files.

Run from the repository root after ``neurofit analyze dynamics`` has written both runs (README.md beside
this file gives the commands):

    python reports/adaptive-halting/effects.py          # prints the markdown tables of README.md
    python reports/adaptive-halting/effects.py --figure # also draws halting_vs_fixed.png

Every number is computed from the datasets' per-image variables (``extrap_correct``, ``extrap_halting_step``
over ``max_steps`` = 1x, 2x, 4x the training steps; the stimulus coordinates ``difficulty`` and
``path_length``). Both runs were made with the same ``--seed`` and ``--task-per-level``, so they hold the
same images in the same order (checked: their ``dataset_sha256`` must agree), and model differences are
paired per image. CIs are 95 % percentile bootstraps over images (1000 draws, seed 0); Spearman rhos come
with scipy's p-value and a percentile bootstrap CI over images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

from neurofit.stats.bootstrap import mean_ci, spearman_ci

HERE = Path(__file__).resolve().parent
HALTING, FIXED = "mazes_halting_convgru", "mazes_convgru"
N_BOOT = 1000


def _fmt(m: float, lo: float, hi: float, digits: int = 3) -> str:
    if not np.isfinite(m):
        return "n/a"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _mean(values: np.ndarray, digits: int = 3) -> str:
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).any():
        return "n/a"
    m, lo, hi = mean_ci(values, n_boot=N_BOOT, seed=0)
    return _fmt(float(m), float(lo), float(hi), digits)


def _rho(a: np.ndarray, b: np.ndarray) -> str:
    out = spearman_ci(a, b, n_boot=N_BOOT, seed=0)
    if not np.isfinite(out["rho"]):
        return f"n/a (constant; n={out['n']})"
    return f"{_fmt(out['rho'], out['low'], out['high'])}, p={out['p']:.2g}, n={out['n']}"


def load() -> tuple[xr.Dataset, xr.Dataset]:
    """The halting and fixed-step runs; they must hold the same images."""
    halting = xr.load_dataset(HERE / HALTING / "dynamics.nc")
    fixed = xr.load_dataset(HERE / FIXED / "dynamics.nc")
    if halting.attrs["dataset_sha256"] != fixed.attrs["dataset_sha256"]:
        sys.exit("the two runs were made on different images (dataset_sha256 differs): rerun both with the same "
                 "--seed and --task-per-level")
    return halting, fixed


def accuracy_table(halting: xr.Dataset, fixed: xr.Dataset) -> list[str]:
    """Accuracy per level and step budget, both models, and the paired differences."""
    level = halting["difficulty"].values
    budgets = halting["max_steps"].values
    factors = halting["factor"].values
    rows = ["| maze size | steps | ACT ConvGRU (ACT output) | fixed-step ConvGRU (last step) "
            "| ACT - fixed (paired) |", "|---|---|---|---|---|"]
    for size in np.unique(level):
        members = level == size
        for j, steps in enumerate(budgets):
            a = halting["extrap_correct"].values[members, j]
            f = fixed["extrap_correct"].values[members, j]
            rows.append(f"| {size} | {steps} ({factors[j]}x) | {_mean(a)} | {_mean(f)} | {_mean(a - f)} |")
    return rows


def gain_table(halting: xr.Dataset, fixed: xr.Dataset) -> list[str]:
    """Accuracy change from the training budget to 2x and 4x, per model and level (paired per image)."""
    level = halting["difficulty"].values
    factors = halting["factor"].values
    rows = ["| maze size | model | " + " | ".join(f"{f}x - 1x" for f in factors[1:]) + " |",
            "|---|---|" + "---|" * (len(factors) - 1)]
    for size in np.unique(level):
        members = level == size
        for name, ds in (("ACT", halting), ("fixed-step", fixed)):
            correct = ds["extrap_correct"].values[members]
            cells = [_mean(correct[:, j] - correct[:, 0]) for j in range(1, len(factors))]
            rows.append(f"| {size} | {name} | " + " | ".join(cells) + " |")
    return rows


def halting_table(halting: xr.Dataset) -> list[str]:
    """Mean halting step per level at each budget, the fraction halted, and the Spearman rhos."""
    level = halting["difficulty"].values
    path = halting["path_length"].values.astype(np.float64)
    budgets = halting["max_steps"].values
    steps = halting["extrap_halting_step"].values  # [N, budgets], 0-based
    rows = ["| steps | " + " | ".join(f"size {s}: mean halting step" for s in np.unique(level))
            + " | rho(halting step, maze size) | rho(halting step, path length) |",
            "|---|" + "---|" * (len(np.unique(level)) + 2)]
    for j, budget in enumerate(budgets):
        cells = []
        for size in np.unique(level):
            members = level == size
            halted = float(np.mean(steps[members, j] < budget - 1))
            cells.append(f"{_mean(steps[members, j], 2)} (halted before the last step: {halted:.2f})")
        rows.append(f"| {budget} | " + " | ".join(cells) + f" | {_rho(steps[:, j], level)} "
                    f"| {_rho(steps[:, j], path)} |")
    return rows


def within_level_table(halting: xr.Dataset) -> list[str]:
    """Within each level: rho(halting step, path length) and halting step of correct vs wrong answers."""
    level = halting["difficulty"].values
    path = halting["path_length"].values.astype(np.float64)
    reach = halting["reachable"].values
    budgets = halting["max_steps"].values
    j = len(budgets) - 1  # the longest budget: halting steps least censored
    steps = halting["extrap_halting_step"].values[:, j]
    correct = halting["extrap_correct"].values[:, j].astype(bool)
    rows = [f"| maze size | rho(halting step, path length), {budgets[j]} steps | halting step, reachable "
            "| halting step, unreachable | halting step, correct | halting step, wrong |", "|---|---|---|---|---|---|"]
    for size in np.unique(level):
        m = level == size
        rows.append(f"| {size} | {_rho(steps[m], path[m])} | {_mean(steps[m & (reach == 1)], 2)} "
                    f"| {_mean(steps[m & (reach == 0)], 2)} | {_mean(steps[m & correct], 2)} "
                    f"| {_mean(steps[m & ~correct], 2)} |")
    return rows


def endpoint_isolated(halting: xr.Dataset) -> np.ndarray:
    """Per image: is the start or the goal square walled in on all four sides (a local sign of 'unreachable')?

    The images are drawn again from the run's stimulus set identifier (seeded) and checked against its sha256.
    """
    from neurofit.data.tasks import task_stimuli

    ident = halting.attrs["stimulus_set"]  # mazes-9-13-17-n400-canvas17-seed1000
    parts = ident.split("-")
    per_level = int(next(p for p in parts if p.startswith("n"))[1:])
    seed = int(next(p for p in parts if p.startswith("seed"))[4:])
    ss = task_stimuli("mazes", [int(v) for v in np.unique(halting["difficulty"].values)], per_level, seed=seed)
    if ss.sha256() != halting.attrs["dataset_sha256"]:
        sys.exit(f"the redrawn stimuli differ from the run's ({ident}): dataset_sha256 mismatch")
    images = ss.load_images(int(ss.table["canvas"].iloc[0])).numpy()  # [N, 3, H, W] in [0, 1]
    open_ = images.max(axis=1) > 0
    padded = np.pad(open_, ((0, 0), (1, 1), (1, 1)))
    isolated = np.zeros(len(images), dtype=bool)
    for kind in ("start", "goal"):
        r = ss.table[f"{kind}_row"].to_numpy() + 1
        c = ss.table[f"{kind}_col"].to_numpy() + 1
        i = np.arange(len(images))
        neighbours = padded[i, r - 1, c] | padded[i, r + 1, c] | padded[i, r, c - 1] | padded[i, r, c + 1]
        isolated |= ~neighbours
    return isolated


def shortcut_table(halting: xr.Dataset, fixed: xr.Dataset) -> list[str]:
    """Accuracy at the training budget on mazes whose answer is visible locally vs the rest."""
    level = halting["difficulty"].values
    reach = halting["reachable"].values == 1
    path = halting["path_length"].values
    isolated = endpoint_isolated(halting)
    groups = (("unreachable, start or goal walled in", ~reach & isolated),
              ("unreachable, both endpoints open", ~reach & ~isolated),
              ("reachable, path <= 4 squares", reach & (path <= 4)),
              ("reachable, path > 4 squares", reach & (path > 4)))
    rows = ["| maze size | images | " + " | ".join(f"{name}: n, ACT, fixed" for name, _ in groups) + " |",
            "|---|---|" + "---|" * len(groups)]
    for size in np.unique(level):
        m = level == size
        cells = []
        for _, g in groups:
            sel = m & g
            a = halting["extrap_correct"].values[sel, 0]
            f = fixed["extrap_correct"].values[sel, 0]
            cells.append(f"{int(sel.sum())}, {_mean(a)}, {_mean(f)}" if sel.any() else "0")
        rows.append(f"| {size} | {int(m.sum())} | " + " | ".join(cells) + " |")
    return rows


def answer_table(halting: xr.Dataset, fixed: xr.Dataset) -> list[str]:
    """Per size at the training budget: how often each model answers 'reachable', and the ACT halting step
    of images given each answer."""
    level = halting["difficulty"].values
    reach = halting["reachable"].values == 1
    steps = halting["extrap_halting_step"].values[:, 0]
    rows = ["| maze size | 'reachable' answers, ACT | 'reachable' answers, fixed | ACT halting step, answered "
            "reachable | ACT halting step, answered unreachable |", "|---|---|---|---|---|"]
    said = {}
    for name, ds in (("act", halting), ("fixed", fixed)):
        correct = ds["extrap_correct"].values[:, 0].astype(bool)
        said[name] = np.where(correct, reach, ~reach).astype(np.float64)
    for size in np.unique(level):
        m = level == size
        yes = m & (said["act"] == 1)
        rows.append(f"| {size} | {_mean(said['act'][m])} | {_mean(said['fixed'][m])} | {_mean(steps[yes], 2)} "
                    f"| {_mean(steps[m & ~yes.astype(bool)], 2)} |")
    return rows


def path_length_table(halting: xr.Dataset, fixed: xr.Dataset) -> list[str]:
    """Accuracy on reachable mazes (all sizes) by start-goal path length, at the training budget."""
    reach = halting["reachable"].values == 1
    path = halting["path_length"].values
    bins = ((1, 4), (5, 8), (9, 12), (13, 20), (21, 40), (41, 10_000))
    rows = ["| path length (squares) | reachable images | ACT | fixed-step |", "|---|---|---|---|"]
    for lo, hi in bins:
        sel = reach & (path >= lo) & (path <= hi)
        if not sel.any():
            continue
        label = f"{lo}-{hi}" if hi < 10_000 else f">= {lo}"
        rows.append(f"| {label} | {int(sel.sum())} | {_mean(halting['extrap_correct'].values[sel, 0])} "
                    f"| {_mean(fixed['extrap_correct'].values[sel, 0])} |")
    return rows


def per_step_table(halting: xr.Dataset, fixed: xr.Dataset) -> list[str]:
    """Each step's own readout accuracy (all 1200 images) over the training steps."""
    steps = halting["step"].values
    rows = ["| model | " + " | ".join(str(t) for t in steps) + " |", "|---|" + "---|" * len(steps)]
    for name, ds in (("ACT (per-step readout)", halting), ("fixed-step", fixed)):
        rows.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in ds["accuracy"].values) + " |")
    return rows


def figure(halting: xr.Dataset, fixed: xr.Dataset, stem: Path) -> None:
    """Accuracy per maze size at 1x/2x/4x the training steps, ACT vs fixed-step (95 % CIs), and halting step."""
    from neurofit.report.style import DOUBLE_COLUMN_IN, close, colour, neurofit_style, new_figure, save_figure

    level = halting["difficulty"].values
    sizes = np.unique(level)
    budgets = halting["max_steps"].values
    trained = set(int(v) for v in halting.attrs.get("extrapolation_train_range", "").replace(",", " ").split()
                  if v.isdigit())
    with neurofit_style():
        fig = new_figure(DOUBLE_COLUMN_IN, 2.6, nrows=1, ncols=3)
        acc_act, acc_fixed, halt_ax = fig.axes
        for ax, ds, title in ((acc_act, halting, "ACT ConvGRU (ACT output)"),
                              (acc_fixed, fixed, "Fixed-step ConvGRU (last step)")):
            for j, budget in enumerate(budgets):
                stats = [mean_ci(ds["extrap_correct"].values[level == s, j].astype(np.float64), n_boot=N_BOOT,
                                 seed=0) for s in sizes]
                m, lo, hi = (np.array([float(s[k]) for s in stats]) for k in range(3))
                x = np.arange(len(sizes)) + (j - (len(budgets) - 1) / 2) * 0.12
                ax.errorbar(x, m, yerr=np.vstack([m - lo, hi - m]), color=colour(j), marker="o", markersize=3,
                            capsize=2, label=f"{budget} steps ({halting['factor'].values[j]}x)")
            ax.axhline(0.5, color="black", linestyle=":", linewidth=0.8)
            ax.set_ylim(0.3, 1.0)
            ax.set_title(title, fontsize=7)
            ax.set_ylabel("Accuracy (95% CI)")
        for j, budget in enumerate(budgets):
            stats = [mean_ci(halting["extrap_halting_step"].values[level == s, j], n_boot=N_BOOT, seed=0)
                     for s in sizes]
            m, lo, hi = (np.array([float(s[k]) for s in stats]) for k in range(3))
            x = np.arange(len(sizes)) + (j - (len(budgets) - 1) / 2) * 0.12
            halt_ax.errorbar(x, m, yerr=np.vstack([m - lo, hi - m]), color=colour(j), marker="o", markersize=3,
                             capsize=2, label=f"{budget} steps")
        halt_ax.set_title("ACT halting step (0-based)", fontsize=7)
        halt_ax.set_ylabel("Mean halting step (95% CI)")
        for ax in fig.axes:
            ax.set_xticks(np.arange(len(sizes)), [str(s) for s in sizes])
            ax.set_xlabel("Maze size (shaded: trained)")
            for i, s in enumerate(sizes):
                if int(s) in trained:
                    ax.axvspan(i - 0.4, i + 0.4, color="0.9", zorder=0)
            ax.legend(fontsize=6)
        save_figure(fig, stem, formats=("png",))
        close(fig)


def main(argv: list[str]) -> None:
    halting, fixed = load()
    print(f"Images: {halting.sizes['presentation']} ({halting.attrs['stimulus_set']}); training steps "
          f"{halting.attrs['train_steps']}; {halting.attrs.get('extrapolation_train_range', '')}.\n")
    for title, rows in (("Accuracy per maze size and step budget", accuracy_table(halting, fixed)),
                        ("Accuracy gained by running longer (paired per image)", gain_table(halting, fixed)),
                        ("ACT halting step vs difficulty", halting_table(halting)),
                        ("Within each maze size (longest budget)", within_level_table(halting)),
                        ("Answers given, and the ACT halting step by answer", answer_table(halting, fixed)),
                        ("Local cues: accuracy at the training budget by kind of maze", shortcut_table(halting, fixed)),
                        ("Reachable mazes by path length (training budget)", path_length_table(halting, fixed)),
                        ("Readout accuracy per step (step 0 = first)", per_step_table(halting, fixed))):
        print(f"### {title}\n")
        print("\n".join(rows) + "\n")
    if "--figure" in argv:
        figure(halting, fixed, HERE / "halting_vs_fixed")


if __name__ == "__main__":
    main(sys.argv[1:])
