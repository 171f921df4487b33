"""The model zoo as a table: every zoo model with its parameter count, convention, steps, layers and weights.

The Python twin of ``neurofit models list`` (:mod:`neurofit.models.commands` prints :func:`format_models`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from neurofit.models.zoo import ZOO, get_factory

if TYPE_CHECKING:
    import pandas as pd


def _missing_family(name: str) -> str | None:
    """Why zoo model ``name`` cannot be built yet, if (only if) its family file does not exist."""
    module_name = ZOO[name].split(":")[0]
    try:
        importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        if err.name == module_name:
            return f"module {module_name} does not exist yet"
        raise
    return None


def list_models() -> pd.DataFrame:
    """One row per zoo model, built at its default (small, CPU-sized) configuration.

    Columns: ``name``, ``family`` (the file), ``params`` (trainable parameters), ``convention``
    (``sweep``/``biological``), ``default_steps``, ``layers`` (recordable layers, comma-separated, with
    their per-layer step counts where these differ from ``default_steps``), ``weights`` (``trained`` with the
    shipped checkpoint's file name, which scoring the name uses, or ``random init``: scoring it without a
    checkpoint scores an untrained network), ``available`` and ``note``.
    A model whose family file does not exist is listed as not available; any other failure to build a
    model is raised, not hidden.

    Example
    -------
    >>> table = list_models()
    >>> row = table.set_index("name").loc["cornet_rt"]
    >>> row["convention"], int(row["default_steps"]), row["weights"]
    ('biological', 5, 'random init')
    >>> table.set_index("name").loc["bl", "weights"]
    'trained (bl.safetensors)'
    """
    import pandas as pd

    from neurofit.errors import NeurofitError
    from neurofit.models.train import shipped_checkpoint

    def weights(name: str) -> str:
        try:
            return f"trained ({shipped_checkpoint(name).name})"
        except NeurofitError:
            return "random init"

    rows = []
    for name, target in ZOO.items():
        family = target.split(":")[0].rsplit(".", 1)[-1]
        reason = _missing_family(name)
        if reason is not None:
            rows.append({"name": name, "family": family, "params": None, "convention": None,
                         "default_steps": None, "layers": None, "weights": None, "available": False,
                         "note": f"(not available: {reason})"})
            continue
        model = get_factory(name)()
        steps = model.default_steps
        per_layer = model.steps_per_layer(steps)
        layers = ", ".join(
            layer if per_layer[layer] == steps else f"{layer}[{per_layer[layer]}]" for layer in model.layers
        )
        rows.append({
            "name": name, "family": family, "params": sum(p.numel() for p in model.parameters()),
            "convention": model.convention, "default_steps": steps, "layers": layers, "weights": weights(name),
            "available": True,
            "note": "",
        })
    table = pd.DataFrame(rows)
    table["params"] = table["params"].astype("Int64")
    table["default_steps"] = table["default_steps"].astype("Int64")
    return table


def format_models(table: pd.DataFrame) -> str:
    """The table as aligned text lines (what ``neurofit models list`` prints).

    Example
    -------
    >>> format_models(list_models()).splitlines()[0].split()[:3]
    ['name', 'family', 'params']
    """
    header = f"{'name':<22} {'family':<13} {'params':>10}  {'convention':<10} {'steps':>5}  {'weights':<34} layers"
    lines = [header, "-" * len(header)]
    for row in table.itertuples(index=False):
        if not row.available:
            lines.append(f"{row.name:<22} {row.family:<13} {row.note}")
            continue
        lines.append(f"{row.name:<22} {row.family:<13} {row.params:>10,}  {row.convention:<10} "
                     f"{row.default_steps:>5}  {row.weights:<34} {row.layers}")
    return "\n".join(lines)


__all__ = ["format_models", "list_models"]
