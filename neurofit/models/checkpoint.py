"""Build a model from the zoo or an import path and load its weights safely.

Weights come from a state_dict file (``.pt``, ``.pth``, ``.th``, ``.bin``; also wrapped as
``{'state_dict': ...}`` and with the ``module.`` prefix ``nn.DataParallel`` adds), always read with
``torch.load(weights_only=True)`` so a file cannot run code while loading, or from ``.safetensors``.
Files written by :func:`save_checkpoint` are safetensors whose metadata holds the architecture name and
its config (JSON), so the file alone rebuilds a zoo model: ``load_model("run/model.safetensors")``.

A checkpoint is untrusted data. Its metadata may name a zoo model, never code: an import path
``package.module:factory`` found in a file is refused (nothing is imported or called), and is honoured only
when the user passes it, ``load_model("package.module:factory", "run/model.safetensors")``. A stored config
must be a JSON object; the network it describes is first built on the meta device and must match the
file's tensor shapes before any memory is allocated, so a file cannot ask for more memory than it holds.

Every key is checked: missing keys, unexpected keys and shape mismatches are listed by name in one
:class:`~neurofit.errors.NeurofitError`. For a :class:`~neurofit.models.hooks.HookedModel` (a wrapped
user module, e.g. ``resnet20_cifar``) the weights are the wrapped module's own state_dict.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from neurofit.atomic import atomic_path
from neurofit.errors import NeurofitError
from neurofit.hashing import file_sha256
from neurofit.models.hooks import HookedModel
from neurofit.models.zoo import ZOO, get_factory

PICKLE_SUFFIXES = (".pt", ".pth", ".th", ".bin", ".ckpt")
SAFETENSORS_SUFFIX = ".safetensors"
_ARCH_KEY = "neurofit_arch"
_CONFIG_KEY = "neurofit_config"


def resolve_factory(arch: str) -> Callable[..., Any]:
    """The factory for a zoo name (``"cornet_rt"``) or an import path (``"package.module:factory"``).

    Example
    -------
    >>> resolve_factory("neurofit.models.zoo.cornet:cornet_s").__name__
    'cornet_s'
    """
    if ":" not in arch:
        return get_factory(arch)
    module_name, _, attr = arch.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise NeurofitError(f"cannot import module {module_name!r} of architecture {arch!r}: {err}") from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise NeurofitError(f"module {module_name!r} has no callable {attr!r} (architecture {arch!r})")
    return factory


def weights_module(model: nn.Module) -> nn.Module:
    """The module whose state_dict is the checkpoint: a HookedModel's wrapped ``net``, else the model."""
    return model.net if isinstance(model, HookedModel) else model


def read_checkpoint(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read ``(state_dict, metadata)`` from a checkpoint file without running any code from it.

    ``metadata`` is the safetensors header metadata (empty for torch files). A torch file that holds
    more than tensors (a pickled model, a custom class) is refused with an explanation.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "w.pt"
    >>> torch.save({"state_dict": {"module.fc.weight": torch.ones(2, 2)}, "epoch": 3}, p)
    >>> state, meta = read_checkpoint(p)
    >>> list(state), meta
    (['fc.weight'], {})
    """
    path = Path(path)
    if not path.is_file():
        raise NeurofitError(f"checkpoint file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == SAFETENSORS_SUFFIX:
        try:
            with safe_open(str(path), framework="pt", device="cpu") as handle:
                metadata = dict(handle.metadata() or {})
                state = {key: handle.get_tensor(key) for key in handle.keys()}
        except SafetensorError as err:
            raise NeurofitError(f"cannot read {path} as safetensors ({err}); is the file complete?") from err
        return state, metadata
    if suffix not in PICKLE_SUFFIXES:
        raise NeurofitError(
            f"checkpoint {path} has suffix {suffix!r}; expected a state_dict "
            f"({', '.join(PICKLE_SUFFIXES)}) or {SAFETENSORS_SUFFIX}"
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines()
        detail = next((line for line in reason if "GLOBAL" in line or "Unsupported" in line), reason[0])
        raise NeurofitError(
            f"refusing to load {path}: it is not plain tensors but pickled Python objects ({detail.strip()}), "
            "and unpickling them could run arbitrary code. neurofit reads checkpoints with "
            "torch.load(weights_only=True). If you trust the file, re-save its weights where it was made: "
            "torch.save(model.state_dict(), 'weights.pt') (or neurofit.models.save_checkpoint(model, ...))"
        ) from err
    except (RuntimeError, EOFError) as err:
        raise NeurofitError(f"cannot read {path} as a torch checkpoint ({err}); is the file complete?") from err
    return _extract_state_dict(obj, path), {}


def read_checkpoint_metadata(path: str | os.PathLike[str]) -> dict[str, str]:
    """The string metadata of a ``.safetensors`` file (without reading its tensors); ``{}`` for other files.

    Example
    -------
    >>> read_checkpoint_metadata("missing.safetensors")
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: checkpoint file not found: missing.safetensors
    """
    path = Path(path)
    if not path.is_file():
        raise NeurofitError(f"checkpoint file not found: {path}")
    if path.suffix.lower() != SAFETENSORS_SUFFIX:
        return {}
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return dict(handle.metadata() or {})
    except SafetensorError as err:
        raise NeurofitError(f"cannot read {path} as safetensors ({err}); is the file complete?") from err


def _extract_state_dict(obj: Any, path: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict"):
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise NeurofitError(f"checkpoint {path} holds {type(obj).__name__}, not a state_dict (a dict of tensors)")
    not_tensors = [str(k) for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise NeurofitError(
            f"checkpoint {path} is not a state_dict: entries {not_tensors[:10]} are not tensors "
            "(a training checkpoint keeps its weights under 'state_dict')"
        )
    state = {str(k): v for k, v in obj.items()}
    # nn.DataParallel saves every key as "module.<name>"
    if all(key.startswith("module.") for key in state):
        state = {key[len("module."):]: value for key, value in state.items()}
    return state


def _names(names: list[str], limit: int = 20) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" ... and {len(names) - limit} more" if len(names) > limit else "")


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor], source: str = "checkpoint",
               check_only: bool = False) -> None:
    """Load ``state`` into ``model`` (its :func:`weights_module`) requiring an exact key and shape match.

    ``check_only=True`` checks keys and shapes without copying (``model`` may live on the meta device).

    Example
    -------
    >>> net = nn.Linear(2, 3)
    >>> load_state(net, {"weight": torch.zeros(3, 2)})
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: checkpoint does not fit Linear: missing keys: bias
    """
    target = weights_module(model)
    own = target.state_dict()
    mismatched = [
        f"{key} (checkpoint {tuple(value.shape)}, model {tuple(own[key].shape)})"
        for key, value in state.items()
        if key in own and tuple(value.shape) != tuple(own[key].shape)
    ]
    problems = []
    if mismatched:
        problems.append(f"shape mismatches: {_names(mismatched)}")
    elif check_only:
        missing = [key for key in own if key not in state and not key.endswith("num_batches_tracked")]
        unexpected = [key for key in state if key not in own]
        if missing:
            problems.append(f"missing keys: {_names(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_names(unexpected)}")
    else:
        # strict=False so that every problem is collected; legacy BatchNorm entries without
        # num_batches_tracked are filled in by BatchNorm itself and are not reported missing
        result = target.load_state_dict(dict(state), strict=False)
        if result.missing_keys:
            problems.append(f"missing keys: {_names(list(result.missing_keys))}")
        if result.unexpected_keys:
            problems.append(f"unexpected keys: {_names(list(result.unexpected_keys))}")
    if problems:
        raise NeurofitError(f"{source} does not fit {type(target).__name__}: {'; '.join(problems)}")


def architecture_from_file(stored: str, path: str | os.PathLike[str]) -> str:
    """The architecture a checkpoint's metadata names, accepted only if it is a zoo name.

    A file is data: it may say *which* zoo model it holds, never which code to import or call. An import
    path ``package.module:factory`` is honoured only when the user gives it (``load_model(arch, path)``).

    Example
    -------
    >>> architecture_from_file("cornet_z", "z.safetensors")
    'cornet_z'
    >>> architecture_from_file("os:system", "evil.safetensors")
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: evil.safetensors: metadata 'neurofit_arch' names code to import ('os:system'); ...
    """
    if stored in ZOO:
        return stored
    if ":" in stored:
        raise NeurofitError(
            f"{path}: metadata {_ARCH_KEY!r} names code to import ({stored!r}); neurofit never imports or calls "
            "code named inside a file, so nothing was run. If you trust this file and that code, name the "
            f"architecture yourself: load_model({stored!r}, checkpoint)"
        )
    raise NeurofitError(f"{path}: metadata {_ARCH_KEY!r} is {stored!r}, not a zoo name "
                        f"({', '.join(sorted(ZOO))})")


def _stored_config(text: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise NeurofitError(f"{path}: metadata {_CONFIG_KEY!r} is not JSON ({err})") from err
    if not isinstance(config, dict):
        raise NeurofitError(f"{path}: metadata {_CONFIG_KEY!r} must be a JSON object of factory arguments, "
                            f"got {type(config).__name__}")
    return config


#: the most steps a checkpoint's training record may ask an analysis to unroll
MAX_RECORD_STEPS = 1000
#: the largest image side a checkpoint's training record may ask for
MAX_RECORD_IMAGE_SIZE = 4096
_RECORD_BOUNDS: dict[str, tuple[type, float, float]] = {
    "steps": (int, 1, MAX_RECORD_STEPS), "image_size": (int, 1, MAX_RECORD_IMAGE_SIZE),
    "seed": (int, 0, 2**32 - 1), "holdout": (float, 0.0, 1.0), "epochs": (int, 0, 10**9),
}


def training_record(text: str, path: str | os.PathLike[str]) -> dict[str, Any]:
    """The training record (metadata ``neurofit_training``) of a checkpoint, checked before an analysis uses it.

    It is data from a file: a JSON object whose settings that steer computation are range-checked (``steps``
    at most :data:`MAX_RECORD_STEPS`, ``image_size`` at most :data:`MAX_RECORD_IMAGE_SIZE`, ``seed`` a valid
    seed, ``holdout`` a fraction, ``classes`` a list of names, ``label_column`` and ``data`` strings).

    Example
    -------
    >>> training_record('{"steps": 4, "classes": ["a", "b"]}', "m.safetensors")["steps"]
    4
    >>> training_record('{"steps": 1000000}', "m.safetensors")
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: m.safetensors: metadata 'neurofit_training' key 'steps' must be ... got 1000000
    """
    key = "neurofit_training"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise NeurofitError(f"{path}: metadata {key!r} is not JSON ({err})") from err
    if not isinstance(record, dict):
        raise NeurofitError(f"{path}: metadata {key!r} must be a JSON object, got {type(record).__name__}")
    for name, (kind, low, high) in _RECORD_BOUNDS.items():
        value = record.get(name)
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not number or (kind is int and not isinstance(value, int)) or not low <= value <= high:
            what = "a whole number" if kind is int else "a number"
            bounds = f"[{low}, {high}]" if kind is int else f"[{low:g}, {high:g}]"
            raise NeurofitError(f"{path}: metadata {key!r} key {name!r} must be {what} in {bounds}, got {value!r}")
    for name in ("label_column", "data", "data_sha256", "architecture"):
        if record.get(name) is not None and not isinstance(record[name], str):
            raise NeurofitError(f"{path}: metadata {key!r} key {name!r} must be a string, got {record[name]!r}")
    classes = record.get("classes")
    if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
        raise NeurofitError(f"{path}: metadata {key!r} key 'classes' must be a list of names, got {classes!r}")
    difficulty = record.get("difficulty")
    if difficulty is not None and not (isinstance(difficulty, list) and all(
            isinstance(d, int) and not isinstance(d, bool) for d in difficulty)):
        raise NeurofitError(f"{path}: metadata {key!r} key 'difficulty' must be a list of whole numbers, "
                            f"got {difficulty!r}")
    return record


def _build(arch: str, config: Mapping[str, Any]) -> nn.Module:
    factory = resolve_factory(arch)
    try:
        inspect.signature(factory).bind(**config)
    except TypeError as err:
        params = ", ".join(inspect.signature(factory).parameters)
        raise NeurofitError(f"architecture {arch!r} does not accept config {dict(config)} ({err}); "
                            f"its parameters: {params}") from err
    model = factory(**config)
    if not isinstance(model, nn.Module):
        raise NeurofitError(f"factory {arch!r} returned {type(model).__name__}, not a torch nn.Module")
    return model


def load_model(
    arch_or_path: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str] | None = None,
    **config: Any,
) -> nn.Module:
    """Build a model and, given a checkpoint, load its weights (in eval mode, on CPU).

    Parameters
    ----------
    arch_or_path : str or path
        A zoo name (``neurofit models list``), an import path ``"package.module:factory"``, or a
        ``.safetensors`` file written by :func:`save_checkpoint` (architecture and config from its metadata).
    checkpoint : path, optional
        Weights: ``.pt``/``.pth``/``.th`` state_dict (plain, ``{'state_dict': ...}``, ``module.``-prefixed)
        or ``.safetensors``. Without it the model keeps its fresh initialisation.
    **config
        Factory arguments (width, num_classes, ...); they override a safetensors file's stored config.

    Returns
    -------
    nn.Module
        Usually a :class:`~neurofit.models.base.TemporalModel`, with attributes ``arch``, ``config`` and
        ``weights_sha256`` (``None`` without a checkpoint).

    Example
    -------
    >>> model = load_model("cornet_z", width=8)
    >>> model.arch, model.config["width"], model.weights_sha256
    ('cornet_z', 8, None)
    """
    path_given = Path(arch_or_path)
    arch: str | None = str(arch_or_path)
    if checkpoint is None and (path_given.suffix.lower() in (SAFETENSORS_SUFFIX, *PICKLE_SUFFIXES)
                               or path_given.is_file()):
        checkpoint, arch = path_given, None
    state: dict[str, torch.Tensor] | None = None
    if checkpoint is not None:
        state, metadata = read_checkpoint(checkpoint)
        stored_arch = metadata.get(_ARCH_KEY)
        if arch is None:
            if stored_arch is None:
                raise NeurofitError(
                    f"{checkpoint} does not say which architecture it holds (no {_ARCH_KEY!r} metadata); "
                    "call load_model(<zoo name or package.module:factory>, checkpoint)"
                )
            arch = architecture_from_file(stored_arch, checkpoint)
        elif stored_arch is not None and stored_arch != arch:
            raise NeurofitError(f"{checkpoint} holds weights of {stored_arch!r}, not {arch!r}")
        if _CONFIG_KEY in metadata and arch == stored_arch:
            config = {**_stored_config(metadata[_CONFIG_KEY], checkpoint), **config}
    assert arch is not None
    if ":" not in arch and arch not in ZOO:
        raise NeurofitError(f"unknown architecture {arch!r}: not a zoo name ({', '.join(sorted(ZOO))}), "
                            "not an import path 'package.module:factory', not a checkpoint file")
    if state is not None:
        # a file's config could ask for a network of any size: build it without memory first, and only
        # allocate one whose every tensor the file itself holds
        with torch.device("meta"):
            skeleton = _build(arch, config)
        load_state(skeleton, state, source=f"checkpoint {checkpoint}", check_only=True)
        del skeleton
    model = _build(arch, config)
    model.arch = arch
    model.weights_sha256 = None
    if state is not None:
        load_state(model, state, source=f"checkpoint {checkpoint}")
        model.weights_sha256 = file_sha256(checkpoint)
    return model.eval()


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike[str],
    metadata: Mapping[str, Any] | None = None,
    arch: str | None = None,
) -> Path:
    """Write ``model``'s weights as safetensors (atomically), with architecture and config in the metadata.

    Parameters
    ----------
    model : nn.Module
        A zoo model (its ``arch`` and ``config`` attributes are recorded) or any model with ``arch`` given.
    path : path
        Target file; must end in ``.safetensors``.
    metadata : mapping, optional
        Extra provenance (training run, dataset, accuracy); non-string values are stored as JSON.
    arch : str, optional
        Zoo name or ``package.module:factory``; default ``model.arch``.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from neurofit.models.zoo.feedforward import cornet_z
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "z.safetensors"
    >>> _ = save_checkpoint(cornet_z(width=8), target, {"epochs": 0})
    >>> load_model(target).config["width"]
    8
    """
    path = Path(path)
    if path.suffix.lower() != SAFETENSORS_SUFFIX:
        raise NeurofitError(f"save_checkpoint writes safetensors; name the file *.safetensors, not {path.name}")
    arch = arch if arch is not None else getattr(model, "arch", None)
    if not arch:
        raise NeurofitError(f"{type(model).__name__} has no 'arch' attribute; pass arch='<zoo name or "
                            "package.module:factory>' so that the checkpoint can rebuild it")
    config = getattr(model, "config", {}) or {}
    try:
        config_json = json.dumps(config, sort_keys=True)
    except TypeError as err:
        raise NeurofitError(f"model.config of {arch!r} is not JSON-serialisable ({err}): {config}") from err
    header = {key: value if isinstance(value, str) else json.dumps(value) for key, value in (metadata or {}).items()}
    header.update({_ARCH_KEY: str(arch), _CONFIG_KEY: config_json})
    # clone: safetensors refuses tensors that share storage (tied weights, views)
    tensors = {key: value.detach().cpu().contiguous().clone()
               for key, value in weights_module(model).state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=header)
    return path
