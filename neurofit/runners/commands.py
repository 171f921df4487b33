"""The runner options of the commands that score (``--runner``, ``--scheduler``, ``--workers``, ...).

Command-line wiring only: the runners themselves (:mod:`neurofit.runners.local`,
:mod:`neurofit.runners.dask_runner`) take Python arguments and never see argparse.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from neurofit.errors import NeurofitError

if TYPE_CHECKING:  # `neurofit --help` stays free of dask: the runner is imported when one is asked for
    from neurofit.runners.dask_runner import DaskRunner


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--runner``, ``--scheduler``, ``--workers`` and ``--cache-dir`` to a sub-command.

    Example
    -------
    >>> p = argparse.ArgumentParser()
    >>> add_runner_arguments(p)
    >>> p.parse_args(["--runner", "dask", "--workers", "2"]).workers
    2
    """
    group = parser.add_argument_group("where the fits run")
    group.add_argument("--runner", choices=("local", "dask"), default="local",
                       help="local: in this process (default); dask: on a dask.distributed cluster")
    group.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a running dask scheduler (--runner dask)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="start a LocalCluster of N worker processes (--runner dask; default: CPU cores)")
    group.add_argument("--cache-dir", metavar="DIR",
                       help="directory all dask workers see, for the features they read (required with --scheduler)")
    group.add_argument("--concurrent-models", type=int, default=1, metavar="N",
                       help="with --models and --runner dask: score N models at once, each in its own client "
                            "process (default 1)")


def runner_from_args(args: argparse.Namespace) -> DaskRunner | None:
    """The runner the command-line options ask for (``None``: the local runner)."""
    from neurofit.runners.dask_runner import DaskRunner

    if args.runner == "local":
        if args.scheduler or args.workers is not None or args.concurrent_models != 1:
            raise NeurofitError("--scheduler, --workers and --concurrent-models need --runner dask")
        return None
    return DaskRunner(args.scheduler, workers=args.workers, cache_dir=args.cache_dir,
                      concurrent_runs=args.concurrent_models, progress=False if getattr(args, "quiet", False) else None)
