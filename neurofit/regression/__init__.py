"""The regression engine, math on arrays and tensors: PLS and ridge with cross-validation, per-site
per-bin Pearson correlations and noise ceilings (DESIGN.md, "Regression engine").

A leaf: it imports nothing from the rest of neurofit but :mod:`neurofit.errors` (recordings, benchmarks
and ScoreSets live above it). Scoring precomputed features is :func:`neurofit.scoring.features.score_features`;
the bootstraps of scores are in :mod:`neurofit.stats.bootstrap`. The pieces: the scikit-learn estimators
:class:`PLS`, :class:`RidgeCV` and :class:`Ridge`, :func:`make_splits`, :func:`pearson_r`,
:func:`split_half_ceiling`, :func:`brainscore_ceiling`; the device and dtype are chosen once with
:func:`set_backend` (or an estimator's ``device=``/``dtype=``).
"""

from neurofit.regression.backend import get_backend, set_backend
from neurofit.regression.ceiling import brainscore_ceiling, ceil_scores, feve, split_half_ceiling
from neurofit.regression.correlation import pearson_r
from neurofit.regression.pls import PLS
from neurofit.regression.ridge import Ridge, RidgeCV
from neurofit.regression.splits import make_splits

__all__ = [
    "PLS",
    "Ridge",
    "RidgeCV",
    "brainscore_ceiling",
    "ceil_scores",
    "feve",
    "make_splits",
    "get_backend",
    "pearson_r",
    "set_backend",
    "split_half_ceiling",
]
