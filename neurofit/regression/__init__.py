"""The regression engine: PLS and ridge with cross-validation, per-site per-bin correlations, noise
ceilings and bootstrap intervals (DESIGN.md, "Regression engine").

The entry point is :func:`fit_and_score`; the pieces are importable on their own: :class:`PLS`,
:class:`Ridge`, :func:`make_splits`, :func:`pearson_r`, :func:`split_half_ceiling`,
:func:`brainscore_ceiling`, :func:`bootstrap_stimuli`, :func:`bootstrap_sites`.
"""

from neurofit.regression.bootstrap import bootstrap_sites, bootstrap_stimuli
from neurofit.regression.ceiling import brainscore_ceiling, ceil_scores, feve, split_half_ceiling
from neurofit.regression.correlation import pearson_r
from neurofit.regression.pls import PLS
from neurofit.regression.ridge import Ridge
from neurofit.regression.score import fit_and_score
from neurofit.regression.splits import make_splits

__all__ = [
    "PLS",
    "Ridge",
    "bootstrap_sites",
    "bootstrap_stimuli",
    "brainscore_ceiling",
    "ceil_scores",
    "feve",
    "fit_and_score",
    "make_splits",
    "pearson_r",
    "split_half_ceiling",
]
