"""Cross-validation splits over stimuli.

Splits are drawn over *stimulus ids*, never over presentations or time bins, so every repetition and every
time bin of a stimulus falls in the same fold. Two schemes exist (DESIGN.md, "Regression engine"):

* ``"kfold"`` (default): K-fold (10), stratified by ``object_name`` when given, shuffled with ``seed``
  (default 0); every stimulus is in exactly one test fold, so every stimulus is predicted exactly once.
* ``"brainscore"``: Brain-Score's procedure (its ``Split``): sort stimuli by ``stimulus_id``, then draw 10
  ``StratifiedShuffleSplit(train_size=0.9, test_size=None, random_state=1)`` splits on ``object_name``
  (plain ``ShuffleSplit`` when there is no ``object_name`` or ``stratify=False``, Brain-Score's
  ``stratification_coord=None``); ``train_size`` is Brain-Score's knob of the same name. Test sets may overlap
  and some stimuli may never be tested.

scikit-learn's splitters are used on purpose: reproducing Brain-Score's splits means reproducing
sklearn's random-number use exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit

from neurofit.errors import NeurofitError

SplitScheme = Literal["kfold", "brainscore"]


@dataclass(frozen=True)
class StimulusSplits:
    """Train/test membership of every stimulus in every fold.

    Attributes
    ----------
    stimulus_ids : np.ndarray of str, shape (n_stimuli,)
        The stimuli, in the order the masks refer to (the caller's order).
    train : np.ndarray of bool, shape (n_folds, n_stimuli)
    test : np.ndarray of bool, shape (n_folds, n_stimuli)
    scheme : str
        ``"kfold"`` or ``"brainscore"``.
    seed : int
    """

    stimulus_ids: np.ndarray
    train: np.ndarray
    test: np.ndarray
    scheme: str
    seed: int

    @property
    def n_folds(self) -> int:
        return int(self.train.shape[0])

    def fold_of(self) -> np.ndarray:
        """Test fold of each stimulus (``-1`` if never tested); K-fold tests each stimulus exactly once."""
        out = np.full(self.test.shape[1], -1, dtype=np.int64)
        for f in range(self.n_folds):
            out[self.test[f]] = f
        return out


def make_splits(
    stimulus_ids: Sequence[str] | np.ndarray,
    *,
    scheme: SplitScheme = "kfold",
    object_name: Sequence[str] | np.ndarray | None = None,
    n_splits: int = 10,
    seed: int | None = None,
    train_size: float = 0.9,
    stratify: bool = True,
) -> StimulusSplits:
    """Split unique stimuli into train/test folds.

    Parameters
    ----------
    stimulus_ids : sequence of str, shape (n_stimuli,)
        Unique stimulus ids.
    scheme : {"kfold", "brainscore"}
    object_name : sequence of str, shape (n_stimuli,), optional
        Stratification label per stimulus.
    n_splits : int
        Number of folds (K-fold) or of shuffle splits (``brainscore``).
    seed : int, optional
        Default 0 for ``kfold`` and 1 for ``brainscore`` (Brain-Score's ``random_state``).
    train_size : float
        Share of stimuli in each training set of the ``brainscore`` scheme (Brain-Score's ``train_size``; the
        test set is the rest, as Brain-Score's ``test_size=None``). K-fold ignores it.
    stratify : bool
        Stratify by ``object_name`` when given (default); ``False`` splits ignoring it (Brain-Score's
        ``stratification_coord=None``).

    Returns
    -------
    StimulusSplits

    Example
    -------
    >>> s = make_splits([f"s{i}" for i in range(20)], n_splits=4)
    >>> s.train.shape, s.test.sum(axis=0).tolist() == [1] * 20
    ((4, 20), True)
    """
    ids = np.asarray(stimulus_ids).astype(str)
    n = len(ids)
    if len(np.unique(ids)) != n:
        raise NeurofitError("make_splits needs unique stimulus_id values: average repetitions first")
    if n_splits < 2:
        raise NeurofitError(f"n_splits must be >= 2, got {n_splits}")
    if scheme == "kfold" and n < n_splits:
        raise NeurofitError(
            f"{n} stimuli cannot be split into {n_splits} folds: use fewer folds (n_splits <= {n})"
        )
    if scheme == "brainscore" and n < 10:
        raise NeurofitError(f"the brainscore split scheme needs at least 10 stimuli, got {n}")
    if not 0.0 < train_size < 1.0:
        raise NeurofitError(f"train_size must be in (0, 1), got {train_size!r}")
    labels = None if object_name is None or not stratify else np.asarray(object_name).astype(str)
    if labels is not None and len(labels) != n:
        raise NeurofitError(f"object_name has {len(labels)} entries but there are {n} stimuli")

    if scheme == "kfold":
        seed = 0 if seed is None else seed
        order = np.arange(n)
        if labels is not None and np.unique(labels).size > 1:
            _, counts = np.unique(labels, return_counts=True)
            if counts.max() >= n_splits:
                splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
                folds = list(splitter.split(np.zeros(n), labels))
            else:
                folds = list(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(n)))
        else:
            folds = list(KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(n)))
    elif scheme == "brainscore":
        seed = 1 if seed is None else seed
        order = np.argsort(ids, kind="stable")
        if labels is not None:
            # test_size=None: the test set is the rest (n - floor(train_size * n)), as in Brain-Score's Split
            splitter = StratifiedShuffleSplit(
                n_splits=n_splits, train_size=train_size, test_size=None, random_state=seed
            )
            try:
                folds = list(splitter.split(np.zeros(n), labels[order]))
            except ValueError as err:
                raise NeurofitError(f"brainscore splits stratified by object_name failed: {err}") from err
        else:
            splitter = ShuffleSplit(n_splits=n_splits, train_size=train_size, test_size=None, random_state=seed)
            try:
                folds = list(splitter.split(np.zeros(n)))
            except ValueError as err:
                raise NeurofitError(f"brainscore splits (train_size {train_size}) failed: {err}") from err
    else:
        raise NeurofitError(f"unknown split scheme {scheme!r}: use 'kfold' or 'brainscore'")

    train = np.zeros((len(folds), n), dtype=bool)
    test = np.zeros((len(folds), n), dtype=bool)
    for f, (tr, te) in enumerate(folds):
        train[f, order[tr]] = True
        test[f, order[te]] = True
    return StimulusSplits(stimulus_ids=ids, train=train, test=test, scheme=scheme, seed=int(seed))
