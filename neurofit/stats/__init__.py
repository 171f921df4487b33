"""Statistics over ScoreSets: paired tests over sites, multiple-comparison control, bootstrap CIs.

>>> from neurofit.stats import compare_scoresets, fdr, paired_tests
"""

from neurofit.stats.bootstrap import bootstrap_median_difference, bootstrap_median_difference_stimuli
from neurofit.stats.compare import compare_many, compare_scoresets
from neurofit.stats.multiple import fdr
from neurofit.stats.paired import paired_tests

__all__ = [
    "bootstrap_median_difference",
    "bootstrap_median_difference_stimuli",
    "compare_many",
    "compare_scoresets",
    "fdr",
    "paired_tests",
]
