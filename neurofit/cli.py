"""The ``neurofit`` command: a thin shell over the Python API.

Each package that offers commands has a ``commands`` module with ``register(subparsers)``; every
command's work is done by a public function that notebooks can call directly. User mistakes
(:class:`neurofit.errors.NeurofitError`, missing files) are printed as one line with exit status 2.

The library speaks Python (``layers=``, ``cache_dir=``); :func:`in_cli_terms` translates the parameters a
message names into the command's flags (``--layers``, ``--cache-dir``), so no library module names a flag. A
parameter spelled differently on the command line (``data=(recording, stimulus_set)``: ``--recording FILE
--stimuli CSV``) is declared by its command module in ``PARAMETER_SPELLINGS``.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Sequence

from neurofit import __version__
from neurofit.errors import NeurofitError

# Modules that add sub-commands, in the order they appear in `neurofit --help`.
COMMAND_MODULES: tuple[str, ...] = (
    "neurofit.data.commands",
    "neurofit.models.commands",
    "neurofit.models.train_commands",
    "neurofit.report.commands",
    "neurofit.scoring.commands",
    "neurofit.analysis.commands",
    "neurofit.brainscore.commands",
)


def export_subparsers(subparsers: argparse._SubParsersAction) -> argparse._SubParsersAction:
    """The sub-commands of ``neurofit export`` (created by whichever module registers an export first).

    Example
    -------
    >>> sub = argparse.ArgumentParser().add_subparsers()
    >>> export_subparsers(sub) is export_subparsers(sub)
    True
    """
    export = subparsers.choices.get("export")
    if export is None:
        export = subparsers.add_parser("export", help="write results or models in other tools' formats")
        export.set_defaults(func=lambda args: export.print_help() or 2)
        export._export_formats = export.add_subparsers(dest="export_format", metavar="FORMAT")  # type: ignore[attr-defined]
    return export._export_formats  # type: ignore[attr-defined]


def build_parser() -> argparse.ArgumentParser:
    """Build the argument parser with every registered sub-command.

    Example
    -------
    >>> parser = build_parser()
    >>> parser.prog
    'neurofit'
    """
    parser = argparse.ArgumentParser(
        prog="neurofit",
        description="Score vision models (above all ConvRNNs) against visual-cortex recordings.",
    )
    parser.add_argument("--version", action="version", version=f"neurofit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def option_strings(parser: argparse.ArgumentParser) -> set[str]:
    """Every ``--flag`` of ``parser`` and of all its sub-commands.

    Example
    -------
    >>> "--layers" in option_strings(build_parser())
    True
    """
    found: set[str] = set()
    for action in parser._actions:
        found.update(s for s in action.option_strings if s.startswith("--"))
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found |= option_strings(sub)
    return found


def parameter_spellings() -> dict[str, str]:
    """Parameters whose command-line spelling is not ``--name``, as the command modules declare them.

    Example
    -------
    >>> parameter_spellings()["data"]
    '--recording FILE --stimuli CSV'
    """
    found: dict[str, str] = {}
    for name in COMMAND_MODULES:
        found.update(getattr(importlib.import_module(name), "PARAMETER_SPELLINGS", {}))
    return found


# a parameter named in a library message: ``name=`` at the end of a phrase, ``name='value'``, ``name=True``
# (a switch) or ``name=(...)`` (a value only Python can pass, translated only through a declared spelling)
_PARAMETER = re.compile(r"(?<![\w.-])([a-z][a-z0-9_]*)=(?:'([^']*)'|(True)\b|(\([^()]*\))|(?=[\s,;:)]|$))")


def in_cli_terms(message: str, flags: set[str], spellings: dict[str, str] | None = None) -> str:
    """``message`` with every parameter that is also a command-line flag written as that flag.

    ``spellings`` maps the parameters that the command line spells differently to their spelling.

    Example
    -------
    >>> in_cli_terms("name the layer of each region with layers= (region=layer)", {"--layers"})
    'name the layer of each region with --layers (region=layer)'
    >>> in_cli_terms("stimuli='holdout' needs a checkpoint; cache_dir= is missing", {"--stimuli", "--cache-dir"})
    '--stimuli holdout needs a checkpoint; --cache-dir is missing'
    >>> in_cli_terms("use grid=True; pass data=(recording, stimulus_set)", {"--grid"}, {"data": "--recording FILE"})
    'use --grid; pass --recording FILE'
    """
    def flag(match: re.Match[str]) -> str:
        if spellings and match.group(1) in spellings:
            return spellings[match.group(1)]
        name = "--" + match.group(1).replace("_", "-")
        if name not in flags or match.group(4) is not None:
            return match.group(0)
        return name if match.group(2) is None else f"{name} {match.group(2)}"

    return _PARAMETER.sub(flag, message)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit status.

    Example
    -------
    >>> main(["--help"])  # doctest: +SKIP
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is not None and getattr(args, "argv", False) is None:
        args.argv = list(argv)  # a command that records its own command line records this one, not sys.argv
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        status = args.func(args)
    except NeurofitError as err:
        print(f"neurofit: error: {in_cli_terms(str(err), option_strings(parser), parameter_spellings())}",
              file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        missing = err.filename if err.filename else str(err)
        print(f"neurofit: error: file not found: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurofit: interrupted; finished work units are saved", file=sys.stderr)
        return 130
    return int(status or 0)


def run_commands(commands: dict[str, list[str]], *, print_only: bool = False) -> int:
    """Run ``neurofit`` command lines in order (each named, echoed to stderr), stopping at the first failure.

    A report script's regeneration step: ``print_only`` prints the command lines instead (quoted for a
    shell) and runs nothing. Returns the first non-zero exit status, else 0.

    Example
    -------
    >>> run_commands({"list": ["benchmarks", "list"]}, print_only=True)
    neurofit benchmarks list
    0
    """
    import shlex

    for name, argv in commands.items():
        line = "neurofit " + " ".join(shlex.quote(a) for a in argv)
        if print_only:
            print(line)
            continue
        print(f"[{name}] {line}", file=sys.stderr)
        status = main(argv)
        if status:
            return status
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
