"""Robustness over time of B/BL/BT/BLT trained with and without dropout (Greco et al. 2025): runs, tables, figure.

Run from the repository root (README.md beside this file gives the exact commands and the measured values):

    python reports/robustness/effects.py --run --figure   # the 12 analyses, then the tables and the figure
    python reports/robustness/effects.py --figure         # tables and figure from the committed runs
    python reports/robustness/effects.py --print-commands # the `neurofit analyze robustness` commands --run runs

``--run`` runs ``neurofit analyze robustness`` (through ``neurofit.cli.main``, the same argument lists that
``--print-commands`` prints) on each checkpoint ``rcnn_<arch>`` and ``rcnn_<arch>_dropout`` of
``--checkpoints``, deterministically, and once more on each dropout-trained checkpoint with dropout kept active
at evaluation (``--dropout``; run name ``rcnn_<arch>_dropout-eval-dropout``). Every run is made on the same
images (the checkpoints share their training data and seed, so their held-out images agree: checked through
each run's ``dataset_sha256``), so model differences are paired per image.

The tables (printed, and written to ``<out>/tables.md``) are computed from the runs' per-image variables
(``correct``, ``divergence``, ``movement``); the participation-ratio differences need each model's last hidden
layer on the clean images, which this script recomputes from the checkpoints (deterministic forward passes).
CIs are 95 % percentile bootstraps over images (``--n-boot`` draws, seed 0), differences paired per image.
Small settings (``--noise``, ``--fgsm``, ``--pgd``, ``--pgd-iterations``, ``--samples``, ``--n-boot``,
``--stimuli``) make a quick rerun possible (tests/test_seed_reports.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from neurofit.stats.bootstrap import mean_ci

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ARCHS = ("b", "bl", "bt", "blt")
PREFIX = "rcnn_"
EVAL_DROPOUT = "-eval-dropout"
#: the report's settings (README.md); the library's defaults put noise 0.05 at chance for these small models
NOISE = (0.01, 0.02, 0.05, 0.1)
EPSILONS = (1 / 255, 2 / 255, 4 / 255)


def run_names() -> list[str]:
    """The 12 runs: each architecture without and with dropout in training, and the latter with dropout at test."""
    names = [f"{PREFIX}{a}" for a in ARCHS] + [f"{PREFIX}{a}_dropout" for a in ARCHS]
    return names + [f"{PREFIX}{a}_dropout{EVAL_DROPOUT}" for a in ARCHS]


def commands(args: argparse.Namespace) -> dict[str, list[str]]:
    """Run name -> the ``neurofit`` argument list of its analysis."""
    out: dict[str, list[str]] = {}
    for name in run_names():
        checkpoint = Path(args.checkpoints) / f"{name.removesuffix(EVAL_DROPOUT)}.safetensors"
        argv = ["analyze", "robustness", "--model", str(checkpoint), "--stimuli", args.stimuli,
                "--noise", *map(_num, args.noise), "--fgsm", *map(_num, args.fgsm), "--pgd", *map(_num, args.pgd),
                "--pgd-iterations", str(args.pgd_iterations), "--n-boot", str(args.n_boot),
                "--formats", *args.formats, "--out", str(Path(args.out) / name)]
        if name.endswith(EVAL_DROPOUT):
            argv[4:4] = ["--dropout", "--samples", str(args.samples)]
        if not args.figures_per_run:
            argv.insert(-2, "--no-figures")
        out[name] = argv
    return out


def _num(x: float) -> str:
    return f"{x:.10g}"


def _fmt(m: float, lo: float, hi: float, digits: int = 3) -> str:
    if not np.isfinite(m):
        return "n/a"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _mean(values: np.ndarray, n_boot: int, digits: int = 3) -> str:
    m, lo, hi = mean_ci(np.asarray(values, dtype=np.float64), n_boot=n_boot, seed=0)
    return _fmt(float(m), float(lo), float(hi), digits)


def load(folder: Path) -> dict[str, xr.Dataset]:
    """Every run's robustness.nc; they must have been made on the same images with the same conditions."""
    from neurofit.data.io import read_dataset

    runs = {name: read_dataset(folder / name / "robustness.nc") for name in run_names()}
    first = next(iter(runs.values()))
    for name, ds in runs.items():
        if ds.attrs["dataset_sha256"] != first.attrs["dataset_sha256"]:
            sys.exit(f"{name} was run on other images than {PREFIX}b (dataset_sha256 differs): rerun with --run")
        if list(ds.condition.values) != list(first.condition.values):
            sys.exit(f"{name} was run with other conditions than {PREFIX}b: rerun with --run")
    return runs


def _label(name: str) -> str:
    arch = name.removeprefix(PREFIX).split("_")[0].upper()
    if name.endswith(EVAL_DROPOUT):
        return f"{arch} + dropout (dropout on at test)"
    return f"{arch} + dropout" if "_dropout" in name else arch


def _condition_label(ds: xr.Dataset, i: int) -> str:
    kind, strength = str(ds["attack"].values[i]), float(ds["strength"].values[i])
    if kind == "clean":
        return "clean"
    if kind == "noise":
        return f"noise σ={strength:g}"
    return f"{kind.upper()} ε={strength * 255:.3g}/255"


def comparisons() -> list[tuple[str, str, str]]:
    """(what is compared, run A, run B): the table reports A - B paired per image."""
    rows = []
    for suffix, tag in (("", ""), ("_dropout", ", with dropout")):
        rows += [(f"top-down feedback{tag}: BT - B", f"{PREFIX}bt{suffix}", f"{PREFIX}b{suffix}"),
                 (f"top-down feedback{tag}: BLT - BL", f"{PREFIX}blt{suffix}", f"{PREFIX}bl{suffix}"),
                 (f"lateral{tag}: BL - B", f"{PREFIX}bl{suffix}", f"{PREFIX}b{suffix}"),
                 (f"lateral{tag}: BLT - BT", f"{PREFIX}blt{suffix}", f"{PREFIX}bt{suffix}")]
    rows += [(f"dropout in training: {a.upper()}", f"{PREFIX}{a}_dropout", f"{PREFIX}{a}") for a in ARCHS]
    rows += [(f"dropout at test: {a.upper()} + dropout", f"{PREFIX}{a}_dropout{EVAL_DROPOUT}", f"{PREFIX}{a}_dropout")
             for a in ARCHS]
    rows += [(f"dropout in training and at test: {a.upper()}", f"{PREFIX}{a}_dropout{EVAL_DROPOUT}", f"{PREFIX}{a}")
             for a in ARCHS]
    return rows


def speed_accuracy_table(runs: dict[str, xr.Dataset], n_boot: int) -> list[str]:
    steps = next(iter(runs.values())).sizes["step"]
    rows = ["| model | " + " | ".join(f"step {t}" for t in range(steps)) + " | mean over steps |",
            "|---|" + "---|" * (steps + 1)]
    for name, ds in runs.items():
        correct = ds["correct"].sel(condition="clean").values  # [step, image]
        cells = [_mean(correct[t], n_boot) for t in range(steps)] + [_mean(correct.mean(0), n_boot)]
        rows.append(f"| {_label(name)} | " + " | ".join(cells) + " |")
    return rows


def condition_table(runs: dict[str, xr.Dataset], n_boot: int) -> list[str]:
    first = next(iter(runs.values()))
    labels = [_condition_label(first, i) for i in range(first.sizes["condition"])]
    rows = ["| model | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for name, ds in runs.items():
        last = ds["correct"].values[:, -1, :]
        rows.append(f"| {_label(name)} | " + " | ".join(_mean(last[c], n_boot) for c in range(len(labels))) + " |")
    return rows


def difference_table(runs: dict[str, xr.Dataset], n_boot: int) -> list[str]:
    first = next(iter(runs.values()))
    labels = [_condition_label(first, i) for i in range(first.sizes["condition"])]
    rows = ["| comparison (A - B) | clean, mean over steps | " + " | ".join(labels) + " |",
            "|---|---|" + "---|" * len(labels)]
    for what, a, b in comparisons():
        ca, cb = runs[a]["correct"].values, runs[b]["correct"].values
        area = ca[0].mean(0) - cb[0].mean(0)
        cells = [_mean(area, n_boot)] + [_mean(ca[c, -1] - cb[c, -1], n_boot) for c in range(len(labels))]
        rows.append(f"| {what} | " + " | ".join(cells) + " |")
    return rows


def geometry_table(runs: dict[str, xr.Dataset], n_boot: int) -> list[str]:
    first = next(iter(runs.values()))
    steps = first.sizes["step"]
    sigma = first.attrs["stability_sigma"]
    rows = [f"| model | participation ratio, step 0 | participation ratio, step {steps - 1} | divergence under "
            f"noise σ={sigma:g}, step {steps - 1} | movement, step {steps - 1} |", "|---|---|---|---|---|"]
    for name, ds in runs.items():
        if name.endswith(EVAL_DROPOUT):
            continue  # the geometry is that of the deterministic network: the same as the run without
        pr = [_fmt(float(ds.participation_ratio[t]), float(ds.participation_ratio_low[t]),
                   float(ds.participation_ratio_high[t]), 2) for t in (0, steps - 1)]
        rows.append(f"| {_label(name)} | {pr[0]} | {pr[1]} | {_mean(ds['divergence'].values[-1], n_boot)} | "
                    f"{_mean(ds['movement'].values[-1], n_boot) if steps > 1 else 'n/a'} |")
    return rows


def last_hidden_activity(runs: dict[str, xr.Dataset], stimuli: str, sigmas: list[float]
                         ) -> tuple[dict[str, np.ndarray], dict[str, dict[float, np.ndarray]]]:
    """Per deterministic run: the last hidden layer at the last step on the clean images ``[N, D]``, and per
    noise level the trajectory divergence ``[T, N]`` from the clean trajectory (noise drawn as in
    ``analyze_robustness``: seed ``seed + first image of the batch``)."""
    import torch

    from neurofit.analysis.dynamics import resolve_model, resolve_stimuli
    from neurofit.analysis.robustness import correct_per_step, gaussian_noise, trajectory_divergence

    hidden, divergence = {}, {}
    for name, ds in runs.items():
        if name.endswith(EVAL_DROPOUT):
            continue
        net, meta = resolve_model(ds.attrs["checkpoint"])
        stimulus_set, _ = resolve_stimuli(stimuli, meta)
        if stimulus_set.sha256() != ds.attrs["dataset_sha256"]:
            sys.exit(f"--stimuli {stimuli} are not the images {name} was run on")
        images = stimulus_set.load_images(net.input_size)
        kwargs = dict(steps=int(ds.attrs["steps"]), layer=ds.attrs["hidden_layer"], batch_size=64)
        with torch.no_grad():
            _, clean = correct_per_step(net, images, ds["label"].values, **kwargs)
            divergence[name] = {}
            for sigma in sigmas:
                noisy = torch.cat([gaussian_noise(images[i:i + 64], sigma, seed=int(ds.attrs["seed"]) + i)
                                   for i in range(0, len(images), 64)])
                _, moved = correct_per_step(net, noisy, ds["label"].values, **kwargs)
                divergence[name][sigma] = trajectory_divergence(clean, moved)
        hidden[name] = clean[-1]
    return hidden, divergence


def stability_table(divergence: dict[str, dict[float, np.ndarray]], n_boot: int) -> list[str]:
    sigmas = list(next(iter(divergence.values())))
    steps = next(iter(next(iter(divergence.values())).values())).shape[0]
    rows = ["| model | " + " | ".join(f"σ={s:g}: step 0 | σ={s:g}: step {steps - 1} | σ={s:g}: last - first (paired)"
                                     for s in sigmas) + " |", "|---|" + "---|" * (3 * len(sigmas))]
    for name, per_sigma in divergence.items():
        cells = []
        for sigma in sigmas:
            d = per_sigma[sigma]
            cells += [_mean(d[0], n_boot), _mean(d[-1], n_boot), _mean(d[-1] - d[0], n_boot)]
        rows.append(f"| {_label(name)} | " + " | ".join(cells) + " |")
    return rows


def geometry_difference_table(runs: dict[str, xr.Dataset], hidden: dict[str, np.ndarray],
                              divergence: dict[str, dict[float, np.ndarray]], n_boot: int) -> list[str]:
    from neurofit.analysis.robustness import participation_ratio_difference_ci

    steps = next(iter(runs.values())).sizes["step"]
    sigma = next(iter(runs.values())).attrs["stability_sigma"]
    sigmas = [s for s in next(iter(divergence.values())) if s != sigma]
    rows = [f"| comparison (A - B) | participation ratio, step {steps - 1} | "
            f"divergence σ={sigma:g}, step {steps - 1} | "
            + "".join(f"divergence σ={s:g}, step {steps - 1} | " for s in sigmas)
            + f"movement, step {steps - 1} |", "|---|---|---|" + "---|" * len(sigmas) + "---|"]
    for what, a, b in comparisons():
        if a.endswith(EVAL_DROPOUT):
            continue
        d, lo, hi = participation_ratio_difference_ci(hidden[a], hidden[b], n_boot=n_boot, seed=0)
        div = runs[a]["divergence"].values[-1] - runs[b]["divergence"].values[-1]
        low_noise = [_mean(divergence[a][s][-1] - divergence[b][s][-1], n_boot) for s in sigmas]
        mov = runs[a]["movement"].values[-1] - runs[b]["movement"].values[-1]
        rows.append(f"| {what} | {_fmt(d, lo, hi, 2)} | {_mean(div, n_boot)} | "
                    + "".join(f"{c} | " for c in low_noise) + f"{_mean(mov, n_boot) if steps > 1 else 'n/a'} |")
    return rows


def figure(runs: dict[str, xr.Dataset], stem: Path, n_boot: int, formats: list[str]) -> None:
    """Speed-accuracy curves, last-step accuracy vs noise/FGSM/PGD strength, participation ratio, divergence."""
    from neurofit.report.style import DOUBLE_COLUMN_IN, close, colour, neurofit_style, new_figure, save_figure

    first = next(iter(runs.values()))
    attack = first["attack"].values
    strength = first["strength"].values
    chance = 1.0 / max(len(first.attrs.get("classes", [])), 1)
    steps = np.arange(first.sizes["step"])
    shown = [n for n in runs if not n.endswith(EVAL_DROPOUT)]
    with neurofit_style():
        fig = new_figure(DOUBLE_COLUMN_IN, 4.8, nrows=2, ncols=3)
        speed_ax, noise_ax, fgsm_ax, pgd_ax, pr_ax, div_ax = fig.axes
        for name in shown:
            ds = runs[name]
            arch = name.removeprefix(PREFIX).split("_")[0]
            col = colour(ARCHS.index(arch))
            style = dict(color=col, linestyle="--" if "_dropout" in name else "-", marker="o", markersize=2,
                         label=_label(name))
            correct = ds["correct"].values
            m, lo, hi = mean_ci(correct[0], n_boot=n_boot, seed=0)
            speed_ax.plot(steps, m, **style)
            speed_ax.fill_between(steps, lo, hi, color=col, alpha=0.1, linewidth=0)
            for ax, kind in ((noise_ax, "noise"), (fgsm_ax, "fgsm"), (pgd_ax, "pgd")):
                idx = [0] + [i for i, k in enumerate(attack) if k == kind]
                x = np.array([0.0] + [strength[i] for i in idx[1:]]) * (1 if kind == "noise" else 255)
                m, lo, hi = mean_ci(correct[idx, -1], n_boot=n_boot, seed=0)
                ax.errorbar(x, m, yerr=np.vstack([m - lo, hi - m]), capsize=1.5, **style)
            pr_ax.plot(steps, ds.participation_ratio.values, **style)
            pr_ax.fill_between(steps, ds.participation_ratio_low.values, ds.participation_ratio_high.values,
                               color=col, alpha=0.1, linewidth=0)
            div_ax.plot(steps, ds.divergence_mean.values, **style)
            div_ax.fill_between(steps, ds.divergence_low.values, ds.divergence_high.values, color=col, alpha=0.1,
                                linewidth=0)
        for ax, title, xlabel in ((speed_ax, "Speed-accuracy (clean)", "Model step"),
                                  (noise_ax, "Gaussian pixel noise (last step)", "Noise σ (pixels in [0, 1])"),
                                  (fgsm_ax, "FGSM (last step)", "ε (1/255)"),
                                  (pgd_ax, f"PGD, {first.attrs['pgd_iterations']} iterations (last step)",
                                   "ε (1/255)")):
            ax.axhline(chance, color="black", linestyle=":", linewidth=0.8)
            ax.set_ylim(0, 1)
            ax.set_ylabel("Accuracy (95% CI)")
            ax.set_title(title, fontsize=7)
            ax.set_xlabel(xlabel)
        pr_ax.set_title(f"Participation ratio of {first.attrs['hidden_layer']} (clean)", fontsize=7)
        pr_ax.set_ylabel("Participation ratio")
        div_ax.set_title(f"Divergence under noise σ={first.attrs['stability_sigma']:g}", fontsize=7)
        div_ax.set_ylabel("||h(noisy) - h(clean)|| / ||h(clean)||")
        for ax in (pr_ax, div_ax):
            ax.set_xlabel("Model step")
        for ax in (speed_ax, pr_ax, div_ax):
            ax.set_xticks(steps)
        speed_ax.legend(fontsize=5, ncol=2)
        save_figure(fig, stem, formats=tuple(formats))
        close(fig)


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", action="store_true", help="run the 12 analyses first")
    p.add_argument("--figure", action="store_true", help="also draw robustness_comparison.png")
    p.add_argument("--print-commands", action="store_true", help="print the analysis commands and stop")
    p.add_argument("--checkpoints", default="neurofit/checkpoints", help="folder of the rcnn_* checkpoints")
    p.add_argument("--out", default=str(HERE.relative_to(ROOT)), help="folder of the runs, tables and figure")
    p.add_argument("--stimuli", default="holdout")
    p.add_argument("--noise", type=float, nargs="+", default=list(NOISE))
    p.add_argument("--fgsm", type=float, nargs="+", default=list(EPSILONS))
    p.add_argument("--pgd", type=float, nargs="+", default=list(EPSILONS))
    p.add_argument("--pgd-iterations", type=int, default=5)
    p.add_argument("--samples", type=int, default=5)
    p.add_argument("--stability", type=float, nargs="*", default=[0.01, 0.02],
                   help="noise levels of the extra trajectory-divergence table (besides the runs' own)")
    p.add_argument("--n-boot", type=int, default=1000)
    p.add_argument("--formats", nargs="+", default=["png"])
    p.add_argument("--figures-per-run", action="store_true", help="also draw each run's own figure")
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
    first = next(iter(runs.values()))
    sigmas = sorted(set(args.stability) | {float(first.attrs["stability_sigma"])})
    hidden, divergence = last_hidden_activity(runs, args.stimuli, sigmas)
    for name, per_sigma in divergence.items():  # the recomputation reproduces each run's own divergence
        if not np.allclose(per_sigma[float(first.attrs["stability_sigma"])], runs[name]["divergence"].values,
                           rtol=1e-5, atol=1e-6, equal_nan=True):
            sys.exit(f"recomputed divergence of {name} differs from its run's: rerun with --run")
    text = [f"Images: {first.sizes['presentation']} (`{first.attrs['stimulus_set']}`), {first.sizes['step']} steps, "
            f"{len(first.attrs['classes'])} classes (chance {1 / len(first.attrs['classes']):.3f}); attacks: "
            f"{first.attrs['attack_loss']} loss, PGD {first.attrs['pgd_iterations']} iterations; dropout at test: "
            f"{int(runs[run_names()[-1]].attrs['dropout_samples'])} stochastic passes per image.\n"]
    for title, rows in (
            ("Speed-accuracy: clean accuracy per step", speed_accuracy_table(runs, args.n_boot)),
            ("Accuracy at the last step per condition", condition_table(runs, args.n_boot)),
            ("Paired differences in accuracy (last step; first column: clean accuracy averaged over steps)",
             difference_table(runs, args.n_boot)),
            ("Dimensionality and stability of the last hidden layer (deterministic network)",
             geometry_table(runs, args.n_boot)),
            ("Trajectory divergence under weaker noise (deterministic network; ||h(noisy) - h(clean)|| / "
             "||h(clean)|| of the last hidden layer, mean over images)", stability_table(divergence, args.n_boot)),
            ("Paired differences in dimensionality and stability",
             geometry_difference_table(runs, hidden, divergence, args.n_boot))):
        text += [f"### {title}\n", "\n".join(rows) + "\n"]
    print("\n".join(text))
    (folder / "tables.md").write_text("\n".join(text))
    if args.figure:
        figure(runs, folder / "robustness_comparison", args.n_boot, args.formats)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
