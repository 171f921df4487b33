"""Cowley et al. (2023) macaque V4 responses to images, one session at a time.

Source: ``github.com/cowleygroup/V4_compact_models``, folder ``data_V4_responses/`` (GPL-3.0). Per
session, a zip of 112x112 RGB JPEGs ``imageNNNN.jpg`` (1-based), the repetition-averaged spike counts
``(n_neurons, n_images)`` and, for some sessions, the trials ``(n_neurons, n_images, n_repeats)`` with
missing repeats stored as NaN. Column ``i`` of the responses is image ``i + 1`` in name order (the authors'
readme: "images[iimage], responses_raw[:,iimage,:], and responses_avg[:,iimage] all correspond"); members
are therefore sorted by name, because some zips hold a subfolder or list members out of order.

What the files do not say (stated in the recording's attrs, overridable by options):

* the spike-count window: the readme says "Spike count bins are in 100ms" but not where the window sits
  after image onset. The default ``window_ms=(50, 150)`` is an assumption (a window starting at a typical
  V4 response latency), not a documented value.
* the images' visual angle: not stated in the files here. The default ``degrees=8.0`` is Brain-Score's
  standard V4/IT visual angle, an assumption, not a value from the source.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from neurofit.data.recording import make_recording, validate
from neurofit.data.stimuli import StimulusSet, zip_members
from neurofit.errors import NeurofitError, ValidationError

CITATION = (
    "Cowley, B.R., Stan, P.L., Pillow, J.W., Smith, M.A. (2023). Compact deep neural network models of "
    "visual cortex. bioRxiv 2023.11.22.568315"
)
WINDOW_NOTE = (
    "The source readme gives 100 ms spike-count bins but not the window's position after image onset; "
    "time_bin_start/end here are an assumption (loader option window_ms), not a documented value."
)
DEGREES_NOTE = (
    "The source files do not state the images' visual angle; the stimulus set's degrees is an assumption "
    "(loader option degrees; default 8.0, Brain-Score's standard), not a value from the source."
)
_IMAGE_NAME = re.compile(r"^image(\d+)\.jpg$", re.IGNORECASE)


def _sha256(path: Path) -> str:
    from neurofit.data.fetch import file_sha256

    return file_sha256(path)


def _image_members(zip_path: Path, n_images: int, session: str) -> list[str]:
    """Zip member names for images 1..n_images, in name order; names the first image that is missing."""
    by_number: dict[int, str] = {}
    for member in zip_members(zip_path):
        match = _IMAGE_NAME.match(PurePosixPath(member).name)
        if match:
            by_number.setdefault(int(match.group(1)), member)
    members = []
    for number in range(1, n_images + 1):
        member = by_number.get(number)
        if member is None:
            raise ValidationError(
                f"stimulus_id '{session}/image{number:04d}' (response column {number - 1}) has no image "
                f"'image{number:04d}.jpg' in the zip {zip_path}; the zip holds {len(by_number)} images for "
                f"{n_images} response columns"
            )
        members.append(member)
    extra = sorted(set(by_number) - set(range(1, n_images + 1)))
    if extra:
        raise ValidationError(
            f"the zip {zip_path} holds image{extra[0]:04d}.jpg but the responses have only {n_images} columns"
        )
    return members


def _kind_labels(image_kinds: Sequence[Mapping[str, Any]] | None, n_images: int, source: str) -> np.ndarray:
    if not image_kinds:
        return np.full(n_images, "unknown")
    labels: list[str] = []
    for block in image_kinds:
        labels += [str(block["kind"])] * int(block["count"])
    if len(labels) != n_images:
        raise ValidationError(f"{source}: image_kinds cover {len(labels)} images but the session has {n_images}")
    return np.asarray(labels)


def cowley_recording(
    images_zip: str | os.PathLike[str],
    averaged_npy: str | os.PathLike[str],
    raw_npy: str | os.PathLike[str] | None = None,
    *,
    session: str,
    identifier: str | None = None,
    trials: bool = True,
    window_ms: Sequence[float] = (50.0, 150.0),
    degrees: float = 8.0,
    animal: str = "",
    image_kinds: Sequence[Mapping[str, Any]] | None = None,
    n_neurons: int | None = None,
    n_images: int | None = None,
    citation: str = CITATION,
    license: str = "GPL-3.0",
    source_sha256: str | None = None,
) -> tuple[xr.DataArray, StimulusSet]:
    """Convert one Cowley 2023 V4 session into a recording and its stimulus set.

    Parameters
    ----------
    images_zip, averaged_npy, raw_npy : the session's files (``raw_npy`` optional: trial repeats).
    session : the session id, e.g. ``"210325"``; stimulus ids are ``<session>/imageNNNN`` and neuroid ids
        ``<session>.<neuron index>`` (0-based, as in the authors' ``neuron0`` file names).
    trials : use the trial repeats when ``raw_npy`` is given (NaN repeats dropped, so stimuli have
        different numbers of repetitions); otherwise one repetition-averaged presentation per image.
    window_ms : the spike-count window after onset, ``(start, end)``; see the module docstring.
    degrees : the images' visual angle; see the module docstring.
    image_kinds : ``[{kind, count}, ...]`` in image name order (e.g. 600 natural then 600 renders).
    n_neurons, n_images : expected shape; a mismatch is an error.
    source_sha256 : recorded in attrs; default: sha256 of the files' sha256s.

    Returns
    -------
    (recording, stimulus_set)
        ``rates`` in spike counts per window (``units='counts'``), dims ``(presentation, neuroid,
        time_bin)`` with one time bin.

    Example
    -------
    >>> rec, ss = cowley_recording("images_210325.zip", "avg_210325.npy", "raw_210325.npy",
    ...                            session="210325")  # doctest: +SKIP
    >>> rec.sizes["neuroid"], len(ss)  # doctest: +SKIP
    (50, 640)
    """
    images_zip, averaged_npy = Path(images_zip), Path(averaged_npy)
    identifier = identifier or f"cowley2023-v4-{session}"
    try:
        averaged = np.load(averaged_npy, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise NeurofitError(f"cannot read {averaged_npy} as a .npy array: {err}") from err
    if averaged.ndim != 2:
        raise ValidationError(f"{averaged_npy}: expected (n_neurons, n_images), got shape {averaged.shape}")
    n_neur, n_img = averaged.shape
    if n_neurons is not None and n_neur != n_neurons:
        raise ValidationError(f"{averaged_npy}: {n_neur} neurons, the manifest expects {n_neurons}")
    if n_images is not None and n_img != n_images:
        raise ValidationError(f"{averaged_npy}: {n_img} images, the manifest expects {n_images}")
    members = _image_members(images_zip, n_img, session)
    kinds = _kind_labels(image_kinds, n_img, identifier)
    stim_ids = np.asarray([f"{session}/image{i:04d}" for i in range(1, n_img + 1)])
    start, end = (float(v) for v in window_ms)

    use_trials = trials and raw_npy is not None
    notes = {"time_window_note": WINDOW_NOTE, "degrees_note": DEGREES_NOTE}
    if use_trials:
        raw_npy = Path(raw_npy)  # type: ignore[arg-type]
        try:
            raw = np.load(raw_npy, allow_pickle=False)
        except (ValueError, OSError) as err:
            raise NeurofitError(f"cannot read {raw_npy} as a .npy array: {err}") from err
        if raw.ndim != 3 or raw.shape[:2] != averaged.shape:
            raise ValidationError(
                f"{raw_npy}: expected (n_neurons, n_images, n_repeats) = ({n_neur}, {n_img}, ...), "
                f"got shape {raw.shape}"
            )
        with np.errstate(invalid="ignore"):
            check = np.nanmean(raw, axis=2) if raw.shape[2] else np.full_like(averaged, np.nan)
        bad = ~np.isclose(check, averaged, rtol=1e-9, atol=1e-12, equal_nan=True)
        if bad.any():
            neuron, image = np.argwhere(bad)[0]
            raise ValidationError(
                f"{raw_npy} and {averaged_npy} disagree: the mean over repeats of neuron {neuron}, image "
                f"{image + 1} is {check[neuron, image]!r}, the averaged file says {averaged[neuron, image]!r}"
            )
        # A repeat slot is a trial when any neuron has a value in it; slots NaN for every neuron are padding.
        present = ~np.isnan(raw).all(axis=0)  # (n_images, n_repeats)
        image_index, slot = np.nonzero(present)
        values = raw[:, image_index, slot].T[:, :, None]  # (presentation, neuroid, 1)
        repetition = present.cumsum(axis=1)[image_index, slot] - 1
        counts = present.sum(axis=1)
        notes["repetitions"] = f"trial repeats per image: {int(counts.min())}-{int(counts.max())}"
    else:
        image_index = np.arange(n_img)
        values = averaged.T[:, :, None]
        repetition = np.zeros(n_img, dtype=np.int64)
        notes["repetitions_averaged"] = 1
        notes["repetitions"] = (
            "repetition-averaged responses only (no trial repeats in the source): split-half noise ceilings "
            "cannot be computed for this recording"
        )

    if source_sha256 is None:
        files = [images_zip, averaged_npy] + ([Path(raw_npy)] if use_trials else [])  # type: ignore[arg-type]
        source_sha256 = hashlib.sha256("".join(_sha256(p) for p in files).encode()).hexdigest()
    stimulus_set_identifier = f"{identifier}-images"
    neuroid_ids = [f"{session}.{i}" for i in range(n_neur)]
    recording = make_recording(
        values.astype(np.float64),
        stimulus_id=stim_ids[image_index],
        repetition=repetition,
        neuroid_id=neuroid_ids,
        region="V4",
        time_bin_start=[start],
        time_bin_end=[end],
        identifier=identifier,
        stimulus_set_identifier=stimulus_set_identifier,
        units="counts",
        citation=citation,
        license=license,
        source_sha256=source_sha256,
        presentation_coords={"image_kind": kinds[image_index], "image_number": image_index + 1},
        neuroid_coords={
            "session": [session] * n_neur,
            "animal": [animal] * n_neur,
            "neuron_index": np.arange(n_neur),
        },
        attrs={"session": session, **notes},
    )
    table = pd.DataFrame(
        {
            "stimulus_id": stim_ids,
            "filename": members,
            "image_kind": kinds,
            "image_number": np.arange(1, n_img + 1),
            "session": session,
        }
    )
    stimulus_set = StimulusSet(table=table, images=images_zip, degrees=float(degrees),
                               identifier=stimulus_set_identifier)
    validate(recording, stimulus_set)
    return recording, stimulus_set


def load_cowley2023(paths: Mapping[str, Path], manifest: Any, **options: Any) -> tuple[xr.DataArray, StimulusSet]:
    """Manifest loader: pick the session's files from ``paths`` and call :func:`cowley_recording`.

    Example
    -------
    >>> from neurofit.data.fetch import load_dataset
    >>> rec, ss = load_dataset("cowley2023-v4-210325")  # doctest: +SKIP
    >>> sorted(set(rec.coords["image_kind"].values.tolist()))  # doctest: +SKIP
    ['bashivan2019']
    """
    if "session" not in options:
        raise ValidationError(f"manifest {manifest.source}: [loader.options] must give the 'session'")
    session = str(options.pop("session"))

    def find(suffix: str, required: bool = True) -> Path | None:
        hits = [p for rel, p in paths.items() if rel.endswith(suffix)]
        if not hits and required:
            raise ValidationError(f"manifest {manifest.source} lists no file ending in '{suffix}'")
        return hits[0] if hits else None

    images_zip = find(f"images/images_{session}.zip")
    averaged = find(f"responses_repeat_averaged/responses_{session}.npy")
    raw = find(f"responses_raw/responses_{session}.npy", required=False)
    options.setdefault("citation", manifest.citation)
    options.setdefault("license", manifest.license)
    return cowley_recording(
        images_zip,  # type: ignore[arg-type]
        averaged,  # type: ignore[arg-type]
        raw,
        session=session,
        identifier=manifest.id,
        source_sha256=manifest.sha256,
        **options,
    )


# load_dataset checks user options against these before fetching anything
load_cowley2023.converter = cowley_recording  # type: ignore[attr-defined]
load_cowley2023.reserved = ("identifier", "source_sha256")  # type: ignore[attr-defined]
