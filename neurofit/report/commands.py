"""``neurofit report SCORES.nc... --out DIR``: the command-line shell over :func:`neurofit.report.report`."""

from __future__ import annotations

import argparse

# the choices of neurofit.stats.multiple.METHODS, spelt out so that --help imports no statistics
CORRECTIONS = ("bonferroni", "fdr_bh", "fdr_by", "holm")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``report`` sub-command.

    Example
    -------
    >>> parser = argparse.ArgumentParser(prog="neurofit")
    >>> register(parser.add_subparsers())
    >>> parser.parse_args(["report", "a.nc", "--out", "r"]).out
    'r'
    """
    parser = subparsers.add_parser(
        "report",
        help="figures (PDF, SVG, PNG) and an offline HTML report from ScoreSets",
        description="Turn ScoreSets (NetCDF files written by `neurofit score`) into figures and one HTML page "
                    "with score tables, model comparisons, a methods paragraph and provenance.",
    )
    parser.add_argument("scores", nargs="+", metavar="SCORES.nc", help="ScoreSet files")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (index.html + figures/)")
    parser.add_argument("--reference", metavar="MODEL_ID",
                        help="model the others are compared with (default: the first file's model)")
    parser.add_argument("--window", nargs=2, type=float, metavar=("START_MS", "END_MS"),
                        help="time window for the table and the per-site scatter (default: all bins)")
    parser.add_argument("--correction", choices=CORRECTIONS, default="fdr_bh",
                        help="multiple-comparison correction across bins, regions and models (default fdr_bh)")
    parser.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    parser.add_argument("--n-boot", type=int, default=1000, help="bootstrap draws for CIs (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from neurofit.report import report

    index = report(
        args.scores,
        args.out,
        reference=args.reference,
        window=tuple(args.window) if args.window else None,
        method=args.correction,
        alpha=args.alpha,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    print(index)
    return 0
