"""The GPU readiness run: every regression benchmark and an extraction throughput test on one device, with
float32-on-device results checked against float64 on the CPU. Driven by ``benchmarks/perf/gpu.sh``.

Usage (from the repository root)::

    bash benchmarks/perf/gpu.sh                         # CUDA, full sizes, JSON to $OUT/gpu.json (<= 8 min)
    python benchmarks/perf/gpu.py --device cpu --quick  # the same code path on CPU at small sizes (CI)

Parts (each timed on the device in float32, after a warm-up, with the device synchronised):

* ``pls_fit`` / ``ridge_fit``: one fit of regime (i) of ``regression.py`` (n 2880, p 1000, q 296; PLS with
  25 components, ridge with the 26-penalty grid);
* ``temporal``: the full temporal problem, 5760 x 1000 x 296 sites x 25 bins x 10 folds (PLS), all bins at once;
* ``tvsd`` and ``li2026``: 10-fold PLS and ridge at those shapes (``shapes.py``), streamed a chunk of bins at a
  time; on a GPU the run budget allows the first bins only (``--shape-bins``), and seconds per bin are given;
* ``extract``: ``extract_activations`` of the recurrent zoo model ``convrnn_rgc`` at 64 px (random projection
  to 1000 features), image-steps per second, and the forward pass alone.

Checks: the per-site held-out Pearson r of the float32 device run must equal a float64 CPU run of the same
problem (the first bin of ``temporal``, of ``tvsd`` and of ``li2026``, PLS and ridge; for ridge, which is
separable over sites, the first 256 sites) to
``max |r_device - r_cpu| / max |r_cpu| <= 1e-4``; the one-fit predictions are compared the same way. A failed
check makes the exit status 1 (the JSON is written first).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import shapes  # the sibling module (benchmarks/perf is not a package)

TOL = 1e-4


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str, repeats: int = 3) -> tuple[float, object]:
    fn()  # warm-up: kernels, allocator
    best, out = np.inf, None
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.nanmax(np.abs(a - b)) / np.nanmax(np.abs(b)))


def one_fits(device: str, scale: int) -> list[dict]:
    from neurofit.regression.pls import PLS
    from neurofit.regression.ridge import RidgeCV

    n, p, q = 2880 // scale, 1000 // scale, 296 // scale
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, p))
    Y = X @ rng.normal(size=(p, q)) / 30 + rng.normal(size=(n, q))
    X_new = rng.normal(size=(200, p))
    out = []
    for name, make in (("pls_fit", lambda **kw: PLS(25, **kw)), ("ridge_fit", lambda **kw: RidgeCV(**kw))):
        Xd, Yd = (torch.as_tensor(a, dtype=torch.float32, device=device) for a in (X, Y))
        seconds, model = _timed(lambda make=make, Xd=Xd, Yd=Yd: make(device=device, dtype=torch.float32).fit(Xd, Yd),
                                device)
        pred = model.predict(torch.as_tensor(X_new, dtype=torch.float32, device=device)).double().cpu().numpy()
        ref = make(device="cpu", dtype=torch.float64).fit(X, Y).predict(X_new)
        diff = _rel(pred, ref)
        out.append({"part": name, "n": n, "p": p, "q": q, "seconds": round(seconds, 4), "rel_diff_vs_cpu64": diff,
                    "ok": diff <= TOL})
    return out


def shape_runs(device: str, scale: float, shape_bins: int | None, check_bins: int) -> list[dict]:
    out = []
    for shape, methods in (("temporal", ("pls",)), ("tvsd", ("pls", "ridge")), ("li2026", ("pls", "ridge"))):
        s = shapes.scaled(shape, scale)
        for method in methods:
            all_bins = shape == "temporal" and method == "pls"
            n_bins = s["bins"] if all_bins or shape_bins is None else min(shape_bins, s["bins"])
            chunk = s["bins"] if all_bins else 1
            # warm-up on the first bin, then the timed run
            shapes.cross_validated_r(s, method, device, torch.float32, 1, range(1))
            r_dev, seconds = shapes.cross_validated_r(s, method, device, torch.float32, chunk, range(n_bins))
            # ridge is separable over sites: its float64 CPU check uses the first 256 (the CPU's cost of all
            # 26 penalties x 2,048 sites x 20,000 leave-one-out residuals would not fit the run's budget)
            sites = 256 if method == "ridge" else None
            r_cpu, _ = shapes.cross_validated_r(s, method, "cpu", torch.float64, 1, range(check_bins), sites)
            diff = _rel(r_dev[:check_bins, : r_cpu.shape[1]], r_cpu)
            out.append({"part": f"{shape}_{method}", **s, "bins_run": n_bins, "seconds": round(seconds, 3),
                        "seconds_per_bin": round(seconds / n_bins, 3), "median_r": float(np.nanmedian(r_dev)),
                        "r_rel_diff_vs_cpu64": diff, "bins_checked": check_bins, "ok": diff <= TOL})
            print(json.dumps(out[-1]), flush=True)
    return out


def extraction(device: str, n_images: int) -> dict:
    from extract import random_stimuli

    from neurofit.extract import RandomProjection, extract_activations
    from neurofit.models.base import present
    from neurofit.models.zoo import get_factory

    model = get_factory("convrnn_rgc")(input_size=64, num_classes=8).eval().to(device)
    steps = int(model.default_steps)
    stimuli = random_stimuli(n_images, 64)
    batch = 64

    def forward() -> None:
        with torch.no_grad():
            for start in range(0, n_images, batch):
                ids = stimuli.stimulus_ids[start : start + batch]
                model.forward_sequence(present(model.normalize(stimuli.load_images(64, ids)).to(device), steps))

    def extract() -> None:
        extract_activations(model, stimuli, batch_size=batch, device=device, cache=False, progress=False,
                            reduction=RandomProjection(dim=1000, seed=0))

    t_fwd, _ = _timed(forward, device, repeats=1)
    t_ext, _ = _timed(extract, device, repeats=1)
    return {"part": "extract_convrnn_rgc_64px", "images": n_images, "steps": steps,
            "forward_img_steps_per_s": round(n_images * steps / t_fwd, 1),
            "extract_img_steps_per_s": round(n_images * steps / t_ext, 1), "extract_over_forward": t_ext / t_fwd,
            "ok": True}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (a CPU smoke run of the same code)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ".")) / "gpu.json")
    parser.add_argument("--shape-bins", type=int, default=3, help="bins of tvsd/li2026 to time (budget)")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA device here: run with --device cpu --quick for the CPU smoke run")
    scale_fit, scale_shape = (8, 0.03) if args.quick else (1, 1.0)
    info = {"device": args.device, "quick": args.quick, "torch": torch.__version__, "host": platform.node(),
            "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
            "threads": torch.get_num_threads(), "load_avg": os.getloadavg()[0]}
    t0 = time.perf_counter()
    parts = one_fits(args.device, scale_fit)
    for part in parts:
        print(json.dumps(part), flush=True)
    parts += shape_runs(args.device, scale_shape, 1 if args.quick else args.shape_bins, check_bins=1)
    parts.append(extraction(args.device, 8 if args.quick else 1024))
    print(json.dumps(parts[-1]), flush=True)
    info["total_seconds"] = round(time.perf_counter() - t0, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"info": info, "parts": parts}, indent=1))
    failed = [p["part"] for p in parts if not p["ok"]]
    verdict = "FAILED: " + ", ".join(failed) if failed else "all checks passed"
    print(f"wrote {args.out}; {len(parts)} parts, {verdict}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
