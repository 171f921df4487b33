"""Neural "object solution times" per image (Kar, Kubilius, Schmidt, Issa & DiCarlo 2019).

Kar et al. (2019) decode the object in each image from IT population activity in successive 10 ms bins
with cross-validated linear decoders, and call an image's *object solution time* the time at which the
decoder's per-image performance first reaches a criterion (for them the monkeys' behavioural
performance on that image), interpolated between bins. Images solved late are the ones for which
feedforward models fail and recurrence is thought to matter. Here:

1. :func:`decoder_confidence`: per 10 ms bin, a linear decoder of ``label`` (default ``object_name``) on
   the repetition-averaged population response, cross-validated over stimuli with the regression
   engine's splits (:func:`neurofit.regression.splits.make_splits`, stratified by label, seeded);
   features standardised within each training fold. The decoder is linear discriminant analysis
   (``decoder="lda"``, the default: one shared within-class covariance, shrunk towards a multiple of the
   identity by the Ledoit-Wolf estimate computed on the class-centred training data, or by a fixed
   ``shrinkage``; class priors from the training fold; closed form, so 25 bins x 10 folds x 64 objects
   take about a second) or scikit-learn's multinomial logistic regression (``decoder="logistic"``,
   orders of magnitude slower at that size). The per-image
   performance is either the held-out probability of the true label (``measure="probability"``) or an
   I1-style image d' (``measure="dprime"``, Rajalingham et al. 2018; Kar et al. 2019): for image ``i`` of
   object ``o``, the hit rate is the mean over distractor objects ``d`` of the two-way choice probability
   ``P_i(o) / (P_i(o) + P_i(d))``, the false-alarm rate is the mean over images ``j`` of other objects of
   ``P_j(o) / (P_j(o) + P_j(o_j))``, and ``d' = Z(hit) - Z(false alarm)`` with rates clipped to
   ``[0.005, 0.995]`` (so ``|d'| <= 5.15``).
2. :func:`threshold_crossing`: the first time the performance reaches ``threshold``, linearly interpolated
   between the centre of the last bin below and the centre of the first bin at or above; NaN when it is
   never reached; the first bin's centre when that bin is already above. The default thresholds
   (probability 0.5, d' 2.0) sit well above what decoding noise reaches before the response onset on
   synthetic-ventral's 64 objects (at d' 1.0, noise in pre-onset bins already "solves" many images); with
   behavioural data, Kar et al.'s per-image behavioural d' is the threshold to use.
3. :func:`spearman_ci` (re-exported from :mod:`neurofit.stats.bootstrap`) and
   :func:`solution_time_correlation`: the rank correlation, over images, between the neural solution time
   and a model's per-image first-correct step or halting step, with a bootstrap CI over images.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import xarray as xr
from scipy import stats
from threadpoolctl import threadpool_limits

from neurofit.data.recording import average_repetitions
from neurofit.errors import NeurofitError
from neurofit.stats.bootstrap import spearman_ci

Measure = Literal["probability", "dprime"]
Decoder = Literal["lda", "logistic"]
DEFAULT_THRESHOLD: dict[str, float] = {"probability": 0.5, "dprime": 2.0}
_RATE_CLIP = (0.005, 0.995)

__all__ = ["DEFAULT_THRESHOLD", "decoder_confidence", "image_dprime", "lda_probabilities", "neural_solution_times",
           "spearman_ci", "solution_time_correlation", "threshold_crossing"]


def image_dprime(probabilities: np.ndarray, labels: Sequence[int] | np.ndarray) -> np.ndarray:
    """I1-style per-image d' from decoder class probabilities ``[N, C]`` and labels ``[N]`` (module docstring).

    Example
    -------
    >>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    >>> np.round(image_dprime(p, [0, 1, 1]), 3).tolist()
    [1.535, 2.123, 1.028]
    """
    p = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    n, c = p.shape
    if labels.shape != (n,):
        raise NeurofitError(f"labels has shape {labels.shape}, expected ({n},)")
    own = p[np.arange(n), labels][:, None]  # P_i(o_i)
    with np.errstate(invalid="ignore", divide="ignore"):
        pairwise = own / (own + p)  # choice of the true object against each class
    other = np.ones((n, c), dtype=bool)
    other[np.arange(n), labels] = False
    present_classes = np.unique(labels)
    other &= np.isin(np.arange(c), present_classes)[None, :]
    hit = np.where(other, pairwise, 0.0).sum(1) / np.maximum(other.sum(1), 1)
    # false alarms of object o: images j of another object choosing o against their own object
    with np.errstate(invalid="ignore", divide="ignore"):
        choose = p / (p + own)  # [N, C]: P_j(o) / (P_j(o) + P_j(o_j))
    fa_rate = np.array([choose[labels != o, o].mean() if np.any(labels != o) else np.nan for o in range(c)])
    z = stats.norm.ppf
    lo, hi = _RATE_CLIP
    return z(np.clip(hit, lo, hi)) - z(np.clip(fa_rate[labels], lo, hi))


def lda_probabilities(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, shrinkage: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Class posteriors of linear discriminant analysis with a shrunk shared covariance.

    The covariance is the pooled within-class covariance ``S`` (class-centred training data, divided by
    ``n``), shrunk as ``(1 - a) S + a tr(S) / D I`` with ``a = shrinkage`` or, when ``None``, the
    Ledoit-Wolf estimate (:func:`sklearn.covariance.ledoit_wolf_shrinkage` of the class-centred data).
    With a fixed ``a`` this is exactly scikit-learn's
    ``LinearDiscriminantAnalysis(solver="lsqr", shrinkage=a)``.

    Returns
    -------
    classes : int array [K] (the labels present in ``y_train``, sorted)
    probabilities : array [n_test, K]

    Example
    -------
    >>> x = np.array([[0.0, 0.1], [0.2, 0.0], [3.0, 3.1], [3.2, 2.9]])
    >>> classes, p = lda_probabilities(x, np.array([0, 0, 1, 1]), np.array([[0.1, 0.0], [3.0, 3.0]]), 0.1)
    >>> classes.tolist(), p.argmax(1).tolist()
    ([0, 1], [0, 1])
    """
    from scipy.special import softmax
    from sklearn.covariance import ledoit_wolf_shrinkage

    classes, y = np.unique(y_train, return_inverse=True)
    n, d = x_train.shape
    counts = np.bincount(y, minlength=classes.size).astype(np.float64)
    means = (np.eye(classes.size)[y].T @ x_train) / counts[:, None]
    centred = x_train - means[y]
    cov = centred.T @ centred / n
    if shrinkage is not None and not 0.0 <= shrinkage <= 1.0:
        raise NeurofitError(f"LDA shrinkage must be in [0, 1], got {shrinkage}")
    mu = np.trace(cov) / d
    if mu <= 0:  # no within-class variance at all (e.g. silent sites): the identity keeps LDA defined
        cov = np.eye(d)
    else:
        a = float(ledoit_wolf_shrinkage(centred, assume_centered=True)) if shrinkage is None else float(shrinkage)
        cov = (1.0 - a) * cov + a * mu * np.eye(d)
    coef = np.linalg.solve(cov, means.T).T  # [K, D]; cov is positive definite once shrunk
    intercept = -0.5 * np.einsum("kd,kd->k", means, coef) + np.log(counts / n)
    return classes, softmax(x_test @ coef.T + intercept, axis=1)


def decoder_confidence(
    recording: xr.DataArray,
    *,
    label: str = "object_name",
    measure: Measure = "probability",
    region: str | Sequence[str] | None = None,
    decoder: Decoder = "lda",
    shrinkage: float | None = None,
    n_splits: int = 10,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 1000,
) -> xr.DataArray:
    """Cross-validated per-image decoding performance of ``label`` in every time bin.

    Parameters
    ----------
    recording : DataArray (presentation, neuroid, time_bin)
        A recording of the data contract; repetitions are averaged first
        (:func:`neurofit.data.recording.average_repetitions`). Needs the presentation coord ``label``.
    label : str
        What is decoded (default ``object_name``, as Kar et al. 2019).
    measure : {"probability", "dprime"}
        Held-out probability of the true label, or the I1-style image d' (module docstring).
    region : str or list of str, optional
        Use only these regions' sites.
    decoder : {"lda", "logistic"}
        Shrinkage LDA (default) or multinomial logistic regression (module docstring).
    shrinkage : float in [0, 1], optional
        LDA covariance shrinkage (default: the Ledoit-Wolf estimate per training fold).
    n_splits, seed : cross-validation folds over stimuli and their seed.
    C, max_iter : scikit-learn ``LogisticRegression`` settings (``decoder="logistic"``).

    Returns
    -------
    DataArray ``confidence`` (presentation, time_bin), one presentation per stimulus, with the recording's
    presentation and time-bin coords; attrs ``measure``, ``label``, ``n_splits``, ``seed``, ``n_sites``.

    Example
    -------
    >>> from neurofit.data.recording import make_recording
    >>> rng = np.random.default_rng(0)
    >>> obj = np.repeat(["a", "b"], 20)
    >>> rates = rng.normal(size=(40, 5, 2)); rates[:, 0, 1] += 6 * (obj == "b")  # decodable in bin 1 only
    >>> rec = make_recording(rates, stimulus_id=[f"s{i}" for i in range(40)], repetition=[0] * 40,
    ...                      neuroid_id=[f"n{k}" for k in range(5)], region="IT", time_bin_start=[0, 10],
    ...                      time_bin_end=[10, 20], identifier="toy", stimulus_set_identifier="toy",
    ...                      presentation_coords={"object_name": obj})
    >>> conf = decoder_confidence(rec, n_splits=5)
    >>> bool(conf.isel(time_bin=1).mean() > 0.75 > conf.isel(time_bin=0).mean())
    True
    """
    from neurofit.regression.splits import make_splits

    if decoder not in ("lda", "logistic"):
        raise NeurofitError(f"decoder must be 'lda' or 'logistic', got {decoder!r}")
    if measure not in DEFAULT_THRESHOLD:
        raise NeurofitError(f"measure must be one of {sorted(DEFAULT_THRESHOLD)}, got {measure!r}")
    if label not in recording.coords:
        raise NeurofitError(f"recording {recording.attrs.get('identifier', '')!r} has no presentation coord "
                            f"{label!r} to decode; pass label= one of its coords")
    if region is not None:
        wanted = [region] if isinstance(region, str) else list(region)
        keep = np.isin(recording.coords["region"].values, wanted)
        if not keep.any():
            raise NeurofitError(f"recording has no site in region {wanted}; its regions: "
                                f"{sorted(set(recording.coords['region'].values.tolist()))}")
        recording = recording.isel(neuroid=keep)
    averaged = average_repetitions(recording) if "repetition" in recording.coords else recording
    if label not in averaged.coords:
        raise NeurofitError(f"coord {label!r} differs between repetitions of one stimulus; it must name the "
                            "stimulus's object")
    names = averaged.coords[label].values.astype(str)
    classes, labels = np.unique(names, return_inverse=True)
    if classes.size < 2:
        raise NeurofitError(f"coord {label!r} has a single value; nothing to decode")
    ids = averaged.coords["stimulus_id"].values.astype(str)
    splits = make_splits(ids, object_name=names, n_splits=n_splits, seed=seed)
    x = averaged.transpose("presentation", "neuroid", "time_bin").values.astype(np.float64)
    out = np.full((len(ids), x.shape[2]), np.nan)
    with threadpool_limits(1):  # hundreds of small solves: threaded BLAS only adds contention
        _decode_bins(x, labels, classes.size, splits, out, measure, decoder, shrinkage, C, max_iter)
    coords = {name: coord for name, coord in averaged.coords.items()
              if coord.dims and coord.dims[0] in ("presentation", "time_bin")}
    return xr.DataArray(out, dims=("presentation", "time_bin"), coords=coords, name="confidence",
                        attrs={"measure": measure, "label": label, "n_splits": n_splits, "seed": seed,
                               "n_sites": int(x.shape[1]),
                               "decoder": (f"LDA(shrinkage={'ledoit-wolf' if shrinkage is None else shrinkage})"
                                           if decoder == "lda" else f"LogisticRegression(C={C})")})


def _decode_bins(x: np.ndarray, labels: np.ndarray, n_classes: int, splits, out: np.ndarray, measure: str,
                 decoder: str, shrinkage: float | None, C: float, max_iter: int) -> None:
    """Fill ``out`` [N, B] with the held-out per-image performance in every bin of ``x`` [N, sites, B]."""
    from sklearn.linear_model import LogisticRegression

    n = x.shape[0]
    for b in range(x.shape[2]):
        xb = x[:, :, b]
        sites = np.isfinite(xb).all(axis=0)
        if not sites.any():
            continue
        xb = xb[:, sites]
        probabilities = np.zeros((n, n_classes))
        for train, test in zip(splits.train, splits.test):
            # standardised on the training fold (a constant site maps to 0, as StandardScaler does)
            mean = xb[train].mean(0)
            scale = xb[train].std(0)
            scale[scale == 0] = 1.0
            x_train, x_test = (xb[train] - mean) / scale, (xb[test] - mean) / scale
            if decoder == "lda":
                present, proba = lda_probabilities(x_train, labels[train], x_test, shrinkage)
            else:
                model = LogisticRegression(C=C, max_iter=max_iter).fit(x_train, labels[train])
                present, proba = model.classes_, model.predict_proba(x_test)
            # a class missing from a training fold gets probability 0 on its test images
            probabilities[np.ix_(test, present)] = proba
        if measure == "probability":
            out[:, b] = probabilities[np.arange(n), labels]
        else:
            out[:, b] = image_dprime(probabilities, labels)


def threshold_crossing(values: np.ndarray, times: Sequence[float] | np.ndarray, threshold: float,
                       sustain: int = 1) -> np.ndarray:
    """First time each row of ``values`` ``[N, B]`` reaches ``threshold``, linearly interpolated between bins.

    Parameters
    ----------
    values : array [N, B]
        Per-image performance over bins (NaN bins are skipped).
    times : array [B]
        Time of each bin (e.g. its centre), increasing.
    threshold : float
    sustain : int
        The crossing bin must start a run of ``sustain`` bins at or above threshold (1: the first bin
        above, as Kar et al. 2019; larger values ignore brief excursions of decoding noise).

    Returns
    -------
    array [N]: NaN where never reached; ``times[0]`` where the first bin already reaches it.

    Example
    -------
    >>> v = np.array([[0.1, 0.3, 0.7, 0.9], [0.6, 0.8, 0.9, 1.0], [0.1, 0.2, 0.2, 0.3]])
    >>> threshold_crossing(v, [5.0, 15.0, 25.0, 35.0], 0.5).tolist()  # 15 + (0.5 - 0.3) / (0.7 - 0.3) * 10
    [20.0, 5.0, nan]
    """
    values = np.asarray(values, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if values.ndim != 2 or times.shape != (values.shape[1],):
        raise NeurofitError(f"values must be [N, B] and times [B]; got {values.shape} and {times.shape}")
    if np.any(np.diff(times) <= 0):
        raise NeurofitError("bin times must increase")
    if sustain < 1:
        raise NeurofitError(f"sustain must be >= 1 bin, got {sustain}")
    out = np.full(values.shape[0], np.nan)
    for i, row in enumerate(values):
        ok = np.flatnonzero(np.isfinite(row))
        hit = row[ok] >= threshold
        # start of a run of `sustain` finite bins at or above threshold
        runs = [k for k in range(len(ok) - sustain + 1) if hit[k:k + sustain].all()]
        if not runs:
            continue
        j = ok[runs[0]]
        before = ok[ok < j]
        if before.size == 0:
            out[i] = times[j]
            continue
        k = before[-1]
        fraction = (threshold - row[k]) / (row[j] - row[k])
        out[i] = times[k] + fraction * (times[j] - times[k])
    return out


def neural_solution_times(
    recording: xr.DataArray,
    *,
    threshold: float | None = None,
    sustain: int = 1,
    label: str = "object_name",
    measure: Measure = "probability",
    region: str | Sequence[str] | None = None,
    decoder: Decoder = "lda",
    shrinkage: float | None = None,
    n_splits: int = 10,
    seed: int = 0,
    C: float = 1.0,
) -> xr.Dataset:
    """Per-image object solution time (ms) from a recording with object labels (Kar et al. 2019).

    Bins are placed at their centres (``(time_bin_start + time_bin_end) / 2``); see
    :func:`decoder_confidence` for the decoder and :func:`threshold_crossing` for the interpolation and
    ``sustain``.

    Returns
    -------
    Dataset with ``confidence`` (presentation, time_bin) and ``solution_time`` (presentation, ms after onset,
    NaN when never reached), coord ``stimulus_id``; attrs ``threshold``, ``measure``, ``label``.

    Example
    -------
    >>> from neurofit.data.recording import make_recording
    >>> rng = np.random.default_rng(0)
    >>> obj = np.repeat(["a", "b"], 20)
    >>> rates = rng.normal(size=(40, 5, 3)); rates[:, 0, 2] += 8 * (obj == "b")
    >>> rec = make_recording(rates, stimulus_id=[f"s{i}" for i in range(40)], repetition=[0] * 40,
    ...                      neuroid_id=[f"n{k}" for k in range(5)], region="IT", time_bin_start=[0, 10, 20],
    ...                      time_bin_end=[10, 20, 30], identifier="toy", stimulus_set_identifier="toy",
    ...                      presentation_coords={"object_name": obj})
    >>> st = neural_solution_times(rec, threshold=0.7, n_splits=5).solution_time
    >>> bool(15 < float(st.median()) <= 25)  # most images are solved between bin 1 and bin 2
    True
    """
    threshold = DEFAULT_THRESHOLD[measure] if threshold is None and measure in DEFAULT_THRESHOLD else threshold
    confidence = decoder_confidence(recording, label=label, measure=measure, region=region, decoder=decoder,
                                    shrinkage=shrinkage, n_splits=n_splits, seed=seed, C=C)
    centres = (confidence.coords["time_bin_start"].values + confidence.coords["time_bin_end"].values) / 2.0
    times = threshold_crossing(confidence.values, centres, float(threshold), sustain)
    attrs = {**confidence.attrs, "threshold": float(threshold), "sustain_bins": int(sustain),
             "time": "bin centre, ms after onset",
             "recording": str(recording.attrs.get("identifier", ""))}
    return xr.Dataset({"confidence": confidence, "solution_time": ("presentation", times)}, attrs=attrs)


def solution_time_correlation(
    neural: xr.Dataset | xr.DataArray,
    model_values: Sequence[float] | np.ndarray,
    model_stimulus_ids: Sequence[str],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, float]:
    """Spearman rho (bootstrap CI over images) between neural solution times and a model's per-image values.

    Images are matched by ``stimulus_id``; images never solved by either side (NaN) are left out.

    Returns
    -------
    dict with ``rho``, ``low``, ``high``, ``p``, ``n`` (images used) and ``n_shared`` (ids in both).

    Example
    -------
    >>> neural = xr.DataArray([30.0, 50.0, 70.0, np.nan], dims="presentation",
    ...                       coords={"stimulus_id": ("presentation", ["a", "b", "c", "d"])})
    >>> out = solution_time_correlation(neural, [3, 1, 2, 2], ["c", "a", "b", "d"], n_boot=50)
    >>> out["rho"], out["n"]
    (1.0, 3)
    """
    times = neural["solution_time"] if isinstance(neural, xr.Dataset) else neural
    ids = times.coords["stimulus_id"].values.astype(str)
    model_values = np.asarray(model_values, dtype=np.float64)
    model_ids = np.asarray(model_stimulus_ids).astype(str)
    if model_values.shape != model_ids.shape:
        raise NeurofitError(f"{model_values.shape[0]} model values for {model_ids.shape[0]} stimulus ids")
    position = {sid: i for i, sid in enumerate(model_ids)}
    shared = np.array([sid in position for sid in ids])
    if not shared.any():
        raise NeurofitError("no stimulus_id is shared by the recording and the model's stimuli; the recording's "
                            f"ids look like {ids[:3].tolist()}, the model's like {model_ids[:3].tolist()}")
    a = times.values.astype(np.float64)[shared]
    b = model_values[[position[sid] for sid in ids[shared]]]
    return {**spearman_ci(a, b, n_boot=n_boot, seed=seed, ci=ci), "n_shared": int(shared.sum())}
