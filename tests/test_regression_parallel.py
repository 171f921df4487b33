"""The threading policy: independent chunks on worker threads give the answers of one thread."""

import pytest
import torch

from neurofit.regression.crossval import pls_cross_validated, ridge_cross_validated
from neurofit.regression.parallel import map_chunks, split_range, torch_threads
from neurofit.regression.pls import pls_fit

f64 = torch.float64


def _problem(nx: int, nb: int, n: int = 90, p: int = 12, q: int = 7, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(nx, n, p, generator=g, dtype=f64)
    Y = X[..., :q] @ torch.randn(q, q, generator=g, dtype=f64) + torch.randn(nb, n, q, generator=g, dtype=f64)
    test = torch.arange(n)[None] % 5 == torch.arange(5)[:, None]
    return X, Y, ~test, test


@pytest.mark.parametrize(("nx", "nb"), [(1, 1), (1, 5), (5, 5), (3, 3)])
def test_cross_validated_pls_on_two_workers_equals_one_thread(nx, nb):
    # nb >= workers: chunks of whole bins; nb < workers (nb = 1): chunks of one bin's folds.
    X, Y, train, test = _problem(nx, nb)
    with torch_threads(1):
        ref = pls_cross_validated(X, Y, train, test, n_components=4)
    with torch_threads(2):
        got = pls_cross_validated(X, Y, train, test, n_components=4)
    for a, b in zip(got, ref, strict=True):
        assert float((a - b).abs().max()) <= 1e-12 * float(b.abs().max())


@pytest.mark.parametrize("nb", [1, 5])
def test_cross_validated_pls_hands_its_chunks_to_every_worker(nb, monkeypatch):
    # The equality test above passes vacuously if the fits run on one worker: check that every map of the
    # cross-validation gets the caller's two workers (it once re-read the count inside its one-thread block).
    import neurofit.regression.crossval as cv

    seen = []

    def spy(fn, chunks, n_workers):
        seen.append((len(chunks), n_workers))
        return map_chunks(fn, chunks, n_workers)

    monkeypatch.setattr(cv, "map_chunks", spy)
    X, Y, train, test = _problem(1, nb)
    with torch_threads(2):
        pls_cross_validated(X, Y, train, test, n_components=4)
    assert len(seen) >= 3  # the folds' cross-covariances, the fits, the predictions
    assert all(workers == 2 for _, workers in seen), seen
    assert all(n_chunks >= 2 for n_chunks, _ in seen), seen


@pytest.mark.parametrize(("nx", "nb"), [(1, 3), (3, 3)])
def test_cross_validated_ridge_on_two_workers_equals_one_thread(nx, nb):
    X, Y, train, test = _problem(nx, nb)
    with torch_threads(1):
        ref = ridge_cross_validated(X, Y, train, test)
    with torch_threads(2):
        got = ridge_cross_validated(X, Y, train, test)
    for a, b in zip(got, ref, strict=True):
        assert float((a - b).abs().max()) <= 1e-12 * float(b.abs().max())


def test_batched_pls_fit_on_two_workers_equals_one_thread():
    X, Y, _, _ = _problem(3, 3)
    with torch_threads(1):
        ref = pls_fit(X, Y, 5)
    with torch_threads(2):
        got = pls_fit(X, Y, 5)
    assert torch.allclose(got.coef, ref.coef, rtol=0, atol=1e-12 * float(ref.coef.abs().max()))


def test_map_chunks_keeps_order_runs_on_one_thread_and_raises_worker_errors():
    with torch_threads(2):
        assert map_chunks(lambda c: (c, torch.get_num_threads()), list(range(5)), 2) == [(i, 1) for i in range(5)]
        assert torch.get_num_threads() == 2

    def boom(c: int) -> int:
        if c == 3:
            raise ValueError("chunk 3")
        return c

    with pytest.raises(ValueError, match="chunk 3"):
        map_chunks(boom, list(range(5)), 2)


def test_split_range_covers_everything_once():
    for n, parts in [(1, 4), (10, 3), (25, 4), (7, 7)]:
        ranges = split_range(n, parts)
        assert ranges[0][0] == 0 and ranges[-1][1] == n
        assert all(a < b for a, b in ranges) and all(r[1] == s[0] for r, s in zip(ranges, ranges[1:]))


@pytest.mark.parametrize(("nx", "nb"), [(1, 1), (1, 5), (5, 5)])
def test_cross_validated_pls_is_the_same_bit_for_bit_on_one_or_two_workers(nx, nb):
    # the chunks do not depend on the worker count (a dask worker runs one thread, a local run two)
    X, Y, train, test = _problem(nx, nb, n=200, p=30, q=12)
    with torch_threads(1):
        ref = pls_cross_validated(X.float(), Y.float(), train, test, n_components=6)
    with torch_threads(2):
        got = pls_cross_validated(X.float(), Y.float(), train, test, n_components=6)
    for a, b in zip(got, ref, strict=True):
        assert torch.equal(a, b)
