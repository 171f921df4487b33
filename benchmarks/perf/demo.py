"""How long a newcomer waits for ``neurofit demo`` (issue 14 item 10: under 90 s wall on an idle 2-core machine).

Usage (from the repository root)::

    python benchmarks/perf/demo.py                   # one cold run: fresh NEUROFIT_HOME, fresh output folder
    python benchmarks/perf/demo.py --rounds 3        # three cold runs, medians
    python benchmarks/perf/demo.py --profile /tmp/demo.prof   # the same run under cProfile (slower)

Each round runs ``neurofit demo --out <tmp> --quiet`` in a subprocess with an empty ``NEUROFIT_HOME`` (no
activation cache: a first run), and reports its wall time, its CPU time (user + system of the child, from
``resource.getrusage(RUSAGE_CHILDREN)``) and the 1-minute load average before and after. On a shared machine
the wall time depends on the other processes; the CPU time much less so: on an idle 2-core machine the wall
time is about ``CPU time / cores used``, so report both, with the load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_round(profile: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="neurofit-demo-perf-") as tmp:
        env = {**os.environ, "NEUROFIT_HOME": str(Path(tmp) / "home"), "MPLBACKEND": "Agg"}
        demo = ["demo", "--out", str(Path(tmp) / "demo"), "--quiet"]
        cmd = [sys.executable, "-m", *(["cProfile", "-o", profile, "-m"] if profile else []), "neurofit.cli", *demo]
        load_before = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"neurofit demo failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_before": round(load_before, 2),
                "load_after": round(os.getloadavg()[0], 2), "peak_rss_gb": round(after.ru_maxrss / 2**20, 2),
                "first_line": proc.stdout.splitlines()[0] if proc.stdout else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", default=None, help="write a cProfile file (one round)")
    parser.add_argument("--json", default=None, help="also write the rounds as JSON here")
    args = parser.parse_args()
    rows = []
    for k in range(1 if args.profile else args.rounds):
        row = one_round(args.profile)
        rows.append(row)
        print(f"round {k + 1}: {row['wall_s']} s wall, {row['cpu_s']} s CPU, load {row['load_before']} -> "
              f"{row['load_after']}, peak RSS {row['peak_rss_gb']} GiB", flush=True)
    if len(rows) > 1:
        print(f"median: {statistics.median(r['wall_s'] for r in rows)} s wall, "
              f"{statistics.median(r['cpu_s'] for r in rows)} s CPU")
    print(f"cores: {os.cpu_count()}; {rows[0]['first_line']}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
