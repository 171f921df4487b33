"""Synthetic problems at the shapes users meet, scored by cross-validated PLS or ridge one bin chunk at a time.

Shapes (stimuli x features per bin x sites x bins):

* ``temporal``: the full temporal problem, 5760 x 1000 x 296 x 25 (MajajHong-sized, 10 ms bins);
* ``tvsd``: TVSD (Papale et al. 2025), 22,248 training images x 1000 x 2,048 electrodes x 10 bins;
* ``li2026``: Li2026 "Triple-N", 1000 NSD images x 1000 x 47,503 units x 30 bins.

Each bin's features and responses come from a seeded rank-50 latent model (``X = Z A + noise``,
``Y = Z B + noise``), generated per bin, so a run never holds more than one chunk of bins: data, fit,
held-out predictions and their per-site Pearson r are made and dropped chunk by chunk, and only the r
matrix (bins x sites) is kept. 10-fold K-fold over stimuli (seed 0), 25 PLS components or ridge with the
26-penalty grid.

Run one shape from the repository root (peak host memory is printed; these runs take minutes)::

    nice -n 10 python benchmarks/perf/shapes.py tvsd --method pls
    nice -n 10 python benchmarks/perf/shapes.py li2026 --method ridge --scale 0.1   # a tenth of every size
    nice -n 10 python benchmarks/perf/shapes.py tvsd --method ridge --bins 1 --sites 64  # ridge is separable
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import torch

SHAPES = {
    "temporal": {"n": 5760, "p": 1000, "q": 296, "bins": 25},
    "tvsd": {"n": 22248, "p": 1000, "q": 2048, "bins": 10},
    "li2026": {"n": 1000, "p": 1000, "q": 47503, "bins": 30},
}
RANK = 50
FOLDS = 10


def scaled(shape: str, scale: float) -> dict[str, int]:
    """The shape with every size (not the number of bins) multiplied by ``scale`` (at least 2 x FOLDS stimuli)."""
    s = dict(SHAPES[shape])
    if scale != 1:
        s["n"] = max(2 * FOLDS * 3, int(s["n"] * scale))
        s["p"] = max(30, int(s["p"] * scale))
        s["q"] = max(4, int(s["q"] * scale))
        s["bins"] = max(2, int(round(s["bins"] * min(1.0, 4 * scale))))
    return s


def bin_data(s: dict[str, int], b: int, dtype: torch.dtype, device: str, seed: int = 0):
    """Features ``[n, p]`` and responses ``[n, q]`` of bin ``b`` (the latent stimulus factors are shared by bins)."""
    Z = torch.randn(s["n"], RANK, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    g = torch.Generator().manual_seed(seed + 1 + b)
    X = Z @ torch.randn(RANK, s["p"], generator=g, dtype=torch.float64) + torch.randn(s["n"], s["p"], generator=g,
                                                                                    dtype=torch.float64)
    Y = (Z @ torch.randn(RANK, s["q"], generator=g, dtype=torch.float64)) / 3 + torch.randn(
        s["n"], s["q"], generator=g, dtype=torch.float64
    )
    return X.to(device=device, dtype=dtype), Y.to(device=device, dtype=dtype)


def folds(n: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    from neurofit.regression.splits import make_splits

    sp = make_splits([f"s{i:06d}" for i in range(n)], n_splits=FOLDS)
    return torch.as_tensor(sp.train, device=device), torch.as_tensor(sp.test, device=device)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def cross_validated_r(
    s: dict[str, int], method: str, device: str, dtype: torch.dtype, bins_per_chunk: int = 1,
    bins: range | None = None, sites: int | None = None,
) -> tuple[np.ndarray, float]:
    """Per-site, per-bin held-out Pearson r ``[bins, q]`` (float64) and the seconds spent fitting and scoring.

    Data generation is not timed. Bins are streamed ``bins_per_chunk`` at a time. ``sites`` keeps the first
    sites only (ridge is separable over sites, so their r are those of the full problem; PLS2 is not).
    """
    from neurofit.regression.correlation import pearson_r
    from neurofit.regression.crossval import pls_cross_validated, ridge_cross_validated

    train, test = folds(s["n"], device)
    bins = bins if bins is not None else range(s["bins"])
    q = s["q"] if sites is None else min(sites, s["q"])
    out = np.empty((len(bins), q))
    seconds = 0.0
    for c0 in range(0, len(bins), bins_per_chunk):
        chunk = list(bins)[c0 : c0 + bins_per_chunk]
        data = [bin_data(s, b, dtype, device) for b in chunk]
        X = torch.stack([d[0] for d in data])
        Y = torch.stack([d[1][:, :q] for d in data])
        del data
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fit = pls_cross_validated if method == "pls" else ridge_cross_validated
        preds = fit(X, Y, train, test)
        held_out = torch.empty_like(Y)
        for f, pr in enumerate(preds):
            held_out[:, test[f]] = pr
        del preds
        r = pearson_r(held_out, Y, dim=1)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        out[c0 : c0 + len(chunk)] = r.double().cpu().numpy()
        del X, Y, held_out
    return out, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("shape", choices=sorted(SHAPES))
    parser.add_argument("--method", choices=("pls", "ridge"), default="pls")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every size by this (quick runs)")
    parser.add_argument("--bins-per-chunk", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--bins", type=int, default=None,
                        help="run only the first N bins (streaming: the peak memory is that of one chunk)")
    parser.add_argument("--sites", type=int, default=None,
                        help="ridge only: fit the first N sites (separable: their r are those of the full problem)")
    parser.add_argument("--json", default=None, help="append the result as one JSON line to this file")
    args = parser.parse_args()
    if args.sites is not None and args.method != "ridge":
        parser.error("--sites applies to ridge only (PLS2 is fitted jointly over all sites)")
    if args.threads:
        torch.set_num_threads(args.threads)
    s = scaled(args.shape, args.scale)
    c0 = time.process_time()
    bins = range(s["bins"] if args.bins is None else min(args.bins, s["bins"]))
    r, seconds = cross_validated_r(s, args.method, args.device, getattr(torch, args.dtype), args.bins_per_chunk,
                                   bins, sites=args.sites)
    cpu = time.process_time() - c0
    result = {
        "shape": args.shape, **s, "method": args.method, "device": args.device, "dtype": args.dtype,
        "threads": torch.get_num_threads(), "bins_run": len(bins), "sites_run": r.shape[1],
        "seconds": round(seconds, 2),
        "cpu_seconds_incl_data": round(cpu, 2), "peak_rss_gb": round(peak_rss_gb(), 3),
        "median_r": round(float(np.nanmedian(r)), 4), "load_avg": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result), flush=True)
    if args.json:
        with open(args.json, "a") as fh:
            fh.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
