"""Missing data shrinks a site's data, never empties a region.

The data contract lets trials be missing (NaN, ignored, never imputed). A site may therefore lack every
trial of a few stimuli. The rule, applied by :func:`neurofit.scoring.score.score` and written into every
ScoreSet (``attrs['missing_data']``):

1. **Per site, per stimulus.** A stimulus without a valid trial in some scored bin of a site is left out
   of that site entirely: its trials become NaN in every bin, so the site's fit, predictions, r and
   ceiling all use the same stimuli (:func:`apply_missing_data_rule`).
2. **Dropped sites.** A site left with fewer than half of the stimuli (or fewer than
   :data:`MIN_VALID_STIMULI`) is dropped: its r, ceiling and ceiled score are NaN. Both cases are
   reported in one warning that names the sites and their counts.
3. **Fits.** A region's sites are fitted jointly (PLS2). Each site is predicted by the region's joint
   mapping fitted on the stimuli valid for it, with every site of the region that has data on all of them
   (:func:`fit_on_valid_stimuli`); the folds are the run's folds restricted to those stimuli. A recording
   without missing data takes the usual path unchanged, bit for bit.
4. **Correlations** are over the stimuli valid for the site
   (:func:`~neurofit.regression.correlation.pearson_on_valid`). The split-half
   ceiling already pairs half-means per site over the stimuli where both are defined
   (:mod:`neurofit.regression.ceiling`), and the stimulus bootstrap counts only a site's valid stimuli.

Before this rule one IT site lacking 3 of 192 stimuli made every IT site's r NaN (a NaN target column
poisons the joint cross-covariance of PLS2) or failed with a ``LinAlgError``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np
import xarray as xr

MIN_VALID_STIMULI = 3
MIN_VALID_FRACTION = 0.5
MISSING_DATA_RULE = (
    "per site, stimuli without a valid trial in some scored bin are left out of that site's fit, r and "
    "ceiling (its trials are NaN in every bin); a site left with fewer than half of the stimuli (or fewer than "
    f"{MIN_VALID_STIMULI}) is dropped (r, ceiling, ceiled NaN); each site is predicted by the region's joint "
    "mapping fitted on the stimuli valid for it, with every site that has data on all of them, on the run's "
    "folds restricted to those stimuli; never imputed"
)


class MissingDataWarning(UserWarning):
    """Some sites lack valid trials for some stimuli: they are scored on the rest, or dropped."""


def _names(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def apply_missing_data_rule(recording: xr.DataArray) -> tuple[xr.DataArray, dict[str, int], list[str]]:
    """Leave out, per site, the stimuli without a valid trial in every bin; drop sites left with too few.

    Parameters
    ----------
    recording : DataArray (presentation, neuroid, time_bin)
        Trials per the data contract (NaN: a missing trial).

    Returns
    -------
    recording : the same recording with the left-out (site, stimulus) trials NaN in every bin and dropped
        sites NaN throughout (the input itself when nothing is missing)
    missing : dict neuroid_id -> number of stimuli left out (sites with at least one)
    dropped : list of the dropped sites' neuroid_id

    Example
    -------
    >>> from neurofit.data.recording import make_recording
    >>> values = np.ones((8, 2, 2)); values[0, 1, 1] = np.nan  # stimulus s0's only trial, site n1, bin 1
    >>> rec = make_recording(values, stimulus_id=[f"s{i}" for i in range(8)], repetition=[0] * 8,
    ...                      neuroid_id=["n0", "n1"], region="IT", time_bin_start=[0, 10], time_bin_end=[10, 20],
    ...                      identifier="t", stimulus_set_identifier="t")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     out, missing, dropped = apply_missing_data_rule(rec)
    >>> missing, dropped, out.values[0, 1].tolist(), caught[0].category.__name__
    ({'n1': 1}, [], [nan, nan], 'MissingDataWarning')
    """
    values = np.asarray(recording.values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return recording, {}, []
    ids = np.asarray(recording.coords["stimulus_id"].values).astype(str)
    stimuli, inverse = np.unique(ids, return_inverse=True)
    # a (stimulus, site, bin) has data when some of its trials is finite
    has = np.zeros((len(stimuli), values.shape[1], values.shape[2]), dtype=bool)
    np.logical_or.at(has, inverse, finite)
    valid = has.all(axis=2)  # (stimulus, site): data in every bin
    n_valid = valid.sum(axis=0)
    need = max(MIN_VALID_STIMULI, int(np.ceil(MIN_VALID_FRACTION * len(stimuli))))
    drop = n_valid < need
    valid[:, drop] = False
    if valid.all():
        return recording, {}, []
    keep = valid[inverse]  # (presentation, site)
    masked = np.where(keep[:, :, None], values, np.nan)
    site_ids = np.asarray(recording.coords["neuroid_id"].values).astype(str)
    missing = {str(site_ids[j]): int(len(stimuli) - n_valid[j]) for j in np.flatnonzero(~valid.all(axis=0))}
    dropped = [str(s) for s in site_ids[drop]]
    label = recording.attrs.get("identifier", "the recording")
    shrunk = [f"{s!r} ({n} of {len(stimuli)})" for s, n in missing.items() if s not in set(dropped)]
    parts = []
    if shrunk:
        parts.append(f"site(s) {_names(shrunk)} lack a valid trial for some stimuli: each is scored on its other "
                     "stimuli")
    if dropped:
        parts.append(f"site(s) {_names([f'{s!r} ({missing[s]} of {len(stimuli)} missing)' for s in dropped])} "
                     f"keep fewer than {need} stimuli and are dropped (r, ceiling NaN)")
    warnings.warn(f"recording {label!r}: " + "; ".join(parts), MissingDataWarning, stacklevel=2)
    return recording.copy(data=masked.astype(values.dtype, copy=False)), missing, dropped


Fit = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def fit_on_valid_stimuli(fit: Fit, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """One fold's cross-validated predictions when some sites lack some samples (NaN in ``y``).

    ``fit(x, y, train, test)`` is the engine's fold fit: ``x`` ``[n_x, n, D]``, ``y`` ``[n_bins, n, q]``,
    ``train``/``test`` bool ``[n]``, returning test predictions ``[n_bins, n_test, q]``. A sample is valid for
    a site when its responses are finite in every bin of ``y``. Complete data are one call of ``fit``.
    Otherwise the sites are grouped by their valid samples; each group is predicted by a joint fit on its
    valid samples with every site that has data on all of them. Predictions of a site's invalid samples are
    NaN, and so is every prediction of a site with no valid training or test sample.

    Example
    -------
    >>> def mean_fit(x, y, train, test):  # predicts each site's training mean
    ...     return np.repeat(np.nanmean(y[:, train], axis=1, keepdims=True), test.sum(), axis=1)
    >>> y = np.array([[[1.0, 1.0], [3.0, np.nan], [5.0, 7.0], [0.0, 0.0]]])
    >>> test = np.array([False, False, False, True])
    >>> fit_on_valid_stimuli(mean_fit, np.zeros((1, 4, 1)), y, ~test, test).tolist()
    [[[3.0, 4.0]]]
    """
    valid = np.isfinite(y).all(axis=0)  # (n, q)
    if valid.all():
        return fit(x, y, train, test)
    n_bins, _, q = y.shape
    out = np.full((n_bins, int(test.sum()), q), np.nan)
    test_index = np.cumsum(test) - 1  # a test sample's row in the fold's predictions
    patterns, group_of = np.unique(valid.T, axis=0, return_inverse=True)
    for g, rows in enumerate(patterns):
        group = np.flatnonzero(group_of.ravel() == g)
        tr, te = train & rows, test & rows
        if tr.sum() < 2 or not te.any():
            continue  # nothing to fit or nothing to predict: NaN
        members = np.flatnonzero(valid[rows].all(axis=0))  # the group and every site with data on its rows
        pred = fit(x[:, rows], y[:, rows][:, :, members], tr[rows], te[rows])
        where = np.searchsorted(members, group)
        out[:, test_index[te][:, None], group[None, :]] = pred[:, :, where]
    return out
