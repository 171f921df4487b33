"""``neurofit models list``: every zoo model with its parameter count, convention, steps and layers.

The Python twin is :func:`neurofit.models.catalog.list_models`.
"""

from __future__ import annotations

import argparse

from neurofit.models.catalog import format_models, list_models


def _list_command(args: argparse.Namespace) -> int:
    print(format_models(list_models()))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``neurofit models list``."""
    models = subparsers.add_parser("models", help="the model zoo")
    models.set_defaults(func=lambda _args: models.print_help() or 2)
    sub = models.add_subparsers(dest="models_command", metavar="ACTION")
    listing = sub.add_parser("list", help="list zoo models with parameter counts, conventions, layers and weights "
                                          "(trained: a shipped checkpoint that scoring the name uses)")
    listing.set_defaults(func=_list_command)
