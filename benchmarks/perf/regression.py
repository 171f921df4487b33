"""Speed of the regression engine against scikit-learn, side by side in one process on the same data.

Usage::

    python benchmarks/perf/regression.py            # the issue's shapes (about a minute on an idle 2-core VM)
    python benchmarks/perf/regression.py --quick    # a quarter of every dimension, seconds
    python benchmarks/perf/regression.py --threads 2 --dtype float32

Problems (full size):

* PLS, one fit, n = 2880 training stimuli, p = 1000 features, q = 296 sites, 25 components, in two regimes:
  (i) ``X ~ N(0, 1)``, ``Y = X W / 30 + noise`` with dense ``W`` (sklearn's NIPALS runs to max_iter) and
  (ii) a rank-50 latent structure plus noise (sklearn converges). Reference:
  ``PLSRegression(25, scale=False)`` with its defaults.
* Ridge, one fit, same shapes as (i): neurofit's ``RidgeCV`` vs sklearn's ``RidgeCV(alphas, alpha_per_target=True)``.
* The full temporal problem, engine only: 5760 stimuli, 1000 features per bin (one feature matrix per
  bin), 296 sites x 25 bins, 10 folds, exact PLS with 25 components, all folds and bins at once.

``--contention`` measures robustness instead: each engine fit (PLS regime (i), 10-fold CV of one bin of the
temporal problem, a 3-bin slice of the temporal problem, ridge) runs in a fresh process, once on the machine
as it is and once while one competing busy process (a pure-Python loop in its own session, as another
user's job would be) occupies a core; rounds interleave the two and the median ratio contended / idle is
printed (target <= 2.5x on the 2-core machine). Run it on an otherwise idle machine.

Every line prints the wall time of each side, their ratio and how far the engine's predictions are from
sklearn's (max |difference| / max |sklearn prediction|). Under each PLS line, the "floor" is the work any
exact PLS must do on that problem (centring, ``X^T Y``, one small eigendecomposition and two passes over
``X`` per component), timed alone: sklearn's time over it bounds the ratio any exact engine can reach here.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
import torch


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def _time(fn, repeats: int = 1):
    """Best of ``repeats`` runs: (seconds, result). Seconds are CPU seconds of this process with
    ``--clock cpu`` (steadier than wall time on a machine shared with other jobs), else wall seconds."""
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = CLOCK()
        out = fn()
        best = min(best, CLOCK() - t0)
    return best, out


CLOCK = time.perf_counter


def _regimes(rng: np.random.Generator, n: int, p: int, q: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    X1 = rng.normal(size=(n, p))
    Y1 = X1 @ rng.normal(size=(p, q)) / 30 + rng.normal(size=(n, q))
    Z = rng.normal(size=(n, 50))
    X2 = Z @ rng.normal(size=(50, p)) + rng.normal(size=(n, p))
    Y2 = Z @ rng.normal(size=(50, q)) + rng.normal(size=(n, q))
    return {"(i) dense W / 30": (X1, Y1), "(ii) rank-50 latent": (X2, Y2)}


def pls_floor(X: torch.Tensor, Y: torch.Tensor, n_components: int, repeats: int) -> float:
    """Seconds of the work every exact PLS fit must do, timed alone: centring, ``X^T Y``, the first
    component's ``q x q`` (or ``p x p``) eigendecomposition and, per component, the two passes over ``X``
    (scores ``X r`` and loadings ``X^T t``). The engine's time above this is its per-component eigen-work
    and bookkeeping; a reference's time divided by this bounds the ratio any exact implementation can reach."""
    r = torch.randn(X.shape[1], 1, dtype=X.dtype)

    def floor() -> None:
        Xc = X - X.mean(0)
        C = Xc.T @ (Y - Y.mean(0))
        G = (C.T @ C if C.shape[1] <= C.shape[0] else C @ C.T).to(torch.float64)
        torch.linalg.eigh(G)
        for _ in range(n_components):
            Xc.T @ (Xc @ r)

    floor()
    return _time(floor, repeats)[0]


def bench_pls(n: int, p: int, q: int, dtype: torch.dtype, repeats: int) -> None:
    from sklearn.cross_decomposition import PLSRegression

    from neurofit.regression.pls import PLS

    rng = np.random.default_rng(0)
    for name, (X, Y) in _regimes(rng, n, p, q).items():
        X_new = rng.normal(size=(200, p))
        Xt, Yt = torch.as_tensor(X, dtype=dtype), torch.as_tensor(Y, dtype=dtype)
        PLS(25, device="cpu", dtype=dtype).fit(Xt[:300], Yt[:300])  # warm-up (allocations, kernels)
        t_exact, exact = _time(lambda Xt=Xt, Yt=Yt: PLS(25, device="cpu", dtype=dtype).fit(Xt, Yt), repeats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t_nip, nip = _time(
                lambda Xt=Xt, Yt=Yt: PLS(25, algorithm="nipals", device="cpu", dtype=dtype).fit(Xt, Yt), 1
            )
            t_sk, ref = _time(lambda X=X, Y=Y: PLSRegression(25, scale=False).fit(X, Y))
        converged = max(ref.n_iter_) < 500
        t_floor = pls_floor(Xt, Yt, 25, repeats)
        print(
            f"PLS {name}: sklearn {t_sk:8.2f} s (NIPALS iterations max {max(ref.n_iter_)}) | "
            f"engine exact {t_exact * 1e3:7.1f} ms = {t_sk / t_exact:6.0f}x faster, "
            f"rel. diff {_rel(exact.predict(X_new), ref.predict(X_new)):.1e}"
            f"{'' if converged else ' (sklearn unconverged)'} | "
            f"engine nipals {t_nip:6.2f} s = {t_sk / t_nip:5.0f}x, rel. diff "
            f"{_rel(nip.predict(X_new), ref.predict(X_new)):.1e}",
            flush=True,
        )
        print(
            f"  floor of any exact PLS here (centring, X^T Y, one eigh, 25 x 2 passes over X): "
            f"{t_floor * 1e3:.1f} ms = at most {t_sk / t_floor:.0f}x faster than sklearn",
            flush=True,
        )


def bench_ridge(n: int, p: int, q: int, dtype: torch.dtype, repeats: int) -> None:
    from sklearn.linear_model import RidgeCV as SkRidgeCV

    from neurofit.regression.ridge import DEFAULT_ALPHAS, RidgeCV

    rng = np.random.default_rng(1)
    X, Y = _regimes(rng, n, p, q)["(i) dense W / 30"]
    X_new = rng.normal(size=(200, p))
    Xt, Yt = torch.as_tensor(X, dtype=dtype), torch.as_tensor(Y, dtype=dtype)
    RidgeCV(device="cpu", dtype=dtype).fit(Xt[:300], Yt[:300])
    t_ours, ours = _time(lambda: RidgeCV(device="cpu", dtype=dtype).fit(Xt, Yt), repeats)
    t_sk, ref = _time(lambda: SkRidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True).fit(X, Y))
    same = float(np.mean(np.asarray(ours.alpha_) == ref.alpha_))
    print(
        f"Ridge ({len(DEFAULT_ALPHAS)} alphas, per target): sklearn {t_sk:6.2f} s | engine {t_ours * 1e3:7.1f} ms "
        f"= {t_sk / t_ours:5.1f}x faster, same alpha for {same:.1%} of targets, rel. diff "
        f"{_rel(ours.predict(torch.as_tensor(X_new, dtype=dtype)).numpy(), ref.predict(X_new)):.1e}",
        flush=True,
    )


def bench_temporal(n_stim: int, p: int, q: int, n_bins: int, dtype: torch.dtype) -> None:
    from neurofit.regression.crossval import pls_cross_validated
    from neurofit.regression.splits import make_splits

    g = torch.Generator().manual_seed(2)
    latent = torch.randn(n_stim, 50, generator=g, dtype=dtype)
    X = torch.stack([latent @ torch.randn(50, p, generator=g, dtype=dtype) for _ in range(n_bins)])
    X += torch.randn(n_bins, n_stim, p, generator=g, dtype=dtype)
    Y = torch.stack([latent @ torch.randn(50, q, generator=g, dtype=dtype) for _ in range(n_bins)])
    Y += torch.randn(n_bins, n_stim, q, generator=g, dtype=dtype)
    s = make_splits([f"s{i}" for i in range(n_stim)])
    train, test = torch.as_tensor(s.train), torch.as_tensor(s.test)
    t0, c0 = time.perf_counter(), time.process_time()
    preds = pls_cross_validated(X, Y, train, test, 25)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert len(preds) == 10 and all(torch.isfinite(pr).all() for pr in preds)
    print(
        f"Full temporal PLS: {n_stim} stimuli, {p} features per bin, {q} sites x {n_bins} bins, 10 folds "
        f"({n_bins * 10} fits of 25 components): engine {elapsed:6.2f} s wall, {cpu:6.2f} s CPU",
        flush=True,
    )


def _contention_task(task: str, dtype: torch.dtype, scale: int) -> float:
    """Wall seconds of one engine fit of ``task`` (after a warm-up on a slice), in this process."""
    from neurofit.regression.crossval import pls_cross_validated
    from neurofit.regression.pls import PLS
    from neurofit.regression.ridge import RidgeCV
    from neurofit.regression.splits import make_splits

    n, p, q = 2880 // scale, 1000 // scale, 296 // scale
    g = torch.Generator().manual_seed(3)
    if task in ("pls", "ridge"):
        X = torch.randn(n, p, generator=g, dtype=dtype)
        Y = X @ torch.randn(p, q, generator=g, dtype=dtype) / 30 + torch.randn(n, q, generator=g, dtype=dtype)
        def est():
            return PLS(25, device="cpu", dtype=dtype) if task == "pls" else RidgeCV(device="cpu", dtype=dtype)

        est().fit(X[: n // 8], Y[: n // 8])
        t0 = time.perf_counter()
        est().fit(X, Y)
        return time.perf_counter() - t0
    n_bins = 1 if task == "cv" else 3
    N = 2 * n
    X = torch.randn(n_bins, N, p, generator=g, dtype=dtype)
    Y = X[..., :q] @ torch.randn(q, q, generator=g, dtype=dtype) / 10 + torch.randn(n_bins, N, q, generator=g,
                                                                                      dtype=dtype)
    s = make_splits([f"s{i}" for i in range(N)])
    train, test = torch.as_tensor(s.train), torch.as_tensor(s.test)
    pls_cross_validated(X[:, : N // 4], Y[:, : N // 4], train[:, : N // 4], test[:, : N // 4], 25)
    t0 = time.perf_counter()
    pls_cross_validated(X, Y, train, test, 25)
    return time.perf_counter() - t0


def contention(threads: int, dtype_name: str, scale: int, rounds: int) -> None:
    """Each fit in its own process, alone and beside one busy process, interleaved; median ratios."""
    import statistics
    import subprocess
    import sys

    def fit(task: str) -> float:
        cmd = [sys.executable, __file__, "--contention-task", task, "--threads", str(threads), "--dtype", dtype_name]
        if scale > 1:
            cmd.append("--quick")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return float(out.strip().splitlines()[-1])

    desc = {"pls": "PLS one fit, regime (i)", "cv": "PLS 10-fold CV, one bin", "temporal3": "PLS 10-fold CV, 3 bins",
            "ridge": "Ridge one fit, 26 penalties"}
    for task, label in desc.items():
        idle, busy = [], []
        for _ in range(rounds):
            idle.append(fit(task))
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
            try:
                time.sleep(0.5)
                busy.append(fit(task))
            finally:
                hog.kill()
                hog.wait()
        ratio = statistics.median(b / i for b, i in zip(busy, idle))
        print(f"{label}: alone median {statistics.median(idle) * 1e3:8.1f} ms, beside one busy process "
              f"{statistics.median(busy) * 1e3:8.1f} ms: {ratio:4.2f}x slower (target <= 2.5x), "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of every dimension")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for torch and for numpy/scipy's BLAS (sklearn); default: the libraries' own")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time PLS/ridge by wall clock or by this process's CPU time")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--repeats", type=int, default=3, help="engine timings: best of this many")
    parser.add_argument("--only", choices=("pls", "ridge", "temporal"), default=None)
    parser.add_argument("--contention", action="store_true",
                        help="time engine fits alone and beside one busy process (see the module docstring)")
    parser.add_argument("--rounds", type=int, default=3, help="--contention: interleaved rounds")
    parser.add_argument("--contention-task", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.threads:
        torch.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    dtype = getattr(torch, args.dtype)
    scale = 4 if args.quick else 1
    if args.contention_task:
        print(_contention_task(args.contention_task, dtype, scale))
        return
    n, p, q = 2880 // scale, 1000 // scale, 296 // scale
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, engine dtype {args.dtype} "
        f"(sklearn float64), {'quick' if args.quick else 'full'} sizes, {args.clock} clock, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs",
        flush=True,
    )
    if args.contention:
        contention(torch.get_num_threads(), args.dtype, scale, args.rounds)
        return
    if args.only in (None, "pls"):
        bench_pls(n, p, q, dtype, args.repeats)
    if args.only in (None, "ridge"):
        bench_ridge(n, p, q, dtype, args.repeats)
    if args.only in (None, "temporal"):
        bench_temporal(5760 // scale, p, q, 25 // scale if scale > 1 else 25, dtype)


if __name__ == "__main__":
    main()
