"""``neurofit score``, ``compare``, ``demo`` and ``benchmarks list``: argument parsing over the Python twins.

* ``score`` -> :func:`neurofit.scoring.score.score`; ``score --features`` ->
  :func:`neurofit.scoring.precomputed.score_precomputed`
* ``benchmarks list`` -> :func:`neurofit.scoring.catalog.benchmark_catalog`
* ``export table`` -> :func:`neurofit.scoreset.export_scores` (:func:`neurofit.scoreset.to_dataframe`)
* ``compare`` -> :func:`neurofit.stats.compare.compare` (or :func:`neurofit.scoring.compare.compare_models`)
* ``demo`` -> :func:`neurofit.scoring.demo.demo`
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from neurofit.errors import NeurofitError
from neurofit.runners.commands import add_runner_arguments
from neurofit.scoring.benchmark import METRICS

# parameters of the Python twins that the command line spells differently (see neurofit.cli.in_cli_terms)
PARAMETER_SPELLINGS = {"data": "--recording FILE --stimuli CSV"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``score``, ``compare`` and ``demo`` sub-commands.

    Example
    -------
    >>> parser = argparse.ArgumentParser(prog="neurofit")
    >>> register(parser.add_subparsers())
    >>> parser.parse_args(["score", "--model", "cornet_z", "--benchmark", "b"]).layers is None
    True
    """
    sc = subparsers.add_parser(
        "score", help="score a model against a benchmark (per site, per time bin)",
        description="Score a zoo model or a checkpoint against a benchmark: prints the median ceiled score per "
                    "region and time bin with bootstrap CIs and writes the ScoreSet (NetCDF). Finished work units "
                    "are saved as they finish; rerunning an interrupted command resumes it.")
    which = sc.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="ZOO_NAME|CHECKPOINT",
                       help="a zoo name (neurofit models list), package.module:factory, or a checkpoint file")
    which.add_argument("--models", nargs="+", metavar="MODEL",
                       help="score several models in one run: one ScoreSet each, <model>-<benchmark>.nc in --out-dir")
    which.add_argument("--features", metavar="FILE",
                       help="score precomputed features (ActivationSet or labelled-array NetCDF, .npz, .npy, .pt, "
                            ".safetensors, .h5/.hdf5, .txt, .mat) instead of a model; no stimulus set needed")
    sc.add_argument("--arch", metavar="NAME|module:factory",
                    help="architecture of a checkpoint that does not name its own")
    sc.add_argument("--checkpoint", metavar="FILE", help="weights for a zoo name given with --model")
    sc.add_argument("--weights", choices=("auto", "trained", "random"), default="auto",
                    help="weights of a zoo name: auto (default) uses neurofit's shipped trained checkpoint when "
                         "there is one (`neurofit models list`, column weights), else random init (seed 0); "
                         "trained requires it; random scores the architecture untrained")
    sc.add_argument("--baseline", choices=("random",),
                    help="also score the same architecture with random weights (seed 0), written beside each "
                         "ScoreSet as <name>-random.nc, so the model's number can be read against it")
    sc.add_argument("--benchmark", required=True, metavar="ID|FILE.toml",
                    help="benchmark id (list them with `neurofit benchmarks list`) or a TOML file")
    sc.add_argument("--out", metavar="FILE.nc", help="where to write the ScoreSet (default: <model>-<benchmark>.nc)")
    sc.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    sc.add_argument("--layers", nargs="+", metavar="LAYER|REGION=LAYER",
                    help="score these layers without layer commitment (e.g. IT, or V4=conv3 IT=conv4)")
    sc.add_argument("--grid", action="store_true", help="also score every layer x every timestep (slow)")
    sc.add_argument("--latency", choices=("region", "site"), default="region",
                    help="site: also fit each site's latency offset on the commitment stimuli and report the lags "
                         "and their scores beside the region-level ones (default region)")
    sc.add_argument("--metric", choices=METRICS,
                    help="replace the benchmark's metric: pls, ridge, rsa, cka, reverse_pls, reverse_ridge or "
                         "partition (same data, layer commitment and time map; same ScoreSet schema)")
    sc.add_argument("--partition-with", nargs="+", metavar="MODEL",
                    help="with --metric partition: partition each site's variance between the model and these "
                         "models (zoo names, checkpoint files or package.module:factory; each committed by the same "
                         "rule) instead of between its first driven step and its later steps")
    sc.add_argument("--steps", type=int, help="unroll length (default: enough 10 ms steps for the last bin)")
    sc.add_argument("--reduction", default="default", metavar="SPEC",
                    help="feature reduction at extraction: default (exact where the rows are few, else the "
                         "Gaussian RP-1000), auto, none, KIND[:DIM[:SEED]] or auto:KIND[:DIM[:SEED]] with KIND "
                         "gaussian, achlioptas or sparse (opt-in very sparse projection: much faster, other numbers)")
    sc.add_argument("--work-dir", metavar="DIR", help="root of the resumable work directories")
    sc.add_argument("--recording", metavar="FILE.nc", help="score against this recording (with --stimuli)")
    sc.add_argument("--stimuli", metavar="FILE.csv", help="the recording's stimulus set (CSV + zip beside it)")
    sc.add_argument("--no-cache", action="store_true", help="do not read or write the activation cache")
    sc.add_argument("--quiet", action="store_true", help="no progress bars")
    sc.add_argument("--out-dir", metavar="DIR", help="folder for the ScoreSets (default: the current folder)")
    add_runner_arguments(sc)
    add_feature_arguments(sc)
    sc.set_defaults(func=_score)

    cmp = subparsers.add_parser(
        "compare", help="paired per-bin comparison of ScoreSets (B - A: median paired difference, bootstrap, FDR)",
        description="Compare ScoreSets site by site and bin by bin: the first is the reference A, each other is a "
                    "B, and every difference is B - A (the median over sites of the paired per-site differences, "
                    "with a bootstrap over stimuli and sites; marks and intervals from the same draws). Or score "
                    "--models on --benchmark and compare them.")
    cmp.add_argument("scores", nargs="*", metavar="SCORES.nc", help="ScoreSet files (the first is the reference)")
    cmp.add_argument("--models", nargs="+", metavar="MODEL", help="score these models first (zoo names or files)")
    cmp.add_argument("--benchmark", metavar="ID", help="benchmark for --models")
    cmp.add_argument("--variable", choices=("ceiled", "r"),
                     help="per-site score compared (default: ceiled, or r where the data have no noise ceiling)")
    cmp.add_argument("--correction", default="fdr_bh", choices=("fdr_bh", "fdr_by", "holm", "bonferroni"),
                     help="multiple-comparison correction across bins, regions and comparisons (default fdr_bh)")
    cmp.add_argument("--alpha", type=float, default=0.05)
    cmp.add_argument("--include-unreliable", action="store_true",
                     help="also test bins whose noise ceiling is not reliably above zero (left out by default)")
    cmp.add_argument("--n-boot", type=int, default=1000)
    cmp.add_argument("--seed", type=int, default=0)
    cmp.add_argument("--out", metavar="FILE.nc", help="write the comparison Dataset (NetCDF)")
    cmp.add_argument("--quiet", action="store_true", help="no progress bars")
    cmp.set_defaults(func=_compare)

    demo = subparsers.add_parser(
        "demo", help="score shipped feedforward and recurrent models on synthetic-ventral and compare them",
        description="The embedded demo: on the synthetic-ventral dataset (generated, no download), score the "
                    "shipped feedforward and recurrent checkpoints on the V4 and IT temporal benchmarks, compare "
                    "them per 10 ms bin and print where recurrence helps.")
    demo.add_argument("--out", metavar="DIR", default="neurofit-demo", help="folder for the ScoreSets")
    demo.add_argument("--report", metavar="DIR", help="also write the HTML report there")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.add_argument("--metrics", metavar="all|METRIC,...",
                      help="instead: score both models on the IT benchmark with every metric (all: pls, rsa, cka, "
                           "reverse_pls, partition) and print one line per metric (neurofit.scoring.metric_demo)")
    demo.set_defaults(func=_demo)

    from neurofit.cli import export_subparsers

    export = export_subparsers(subparsers).add_parser(
        "table", help="per-site scores of a ScoreSet as a CSV or parquet table",
        description="One row per site and time bin (ids, region, bin, r, ceiling, ceiled, reliable, model, "
                    "benchmark). Python: neurofit.scoreset.to_dataframe / export_scores.")
    export.add_argument("scores", metavar="SCORES.nc", help="a ScoreSet file")
    export.add_argument("--out", required=True, metavar="FILE.csv|FILE.parquet",
                        help="the table to write (parquet needs pyarrow: pip install 'neurofit[parquet]')")
    export.set_defaults(func=_export)

    benchmarks = subparsers.add_parser("benchmarks", help="the benchmarks neurofit knows",
                                       description="Benchmark files found in $NEUROFIT_BENCHMARKS and shipped "
                                                   "with neurofit.")
    benchmarks.set_defaults(func=lambda _args: benchmarks.print_help() or 2)
    actions = benchmarks.add_subparsers(dest="benchmarks_command", metavar="ACTION")
    listing = actions.add_parser("list", help="list benchmark ids with dataset, regions, bins, metric and ceiling")
    listing.set_defaults(func=_benchmarks_list)


def _score(args: argparse.Namespace) -> int:
    if args.features is not None:
        if args.reduction != "default":
            raise NeurofitError("--reduction applies to a model's activations as they are extracted; --features are "
                                "precomputed: reduce them before passing them")
        if args.partition_with:
            raise NeurofitError("--partition-with partitions a model's features against other models' (score "
                                "--model M --metric partition); --features scores precomputed features by regression")
        return score_features_command(args)
    from neurofit.extract.reduce import parse_reduction

    parse_reduction(args.reduction)  # a wrong spec fails before any data is prepared or model run
    from neurofit.runners.commands import runner_from_args
    from neurofit.runners.multi import score_models
    from neurofit.scoring.score import score

    data = None
    if (args.recording is None) != (args.stimuli is None):
        raise NeurofitError("--recording and --stimuli go together: give both or neither")
    if args.recording is not None:
        from neurofit.data.io import read_recording
        from neurofit.data.stimuli import read_stimulus_set

        data = (read_recording(args.recording), read_stimulus_set(args.stimuli))
    options = dict(arch=args.arch, layers=args.layers, grid=args.grid, data=data, device=args.device,
                   metric=args.metric, latency=args.latency, work_dir=args.work_dir, steps=args.steps,
                   reduction=args.reduction,
                   partition_with=args.partition_with,
                   cache=not args.no_cache, progress=False if args.quiet else None)
    if args.models and (args.out or args.checkpoint):
        raise NeurofitError("with --models give --out-dir (one ScoreSet per model), not --out or --checkpoint")
    if args.baseline and args.weights == "random":
        raise NeurofitError("--baseline random scores random weights beside the model; drop --weights random")
    runner = runner_from_args(args)  # None: the local runner
    baselines: dict[Any, Any] = {}
    try:
        if args.models:
            results = score_models(args.models, args.benchmark, out_dir=args.out_dir or ".", runner=runner,
                                   weights=args.weights, **options)
            models = dict(zip(results, args.models))
        else:
            out = args.out or Path(args.out_dir or ".") / f"{Path(args.model).stem}-{Path(args.benchmark).stem}.nc"
            results = {out: score(args.model, args.benchmark, checkpoint=args.checkpoint, out=out, runner=runner,
                                  weights=args.weights, **options)}
            models = {out: args.model}
        if args.baseline:
            from neurofit.scoring.score import baseline_path

            for out, model in models.items():
                path = baseline_path(out, args.baseline)
                baselines[out] = (path, score(model, args.benchmark, checkpoint=args.checkpoint, out=path,
                                              runner=runner, weights="random", **options))
    finally:
        if runner is not None:
            runner.close()
    for out, scores in results.items():
        _print_scores(scores, out)
        if out in baselines:
            path, base = baselines[out]
            print("\nbaseline: the same architecture with random weights, scored identically")
            _print_scores(base, path)
            print(_baseline_lines(scores, base))
    return 0


def _baseline_lines(scores: Any, base: Any) -> str:
    """Per region, the model's summary beside its random-weight baseline's, over the same bins."""
    from neurofit.scoreset import bin_reliability, common_bins, default_variable, regions, summarise

    variable, _ = default_variable([scores, base])
    reliability = bin_reliability(scores)
    what = "median ceiled score" if variable == "ceiled" else "median r"
    lines = []
    for region in regions(scores):
        bins = common_bins([scores, base], region, variable, reliability)
        a, b = summarise(scores, region, bins, variable), summarise(base, region, bins, variable)
        kind = "reliable driven" if reliability.assessed else "driven"
        lines.append(f"{region}: mean over {int(bins.sum())} shared {kind} bins of the {what}: "
                     f"{scores.attrs['model_id']} {a.value:.3f} [{a.low:.3f}, {a.high:.3f}] vs random init "
                     f"{b.value:.3f} [{b.low:.3f}, {b.high:.3f}]")
    return "\n".join(lines)


def _print_scores(scores: Any, out: Any) -> None:
    from neurofit.scoreset import metric_line, summary_table

    print(metric_line(scores))
    print(f"{scores.attrs['model_id']} on {scores.attrs['benchmark']} (v{scores.attrs['benchmark_version']}): "
          f"layers {scores.attrs['committed_layers']}, offsets {scores.attrs['committed_offsets_ms']} ms, "
          f"mapping {scores.attrs['mapping_policy']}")
    print(f"weights: {scores.attrs.get('weights', 'not recorded')}")
    print(summary_table(scores))
    print(f"wrote {out}")


def _compare(args: argparse.Namespace) -> int:
    from neurofit.stats.compare import compare, comparison_table, verdict_text

    options = dict(variable=args.variable, method=args.correction, alpha=args.alpha, n_boot=args.n_boot,
                   seed=args.seed, reliable_only=not args.include_unreliable, out=args.out)
    if args.models:
        if args.scores or not args.benchmark:
            raise NeurofitError("give either ScoreSet files, or --models with --benchmark")
        from neurofit.scoring.compare import compare_models

        out = options.pop("out")
        result = compare_models(args.models, args.benchmark, progress=False if args.quiet else None,
                                compare_options=options)
        if out:
            from neurofit.scoreset import write_scoreset

            write_scoreset(result, out)
    else:
        if len(args.scores) < 2:
            raise NeurofitError("compare needs at least two ScoreSet files (or --models with --benchmark)")
        result = compare(*args.scores, **options)
    print(comparison_table(result))
    for c in range(result.sizes["comparison"]):
        print("\n".join(verdict_text(result, c)))
    if args.out:
        print(f"wrote {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from neurofit.scoreset import export_scores

    print(f"wrote {export_scores(args.scores, args.out)}")
    return 0


def _benchmarks_list(args: argparse.Namespace) -> int:
    from neurofit.scoring.catalog import benchmark_catalog, format_catalog

    print(format_catalog(benchmark_catalog()))
    return 0


def _demo(args: argparse.Namespace) -> int:
    if args.metrics:
        from neurofit.scoring.metric_demo import metrics_demo

        metrics_demo(args.metrics, args.out, progress=False if args.quiet else None, stream=sys.stdout)
        return 0
    from neurofit.scoring.demo import demo

    demo(out_dir=args.out, report_dir=args.report, progress=False if args.quiet else None, stream=sys.stdout)
    return 0


# ------------------------------------------------------------------------------------------------ score --features
def add_feature_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``neurofit score --features`` (besides ``--features`` itself).

    Example
    -------
    >>> p = argparse.ArgumentParser(); add_feature_arguments(p)
    >>> p.parse_args(["--stimulus-order", "ids.txt"]).step_ms
    10.0
    """
    group = parser.add_argument_group("precomputed features (--features)")
    group.add_argument("--stimulus-order", metavar="FILE",
                       help="the stimulus of each row, for feature files without ids: one id per line (thingsvision's "
                            "file_names.txt works: image names stand for their ids) or a CSV with a stimulus_id column")
    group.add_argument("--stimulus-column", metavar="NAME", help="the CSV column of --stimulus-order holding the ids")
    group.add_argument("--step-ms", type=float, default=10.0, help="duration of one step of the features (default 10)")
    group.add_argument("--t0-ms", type=float, default=0.0,
                       help="start of step 0 after stimulus onset (default 0)")


MODEL_ONLY_FLAGS = (("--checkpoint", "checkpoint"), ("--arch", "arch"), ("--steps", "steps"),
                    ("--baseline", "baseline"))


def score_features_command(args: argparse.Namespace) -> int:
    """``neurofit score --features FILE --benchmark ID``: score, print the summary, write the ScoreSet.

    The twin is :func:`neurofit.scoring.precomputed.score_precomputed`.
    """
    from neurofit.extract.precomputed import read_features, read_stimulus_order
    from neurofit.runners.commands import runner_from_args
    from neurofit.scoring.precomputed import score_precomputed

    used = [flag for flag, name in MODEL_ONLY_FLAGS if getattr(args, name, None) is not None]
    if getattr(args, "weights", "auto") != "auto":
        used.append("--weights")
    if used:
        raise NeurofitError(f"{used[0]} applies to a model; --features are precomputed")
    if args.stimulus_column and not args.stimulus_order:
        raise NeurofitError("--stimulus-column names a column of --stimulus-order; give that file")
    recording = stimuli = None
    if args.recording is not None:
        from neurofit.data.io import read_recording

        recording = read_recording(args.recording)
    if args.stimuli is not None:
        if args.recording is None:
            raise NeurofitError("--stimuli goes with --recording")
        from neurofit.data.stimuli import read_stimulus_set

        stimuli = read_stimulus_set(args.stimuli)
    ids = read_stimulus_order(args.stimulus_order, args.stimulus_column) if args.stimulus_order else None
    acts = read_features(args.features, ids, step_ms=args.step_ms, t0_ms=args.t0_ms)
    out = args.out or Path(args.out_dir or ".") / f"{Path(args.features).stem}-{Path(args.benchmark).stem}.nc"
    runner = runner_from_args(args)
    try:
        scores = score_precomputed(acts, args.benchmark, layers=args.layers, recording=recording, stimuli=stimuli,
                                   grid=args.grid, device=args.device, out=out, work_dir=args.work_dir,
                                   progress=False if args.quiet else None, runner=runner, metric=args.metric)
    finally:
        if runner is not None:
            runner.close()
    _print_scores(scores, out)
    return 0
