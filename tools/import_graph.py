"""Which neurofit package imports which: the import graph of the library, from its source (ast, nothing imported).

    python tools/import_graph.py            # package -> package edges, upward imports flagged
    python tools/import_graph.py --modules  # the module-level detail behind each edge

A package is the first name under ``neurofit`` (``neurofit.scoring.fit`` is in ``scoring``; top-level modules
such as ``neurofit.scoreset`` count as their own package), except that every ``*commands`` module is counted
with ``neurofit.cli`` as the command-line shell (``cli``). Each import is classified as ``top`` (module
level), ``deferred`` (inside a function: runs when the function is called) or ``typing`` (under
``if TYPE_CHECKING:``, never at run time). ``LAYERS`` orders the packages from the leaves up; an import of a
package in a higher layer is *upward* and flagged, except the ones in ``ALLOWED_UPWARD`` (each with its reason).
The exit status is 1 when an unexplained upward import exists, so CI can run it.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "neurofit"

# lowest first; a package may import its own layer and the layers below
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "atomic", "hashing", "_lazy", "__init__"),
    ("regression",),  # math on tensors: imports only errors
    ("data", "metrics", "runners"),
    ("scoreset", "stats", "models"),
    ("extract", "report"),
    ("scoring", "analysis"),
    ("brainscore",),
    ("cli",),  # neurofit.cli and every package's commands module
)

# (importing module, imported package) -> why it is not a layering bug
ALLOWED_UPWARD: dict[tuple[str, str], str] = {
    ("neurofit.runners.multi", "scoring"): (
        "multi-model scoring lives beside the runners (issue 16 item 4) and calls score(); the import is "
        "deferred to call time, so importing any runner never imports the scoring stack"),
    ("neurofit.__init__", "*"): "the public API re-exports names from every package, resolved on first use",
    ("neurofit.cli", "*"): "the command line collects every package's commands",
}


def _package(module: str) -> str:
    parts = module.split(".")
    if parts[-1].endswith("commands"):
        return "cli"  # every package's command module is part of the command-line shell
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1] if len(parts) > 1 else parts
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        parts = module.split(".")
        keep = len(parts) - node.level + (1 if is_package else 0)
        base = ".".join(parts[:keep] + ([node.module] if node.module else []))
    if base == "neurofit":  # `from neurofit import x`: x is a submodule, or a name of the package itself
        return [f"neurofit.{a.name}" if (ROOT / a.name).is_dir() or (ROOT / f"{a.name}.py").exists() else "neurofit"
                for a in node.names]
    return [base]


def imports_of(path: Path) -> list[tuple[str, str, int]]:
    """``(imported neurofit module, kind, line)`` for every import of a neurofit module in ``path``."""
    module = _module_name(path)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, kind: str) -> None:
        for child in ast.iter_child_nodes(node):
            child_kind = kind
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)) and kind == "top":
                child_kind = "deferred"
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for stmt in child.body:
                    visit(ast.Module(body=[stmt], type_ignores=[]), "typing")
                for stmt in child.orelse:
                    visit(ast.Module(body=[stmt], type_ignores=[]), child_kind)
                continue
            if isinstance(child, ast.Import):
                found.extend((a.name, child_kind, child.lineno) for a in child.names if a.name.startswith("neurofit"))
            elif isinstance(child, ast.ImportFrom):
                targets = _resolve(child, module, path.name == "__init__.py")
                found.extend((t, child_kind, child.lineno) for t in targets if t.startswith("neurofit"))
            visit(child, child_kind)

    visit(tree, "top")
    return found


def layer_of(package: str) -> int:
    for k, names in enumerate(LAYERS):
        if package in names:
            return k
    raise SystemExit(f"package {package!r} is in no layer of tools/import_graph.py's LAYERS: add it")


def graph() -> tuple[dict[tuple[str, str], dict[str, int]], list[tuple[str, str, str, int, str]]]:
    """Package edges ``{(from, to): {kind: count}}`` and every module-level import ``(module, target, kind, line,
    target package)``."""
    edges: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    detail = []
    for path in sorted(ROOT.rglob("*.py")):
        module = _module_name(path)
        source = "__init__" if module == "neurofit" else _package(module)
        for target, kind, line in imports_of(path):
            dest = _package(target)
            detail.append((module, target, kind, line, dest))
            if dest != source:
                edges[(source, dest)][kind] += 1
    return edges, detail


def upward(detail: list[tuple[str, str, str, int, str]]) -> list[tuple[str, str, str, int, str, str]]:
    """Imports of a higher layer at run time (``typing`` imports excluded), with the allowance that covers each."""
    out = []
    for module, target, kind, line, dest in detail:
        source = "__init__" if module == "neurofit" else _package(module)
        if kind == "typing" or dest == source or layer_of(dest) <= layer_of(source):
            continue
        reason = ALLOWED_UPWARD.get((module if module != "neurofit" else "neurofit.__init__", dest)) or \
            ALLOWED_UPWARD.get((module if module != "neurofit" else "neurofit.__init__", "*"), "")
        out.append((module, target, kind, line, dest, reason))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", action="store_true", help="also list the module-level imports per edge")
    args = parser.parse_args(argv)
    edges, detail = graph()
    print("package -> package  (top-level / deferred / typing-only imports)")
    for (a, b), kinds in sorted(edges.items(), key=lambda e: (layer_of(e[0][0]), e[0][0], layer_of(e[0][1]), e[0][1])):
        mark = "  UPWARD" if layer_of(b) > layer_of(a) and set(kinds) != {"typing"} else ""
        counts = " / ".join(str(kinds.get(k, 0)) for k in ("top", "deferred", "typing"))
        print(f"  {a:>10} -> {b:<10} {counts}{mark}")
        if args.modules:
            for module, target, kind, line, dest in detail:
                source = "__init__" if module == "neurofit" else _package(module)
                if (source, dest) == (a, b):
                    print(f"      {module}:{line} {kind} {target}")
    flagged = upward(detail)
    print("\nupward imports (a lower layer importing a higher one at run time):")
    unexplained = 0
    for module, target, kind, line, _, reason in flagged:
        if module in ("neurofit", "neurofit.cli"):
            continue  # the public API and the CLI sit on top by design (ALLOWED_UPWARD)
        print(f"  {module}:{line} -> {target} ({kind}): {reason or 'NOT EXPLAINED'}")
        unexplained += not reason
    if not any(m not in ("neurofit", "neurofit.cli") for m, *_ in flagged):
        print("  none")
    print("\nlayers, lowest first: " + " < ".join("{" + ", ".join(names) + "}" for names in LAYERS))
    return 1 if unexplained else 0


if __name__ == "__main__":
    sys.exit(main())
