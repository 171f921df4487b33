"""Brain-Score models as neurofit features.

A Brain-Score ``BrainModel`` has committed itself already: ``start_recording(region, time_bins)`` picks the
layer (or readout) that stands for a region and the time bins it will answer for, and ``look_at(stimuli)``
returns a ``presentation x neuroid x time_bin`` assembly. neurofit therefore treats each region as one
"layer" and each asked bin as one step of that layer (step ``t`` covers bin ``t``), so that
:func:`neurofit.score` maps it one to one onto the benchmark's bins, with neurofit's statistics and no layer
choice of its own.

Stimuli are shown the way Brain-Score benchmarks show them: placed on a gray screen at the model's
``visual_degrees()`` (neurofit's :meth:`~neurofit.data.stimuli.StimulusSet.place_on_screen`), written as PNG
files, and passed as a Brain-Score ``StimulusSet`` (a table with ``stimulus_paths``; Brain-Score's own class
when it is installed, an equivalent table otherwise).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from PIL import Image

from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError, ValidationError


def is_brain_model(obj: Any) -> bool:
    """Whether ``obj`` offers Brain-Score's recording interface (``start_recording`` and ``look_at``).

    Example
    -------
    >>> class Model:
    ...     def start_recording(self, region, time_bins): ...
    ...     def look_at(self, stimuli, number_of_trials=1): ...
    >>> is_brain_model(Model()), is_brain_model("cornet_z")
    (True, False)
    """
    return callable(getattr(obj, "start_recording", None)) and callable(getattr(obj, "look_at", None))


class _PathStimulusSet(pd.DataFrame):
    """Brain-Score's StimulusSet contract (a table with ``stimulus_paths`` and ``get_stimulus``) without it."""

    _metadata = ["identifier", "stimulus_paths"]

    @property
    def _constructor(self) -> type:
        return _PathStimulusSet

    def get_stimulus(self, stimulus_id: str) -> str:
        return self.stimulus_paths[stimulus_id]


def brainscore_stimuli(stimuli: StimulusSet, visual_degrees: float, directory: str | os.PathLike[str]) -> Any:
    """``stimuli`` as ``look_at`` takes them: placed on screen at ``visual_degrees``, as PNG files in ``directory``.

    Each image keeps its pixel size (non-square images are centre-cropped to a square first, as neurofit
    shows them to its own models).

    Example
    -------
    >>> import tempfile
    >>> ss = StimulusSet.from_arrays(np.full((1, 8, 8, 3), 200, np.uint8), pd.DataFrame({"stimulus_id": ["a"]}),
    ...                              degrees=4.0, identifier="toy")
    >>> shown = brainscore_stimuli(ss, 8.0, tempfile.mkdtemp())
    >>> Image.open(shown.get_stimulus("a")).getpixel((0, 0))  # the gray screen around a 4-degree image
    (128, 128, 128)
    """
    try:
        from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet as TableClass
    except ImportError:
        TableClass = _PathStimulusSet
    directory = Path(directory)
    placed = stimuli.place_on_screen(float(visual_degrees))
    paths = {}
    for index, (sid, raw) in enumerate(zip(stimuli.stimulus_ids, stimuli.read_raw())):
        image = placed.load_images(min(raw.shape[:2]), ids=[sid])[0]
        path = directory / f"stimulus_{index:06d}.png"
        Image.fromarray(np.round(image.permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)).save(path)
        paths[sid] = str(path)
    table = TableClass(stimuli.table.drop(columns=["filename"], errors="ignore").copy())
    table.stimulus_paths = paths
    table.identifier = f"{stimuli.identifier}--target{float(visual_degrees):g}deg"
    return table


class ExternalBrainModel:
    """A Brain-Score model that lives in another Python environment, served there by a subprocess.

    Brain-Score pins ``xarray<2022.6``, so its models usually cannot be imported beside neurofit. This object
    offers their recording interface here: on first use it starts ``python -I -B`` :mod:`driver
    <neurofit.brainscore.driver>` in that environment, which loads the model once; each ``look_at`` asks it
    to record, and the assembly it writes with Brain-Score's own writer comes back as untrusted NetCDF.
    Brain-Score's result cache is switched off there (it keys activations by identifiers, not content).
    Close it (or use it in a ``with`` block) to stop the worker.

    Parameters
    ----------
    python : the other environment's python (it must have ``brainscore_vision`` installed).
    model : a Brain-Score model identifier (``brainscore_vision.load_model(model)``), or
    factory : ``/path/to/file.py:function`` returning a ``BrainModel``.
    plugins : extra plugin folders ``load_model`` should find (e.g. one written by :func:`export_plugin`).
    timeout : seconds to wait for the model to load or to answer one ``look_at``.

    Example
    -------
    >>> with ExternalBrainModel("/envs/brainscore/bin/python", "alexnet") as external:  # doctest: +SKIP
    ...     acts = activations_from_brain_model(external, stimuli, ["IT"], [(70, 170)])
    """

    def __init__(self, python: str | os.PathLike[str], model: str | None = None, *, factory: str | None = None,
                 plugins: Sequence[str | os.PathLike[str]] = (), timeout: float = 3600.0) -> None:
        if (model is None) == (factory is None):
            raise NeurofitError("name either a Brain-Score model (model=...) or a factory (factory='file.py:function')")
        if not Path(python).is_file():
            raise NeurofitError(f"python not found: {python}")
        self.python = Path(python)
        self.model, self.factory, self.timeout = model, factory, float(timeout)
        self.plugins = [str(Path(p).resolve()) for p in plugins]
        self._recording: tuple[str, list[tuple[float, float]]] | None = None
        self._worker: Any = None
        self._info: dict[str, Any] = {}
        self._directory: tempfile.TemporaryDirectory[str] | None = None

    def _name(self) -> str:
        return repr(self.model or self.factory)

    def _failure(self, what: str) -> NeurofitError:
        assert self._directory is not None
        log = (Path(self._directory.name) / "stderr.log").read_text(errors="replace").strip().splitlines()
        return NeurofitError(f"the Brain-Score model {self._name()} {what} in {self.python}: "
                             f"{log[-1] if log else '(no output)'}")

    def _answer(self, what: str) -> dict[str, Any]:
        import json
        import select

        ready, _, _ = select.select([self._worker.stdout], [], [], self.timeout)
        line = self._worker.stdout.readline() if ready else ""
        if not line:
            timed_out = not ready
            self.close(keep_log=True)
            if timed_out:
                raise NeurofitError(f"the Brain-Score model {self._name()} did not {what} within {self.timeout:g} s")
            raise self._failure(f"failed to {what}")
        return json.loads(line)

    def _start(self) -> None:
        import json
        import subprocess

        if self._worker is not None:
            return
        self._directory = tempfile.TemporaryDirectory(prefix="neurofit-external-")
        directory = Path(self._directory.name)
        config = directory / "config.json"
        config.write_text(json.dumps({"model": self.model, "factory": self.factory, "plugins": self.plugins}))
        # Brain-Score's result cache keys activations by identifiers, not content: off, so that changed images or
        # weights are never answered from it
        env = {**os.environ, "BS_INSTALL_DEPENDENCIES": "no", "TQDM_DISABLE": "1", "RESULTCACHING_DISABLE": "1"}
        with open(directory / "stderr.log", "w") as log:
            self._worker = subprocess.Popen(
                [str(self.python), "-I", "-B", str(Path(__file__).with_name("driver.py")), str(config)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True, cwd=directory, env=env)
        info = self._answer("load")
        self._info = {"identifier": str(info["identifier"]), "visual_degrees": float(info["visual_degrees"])}

    def close(self, keep_log: bool = False) -> None:
        """Stop the worker (a later call starts a new one)."""
        if self._worker is not None:
            self._worker.stdin.close()
            try:
                self._worker.wait(timeout=30)
            except Exception:
                self._worker.kill()
            self._worker = None
        if self._directory is not None and not keep_log:
            self._directory.cleanup()
            self._directory = None

    def __enter__(self) -> ExternalBrainModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the worker ends with its closed stdin anyway
            pass

    @property
    def identifier(self) -> str:
        self._start()
        return self._info["identifier"]

    def visual_degrees(self) -> float:
        self._start()
        return self._info["visual_degrees"]

    def start_recording(self, region: str, time_bins: Sequence[Sequence[float]]) -> None:
        self._recording = (str(region), _bins(time_bins))

    def look_at(self, stimuli: Any, number_of_trials: int = 1) -> xr.DataArray:
        """The model's assembly for ``stimuli`` (a table with ``stimulus_id`` and ``get_stimulus``)."""
        import json

        from neurofit.data.io import read_dataset

        if self._recording is None:
            raise NeurofitError("call start_recording(region, time_bins) before look_at")
        self._start()
        region, bins = self._recording
        with tempfile.TemporaryDirectory(prefix="neurofit-external-") as directory:
            directory = Path(directory)
            table = pd.DataFrame(stimuli).copy()
            table["stimulus_path"] = [str(stimuli.get_stimulus(s)) for s in table["stimulus_id"]]
            table.to_csv(directory / "stimuli.csv", index=False)
            request = {"stimuli_csv": str(directory / "stimuli.csv"), "region": region, "time_bins": bins,
                       "stimulus_set_identifier": str(getattr(stimuli, "identifier", "neurofit")),
                       "number_of_trials": int(number_of_trials), "out": str(directory / "assembly.nc")}
            self._worker.stdin.write(json.dumps(request) + "\n")
            self._worker.stdin.flush()
            answer = self._answer("answer look_at")
            if not answer.get("ok"):
                raise NeurofitError(f"the Brain-Score model {self._name()} failed to look at the stimuli: "
                                    f"{answer.get('error', '?')}")
            dataset = read_dataset(directory / "assembly.nc")
        names = list(dataset.data_vars)
        if len(names) != 1:
            raise NeurofitError(f"the Brain-Score model {self._name()} returned {len(names)} variables, not one")
        return dataset[names[0]]


def _bins(time_bins: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    bins = [(float(start), float(end)) for start, end in time_bins]
    if not bins:
        raise NeurofitError("no time bins given")
    return bins


def _uniform_steps(bins: Sequence[tuple[float, float]], source: str) -> tuple[float, float]:
    """``(step_ms, t0_ms)`` when the bins are contiguous and of equal width (one step per bin)."""
    width = bins[0][1] - bins[0][0]
    for (start, end), (next_start, _) in zip(bins, [*bins[1:], (bins[-1][1], 0.0)]):
        if abs((end - start) - width) > 1e-9 or abs(next_start - end) > 1e-9:
            listed = ", ".join(f"{s:g}-{e:g}" for s, e in bins[:6])
            raise NeurofitError(f"{source}: neurofit takes a Brain-Score model's response as one step per time bin, "
                                f"which needs contiguous bins of equal width; got {listed} ms")
    return width, bins[0][0]


def _flat(assembly: Any) -> xr.DataArray:
    """A plain DataArray with every MultiIndex level as an ordinary coordinate."""
    array = xr.DataArray(assembly)
    for dim in list(array.dims):
        if dim in array.indexes and isinstance(array.indexes[dim], pd.MultiIndex):
            array = array.reset_index(dim)
    return array


def _time_bins_of(array: xr.DataArray, source: str) -> list[tuple[float, float]]:
    if "time_bin_start" in array.coords and "time_bin_end" in array.coords:
        return list(zip(np.atleast_1d(array.coords["time_bin_start"].values).astype(float).tolist(),
                        np.atleast_1d(array.coords["time_bin_end"].values).astype(float).tolist()))
    raise ValidationError(f"{source} has no time_bin dim with time_bin_start/time_bin_end coordinates: every "
                          "assembly a model returns must say which time bin each value is for")


def assembly_features(assembly: Any, stimulus_ids: Sequence[str], time_bins: Sequence[Sequence[float]] | None,
                      source: str = "assembly") -> tuple[np.ndarray, list[tuple[float, float]], np.ndarray]:
    """Features ``[n_bins, n_stimuli, n_neuroids]`` (float64) of an assembly, in the order of ``stimulus_ids``.

    ``time_bins`` picks bins (default: all, in the assembly's order). Repeated presentations of a stimulus
    (``number_of_trials > 1``) are averaged. Returns the features, the bins and the neuroid ids.

    Raises
    ------
    ValidationError
        The assembly has no ``time_bin`` dim (and more than one bin is asked), no ``stimulus_id``, lacks an
        asked bin or stimulus (the first missing one is named), or holds NaN or Inf.

    Example
    -------
    >>> a = xr.DataArray(np.arange(6.).reshape(2, 3, 1), dims=("presentation", "neuroid", "time_bin"),
    ...                  coords={"stimulus_id": ("presentation", ["b", "a"]), "time_bin_start": ("time_bin", [70]),
    ...                          "time_bin_end": ("time_bin", [170])})
    >>> values, bins, _ = assembly_features(a, ["a", "b"], None)
    >>> values[0].tolist(), bins
    ([[3.0, 4.0, 5.0], [0.0, 1.0, 2.0]], [(70.0, 170.0)])
    """
    array = _flat(assembly)
    for dim in ("presentation", "neuroid"):
        if dim not in array.dims:
            raise ValidationError(f"{source} has no {dim!r} dim (dims: {tuple(array.dims)})")
    if "time_bin" not in array.dims:
        wanted = None if time_bins is None else _bins(time_bins)
        if wanted is not None and len(wanted) > 1:
            raise ValidationError(f"{source} has no 'time_bin' dim, but {len(wanted)} time bins were asked for")
        if "time_bin_start" in array.coords:
            array = array.expand_dims("time_bin", axis=-1)
            for name in ("time_bin_start", "time_bin_end"):
                array = array.assign_coords({name: ("time_bin", np.atleast_1d(array.coords[name].values))})
        elif wanted is not None:
            array = array.expand_dims("time_bin", axis=-1).assign_coords(
                time_bin_start=("time_bin", [wanted[0][0]]), time_bin_end=("time_bin", [wanted[0][1]]))
        else:
            raise ValidationError(f"{source} has no 'time_bin' dim: say which time bin its values are for")
    have = _time_bins_of(array, source)
    wanted = have if time_bins is None else _bins(time_bins)
    columns = []
    for start, end in wanted:
        hit = [i for i, (s, e) in enumerate(have) if abs(s - start) < 1e-6 and abs(e - end) < 1e-6]
        if not hit:
            listed = ", ".join(f"{s:g}-{e:g}" for s, e in have[:6])
            raise ValidationError(f"{source} has no time bin {start:g}-{end:g} ms (it has {listed} ms)")
        columns.append(hit[0])
    name = "stimulus_id" if "stimulus_id" in array.coords else "image_id" if "image_id" in array.coords else None
    if name is None:
        raise ValidationError(f"{source} has no 'stimulus_id' coordinate along 'presentation'")
    array = array.transpose("presentation", "neuroid", "time_bin")
    values = np.asarray(array.values, dtype=np.float64)[:, :, columns]
    ids = np.asarray(array.coords[name].values).astype(str)
    codes, uniques = pd.factorize(ids)
    position = {sid: i for i, sid in enumerate(uniques.tolist())}
    for sid in stimulus_ids:
        if str(sid) not in position:
            raise ValidationError(f"{source} has no stimulus {str(sid)!r}")
    if len(uniques) != len(ids):  # several trials per stimulus: their mean
        sums = np.zeros((len(uniques), *values.shape[1:]))
        np.add.at(sums, codes, values)
        values = sums / np.bincount(codes)[:, None, None]
    values = values[[position[str(sid)] for sid in stimulus_ids]]
    bad = ~np.isfinite(values)
    if bad.any():
        s, n, b = np.argwhere(bad)[0]
        raise ValidationError(f"{source} holds NaN or Inf (stimulus {str(stimulus_ids[s])!r}, neuroid {n}, time bin "
                              f"{wanted[b][0]:g}-{wanted[b][1]:g} ms)")
    neuroids = (np.asarray(array.coords["neuroid_id"].values).astype(str) if "neuroid_id" in array.coords
                else np.array([str(i) for i in range(values.shape[1])]))
    return values.transpose(2, 0, 1), wanted, neuroids


def activations_from_brain_model(
    model: Any,
    stimuli: StimulusSet,
    regions: Sequence[str],
    time_bins: Sequence[Sequence[float]],
    *,
    number_of_trials: int = 1,
    model_id: str | None = None,
) -> Any:
    """Show ``stimuli`` to a Brain-Score model and return its responses as an ActivationSet.

    For each region, ``model.start_recording(region, time_bins=[(start, end), ...])`` then
    ``model.look_at(stimuli, number_of_trials=...)``; the returned ``presentation x neuroid x time_bin``
    assembly becomes the "layer" named after the region, one step per bin (the bins must be contiguous and of
    equal width, as a benchmark's are).

    Raises
    ------
    NeurofitError
        ``model`` lacks the interface, or an assembly it returns misses a stimulus or a bin, has no
        ``time_bin`` dim, or holds NaN (the first problem is named).

    Example
    -------
    >>> acts = activations_from_brain_model(brain_model, stimuli, ["IT"], [(70, 170)])  # doctest: +SKIP
    >>> acts.layers, acts.n_steps("IT")  # doctest: +SKIP
    (['IT'], 1)
    """
    from neurofit.scoring.resolve import activations_from_arrays

    if not is_brain_model(model):
        raise NeurofitError(f"a {type(model).__name__} is not a Brain-Score model: it needs start_recording(region, "
                            "time_bins) and look_at(stimuli)")
    bins = _bins(time_bins)
    name = model_id or str(getattr(model, "identifier", type(model).__name__))
    step_ms, t0_ms = _uniform_steps(bins, f"model {name!r}")
    degrees = float(model.visual_degrees()) if callable(getattr(model, "visual_degrees", None)) else 8.0
    ids = stimuli.stimulus_ids
    features = {}
    with tempfile.TemporaryDirectory(prefix="neurofit-brainscore-") as directory:
        shown = brainscore_stimuli(stimuli, degrees, directory)
        for region in regions:
            model.start_recording(region, time_bins=list(bins))
            assembly = model.look_at(shown, number_of_trials=number_of_trials)
            values, _, _ = assembly_features(assembly, ids, bins, f"the response of {name!r} to look_at ({region})")
            features[region] = values
    acts = activations_from_arrays(features, ids, step_ms=step_ms, t0_ms=t0_ms, model_id=name)
    acts.dataset.attrs["brainscore_model"] = (
        f"{name}: Brain-Score model recorded with start_recording(region, time_bins) for regions "
        f"{', '.join(regions)}; shown at {degrees:g} degrees, {number_of_trials} trial(s) averaged; each region "
        "is one layer, each time bin one step")
    return acts


def activations_from_assembly(
    assembly: Any,
    *,
    stimulus_ids: Sequence[str] | None = None,
    model_id: str | None = None,
) -> Any:
    """An ActivationSet from a model assembly (an xarray object, or a NetCDF file Brain-Score wrote).

    Neuroids are grouped into one layer per ``region`` coordinate value (all in one layer named
    ``features`` without one); each time bin is one step. ``stimulus_ids`` picks and orders the stimuli
    (default: the assembly's, first appearance).

    Example
    -------
    >>> a = xr.DataArray(np.ones((2, 3, 2)), dims=("presentation", "neuroid", "time_bin"),
    ...                  coords={"stimulus_id": ("presentation", ["a", "b"]),
    ...                          "region": ("neuroid", ["IT"] * 3), "time_bin_start": ("time_bin", [70, 80]),
    ...                          "time_bin_end": ("time_bin", [80, 90])})
    >>> acts = activations_from_assembly(a)
    >>> acts.layers, acts.n_steps("IT"), acts.step_window("IT", 1)
    (['IT'], 2, (80.0, 90.0))
    """
    from neurofit.scoring.resolve import activations_from_arrays

    source = "assembly"
    if isinstance(assembly, (str, os.PathLike)):
        from neurofit.data.io import read_dataset

        source = str(assembly)
        dataset = read_dataset(assembly)
        names = list(dataset.data_vars)
        if len(names) != 1:
            raise ValidationError(f"{source} holds {len(names)} variables {names}; a model assembly holds one")
        assembly = dataset[names[0]]
    array = _flat(assembly)
    if "time_bin" not in array.dims and "time_bin_start" not in array.coords:
        raise ValidationError(f"{source} has no 'time_bin' dim: say which time bin its values are for")
    name = "stimulus_id" if "stimulus_id" in array.coords else "image_id"
    if name not in array.coords:
        raise ValidationError(f"{source} has no 'stimulus_id' coordinate along 'presentation'")
    ids = list(stimulus_ids) if stimulus_ids is not None else pd.unique(
        np.asarray(array.coords[name].values).astype(str)).tolist()
    regions = (np.asarray(array.coords["region"].values).astype(str) if "region" in array.coords
               and array.coords["region"].dims == ("neuroid",) else None)
    groups = {"features": np.arange(array.sizes["neuroid"])} if regions is None else {
        str(region): np.flatnonzero(regions == region) for region in pd.unique(regions)}
    features = {}
    bins: list[tuple[float, float]] = []
    for layer, index in groups.items():
        values, bins, _ = assembly_features(array.isel(neuroid=index), ids, None, source)
        features[layer] = values
    step_ms, t0_ms = _uniform_steps(bins, source)
    return activations_from_arrays(features, ids, step_ms=step_ms, t0_ms=t0_ms,
                                   model_id=model_id or str(array.attrs.get("model_identifier", "assembly")))
