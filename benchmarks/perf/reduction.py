"""How much median r does the default feature reduction cost? Real Cowley 2023 V4 sessions, real ResNet-20.

Usage (from the repository root; needs the real-data mirror)::

    NEUROFIT_DATA_PATH=../shared/data python benchmarks/perf/reduction.py                 # all four sessions
    NEUROFIT_DATA_PATH=../shared/data python benchmarks/perf/reduction.py --sessions 210325 --layer layer2 \
        --reductions none default rp1000

Each session's benchmark (``cowley2023-v4-<session>``) is scored with the published CIFAR-10 ResNet-20
(``resnet20_cifar`` + ``resnet20-12fca82f.th``) at one layer (``--layers V4=<layer>``, no commitment), once
per reduction:

* ``none``: every feature (``reduction=None``), the reference;
* ``default``: what ``neurofit score`` does without a ``reduction`` argument;
* ``rpD``: a seeded Gaussian random projection to ``D`` features (``rp1000`` was the default before
  issue 14);
* ``pcaD``: PCA to ``D`` components fitted on the session's own stimuli (all of them).

It prints one row per session with the median r over sites of each reduction and its difference from
``none``, and writes the table as JSON (``--out``). Activations are cached under ``$NEUROFIT_HOME``, so a
rerun only regresses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

SESSIONS = ["210325", "210322", "190923", "210224"]


def reduction_for(name: str, stimulus_ids: list[str]) -> Any:
    from neurofit.extract.reduce import PCA, RandomProjection

    if name == "none":
        return None
    if name == "default":
        return "default"
    if name.startswith("rp"):
        return RandomProjection(dim=int(name[2:]), seed=0)
    if name.startswith("pca"):
        return PCA(dim=int(name[3:]), fit_ids=stimulus_ids)
    raise SystemExit(f"unknown reduction {name!r}: none, default, rpD or pcaD")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", nargs="+", default=SESSIONS)
    parser.add_argument("--layer", default="layer2")
    parser.add_argument("--reductions", nargs="+", default=["none", "default", "rp1000"])
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()

    import neurofit
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.data import load_benchmark_data

    root = os.environ.get("NEUROFIT_DATA_PATH", "").split(":")[0]
    weights = Path(root) / "cifar10_resnet" / "resnet20-12fca82f.th"
    if not weights.is_file():
        raise SystemExit(f"no {weights}: set NEUROFIT_DATA_PATH to the real-data mirror")
    rows = []
    for session in args.sessions:
        bench_id = f"cowley2023-v4-{session}"
        _, stimuli = load_benchmark_data(load_benchmark(bench_id))
        row: dict[str, Any] = {"session": session, "layer": args.layer}
        for name in args.reductions:
            t0, c0 = time.perf_counter(), time.process_time()
            scores = neurofit.score("resnet20_cifar", bench_id, checkpoint=weights, layers={"V4": args.layer},
                                    reduction=reduction_for(name, list(stimuli.stimulus_ids)), progress=False,
                                    created="2026-01-01T00:00:00Z")
            median_r = float(np.nanmedian(scores["r"].values))
            row[name] = median_r
            row[f"{name}_attrs"] = {k: v for k, v in scores.attrs.items() if "reduction" in k}
            row[f"{name}_wall_s"] = round(time.perf_counter() - t0, 1)
            row[f"{name}_cpu_s"] = round(time.process_time() - c0, 1)
            print(f"{session} {args.layer} {name:>8}: median r {median_r:.4f} "
                  f"({row[f'{name}_wall_s']} s wall, {row[f'{name}_cpu_s']} s CPU)", flush=True)
        rows.append(row)
    print("\nsession  layer   " + "  ".join(f"{n:>16}" for n in args.reductions))
    for row in rows:
        ref = row.get("none")
        cells = []
        for name in args.reductions:
            delta = "" if ref is None or name == "none" else f" ({row[name] - ref:+.4f})"
            cells.append(f"{row[name]:.4f}{delta}".rjust(16))
        print(f"{row['session']}   {row['layer']}  " + "  ".join(cells))
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
