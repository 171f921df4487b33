"""neurofit: score vision models, above all ConvRNNs, against visual-cortex recordings.

The documented API, one Python twin per command (``neurofit COMMAND``), re-exported here lazily (importing
:mod:`neurofit` does not import torch). Everything else is importable from its own module.

Data (``neurofit data``)
    :func:`load_dataset`, :func:`fetch_dataset`, :func:`verify_dataset`, :func:`list_datasets`,
    :func:`generate_synthetic_ventral`, :func:`convert_brainio`, :func:`read_recording`,
    :func:`write_recording`, :func:`make_recording`, :func:`validate`, :class:`StimulusSet`
Models (``neurofit models``, ``neurofit train``)
    :func:`load_model`, :func:`list_models`, :func:`wrap`, :func:`wrap_static`, :func:`train_model`
Scoring (``neurofit benchmarks``, ``neurofit score``, ``neurofit demo``)
    :func:`load_benchmark`, :func:`list_benchmarks`, :func:`score`, :func:`score_models`, :class:`DaskRunner`,
    :func:`read_scoreset`, :func:`write_scoreset`, :func:`demo`
Comparison and report (``neurofit compare``, ``neurofit report``)
    :func:`compare`, :func:`report`
Analysis (``neurofit analyze``)
    :func:`analyze_dynamics`
Errors
    :class:`NeurofitError`: every user mistake; the CLI prints it as one line with exit status 2.

>>> import neurofit
>>> neurofit.__version__
'0.1.0'
>>> neurofit.load_benchmark("synthetic-ventral-it-temporal").regions
('IT',)
"""

from __future__ import annotations

__version__ = "0.1.0"

# public name -> "module:attribute"; resolved on first access. Keep in step with the docstring above
# (tests/test_packaging.py checks that the two agree and that every name has a runnable example).
_PUBLIC: dict[str, str] = {
    # data
    "load_dataset": "neurofit.data.fetch:load_dataset",
    "fetch_dataset": "neurofit.data.fetch:fetch_dataset",
    "verify_dataset": "neurofit.data.fetch:verify_dataset",
    "list_datasets": "neurofit.data.fetch:list_datasets",
    "generate_synthetic_ventral": "neurofit.data.synthetic:generate_synthetic_ventral",
    "convert_brainio": "neurofit.data.loaders.brainio:convert_brainio",
    "read_recording": "neurofit.data.io:read_recording",
    "write_recording": "neurofit.data.io:write_recording",
    "make_recording": "neurofit.data.recording:make_recording",
    "validate": "neurofit.data.recording:validate",
    "StimulusSet": "neurofit.data.stimuli:StimulusSet",
    # models
    "load_model": "neurofit.models.checkpoint:load_model",
    "list_models": "neurofit.models:list_models",
    "wrap": "neurofit.models.hooks:wrap",
    "wrap_static": "neurofit.models.hooks:wrap_static",
    "train_model": "neurofit.models.train:train_model",
    # scoring
    "load_benchmark": "neurofit.scoring.benchmark:load_benchmark",
    "list_benchmarks": "neurofit.scoring.benchmark:list_benchmarks",
    "score": "neurofit.scoring.score:score",
    "score_models": "neurofit.runners.multi:score_models",
    "DaskRunner": "neurofit.runners.dask_runner:DaskRunner",
    "read_scoreset": "neurofit.scoreset:read_scoreset",
    "write_scoreset": "neurofit.scoreset:write_scoreset",
    "demo": "neurofit.scoring.demo:demo",
    # comparison, report, analysis
    "compare": "neurofit.stats.compare:compare",
    "report": "neurofit.report:report",
    "analyze_dynamics": "neurofit.analysis.dynamics:analyze_dynamics",
    # errors
    "NeurofitError": "neurofit.errors:NeurofitError",
}


from neurofit._lazy import lazy_exports  # noqa: E402 - after __version__, which neurofit's modules import

__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, keep=True)


__all__ = ["__version__", *_PUBLIC]
