"""Figures and reports from ScoreSets.

>>> from neurofit.report import report
>>> index = report(["ff.nc", "rec.nc"], "reports/demo")  # doctest: +SKIP

``neurofit.report(...)`` calls the same function.
"""

import sys
import types

from neurofit._lazy import lazy_exports

__all__ = ["report"]


# lazy: `neurofit report --help` must not import matplotlib
__getattr__, __dir__ = lazy_exports(__name__, {"report": "neurofit.report.html"})


class _CallableModule(types.ModuleType):
    """``neurofit.report`` is both this package and the public function (DESIGN.md re-exports ``report``):
    once the package is imported, ``neurofit.report`` is the module, so calling the module calls the function."""

    def __call__(self, *args, **kwargs):
        from neurofit.report.html import report

        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
