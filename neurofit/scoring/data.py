"""Step 1 of a score: the benchmark's recording and stimuli, restricted to its regions and time bins.

:func:`prepare_data` is the step: it returns a :class:`PreparedData`.

:func:`load_benchmark_data` generates ``synthetic-ventral`` or loads a manifest dataset; :func:`prepare_recording`
keeps the benchmark's regions and brings the recording to its time bins (equal bins are selected; a wider bin
that is a union of consecutive recording bins is their sum for counts, their duration-weighted mean for rates);
:func:`recording_sha256` is the content hash that keys a run.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xarray as xr

from neurofit.data.recording import average_repetitions, trial_array, validate
from neurofit.data.stimuli import StimulusSet
from neurofit.errors import NeurofitError, ValidationError
from neurofit.scoring.benchmark import SYNTHETIC, Benchmark
from neurofit.scoring.commit import commitment_split
from neurofit.scoring.missing import apply_missing_data_rule


def load_benchmark_data(benchmark: Benchmark, *, images: bool = True) -> tuple[xr.DataArray, StimulusSet | None]:
    """The benchmark's recording and stimulus set: generated for ``synthetic-ventral``, else loaded.

    ``images=False`` (precomputed features: nothing is shown) also accepts a dataset without stimulus images; its
    stimulus set is then ``None``.

    Example
    -------
    >>> rec, stimuli = load_benchmark_data(load_benchmark("synthetic-ventral-it-temporal"))  # doctest: +SKIP
    """
    if benchmark.datasets:
        raise NeurofitError(f"benchmark {benchmark.id!r} pools several datasets ({', '.join(benchmark.datasets)}); "
                            "load each with load_dataset(id)")
    if benchmark.dataset == SYNTHETIC:
        from neurofit.data.synthetic import generate_synthetic_ventral

        return generate_synthetic_ventral(**benchmark.dataset_options)
    from neurofit.data.fetch import load_dataset

    try:
        loaded = load_dataset(benchmark.dataset)
    except NeurofitError as err:
        raise NeurofitError(
            f"benchmark {benchmark.id!r} needs dataset {benchmark.dataset!r}, which could not be loaded ({err}); "
            "pass your own copy as data=(recording, stimulus_set)"
        ) from err
    recording, stimuli = loaded[0], loaded[1]
    if stimuli is None and images:
        raise NeurofitError(f"dataset {benchmark.dataset!r} has no stimulus images, so no model can be scored on it")
    return recording, stimuli


def prepare_recording(recording: xr.DataArray, benchmark: Benchmark) -> xr.DataArray:
    """The benchmark's regions and time bins of ``recording`` (bins selected, or summed from finer bins).

    Example
    -------
    >>> import dataclasses
    >>> from neurofit.data.recording import make_recording
    >>> from neurofit.scoring.benchmark import load_benchmark
    >>> rec = make_recording(np.ones((2, 1, 3)), stimulus_id=["a", "b"], repetition=[0, 0], neuroid_id=["n"],
    ...                      region="IT", time_bin_start=[60, 70, 80], time_bin_end=[70, 80, 90],
    ...                      identifier="t", stimulus_set_identifier="t")
    >>> b = dataclasses.replace(load_benchmark("majajhong2015-it-brainscore"), time_bins=((70.0, 90.0),))
    >>> prepare_recording(rec, b).values[:, 0, 0].tolist()
    [2.0, 2.0]
    """
    regions = np.asarray(recording.coords["region"].values).astype(str)
    keep = np.isin(regions, benchmark.regions)
    missing = [r for r in benchmark.regions if r not in set(regions.tolist())]
    if missing:
        raise ValidationError(
            f"benchmark {benchmark.id!r} scores region(s) {missing}, but recording "
            f"{recording.attrs.get('identifier', '?')!r} has sites only in {sorted(set(regions.tolist()))}"
        )
    rec = recording.isel(neuroid=np.flatnonzero(keep))
    starts = rec.coords["time_bin_start"].values.astype(float)
    ends = rec.coords["time_bin_end"].values.astype(float)
    rate_units = "/s" in str(rec.attrs.get("units", "")) or "hz" in str(rec.attrs.get("units", "")).lower()
    columns = []
    for lo, hi in benchmark.time_bins:
        exact = np.flatnonzero(np.isclose(starts, lo) & np.isclose(ends, hi))
        if len(exact):
            columns.append(rec.values[..., exact[0]].astype(np.float64))
            continue
        inside = np.flatnonzero((starts >= lo - 1e-9) & (ends <= hi + 1e-9))
        covered = ends[inside] - starts[inside]
        if not len(inside) or abs(covered.sum() - (hi - lo)) > 1e-6:
            have = ", ".join(f"{s:g}-{e:g}" for s, e in zip(starts[:6], ends[:6]))
            raise ValidationError(
                f"benchmark {benchmark.id!r} needs the time bin {lo:g}-{hi:g} ms, which the recording's bins "
                f"({have}{', ...' if len(starts) > 6 else ''} ms) do not tile"
            )
        values = rec.values[..., inside].astype(np.float64)
        if rate_units:
            columns.append((values * covered).sum(axis=-1) / covered.sum())
        else:
            columns.append(values.sum(axis=-1))
    data = np.stack(columns, axis=-1)
    out = xr.DataArray(
        data, dims=rec.dims,
        coords={name: coord for name, coord in rec.coords.items() if "time_bin" not in coord.dims},
        name="rates", attrs=dict(rec.attrs),
    )
    return out.assign_coords(
        time_bin_start=("time_bin", np.array([b[0] for b in benchmark.time_bins])),
        time_bin_end=("time_bin", np.array([b[1] for b in benchmark.time_bins])),
    )


def recording_sha256(recording: xr.DataArray) -> str:
    """Content hash of a recording: values, every coordinate and the identifier."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(recording.values, dtype=np.float64).tobytes())
    for name in sorted(recording.coords):
        h.update(name.encode())
        h.update(np.asarray(recording.coords[name].values).astype(str).tobytes())
    h.update(str(recording.attrs.get("identifier", "")).encode())
    return h.hexdigest()


def has_trial_repeats(recording: xr.DataArray) -> bool:
    """Whether some stimulus of ``recording`` was shown more than once (a noise ceiling needs repeats).

    Example
    -------
    >>> from neurofit.data.recording import make_recording
    >>> rec = make_recording(np.ones((2, 1, 1)), stimulus_id=["a", "b"], repetition=[0, 0], neuroid_id=["n"],
    ...                      region="V4", time_bin_start=[50], time_bin_end=[150], identifier="t",
    ...                      stimulus_set_identifier="t")
    >>> has_trial_repeats(rec)
    False
    """
    ids = np.asarray(recording.coords["stimulus_id"].values).astype(str)
    return len(np.unique(ids)) < len(ids)


@dataclass
class PreparedData:
    """A benchmark's responses ready to score, and how its stimuli split into commitment and scored sets.

    ``rec`` is the recording restricted to the benchmark's regions and bins, its presentations ordered by
    stimulus and repetition, with the missing-data rule applied; ``averaged`` its repetition average;
    ``trials`` the NaN-padded ``[stimulus, repetition, site, bin]`` array in the order of ``trial_ids``.
    """

    recording: xr.DataArray
    stimuli: StimulusSet | None
    rec: xr.DataArray
    rec_sha: str
    sites_missing: dict[str, int]
    sites_dropped: list[str]
    averaged: xr.DataArray
    all_ids: list[str]
    object_names: np.ndarray | None
    commit_ids: list[str]
    score_ids: list[str]
    trials: np.ndarray
    trial_ids: list[str]

    @property
    def position(self) -> dict[str, int]:
        """Row of each stimulus in ``averaged``."""
        return {sid: i for i, sid in enumerate(self.all_ids)}

    @property
    def site_region(self) -> np.ndarray:
        return self.rec.coords["region"].values.astype(str)

    def object_labels(self, ids: Sequence[str]) -> np.ndarray | None:
        """The ``object_name`` of each of ``ids`` (None when the recording has none)."""
        position = self.position
        return None if self.object_names is None else np.array([self.object_names[position[s]] for s in ids])

    def targets(self, ids: Sequence[str]) -> np.ndarray:
        """Repetition-averaged responses ``[stimulus, site, bin]`` of ``ids``, float64."""
        position = self.position
        return np.asarray(self.averaged.values, dtype=np.float64)[[position[s] for s in ids]]

    def trials_of(self, ids: Sequence[str]) -> np.ndarray:
        """NaN-padded trials ``[stimulus, repetition, site, bin]`` of ``ids``."""
        trial_pos = {str(sid): i for i, sid in enumerate(self.trial_ids)}
        return self.trials[[trial_pos[s] for s in ids]]

    def dataset_sha256(self) -> str:
        """Content hash of the prepared recording and the stimulus set."""
        stimuli = self.stimuli.sha256() if self.stimuli is not None else ""
        return hashlib.sha256((self.rec_sha + stimuli).encode()).hexdigest()


def prepare_data(bench: Benchmark, data: tuple[xr.DataArray, StimulusSet | None] | None, *,
                 precomputed: bool) -> PreparedData:
    """Load (or take) the benchmark's data, check it, bring it to the benchmark and split its stimuli.

    ``precomputed``: the features are given, so no stimulus set is needed (no image is shown).
    """
    recording, stimuli = data if data is not None else load_benchmark_data(bench, images=not precomputed)
    if stimuli is None and not precomputed:
        raise NeurofitError("a model must be shown the stimuli: give data=(recording, stimulus_set); only "
                            "precomputed features (an ActivationSet) are scored without a stimulus set")
    validate(recording, stimuli)
    rec = prepare_recording(recording, bench)
    # trial slots follow the repetition index (Brain-Score halves repetition indices, not arrival order)
    rec = rec.isel(presentation=np.lexsort((rec.coords["repetition"].values, rec.coords["stimulus_id"].values)))
    rec_sha = recording_sha256(rec)
    rec, sites_missing, sites_dropped = apply_missing_data_rule(rec)  # missing data shrinks a site, never a region
    averaged = average_repetitions(rec)
    all_ids = [str(s) for s in averaged.coords["stimulus_id"].values]
    object_names = averaged.coords["object_name"].values.astype(str) if "object_name" in averaged.coords else None
    commit_ids, score_ids = commitment_split(all_ids, bench.commitment.fraction, bench.commitment.seed, object_names)
    trials, trial_ids = trial_array(rec)
    return PreparedData(recording, stimuli, rec, rec_sha, sites_missing, sites_dropped, averaged, all_ids,
                        object_names, sorted(commit_ids), sorted(score_ids), trials, [str(s) for s in trial_ids])
