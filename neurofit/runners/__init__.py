"""Where the work units of a scoring run execute: one package for every runner.

* :mod:`neurofit.runners.local`: :class:`WorkUnit`, the resumable :class:`UnitStore` and :class:`LocalRunner`
  (in this process).
* :mod:`neurofit.runners.dask_runner`: :class:`DaskRunner`, the same ``map`` on a ``dask.distributed``
  cluster (a LocalCluster or a running scheduler).
* :mod:`neurofit.runners.arrays`: shipping large arrays to the workers through a shared directory.
* :mod:`neurofit.runners.multi`: :func:`~neurofit.runners.multi.score_models`, several models on one
  benchmark with either runner.
* :mod:`neurofit.runners.commands`: the command-line options that choose a runner.

>>> from neurofit.runners import LocalRunner, WorkUnit
>>> WorkUnit("score", "IT", {"layer": "V4"}, 0).fold
0
"""

from neurofit.runners.local import LocalRunner, Result, UnitStore, WorkUnit

__all__ = ["LocalRunner", "Result", "UnitStore", "WorkUnit"]
