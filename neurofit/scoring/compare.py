"""Score several models on one benchmark and compare them (the statistics live in :mod:`neurofit.stats.compare`).

``neurofit compare --models A B --benchmark ID`` runs :func:`compare_models`: every model is scored, the first is
the reference (A), and each other model is compared with it (``B - A``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import xarray as xr


def compare_models(models: Sequence[Any], benchmark: str, *, out_dir: str | os.PathLike[str] | None = None,
                   compare_options: dict[str, Any] | None = None, **score_options: Any) -> xr.Dataset:
    """Score each model on ``benchmark`` (:func:`neurofit.scoring.score.score`) and compare them with the first.

    ``out_dir`` keeps each ScoreSet as ``<k>-<model>.nc``; ``compare_options`` go to
    :func:`neurofit.stats.compare.compare`.

    Example
    -------
    >>> result = compare_models(["cornet_z", "cornet_rt"], "synthetic-ventral-it-temporal")  # doctest: +SKIP
    """
    from neurofit.scoring.score import score
    from neurofit.stats.compare import compare

    scoresets = []
    for k, model in enumerate(models):
        out = None if out_dir is None else Path(out_dir) / f"{k}-{Path(str(model)).stem}.nc"
        scoresets.append(score(model, benchmark, out=out, **score_options))
    return compare(*scoresets, **(compare_options or {}))
