"""Every measurement of benchmarks/perf/RESULTS.md in one command, for a quiet-machine run.

Usage (from the repository root, with the ``bench`` extra installed; about 40-60 minutes on an idle 2-core
machine, most of it the peers' slow fits and the TVSD/Li2026 shapes)::

    python benchmarks/perf/run_all.py                 # everything, output also in perf-run.log
    python benchmarks/perf/run_all.py --skip shapes   # leave out the big shapes (about 20 minutes)

Each step is a separate process run one after the other, never two at once; before each step the load
average is printed, since every absolute number below means something only on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable

STEPS = {
    "regression": [
        [PY, str(HERE / "regression.py"), "--threads", "2", "--clock", "wall", "--repeats", "5"],
        [PY, str(HERE / "regression.py"), "--threads", "1", "--clock", "wall", "--repeats", "5", "--only", "pls"],
        [PY, str(HERE / "regression.py"), "--threads", "2", "--dtype", "float64", "--repeats", "5", "--only", "pls"],
    ],
    "contention": [[PY, str(HERE / "regression.py"), "--contention", "--threads", "2", "--rounds", "3"]],
    "peers": [[PY, str(HERE / "peers.py"), "--threads", "1", "2", "--rounds", "3"]],
    "shapes": [
        [PY, str(HERE / "shapes.py"), shape, "--method", method, "--threads", "2"]
        for shape in ("tvsd", "li2026")
        for method in ("pls", "ridge")
    ],
    "extract": [[PY, str(HERE / "extract.py"), "--quick", "--threads", "1"]],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip", nargs="*", default=[], choices=sorted(STEPS))
    parser.add_argument("--log", type=Path, default=Path("perf-run.log"))
    args = parser.parse_args()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    failed = []
    with args.log.open("w") as log:

        def say(text: str) -> None:
            print(text, flush=True)
            log.write(text + "\n")
            log.flush()

        say(f"neurofit perf run at commit {rev}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
            f"{os.cpu_count()} CPUs")
        for name, commands in STEPS.items():
            if name in args.skip:
                continue
            for cmd in commands:
                say(f"\n$ {' '.join(Path(c).name if c == PY else os.path.relpath(c) for c in cmd)}"
                    f"    [load average {os.getloadavg()[0]:.1f}]")
                t0 = time.perf_counter()
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                assert proc.stdout is not None
                for line in proc.stdout:
                    say(line.rstrip())
                if proc.wait() != 0:
                    failed.append(" ".join(cmd))
                say(f"[{time.perf_counter() - t0:.0f} s, load average {os.getloadavg()[0]:.1f} after]")
    if failed:
        sys.exit("failed: " + "; ".join(failed))


if __name__ == "__main__":
    main()
