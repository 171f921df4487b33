"""Print the table of measured dynamics effects (markdown) from the committed ``dynamics.nc`` files.

Run from the repository root after regenerating the reports (README.md beside this file):

    python reports/dynamics/effects.py

Every number is read or derived from the datasets' per-image variables; CIs are 95 % percentile bootstraps
over images (1000 draws, seed 0), paired where both quantities are measured on the same images.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import xarray as xr

from neurofit.stats.bootstrap import mean_ci

HERE = Path(__file__).resolve().parent
RUNS = ("bl-holdout", "bl-synthetic-ventral", "convrnn_rgc-holdout", "convrnn_rgc-synthetic-ventral",
        "halting_convgru-holdout", "halting_convgru-synthetic-ventral")
N_BOOT = 1000


def _ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _mean(values: np.ndarray, digits: int = 3) -> str:
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).any():
        return "n/a"
    m, lo, hi = mean_ci(values, n_boot=N_BOOT, seed=0)
    return _ci(float(m), float(lo), float(hi), digits)


def _difference(a: np.ndarray, b: np.ndarray) -> str:
    """Mean(a) - mean(b) of two independent groups with a percentile bootstrap CI (groups resampled apart)."""
    a = a[np.isfinite(a)]
    b = b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return "n/a"
    rng = np.random.default_rng(0)
    draws = (a[rng.integers(0, a.size, (N_BOOT, a.size))].mean(1)
             - b[rng.integers(0, b.size, (N_BOOT, b.size))].mean(1))
    low, high = np.percentile(draws, [2.5, 97.5])
    return _ci(float(a.mean() - b.mean()), float(low), float(high))


def effects(ds: xr.Dataset) -> dict[str, str]:
    """The effects of one run, as formatted strings."""
    correct = ds["correct"].values.astype(bool)  # [T, N]
    driven = ds["readout_driven"].values
    start = int(np.flatnonzero(driven)[0])
    last = correct.shape[0] - 1
    first = ds["first_correct_step"].values
    norms = ds["norm"].values
    margin = ds["margin"].values
    out = {
        "images": str(correct.shape[1]),
        "steps (first driven)": f"{correct.shape[0]} ({start})",
        "accuracy first driven step": _ci(float(ds.accuracy[start]), float(ds.accuracy_low[start]),
                                          float(ds.accuracy_high[start])),
        "accuracy last step": _ci(float(ds.accuracy[last]), float(ds.accuracy_low[last]),
                                  float(ds.accuracy_high[last])),
        "accuracy gain last - first driven (paired)": _mean(correct[last].astype(float) - correct[start]),
        "movement at last step, images correct earlier": _ci(
            float(ds.movement_after_correct[last]), float(ds.movement_after_correct_low[last]),
            float(ds.movement_after_correct_high[last])),
        "movement after first correct / own last-step norm": _mean(
            ds["movement_after_first_correct"].values / norms[last]),
        "last-step norm correct": _ci(float(ds.norm_correct[last]), float(ds.norm_correct_low[last]),
                                      float(ds.norm_correct_high[last])),
        "last-step norm incorrect": _ci(float(ds.norm_incorrect[last]), float(ds.norm_incorrect_low[last]),
                                        float(ds.norm_incorrect_high[last])),
        "norm correct - incorrect (last step)": _difference(norms[last][correct[last]], norms[last][~correct[last]]),
    }
    later = np.isfinite(first) & (first > start)
    never = ~np.isfinite(first)
    out["later-corrected images (n)"] = str(int(later.sum()))
    out["margin at first driven step: later-corrected"] = _mean(np.where(later, margin[start], np.nan))
    out["margin at first driven step: never correct"] = _mean(np.where(never, margin[start], np.nan))
    out["margin at last step: later-corrected"] = _mean(np.where(later, margin[last], np.nan))
    out["transitions misclassified->corrected / corrected->misclassified"] = (
        f"{int(ds.corrected.sum())} / {int(ds.misclassified.sum())}")
    if "halting_rho" in ds:
        for measure in ds["difficulty_measure"].values:
            s = ds.sel(difficulty_measure=measure)
            out[f"halting step vs {measure}: Spearman rho"] = (
                _ci(float(s.halting_rho), float(s.halting_rho_low), float(s.halting_rho_high))
                + f", p={float(s.halting_rho_p):.2g}")
        out["mean halting step per level"] = "; ".join(
            f"{lvl}: {_ci(float(m), float(lo), float(hi), 2)}" for lvl, m, lo, hi in zip(
                ds["difficulty_level"].values, ds.level_mean_halting_step.values,
                ds.level_mean_halting_step_low.values, ds.level_mean_halting_step_high.values, strict=True))
        out["ACT accuracy"] = _mean(ds["act_correct"].values.astype(float))
    if "extrap_act_accuracy" in ds:
        steps = ds["max_steps"].values
        for i, level in enumerate(ds["extrapolation_level"].values):
            diff = float(ds.extrapolation_difficulty[i])
            names = ("extrap_act_accuracy", "extrap_act_accuracy_low", "extrap_act_accuracy_high")
            cells = [f"{int(k)} steps: {_ci(*(float(ds[v][i, j]) for v in names))} "
                     f"(halted {float(ds.extrap_fraction_halted[i, j]):.2f})" for j, k in enumerate(steps)]
            out[f"zero-shot ACT accuracy, level V{int(level)} (difficulty {diff:g})"] = "; ".join(cells)
    if "solution_time_rho" in ds:
        for measure in ds["model_measure"].values:
            s = ds.sel(model_measure=measure)
            out[f"neural solution time vs {measure}: Spearman rho"] = (
                _ci(float(s.solution_time_rho), float(s.solution_time_low), float(s.solution_time_high))
                + f", p={float(s.solution_time_p):.2g}, n={int(s.solution_time_n)}")
    return out


def main() -> int:
    columns: dict[str, dict[str, str]] = {}
    for run in RUNS:
        path = HERE / run / "dynamics.nc"
        if not path.is_file():
            print(f"missing {path} (regenerate it with the command in README.md)", file=sys.stderr)
            continue
        with xr.open_dataset(path) as ds:
            columns[run] = effects(ds.load())
    rows = list(dict.fromkeys(key for table in columns.values() for key in table))
    print("| effect | " + " | ".join(f"`{run}`" for run in columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for key in rows:
        print(f"| {key} | " + " | ".join(table.get(key, "—") for table in columns.values()) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
