"""Precomputed features: arrays and other toolkits' files read into an :class:`ActivationSet`.

Features extracted outside neurofit (thingsvision, torchlens, a lab's own script) are scored like a model's
activations once they are an ActivationSet: one ``(step, presentation, feature)`` block per layer.
:func:`read_features` reads them from a file, :func:`features_from_arrays` from arrays in memory; both go
through the same checks, so a file and the arrays it holds give the same ActivationSet, bit for bit.

What is read
------------
* **neurofit's ActivationSet NetCDF** (``ActivationSet.to_netcdf``): as written, checked.
* **NetCDF of labelled arrays**: every data variable is a layer; one dim is the stimulus dim (``presentation``,
  ``stimulus`` or ``stimulus_id``; ids from the ``stimulus_id`` coordinate), an optional ``step`` (or ``time``)
  dim holds model steps, every other dim is flattened into features.
* **Dicts of arrays**: ``.npz`` (``np.savez``), ``.pt``/``.pth`` (``torch.save`` of a dict of tensors, as
  torchlens users save per-layer activations), ``.safetensors``, ``.h5``/``.hdf5``: one array per layer,
  stimuli along the first axis, the other axes flattened into features. Steps of a recurrent layer are
  separate keys ``LAYER:1``, ``LAYER:2``, ... (torchlens' pass labels; pass ``k`` is step ``k - 1``). Stimulus
  ids, when the file carries them, are the key ``stimulus_id`` (a str array; a list of str in a torch file).
* **One array** (thingsvision's ``save_features``): ``features.npy``, ``features.pt``, ``features.hdf5`` (the
  dataset ``features``, or the row splits ``features_01``, ``features_02``, ... it writes when memory runs
  short), ``features.txt``, ``features.mat`` (one variable ``features``, or one variable per image named after
  it); the layer is named after the file (``features``).

Formats without ids need the stimulus order: ``stimulus_ids=`` a sequence, or a file (:func:`read_stimulus_order`)
with one id per line or a CSV column. thingsvision writes the image file names in order (``file_names.txt``);
a line that names an image file (``img_0042.png``, ``cats/img_0042.jpg``) stands for its name without folder
and extension, the stimulus id of a neurofit stimulus set whose images are ``<stimulus_id>.png``.

Trust (``docs/trust.md``)
-------------------------
Files are data: ``.npy``/``.npz`` are read with ``allow_pickle=False`` (an array of Python objects is refused
before a byte of it is read), torch files with ``torch.load(weights_only=True)``, HDF5 external links and
virtual datasets are refused. Every array's size is checked against :data:`MAX_FEATURE_BYTES` (all arrays of a
file together) from its header before it is allocated. Values must be finite. Errors are one line naming the
file and the key.

Each step is *driven* when its features differ between stimuli (as the extractor measures a model's
arrival); a step where every stimulus gives the same features carries no image-driven signal and is never
scored. Step ``t`` covers ``[t0_ms + t * step_ms, t0_ms + (t + 1) * step_ms)`` ms after stimulus onset.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from neurofit.errors import NeurofitError
from neurofit.extract.activations import ActivationSet, feature_dim, read_activations, step_dim
from neurofit.models.base import TimeMap

#: bytes of all feature arrays of one file together, as read into memory (checked before allocating)
MAX_FEATURE_BYTES = 16 * 2**30
#: arrays (layers x steps) in one file
MAX_ARRAYS = 10_000
#: characters of one stimulus id
MAX_ID_CHARS = 1_000
#: bytes of a stimulus-order file (one id per line, or a CSV)
MAX_ORDER_BYTES = 64 * 2**20
#: the key (npz, torch, safetensors, HDF5) or coordinate (NetCDF) holding the stimulus ids
IDS_KEY = "stimulus_id"
STIMULUS_DIMS = ("presentation", "stimulus", "stimulus_id")
STEP_DIMS = ("step", "time")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".eps", ".webp")
FORMATS = {
    ".nc": "netcdf", ".nc4": "netcdf", ".netcdf": "netcdf", ".npz": "npz", ".npy": "npy", ".pt": "torch",
    ".pth": "torch", ".safetensors": "safetensors", ".h5": "hdf5", ".hdf5": "hdf5", ".txt": "txt", ".mat": "mat",
}
_PASS = re.compile(r"(.+):(\d+)")
_SPLIT = re.compile(r"features_(\d+)")


# ------------------------------------------------------------------------------------------------ arrays
class _Budget:
    """Bytes a file may still allocate (:data:`MAX_FEATURE_BYTES`), charged before each array is read."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.left = MAX_FEATURE_BYTES
        self.arrays = 0

    def charge(self, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.arrays += 1
        if self.arrays > MAX_ARRAYS:
            raise NeurofitError(f"{self.source}: more than {MAX_ARRAYS} arrays; neurofit reads at most that many")
        if any(int(s) < 0 for s in shape):
            raise NeurofitError(f"{self.source}: array {key!r} has a negative dimension {shape}")
        nbytes = math.prod(int(s) for s in shape) * max(int(dtype.itemsize), 1)
        if nbytes > self.left:
            raise NeurofitError(f"{self.source}: array {key!r} {tuple(shape)} ({dtype}) needs "
                                f"{nbytes / 2**30:.1f} GiB, beyond the {MAX_FEATURE_BYTES / 2**30:.0f} GiB "
                                "neurofit reads from one features file (MAX_FEATURE_BYTES): "
                                "reduce the features first")
        self.left -= nbytes


def _check_dtype(key: str, dtype: np.dtype, source: str) -> None:
    if dtype.hasobject:
        raise NeurofitError(f"{source}: array {key!r} holds Python objects (dtype object), which only unpickling could "
                            "read; neurofit never unpickles (allow_pickle=False): save numbers as a numeric array and "
                            "ids as a str array (np.array(ids, dtype=str))")
    if dtype.kind not in "fiu":
        raise NeurofitError(f"{source}: array {key!r} has dtype {dtype}; features must be numbers (float or int)")


def _block(values: Any, key: str, source: str, n_ids: int | None) -> np.ndarray:
    """``values`` as a finite ``(n_stimuli, n_features)`` matrix: stimuli on the first axis, the rest flattened."""
    values = np.asarray(values)
    _check_dtype(key, values.dtype, source)
    if values.ndim == 0:
        raise NeurofitError(f"{source}: array {key!r} is a scalar; give one row per stimulus")
    if values.dtype.kind in "iu" or values.dtype == np.float16:
        values = values.astype(np.float64 if values.dtype.kind in "iu" else np.float32)
    matrix = values.reshape(values.shape[0], -1) if values.ndim != 1 else values[:, None]
    if n_ids is not None and matrix.shape[0] != n_ids:
        raise NeurofitError(f"{source}: array {key!r} has {matrix.shape[0]} rows (shape {values.shape}) for {n_ids} "
                            "stimulus ids; give one row per stimulus, stimuli along the first axis")
    if matrix.shape[1] == 0:
        raise NeurofitError(f"{source}: array {key!r} has no features (shape {values.shape})")
    finite = np.isfinite(matrix)
    if not finite.all():
        bad = int((~finite).any(axis=1).sum())
        raise NeurofitError(f"{source}: array {key!r} holds NaN or Inf values ({bad} of {matrix.shape[0]} stimuli "
                            "affected); features must be finite")
    return matrix


def _layer_and_step(key: str) -> tuple[str, int]:
    """``"conv:3"`` -> ``("conv", 2)`` (torchlens' 1-based pass labels); a plain key is step 0."""
    match = _PASS.fullmatch(key)
    if match and int(match.group(2)) >= 1:
        return match.group(1), int(match.group(2)) - 1
    return key, 0


def _image_stem(text: str) -> str:
    if text.lower().endswith(IMAGE_SUFFIXES):
        return Path(text.replace("\\", "/")).stem
    return text


def _check_ids(ids: Sequence[Any], source: str) -> list[str]:
    out = [str(s) for s in ids]
    if not out:
        raise NeurofitError(f"{source}: no stimulus ids")
    long = next((s for s in out if len(s) > MAX_ID_CHARS), None)
    if long is not None:
        raise NeurofitError(f"{source}: stimulus id {long[:40]!r}... is longer than {MAX_ID_CHARS} characters")
    seen: set[str] = set()
    for sid in out:
        if not sid:
            raise NeurofitError(f"{source}: an empty stimulus id")
        if sid in seen:
            raise NeurofitError(f"{source}: stimulus id {sid!r} appears twice; give one row per stimulus")
        seen.add(sid)
    return out


def _activation_set(blocks: dict[str, dict[int, np.ndarray]], ids: list[str], *, source: str, step_ms: float,
                    t0_ms: float, model_id: str, weights_sha256: str = "", fmt: str = "arrays") -> ActivationSet:
    if not blocks:
        raise NeurofitError(f"{source}: no feature arrays")
    if not (math.isfinite(step_ms) and step_ms > 0 and math.isfinite(t0_ms) and abs(t0_ms) <= 100_000):
        raise NeurofitError(f"step_ms must be a finite number > 0 and t0_ms finite within +-100000 ms, got "
                            f"{step_ms!r}, {t0_ms!r}")
    coords: dict[str, Any] = {"stimulus_id": ("presentation", np.asarray(ids))}
    data_vars: dict[str, Any] = {}
    first: dict[str, int] = {}
    for layer, steps in blocks.items():
        order = sorted(steps)
        if order != list(range(len(order))):
            raise NeurofitError(f"{source}: layer {layer!r} has passes {[s + 1 for s in order]}; give every pass "
                                f"1..{order[-1] + 1} (keys {layer}:1, {layer}:2, ...)")
        widths = {steps[s].shape[1] for s in order}
        if len(widths) > 1:
            raise NeurofitError(f"{source}: the steps of layer {layer!r} differ in size {sorted(widths)}")
        values = np.stack([steps[s] for s in order])
        # a step where every stimulus gives the same features carries no image-driven signal (as a model's arrival)
        driven = np.array([bool((values[s] != values[s][:1]).any()) for s in order])
        n_steps = len(order)
        first[layer] = int(np.argmax(driven)) if driven.any() else n_steps
        sdim = step_dim(layer)
        starts = t0_ms + step_ms * np.arange(n_steps)
        coords[sdim] = (sdim, np.arange(n_steps))
        coords[f"step_start_ms_{layer}"] = (sdim, starts)
        coords[f"step_end_ms_{layer}"] = (sdim, starts + step_ms)
        coords[f"driven_{layer}"] = (sdim, driven)
        data_vars[layer] = ((sdim, "presentation", feature_dim(layer)), values)
    time_map = TimeMap(steps=max(v[1].shape[0] for v in data_vars.values()), first_driven=first, step_ms=float(step_ms),
                       t0_ms=float(t0_ms))
    what = f"precomputed features from {source}" + (f" (sha256 {weights_sha256})" if weights_sha256 else "")
    attrs = {"layers": list(blocks), "time_map": time_map.to_dict(), "first_driven": dict(first), "model_id": model_id,
             "weights_sha256": weights_sha256, "weights": what, "source": source, "features_format": fmt,
             "n_features_raw": {layer: int(v[1].shape[2]) for layer, v in data_vars.items()}}
    return ActivationSet(xr.Dataset(data_vars, coords=coords, attrs=attrs))


def _blocks_from_dict(arrays: Mapping[str, Any], source: str, n_ids: int | None) -> dict[str, dict[int, np.ndarray]]:
    blocks: dict[str, dict[int, np.ndarray]] = {}
    for key, values in arrays.items():
        layer, step = _layer_and_step(str(key))
        if step in blocks.get(layer, {}):
            raise NeurofitError(f"{source}: layer {layer!r} step {step} is given twice (keys {layer!r} and "
                                f"'{layer}:{step + 1}')")
        blocks.setdefault(layer, {})[step] = _block(values, str(key), source, n_ids)
    return blocks


def _blocks_from_dataarray(name: str, array: xr.DataArray, source: str) -> tuple[dict[int, np.ndarray], list[str]]:
    """Steps of one labelled array (a stimulus dim, an optional step dim, feature dims) and its ids."""
    stim = [d for d in array.dims if d in STIMULUS_DIMS]
    if len(stim) != 1:
        raise NeurofitError(f"{source}: variable {name!r} has dims {tuple(array.dims)}; it needs one stimulus dim "
                            f"(one of {', '.join(STIMULUS_DIMS)})")
    steps = [d for d in array.dims if d in STEP_DIMS]
    if len(steps) > 1:
        raise NeurofitError(f"{source}: variable {name!r} has two step dims {steps}; give one")
    sdim = stim[0]
    ids_coord = array.coords.get(IDS_KEY)
    if ids_coord is None or ids_coord.dims != (sdim,):
        raise NeurofitError(f"{source}: variable {name!r} has no {IDS_KEY!r} coordinate along {sdim!r}")
    ids = [str(v.decode() if isinstance(v, bytes) else v) for v in ids_coord.values.tolist()]
    features = [d for d in array.dims if d != sdim and d not in steps]
    array = array.transpose(*steps, sdim, *features)
    _check_dtype(name, array.dtype, source)
    values = array.values if steps else array.values[None]
    return {t: _block(values[t], name if not steps else f"{name}[{steps[0]}={t}]", source, len(ids))
            for t in range(values.shape[0])}, ids


def features_from_arrays(
    features: Mapping[str, Any] | xr.Dataset,
    stimulus_ids: Sequence[str] | str | os.PathLike[str] | None = None,
    *,
    step_ms: float = 10.0,
    t0_ms: float = 0.0,
    model_id: str = "features",
) -> ActivationSet:
    """An ActivationSet from arrays in memory, by the rules :func:`read_features` applies to files.

    Parameters
    ----------
    features : mapping of layer -> array, or an xarray Dataset
        Arrays with stimuli along the first axis (other axes are flattened into features); keys ``LAYER:k`` are
        step ``k - 1`` of a layer. Values may also be ``xr.DataArray`` with named dims: a stimulus dim
        (``presentation``/``stimulus``/``stimulus_id``) carrying a ``stimulus_id`` coordinate, an optional
        ``step``/``time`` dim and feature dims.
    stimulus_ids : sequence of str or a stimulus-order file
        The stimulus of each row (not needed when every array is a labelled DataArray).
    step_ms, t0_ms : step ``t`` covers ``[t0_ms + t * step_ms, t0_ms + (t + 1) * step_ms)`` ms after onset.
    model_id : str
        Name of the features in the ScoreSet.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> acts = features_from_arrays({"V4": rng.normal(size=(3, 2, 2)), "IT:1": np.zeros((3, 5)),
    ...                              "IT:2": rng.normal(size=(3, 5))}, ["a", "b", "c"])
    >>> acts.layers, acts.n_features("V4"), acts.n_steps("IT"), acts.driven_steps("IT")
    (['V4', 'IT'], 4, 2, [1])
    """
    source = "features"
    items = dict(features.data_vars) if isinstance(features, xr.Dataset) else dict(features)
    labelled = {k: v for k, v in items.items() if isinstance(v, xr.DataArray) and
                any(d in STIMULUS_DIMS for d in v.dims)}
    ids = None if stimulus_ids is None else _ids_argument(stimulus_ids)
    blocks: dict[str, dict[int, np.ndarray]] = {}
    for name, array in labelled.items():
        blocks[str(name)], own = _blocks_from_dataarray(str(name), array, source)
        if ids is None:
            ids = own
        elif own != ids:
            raise NeurofitError(f"{source}: variable {name!r} lists its stimuli in another order than the ids given")
    plain = {k: v for k, v in items.items() if k not in labelled}
    if plain and ids is None:
        raise NeurofitError("plain arrays carry no stimulus ids: give stimulus_ids (a sequence or a stimulus-order "
                            "file)")
    if ids is None:
        raise NeurofitError("no feature arrays given")
    ids = _check_ids(ids, source)
    blocks.update(_blocks_from_dict({str(k): v for k, v in plain.items()}, source, len(ids)))
    return _activation_set(blocks, ids, source=source, step_ms=step_ms, t0_ms=t0_ms, model_id=model_id)


# ------------------------------------------------------------------------------------------------ stimulus order
def read_stimulus_order(path: str | os.PathLike[str], column: str | None = None) -> list[str]:
    """Stimulus ids in row order from a text file (one per line) or a CSV/TSV column.

    A CSV's column is ``column``, else ``stimulus_id``, else its only column. Blank lines are skipped. An entry
    naming an image file (``cats/img_01.jpg``) stands for its name without folder and extension (``img_01``),
    as thingsvision's ``file_names.txt`` lists images.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "file_names.txt"
    >>> _ = p.write_text("cats/s001.png\\ns002.jpg\\n\\ns003\\n")
    >>> read_stimulus_order(p)
    ['s001', 's002', 's003']
    """
    path = Path(path)
    if not path.is_file():
        raise NeurofitError(f"stimulus order file not found: {path}")
    if path.stat().st_size > MAX_ORDER_BYTES:
        raise NeurofitError(f"{path}: {path.stat().st_size / 2**20:.0f} MiB; a stimulus order file may hold at most "
                            f"{MAX_ORDER_BYTES // 2**20} MiB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise NeurofitError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    if path.suffix.lower() in (".csv", ".tsv"):
        import csv

        rows = list(csv.reader(io.StringIO(text), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
        if not rows:
            raise NeurofitError(f"{path}: empty table")
        header = rows[0]
        name = column or (IDS_KEY if IDS_KEY in header else (header[0] if len(header) == 1 else None))
        if name is None or name not in header:
            raise NeurofitError(f"{path}: no column {name or IDS_KEY!r} (columns: {', '.join(header)}); name the "
                                "column of stimulus ids")
        index = header.index(name)
        entries = []
        for number, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            if index >= len(row):
                raise NeurofitError(f"{path}: line {number} has no column {name!r}")
            entries.append(row[index].strip())
    else:
        if column is not None:
            raise NeurofitError(f"{path}: a column ({column!r}) applies to a CSV or TSV table, not a text file")
        entries = [line.strip() for line in text.splitlines() if line.strip()]
    return _check_ids([_image_stem(e) for e in entries], str(path))


def _ids_argument(stimulus_ids: Sequence[str] | str | os.PathLike[str]) -> list[str]:
    if isinstance(stimulus_ids, (str, os.PathLike)):
        return read_stimulus_order(stimulus_ids)
    return _check_ids(list(stimulus_ids), "stimulus_ids")


# ------------------------------------------------------------------------------------------------ file formats
def _npy_header(fp: Any, key: str, source: str) -> tuple[tuple[int, ...], np.dtype]:
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"npy format version {version} (neurofit reads 1.0 and 2.0)")
    except ValueError as err:
        raise NeurofitError(f"{source}: array {key!r} is not a readable .npy array ({err})") from None
    return tuple(int(s) for s in shape), np.dtype(dtype)


def _read_npy(fp_open: Any, key: str, source: str, budget: _Budget, stored_bytes: int) -> np.ndarray:
    with fp_open() as fp:
        shape, dtype = _npy_header(fp, key, source)
    if dtype.kind == "U" and key == IDS_KEY and len(shape) == 1:
        if dtype.itemsize > 4 * MAX_ID_CHARS:
            raise NeurofitError(f"{source}: {IDS_KEY!r} holds ids longer than {MAX_ID_CHARS} characters")
    else:
        _check_dtype(key, dtype, source)
    budget.charge(key, shape, dtype)
    if math.prod(shape) * dtype.itemsize > stored_bytes:
        raise NeurofitError(f"{source}: array {key!r} claims shape {shape} ({dtype}) but the file holds fewer bytes; "
                            "is it complete?")
    with fp_open() as fp:
        try:
            return np.lib.format.read_array(fp, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
            raise NeurofitError(f"{source}: cannot read array {key!r} ({err}); is the file complete?") from None


def _read_npz(path: Path, budget: _Budget) -> tuple[dict[str, Any], list[str] | None]:
    source = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise NeurofitError(f"{source}: not an .npz archive ({err})") from None
    arrays: dict[str, Any] = {}
    ids = None
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            if not info.filename.endswith(".npy"):
                raise NeurofitError(f"{source}: member {info.filename!r} is not an .npy array")
            key = info.filename[:-4]
            if info.file_size > MAX_FEATURE_BYTES:
                raise NeurofitError(f"{source}: array {key!r} unpacks to {info.file_size / 2**30:.1f} GiB, beyond the "
                                    f"{MAX_FEATURE_BYTES / 2**30:.0f} GiB neurofit reads from one features file")
            values = _read_npy(lambda info=info: zf.open(info), key, source, budget, info.file_size)
            if key == IDS_KEY:
                ids = _ids_from_array(values, source)
            else:
                arrays[key] = values
    return arrays, ids


def _ids_from_array(values: np.ndarray, source: str) -> list[str]:
    if values.ndim != 1 or values.dtype.kind not in "US":
        raise NeurofitError(f"{source}: {IDS_KEY!r} must be a 1-D array of str (np.array(ids, dtype=str)), got "
                            f"shape {values.shape} dtype {values.dtype}")
    return _check_ids([v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values.tolist()], source)


def _read_torch(path: Path, budget: _Budget) -> tuple[dict[str, Any], list[str] | None]:
    import torch

    source = str(path)
    if path.stat().st_size > MAX_FEATURE_BYTES:
        raise NeurofitError(f"{source}: {path.stat().st_size / 2**30:.1f} GiB, beyond the "
                            f"{MAX_FEATURE_BYTES / 2**30:.0f} GiB neurofit reads from one features file")
    try:
        try:
            # memory-mapped: tensors are views of the file, so nothing is allocated beyond what it holds
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:
            if "mmap" not in str(err):
                raise
            obj = torch.load(path, map_location="cpu", weights_only=True)  # the legacy (pre-zip) format
    except pickle.UnpicklingError as err:
        reason = str(err).strip().splitlines() or [type(err).__name__]
        detail = next((line for line in reason if "GLOBAL" in line or "Unsupported" in line), reason[0])
        raise NeurofitError(f"{source}: refusing to load pickled Python objects ({detail.strip()}); neurofit reads "
                            "torch files with torch.load(weights_only=True): save a tensor, or a dict of layer name -> "
                            "tensor (and 'stimulus_id' -> list of str)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise NeurofitError(f"{source}: cannot read as a torch file ({_first_line(err)})") from None
    if isinstance(obj, torch.Tensor):
        obj = {path.stem: obj}
    if not isinstance(obj, Mapping):
        raise NeurofitError(f"{source}: holds a {type(obj).__name__}; expected a tensor or a dict of layer name -> "
                            "tensor")
    arrays: dict[str, Any] = {}
    ids = None
    for key, value in obj.items():
        key = str(key)
        if key == IDS_KEY:
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise NeurofitError(f"{source}: {IDS_KEY!r} must be a list of str")
            ids = _check_ids(value, source)
            continue
        if not isinstance(value, torch.Tensor):
            raise NeurofitError(f"{source}: key {key!r} holds a {type(value).__name__}, not a tensor")
        if value.dtype == torch.bfloat16:
            value = value.float()
        try:
            dtype = np.dtype(str(value.dtype).replace("torch.", ""))
        except TypeError:
            dtype = np.dtype(object)  # a torch dtype numpy has no name for (float8, quantized): refused below
        if dtype.kind not in "fiu":
            raise NeurofitError(f"{source}: array {key!r} has dtype {value.dtype}; features must be numbers")
        budget.charge(key, tuple(value.shape), dtype)
        arrays[key] = value.detach().numpy()
    return arrays, ids


def _read_safetensors(path: Path, budget: _Budget) -> tuple[dict[str, Any], list[str] | None]:
    from safetensors import SafetensorError, safe_open

    source = str(path)
    arrays: dict[str, Any] = {}
    try:
        with safe_open(str(path), framework="numpy") as handle:
            for key in handle.keys():
                meta = handle.get_slice(key)
                dtype = np.dtype({"F64": "float64", "F32": "float32", "F16": "float16", "I64": "int64", "I32": "int32",
                                  "I16": "int16", "I8": "int8", "U8": "uint8"}.get(meta.get_dtype(), "V1"))
                if dtype.kind == "V":
                    raise NeurofitError(f"{source}: array {key!r} has dtype {meta.get_dtype()}; features must be "
                                        "numbers neurofit reads (F64, F32, F16, integers)")
                budget.charge(key, tuple(meta.get_shape()), dtype)
                arrays[key] = handle.get_tensor(key)
    except SafetensorError as err:
        raise NeurofitError(f"{source}: cannot read as safetensors ({err}); is the file complete?") from None
    return arrays, None


def _read_hdf5(path: Path, budget: _Budget) -> tuple[dict[str, Any], list[str] | None]:
    source = str(path)
    try:
        import h5py
    except ImportError:
        raise NeurofitError(f"{source}: reading HDF5 needs h5py: pip install 'neurofit[hdf5]'") from None
    arrays: dict[str, Any] = {}
    ids = None

    def visit(group: Any, prefix: str) -> None:
        nonlocal ids
        for name in group:
            key = f"{prefix}{name}"
            link = group.get(name, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise NeurofitError(f"{source}: {key!r} is an external link to {link.filename!r}; neurofit reads only "
                                    "what the file itself holds")
            item = group[name]
            if isinstance(item, h5py.Group):
                visit(item, f"{key}/")
                continue
            if item.is_virtual:
                raise NeurofitError(f"{source}: {key!r} is a virtual dataset (data in other files); neurofit reads "
                                    "only what the file itself holds")
            if key == IDS_KEY:
                if item.ndim != 1 or h5py.check_string_dtype(item.dtype) is None:
                    raise NeurofitError(f"{source}: {IDS_KEY!r} must be a 1-D dataset of strings")
                budget.charge(key, item.shape, np.dtype("V8"))
                ids = _check_ids([str(v) for v in item.asstr()[()].tolist()], source)
                continue
            _check_dtype(key, item.dtype, source)
            budget.charge(key, item.shape, item.dtype)
            arrays[key] = item[()]

    try:
        with h5py.File(path, "r") as handle:
            visit(handle, "")
    except OSError as err:
        raise NeurofitError(f"{source}: cannot read as HDF5 ({err})") from None
    keys = list(arrays)
    if len(keys) > 1 and all(_SPLIT.fullmatch(k) for k in keys):
        # thingsvision's row splits of one feature matrix (features_01, features_02, ...), stacked in order
        arrays = {"features": np.concatenate([arrays[k] for k in sorted(keys, key=lambda k: int(k[9:]))])}
    return arrays, ids


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _read_text(path: Path, budget: _Budget) -> tuple[dict[str, Any], list[str] | None]:
    source = str(path)
    size = path.stat().st_size
    # a number takes at least 2 bytes of text ("1 "): the matrix needs at most 4x the file's size in float64
    budget.charge(path.stem, (max(size, 1), 4), np.dtype(np.float64))
    try:
        values = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (ValueError, UnicodeDecodeError) as err:
        raise NeurofitError(f"{source}: not a table of numbers ({_first_line(err)})") from None
    return {path.stem: values}, None


def _read_mat(path: Path, budget: _Budget) -> tuple[dict[str, Any], list[str] | None]:
    import scipy.io

    source = str(path)
    try:
        variables = scipy.io.whosmat(path)
    except NotImplementedError:  # MATLAB v7.3: an HDF5 file
        return _read_hdf5(path, budget)
    except (ValueError, OSError, TypeError) as err:
        raise NeurofitError(f"{source}: cannot read as a MATLAB file ({err})") from None
    kinds = {"double": "float64", "single": "float32", "int8": "int8", "uint8": "uint8", "int16": "int16",
             "uint16": "uint16", "int32": "int32", "uint32": "uint32", "int64": "int64", "uint64": "uint64"}
    for name, shape, kind in variables:
        if kind not in kinds:
            raise NeurofitError(f"{source}: variable {name!r} is a MATLAB {kind}; features must be numeric arrays")
        budget.charge(name, tuple(shape), np.dtype(kinds[kind]))
    try:
        loaded = scipy.io.loadmat(path, squeeze_me=False)
    except (ValueError, OSError, TypeError) as err:
        raise NeurofitError(f"{source}: cannot read as a MATLAB file ({err})") from None
    names = [name for name, _, _ in variables]
    if names == ["features"]:
        return {path.stem: loaded["features"]}, None
    # thingsvision with file_names.txt: one variable per image (its name without extension), one row each
    rows = [np.asarray(loaded[name]).reshape(-1) for name in names]
    return {path.stem: np.stack(rows) if len({r.shape for r in rows}) == 1 else rows}, _check_ids(names, source)


def _read_netcdf(path: Path, budget: _Budget, step_ms: float, t0_ms: float, model_id: str | None,
                 sha: str) -> ActivationSet:
    source = str(path)
    try:
        lazy = xr.open_dataset(path, engine="netcdf4")
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        raise NeurofitError(f"cannot read {path} as NetCDF: {err}") from None
    with lazy:
        for name, var in lazy.variables.items():
            if var.dtype.kind in "fiub":
                budget.charge(str(name), tuple(var.shape), var.dtype)
            elif var.dtype.kind in "OUS":
                budget.charge(str(name), tuple(var.shape), np.dtype("V8"))  # strings: counted, checked when read
            else:
                raise NeurofitError(f"{source}: variable {name!r} has dtype {var.dtype}")
        is_activation_set = "layers" in lazy.attrs and "time_map" in lazy.attrs
        if not is_activation_set:
            ds = lazy.load()
    if is_activation_set:
        return _checked_activation_set(read_activations(path), source)
    if not ds.data_vars:
        raise NeurofitError(f"{source}: no data variables")
    blocks: dict[str, dict[int, np.ndarray]] = {}
    ids = None
    for name, array in ds.data_vars.items():
        layer = path.stem if name == "__xarray_dataarray_variable__" else str(name)
        blocks[layer], own = _blocks_from_dataarray(str(name), array, source)
        own = _check_ids(own, source)
        if ids is None:
            ids = own
        elif own != ids:
            raise NeurofitError(f"{source}: variable {name!r} lists its stimuli in another order than the first "
                                "variable; give every layer the same stimulus_id coordinate")
    return _activation_set(blocks, ids or [], source=source, step_ms=step_ms, t0_ms=t0_ms,
                           model_id=model_id or path.stem, weights_sha256=sha, fmt="netcdf arrays")


def _checked_activation_set(acts: ActivationSet, source: str) -> ActivationSet:
    """An ActivationSet read from a file: every layer's coordinates present and its values finite."""
    ds = acts.dataset
    if IDS_KEY not in ds.coords:
        raise NeurofitError(f"{source}: ActivationSet without a {IDS_KEY!r} coordinate")
    _check_ids(acts.stimulus_ids, source)
    try:
        acts.time_map  # noqa: B018 - parses the attr
    except (TypeError, ValueError) as err:
        raise NeurofitError(f"{source}: attribute 'time_map' is not a TimeMap ({err})") from None
    for layer in acts.layers:
        for name in (f"driven_{layer}", f"step_start_ms_{layer}", f"step_end_ms_{layer}"):
            if name not in ds.coords:
                raise NeurofitError(f"{source}: layer {layer!r} has no coordinate {name!r}")
        if ds[layer].dims != (step_dim(layer), "presentation", feature_dim(layer)):
            raise NeurofitError(f"{source}: layer {layer!r} has dims {ds[layer].dims}; an ActivationSet layer has "
                                f"{(step_dim(layer), 'presentation', feature_dim(layer))}")
        _check_dtype(layer, ds[layer].dtype, source)
        finite = np.isfinite(ds[layer].values)
        if not finite.all():
            bad = int((~finite).any(axis=(0, 2)).sum())
            raise NeurofitError(f"{source}: layer {layer!r} holds NaN or Inf values ({bad} stimuli affected); "
                                "features must be finite")
    acts.dataset.attrs["source"] = source
    return acts


def read_features(
    path: str | os.PathLike[str],
    stimulus_ids: Sequence[str] | str | os.PathLike[str] | None = None,
    *,
    step_ms: float = 10.0,
    t0_ms: float = 0.0,
    model_id: str | None = None,
) -> ActivationSet:
    """Read precomputed features from a file into an ActivationSet (formats and rules: module docstring).

    Parameters
    ----------
    path : path
        ``.nc`` (an ActivationSet, or labelled arrays), ``.npz``, ``.npy``, ``.pt``/``.pth``, ``.safetensors``,
        ``.h5``/``.hdf5``, ``.txt`` or ``.mat``.
    stimulus_ids : sequence of str or a stimulus-order file, optional
        The stimulus of each row, for formats that carry no ids (:func:`read_stimulus_order`).
    step_ms, t0_ms : float
        Step ``t`` covers ``[t0_ms + t * step_ms, t0_ms + (t + 1) * step_ms)`` ms after stimulus onset
        (ignored for an ActivationSet, which carries its own TimeMap).
    model_id : str, optional
        Name in the ScoreSet (default: the file's name without suffix).

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "feats.npz"
    >>> np.savez(p, stimulus_id=np.array(["a", "b", "c"]), IT=np.arange(6.0).reshape(3, 2))
    >>> acts = read_features(p)
    >>> acts.layers, acts.stimulus_ids, acts.attrs["features_format"]
    (['IT'], ['a', 'b', 'c'], 'npz')
    """
    from neurofit.hashing import file_sha256

    path = Path(path)
    if not path.is_file():
        raise NeurofitError(f"features file not found: {path}")
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise NeurofitError(f"{path}: unknown features format {path.suffix!r}; neurofit reads "
                            f"{', '.join(sorted(FORMATS))}")
    budget = _Budget(str(path))
    sha = file_sha256(path)
    if fmt == "netcdf":
        acts = _read_netcdf(path, budget, step_ms, t0_ms, model_id, sha)
        if stimulus_ids is not None and _ids_argument(stimulus_ids) != acts.stimulus_ids:
            raise NeurofitError(f"{path} carries its own stimulus ids, in another order than the stimulus order given; "
                                "drop the stimulus order")
        if model_id is not None:
            acts.dataset.attrs["model_id"] = model_id
        return acts
    reader = {"npz": _read_npz, "npy": _read_npy_file, "torch": _read_torch, "safetensors": _read_safetensors,
              "hdf5": _read_hdf5, "txt": _read_text, "mat": _read_mat}[fmt]
    arrays, own = reader(path, budget)
    if own is not None and stimulus_ids is not None and _ids_argument(stimulus_ids) != own:
        raise NeurofitError(f"{path} carries its own stimulus ids (key {IDS_KEY!r}), in another order than the "
                            "stimulus order given; drop the stimulus order")
    ids = own if own is not None else (None if stimulus_ids is None else _ids_argument(stimulus_ids))
    if ids is None:
        beside = path.with_name("file_names.txt")
        hint = f" ({beside} lists thingsvision's image order)" if beside.is_file() else ""
        raise NeurofitError(f"{path} carries no stimulus ids (no key {IDS_KEY!r}): give the stimulus order, a text "
                            f"file with one id per line or a CSV column{hint}")
    if not arrays:
        raise NeurofitError(f"{path}: no feature arrays")
    for key, values in arrays.items():
        if isinstance(values, list):  # per-image variables of unequal size (a thingsvision .mat)
            raise NeurofitError(f"{path}: the per-image variables of {key!r} differ in size")
    blocks = _blocks_from_dict(arrays, str(path), len(ids))
    return _activation_set(blocks, ids, source=str(path), step_ms=step_ms, t0_ms=t0_ms,
                           model_id=model_id or path.stem, weights_sha256=sha, fmt=fmt)


def _read_npy_file(path: Path, budget: _Budget) -> tuple[dict[str, Any], list[str] | None]:
    size = path.stat().st_size
    return {path.stem: _read_npy(lambda: open(path, "rb"), path.stem, str(path), budget, size)}, None


__all__ = ["MAX_FEATURE_BYTES", "features_from_arrays", "read_features", "read_stimulus_order"]
