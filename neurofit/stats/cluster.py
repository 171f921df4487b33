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

Per-region (population) metrics (RSA, CKA, reverse predictivity) have one value per region and bin, so there
are no per-site differences to flip. What they have is stimulus-bootstrap draws, paired between the two models
(both rescored on the same resampled stimuli). :func:`bootstrap_cluster_test` is the cluster test built on
those draws: the same clusters and masses with the bootstrap z in place of t, and the null from the centred
bootstrap distribution (Pernet, Latinus, Nichols & Rousselet 2015; Hall & Wilson 1991).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy import stats

from neurofit.errors import NeurofitError, quiet_nan


@dataclass(frozen=True)
class ClusterTest:
    """Result of :func:`cluster_permutation_test`.

    Attributes
    ----------
    t : ndarray (n_bins,)
        Observed statistic per bin: t over sites (:func:`cluster_permutation_test`) or the bootstrap z
        (:func:`bootstrap_cluster_test`).
    threshold : float
        Cluster-forming threshold on |t| (or |z|).
    clusters : list of (start, stop)
        Bin ranges ``[start, stop)`` of the observed clusters, in order of their first bin.
    mass : ndarray (n_clusters,)
        Sum of t over each cluster.
    p : ndarray (n_clusters,)
        Family-wise corrected p-value of each cluster.
    null : ndarray (n_permutations,)
        Largest cluster mass of each sign flip (or centred bootstrap draw), the observed data first (signed; 0
        without clusters).
    n_sites : int
        Sites that entered the test (those with finite differences in every bin); 1 for the bootstrap test (one
        population value per bin).
    exact : bool
        Whether all distinct sign flips were enumerated (False for the bootstrap test).
    resampling : str
        ``"sign flips of sites"`` or ``"stimulus bootstrap draws"``.
    """

    t: np.ndarray
    threshold: float
    clusters: list[tuple[int, int]]
    mass: np.ndarray
    p: np.ndarray
    null: np.ndarray
    n_sites: int
    exact: bool
    resampling: str = "sign flips of sites"

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

    runs, mass = _observed_clusters(t_obs, threshold, tail)
    signs, exact = _flips(n, n_permutations, tail, seed)
    null = [_observed_max(mass, tail)]
    for start in range(0, len(signs), 4096):  # bounded memory for many flips
        null.append(_max_mass(_t_statistics(signs[start:start + 4096], d, sum_sq), threshold, tail))
    h0 = np.concatenate(null)
    return ClusterTest(t=t_obs, threshold=threshold, clusters=runs, mass=mass, p=_cluster_p(mass, h0, tail),
                       null=h0, n_sites=n, exact=exact)


def _observed_clusters(t: np.ndarray, threshold: float, tail: int) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Runs ``[start, stop)`` of ``t`` beyond the threshold (positive and negative apart) and their masses."""
    above = (t > threshold) if tail == 1 else (t < -threshold) if tail == -1 else None
    runs = []
    for sign_mask in ([above] if above is not None else [t > threshold, t < -threshold]):
        edges = np.diff(np.concatenate([[0], sign_mask.astype(int), [0]]))
        runs += list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))
    runs.sort()
    return runs, np.array([t[a:b].sum() for a, b in runs])


def _observed_max(mass: np.ndarray, tail: int) -> np.ndarray:
    if not len(mass):
        return np.zeros(1)
    return np.array([np.abs(mass).max() if tail == 0 else mass.max() if tail == 1 else mass.min()])


def _cluster_p(mass: np.ndarray, h0: np.ndarray, tail: int) -> np.ndarray:
    """Fraction of the null's largest masses (the observed data's included) that reach each cluster's mass."""
    if tail == 0:
        return np.array([np.mean(np.abs(h0) >= abs(m)) for m in mass])
    if tail == 1:
        return np.array([np.mean(h0 >= m) for m in mass])
    return np.array([np.mean(h0 <= m) for m in mass])


def bootstrap_cluster_test(
    estimate: np.ndarray,
    draws: np.ndarray,
    *,
    threshold: float | None = None,
    tail: int = 0,
) -> ClusterTest:
    """Cluster test over bins of one per-region difference from its paired stimulus-bootstrap draws.

    For a population metric (one value per region and bin: RSA, CKA, reverse predictivity) two models differ by
    ``estimate[bin]`` (B - A), and each stimulus-bootstrap draw gives the same difference on resampled stimuli,
    both models rescored on the same draw (``draws[k, bin]``, which keeps the dependence between bins):

    1. Per bin, the bootstrap z: ``z = estimate / se`` with ``se`` the standard deviation of the draws.
    2. Clusters as in :func:`cluster_permutation_test`: maximal runs of contiguous bins with ``|z|`` above the
       cluster-forming threshold (positive and negative runs apart when two-tailed), mass = sum of z. The default
       threshold is the two-sided 5% quantile of the standard normal (one-sided if ``tail`` is +-1): the sign-flip
       test's Student-t quantile in the limit its degrees of freedom go to infinity.
    3. Null distribution: the bootstrap distribution centred on its own mean per bin, ``z*_k = (draws_k -
       mean(draws)) / se``, approximates the sampling distribution of ``z`` around the truth; under "no
       difference" that is the distribution of the observed ``z`` (the bootstrap hypothesis test by centring,
       Hall & Wilson 1991; the bootstrap cluster-mass test of Pernet et al. 2015, there with subjects resampled,
       here stimuli). Each centred draw contributes its largest cluster mass.
    4. A cluster's p value is the fraction of those maxima, the observed one included, that reach its mass
       (as the sign-flip test counts), so rejecting every cluster with ``p < alpha`` controls the family-wise
       error over bins at ``alpha`` (Maris & Oostenveld 2007; Westfall & Young's maximum statistic).

    Bins with a non-finite estimate, fewer than half of the draws finite, or no spread over the draws are not
    tested: ``z = 0`` there in the data and in every draw, so they break clusters. A non-finite draw in a tested
    bin counts as its centre (0) in that draw's null. The p resolution is ``1 / (n_draws + 1)``.

    References: Maris, E. & Oostenveld, R. (2007) J. Neurosci. Methods 164, 177-190; Pernet, C. R., Latinus, M.,
    Nichols, T. E. & Rousselet, G. A. (2015) J. Neurosci. Methods 250, 85-93; Hall, P. & Wilson, S. R. (1991)
    Biometrics 47, 757-762.

    Parameters
    ----------
    estimate : ndarray (n_bins,)
        The observed difference per bin.
    draws : ndarray (n_draws, n_bins)
        The difference on each paired stimulus-bootstrap draw.
    threshold : float, optional
        Cluster-forming threshold on |z| (default: the normal quantile above).
    tail : {0, 1, -1}
        Two-tailed, or only positive (B better) or only negative clusters.

    Returns
    -------
    ClusterTest
        ``t`` holds the z per bin; ``null`` the observed largest mass first, then each draw's.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> smooth = np.cumsum(rng.normal(size=(500, 20)), axis=1) / np.sqrt(np.arange(1, 21))
    >>> truth = np.where((np.arange(20) >= 8) & (np.arange(20) < 14), 0.5, 0.0)
    >>> test = bootstrap_cluster_test(truth + 0.1 * smooth[0], truth + 0.1 * smooth[1:])
    >>> [c for c, p in zip(test.clusters, test.p) if p < 0.05]
    [(8, 14)]
    """
    est = np.asarray(estimate, dtype=np.float64)
    d = np.asarray(draws, dtype=np.float64)
    if est.ndim != 1 or d.ndim != 2 or d.shape[1] != est.shape[0]:
        raise NeurofitError(f"estimate must be (bins,) and draws (draws, bins); got {est.shape} and {d.shape}")
    if tail not in (0, 1, -1):
        raise NeurofitError(f"tail must be 0, 1 or -1, got {tail}")
    if d.shape[0] < 2:
        raise NeurofitError(f"a bootstrap cluster test needs at least 2 draws, got {d.shape[0]}")
    if threshold is None:
        threshold = float(stats.norm.isf(0.05 / (1 + (tail == 0))))
    finite = np.isfinite(d)
    with quiet_nan():
        centre = np.nanmean(np.where(finite, d, np.nan), axis=0)
        se = np.nanstd(np.where(finite, d, np.nan), axis=0, ddof=1)
    tested = np.isfinite(est) & (finite.mean(axis=0) >= 0.5) & np.isfinite(se) & (se > 0)
    scale = np.where(tested, se, 1.0)
    z = np.where(tested, est / scale, 0.0)
    z_null = np.where(tested & finite, (np.where(finite, d, 0.0) - np.where(tested, centre, 0.0)) / scale, 0.0)
    runs, mass = _observed_clusters(z, threshold, tail)
    h0 = np.concatenate([_observed_max(mass, tail), _max_mass(z_null, threshold, tail)])
    return ClusterTest(t=z, threshold=threshold, clusters=runs, mass=mass, p=_cluster_p(mass, h0, tail), null=h0,
                       n_sites=1, exact=False, resampling="stimulus bootstrap draws")
