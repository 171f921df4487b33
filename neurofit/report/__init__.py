"""Figures and reports from ScoreSets.

>>> from neurofit.report import report
>>> index = report(["ff.nc", "rec.nc"], "reports/demo")  # doctest: +SKIP
"""

from neurofit.report.html import report

__all__ = ["report"]
