"""Benchmarks -> scores: benchmark files, time mapping, layer commitment, runners, ScoreSets, comparisons.

>>> from neurofit.scoring import load_benchmark
>>> load_benchmark("synthetic-ventral-it-temporal").regions
('IT',)

The heavy parts (models, regression) are imported on first use: ``score`` lives in :mod:`neurofit.scoring.score`
(also ``neurofit.score``); comparisons are :mod:`neurofit.stats.compare` (``neurofit.compare``).
"""

from neurofit.scoring.benchmark import Benchmark, list_benchmarks, load_benchmark

__all__ = ["Benchmark", "list_benchmarks", "load_benchmark"]
