"""Cluster-based permutation tests over time bins (Maris & Oostenveld 2007) for paired differences.

The question: at which times do two models differ, with the family-wise error rate over all bins
controlled? The data are per-site paired differences ``d[site, bin]`` (second model minus reference).

1. Per bin, the one-sample t statistic of the differences over sites.
2. Clusters: maximal runs of contiguous bins whose t exceeds the cluster-forming threshold (positive and
   negative runs separately when two-tailed); a cluster's mass is the sum of its t values.
3. Null distribution: under "no difference" each site's difference is as likely negative as positive,
   so every sign flip of whole sites (all bins of a site together, which keeps the temporal dependence)
   is equally likely. For each flip, the largest cluster mass (in absolute value, two-tailed).
4. A cluster's p-value is the fraction of flips (the observed one included) whose largest mass reaches
   its mass. Because each flip contributes only its largest cluster, rejecting every cluster with
   ``p < alpha`` controls the family-wise error over bins at ``alpha``.

This is ``mne.stats.permutation_cluster_1samp_test`` on 1-d data (same t, threshold, clusters,
masses and p-values; exact enumeration of all flips when there are few sites, as mne does), computed in
one matrix product for all flips: sign flips leave each bin's sum of squares unchanged, so the t
statistics of every flip are ``signs @ d`` rescaled.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import stats

from neurofit.errors import NeurofitError


@dataclass(frozen=True)
class ClusterTest:
    """Result of :func:`cluster_permutation_test`.

    Attributes
    ----------
    t : ndarray (n_bins,)
        Observed t statistic per bin.
    threshold : float
        Cluster-forming threshold on |t|.
    clusters : list of (start, stop)
        Bin ranges ``[start, stop)`` of the observed clusters, in order of their first bin.
    mass : ndarray (n_clusters,)
        Sum of t over each cluster.
    p : ndarray (n_clusters,)
        Family-wise corrected p-value of each cluster.
    null : ndarray (n_permutations,)
        Largest cluster mass of each sign flip, the observed data first (signed; 0 without clusters).
    n_sites : int
        Sites that entered the test (those with finite differences in every bin).
    exact : bool
        Whether all distinct sign flips were enumerated.
    """

    t: np.ndarray
    threshold: float
    clusters: list[tuple[int, int]]
    mass: np.ndarray
    p: np.ndarray
    null: np.ndarray
    n_sites: int
    exact: bool

    def significant(self, alpha: float = 0.05) -> np.ndarray:
        """Boolean mask over bins: inside a cluster with ``p < alpha``.

        Example
        -------
        >>> d = np.zeros((12, 6)); d[:, 2:4] = 1.0 + np.arange(12)[:, None] % 3
        >>> cluster_permutation_test(d, seed=0).significant().tolist()
        [False, False, True, True, False, False]
        """
        mask = np.zeros(len(self.t), dtype=bool)
        for (a, b), p in zip(self.clusters, self.p):
            if p < alpha:
                mask[a:b] = True
        return mask


def _t_statistics(signs: np.ndarray, d: np.ndarray, sum_sq: np.ndarray) -> np.ndarray:
    n = d.shape[0]
    mean = (signs @ d) / n
    var = (sum_sq - n * mean**2) / (n - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return mean / np.sqrt(var / n)


def _runs(above: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Masses of the runs of ``above`` along the last axis: ``[P, n_bins]`` masses at each run's last bin."""
    mass = np.where(above, t, 0.0)
    total = np.cumsum(mass, axis=-1)
    ends = above & ~np.concatenate([above[..., 1:], np.zeros_like(above[..., :1])], axis=-1)
    starts = above & ~np.concatenate([np.zeros_like(above[..., :1]), above[..., :-1]], axis=-1)
    # mass of a run = cumulative sum at its end minus the cumulative sum before its start
    before = np.where(starts, total - mass, 0.0)
    run_before = np.maximum.accumulate(np.where(starts, np.arange(above.shape[-1]), -1), axis=-1)
    offset = np.take_along_axis(before, np.maximum(run_before, 0), axis=-1)
    return np.where(ends, total - offset, 0.0)


def _max_mass(t: np.ndarray, threshold: float, tail: int) -> np.ndarray:
    masses = np.zeros_like(t)
    if tail >= 0:
        masses = masses + _runs(t > threshold, t)
    if tail <= 0:
        masses = masses + _runs(t < -threshold, t)
    idx = np.argmax(np.abs(masses), axis=-1)
    return np.take_along_axis(masses, idx[..., None], axis=-1)[..., 0]


def _flips(n: int, n_permutations: int, tail: int, seed: int) -> tuple[np.ndarray, bool]:
    # mne's rule: exact when all distinct flips (the last site fixed when two-tailed, since flipping every
    # site gives the same |mass|) are fewer than the permutations asked for.
    n_free = n - (tail == 0)
    if 2**n_free - 1 < n_permutations:
        # every pattern but the last (all ones: the observed data, counted once on its own)
        keep = np.array(list(itertools.product([0.0, 1.0], repeat=n_free))[:-1])
        keep = np.concatenate([keep, np.ones((len(keep), n - n_free))], axis=1)
        return 2.0 * keep - 1.0, True  # 1 keeps a site's sign, 0 flips it
    rng = np.random.default_rng(seed)
    return np.where(rng.random((n_permutations - 1, n)) < 0.5, -1.0, 1.0), False


def cluster_permutation_test(
    differences: np.ndarray,
    *,
    threshold: float | None = None,
    n_permutations: int = 10000,
    tail: int = 0,
    seed: int = 0,
) -> ClusterTest:
    """Cluster-based sign-flip permutation test over bins of paired per-site differences.

    Parameters
    ----------
    differences : ndarray (n_sites, n_bins)
        Paired differences per site and bin (second model minus reference). Sites with a non-finite
        difference in any bin are left out (their count is in the result).
    threshold : float, optional
        Cluster-forming threshold on |t|; by default the two-sided (one-sided if ``tail`` is +-1) 5%
        quantile of Student's t with ``n_sites - 1`` degrees of freedom, as mne does.
    n_permutations : int
        Number of sign flips including the observed data; all distinct flips are used instead when
        there are fewer (an exact test).
    tail : {0, 1, -1}
        Two-tailed, or only positive (second model better) or only negative clusters.
    seed : int
        Seed of the random flips.

    Returns
    -------
    ClusterTest

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> d = rng.normal(size=(30, 20)); d[:, 8:14] += 1.0
    >>> test = cluster_permutation_test(d, n_permutations=2000, seed=1)
    >>> [c for c, p in zip(test.clusters, test.p) if p < 0.05]
    [(8, 14)]
    """
    d = np.asarray(differences, dtype=np.float64)
    if d.ndim != 2:
        raise NeurofitError(f"differences must be (sites, bins); got shape {d.shape}")
    if tail not in (0, 1, -1):
        raise NeurofitError(f"tail must be 0, 1 or -1, got {tail}")
    d = d[np.isfinite(d).all(axis=1)]
    n = d.shape[0]
    if n < 3:
        raise NeurofitError(f"a cluster test needs at least 3 sites with finite differences in every bin, got {n}")
    if threshold is None:
        threshold = float(-stats.t.ppf(0.05 / (1 + (tail == 0)), n - 1))
    sum_sq = (d**2).sum(0)
    t_obs = _t_statistics(np.ones((1, n)), d, sum_sq)[0]

    above = (t_obs > threshold) if tail == 1 else (t_obs < -threshold) if tail == -1 else None
    runs = []
    for sign_mask in ([above] if above is not None else [t_obs > threshold, t_obs < -threshold]):
        edges = np.diff(np.concatenate([[0], sign_mask.astype(int), [0]]))
        runs += list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
    runs.sort()
    mass = np.array([t_obs[a:b].sum() for a, b in runs])

    signs, exact = _flips(n, n_permutations, tail, seed)
    null = [np.array([np.abs(mass).max() if tail == 0 else mass.max() if tail == 1 else mass.min()])
            if len(mass) else np.zeros(1)]
    for start in range(0, len(signs), 4096):  # bounded memory for many flips
        null.append(_max_mass(_t_statistics(signs[start:start + 4096], d, sum_sq), threshold, tail))
    h0 = np.concatenate(null)
    if tail == 0:
        p = np.array([np.mean(np.abs(h0) >= abs(m)) for m in mass])
    elif tail == 1:
        p = np.array([np.mean(h0 >= m) for m in mass])
    else:
        p = np.array([np.mean(h0 <= m) for m in mass])
    return ClusterTest(t=t_obs, threshold=threshold, clusters=runs, mass=mass, p=p, null=h0, n_sites=n,
                       exact=exact)
