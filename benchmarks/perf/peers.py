"""neurofit's regression engine against the best peers, side by side, each library in its own process.

Usage (from the repository root; the peers are in the ``bench`` extra: ``pip install -e ".[bench]"``)::

    python benchmarks/perf/peers.py                      # one and two threads, 3 interleaved rounds
    python benchmarks/perf/peers.py --threads 1 --rounds 5 --tasks pls cv
    python benchmarks/perf/peers.py --quick              # a quarter of every dimension, for a smoke run

Tasks (same data for every library, written once to a temporary folder and read by each worker):

* ``pls``: one PLS2 fit, regime (i) of ``regression.py`` (n 2880, p 1000, q 296, ``X ~ N(0, 1)``,
  ``Y = X W / 30 + noise``, 25 components, centred, not scaled): neurofit's exact PLS (float64 and float32)
  against IKPLS (``ikpls.numpy.PLS``, Improved Kernel PLS algorithms #1 and #2, float64) and sklearn's
  ``PLSRegression`` (NIPALS; one round only, it takes seconds to minutes).
* ``cv``: 10-fold cross-validated PLS predictions on n 5760 (same generator, one design): neurofit's
  ``pls_cross_validated`` against IKPLS's fast cross-validation
  (``ikpls.fast_cross_validation.numpy.PLS.cross_validate``, algorithm #2, ``n_jobs`` = threads).
* ``banded``: banded ridge over two feature spaces (the ``pls`` data's features split in halves), every band
  weighting of ``neurofit.metrics.partition.simplex_grid(2)`` times the 26 penalties, per target:
  neurofit's ``banded_ridge_fit_predict`` (exact leave-one-out) against himalaya's
  ``solve_group_ridge_random_search`` on the same weightings and penalties (5-fold, numpy backend).
* ``ridge``: ridge with the 26-penalty grid of ``neurofit.regression.ridge.DEFAULT_ALPHAS``, a penalty per
  target: neurofit's ``RidgeCV`` (exact leave-one-out) against himalaya's ``RidgeCV`` (5-fold, numpy and torch
  backends) and sklearn's ``RidgeCV(alpha_per_target=True)`` (exact leave-one-out).

Each (library, task) runs in a fresh process with ``--threads`` threads (torch, BLAS via environment and
threadpoolctl), warms up on a small slice, then times one fit by wall clock. Rounds interleave the
libraries (A, B, C, A, B, C, ...); medians over rounds are printed with the ratio of each peer to neurofit.

Answers are checked, not assumed: IKPLS's predictions (one fit and every fold of its fast CV) equal neurofit's
exact float64 PLS to ``--tol`` (1e-10) relative to the largest prediction; sklearn's ``RidgeCV`` picks the
same penalty per target and predicts the same; himalaya selects by 5-fold CV, not leave-one-out, so its
penalties may differ on some targets: the fraction that agree is printed, and himalaya's ``Ridge`` refit with
neurofit's penalties must give neurofit's predictions to ``--tol``. A failed check exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

N_COMPONENTS = 25
FOLDS = 10
HERE = Path(__file__).resolve()

# (task, library) pairs, in the order a round runs them; sklearn's PLS runs in the first round only.
LIBRARIES = {
    "pls": ["neurofit64", "neurofit32", "ikpls1", "ikpls2", "sklearn"],
    "cv": ["neurofit64", "neurofit32", "ikpls2"],
    "ridge": ["neurofit64", "neurofit32", "himalaya_numpy", "himalaya_torch", "sklearn"],
    "banded": ["neurofit64", "neurofit32", "himalaya_numpy"],
}
ONE_ROUND = {("pls", "sklearn")}
REFERENCE = "neurofit64"


def shapes(quick: bool) -> dict[str, int]:
    s = 4 if quick else 1
    return {"n": 2880 // s, "n_cv": 5760 // s, "p": 1000 // s, "q": 296 // s}


def make_data(folder: Path, quick: bool) -> None:
    """Regime (i) data for the one-fit tasks, a larger sample of the same generator for CV, test inputs, folds."""
    d = shapes(quick)
    rng = np.random.default_rng(0)
    W = rng.normal(size=(d["p"], d["q"])) / 30
    for name, n in (("fit", d["n"]), ("cv", d["n_cv"])):
        X = rng.normal(size=(n, d["p"]))
        np.save(folder / f"X_{name}.npy", X)
        np.save(folder / f"Y_{name}.npy", X @ W + rng.normal(size=(n, d["q"])))
    np.save(folder / "X_new.npy", rng.normal(size=(200, d["p"])))
    np.save(folder / "folds.npy", rng.permutation(np.arange(d["n_cv"]) % FOLDS))


# ---------------------------------------------------------------- workers (one library, one task, one process)


def _neurofit_pls(X, Y, X_new, dtype):
    import torch

    from neurofit.regression.pls import PLS

    def run(X, Y):
        return PLS(N_COMPONENTS, device="cpu", dtype=dtype).fit(torch.as_tensor(X), torch.as_tensor(Y))

    return run, lambda model: model.predict(torch.as_tensor(X_new)).numpy()


def _neurofit_cv(X, Y, folds, dtype):
    import torch

    from neurofit.regression.crossval import pls_cross_validated

    test = torch.as_tensor(folds[None, :] == np.arange(FOLDS)[:, None])

    def run(X, Y):
        t = test[:, : X.shape[0]] if X.shape[0] < test.shape[1] else test
        Xt, Yt = torch.as_tensor(X, dtype=dtype)[None], torch.as_tensor(Y, dtype=dtype)[None]
        return pls_cross_validated(Xt, Yt, ~t, t, N_COMPONENTS)

    def answer(preds):
        out = np.empty((X.shape[0], Y.shape[1]))
        for f in range(FOLDS):
            out[folds == f] = preds[f][0].double().numpy()
        return out

    return run, answer


def _ikpls_pls(X_new, algorithm):
    from ikpls.numpy import PLS

    def run(X, Y):
        model = PLS(algorithm=algorithm, center_X=True, center_Y=True, scale_X=False, scale_Y=False)
        model.fit(X, Y, N_COMPONENTS)
        return model

    return run, lambda model: model.predict(X_new, n_components=N_COMPONENTS)


def _ikpls_cv(X, Y, folds, threads):
    from ikpls.fast_cross_validation.numpy import PLS

    def run(X, Y):
        model = PLS(algorithm=2, center_X=True, center_Y=True, scale_X=False, scale_Y=False)
        # The metric hands back the predictions with all components (Y_pred is [A, n_val, q]).
        return model.cross_validate(
            X, Y, N_COMPONENTS, folds[: X.shape[0]], lambda Y_true, Y_pred: Y_pred[-1], n_jobs=threads, verbose=0
        )

    def answer(result):
        out = np.empty((X.shape[0], Y.shape[1]))
        for f, pred in result.items():
            out[folds == f] = pred
        return out

    return run, answer


def _sklearn_pls(X_new):
    from sklearn.cross_decomposition import PLSRegression

    return lambda X, Y: PLSRegression(N_COMPONENTS, scale=False).fit(X, Y), lambda model: model.predict(X_new)


def _neurofit_ridge(X_new, dtype):
    import torch

    from neurofit.regression.ridge import RidgeCV

    def run(X, Y):
        return RidgeCV(device="cpu", dtype=dtype).fit(torch.as_tensor(X), torch.as_tensor(Y))

    def answer(model):
        pred = model.predict(torch.as_tensor(X_new, dtype=dtype)).double().numpy()
        return pred, np.asarray(model.alpha_.double().numpy())

    return run, answer


def _himalaya_ridge(X_new, backend):
    from himalaya.backend import set_backend
    from himalaya.ridge import RidgeCV

    from neurofit.regression.ridge import DEFAULT_ALPHAS

    set_backend(backend, on_error="raise")

    def run(X, Y):
        return RidgeCV(alphas=DEFAULT_ALPHAS, fit_intercept=True, cv=5).fit(X, Y)

    def answer(model):
        from himalaya.backend import get_backend

        b = get_backend()
        return np.asarray(b.to_numpy(model.predict(X_new))), np.asarray(b.to_numpy(model.best_alphas_))

    return run, answer


def _neurofit_banded(X_new, dtype):
    import torch

    from neurofit.metrics.partition import banded_ridge_fit_predict, simplex_grid

    half = X_new.shape[1] // 2
    test = [torch.as_tensor(X_new[:, :half], dtype=dtype)[None], torch.as_tensor(X_new[:, half:], dtype=dtype)[None]]

    def run(X, Y):
        spaces = [torch.as_tensor(X[:, :half], dtype=dtype)[None], torch.as_tensor(X[:, half:], dtype=dtype)[None]]
        return banded_ridge_fit_predict(spaces, torch.as_tensor(Y, dtype=dtype)[None], test, simplex_grid(2))

    def answer(result):
        pred, fit = result
        return pred[0].double().numpy(), (fit.gamma[0] / fit.alpha[0][None]).double().numpy()

    return run, answer


def _himalaya_banded(X_new):
    from himalaya.backend import set_backend
    from himalaya.ridge import solve_group_ridge_random_search

    from neurofit.metrics.partition import simplex_grid
    from neurofit.regression.ridge import DEFAULT_ALPHAS

    set_backend("numpy", on_error="raise")
    half = X_new.shape[1] // 2

    def run(X, Y):
        return solve_group_ridge_random_search(
            [X[:, :half], X[:, half:]], Y, n_iter=simplex_grid(2), alphas=DEFAULT_ALPHAS, fit_intercept=True, cv=5,
            return_weights=True, progress_bar=False)

    def answer(result):
        deltas, weights, _, intercept = result
        return X_new @ np.asarray(weights) + np.asarray(intercept), np.exp(np.asarray(deltas))

    return run, answer


def _sklearn_ridge(X_new):
    from sklearn.linear_model import RidgeCV

    from neurofit.regression.ridge import DEFAULT_ALPHAS

    def run(X, Y):
        return RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True).fit(X, Y)

    return run, lambda model: (model.predict(X_new), np.asarray(model.alpha_))


def worker(task: str, library: str, data: Path, threads: int, out: Path) -> None:
    """Time one fit of ``library`` on ``task`` in this process; write seconds and its answer to ``out``."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)
    warnings.simplefilter("ignore")  # the warm-up slice is small (himalaya warns when n < p)
    name = "cv" if task == "cv" else "fit"
    X, Y = np.load(data / f"X_{name}.npy"), np.load(data / f"Y_{name}.npy")
    X_new, folds = np.load(data / "X_new.npy"), np.load(data / "folds.npy")
    dtype = torch.float32 if library == "neurofit32" else torch.float64
    if task == "pls":
        run, answer = {
            "neurofit64": lambda: _neurofit_pls(X, Y, X_new, dtype),
            "neurofit32": lambda: _neurofit_pls(X, Y, X_new, dtype),
            "ikpls1": lambda: _ikpls_pls(X_new, 1),
            "ikpls2": lambda: _ikpls_pls(X_new, 2),
            "sklearn": lambda: _sklearn_pls(X_new),
        }[library]()
    elif task == "cv":
        run, answer = {
            "neurofit64": lambda: _neurofit_cv(X, Y, folds, dtype),
            "neurofit32": lambda: _neurofit_cv(X, Y, folds, dtype),
            "ikpls2": lambda: _ikpls_cv(X, Y, folds, threads),
        }[library]()
    elif task == "banded":
        run, answer = {
            "neurofit64": lambda: _neurofit_banded(X_new, dtype),
            "neurofit32": lambda: _neurofit_banded(X_new, dtype),
            "himalaya_numpy": lambda: _himalaya_banded(X_new),
        }[library]()
    else:
        run, answer = {
            "neurofit64": lambda: _neurofit_ridge(X_new, dtype),
            "neurofit32": lambda: _neurofit_ridge(X_new, dtype),
            "himalaya_numpy": lambda: _himalaya_ridge(X_new, "numpy"),
            "himalaya_torch": lambda: _himalaya_ridge(X_new, "torch"),
            "sklearn": lambda: _sklearn_ridge(X_new),
        }[library]()
    warm = max(4 * N_COMPONENTS, X.shape[0] // 8)
    if task == "cv":
        warm = max(warm, 2 * FOLDS * N_COMPONENTS)
    run(X[:warm], Y[:warm])  # first calls: imports, allocations, kernels
    t0 = time.perf_counter()
    result = run(X, Y)
    seconds = time.perf_counter() - t0
    ans = answer(result)
    arrays = {"pred": ans[0], "alpha": ans[1]} if isinstance(ans, tuple) else {"pred": ans}
    np.savez(out, seconds=seconds, **arrays)


# ---------------------------------------------------------------- driver


def _spawn(task: str, library: str, data: Path, threads: int, out: Path) -> float:
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(threads)
    cmd = [sys.executable, str(HERE), "--worker", task, library, "--data", str(data), "--threads", str(threads),
           "--out", str(out)]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return float(np.load(out)["seconds"])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def check_answers(task: str, answers: dict[str, dict[str, np.ndarray]], data: Path, tol: float) -> list[str]:
    """Lines describing each peer's agreement with neurofit float64; failures start with 'FAIL'."""
    ref = answers[REFERENCE]
    lines = []
    for lib, ans in answers.items():
        if lib == REFERENCE:
            continue
        diff = _rel(ans["pred"], ref["pred"])
        if lib.startswith("ikpls"):
            ok = diff <= tol
            lines.append(f"{'ok' if ok else 'FAIL'}: {lib} predictions vs neurofit float64: rel. diff {diff:.1e}"
                         f" (must be <= {tol:.0e})")
        elif lib == "sklearn" and task == "ridge":
            same = float(np.mean(ans["alpha"] == ref["alpha"]))
            ok = same == 1.0 and diff <= tol
            lines.append(f"{'ok' if ok else 'FAIL'}: sklearn RidgeCV: same penalty for {same:.1%} of targets, "
                         f"rel. diff {diff:.1e}")
        elif lib.startswith("himalaya"):
            same = np.isclose(ans["alpha"], ref["alpha"], rtol=1e-6)
            same = float(np.mean(same if same.ndim == 1 else same.all(0)))
            what = "penalty" if task == "ridge" else "per-space penalties"
            lines.append(f"info: {lib} (5-fold CV) picks neurofit's leave-one-out {what} for {same:.1%} of "
                         f"targets; predictions rel. diff {diff:.1e} (equality with leave-one-out folds: "
                         f"{'this script' if task == 'ridge' else 'tests/test_metrics_partition.py'})")
        else:
            lines.append(f"info: {lib} predictions vs neurofit float64: rel. diff {diff:.1e}"
                         + (" (sklearn's NIPALS tolerance)" if lib == "sklearn" else " (float32)"))
    if task == "ridge" and any(lib.startswith("himalaya") for lib in answers):
        from himalaya.backend import set_backend
        from himalaya.ridge import Ridge as HRidge

        set_backend("numpy")
        X, Y, X_new = (np.load(data / f"{k}.npy") for k in ("X_fit", "Y_fit", "X_new"))
        refit = HRidge(alpha=ref["alpha"], fit_intercept=True).fit(X, Y).predict(X_new)
        diff = _rel(np.asarray(refit), ref["pred"])
        ok = diff <= tol
        lines.append(f"{'ok' if ok else 'FAIL'}: himalaya Ridge refit with neurofit's penalties: rel. diff "
                     f"{diff:.1e} (must be <= {tol:.0e})")
    return lines


def run_task(task: str, threads: int, rounds: int, data: Path, tol: float, libraries: list[str]) -> dict:
    times: dict[str, list[float]] = {lib: [] for lib in libraries}
    answers: dict[str, dict[str, np.ndarray]] = {}
    for r in range(rounds):
        for lib in libraries:
            if r > 0 and (task, lib) in ONE_ROUND:
                continue
            out = data / f"{task}_{lib}_{threads}_{r}.npz"
            times[lib].append(_spawn(task, lib, data, threads, out))
            if r == 0:
                with np.load(out) as z:
                    answers[lib] = {k: z[k] for k in z.files if k != "seconds"}
    checks = check_answers(task, answers, data, tol)
    med = {lib: statistics.median(ts) for lib, ts in times.items()}
    return {"task": task, "threads": threads, "times": times, "median": med, "checks": checks,
            "load_avg": os.getloadavg()[0]}


def report(res: dict, quick: bool) -> None:
    d = shapes(quick)
    desc = {
        "pls": f"PLS one fit (n {d['n']}, p {d['p']}, q {d['q']}, {N_COMPONENTS} components)",
        "cv": f"PLS {FOLDS}-fold CV (n {d['n_cv']}, p {d['p']}, q {d['q']}, {N_COMPONENTS} components)",
        "ridge": f"Ridge, 26 penalties per target (n {d['n']}, p {d['p']}, q {d['q']})",
        "banded": f"Banded ridge, 2 spaces, 5 weightings x 26 penalties (n {d['n']}, p {d['p']}, q {d['q']})",
    }[res["task"]]
    print(f"{desc}, {res['threads']} thread(s), load average {res['load_avg']:.1f}:", flush=True)
    base = res["median"]
    for lib, t in base.items():
        n = len(res["times"][lib])
        rel64 = t / base[REFERENCE]
        rel32 = t / base["neurofit32"]
        print(f"  {lib:15s} median {t * 1e3:10.1f} ms over {n} run(s)   {rel64:7.1f}x neurofit64   "
              f"{rel32:7.1f}x neurofit32", flush=True)
    for line in res["checks"]:
        print(f"  {line}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of every dimension")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (medians over these)")
    parser.add_argument("--tasks", nargs="+", choices=sorted(LIBRARIES), default=["pls", "cv", "ridge", "banded"])
    parser.add_argument("--skip", nargs="*", default=[], help="libraries to leave out, e.g. sklearn himalaya_torch")
    parser.add_argument("--tol", type=float, default=1e-10)
    parser.add_argument("--json", type=Path, default=None, help="also write every timing and check here")
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "LIBRARY"), help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker[0], args.worker[1], args.data, args.threads[0], args.out)
        return
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {'quick' if args.quick else 'full'} sizes, "
          f"{args.rounds} interleaved rounds, each library in its own process, wall clock", flush=True)
    results, failed = [], False
    with tempfile.TemporaryDirectory(prefix="neurofit-peers-") as tmp:
        data = Path(tmp)
        make_data(data, args.quick)
        for threads in args.threads:
            for task in args.tasks:
                libraries = [lib for lib in LIBRARIES[task] if lib not in args.skip]
                res = run_task(task, threads, args.rounds, data, args.tol, libraries)
                report(res, args.quick)
                failed |= any(line.startswith("FAIL") for line in res["checks"])
                results.append(res)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    if failed:
        sys.exit("an answer check failed (see FAIL above)")


if __name__ == "__main__":
    main()
