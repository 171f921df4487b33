"""The RSA layer x step grid: every cell equals rsatoolbox, and a model's cell at a bin is that bin's RSA score."""

import numpy as np
import pytest
import torch

from neurofit.metrics.rsa import METHODS, repetition_groups, rsa_over_time
from neurofit.metrics.rsa_grid import rsa_grid

TOL = 1e-10


def _problem(seed=0, n=15, bins=3, regions=(7, 10), reps=(6, 5), n_model=4):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(bins, n, 4))
    trials = []
    for sites, r in zip(regions, reps):
        signal = np.einsum("bnk,ks->nsb", latent, rng.normal(size=(4, sites)))
        trials.append(signal[:, None] + rng.normal(size=(n, r, sites, bins)))
    model = [latent[k % bins] @ rng.normal(size=(4, 6 + k)) + 0.3 * rng.normal(size=(n, 6 + k))
             for k in range(n_model)]  # widths differ
    return model, trials


@pytest.mark.parametrize("method", METHODS)
def test_each_cell_is_the_rsa_score_of_that_model_in_that_bin(method):
    model, trials = _problem()
    grid = rsa_grid(model, trials, method=method, n_groups=3, seed=1)
    assert grid.shape == (4, 2, 3)
    for k, x in enumerate(model):
        for r, t in enumerate(trials):
            res = rsa_over_time(t, np.repeat(x[None], t.shape[3], axis=0), method=method, n_groups=3, seed=1)
            np.testing.assert_allclose(grid[k, r], res.score, rtol=0, atol=TOL)


@pytest.mark.parametrize("method", ["spearman", "cosine"])
def test_crossnobis_cells_and_chunked_neural_rdms_give_the_same_grid(method):
    model, trials = _problem(seed=2, n=12)
    whole = rsa_grid(model, trials, method=method, dissimilarity="crossnobis", n_groups=2)
    chunked = rsa_grid(model, trials, method=method, dissimilarity="crossnobis", n_groups=2, max_bytes=1)
    np.testing.assert_allclose(whole, chunked, rtol=0, atol=1e-13)
    for r, t in enumerate(trials):
        res = rsa_over_time(t, np.repeat(model[1][None], 3, axis=0), method=method, dissimilarity="crossnobis",
                            n_groups=2)
        np.testing.assert_allclose(whole[1, r], res.score, rtol=0, atol=TOL)


@pytest.mark.parametrize("method", ["spearman", "corr"])
def test_undefined_dissimilarities_are_left_out_as_rsa_does(method):
    model, trials = _problem(seed=3)
    model[0] = model[0].copy()
    model[0][4] = 1.0  # a constant pattern: its pairs have no correlation distance
    trials = [t.copy() for t in trials]
    trials[1][2, :, 0, 1] = np.nan  # a stimulus never recorded at one site in bin 1
    grid = rsa_grid([torch.as_tensor(x) for x in model], trials, method=method, n_groups=3)
    assert np.isfinite(grid).all()
    for k in (0, 1):
        for r, t in enumerate(trials):
            res = rsa_over_time(t, np.repeat(np.asarray(model[k])[None], 3, axis=0), method=method, n_groups=3)
            np.testing.assert_allclose(grid[k, r], res.score, rtol=0, atol=TOL)


@pytest.mark.parametrize("method", ["spearman", "corr", "cosine"])
def test_grid_cells_equal_rsatoolbox(method):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.rdm import RDMs, calc_rdm, compare

    model, trials = _problem(seed=4, n=13)
    grid = rsa_grid(model, trials, method=method, n_groups=3, seed=0)

    def rdm_of(patterns):
        return calc_rdm(rsatoolbox.data.Dataset(patterns), method="correlation").get_vectors()[0]

    for k, r, b in [(0, 0, 0), (2, 1, 2), (3, 0, 1), (1, 1, 0)]:
        t = trials[r]
        groups = repetition_groups(t.shape[1], 3, 0)
        data = RDMs(np.stack([rdm_of(np.nanmean(t[..., b][:, groups == g], axis=1)) for g in np.unique(groups)]))
        theirs = compare(RDMs(rdm_of(model[k])[None]), data, method=method).mean()
        np.testing.assert_allclose(grid[k, r, b], theirs, rtol=0, atol=TOL)


def test_bad_inputs_are_named():
    from neurofit.errors import NeurofitError

    model, trials = _problem()
    with pytest.raises(NeurofitError, match="over the model.s 14 stimuli"):
        rsa_grid([model[0][:-1]], trials)
    with pytest.raises(NeurofitError, match="unknown dissimilarity"):
        rsa_grid(model, trials, dissimilarity="euclid")
    with pytest.raises(NeurofitError, match="unknown RDM comparison"):
        rsa_grid(model, trials, method="kendall")
