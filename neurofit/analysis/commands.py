"""``neurofit analyze dynamics`` and ``neurofit analyze robustness``: argument parsing over
:func:`neurofit.analysis.dynamics.analyze_dynamics` and :func:`neurofit.analysis.robustness.analyze_robustness`."""

from __future__ import annotations

import argparse
import math

# the defaults of neurofit.analysis.robustness (not imported here: it imports torch, the CLI starts without)
NOISE_LEVELS = (0.05, 0.1, 0.2, 0.3)
ATTACK_EPSILONS = (1 / 255, 2 / 255, 4 / 255)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``neurofit analyze`` with its ``dynamics`` and ``robustness`` sub-commands.

    Example
    -------
    >>> parser = argparse.ArgumentParser(prog="neurofit")
    >>> register(parser.add_subparsers())
    >>> parser.parse_args(["analyze", "dynamics", "--model", "bl", "--out", "d"]).stimuli
    'synthetic-ventral'
    >>> parser.parse_args(["analyze", "robustness", "--model", "bl", "--out", "r"]).noise
    [0.05, 0.1, 0.2, 0.3]
    """
    analyze = subparsers.add_parser("analyze", help="analyses of what a model's recurrence does",
                                    description="Analyses of representation dynamics and adaptive computation.")
    inner = analyze.add_subparsers(dest="analysis", metavar="ANALYSIS")
    analyze.set_defaults(func=lambda args: analyze.print_help() or 2)
    p = inner.add_parser(
        "dynamics", help="readout over time, norms, readout zones, halting, neural solution times",
        description="Per-step readout accuracy, first-correct step, movement after correct classification, L2 "
                    "norms of correct vs incorrect images, readout-zone margins (Thorat et al. 2023); halting "
                    "step vs difficulty and zero-shot extrapolation for ACT models (Veerabadran et al. 2023); "
                    "neural object solution times (Kar et al. 2019) vs the model's. Writes dynamics.nc and "
                    "figures into --out.")
    p.add_argument("--model", required=True, metavar="ZOO|CKPT",
                   help="a zoo name (its shipped checkpoint, if any) or a checkpoint file")
    p.add_argument("--arch", metavar="NAME|module:factory", help="architecture of a checkpoint that does not name it")
    p.add_argument("--stimuli", default="synthetic-ventral", metavar="STIMULI",
                   help="labelled stimuli: synthetic-ventral (default; brings its recording), holdout (the "
                        "checkpoint's held-out training images), a difficulty-graded task (new images at every "
                        "level), or a stimulus-set CSV")
    p.add_argument("--task-per-level", type=int, default=200, help="task images per difficulty level (default 200)")
    p.add_argument("--recording", metavar="PATH.nc", help="recording with object labels for neural solution times")
    p.add_argument("--steps", type=int, help="unroll length (default: the training length)")
    p.add_argument("--label-column", help="stimulus column the model classifies (default: the checkpoint's)")
    p.add_argument("--probe-layer", help="also fit a cross-validated logistic probe on this layer")
    p.add_argument("--no-extrapolation", action="store_true", help="skip the zero-shot difficulty series")
    p.add_argument("--extrapolation-views", type=int, default=2, help="images per object and level (default 2)")
    p.add_argument("--extrapolation-factor", type=int, default=2, help="longest run / training steps (default 2)")
    p.add_argument("--extrapolation-factors", type=int, nargs="+", metavar="K",
                   help="step budgets as multiples of the training steps (default: 1 and --extrapolation-factor; "
                        "1 2 4 for a task)")
    p.add_argument("--neural-label", default="object_name", help="what the neural decoder decodes (object_name)")
    p.add_argument("--region", default="IT", help="recording region to decode from (default IT)")
    p.add_argument("--measure", choices=("probability", "dprime"), default="probability",
                   help="per-image decoder performance (default: held-out probability of the true object)")
    p.add_argument("--decoder", choices=("lda", "logistic"), default="lda",
                   help="neural decoder: shrinkage LDA (default, fast) or multinomial logistic regression")
    p.add_argument("--threshold", type=float, help="solution-time threshold (default 0.5 probability, 2.0 d')")
    p.add_argument("--sustain", type=int, default=1,
                   help="bins the decoder must stay above threshold for the crossing to count (default 1)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap draws (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress lines or bars on stderr")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--formats", nargs="+", choices=("pdf", "svg", "png"), default=["pdf", "svg", "png"],
                   help="figure formats (default: pdf svg png)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (dynamics.nc + figures)")
    p.set_defaults(func=_dynamics)
    _register_robustness(inner)


def _register_robustness(inner: argparse._SubParsersAction) -> None:
    p = inner.add_parser(
        "robustness", help="accuracy per step under pixel noise and FGSM/PGD attacks, dimensionality, stability",
        description="Robustness over time (Greco et al. 2025): the readout's accuracy at every step on clean "
                    "images, under Gaussian pixel noise and under FGSM and PGD attacks (optionally with dropout "
                    "kept active at evaluation), the participation ratio of the last hidden layer per step and "
                    "the stability of its trajectory. Writes robustness.nc and a figure into --out.")
    p.add_argument("--model", required=True, metavar="ZOO|CKPT",
                   help="a zoo name (its shipped checkpoint, if any) or a checkpoint file")
    p.add_argument("--arch", metavar="NAME|module:factory", help="architecture of a checkpoint that does not name it")
    p.add_argument("--stimuli", default="holdout", metavar="STIMULI",
                   help="labelled stimuli: holdout (default: the checkpoint's held-out training images), "
                        "synthetic-ventral, a difficulty-graded task, or a stimulus-set CSV")
    p.add_argument("--steps", type=int, help="unroll length (default: the training length)")
    p.add_argument("--label-column", help="stimulus column the model classifies (default: the checkpoint's)")
    p.add_argument("--noise", type=float, nargs="*", default=list(NOISE_LEVELS), metavar="SIGMA",
                   help="Gaussian pixel-noise standard deviations, pixels in [0, 1] (default 0.05 0.1 0.2 0.3)")
    p.add_argument("--fgsm", type=float, nargs="*", default=list(ATTACK_EPSILONS), metavar="EPS",
                   help="FGSM L-infinity budgets in pixel units (default 1/255 2/255 4/255)")
    p.add_argument("--pgd", type=float, nargs="*", default=list(ATTACK_EPSILONS), metavar="EPS",
                   help="PGD L-infinity budgets in pixel units (default 1/255 2/255 4/255)")
    p.add_argument("--pgd-iterations", type=int, default=10, help="PGD steps (default 10)")
    p.add_argument("--attack-loss", choices=("all_steps", "last_step"), default="all_steps",
                   help="what the attacks maximise: cross-entropy over the driven steps (default) or the last")
    p.add_argument("--dropout", action="store_true",
                   help="keep dropout active at evaluation (accuracy averaged over --samples passes)")
    p.add_argument("--samples", type=int, default=10, help="stochastic passes with --dropout (default 10)")
    p.add_argument("--stability-sigma", type=float,
                   help="noise level of the trajectory-stability comparison (default: the middle --noise level)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap draws (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--formats", nargs="+", choices=("pdf", "svg", "png"), default=["pdf", "svg", "png"],
                   help="figure formats (default: pdf svg png)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder (robustness.nc + figure)")
    p.set_defaults(func=_robustness)


def _robustness(args: argparse.Namespace) -> int:
    from neurofit.analysis.robustness import analyze_robustness

    ds = analyze_robustness(
        args.model, args.stimuli, arch=args.arch, steps=args.steps, label_column=args.label_column,
        noise=args.noise, fgsm_eps=args.fgsm, pgd_eps=args.pgd, pgd_iterations=args.pgd_iterations,
        attack_loss=args.attack_loss, dropout=args.dropout, samples=args.samples,
        stability_sigma=args.stability_sigma, n_boot=args.n_boot, seed=args.seed, batch_size=args.batch_size,
        out=args.out, figures=not args.no_figures, figure_formats=args.formats,
    )
    print(f"{ds.attrs['model_id']} on {ds.attrs['stimulus_set']}: {ds.sizes['presentation']} images, "
          f"{ds.sizes['step']} steps, dropout at evaluation {'on' if args.dropout else 'off'}")
    for condition in ds.condition.values:
        s = ds.sel(condition=condition)
        print(f"{condition}: accuracy per step " + ", ".join(_fmt(float(a)) for a in s.accuracy.values))
    print("participation ratio per step: " + ", ".join(_fmt(float(v)) for v in ds.participation_ratio.values))
    print(f"wrote {args.out}/robustness.nc")
    return 0


def _fmt(value: float) -> str:
    return "nan" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _dynamics(args: argparse.Namespace) -> int:
    import numpy as np

    from neurofit.analysis.dynamics import analyze_dynamics

    ds = analyze_dynamics(
        args.model, args.stimuli, arch=args.arch, recording=args.recording, steps=args.steps,
        label_column=args.label_column, probe_layer=args.probe_layer, extrapolation=not args.no_extrapolation,
        extrapolation_views=args.extrapolation_views, extrapolation_factor=args.extrapolation_factor,
        extrapolation_factors=args.extrapolation_factors, task_per_level=args.task_per_level,
        neural_label=args.neural_label, neural_region=args.region, neural_measure=args.measure,
        neural_decoder=args.decoder,
        threshold=args.threshold, sustain=args.sustain, n_boot=args.n_boot, seed=args.seed,
        batch_size=args.batch_size, out=args.out,
        figures=not args.no_figures, figure_formats=args.formats, progress=False if args.quiet else None,
    )
    print(f"{ds.attrs['model_id']} on {ds.attrs['stimulus_set']}: {ds.sizes['presentation']} images, "
          f"{ds.sizes['step']} steps")
    print("accuracy per step: " + ", ".join(_fmt(float(a)) for a in ds.accuracy.values))
    never = int(np.isnan(ds.first_correct_step.values).sum())
    print(f"first correct step: median {_fmt(float(np.nanmedian(ds.first_correct_step.values)))}, never correct "
          f"{never}; stays correct {int(ds.stays_correct.sum())}")
    if "halting_step" in ds:
        print(f"halting step: mean {_fmt(float(ds.halting_step.mean()))}; ACT accuracy "
              f"{_fmt(float(ds.act_correct.mean()))}")
    if "halting_rho" in ds:
        for m in ds.difficulty_measure.values:
            s = ds.sel(difficulty_measure=m)
            print(f"halting step vs {m}: Spearman rho {_fmt(float(s.halting_rho))} [{_fmt(float(s.halting_rho_low))}, "
                  f"{_fmt(float(s.halting_rho_high))}]")
    if "extrap_accuracy" in ds:
        for level in ds.extrapolation_level.values:
            s = ds.sel(extrapolation_level=level)
            rows = zip(s.max_steps.values, s.extrap_accuracy.values, s.extrap_accuracy_low.values,
                       s.extrap_accuracy_high.values)
            cells = ", ".join(f"{int(k)} steps {_fmt(float(a))} [{_fmt(float(lo))}, {_fmt(float(hi))}]"
                              for k, a, lo, hi in rows)
            print(f"accuracy at level {level}: {cells}")
    if "solution_time_rho" in ds:
        for m in ds.model_measure.values:
            s = ds.sel(model_measure=m)
            print(f"neural solution time vs {m}: Spearman rho {_fmt(float(s.solution_time_rho))} "
                  f"[{_fmt(float(s.solution_time_low))}, {_fmt(float(s.solution_time_high))}], "
                  f"n={int(s.solution_time_n)}")
    print(f"wrote {args.out}/dynamics.nc")
    return 0
