"""``neurofit train``: train a zoo model on a stimulus set's categories and write a safetensors checkpoint.

The Python twin is :func:`neurofit.models.train.train_model`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from typing import Any

from neurofit.errors import NeurofitError


def parse_model_args(items: list[str] | None) -> dict[str, Any]:
    """``["width=8", "channels=[8,16]"]`` -> ``{"width": 8, "channels": [8, 16]}`` (values are JSON, else str).

    Example
    -------
    >>> parse_model_args(["width=8", "cell=rgc", "channels=[8, 16]"])
    {'width': 8, 'cell': 'rgc', 'channels': [8, 16]}
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise NeurofitError(f"--arg {item!r} must look like KEY=VALUE (e.g. --arg width=8)")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _train_command(args: argparse.Namespace) -> int:
    import torch

    from neurofit.models.train import train_model

    if args.threads:
        torch.set_num_threads(args.threads)
    command = "neurofit " + " ".join(shlex.quote(a) for a in (args.argv or sys.argv[1:]))
    _, metrics = train_model(
        args.model, args.stimuli, epochs=args.epochs, loss="all_steps" if args.loss == "all" else "last_step",
        lr=args.lr, batch_size=args.batch_size, seed=args.seed, label_column=args.label_column,
        holdout=args.holdout, out=args.out, size=args.size, steps=args.steps, augment=not args.no_augment,
        difficulty=args.difficulty, data_seed=args.data_seed, ponder_weight=args.ponder_weight,
        **({} if args.per_level is None else {"per_level": args.per_level}),
        model_kwargs=parse_model_args(args.arg), progress=None if not args.no_progress else False,
        command=command,
    )
    steps = ", ".join(f"{a:.3f}" for a in metrics["accuracy_per_step"])
    print(f"held-out accuracy per step ({metrics['n_holdout']} images, chance {metrics['chance']:.3f}): {steps}")
    print(f"wrote {metrics['out']} in {metrics['seconds']} s")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``neurofit train``."""
    p = subparsers.add_parser("train", help="train a zoo model to classify a stimulus set's categories",
                              description="Train a zoo model on a stimulus set's categories (loss over all "
                                          "driven steps or the last one) and write a safetensors checkpoint "
                                          "with its metadata and held-out accuracy per step.")
    p.add_argument("--model", required=True, help="zoo name (see `neurofit models list`)")
    p.add_argument("--stimuli", default="synthetic-ventral",
                   help="'synthetic-ventral' (default), a difficulty-graded task ('mazes', 'pathfinder'), a "
                        "stimulus-set CSV, or a folder of class sub-folders")
    p.add_argument("--difficulty", type=int, nargs="+", metavar="LEVEL",
                   help="task levels to train on: maze sizes (9 13 17) or PathFinder contour segments (6 9 14)")
    p.add_argument("--per-level", type=int, help="task images per difficulty level (default 2000)")
    p.add_argument("--data-seed", type=int, default=1, help="seed of the task's image draws (default 1)")
    p.add_argument("--epochs", type=int, required=True)
    p.add_argument("--out", required=True, help="checkpoint path, *.safetensors")
    p.add_argument("--loss", choices=("all", "last"), default="all",
                   help="cross-entropy over all driven steps (default) or at the last step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=None,
                   help="image side in pixels (default 32; tasks are shown at their own canvas size)")
    p.add_argument("--steps", type=int, default=None, help="movie length (default: the model's)")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--holdout", type=float, default=0.2, help="held-out fraction per class (default 0.2)")
    p.add_argument("--label-column", default="category_name")
    p.add_argument("--ponder-weight", type=float, default=0.01,
                   help="weight of the ACT ponder cost (adaptive-halting models; default 0.01)")
    p.add_argument("--arg", action="append", metavar="KEY=VALUE",
                   help="factory argument of the model, value as JSON (repeatable), e.g. --arg width=8")
    p.add_argument("--no-augment", action="store_true", help="no random flips/crops")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train_command, argv=None)
