"""``neurofit demo``: feedforward versus recurrent on the embedded synthetic-ventral dataset, end to end.

The dataset is generated (seeded, no download); the shipped trained checkpoints of a feedforward and a
recurrent zoo model are scored on ``synthetic-ventral-v4-temporal`` and ``synthetic-ventral-it-temporal``;
the recurrent model (B) is compared with the feedforward reference (A) per region and 10 ms bin
(:mod:`neurofit.stats.compare`: the median paired per-site difference B - A with a bootstrap over stimuli and
sites, Benjamini-Hochberg across the bins of both benchmarks); and the verdict says where the recurrent model
is better, where it is worse and where no difference is detectable, with the metric named and the bins that
could not be tested (ceiling not reliable) listed. Whatever the checkpoints show is reported.
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
        ``scores`` ({(benchmark, role): Dataset}), ``comparisons`` ({benchmark: Dataset}), ``verdict``
        ({benchmark: {region: {outcome: time ranges}}}, outcomes ``better``, ``worse``, ``no_difference``,
        ``unreliable``, ``not_driven``; B is the recurrent model), ``files`` (written paths).

    Example
    -------
    >>> result = demo("demo-out")  # doctest: +SKIP
    >>> result["verdict"]["synthetic-ventral-it-temporal"]["IT"]["better"]  # doctest: +SKIP
    """

    from neurofit.scoreset import metric_line, summary_table, write_scoreset
    from neurofit.scoring.benchmark import load_benchmark
    from neurofit.scoring.data import load_benchmark_data
    from neurofit.scoring.score import score
    from neurofit.stats.compare import (
        compare_many,
        comparison_table,
        stack_comparisons,
        verdict_ranges,
        verdict_text,
    )

    stream = stream or sys.stdout
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"neurofit demo: writing ScoreSets and comparisons to {out_dir.resolve()}", file=stream)
    started = time.monotonic()
    models = demo_models()
    for role, name, ckpt in models:
        note = f"shipped checkpoint {Path(ckpt).name}" if ckpt else "UNTRAINED (no shipped checkpoint found)"
        print(f"{role}: {name} ({note})", file=stream)
    data_cache: dict[str, Any] = {}
    scores: dict[tuple[str, str], Any] = {}
    comparisons: dict[str, Any] = {}
    files: list[Path] = []
    for bench_id in BENCHMARKS:
        bench = load_benchmark(bench_id)
        if n_bootstrap is not None:
            bench = bench.replace(aggregate={"n_bootstrap": int(n_bootstrap)})
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
            print(metric_line(s), file=stream)
            print(summary_table(s), file=stream)
    # one family: every tested bin of both benchmarks, so the marks of V4 and IT are corrected together
    pairs = [(scores[(b, "feedforward")], scores[(b, "recurrent")]) for b in BENCHMARKS]
    results = compare_many(pairs, n_boot=1000 if n_bootstrap is None else int(n_bootstrap))
    names = {role: f"{name} ({role})" for role, name, _ in models}
    for bench_id, (a, b), res in zip(BENCHMARKS, pairs, results):
        result = stack_comparisons([res], [a], [b], [names["feedforward"]], [names["recurrent"]])
        cmp_path = out_dir / f"compare-{bench_id}.nc"
        write_scoreset(result, cmp_path)
        comparisons[bench_id] = result
        files.append(cmp_path)
        print(f"\n{names['recurrent']} (B) minus {names['feedforward']} (A, reference) on {bench_id}:", file=stream)
        print(comparison_table(result), file=stream)
    print("\nverdict: recurrent (B) vs feedforward (A), "
          f"{comparisons[BENCHMARKS[0]].attrs.get('variable', 'ceiled')} score per site, median paired difference, "
          "Benjamini-Hochberg FDR 0.05 across the bins of both benchmarks:", file=stream)
    verdicts = {}
    for bench_id in BENCHMARKS:
        verdicts[bench_id] = verdict_ranges(comparisons[bench_id])
        for line in verdict_text(comparisons[bench_id])[1:]:
            print(f"  {bench_id}: {line.strip()}", file=stream)
    if report_dir is not None:
        from neurofit.report import report

        index = report([str(p) for p in files if not p.name.startswith("compare-")], str(report_dir))
        print(f"\nreport: {index}", file=stream)
    print(f"\ndone in {time.monotonic() - started:.0f} s; ScoreSets and comparisons in {out_dir.resolve()}",
          file=stream)
    return {"scores": scores, "comparisons": comparisons, "verdict": verdicts, "files": files}
