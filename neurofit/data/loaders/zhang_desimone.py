"""Zhang & Desimone (2011) macaque IT spike rasters, binned into a recording.

Source: the 132 ``*_raster_data.mat`` files distributed with NeuroDecodeR
(``github.com/emeyers/NeuroDecodeR``, GPL-3). Each file is one neuron: ``raster_data`` uint8
``(n_trials, 1000)`` at 1 ms resolution, ``raster_labels.stimulus_ID`` (7 objects) and
``raster_labels.stimulus_position`` (upper/middle/lower) per trial, and
``raster_site_info.alignment_event_time`` (501: the stimulus appears at the 501st millisecond, MATLAB's
1-based count, i.e. sample index 500).

Presentations are the 21 conditions ``<object>_<position>`` x repetitions. The neurons were recorded in
different sessions, so they share no trials: repetition ``k`` of a condition is the ``k``-th trial of that
condition in each neuron's own session (a pseudo-population, as in NeuroDecodeR), and a neuron with fewer
trials of a condition has NaN in the missing repetitions. The images are not public, so there is no
stimulus set: the loader returns ``None`` for it, says so in ``attrs['stimulus_set_note']`` and warns.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.io
import xarray as xr

from neurofit.data.recording import bin_spikes, make_recording, validate
from neurofit.errors import NeurofitError, ValidationError

CITATION = (
    "Zhang, Y., Meyers, E.M., Bichot, N.P., Serre, T., Poggio, T.A., Desimone, R. (2011). Object decoding "
    "with attention in inferior temporal cortex. PNAS 108(21):8850-8855"
)
NO_STIMULI = (
    "The Zhang & Desimone images are not public: no stimulus set, so no image-computable regression on "
    "this recording (use it for binning, per-bin ceilings, latency and dynamics)."
)
POSITIONS = ("upper", "middle", "lower")


class NoStimulusSetWarning(UserWarning):
    """A recording was loaded whose images are not available."""


def _strings(cell: np.ndarray) -> list[str]:
    """MATLAB cell array of strings (as loaded by scipy) -> list of str."""
    return [str(np.asarray(item).ravel()[0]) if np.asarray(item).size else "" for item in np.asarray(cell).ravel()]


def read_raster_mat(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read one NeuroDecodeR raster ``.mat`` file and check its fields.

    Returns
    -------
    dict with ``raster`` (uint8 ``[n_trials, n_ms]``), ``object`` and ``position`` (str per trial),
    ``onset_index`` (0-based sample of stimulus onset), ``session``, ``channel``, ``unit``.

    Raises
    ------
    ValidationError
        Naming the file and the missing or malformed field (e.g. ``raster_labels.stimulus_position``).

    Example
    -------
    >>> info = read_raster_mat("bp1001spk_01A_raster_data.mat")  # doctest: +SKIP
    >>> info["raster"].shape, info["onset_index"]  # doctest: +SKIP
    ((420, 1000), 500)
    """
    path = Path(path)
    try:
        mat = scipy.io.loadmat(path)
    except (ValueError, OSError, TypeError) as err:
        raise NeurofitError(f"cannot read {path} as a MATLAB .mat file: {err}") from err

    def field(struct_name: str, name: str | None = None) -> np.ndarray:
        label = struct_name if name is None else f"{struct_name}.{name}"
        if struct_name not in mat:
            raise ValidationError(f"{path}: missing field '{label}' (expected a NeuroDecodeR raster file)")
        value = mat[struct_name]
        if name is None:
            return value
        if value.dtype.names is None or name not in value.dtype.names:
            raise ValidationError(f"{path}: missing field '{label}' (expected a NeuroDecodeR raster file)")
        return value[name][0, 0]

    raster = field("raster_data")
    if raster.ndim != 2 or raster.dtype.kind not in "uib":
        raise ValidationError(f"{path}: field 'raster_data' must be an integer (trials, ms) array, "
                              f"got {raster.dtype} {raster.shape}")
    objects = _strings(field("raster_labels", "stimulus_ID"))
    positions = _strings(field("raster_labels", "stimulus_position"))
    for name, labels in (("stimulus_ID", objects), ("stimulus_position", positions)):
        if len(labels) != raster.shape[0]:
            raise ValidationError(
                f"{path}: field 'raster_labels.{name}' has {len(labels)} labels for {raster.shape[0]} trials"
            )
    alignment = np.asarray(field("raster_site_info", "alignment_event_time")).ravel()
    if alignment.size != 1:
        raise ValidationError(f"{path}: field 'raster_site_info.alignment_event_time' must be one number")
    info = mat["raster_site_info"]

    def site(name: str) -> str:
        if name in (info.dtype.names or ()):
            return str(np.asarray(info[name][0, 0]).ravel()[0])
        return ""

    return {
        "raster": raster,
        "object": objects,
        "position": positions,
        "onset_index": int(alignment[0]) - 1,  # MATLAB's 1-based millisecond -> 0-based sample
        "session": site("session_ID"),
        "channel": site("recording_channel"),
        "unit": site("unit"),
    }


def zhang_desimone_recording(
    mat_files: Sequence[str | os.PathLike[str]],
    *,
    bin_ms: float = 10.0,
    start_ms: float = -500.0,
    end_ms: float = 500.0,
    units: str = "spikes/s",
    identifier: str = "zhang-desimone-2011-it",
    citation: str = CITATION,
    license: str = "GPL-3.0",
    source_sha256: str = "",
) -> xr.DataArray:
    """Bin the 1 ms rasters of many neurons into one recording aligned to stimulus onset.

    Parameters
    ----------
    mat_files : the neurons' raster files; neuroid ids are the file names without ``_raster_data.mat``.
    bin_ms : bin width in ms (the window must be a whole number of bins).
    start_ms, end_ms : the window in ms after onset (default the whole 1000 ms trial: -500 to 500).
    units : ``"spikes/s"`` (counts divided by the bin width) or ``"counts"``.

    Returns
    -------
    DataArray ``(presentation, neuroid, time_bin)``: presentations sorted by object, position (upper,
    middle, lower) and repetition; ``object_name`` and ``position`` coords; NaN where a neuron has no
    such trial.

    Example
    -------
    >>> rec = zhang_desimone_recording(sorted(Path("zhang_desimone_it").glob("*.mat")))  # doctest: +SKIP
    >>> rec.sizes  # doctest: +SKIP
    Frozen({'presentation': 420, 'neuroid': 132, 'time_bin': 100})
    """
    if units not in ("spikes/s", "counts"):
        raise ValidationError(f"units must be 'spikes/s' or 'counts', got {units!r}")
    if not mat_files:
        raise ValidationError("no raster files given")
    neurons: list[tuple[str, dict[str, Any], np.ndarray]] = []
    starts = ends = np.empty(0)
    for path in mat_files:
        path = Path(path)
        info = read_raster_mat(path)
        counts, starts, ends = bin_spikes(info["raster"], bin_ms, start_ms, end_ms, onset_ms=info["onset_index"])
        name = path.name.removesuffix(".mat").removesuffix("_raster_data")
        neurons.append((name, info, counts))

    # Condition x repetition index per neuron: the k-th trial of a condition in that neuron's session.
    keys: dict[tuple[str, str, int], int] = {}
    per_neuron_keys = []
    for _, info, _ in neurons:
        labels = pd.Series([f"{o}\0{p}" for o, p in zip(info["object"], info["position"])])
        reps = labels.groupby(labels).cumcount().to_numpy()
        trial_keys = [(o, p, int(r)) for o, p, r in zip(info["object"], info["position"], reps)]
        per_neuron_keys.append(trial_keys)
        for key in trial_keys:
            keys.setdefault(key, 0)
    position_rank = {p: i for i, p in enumerate(POSITIONS)}
    ordered = sorted(keys, key=lambda k: (k[0], position_rank.get(k[1], len(POSITIONS)), k[1], k[2]))
    row_of = {key: i for i, key in enumerate(ordered)}

    n_bins = len(starts)
    values = np.full((len(ordered), len(neurons), n_bins), np.nan)
    for j, ((_, _, counts), trial_keys) in enumerate(zip(neurons, per_neuron_keys)):
        rows = np.fromiter((row_of[k] for k in trial_keys), dtype=np.int64, count=len(trial_keys))
        values[rows, j] = counts
    if units == "spikes/s":
        values *= 1000.0 / bin_ms

    objects = [k[0] for k in ordered]
    positions = [k[1] for k in ordered]
    missing = int(np.isnan(values[:, :, 0]).sum())
    recording = make_recording(
        values,
        stimulus_id=[f"{o}_{p}" for o, p in zip(objects, positions)],
        repetition=[k[2] for k in ordered],
        neuroid_id=[name for name, _, _ in neurons],
        region="IT",
        time_bin_start=starts,
        time_bin_end=ends,
        identifier=identifier,
        stimulus_set_identifier="",
        units=units,
        citation=citation,
        license=license,
        source_sha256=source_sha256,
        presentation_coords={"object_name": objects, "position": positions},
        neuroid_coords={
            "session": [info["session"] for _, info, _ in neurons],
            "recording_channel": [info["channel"] for _, info, _ in neurons],
            "unit": [info["unit"] for _, info, _ in neurons],
        },
        attrs={
            "stimulus_set_note": NO_STIMULI,
            "bin_ms": float(bin_ms),
            "alignment": "time 0 = stimulus onset (raster_site_info.alignment_event_time, 1-based ms)",
            "pseudo_population": (
                "neurons were recorded in different sessions; repetition k of a condition is the k-th trial "
                f"of that condition in each neuron's own session; {missing} neuron x trial slots have no "
                "trial and are NaN"
            ),
        },
    )
    validate(recording)
    return recording


def load_zhang_desimone(paths: Mapping[str, Path], manifest: Any, **options: Any) -> tuple[xr.DataArray, None]:
    """Manifest loader: bin every ``.mat`` file of the dataset; returns ``(recording, None)``.

    Example
    -------
    >>> from neurofit.data.fetch import load_dataset
    >>> rec, stimuli = load_dataset("zhang-desimone-2011-it", bin_ms=20)  # doctest: +SKIP
    >>> stimuli is None, rec.sizes["time_bin"]  # doctest: +SKIP
    (True, 50)
    """
    files = [paths[rel] for rel in sorted(paths) if rel.endswith(".mat")]
    recording = zhang_desimone_recording(
        files,
        identifier=manifest.id,
        citation=manifest.citation,
        license=manifest.license,
        source_sha256=manifest.sha256,
        **options,
    )
    warnings.warn(f"{manifest.id}: {NO_STIMULI}", NoStimulusSetWarning, stacklevel=2)
    return recording, None


# load_dataset checks user options against these before fetching anything
load_zhang_desimone.converter = zhang_desimone_recording  # type: ignore[attr-defined]
load_zhang_desimone.reserved = ("identifier", "citation", "license", "source_sha256")  # type: ignore[attr-defined]
