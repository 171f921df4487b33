"""``neurofit demo``: feedforward versus recurrent on the embedded synthetic-ventral dataset, end to end.

The dataset is generated (seeded, no download); the shipped trained checkpoints of a feedforward and a
recurrent zoo model are scored on ``synthetic-ventral-v4-temporal`` and ``synthetic-ventral-it-temporal``;
the two are compared per region and 10 ms bin (paired tests over sites, Benjamini-Hochberg across bins);
and the bins where the recurrent model is significantly better are printed, with the difference of medians
and its CI. Whatever the checkpoints show is reported, including "nowhere".
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from neurofit.errors import NeurofitError

BENCHMARKS = ("synthetic-ventral-v4-temporal", "synthetic-ventral-it-temporal")
# (role, zoo names in order of preference): the first with a shipped checkpoint is used
ROLES = (("feedforward", ("deep_ff", "cornet_z")), ("recurrent", ("cornet_rt", "bl", "convrnn_rgc")))


def demo_models() -> list[tuple[str, str, str | None]]:
    """``(role, zoo name, shipped checkpoint path or None)`` for the feedforward and the recurrent model.

    Without shipped checkpoints the zoo models are used untrained (and the demo says so).

    Example
    -------
    >>> [role for role, _, _ in demo_models()]
    ['feedforward', 'recurrent']
    """
    try:
        from neurofit.models.train import shipped_checkpoint
    except ImportError:  # pragma: no cover - training ships with neurofit
        shipped_checkpoint = None
    out = []
    for role, names in ROLES:
        chosen: tuple[str, str, str | None] | None = None
        for name in names:
            if shipped_checkpoint is None:
                break
            try:
                chosen = (role, name, str(shipped_checkpoint(name)))
                break
            except NeurofitError:
                continue
        out.append(chosen or (role, names[0], None))
    return out


def demo(
    out_dir: str | os.PathLike[str] = "neurofit-demo",
    report_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool | None = None,
    stream: TextIO | None = None,
    n_bootstrap: int | None = None,
    **score_options: Any,
) -> dict[str, Any]:
    """Run the demo; return the ScoreSets, comparisons and the bins where recurrence helps.

    Parameters
    ----------
    out_dir : path
        Where the four ScoreSets (``<model>-<benchmark>.nc``) and two comparisons are written.
    report_dir : path, optional
        Also write the HTML report (:func:`neurofit.report.report`) there.
    stream : text stream, optional
        Where the tables go (default stdout).
    n_bootstrap : int, optional
        Override the benchmarks' bootstrap draws (fewer draws: faster, coarser CIs).

    Returns
    -------
    dict
        ``scores`` ({(benchmark, role): Dataset}), ``comparisons`` ({benchmark: Dataset}), ``helps``
        ({benchmark: [(region, start_ms, end_ms, difference)]}), ``files`` (written paths).

    Example
    -------
    >>> result = demo("demo-out")  # doctest: +SKIP
    >>> result["helps"]["synthetic-ventral-it-temporal"]  # doctest: +SKIP
    """
    import dataclasses

    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.compare import compare, comparison_table, recurrence_helps
    from neurofit.scoring.score import load_benchmark_data, score, summary_table

    stream = stream or sys.stdout
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    models = demo_models()
    for role, name, ckpt in models:
        note = f"shipped checkpoint {Path(ckpt).name}" if ckpt else "UNTRAINED (no shipped checkpoint found)"
        print(f"{role}: {name} ({note})", file=stream)
    data_cache: dict[str, Any] = {}
    scores: dict[tuple[str, str], Any] = {}
    comparisons: dict[str, Any] = {}
    helps: dict[str, list[tuple[str, float, float, float]]] = {}
    files: list[Path] = []
    for bench_id in BENCHMARKS:
        bench = load_benchmark(bench_id)
        if n_bootstrap is not None:
            bench = dataclasses.replace(bench, n_bootstrap=int(n_bootstrap))
        key = repr(sorted(bench.dataset_options.items()))
        if key not in data_cache:
            data_cache[key] = load_benchmark_data(bench)
        for role, name, ckpt in models:
            path = out_dir / f"{name}-{bench_id}.nc"
            model = ckpt if ckpt else name
            s = score(model, bench, data=data_cache[key], out=path, progress=progress,
                      model_id=f"{name} ({role}{'' if ckpt else ', untrained'})", **score_options)
            scores[(bench_id, role)] = s
            files.append(path)
            print(f"\n{s.attrs['model_id']} on {bench_id}: committed layer {s.attrs['committed_layers']}, "
                  f"offset {s.attrs['committed_offsets_ms']} ms", file=stream)
            print(summary_table(s), file=stream)
        cmp_path = out_dir / f"compare-{bench_id}.nc"
        result = compare(scores[(bench_id, "feedforward")], scores[(bench_id, "recurrent")], out=cmp_path)
        comparisons[bench_id] = result
        files.append(cmp_path)
        helps[bench_id] = recurrence_helps(result)
        print(f"\nrecurrent minus feedforward on {bench_id}:", file=stream)
        print(comparison_table(result), file=stream)
    print("\nwhere recurrence helps (recurrent significantly better after Benjamini-Hochberg FDR across bins):",
          file=stream)
    for bench_id in BENCHMARKS:
        cmp = comparisons[bench_id]
        if not helps[bench_id]:
            print(f"  {bench_id}: no bin", file=stream)
            continue
        for region, start, end, diff in helps[bench_id]:
            k = [str(v) for v in cmp["region"].values].index(region)
            b = [float(v) for v in cmp["time_bin_start"].values].index(start)
            cell = cmp.isel(comparison=0, region=k, time_bin=b)
            print(f"  {bench_id} {region} {start:g}-{end:g} ms: +{diff:.3f} median ceiled "
                  f"[{float(cell.ci_low):.3f}, {float(cell.ci_high):.3f}], q = {float(cell.q):.2g}", file=stream)
    if report_dir is not None:
        from neurofit.report import report

        index = report([str(p) for p in files if not p.name.startswith("compare-")], str(report_dir))
        print(f"\nreport: {index}", file=stream)
    print(f"\ndone in {time.monotonic() - started:.0f} s; ScoreSets in {out_dir}", file=stream)
    return {"scores": scores, "comparisons": comparisons, "helps": helps, "files": files}
