#!/usr/bin/env bash
# The GPU readiness run of issue 20 in one command (at most 8 minutes): the regression benchmarks, the full
# temporal problem, the TVSD/Li2026 shapes and an extraction throughput test on CUDA in float32, each checked
# against float64 on the CPU; JSON to $OUT/gpu.json. See benchmarks/perf/gpu.py.
#   bash benchmarks/perf/gpu.sh                       # on a GPU machine
#   bash benchmarks/perf/gpu.sh --device cpu --quick  # the same code on CPU at small sizes (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT="${OUT:-$PWD}"
exec timeout 480 python benchmarks/perf/gpu.py --out "$OUT/gpu.json" "$@"
