"""The package layout of issue 16: which package imports which (tools/import_graph.py) stays as designed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _import_graph():
    spec = importlib.util.spec_from_file_location("import_graph", REPO / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_package_imports_a_higher_layer_without_a_stated_reason(capsys):
    assert _import_graph().main([]) == 0, capsys.readouterr().out


def test_regression_is_a_leaf_that_imports_only_errors():
    edges, _ = _import_graph().graph()
    assert {b for (a, b) in edges if a == "regression"} == {"errors"}


def test_the_one_upward_import_is_multi_model_scoring_and_it_is_deferred():
    graph = _import_graph()
    _, detail = graph.graph()
    flagged = [(module, kind) for module, _, kind, _, _, _ in graph.upward(detail)
               if module not in ("neurofit", "neurofit.cli")]
    assert flagged and {module for module, _ in flagged} == {"neurofit.runners.multi"}
    assert {kind for _, kind in flagged} == {"deferred"}


def test_importing_the_runners_imports_no_scoring():
    code = ("import sys, neurofit.runners, neurofit.runners.multi, neurofit.runners.local, neurofit.runners.arrays; "
            "print(sorted(m for m in sys.modules if m.startswith('neurofit.scoring')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_the_graph_tells_top_level_deferred_and_typing_imports_apart():
    graph = _import_graph()
    multi = graph.imports_of(graph.ROOT / "runners" / "multi.py")
    assert ("neurofit.scoring.score", "deferred") in {(target, kind) for target, kind, _ in multi}
    assert ("neurofit.runners.dask_runner", "typing") in {(target, kind) for target, kind, _ in multi}
    assert ("neurofit.errors", "top") in {(target, kind) for target, kind, _ in multi}
