"""``neurofit export brainscore``: a neurofit model as a Brain-Score model plugin folder.

The folder follows Brain-Score's plugin conventions (``brainscore_vision/models/<name>/``):

* ``__init__.py`` registers the model (``model_registry['<identifier>'] = lambda: NeurofitModel()``);
* ``model.py`` (:mod:`neurofit.brainscore.plugin_model`, copied): a ``BrainModel`` with
  ``start_recording(region, time_bins)`` and ``look_at(stimuli)`` that unrolls the network in time and maps
  its steps onto the asked bins with neurofit's declared TimeMap;
* ``test.py``, ``requirements.txt`` (torch, safetensors, numpy, pillow) and ``metadata.yml`` (Brain-Score's
  metadata schema 2.0);
* ``weights.safetensors``, ``neurofit_model.json`` (the commitments: layer and latency offset per region,
  TimeMap, preprocessing) and ``neurofit_arch/``: the network's source, copied from neurofit with its
  ``neurofit.`` imports made relative.

The plugin never imports neurofit: Brain-Score pins ``xarray<2022.6``, which neurofit cannot run with. Only
zoo architectures can be exported (their code is neurofit's, so it can travel with the weights), and only
their torch-only modules are copied (:data:`VENDORED`).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from neurofit import __version__
from neurofit.errors import NeurofitError

#: neurofit modules a plugin may carry: torch-only code (prefixes)
VENDORED = ("neurofit.errors", "neurofit.models.base", "neurofit.models.hooks", "neurofit.models.zoo.")
REGION_NAMES = ("V1", "V2", "V4", "IT")
ARCH_PACKAGE = "neurofit_arch"


class UntrainedWeightsWarning(UserWarning):
    """An exported model has no trained weights (a zoo name without a shipped checkpoint)."""


def _module_file(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise NeurofitError(f"cannot find the source of module {name!r}")
    return Path(spec.origin)


def _neurofit_imports(tree: ast.AST, name: str) -> list[ast.ImportFrom]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "neurofit" for a in node.names):
            raise NeurofitError(f"module {name!r} uses 'import neurofit...', which an exported plugin cannot carry")
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "neurofit":
            out.append(node)
    return out


def vendored_modules(module: str) -> list[str]:
    """``module`` and every neurofit module it imports (transitively), checked against :data:`VENDORED`.

    Example
    -------
    >>> vendored_modules("neurofit.models.zoo.blt")  # doctest: +NORMALIZE_WHITESPACE
    ['neurofit.errors', 'neurofit.models.base', 'neurofit.models.zoo._blocks',
     'neurofit.models.zoo._cells', 'neurofit.models.zoo.blt']
    """
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        if not any(name == prefix or (prefix.endswith(".") and name.startswith(prefix)) for prefix in VENDORED):
            raise NeurofitError(f"the model's code imports {name!r}, which is not torch-only model code, so it "
                                "cannot travel in a Brain-Score plugin")
        seen.add(name)
        tree = ast.parse(_module_file(name).read_text())
        todo.extend(node.module for node in _neurofit_imports(tree, name))  # type: ignore[misc]
    return sorted(seen)


def _relative_source(name: str) -> str:
    """The module's source with its ``from neurofit.x import`` lines made relative to the copied package."""
    path = _module_file(name)
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    package_depth = len(name.split(".")) - (0 if path.name == "__init__.py" else 1)
    for node in _neurofit_imports(ast.parse(source), name):
        target = node.module.removeprefix("neurofit.")  # type: ignore[union-attr]
        relative = f"from {'.' * package_depth}{target} import"
        lines[node.lineno - 1] = lines[node.lineno - 1].replace(f"from {node.module} import", relative, 1)
    header = (f"# Copied from neurofit {__version__} ({name}; MIT licence) by `neurofit export brainscore`;\n"
              "# its neurofit imports were made relative so that the plugin never imports neurofit.\n")
    return header + "".join(lines)


def _write_code(folder: Path, modules: Sequence[str]) -> None:
    root = folder / ARCH_PACKAGE
    for name in modules:
        parts = name.split(".")[1:]
        target = root.joinpath(*parts[:-1], parts[-1] + ".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_relative_source(name))
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        init = directory / "__init__.py"
        if not init.exists():
            init.write_text("")


def _resolve(model: Any, arch: str | None) -> tuple[Any, str, str, str]:
    """(network, architecture, checkpoint description, weights sha256) from a name, file or model."""
    from neurofit.models.base import TemporalModel
    from neurofit.models.checkpoint import file_sha256, load_model
    from neurofit.models.train import shipped_checkpoint
    from neurofit.models.zoo import ZOO

    if isinstance(model, TemporalModel):
        name = getattr(model, "arch", None)
        if name not in ZOO:
            raise NeurofitError(f"only zoo models can be exported (their code travels with the plugin); this "
                                f"{type(model).__name__} has arch {name!r}")
        return model, name, "the given model object's weights", ""
    text = os.fspath(model)
    if Path(text).is_file():
        network = load_model(arch, text) if arch else load_model(text)
        return network, network.arch, f"{Path(text).name} (sha256 {file_sha256(text)})", file_sha256(text)
    if text not in ZOO:
        raise NeurofitError(f"model {text!r} is neither a checkpoint file nor a zoo name (`neurofit models list`)")
    try:
        shipped = shipped_checkpoint(text)
    except NeurofitError:
        shipped = None
    if shipped is not None:
        network = load_model(shipped)
        return network, text, f"neurofit's shipped checkpoint {shipped.name}", file_sha256(shipped)
    from neurofit.scoring.resolve import UNTRAINED_SEED

    warnings.warn(f"{text!r} has no trained checkpoint: the plugin carries untrained weights (seed "
                  f"{UNTRAINED_SEED}), and says so in its metadata", UntrainedWeightsWarning, stacklevel=3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(UNTRAINED_SEED)
        network = load_model(text)
    return network, text, f"none: untrained weights (torch seed {UNTRAINED_SEED})", ""


def _commitments(network: Any, region_layers: Mapping[str, str] | None, scores: Any) -> dict[str, dict[str, Any]]:
    """Layer and latency offset per region: given, from a ScoreSet's commitments, or the region-named layers."""
    offsets: Mapping[str, float] = {}
    if scores is not None:
        if isinstance(scores, (str, os.PathLike)):
            from neurofit.data.io import read_dataset

            scores = read_dataset(scores)
        region_layers = {**dict(scores.attrs.get("committed_layers") or {}), **dict(region_layers or {})}
        offsets = dict(scores.attrs.get("committed_offsets_ms") or {})
        if not region_layers:
            raise NeurofitError("the ScoreSet records no committed layers (attr 'committed_layers')")
    if not region_layers:
        region_layers = {region: region for region in REGION_NAMES if region in network.layers}
        if not region_layers:
            raise NeurofitError(f"no layer of {type(network).__name__} is named after a region; say which layer stands "
                                f"for each region (layers: {', '.join(network.layers)})")
    out = {}
    for region, layer in region_layers.items():
        if region not in REGION_NAMES:
            raise NeurofitError(f"region {region!r} is not one of {', '.join(REGION_NAMES)}")
        if layer not in network.layers:
            raise NeurofitError(f"layer {layer!r} is not a layer of {type(network).__name__}; its layers: "
                                f"{', '.join(network.layers)}")
        out[region] = {"layer": str(layer), "offset_ms": float(offsets.get(region, 0.0))}
    return out


def _metadata(identifier: str, network: Any, arch: str, checkpoint: str, n_params: int, degrees: float) -> dict:
    recurrent = int(network.default_steps) > 1
    return {
        "schema_version": "2.0",
        "domain": "vision",
        "models": {identifier: {
            "model": {
                "display_name": identifier,
                "architecture": {
                    "family": "recurrent_neural_network" if recurrent else "convolutional_neural_network",
                    "description": (f"neurofit zoo architecture {arch!r} ({type(network).__name__}), unrolled "
                                    f"in 10 ms steps ({network.convention} convention)"),
                },
                "parameter_count": n_params,
                "parameter_count_exact": True,
                "recurrent": recurrent,
                "input_resolution": {"channels": int(network.in_channels), "height": int(network.input_size),
                                     "width": int(network.input_size)},
                "visual_degrees": float(degrees),
            },
            "provenance": {"weights_provider": f"neurofit {__version__}", "checkpoint": checkpoint[:500]},
            "legal": {"license": "MIT (neurofit code); weights: see the checkpoint's source"},
        }},
    }


def _test_source(identifier: str) -> str:
    return f'''"""Brain-Score's checks of this plugin: it loads by name and records a region over time bins."""

import brainscore_vision


def test_identifier():
    model = brainscore_vision.load_model({identifier!r})
    assert model.identifier == {identifier!r}


def test_commits_to_regions():
    model = brainscore_vision.load_model({identifier!r})
    for region in model.spec["regions"]:
        model.start_recording(region, time_bins=[(70, 170)])
'''


def export_plugin(
    model: Any,
    out: str | os.PathLike[str],
    *,
    identifier: str | None = None,
    arch: str | None = None,
    region_layers: Mapping[str, str] | None = None,
    scores: Any = None,
    visual_degrees: float = 8.0,
    overwrite: bool = False,
) -> Path:
    """Write a Brain-Score model plugin folder for a neurofit model; return the folder.

    Parameters
    ----------
    model : str, path or TemporalModel
        A zoo name (its shipped checkpoint when neurofit has one, else untrained weights, announced), a
        checkpoint file (``arch`` names its architecture unless the file does), or a zoo model object.
    out : path
        The plugin folder to create (its name is the plugin's directory name in ``brainscore_vision/models``).
    identifier : str, optional
        The model's Brain-Score identifier (default: the folder name).
    region_layers : mapping, optional
        Layer per region (``{"V4": "V4", "IT": "IT"}``); default: from ``scores``, else the layers named after
        regions.
    scores : ScoreSet or path, optional
        Take the layer and latency offset per region that neurofit committed in this scoring run.
    visual_degrees : float
        The model's field of view (Brain-Score's default 8).
    overwrite : bool
        Replace an existing folder (otherwise an existing ``out`` is an error).

    Example
    -------
    >>> folder = export_plugin("bl", "plugins/neurofit_bl")  # doctest: +SKIP
    >>> sorted(p.name for p in folder.iterdir())  # doctest: +SKIP
    ['__init__.py', 'metadata.yml', 'model.py', 'neurofit_arch', 'neurofit_model.json', 'requirements.txt', ...]
    """
    import yaml
    from safetensors.torch import save_file

    from neurofit.models.base import TemporalModel
    from neurofit.models.checkpoint import weights_module
    from neurofit.models.zoo import ZOO

    out = Path(out)
    if out.exists() and not overwrite:
        raise NeurofitError(f"{out} exists; choose another folder or overwrite it (overwrite=True)")
    identifier = identifier or out.name
    if not identifier or any(c in identifier for c in "'\"\\\n"):
        raise NeurofitError(f"identifier {identifier!r} must be non-empty, without quotes or backslashes")
    network, arch_name, checkpoint, weights_sha = _resolve(model, arch)
    if not isinstance(network, TemporalModel):
        raise NeurofitError(f"{arch_name!r} builds a {type(network).__name__}, not a TemporalModel")
    if type(network).validity is not TemporalModel.validity:
        raise NeurofitError(f"{arch_name!r} halts adaptively: its per-image validity over time cannot be carried "
                            "by a Brain-Score assembly, so it is not exported")
    regions = _commitments(network, region_layers, scores)
    module_name, factory = ZOO[arch_name].split(":")
    modules = vendored_modules(module_name)
    time_map = network.time_map(steps=int(network.default_steps))
    target = weights_module(network)
    state = {k: v.detach().contiguous().clone() for k, v in target.state_dict().items()}
    spec = {
        "identifier": identifier,
        "neurofit_version": __version__,
        "architecture": arch_name,
        "module": module_name.removeprefix("neurofit."),
        "factory": factory,
        "config": dict(network.config),
        "weights": "weights.safetensors",
        "weights_module": "" if target is network else "net",
        "checkpoint": checkpoint,
        "weights_sha256": weights_sha,
        "regions": regions,
        "feedforward": int(network.default_steps) == 1,
        "step_ms": float(time_map.step_ms),
        "t0_ms": float(time_map.t0_ms),
        "on": int(time_map.onset_step),
        "off": time_map.offset_step,
        "first_driven": {k: int(v) for k, v in time_map.first_driven.items()},
        "convention": time_map.convention,
        "input_size": int(network.input_size),
        "in_channels": int(network.in_channels),
        "mean": [float(m) for m in network.mean],
        "std": [float(s) for s in network.std],
        "visual_degrees": float(visual_degrees),
    }
    n_params = sum(int(p.numel()) for p in network.parameters())
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        _write_code(staging, modules)
        save_file(state, str(staging / spec["weights"]), metadata={"neurofit_arch": arch_name,
                                                                   "neurofit_config": json.dumps(spec["config"])})
        (staging / "neurofit_model.json").write_text(json.dumps(spec, indent=2) + "\n")
        shutil.copyfile(Path(__file__).with_name("plugin_model.py"), staging / "model.py")
        (staging / "__init__.py").write_text(
            f'"""{identifier}: a neurofit {arch_name} model exported by neurofit {__version__}."""\n\n'
            "from brainscore_vision import model_registry\n\nfrom .model import NeurofitModel\n\n"
            f"model_registry['{identifier}'] = lambda: NeurofitModel()\n")
        (staging / "test.py").write_text(_test_source(identifier))
        (staging / "requirements.txt").write_text("torch\nsafetensors\nnumpy\npillow\n")
        (staging / "metadata.yml").write_text(yaml.safe_dump(
            _metadata(identifier, network, arch_name, checkpoint, n_params, visual_degrees), sort_keys=False))
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
