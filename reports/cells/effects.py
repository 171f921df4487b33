"""Local recurrent cells at matched parameter counts (Nayebi et al. 2018): training, runs, tables, figure.

Run from the repository root (README.md beside this file gives the exact commands and the measured values):

    python reports/cells/effects.py --train           # the six `neurofit train` runs (the shipped cells_* checkpoints)
    python reports/cells/effects.py --run --figure    # accuracy and scoring runs, comparisons, tables and figure
    python reports/cells/effects.py --figure          # tables and figure from the committed summaries
    python reports/cells/effects.py --print-commands  # every `neurofit` command --train and --run run

The six models (``neurofit.analysis.cells``) share one ConvRNN backbone (``conv1``, ``conv2`` feedforward,
16 and 32 channels) with two layers of one local cell on top (``conv3``, ``conv4``), each cell at the width
that gives it the parameter count of the reciprocal gated cell at width 22 (:data:`MATCHED_WIDTHS`), all
trained with the same budget (data, epochs, optimiser, seed).

``--run`` runs, through ``neurofit.cli.main`` (the argument lists ``--print-commands`` prints):

* ``neurofit analyze robustness`` on clean images only (no noise, no attacks) for the held-out accuracy at
  every step, per image (``<out>/<cell>/robustness.nc``): every model sees the same images (checked through
  each run's ``dataset_sha256``), so differences are paired per image;
* ``neurofit score`` on each benchmark (default the synthetic-ventral V4 and IT temporal benchmarks) with the
  cell layers mapped to the regions (``V4=conv3``, ``IT=conv4``; latency offsets committed as usual): the
  ScoreSets go to ``--scores`` (large: not committed);
* ``neurofit compare`` of every cell with the reciprocal gated cell per benchmark (``<out>/compare-<benchmark>.nc``:
  median paired per-site difference per bin, bootstrap over stimuli and sites, Benjamini-Hochberg).

It then writes the small summaries the tables are drawn from: ``predictivity.csv`` (median ceiled score per
region and bin with the ScoreSet's own 95 % CI over stimuli, reliability, driven) and ``windows.csv`` (per
region the mean over the bins that are reliable and driven in every model, with its CI from
:func:`neurofit.scoreset.summarise`). Accuracy CIs: 95 % percentile bootstrap over images (``--n-boot``
draws, seed 0), differences paired per image. Small settings (``--epochs``, ``--size``, ``--train-stimuli``,
``--stimuli``, ``--benchmarks``, ``--n-boot``) make a quick rerun possible (tests/test_seed_cells.py).
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from neurofit.analysis.cells import CELL_ORDER, MATCHED_WIDTHS, cell_config
from neurofit.stats.bootstrap import mean_ci

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PREFIX = "cells_"
REFERENCE = "rgc"
BENCHMARKS = ("synthetic-ventral-v4-temporal", "synthetic-ventral-it-temporal")
#: region -> the model layer scored against it (the two cell layers)
LAYERS = {"V4": "conv3", "IT": "conv4"}
NAMES = {"vanilla": "vanilla RNN", "lstm": "LSTM", "gru": "GRU", "ugrnn": "UGRNN", "timedecay": "time-decay",
         "rgc": "reciprocal gated"}


def checkpoint(args: argparse.Namespace, cell: str) -> Path:
    return Path(args.checkpoints) / f"{PREFIX}{cell}.safetensors"


def train_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Cell -> the ``neurofit train`` argument list of its checkpoint (the same budget for every cell)."""
    out = {}
    for cell in CELL_ORDER:
        channels = cell_config(cell, MATCHED_WIDTHS[cell])["channels"]
        out[f"train {cell}"] = [
            "train", "--model", f"convrnn_{cell}", "--arg", "channels=[" + ",".join(map(str, channels)) + "]",
            "--arg", f"steps={args.steps}", "--stimuli", args.train_stimuli, "--epochs", str(args.epochs),
            "--lr", "0.005", "--size", str(args.size), "--seed", "0", "--threads", "1", "--no-progress",
            "--out", str(checkpoint(args, cell))]
    return out


def _regions(benchmark: str) -> list[str]:
    from neurofit.scoring.benchmark import load_benchmark

    return list(load_benchmark(benchmark).regions)


def _bench_name(benchmark: str) -> str:
    return Path(benchmark).stem if benchmark.endswith(".toml") else benchmark


def score_path(args: argparse.Namespace, cell: str, benchmark: str) -> Path:
    return Path(args.scores) / f"{PREFIX}{cell}-{_bench_name(benchmark)}.nc"


def compare_path(args: argparse.Namespace, benchmark: str) -> Path:
    return Path(args.out) / f"compare-{_bench_name(benchmark)}.nc"


def run_commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Run name -> ``neurofit`` argument list: accuracy runs, score runs, then the comparisons."""
    out: dict[str, list[str]] = {}
    for cell in CELL_ORDER:
        out[f"accuracy {cell}"] = [
            "analyze", "robustness", "--model", str(checkpoint(args, cell)), "--stimuli", args.stimuli,
            "--noise", "--fgsm", "--pgd", "--n-boot", str(args.n_boot), "--no-figures",
            "--out", str(Path(args.out) / cell)]
    for benchmark in args.benchmarks:
        layers = [f"{region}={LAYERS[region]}" for region in _regions(benchmark)]
        for cell in CELL_ORDER:
            out[f"score {cell} {_bench_name(benchmark)}"] = [
                "score", "--model", str(checkpoint(args, cell)), "--benchmark", benchmark, "--layers", *layers,
                "--quiet", "--out", str(score_path(args, cell, benchmark))]
        others = [str(score_path(args, cell, benchmark)) for cell in CELL_ORDER if cell != REFERENCE]
        out[f"compare {_bench_name(benchmark)}"] = [
            "compare", str(score_path(args, REFERENCE, benchmark)), *others, "--n-boot", str(args.n_boot),
            "--quiet", "--out", str(compare_path(args, benchmark))]
    return out


# ------------------------------------------------------------------------------------------------ summaries
def write_summaries(args: argparse.Namespace) -> None:
    """``predictivity.csv`` and ``windows.csv`` from the ScoreSets in ``--scores``."""
    from neurofit.scoreset import (
        bin_reliability,
        common_bins,
        driven,
        read_scoreset,
        region_aggregate,
        site_values,
        summarise,
        time_bins,
    )

    bins_rows, window_rows = [], []
    for benchmark in args.benchmarks:
        sets = {cell: read_scoreset(score_path(args, cell, benchmark)) for cell in CELL_ORDER}
        reference = sets[REFERENCE]
        reliability = bin_reliability(reference)
        start, end = time_bins(reference)
        for region in _regions(benchmark):
            common = common_bins(list(sets.values()), region, "ceiled", reliability)
            for cell, ds in sets.items():
                if ds.attrs["dataset_sha256"] != reference.attrs["dataset_sha256"]:
                    sys.exit(f"{cell} was scored on other data than {REFERENCE}: rerun with --run")
                median = region_aggregate(ds, "median_ceiled", region)
                low = region_aggregate(ds, "median_ceiled_low", region)
                high = region_aggregate(ds, "median_ceiled_high", region)
                is_driven = driven(site_values(ds, "ceiled", region))
                layer = ds.attrs["committed_layers"][region]
                offset = ds.attrs["committed_offsets_ms"][region]
                for b in range(len(start)):
                    bins_rows.append({"cell": cell, "benchmark": _bench_name(benchmark), "region": region,
                                      "start_ms": f"{start[b]:g}", "end_ms": f"{end[b]:g}",
                                      "median_ceiled": _num(median[b]), "low": _num(low[b]), "high": _num(high[b]),
                                      "reliable": int(reliability.reliable[region][b]), "driven": int(is_driven[b]),
                                      "layer": layer, "offset_ms": offset})
                s = summarise(ds, region, common, "ceiled", n_boot=args.n_boot, seed=0)
                window_rows.append({"cell": cell, "benchmark": _bench_name(benchmark), "region": region,
                                    "bins": int(common.sum()), "window": _ranges(start, end, common),
                                    "mean_ceiled": _num(s.value), "low": _num(s.low), "high": _num(s.high),
                                    "ci": s.how, "layer": layer, "offset_ms": offset})
    _write_csv(Path(args.out) / "predictivity.csv", bins_rows)
    _write_csv(Path(args.out) / "windows.csv", window_rows)


def _ranges(start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> str:
    from neurofit.scoreset import ranges

    return ranges(start, end, mask) or "none"


def _num(x: float) -> str:
    return "nan" if not np.isfinite(x) else f"{float(x):.6g}"


def _write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        sys.exit(f"{path} is missing: rerun with --run")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


# ------------------------------------------------------------------------------------------------ tables
def _fmt(m: float, lo: float, hi: float, digits: int = 3) -> str:
    if not np.isfinite(m):
        return "n/a"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _mean(values: np.ndarray, n_boot: int) -> str:
    m, lo, hi = mean_ci(np.asarray(values, dtype=np.float64), n_boot=n_boot, seed=0)
    return _fmt(float(m), float(lo), float(hi))


def load_accuracy(args: argparse.Namespace) -> dict[str, xr.Dataset]:
    """Every cell's accuracy run; they must have been made on the same images."""
    from neurofit.data.io import read_dataset

    runs = {cell: read_dataset(Path(args.out) / cell / "robustness.nc") for cell in CELL_ORDER}
    first = runs[REFERENCE]
    for cell, ds in runs.items():
        if ds.attrs["dataset_sha256"] != first.attrs["dataset_sha256"]:
            sys.exit(f"{cell} was run on other images than {REFERENCE} (dataset_sha256 differs): rerun with --run")
        if ds.sizes["step"] != first.sizes["step"]:
            sys.exit(f"{cell} was run for other steps than {REFERENCE}: rerun with --run")
    return runs


def models(args: argparse.Namespace, steps: int) -> dict[str, dict]:
    """Per cell: width, trainable parameters, first driven step of the readout, epochs (from the checkpoint)."""
    from neurofit.models.checkpoint import load_model
    from neurofit.models.train import checkpoint_metadata

    out = {}
    for cell in CELL_ORDER:
        path = checkpoint(args, cell)
        net = load_model(path)
        if net.config["cell"] != cell or net.config["channels"] != cell_config(cell, MATCHED_WIDTHS[cell])["channels"]:
            sys.exit(f"{path} is not the {cell} cell at width {MATCHED_WIDTHS[cell]}: retrain it with --train")
        meta = checkpoint_metadata(path)
        out[cell] = {"width": MATCHED_WIDTHS[cell], "params": sum(p.numel() for p in net.parameters()),
                     "start": int(net.time_map(steps=steps).first_driven[net.layers[-1]]),
                     "epochs": meta.get("epochs"), "seconds": meta.get("seconds")}
    return out


def accuracy_table(runs: dict[str, xr.Dataset], info: dict[str, dict], windows: list[dict], n_boot: int
                   ) -> list[str]:
    steps = runs[REFERENCE].sizes["step"]
    start = max(i["start"] for i in info.values())
    regions = list(dict.fromkeys(w["region"] for w in windows))
    header = (["cell", "width", "parameters"] + [f"accuracy, step {t}" for t in range(start, steps)]
              + ["accuracy, mean over driven steps"] + [f"{r} ceiled score, mean over common bins" for r in regions])
    rows = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for cell, ds in runs.items():
        correct = ds["correct"].values[0]  # clean: [step, image]
        cells = [NAMES[cell], str(info[cell]["width"]), f"{info[cell]['params']:,}"]
        cells += [_mean(correct[t], n_boot) for t in range(start, steps)] + [_mean(correct[start:].mean(0), n_boot)]
        for region in regions:
            w = next(w for w in windows if w["cell"] == cell and w["region"] == region)
            cells.append(_fmt(float(w["mean_ceiled"]), float(w["low"]), float(w["high"])))
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def difference_table(runs: dict[str, xr.Dataset], info: dict[str, dict], n_boot: int,
                     comparisons: dict[str, xr.Dataset]) -> list[str]:
    steps = runs[REFERENCE].sizes["step"]
    start = max(i["start"] for i in info.values())
    header = ([f"cell - {NAMES[REFERENCE]}"] + [f"accuracy, step {t}" for t in range(start, steps)]
              + ["accuracy, mean over driven steps"])
    regions = [(name, str(r)) for name, cmp in comparisons.items() for r in cmp.region.values]
    header += [f"{r}: bins better / worse / tested (FDR 0.05)" for _, r in regions]
    rows = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    reference = runs[REFERENCE]["correct"].values[0]
    for cell, ds in runs.items():
        if cell == REFERENCE:
            continue
        diff = ds["correct"].values[0] - reference
        cells = [f"{NAMES[cell]} - {NAMES[REFERENCE]}"]
        cells += [_mean(diff[t], n_boot) for t in range(start, steps)] + [_mean(diff[start:].mean(0), n_boot)]
        for name, region in regions:
            c = _comparison(comparisons[name], cell).sel(region=region)
            sig, tested = c["significant"].values & c["tested"].values, c["tested"].values
            better = int((sig & (c["median_difference"].values > 0)).sum())
            worse = int((sig & (c["median_difference"].values < 0)).sum())
            cells.append(f"{better} / {worse} / {int(tested.sum())}")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _comparison(result: xr.Dataset, cell: str) -> xr.Dataset:
    """The comparison of ``cell`` with the reference in a ``neurofit compare`` result (B = the cell)."""
    others = [c for c in CELL_ORDER if c != REFERENCE]
    if result.sizes["comparison"] != len(others):
        sys.exit(f"a comparison file has {result.sizes['comparison']} comparisons, not {len(others)}: rerun with --run")
    return result.isel(comparison=others.index(cell))


def predictivity_table(rows: list[dict], region: str) -> list[str]:
    mine = [r for r in rows if r["region"] == region]
    bins = list(dict.fromkeys((r["start_ms"], r["end_ms"]) for r in mine))
    header = ["bin (ms)", "reliable"] + [NAMES[c] for c in CELL_ORDER]
    out = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for s, e in bins:
        here = {r["cell"]: r for r in mine if (r["start_ms"], r["end_ms"]) == (s, e)}
        cells = [f"{s}-{e}", "yes" if here[REFERENCE]["reliable"] == "1" else "no"]
        for cell in CELL_ORDER:
            r = here[cell]
            cells.append(_fmt(float(r["median_ceiled"]), float(r["low"]), float(r["high"]))
                         if r["driven"] == "1" else "not driven")
        out.append("| " + " | ".join(cells) + " |")
    return out


def compare_table(result: xr.Dataset, region: str) -> list[str]:
    start, end = result["time_bin_start"].values, result["time_bin_end"].values
    level = result.attrs.get("ci_level", 0.95)
    header = ["bin (ms)"] + [f"{NAMES[c]} - {NAMES[REFERENCE]}" for c in CELL_ORDER if c != REFERENCE]
    out = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for b in range(len(start)):
        cells = [f"{start[b]:g}-{end[b]:g}"]
        for cell in CELL_ORDER:
            if cell == REFERENCE:
                continue
            c = _comparison(result, cell).sel(region=region).isel(time_bin=b)
            if not bool(c["tested"]):
                cells.append("not tested")
                continue
            text = _fmt(float(c["median_difference"]), float(c["ci_low"]), float(c["ci_high"]))
            cells.append(text + (" *" if bool(c["significant"]) else ""))
        out.append("| " + " | ".join(cells) + " |")
    out.append(f"\n(* significant after {result.attrs.get('correction', 'the correction')}; intervals at "
               f"{_level_text(level)} coverage, the level that agrees with the correction)")
    return out


def _level_text(level) -> str:
    try:
        return f"{float(level):.4g}"
    except (TypeError, ValueError):
        return str(level)


# ------------------------------------------------------------------------------------------------ figure
def figure(runs: dict[str, xr.Dataset], info: dict[str, dict], rows: list[dict], stem: Path, n_boot: int,
           formats: list[str]) -> None:
    """Accuracy per step, paired accuracy differences from the reciprocal gated cell, predictivity per bin."""
    from neurofit.report.style import DOUBLE_COLUMN_IN, close, colour, neurofit_style, new_figure, save_figure

    regions = list(dict.fromkeys(r["region"] for r in rows))
    first = runs[REFERENCE]
    steps = first.sizes["step"]
    start = max(i["start"] for i in info.values())
    chance = 1.0 / max(len(first.attrs.get("classes", [])), 1)
    with neurofit_style():
        fig = new_figure(DOUBLE_COLUMN_IN, 4.6, nrows=2, ncols=2)
        acc_ax, diff_ax, *region_axes = fig.axes
        reference = first["correct"].values[0]
        others = [c for c in CELL_ORDER if c != REFERENCE]
        for i, cell in enumerate(CELL_ORDER):
            col = "black" if cell == REFERENCE else colour(i)
            correct = runs[cell]["correct"].values[0]
            x = np.arange(start, steps) + (i - 2.5) * 0.05
            m, lo, hi = mean_ci(correct[start:], n_boot=n_boot, seed=0)
            acc_ax.errorbar(x, m, yerr=np.vstack([m - lo, hi - m]), color=col, marker="o", markersize=2.5,
                            capsize=1.5, label=NAMES[cell])
            if cell != REFERENCE:
                k = others.index(cell)
                diff = correct[start:] - reference[start:]
                m, lo, hi = mean_ci(diff, n_boot=n_boot, seed=0)
                xs = np.arange(start, steps) + (k - 2) * 0.12
                diff_ax.errorbar(xs, m, yerr=np.vstack([m - lo, hi - m]), color=col, marker="o", markersize=2.5,
                                 capsize=1.5, linestyle="none", label=f"{NAMES[cell]} - RGC")
            for ax, region in zip(region_axes, regions):
                mine = [r for r in rows if r["cell"] == cell and r["region"] == region]
                t = np.array([(float(r["start_ms"]) + float(r["end_ms"])) / 2 for r in mine])
                m, lo, hi = (np.array([float(r[k]) for r in mine]) for k in ("median_ceiled", "low", "high"))
                ax.plot(t, m, color=col, label=NAMES[cell])
                ax.fill_between(t, lo, hi, color=col, alpha=0.12, linewidth=0)
        for ax, region in zip(region_axes, regions):
            ref = [r for r in rows if r["cell"] == REFERENCE and r["region"] == region]
            width = float(ref[0]["end_ms"]) - float(ref[0]["start_ms"])
            for r in ref:
                if r["reliable"] != "1":
                    ax.axvspan(float(r["start_ms"]), float(r["start_ms"]) + width, color="0.92", linewidth=0,
                               zorder=0)
            ax.axhline(0, color="black", linewidth=0.6)
            ax.set_xlabel("Time after stimulus onset (ms)")
            ax.set_ylabel("Median ceiled score (95% CI)")
            ax.set_title(f"{region} predictivity per 10 ms bin ({LAYERS.get(region, '?')}; grey: unreliable ceiling)",
                         fontsize=7)
        acc_ax.axhline(chance, color="black", linestyle=":", linewidth=0.8)
        acc_ax.set_ylim(0, 1)
        acc_ax.set_xticks(np.arange(start, steps))
        acc_ax.set_xlabel("Model step (readout driven)")
        acc_ax.set_ylabel("Held-out accuracy (95% CI)")
        acc_ax.set_title(f"Accuracy per step ({first.sizes['presentation']} held-out images)", fontsize=7)
        acc_ax.legend(fontsize=5, ncol=2)
        diff_ax.axhline(0, color="black", linewidth=0.6)
        diff_ax.set_xticks(np.arange(start, steps))
        diff_ax.set_xlabel("Model step")
        diff_ax.set_ylabel("Accuracy difference (95% CI)")
        diff_ax.set_title("Paired per image: cell - reciprocal gated cell", fontsize=7)
        diff_ax.legend(fontsize=5, ncol=2)
        save_figure(fig, stem, formats=tuple(formats))
        close(fig)


# ------------------------------------------------------------------------------------------------ main
def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", action="store_true", help="train the six checkpoints first (into --checkpoints)")
    p.add_argument("--run", action="store_true", help="run the accuracy, scoring and comparison commands first")
    p.add_argument("--figure", action="store_true", help="also draw cells_comparison.png")
    p.add_argument("--print-commands", action="store_true", help="print the commands of --train and --run and stop")
    p.add_argument("--checkpoints", default="neurofit/checkpoints", help="folder of the cells_* checkpoints")
    p.add_argument("--out", default=str(HERE.relative_to(ROOT)), help="folder of the runs, summaries, tables, figure")
    p.add_argument("--scores", default=str((HERE / "scores").relative_to(ROOT)),
                   help="folder of the ScoreSets (large; not committed)")
    p.add_argument("--benchmarks", nargs="+", default=list(BENCHMARKS), help="benchmark ids or TOML files")
    p.add_argument("--stimuli", default="holdout", help="labelled images of the accuracy runs")
    p.add_argument("--train-stimuli", default="synthetic-ventral", help="training images of --train")
    p.add_argument("--epochs", type=int, default=6, help="training epochs of --train (the same for every cell)")
    p.add_argument("--steps", type=int, default=6, help="training steps of --train")
    p.add_argument("--size", type=int, default=32, help="image side of --train")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--formats", nargs="+", default=["png"])
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    from neurofit.cli import run_commands as run

    todo = {**(train_commands(args) if args.train or args.print_commands else {}),
            **(run_commands(args) if args.run or args.print_commands else {})}
    if todo:
        if not args.print_commands:
            Path(args.out).mkdir(parents=True, exist_ok=True)
        status = run(todo, print_only=args.print_commands)
        if status or args.print_commands:
            return status
        if args.train and not args.run:
            return 0  # the checkpoints only: --run makes the runs the tables are drawn from
    if args.run:
        write_summaries(args)
    runs = load_accuracy(args)
    info = models(args, runs[REFERENCE].sizes["step"])
    rows = _read_csv(Path(args.out) / "predictivity.csv")
    windows = _read_csv(Path(args.out) / "windows.csv")
    from neurofit.data.io import read_dataset

    comparisons = {_bench_name(b): read_dataset(compare_path(args, b)) for b in args.benchmarks}
    first = runs[REFERENCE]
    start = max(i["start"] for i in info.values())
    text = [f"Images: {first.sizes['presentation']} (`{first.attrs['stimulus_set']}`), {first.sizes['step']} steps, "
            f"readout driven from step {start}, {len(first.attrs['classes'])} classes (chance "
            f"{1 / len(first.attrs['classes']):.3f}); training: {info[REFERENCE]['epochs']} epochs each. "
            f"Predictivity: " + "; ".join(f"{w['region']} ({w['benchmark']}): layer {w['layer']}, offset "
                                          f"{w['offset_ms']} ms, common bins {w['window']}"
                                          for w in windows if w["cell"] == REFERENCE) + ".\n"]
    text += ["### Held-out accuracy per driven step and predictivity (95 % CIs)\n",
             "\n".join(accuracy_table(runs, info, windows, args.n_boot)) + "\n",
             f"### Paired differences from the {NAMES[REFERENCE]} cell (accuracy paired per image; predictivity: "
             "`neurofit compare`, per bin)\n",
             "\n".join(difference_table(runs, info, args.n_boot, comparisons)) + "\n"]
    for name, result in comparisons.items():
        for region in map(str, result.region.values):
            text += [f"### {region} median ceiled score per bin ({name}; 95 % CI over stimuli)\n",
                     "\n".join(predictivity_table([r for r in rows if r["benchmark"] == name], region)) + "\n",
                     f"### {region}: cell - {NAMES[REFERENCE]} per bin (median paired per-site difference)\n",
                     "\n".join(compare_table(result, region)) + "\n"]
    print("\n".join(text))
    (Path(args.out) / "tables.md").write_text("\n".join(text))
    if args.figure:
        figure(runs, info, rows, Path(args.out) / "cells_comparison", args.n_boot, args.formats)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
