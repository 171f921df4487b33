"""Extraction speed harness: images x timesteps per second, FLOPs per image-step, and peak host memory.

Usage (from the repository root)::

    python benchmarks/perf/extract.py --quick            # every zoo model, 32 images at 64 px, ~2 min on CPU
    python benchmarks/perf/extract.py                    # 128 images per model
    python benchmarks/perf/extract.py --memory-case      # + the 5760-image, T = 17 ConvRNN, D = 1000 case
    python benchmarks/perf/extract.py --models --memory-case --threads 2   # that case alone (~10 min)
    python benchmarks/perf/extract.py --ratio --models convrnn_rgc bl --rounds 5 --threads 1
                                                         # issue 20 item 6: extraction / forward, interleaved
    python benchmarks/perf/extract.py --ratio --models convrnn_rgc bl --sides rp sparse --threads 1
                                                         # the same with the opt-in very sparse projection
    python benchmarks/perf/extract.py --split --models bl --sides rp sparse --threads 1 --batch-size 64
                                                         # where one extraction's time goes, part by part

``--ratio`` measures what extraction adds to the forward pass: each side runs in its own process (a fresh
interpreter, one warm-up batch and one tiny extraction first so that imports and first-call costs are
outside the timings), interleaved model by model and round by round in a rotating order, and the median
over rounds of each side's time and of the per-round ratio ``extract / forward`` is printed. The sides:
``forward`` (``forward_sequence`` over every batch, images loaded, normalised and placed in the movie as
extraction does), ``rp`` (``extract_activations`` with ``RandomProjection(1000, seed 0)``), ``default``
(``extract_activations`` with the default reduction ``Auto``; per layer every feature, the exact Gram
compression or the RP-1000 fallback, as recorded in ``reduction_layers``), ``sparse`` (the opt-in very sparse
projection ``RandomProjection(1000, seed 0, kind="sparse")``) and ``auto-sparse`` (``Auto`` with it as fallback).
Wall and CPU seconds of the timed region are both kept (CPU seconds stay comparable on a shared machine).
The extraction sides write the activation cache (checksum included) to a fresh directory, as a default call
does. Run the whole command
under ``nice`` so that every side gets the same priority; the load average is printed per round.

Throughput is measured end to end through :func:`neurofit.extract.extract_activations` (image loading,
movie, forward pass, random projection to D = 1000, no cache) and for the forward pass alone, after one
warm-up batch. FLOPs per image-step come from ``torch.utils.flop_counter.FlopCounterMode`` on one image
(forward pass; the random projection is not counted). Peak host memory is the process's maximum resident
set size (``ru_maxrss``); each model runs in its own subprocess so that the peaks are not mixed up.
The memory case uses random 64 px images (memory does not depend on image content) and must stay under 4 GB.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from neurofit.data.stimuli import StimulusSet
from neurofit.extract import Auto, RandomProjection, extract_activations
from neurofit.models.base import present
from neurofit.models.zoo import ZOO, get_factory

# zoo models at their default (CPU-sized) configuration; resnet20_cifar is a hooked plain module
MODELS = [name for name in ZOO if name != "resnet20_cifar"]
MEMORY_LIMIT_GB = 4.0
#: the extraction sides of --ratio and --split: the reduction each runs
SIDES = {"rp": RandomProjection(dim=1000, seed=0), "default": Auto(),
         "sparse": RandomProjection(dim=1000, seed=0, kind="sparse"),
         "auto-sparse": Auto(fallback=RandomProjection(dim=1000, seed=0, kind="sparse"))}


def random_stimuli(n: int, size: int = 64, seed: int = 0) -> StimulusSet:
    images = np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    table = pd.DataFrame({"stimulus_id": [f"img{i:05d}" for i in range(n)]})
    return StimulusSet.from_arrays(images, table, degrees=8.0, identifier=f"random-{n}")


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # ru_maxrss is in KiB on Linux


def flops_per_image_step(model: torch.nn.Module, steps: int, size: int) -> float:
    movie = present(torch.rand(1, 3, size, size), steps)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.forward_sequence(movie)
    return counter.get_total_flops() / steps


def run_one(name: str, n_images: int, size: int, batch_size: int, steps: int | None, device: str | None,
            forward: bool = True) -> dict:
    kwargs = {"input_size": size, "num_classes": 8}
    if steps is not None:
        kwargs["steps"] = steps
    model = get_factory(name)(**kwargs).eval()
    steps = int(model.default_steps)
    stimuli = random_stimuli(n_images, size)
    flops = flops_per_image_step(model, steps, size)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        torch.set_flush_denormal(True)
    model.to(dev)
    warm = present(model.normalize(stimuli.load_images(size, stimuli.stimulus_ids[:batch_size])).to(dev), steps)
    with torch.no_grad():
        model.forward_sequence(warm)
        begin = time.perf_counter()
        done = 0
        for start in range(0, n_images if forward else 0, batch_size):
            ids = stimuli.stimulus_ids[start:start + batch_size]
            movie = present(model.normalize(stimuli.load_images(size, ids)).to(dev), steps)
            model.forward_sequence(movie)
            done += len(ids)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        forward_s = max(time.perf_counter() - begin, 1e-9)
    # one-time import and set-up costs (xarray backends) are not extraction throughput
    extract_activations(model, random_stimuli(2, size, seed=1), device=dev, cache=False, progress=False, layers=[
        model.layers[-1]], reduction=RandomProjection(dim=8, seed=0))
    begin = time.perf_counter()
    acts = extract_activations(model, stimuli, batch_size=batch_size, device=dev, cache=False, progress=False,
                               reduction=RandomProjection(dim=1000, seed=0))
    extract_s = time.perf_counter() - begin
    return {
        "model": name, "steps": steps, "images": n_images, "size": size, "device": str(dev),
        "params": sum(p.numel() for p in model.parameters()),
        "gflops_per_image_step": round(flops / 1e9, 4),
        "forward_img_steps_per_s": round(done * steps / forward_s, 1) if forward else "",
        "extract_img_steps_per_s": round(n_images * steps / extract_s, 1),
        "extract_s": round(extract_s, 2),
        "achieved_gflops_per_s": round(flops * done * steps / forward_s / 1e9, 2) if forward else "",
        "features_stored": int(sum(acts.n_steps(layer) * acts.n_features(layer) for layer in acts.layers)),
        "peak_rss_gb": round(peak_rss_gb(), 3),
    }


def _kind(reduction: object) -> str:
    """The random projection kind a side uses (its warm-up uses the same, so that imports stay outside)."""
    return getattr(reduction, "kind", None) or getattr(getattr(reduction, "fallback", None), "kind", "gaussian")


def run_side(name: str, side: str, n_images: int, size: int, batch_size: int, steps: int | None,
             device: str | None) -> dict:
    """One side of ``--ratio`` in this process: seconds of the timed region and the peak RSS."""
    import tempfile

    kwargs = {"input_size": size, "num_classes": 8}
    if steps is not None:
        kwargs["steps"] = steps
    model = get_factory(name)(**kwargs).eval()
    steps = int(model.default_steps)
    stimuli = random_stimuli(n_images, size)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cpu":
        torch.set_flush_denormal(True)
    model.to(dev)
    ids = stimuli.stimulus_ids
    warm = present(model.normalize(stimuli.load_images(size, ids[:batch_size])).to(dev), steps)
    with torch.no_grad():
        model.forward_sequence(warm)
    reduction = SIDES.get(side)
    with tempfile.TemporaryDirectory() as cache_dir:
        # imports and first-call set-up (xarray, the netCDF writer) are not what extraction adds per image
        extract_activations(model, random_stimuli(2, size, seed=1), device=dev, cache=True, cache_dir=cache_dir,
                            progress=False, layers=[model.layers[-1]],
                            reduction=RandomProjection(dim=8, seed=0, kind=_kind(reduction)))
        begin, cpu = time.perf_counter(), time.process_time()
        if side == "forward":
            with torch.no_grad():
                for start in range(0, n_images, batch_size):
                    movie = present(model.normalize(stimuli.load_images(size, ids[start:start + batch_size])).to(dev),
                                    steps)
                    model.forward_sequence(movie)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            methods = ""
        else:
            acts = extract_activations(model, stimuli, batch_size=batch_size, device=dev, cache=True,
                                       cache_dir=cache_dir, progress=False, reduction=reduction)
            methods = ",".join(sorted({v["method"] for v in acts.attrs["reduction_layers"].values()}))
        seconds, cpu = time.perf_counter() - begin, time.process_time() - cpu
    return {"model": name, "side": side, "steps": steps, "images": n_images, "seconds": seconds, "cpu_seconds": cpu,
            "methods": methods, "peak_rss_gb": round(peak_rss_gb(), 3)}


def spawn_side(name: str, side: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--side", side, "--images", str(args.images or 128),
           "--size", str(args.size), "--batch-size", str(args.batch_size)]
    if args.steps is not None:
        cmd += ["--steps", str(args.steps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.device:
        cmd += ["--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"{name} {side}: " + (proc.stderr.strip().splitlines() or ["no output"])[-1])
    return json.loads(line[len("RESULT "):])


def ratio_mode(args: argparse.Namespace) -> None:
    """``--ratio``: extraction / forward per model, each side in its own process, interleaved, medians.

    Both the wall time and the process's CPU time of the timed region are kept: on a shared machine the CPU
    seconds (one torch thread) are what stays comparable between rounds.
    """
    import os

    names = args.models or ["convrnn_rgc", "bl"]
    sides = ["forward", *args.sides]
    times: dict[tuple[str, str, str], list[float]] = {}
    ratios: dict[tuple[str, str, str], list[float]] = {}
    info: dict[tuple[str, str], dict] = {}
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
          f"{args.threads or torch.get_num_threads()}, {args.images or 128} images, batch {args.batch_size}, "
          f"python {' '.join(sys.argv)}", flush=True)
    clocks = ("seconds", "cpu_seconds")
    for r in range(args.rounds):
        load = os.getloadavg()[0]
        for k, name in enumerate(names):
            shift = (r + k) % len(sides)
            got = {}
            for side in sides[shift:] + sides[:shift]:
                got[side] = spawn_side(name, side, args)
                info[(name, side)] = got[side]
                for clock in clocks:
                    times.setdefault((name, side, clock), []).append(got[side][clock])
            for side in args.sides:
                for clock in clocks:
                    ratios.setdefault((name, side, clock), []).append(got[side][clock] / got["forward"][clock])
            print(f"round {r + 1} load {load:.1f}->{os.getloadavg()[0]:.1f} {name}: " + ", ".join(
                f"{s} {got[s]['seconds']:.2f} s ({got[s]['cpu_seconds']:.2f} CPU s)" for s in sides)
                + " | " + ", ".join(
                f"{s}/forward {got[s]['seconds'] / got['forward']['seconds']:.2f} "
                f"({got[s]['cpu_seconds'] / got['forward']['cpu_seconds']:.2f} CPU)" for s in args.sides), flush=True)
    print("| model | steps | side | reduction per layer | median s | median ratio to forward (min-max) | "
          "median CPU s | median CPU ratio (min-max) | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        for side in sides:
            row = info[(name, side)]
            cells = []
            for clock in clocks:
                ratio = ratios.get((name, side, clock))
                cells.append(f"{np.median(times[(name, side, clock)]):.2f}")
                cells.append("1" if ratio is None else f"{np.median(ratio):.2f} ({min(ratio):.2f}-{max(ratio):.2f})")
            print(f"| {name} | {row['steps']} | {side} | {row['methods'] or '-'} | " + " | ".join(cells)
                  + f" | {row['peak_rss_gb']} |")


def split_mode(args: argparse.Namespace) -> None:
    """``--split``: where one extraction's time goes, in this process (wall and CPU seconds per part).

    For each model and side: one warm-up extraction, then a timed one with the runner (image loading, movie,
    ``forward_sequence``), the projection products, the matrix generation, the exact compression, the
    assembly and the cache store each wrapped in a timer; ``rest`` is the total minus those parts.
    """
    import contextlib
    import tempfile

    from neurofit.extract import extract as ex
    from neurofit.extract import reduce as rd

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    spent: dict[str, list[float]] = {}

    def timed(part: str, fn):
        def wrapper(*a, **k):
            w, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                acc = spent.setdefault(part, [0.0, 0.0])
                acc[0] += time.perf_counter() - w
                acc[1] += time.process_time() - c
        return wrapper

    patches = [(ex._Runner, "__call__", "forward"), (rd._Projector, "__call__", "projection product"),
               (rd._SparseProjector, "__call__", "projection product"), (rd.RandomProjection, "matrix", "matrix"),
               (rd.RandomProjection, "components", "matrix"), (ex, "_gram_compress", "exact compression"),
               (ex, "_assemble", "assembly"), (ex._cache, "store", "cache store")]
    parts = list(dict.fromkeys(p for _, _, p in patches))
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, threads "
          f"{torch.get_num_threads()}, {args.images or 128} images, batch {args.batch_size}, "
          f"python {' '.join(sys.argv)}")
    print("| model | side | total s (CPU s) | " + " | ".join(parts) + " | rest |")
    print("|---|---|---|" + "---|" * (len(parts) + 1))
    for name in args.models or ["convrnn_rgc", "bl"]:
        kwargs = {"input_size": args.size, "num_classes": 8}
        if args.steps is not None:
            kwargs["steps"] = args.steps
        model = get_factory(name)(**kwargs).eval()
        stimuli = random_stimuli(args.images or 128, args.size)
        for side in args.sides:
            reduction = SIDES[side]
            with tempfile.TemporaryDirectory() as cache_dir, contextlib.ExitStack() as stack:
                run = dict(batch_size=args.batch_size, device="cpu", cache=True, cache_dir=cache_dir, progress=False)
                extract_activations(model, random_stimuli(args.batch_size, args.size, seed=1), reduction=reduction,
                                    **run)
                for owner, attr, part in patches:
                    original = getattr(owner, attr)
                    stack.callback(setattr, owner, attr, original)
                    setattr(owner, attr, timed(part, original))
                spent.clear()
                w, c = time.perf_counter(), time.process_time()
                extract_activations(model, stimuli, reduction=reduction, **run)
                total = (time.perf_counter() - w, time.process_time() - c)
            cells = [spent.get(p, [0.0, 0.0]) for p in parts]
            rest = [total[i] - sum(cell[i] for cell in cells) for i in (0, 1)]
            print(f"| {name} | {side} | {total[0]:.2f} ({total[1]:.2f}) | "
                  + " | ".join(f"{cell[0]:.2f} ({cell[1]:.2f})" for cell in cells)
                  + f" | {rest[0]:.2f} ({rest[1]:.2f}) |", flush=True)


def child(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.side:
        result = run_side(args.child, args.side, args.images, args.size, args.batch_size, args.steps, args.device)
        print("RESULT " + json.dumps(result))
        return
    result = run_one(args.child, args.images, args.size, args.batch_size, args.steps, args.device,
                     forward=not args.no_forward)
    print("RESULT " + json.dumps(result))


def spawn(name: str, images: int, size: int, batch_size: int, steps: int | None, args: argparse.Namespace,
          forward: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--child", name, "--images", str(images), "--size", str(size),
           "--batch-size", str(batch_size)]
    if not forward:
        cmd.append("--no-forward")
    if steps is not None:
        cmd += ["--steps", str(steps)]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    if args.device:
        cmd += ["--device", args.device]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        return {"model": name, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="32 images per model")
    parser.add_argument("--memory-case", action="store_true",
                        help="also extract 5760 images through a T = 17 ConvRNN (convrnn_rgc) at D = 1000")
    parser.add_argument("--models", nargs="*", default=None, help=f"zoo models (default: {', '.join(MODELS)})")
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--json", default=None, help="also write the results as JSON here")
    parser.add_argument("--ratio", action="store_true",
                        help="extraction / forward pass alone, each in its own process, interleaved (medians)")
    parser.add_argument("--rounds", type=int, default=5, help="--ratio: rounds (default 5)")
    parser.add_argument("--sides", nargs="+", default=["rp", "default"], choices=list(SIDES),
                        help="--ratio, --split: the extraction sides (rp: Gaussian RP-1000; default: Auto; sparse: the "
                             "very sparse RP-1000; auto-sparse: Auto with it as fallback)")
    parser.add_argument("--split", action="store_true",
                        help="where one extraction's time goes, part by part, in this process (wall and CPU s)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--side", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-forward", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.ratio:
        ratio_mode(args)
        return
    if args.split:
        split_mode(args)
        return
    images = args.images or (32 if args.quick else 128)
    names = MODELS if args.models is None else args.models  # `--models` alone: only the memory case
    results = [spawn(name, images, args.size, args.batch_size, args.steps, args) for name in names]
    if args.memory_case:
        # extraction only: a separate forward-only pass over 5760 images would double the run time
        case = spawn("convrnn_rgc", 5760, 64, 64, 17, args, forward=False)
        case["memory_case"] = True
        case["under_limit"] = bool(case.get("peak_rss_gb", 1e9) < MEMORY_LIMIT_GB)
        results.append(case)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {args.threads or torch.get_num_threads()}, python {' '.join(sys.argv)}")
    columns = ["model", "steps", "images", "params", "gflops_per_image_step", "forward_img_steps_per_s",
               "extract_img_steps_per_s", "achieved_gflops_per_s", "peak_rss_gb"]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in results:
        if "error" in row:
            print(f"| {row['model']} | error: {row['error']} |")
        else:
            print("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
