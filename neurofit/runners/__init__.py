"""Where the work units of a scoring run execute: one package for every runner.

* :mod:`neurofit.runners.local`: :class:`WorkUnit`, the resumable :class:`UnitStore` and :class:`LocalRunner`
  (in this process).
* :mod:`neurofit.runners.dask_runner`: :class:`DaskRunner`, the same ``map`` on a ``dask.distributed``
  cluster (a LocalCluster or a running scheduler).
* :mod:`neurofit.runners.arrays`: shipping large arrays to the workers through a shared directory.
* :mod:`neurofit.runners.multi`: :func:`~neurofit.runners.multi.score_models`, several models on one
  benchmark with either runner.
* :mod:`neurofit.runners.commands`: the command-line options that choose a runner.

Layering: scoring imports the runners (``scoring.fit``, ``scoring.score``), never the reverse at import time.
The one exception is by design: :mod:`~neurofit.runners.multi` composes a runner with
:func:`neurofit.scoring.score.score` (multi-model scoring beside the runners, issue 16) and imports it when a
run starts, not at module level. So importing any runner imports no scoring, torch or model code (dask workers
and the command line stay light), and ``scoring`` may import ``runners.multi`` at top level without a cycle.
``tools/import_graph.py`` lists this edge as the one allowed upward import; ``tests/test_core_layout.py``
keeps it that way.

>>> from neurofit.runners import LocalRunner, WorkUnit
>>> WorkUnit("score", "IT", {"layer": "V4"}, 0).fold
0
"""

from neurofit.runners.local import LocalRunner, Result, UnitStore, WorkUnit

__all__ = ["LocalRunner", "Result", "UnitStore", "WorkUnit"]
