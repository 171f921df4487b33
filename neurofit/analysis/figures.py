"""Figures of the representation-dynamics Dataset (:func:`neurofit.analysis.dynamics.analyze_dynamics`).

One public function per figure, each taking the Dataset and returning a matplotlib Figure drawn in
neurofit's report style (:mod:`neurofit.report.style`, journal column widths, Okabe-Ito colours); a figure
whose variables the Dataset lacks raises a :class:`NeurofitError` naming them. :func:`dynamics_figures`
writes every figure the Dataset supports with :func:`neurofit.report.style.save_figure`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from neurofit.errors import NeurofitError
from neurofit.report.style import (
    DOUBLE_COLUMN_IN,
    SINGLE_COLUMN_IN,
    colour,
    neurofit_style,
    new_figure,
    save_figure,
)

STEP_LABEL = "Model step"
CI_TEXT = "bands: 95% CI, bootstrap over images"


def _require(ds: xr.Dataset, names: Sequence[str], figure: str) -> None:
    missing = [n for n in names if n not in ds.variables]
    if missing:
        raise NeurofitError(f"the {figure} figure needs variable(s) {', '.join(missing)}, which this dynamics "
                            "Dataset lacks; rerun analyze_dynamics with the inputs that produce them")


def _band(ax, x: np.ndarray, ds: xr.Dataset, name: str, col: str, label: str) -> None:
    ax.plot(x, ds[name].values, color=col, label=label, marker="o", markersize=2.5)
    low, high = f"{name}_low", f"{name}_high"
    if low in ds and high in ds:
        ax.fill_between(x, ds[low].values, ds[high].values, color=col, alpha=0.2, linewidth=0)


def _title(ds: xr.Dataset) -> str:
    return f"{ds.attrs.get('model_id', 'model')} on {ds.attrs.get('stimulus_set', 'stimuli')}"


def accuracy_over_time(ds: xr.Dataset, *, width: float = SINGLE_COLUMN_IN) -> Figure:
    """Readout accuracy per step (and the probe's, when fitted) with bootstrap CIs; chance as a dotted line.

    Example
    -------
    >>> fig = accuracy_over_time(ds)  # doctest: +SKIP
    """
    _require(ds, ["accuracy", "step"], "accuracy-over-time")
    x = ds["step"].values
    with neurofit_style():
        fig = new_figure(width, 2.6, nrows=1)
        ax = fig.axes[0]
        if "readout_driven" in ds.coords and not ds["readout_driven"].values.all():
            last = int(np.flatnonzero(~ds["readout_driven"].values).max())
            ax.axvspan(x[0] - 0.5, last + 0.5, color="0.9", zorder=0, label="readout not yet driven")
        _band(ax, x, ds, "accuracy", colour(0), "model readout")
        if "probe_accuracy" in ds:
            _band(ax, x, ds, "probe_accuracy", colour(1), f"probe on {ds.attrs.get('probe_layer', 'layer')}")
        if "class" in ds.coords:
            ax.axhline(1.0 / ds.sizes["class"], color="black", linestyle=":", linewidth=0.8, label="chance")
        ax.set_xlabel(STEP_LABEL)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("Accuracy")
        ax.set_ylim(0, 1)
        ax.set_title(_title(ds))
        ax.legend(loc="best", title=CI_TEXT, title_fontsize=6)
    return fig


def norm_over_time(ds: xr.Dataset, *, width: float = DOUBLE_COLUMN_IN) -> Figure:
    """Left: L2 norm of the penultimate representation per step, correct vs incorrect images. Right: the
    distance moved per step by images already classified correctly (Thorat et al. 2023).

    Example
    -------
    >>> fig = norm_over_time(ds)  # doctest: +SKIP
    """
    _require(ds, ["norm_correct", "norm_incorrect", "movement_after_correct"], "norm-over-time")
    x = ds["step"].values
    with neurofit_style():
        fig = new_figure(width, 2.6, nrows=1, ncols=2)
        left, right = fig.axes
        _band(left, x, ds, "norm_correct", colour(2), "correct")
        _band(left, x, ds, "norm_incorrect", colour(1), "incorrect")
        left.set_xlabel(STEP_LABEL)
        left.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_ylabel("L2 norm (penultimate)")
        left.set_title("Norm by correctness at that step")
        left.legend(title=CI_TEXT, title_fontsize=6)
        _band(right, x, ds, "movement_after_correct", colour(0), "already correct")
        right.set_xlabel(STEP_LABEL)
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_ylabel("Distance moved since previous step")
        right.set_title("Movement after first correct step")
        right.set_ylim(bottom=0)
    return fig


def margin_trajectories(ds: xr.Dataset, *, width: float = DOUBLE_COLUMN_IN, max_lines: int = 40) -> Figure:
    """Signed margin to the label's readout-zone boundary over steps, per image (thin) and group means.

    Images are grouped by their trajectory: correct from the first step at which the readout sees the image
    (``readout_driven``), corrected later, and never correct. The right panel counts misclassified->corrected and
    corrected->misclassified transitions per step.

    Example
    -------
    >>> fig = margin_trajectories(ds)  # doctest: +SKIP
    """
    _require(ds, ["margin", "first_correct_step", "corrected", "misclassified"], "margin-trajectory")
    x = ds["step"].values
    margin = ds["margin"].transpose("step", "presentation").values
    first = ds["first_correct_step"].values
    # a biological unroll's readout sees the image only from its first driven step: group from there
    driven = ds["readout_driven"].values if "readout_driven" in ds.coords else np.ones(len(x), dtype=bool)
    start = x[np.argmax(driven)] if driven.any() else x[0]
    groups = [(f"correct from step {start}", first == start), ("corrected later", first > start),
              ("never correct", np.isnan(first))]
    rng = np.random.default_rng(0)
    with neurofit_style():
        fig = new_figure(width, 2.6, nrows=1, ncols=2)
        left, right = fig.axes
        for i, (name, members) in enumerate(groups):
            idx = np.flatnonzero(members)
            if idx.size == 0:
                continue
            shown = rng.choice(idx, size=min(max_lines, idx.size), replace=False)
            for j in shown:
                left.plot(x, margin[:, j], color=colour(i), alpha=0.15, linewidth=0.5)
            left.plot(x, np.nanmean(margin[:, idx], axis=1), color=colour(i), linewidth=2,
                      label=f"{name} (n={idx.size})")
        left.axhline(0, color="black", linewidth=0.6)
        left.set_xlabel(STEP_LABEL)
        left.xaxis.set_major_locator(MaxNLocator(integer=True))
        left.set_ylabel("Margin to zone boundary (>0: inside)")
        left.set_title("Readout-zone margin trajectories")
        left.legend(loc="lower right")
        width_bar = 0.4
        right.bar(x - width_bar / 2, ds["corrected"].values, width_bar, color=colour(2),
                  label="misclassified→corrected")
        right.bar(x + width_bar / 2, ds["misclassified"].values, width_bar, color=colour(1),
                  label="corrected→misclassified")
        right.set_xlabel(STEP_LABEL)
        right.xaxis.set_major_locator(MaxNLocator(integer=True))
        right.set_ylabel("Images")
        right.set_title("Transitions since previous step")
        right.legend()
    return fig


def halting_vs_difficulty_figure(ds: xr.Dataset, *, width: float = DOUBLE_COLUMN_IN) -> Figure:
    """Left: mean halting step per difficulty level (CI). Right: ACT accuracy per level of the difficulty
    series with the training number of steps and with more (zero-shot extrapolation).

    Example
    -------
    >>> fig = halting_vs_difficulty_figure(ds)  # doctest: +SKIP
    """
    _require(ds, ["level_mean_halting_step"], "halting-vs-difficulty")
    # a task's extrapolation (levels of the task itself) has its own figure, extrapolation_figure
    has_extrap = "extrap_act_accuracy" in ds and "extrapolation_answer" not in ds.attrs
    with neurofit_style():
        fig = new_figure(width if has_extrap else SINGLE_COLUMN_IN, 2.6, nrows=1, ncols=2 if has_extrap else 1)
        ax = fig.axes[0]
        levels = ds["difficulty_level"].values
        mean = ds["level_mean_halting_step"].values
        err = np.vstack([mean - ds["level_mean_halting_step_low"].values,
                         ds["level_mean_halting_step_high"].values - mean])
        ax.errorbar(np.arange(len(levels)), mean, yerr=err, color=colour(0), marker="o", capsize=2)
        ax.set_xticks(np.arange(len(levels)), [str(v) for v in levels])
        ax.set_xlabel(str(ds.attrs.get("difficulty_level_column", "difficulty level")))
        ax.set_ylabel("Halting step (mean, 95% CI)")
        rho = ""
        if "halting_rho" in ds and "difficulty_measure" in ds.coords:
            parts = [f"{m}: ρ={ds.halting_rho.sel(difficulty_measure=m).item():.2f}"
                     for m in ds.difficulty_measure.values]
            rho = "\n" + "; ".join(parts[:3])
        ax.set_title(f"Halting step vs difficulty{rho}", fontsize=7)
        if has_extrap:
            right = fig.axes[1]
            lv = ds["extrapolation_level"].values
            xpos = np.arange(len(lv))
            for j, steps in enumerate(ds["max_steps"].values):
                acc = ds["extrap_act_accuracy"].isel(max_steps=j).values
                low = ds["extrap_act_accuracy_low"].isel(max_steps=j).values
                high = ds["extrap_act_accuracy_high"].isel(max_steps=j).values
                right.errorbar(xpos + (j - 0.5) * 0.1, acc, yerr=np.vstack([acc - low, high - acc]), color=colour(j),
                               marker="o", capsize=2, label=f"max steps {int(steps)}")
            difficulty = ds["extrapolation_difficulty"].values if "extrapolation_difficulty" in ds.coords else lv
            right.set_xticks(xpos, [f"{v:g}" for v in difficulty])
            right.axvspan(-0.3, int(np.sum(np.asarray(difficulty) <= 1.0)) - 0.7, color="0.9", zorder=0,
                          label="training range")
            right.set_xlabel("Generator difficulty")
            right.set_ylabel("ACT accuracy (95% CI)")
            right.set_ylim(0, 1)
            right.set_title("Zero-shot extrapolation")
            right.legend()
    return fig


def extrapolation_figure(ds: xr.Dataset, *, width: float = DOUBLE_COLUMN_IN) -> Figure:
    """Accuracy per difficulty level of a task at 1x, 2x, 4x ... the training steps (and, for halting
    models, the mean halting step), 95 % bootstrap CIs over images; trained levels shaded.

    Example
    -------
    >>> fig = extrapolation_figure(ds)  # doctest: +SKIP
    """
    _require(ds, ["extrap_accuracy", "extrapolation_level"], "extrapolation")
    halting = "extrap_mean_halting_step" in ds and np.isfinite(ds["extrap_mean_halting_step"].values).any()
    levels = ds["extrapolation_level"].values
    xpos = np.arange(len(levels))
    trained = [str(v) for v in ds.attrs.get("extrapolation_train_range", "").replace(",", " ").split()
               if v.isdigit()]
    panels = (("extrap_accuracy", "Accuracy (95% CI)"),) + (
        (("extrap_mean_halting_step", "Halting step (mean, 95% CI)"),) if halting else ())
    with neurofit_style():
        fig = new_figure(width if halting else SINGLE_COLUMN_IN, 2.6, nrows=1, ncols=len(panels))
        for ax, (name, label) in zip(fig.axes, panels):
            n = ds.sizes["max_steps"]
            for j, steps in enumerate(ds["max_steps"].values):
                value = ds[name].isel(max_steps=j).values
                low = ds[f"{name}_low"].isel(max_steps=j).values
                high = ds[f"{name}_high"].isel(max_steps=j).values
                ax.errorbar(xpos + (j - (n - 1) / 2) * 0.12, value, yerr=np.vstack([value - low, high - value]),
                            color=colour(j), marker="o", markersize=3, capsize=2,
                            label=f"{int(steps)} steps ({int(ds['factor'].values[j])}x)")
            for i, level in enumerate(levels):
                if str(level) in trained:
                    ax.axvspan(i - 0.4, i + 0.4, color="0.9", zorder=0)
            ax.set_xticks(xpos, [str(v) for v in levels])
            ax.set_xlabel("Difficulty level (shaded: trained)")
            ax.set_ylabel(label)
            if name == "extrap_accuracy":
                ax.set_ylim(0, 1)
                ax.axhline(1.0 / max(ds.sizes.get("class", 2), 1), color="black", linestyle=":", linewidth=0.8)
                ax.set_title(f"{ds.attrs.get('model_id', 'model')}: {ds.attrs.get('extrapolation_answer', '')}",
                             fontsize=7)
            else:
                ax.set_title("Halting step per level", fontsize=7)
            ax.legend(fontsize=6)
    return fig


def solution_time_figure(ds: xr.Dataset, *, width: float = DOUBLE_COLUMN_IN) -> Figure:
    """Neural object solution time vs the model's first-correct step (and halting step), one dot per image.

    Example
    -------
    >>> fig = solution_time_figure(ds)  # doctest: +SKIP
    """
    _require(ds, ["neural_solution_time", "solution_time_rho"], "model-vs-neural solution time")
    measures = [str(m) for m in ds["model_measure"].values]
    neural = ds["neural_solution_time"].values
    rng = np.random.default_rng(0)
    with neurofit_style():
        fig = new_figure(width if len(measures) > 1 else SINGLE_COLUMN_IN, 2.6, nrows=1, ncols=len(measures))
        for ax, measure in zip(fig.axes, measures):
            model = ds[measure].values.astype(np.float64)
            ok = np.isfinite(model) & np.isfinite(neural)
            jitter = rng.uniform(-0.15, 0.15, size=ok.sum())
            ax.scatter(model[ok] + jitter, neural[ok], s=4, alpha=0.4, color=colour(0), linewidths=0)
            sel = ds.sel(model_measure=measure)
            ax.set_title(f"ρ = {sel.solution_time_rho.item():.2f} [{sel.solution_time_low.item():.2f}, "
                         f"{sel.solution_time_high.item():.2f}], n = {int(sel.solution_time_n.item())}")
            ax.set_xlabel(f"Model {measure.replace('_', ' ')}")
            ax.set_ylabel("Neural solution time (ms)")
    return fig


def robustness_over_time(ds: xr.Dataset, *, width: float = DOUBLE_COLUMN_IN) -> Figure:
    """Accuracy per step under pixel noise and attacks, participation ratio and trajectory stability.

    Four panels of a robustness Dataset (:func:`neurofit.analysis.robustness.analyze_robustness`): clean and
    noisy accuracy per step (the speed-accuracy curves), accuracy under FGSM and PGD per step, the
    participation ratio of the last hidden layer per step, and its divergence from the clean trajectory
    under noise with its step-to-step movement. Bands: 95 % bootstrap CIs over images.

    Example
    -------
    >>> fig = robustness_over_time(ds)  # doctest: +SKIP
    """
    _require(ds, ["accuracy", "participation_ratio", "divergence_mean", "movement_mean"], "robustness")
    x = ds["step"].values
    attack = ds["attack"].values
    with neurofit_style():
        fig = new_figure(width, 4.6, nrows=2, ncols=2)
        noise_ax, attack_ax, pr_ax, stab_ax = fig.axes
        for ax, kinds, title in ((noise_ax, ("clean", "noise"), "Gaussian pixel noise"),
                                 (attack_ax, ("clean", "fgsm", "pgd"), "Adversarial attacks")):
            rows = [i for i, k in enumerate(attack) if k in kinds]
            for j, i in enumerate(rows):
                sel = ds.isel(condition=i)
                line = "--" if attack[i] == "fgsm" else "-"
                label = "clean" if attack[i] == "clean" else (
                    f"σ = {sel.strength.item():g}" if attack[i] == "noise"
                    else f"{attack[i].upper()} ε = {sel.strength.item() * 255:g}/255")
                ax.plot(x, sel.accuracy.values, color=colour(j), linestyle=line, marker="o", markersize=2,
                        label=label)
                ax.fill_between(x, sel.accuracy_low.values, sel.accuracy_high.values, color=colour(j), alpha=0.15,
                                linewidth=0)
            ax.axhline(1.0 / max(len(ds.attrs.get("classes", [])), 1), color="black", linestyle=":",
                       linewidth=0.8)
            ax.set_ylim(0, 1)
            ax.set_ylabel("Accuracy")
            ax.set_title(title)
            ax.legend(fontsize=6, ncol=2)
        pr_ax.plot(x, ds.participation_ratio.values, color=colour(0), marker="o", markersize=2.5)
        pr_ax.fill_between(x, ds.participation_ratio_low.values, ds.participation_ratio_high.values,
                           color=colour(0), alpha=0.2, linewidth=0)
        pr_ax.set_ylabel("Participation ratio")
        pr_ax.set_title(f"Dimensionality of {ds.attrs.get('hidden_layer', 'last layer')}")
        for j, (name, label) in enumerate((
                ("divergence", f"noisy vs clean (σ = {ds.attrs.get('stability_sigma', 0):g})"),
                ("movement", "step-to-step movement"))):
            stab_ax.plot(x, ds[f"{name}_mean"].values, color=colour(j + 1), marker="o", markersize=2.5, label=label)
            stab_ax.fill_between(x, ds[f"{name}_low"].values, ds[f"{name}_high"].values, color=colour(j + 1),
                                 alpha=0.2, linewidth=0)
        stab_ax.set_ylabel("Relative distance")
        stab_ax.set_title("Trajectory stability")
        stab_ax.legend(fontsize=6)
        for ax in fig.axes:
            ax.set_xlabel(STEP_LABEL)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.suptitle(f"{ds.attrs.get('model_id', 'model')}: {CI_TEXT}", fontsize=7)
    return fig


def robustness_figures(ds: xr.Dataset, folder: str | os.PathLike[str],
                       formats: Sequence[str] = ("pdf", "svg", "png")) -> dict[str, Path]:
    """Write :func:`robustness_over_time` as ``folder/robustness.<fmt>``.

    Example
    -------
    >>> paths = robustness_figures(ds, "out")  # doctest: +SKIP
    """
    from neurofit.report.style import close

    fig = robustness_over_time(ds)
    try:
        return save_figure(fig, Path(folder) / "robustness", formats)
    finally:
        close(fig)


FIGURES = {
    "accuracy_over_time": (accuracy_over_time, "accuracy"),
    "norm_over_time": (norm_over_time, "norm_correct"),
    "margin_trajectories": (margin_trajectories, "margin"),
    "halting_vs_difficulty": (halting_vs_difficulty_figure, "level_mean_halting_step"),
    "extrapolation": (extrapolation_figure, "extrap_accuracy"),
    "solution_time": (solution_time_figure, "solution_time_rho"),
}


def dynamics_figures(ds: xr.Dataset, folder: str | os.PathLike[str],
                     formats: Sequence[str] = ("pdf", "svg", "png")) -> dict[str, dict[str, Path]]:
    """Write every figure the Dataset supports into ``folder`` (``<name>.pdf/.svg/.png``).

    Returns
    -------
    dict figure name -> {format: path}.

    Example
    -------
    >>> paths = dynamics_figures(ds, "out")  # doctest: +SKIP
    """
    from neurofit.report.style import close

    folder = Path(folder)
    written: dict[str, dict[str, Path]] = {}
    for name, (draw, needs) in FIGURES.items():
        if needs not in ds or (name == "extrapolation" and "extrapolation_answer" not in ds.attrs):
            continue  # a synthetic extrapolation series is drawn inside halting_vs_difficulty
        fig = draw(ds)
        try:
            written[name] = save_figure(fig, folder / name, formats)
        finally:
            close(fig)
    return written
