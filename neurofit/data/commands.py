"""``neurofit data ...``: generate, inspect, validate, list, fetch and verify datasets."""

from __future__ import annotations

import argparse
from pathlib import Path

from neurofit.data.info import describe_recording, validate_file


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser("data", help="generate, inspect, validate and fetch datasets")
    data_sub = data.add_subparsers(dest="data_command", metavar="DATA_COMMAND")
    data.set_defaults(func=lambda args: data.print_help() or 2)

    info = data_sub.add_parser("info", help="dims, regions, bins, repetitions and per-site reliability")
    info.add_argument("path", type=Path, help="a recording NetCDF file")
    info.set_defaults(func=_info)

    val = data_sub.add_parser("validate", help="check a recording against the data contract")
    val.add_argument("path", type=Path, help="a recording NetCDF file")
    val.add_argument("--stimuli", type=Path, default=None,
                     help="the stimulus set CSV whose ids the recording must use (default: PATH's .csv beside it)")
    val.set_defaults(func=_validate)


def _info(args: argparse.Namespace) -> int:
    print(describe_recording(args.path))
    return 0


def _validate(args: argparse.Namespace) -> int:
    print(validate_file(args.path, args.stimuli))
    return 0
