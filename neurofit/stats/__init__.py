"""Statistics over ScoreSets: the one home of bootstraps, model comparisons and multiple-comparison control.

* :mod:`neurofit.stats.bootstrap`: every bootstrap (``n_boot`` draws, ``ci=0.95`` coverage).
* :mod:`neurofit.stats.compare`: comparing ScoreSets; every difference is the second minus the reference.
* :mod:`neurofit.stats.multiple`: FDR/Holm/Bonferroni and the intervals that agree with them.
* :mod:`neurofit.stats.paired`: Wilcoxon signed-rank and paired t-tests over sites.

Names are resolved lazily, so importing :mod:`neurofit.stats` imports neither scipy nor statsmodels.

>>> from neurofit.stats import compare_scoresets, fdr
"""

from __future__ import annotations

from neurofit._lazy import lazy_exports

_PUBLIC = {
    "compare": "neurofit.stats.compare",
    "compare_scoresets": "neurofit.stats.compare",
    "compare_many": "neurofit.stats.compare",
    "fdr": "neurofit.stats.multiple",
    "selection_level": "neurofit.stats.multiple",
    "paired_tests": "neurofit.stats.paired",
    "hierarchical_median": "neurofit.stats.bootstrap",
}


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC)


__all__ = sorted(_PUBLIC)
