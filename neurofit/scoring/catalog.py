"""The benchmarks neurofit knows, as a table (the Python twin of ``neurofit benchmarks list``)."""

from __future__ import annotations

from neurofit.errors import NeurofitError


def benchmark_catalog() -> list[dict[str, str]]:
    """One row per benchmark found (:func:`neurofit.scoring.benchmark.list_benchmarks`), in id order.

    Columns: ``id``, ``version``, ``dataset`` (or the pooled sessions), ``regions``, ``bins`` (count and span),
    ``metric``, ``ceiling`` (``none: r only`` where the data have no trial repeats) and ``file``. A file that
    does not parse is listed with its error in ``note``.

    Example
    -------
    >>> row = next(r for r in benchmark_catalog() if r["id"] == "synthetic-ventral-it-temporal")
    >>> row["regions"], row["bins"], row["ceiling"]
    ('IT', '25 bins, 0-250 ms', 'split_half')
    """
    from neurofit.scoring.benchmark import list_benchmarks, load_benchmark

    rows = []
    for bench_id, path in sorted(list_benchmarks().items()):
        try:
            bench = load_benchmark(path)
        except NeurofitError as err:
            rows.append({"id": bench_id, "version": "", "dataset": "", "regions": "", "bins": "", "metric": "",
                         "ceiling": "", "file": str(path), "note": f"invalid: {err}"})
            continue
        starts = [lo for lo, _ in bench.time_bins]
        ends = [hi for _, hi in bench.time_bins]
        span = f"{min(starts):g}-{max(ends):g} ms"
        metric = f"pls{bench.regression.n_components}" if bench.regression.metric == "pls" else bench.regression.metric
        rows.append({
            "id": bench_id,
            "version": str(bench.version),
            "dataset": f"{len(bench.datasets)} sessions pooled" if bench.datasets else bench.dataset,
            "regions": ", ".join(bench.regions),
            "bins": f"{len(bench.time_bins)} bin{'s' if len(bench.time_bins) > 1 else ''}, {span}",
            "metric": metric,
            "ceiling": "none: r only" if bench.ceiling.method == "none" else bench.ceiling.method,
            "file": str(path),
            "note": "",
        })
    return rows


def format_catalog(rows: list[dict[str, str]]) -> str:
    """The catalog as aligned text (what ``neurofit benchmarks list`` prints).

    Example
    -------
    >>> format_catalog(benchmark_catalog()).splitlines()[0].split()[:3]
    ['id', 'version', 'dataset']
    """
    columns = ("id", "version", "dataset", "regions", "bins", "metric", "ceiling")
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) if rows else len(c) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    for row in rows:
        if row["note"]:
            lines.append(f"{row['id'].ljust(widths['id'])}  {row['note']}")
            continue
        lines.append("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    if not rows:
        lines.append("(no benchmark files found: see $NEUROFIT_BENCHMARKS)")
    return "\n".join(lines)
