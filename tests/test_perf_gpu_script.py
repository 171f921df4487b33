"""benchmarks/perf/gpu.sh, the GPU readiness run, exercised on CPU at small sizes so it cannot rot."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PARTS = {"pls_fit", "ridge_fit", "temporal_pls", "tvsd_pls", "tvsd_ridge", "li2026_pls", "li2026_ridge",
         "extract_convrnn_rgc_64px"}


@pytest.mark.slow
def test_gpu_script_runs_every_part_on_cpu_and_checks_float32_against_float64(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path)}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks/perf/gpu.sh"), "--device", "cpu", "--quick"],
                          capture_output=True, text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads((tmp_path / "gpu.json").read_text())
    parts = {p["part"]: p for p in result["parts"]}
    assert set(parts) == PARTS and all(p["ok"] for p in parts.values())
    # the check is real: float32 differs from float64, by far less than the tolerance
    for name in ("temporal_pls", "tvsd_pls", "tvsd_ridge", "li2026_pls", "li2026_ridge"):
        assert 0 < parts[name]["r_rel_diff_vs_cpu64"] <= 1e-4
    assert parts["extract_convrnn_rgc_64px"]["extract_img_steps_per_s"] > 0
