"""Readout zones of lateral vs top-down and additive vs multiplicative recurrence (Thorat et al. 2023): runs, tables.

Run from the repository root (README.md beside this file gives the commands and the measured values):

    python reports/readout-zones/effects.py --run      # the 6 analyses (neurofit analyze dynamics), then the tables
    python reports/readout-zones/effects.py            # the tables from the committed runs
    python reports/readout-zones/effects.py --print-commands

``--run`` runs ``neurofit analyze dynamics --stimuli holdout --no-extrapolation`` (through ``neurofit.cli.main``,
the argument lists ``--print-commands`` prints) on the checkpoints ``rcnn_bl``, ``rcnn_bt``, ``rcnn_blt`` and
their multiplicative twins ``rcnn_*_mult`` of ``--checkpoints``. They share training data, seed and budget, so
their held-out images agree (checked through each run's ``dataset_sha256``) and model differences are paired
per image. The per-model table is ``reports/dynamics/effects.py``'s; the paired table is computed here from the
per-image variables (``correct``, ``margin``, ``norm``, ``movement_after_first_correct``). CIs: 95 %
percentile bootstrap over images (``--n-boot`` draws, seed 0). Tables are printed and written to
``<out>/tables.md``.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from neurofit.stats.bootstrap import mean_ci

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RUNS = ("rcnn_bl", "rcnn_bt", "rcnn_blt", "rcnn_bl_mult", "rcnn_bt_mult", "rcnn_blt_mult")
#: (what, A, B): the paired table reports A - B
COMPARISONS = (
    ("top-down vs lateral (additive): BT - BL", "rcnn_bt", "rcnn_bl"),
    ("top-down vs lateral (multiplicative): BT - BL", "rcnn_bt_mult", "rcnn_bl_mult"),
    ("adding top-down to lateral (additive): BLT - BL", "rcnn_blt", "rcnn_bl"),
    ("adding lateral to top-down (additive): BLT - BT", "rcnn_blt", "rcnn_bt"),
    ("multiplicative - additive: BL", "rcnn_bl_mult", "rcnn_bl"),
    ("multiplicative - additive: BT", "rcnn_bt_mult", "rcnn_bt"),
    ("multiplicative - additive: BLT", "rcnn_blt_mult", "rcnn_blt"),
)


def _dynamics_effects():
    spec = importlib.util.spec_from_file_location("dynamics_effects", ROOT / "reports/dynamics/effects.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Run name -> the ``neurofit`` argument list of its analysis."""
    return {name: ["analyze", "dynamics", "--model", str(Path(args.checkpoints) / f"{name}.safetensors"),
                   "--stimuli", args.stimuli, "--no-extrapolation", "--n-boot", str(args.n_boot),
                   *(["--no-figures"] if args.no_figures else ["--formats", "png"]), "--quiet",
                   "--out", str(Path(args.out) / name)]
            for name in RUNS}


def _fmt(m: float, lo: float, hi: float, digits: int = 3) -> str:
    return "n/a" if not np.isfinite(m) else f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _mean(values: np.ndarray, n_boot: int) -> str:
    values = np.asarray(values, dtype=np.float64)
    if not np.isfinite(values).any():
        return "n/a"
    m, lo, hi = mean_ci(values, n_boot=n_boot, seed=0)
    return _fmt(float(m), float(lo), float(hi))


def load(folder: Path) -> dict[str, xr.Dataset]:
    from neurofit.data.io import read_dataset

    runs = {name: read_dataset(folder / name / "dynamics.nc") for name in RUNS}
    first = runs[RUNS[0]]
    for name, ds in runs.items():
        if ds.attrs["dataset_sha256"] != first.attrs["dataset_sha256"]:
            sys.exit(f"{name} was run on other images than {RUNS[0]} (dataset_sha256 differs): rerun with --run")
    return runs


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def per_image(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Per-image quantities of one run (NaN where undefined)."""
    correct = ds["correct"].values.astype(float)  # [T, N]
    start = int(np.flatnonzero(ds["readout_driven"].values)[0])
    last = correct.shape[0] - 1
    steps = np.diff(correct[start:], axis=0)
    norms = ds["norm"].values
    return {
        "correct at first driven step": correct[start],
        "correct at last step": correct[last],
        "gain last - first driven": correct[last] - correct[start],
        "margin at last step": ds["margin"].values[last],
        "corrections per image (wrong -> right)": (steps > 0).sum(0).astype(float),
        "breaks per image (right -> wrong)": (steps < 0).sum(0).astype(float),
        "first correct step": ds["first_correct_step"].values.astype(float),
        "movement after first correct / last-step norm": _ratio(ds["movement_after_first_correct"].values, norms[last]),
    }


def paired_table(runs: dict[str, xr.Dataset], n_boot: int) -> list[str]:
    values = {name: per_image(ds) for name, ds in runs.items()}
    measures = list(next(iter(values.values())))
    rows = ["| comparison (A - B, paired per image) | " + " | ".join(measures) + " |",
            "|---|" + "---|" * len(measures)]
    for what, a, b in COMPARISONS:
        # NaN (e.g. never correct) in either model leaves the image out of that measure
        cells = [_mean(values[a][m] - values[b][m], n_boot) for m in measures]
        rows.append(f"| {what} | " + " | ".join(cells) + " |")
    return rows


def model_table(runs: dict[str, xr.Dataset]) -> list[str]:
    effects = _dynamics_effects().effects
    columns = {name: effects(ds) for name, ds in runs.items()}
    keys = list(dict.fromkeys(k for table in columns.values() for k in table))
    rows = ["| effect | " + " | ".join(f"`{n}`" for n in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    rows += [f"| {k} | " + " | ".join(t.get(k, "—") for t in columns.values()) + " |" for k in keys]
    return rows


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="store_true", help="run the 6 analyses first")
    p.add_argument("--print-commands", action="store_true", help="print the analysis commands and stop")
    p.add_argument("--checkpoints", default="neurofit/checkpoints", help="folder of the rcnn_* checkpoints")
    p.add_argument("--out", default=str(HERE.relative_to(ROOT)), help="folder of the runs and tables")
    p.add_argument("--stimuli", default="holdout")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--no-figures", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    todo = commands(args)
    if args.print_commands or args.run:
        from neurofit.cli import run_commands

        status = run_commands(todo, print_only=args.print_commands)
        if status or args.print_commands:
            return status
    folder = Path(args.out)
    runs = load(folder)
    first = runs[RUNS[0]]
    text = [f"Images: {first.sizes['presentation']} (`{first.attrs['stimulus_set']}`), {first.sizes['step']} steps.\n",
            "### Per model (reports/dynamics/effects.py)\n", "\n".join(model_table(runs)) + "\n",
            "### Paired differences\n", "\n".join(paired_table(runs, args.n_boot)) + "\n"]
    print("\n".join(text))
    (folder / "tables.md").write_text("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
