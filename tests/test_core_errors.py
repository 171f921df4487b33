"""Library errors speak the library's language (``layers=``); only the command line names its flags (issue 16)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import neurofit
from neurofit.cli import build_parser, in_cli_terms, option_strings, parameter_spellings
from neurofit.errors import NeurofitError
from neurofit.scoring.benchmark import load_benchmark
from neurofit.scoring.data import load_benchmark_data
from neurofit.scoring.resolve import _parse_layers

PACKAGE = Path(neurofit.__file__).parent
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# flags of other tools' commands that a library error may quote, and why
OTHER_TOOLS = {"--nthreads": "`dask worker ... --nthreads 1`, dask's own command (neurofit/runners/dask_runner.py)"}


def _is_command_line(path: Path) -> bool:
    return path.name == "cli.py" or path.name.endswith("commands.py")


def _error_texts(path: Path):
    """Every string literal inside a ``raise`` or a ``warnings.warn(...)`` of ``path``, with its line."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) != "warn":
            continue
        if not isinstance(node, (ast.Raise, ast.Call)):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                yield sub.lineno, sub.value


def test_no_library_error_names_a_command_line_flag():
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if not _is_command_line(p)]
    assert len(modules) > 50
    found = [f"{path.relative_to(PACKAGE.parent)}:{line}: {flag}" for path in modules
             for line, text in _error_texts(path) for flag in FLAG.findall(text) if flag not in OTHER_TOOLS]
    assert not found, "library errors name CLI flags (write the parameter, e.g. layers=; the CLI translates):\n" + \
        "\n".join(found)


def test_the_scan_finds_a_flag_in_an_error(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text('def f(x):\n    raise ValueError(f"{x}: --layers names no layer")\n')
    assert [FLAG.findall(text) for _, text in _error_texts(bad)] == [["--layers"]]


def test_layer_error_names_the_parameter_and_the_cli_writes_the_flag():
    with pytest.raises(NeurofitError, match=r"^layers= names no layer for region 'IT'") as err:
        _parse_layers(["V4=a"], ["V4", "IT"], ["a", "b"])
    assert "--" not in str(err.value)
    flags = option_strings(build_parser())
    assert in_cli_terms(str(err.value), flags, parameter_spellings()).startswith("--layers names no layer")


def test_missing_dataset_error_names_data_and_the_cli_writes_recording_and_stimuli():
    bench = load_benchmark("synthetic-ventral-it-temporal").replace(dataset="no-such-dataset-id")
    with pytest.raises(NeurofitError, match=r"data=\(recording, stimulus_set\)") as err:
        load_benchmark_data(bench)
    assert "--" not in str(err.value)
    text = in_cli_terms(str(err.value), option_strings(build_parser()), parameter_spellings())
    assert text.endswith("pass your own copy as --recording FILE --stimuli CSV")


def test_switches_are_translated_and_python_only_values_kept():
    flags = option_strings(build_parser())
    assert in_cli_terms("score it with grid=True instead", flags) == "score it with --grid instead"
    assert in_cli_terms("pass data=(a, b)", flags) == "pass data=(a, b)"  # no spelling given: unchanged
