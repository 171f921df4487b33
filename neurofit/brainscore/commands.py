"""``neurofit export brainscore``: write a Brain-Score model plugin folder for a neurofit model."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from neurofit.cli import export_subparsers

    plugin = export_subparsers(subparsers).add_parser(
        "brainscore", help="a Brain-Score model plugin folder (model.py, __init__.py, weights, ...) for a model")
    plugin.add_argument("--model", required=True, metavar="NAME|CKPT",
                        help="a zoo name (its shipped checkpoint, else untrained weights) or a checkpoint file")
    plugin.add_argument("--arch", default=None, help="architecture of a checkpoint that does not name its own")
    plugin.add_argument("--out", required=True, type=Path, metavar="DIR", help="the plugin folder to create")
    plugin.add_argument("--identifier", default=None, help="the model's Brain-Score identifier (default: DIR's name)")
    plugin.add_argument("--layers", nargs="+", default=None, metavar="REGION=LAYER",
                        help="the layer standing for each region (default: from --scores, else layers named V1, "
                             "V2, V4, IT)")
    plugin.add_argument("--scores", type=Path, default=None, metavar="SCORESET",
                        help="take the layer and latency offset per region neurofit committed in this ScoreSet")
    plugin.add_argument("--visual-degrees", type=float, default=8.0, help="the model's field of view (default: 8)")
    plugin.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    plugin.set_defaults(func=_export_brainscore)


def _export_brainscore(args: argparse.Namespace) -> int:
    from neurofit.brainscore.plugin import export_plugin
    from neurofit.errors import NeurofitError

    layers = None
    if args.layers:
        layers = {}
        for item in args.layers:
            region, sep, layer = item.partition("=")
            if not sep or not region or not layer:
                raise NeurofitError(f"--layers {item!r}: give REGION=LAYER, e.g. IT=conv4")
            layers[region] = layer
    folder = export_plugin(args.model, args.out, identifier=args.identifier, arch=args.arch, region_layers=layers,
                           scores=args.scores, visual_degrees=args.visual_degrees, overwrite=args.overwrite)
    print(f"{folder}: Brain-Score plugin for {args.identifier or folder.name}; copy it into "
          "brainscore_vision/models/ (or submit it) to score it on Brain-Score")
    return 0
