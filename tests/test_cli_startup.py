"""The command line answers fast: building the parser and every ``--help`` import no heavy library.

Timings in a test are not benchmarks (the machine is shared), so the time limit is generous; what the test
really pins down is that torch, sklearn, matplotlib, xarray, scipy, statsmodels and pandas stay unimported.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from neurofit.cli import build_parser, main

HEAVY = ("torch", "sklearn", "matplotlib", "xarray", "scipy", "statsmodels", "pandas", "dask")

_PROBE = """
import json, sys, time
start = time.perf_counter()
from neurofit.cli import main
for argv in {argvs!r}:
    try:
        main(argv)
    except SystemExit:
        pass
print(json.dumps({{"seconds": time.perf_counter() - start,
                   "heavy": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def _probe(argvs: list[list[str]]) -> dict:
    code = _PROBE.format(argvs=argvs, heavy=HEAVY)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _subcommands() -> list[list[str]]:
    parser = build_parser()
    out = []
    for action in parser._subparsers._group_actions:  # the registered sub-commands and their own actions
        for name, sub in action.choices.items():
            out.append([name, "--help"])
            for inner in sub._subparsers._group_actions if sub._subparsers else []:
                out += [[name, child, "--help"] for child in inner.choices]
    return out


def test_help_of_every_command_imports_no_heavy_library_and_answers_within_the_margin():
    commands = [["--help"], *_subcommands()]
    assert ["benchmarks", "list", "--help"] in commands and ["score", "--help"] in commands
    result = _probe(commands)
    assert result["heavy"] == [], f"--help imported {result['heavy']}"
    # 1 s is the target on an idle machine; a loaded shared machine gets a generous margin
    assert result["seconds"] < 10, result


def test_score_help_points_to_the_benchmark_list(capsys):
    with pytest.raises(SystemExit):
        main(["score", "--help"])
    assert "neurofit benchmarks list" in " ".join(capsys.readouterr().out.split())


def test_benchmarks_list_names_every_benchmark_with_its_ceiling(capsys):
    from neurofit.scoring.benchmark import list_benchmarks

    assert main(["benchmarks", "list"]) == 0
    text = capsys.readouterr().out
    for bench_id in list_benchmarks():
        assert f"\n{bench_id} " in text
    assert "none: r only" in text and "25 bins, 0-250 ms" in text
