"""``neurofit report``: ScoreSets -> figures (PDF, SVG, 300-dpi PNG) and one offline HTML page.

The page holds the figures (PNG files beside it, with links to the vector files), a table of per-region
scores with CIs, the comparisons between models, a methods paragraph generated from the ScoreSets'
attrs and the full provenance of every ScoreSet. It loads nothing from the network (no CDN, no script)
and contains no time of generation, so regenerating it from the same ScoreSets gives the same files.
"""

from __future__ import annotations

import hashlib
import html
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from neurofit import __version__
from neurofit.atomic import atomic_path
from neurofit.data.io import read_dataset
from neurofit.errors import NeurofitError
from neurofit.report import figures
from neurofit.report.style import close, save_figure
from neurofit.stats.compare import compare_many
from neurofit.stats.multiple import METHODS
from neurofit.stats.paired import PAIRED_T, WILCOXON
from neurofit.stats.scoreset import label, region_aggregate, require, site_regions, time_bins, window_mask
from neurofit.stats.scoreset import regions as region_order

_REQUIRED = ("ceiled", "r", "ceiling", "neuroid_id", "region", "time_bin_start", "time_bin_end")

METRICS = {
    "pls": "partial least squares regression (PLS)",
    "ridge": "ridge regression with a per-site penalty chosen inside the training folds",
}
SPLITS = {
    "kfold": "K-fold cross-validation over stimuli (every stimulus predicted once; stratified by object when "
             "object labels exist)",
    "brainscore": "Brain-Score's 10 stratified shuffle splits over stimuli (train 0.9, stratified by object)",
}
TEMPORAL = {
    "per_bin": "one mapping fitted for each time bin",
    "span_time": "one mapping shared by all time bins (bins stacked as samples)",
}
NORMALISATIONS = {
    "r2_over_ceiling": "r²/ceiling (explained over explainable variance)",
    "legacy": "(r/ceiling)² (the legacy rule)",
    "feve": "the fraction of explainable variance explained (FEVe)",
}
CEILINGS = {
    "split_half": "the split-half reliability over repetitions (Pearson r of the half means over random halvings), "
                  "Spearman-Brown corrected",
    "brainscore": "Brain-Score's split-half reliability over repetitions (shuffle halvings of the repetitions, "
                  "Spearman-Brown corrected; median over sites, mean over halvings)",
}
MAPPINGS = {
    "one_to_one": "one model timestep per time bin",
    "table": "a table of timesteps per bin, nearest start",
    "portion": "overlap-weighted timesteps",
    "constant": "the feedforward response in every bin",
    "graded": "successive feedforward layers to successive bins",
}


@dataclass
class _Figure:
    title: str
    stem: str
    caption: str
    width_in: float
    files: dict[str, Path] = field(default_factory=dict)
    skipped: str = ""


def report(
    scoresets: Sequence[xr.Dataset | str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    reference: str | None = None,
    window: tuple[float, float] | None = None,
    method: str = "fdr_bh",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    title: str = "neurofit report",
) -> Path:
    """Write figures and ``index.html`` for ScoreSets into ``out_dir``; return the path of ``index.html``.

    Parameters
    ----------
    scoresets : ScoreSets or paths to ScoreSet NetCDF files (several models and benchmarks may be mixed)
    out_dir : folder to write into (created); figures go to ``out_dir/figures``
    reference : ``model_id`` every other model is compared with, on each benchmark both were scored on
        (default: the first model given, e.g. the feedforward baseline)
    window : ``(start_ms, end_ms)`` for the table and the per-site scatter (default: the ScoreSet attr
        ``window_ms`` when present, else all bins)
    method, alpha : correction (``"fdr_bh"`` or ``"holm"``, ...) and level for the comparisons; the family
        is every region x bin x comparison in the report
    n_boot, seed : bootstrap draws and seed of the CIs of the differences
    title : heading of the page

    Example
    -------
    >>> index = report(["ff.nc", "rec.nc"], "reports/demo")  # doctest: +SKIP
    >>> index.name  # doctest: +SKIP
    'index.html'
    """
    if method not in METHODS:
        raise NeurofitError(f"unknown correction {method!r}: use one of {sorted(METHODS)}")
    sets, sources = _load(scoresets)
    out = Path(out_dir)
    fig_dir = out / "figures"
    window = window if window is not None else _attr_window(sets)
    pairs, pair_note = _pairs(sets, reference)
    comparisons: list[xr.Dataset] = []
    if pairs:
        try:
            comparisons = compare_many([(b, a) for a, b in pairs], method=method, alpha=alpha, n_boot=n_boot,
                                       seed=seed)
        except NeurofitError as err:
            pairs, pair_note = [], f"Model comparison: skipped ({err})."
    planned: list[tuple[_Figure, Callable[[], Figure]]] = []
    planned.append((_Figure("Predictivity over time", "predictivity_over_time",
                            "Top: median over sites of the ceiled score per time bin with its bootstrap CI. Bottom: "
                            "median raw Pearson r of each model and the noise ceiling (median and interquartile "
                            "range over sites). Dotted: stimulus onset (and offset, shaded between, when recorded).",
                            7.0),
                    lambda: figures.predictivity_over_time(sets)))
    diff_caption = (f"Difference of median ceiled scores per bin (shaded: {100 * 0.95:g}% CI, sites resampled). "
                    f"Stars: {METHODS[method]} q < {alpha:g} on Wilcoxon signed-rank tests over sites, "
                    f"across all {_family_size(comparisons)} region x bin x comparison tests.")
    planned.append((_Figure("Model comparison per time bin", "difference_per_bin", diff_caption, 7.0,
                            skipped=pair_note),
                    lambda: figures.difference_per_bin([b for _, b in pairs], [a for a, _ in pairs],
                                                       comparisons=comparisons)))
    by_model = _group_pairs(pairs)
    for other, group in by_model.items():
        ref_name = label(group[0][0])
        planned.append((_Figure(f"Per-site scores: {other} vs {ref_name}", f"site_scatter_{_slug(other)}",
                                f"Each point is one site, its ceiled score averaged over "
                                f"{figures._window_text(window)}; dashed: identity.", 3.5),
                        lambda g=group: figures.site_scatter([b for _, b in g], [a for a, _ in g], window=window)))
    for i, ds in enumerate(sets):
        name = f"{label(ds)} on {ds.attrs.get('benchmark', f'ScoreSet {i + 1}')}"
        fig = _Figure(f"Layer x timestep scores: {name}", f"layer_step_{i + 1}_{_slug(label(ds))}",
                      f"Ceiled score of every layer and timestep, averaged over {figures._window_text(window)}.",
                      7.0)
        if "grid_ceiled" not in ds.variables:
            fig.skipped = (f"{name}: no 'grid_ceiled' in this ScoreSet (score all layers x timesteps to get the "
                           "grid); figure skipped.")
        planned.append((fig, lambda d=ds: figures.layer_step_heatmap(d, window=window)))
    planned.append((_Figure("Noise ceilings", "ceiling_distributions",
                            "Distribution over sites of the split-half noise ceiling per time bin (boxes: "
                            "quartiles; whiskers: 1.5 IQR).", 7.0),
                    lambda: figures.ceiling_distributions(sets)))
    planned.append((_Figure("Peak time per site", "peak_time",
                            "Histogram over sites of the bin in which each site's ceiled score peaks, among the bins "
                            "where its noise ceiling is at least 0.1 (a ratio over a tiny ceiling is noise).", 7.0),
                    lambda: figures.peak_time_histogram(sets)))
    for fig_info, build in planned:
        if fig_info.skipped:
            continue
        try:
            fig = build()
        except NeurofitError as err:
            fig_info.skipped = f"{fig_info.title}: skipped ({err})."
            continue
        try:
            fig_info.files = save_figure(fig, fig_dir / fig_info.stem)
        finally:
            close(fig)
    page = _page(title, sets, sources, [f for f, _ in planned], comparisons, window, method, alpha, n_boot, seed)
    index = out / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return index


# --- inputs --------------------------------------------------------------------------------------------------


def _load(scoresets) -> tuple[list[xr.Dataset], list[str]]:
    if isinstance(scoresets, (xr.Dataset, str, os.PathLike)):
        scoresets = [scoresets]
    sets, sources = [], []
    for item in scoresets:
        if isinstance(item, xr.Dataset):
            ds, source = item, "(in memory)"
        else:
            path = Path(item)
            ds = read_dataset(path)
            source = f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()})"
        require(ds, _REQUIRED, f"the report ({source})")
        sets.append(ds)
        sources.append(source)
    if not sets:
        raise NeurofitError("neurofit report needs at least one ScoreSet")
    return sets, sources


def _attr_window(sets: list[xr.Dataset]) -> tuple[float, float] | None:
    value = sets[0].attrs.get("window_ms")
    if value is None:
        return None
    value = np.asarray(value, dtype=float).ravel()
    return (float(value[0]), float(value[1])) if value.size == 2 else None


def _pairs(sets: list[xr.Dataset], reference: str | None) -> tuple[list[tuple[xr.Dataset, xr.Dataset]], str]:
    """(reference, other) ScoreSets scored on the same benchmark; a note when there is nothing to compare."""
    models = list(dict.fromkeys(label(ds) for ds in sets))
    if reference is not None and reference not in models:
        raise NeurofitError(f"reference model {reference!r} is not among the ScoreSets' model_id values {models}")
    ref = reference or models[0]
    pairs = []
    for ref_ds in (ds for ds in sets if label(ds) == ref):
        bench = ref_ds.attrs.get("benchmark")
        for ds in sets:
            if label(ds) != ref and ds.attrs.get("benchmark") == bench:
                pairs.append((ref_ds, ds))
    note = "" if pairs else ("Model comparison: skipped (it needs at least two models scored on the same "
                             "benchmark).")
    return pairs, note


def _group_pairs(pairs):
    groups: dict[str, list[tuple[xr.Dataset, xr.Dataset]]] = {}
    for ref_ds, ds in pairs:
        groups.setdefault(label(ds), []).append((ref_ds, ds))
    return groups


def _family_size(comparisons: list[xr.Dataset]) -> int:
    return int(sum(np.isfinite(c["wilcoxon_p"].values).sum() for c in comparisons))


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:60]


# --- tables --------------------------------------------------------------------------------------------------


def score_table(sets: list[xr.Dataset], window: tuple[float, float] | None) -> list[dict[str, str]]:
    """Rows of the per-region score table: window means of the per-bin medians and CI bounds.

    Example
    -------
    >>> rows = score_table([scoreset], (70, 170))  # doctest: +SKIP
    >>> rows[0]["region"]  # doctest: +SKIP
    'V4'
    """
    rows = []
    for ds in sets:
        mask = window_mask(ds, window)
        for region in region_order(ds):
            sites = site_regions(ds) == region
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                if "median_ceiled" in ds.variables:
                    med = float(np.nanmean(region_aggregate(ds, "median_ceiled", region)[mask]))
                else:
                    med = float(np.nanmean(np.nanmedian(ds["ceiled"].transpose("neuroid", "time_bin")
                                                        .values[sites][:, mask], axis=0)))
                ci = _ci_text(ds, region, mask, "median_ceiled_low", "median_ceiled_high")
                ci_sites = _ci_text(ds, region, mask, "median_ceiled_sites_low", "median_ceiled_sites_high")
                r = float(np.nanmean(np.nanmedian(ds["r"].transpose("neuroid", "time_bin").values[sites][:, mask],
                                                  axis=0)))
                ceiling = float(np.nanmean(np.nanmedian(ds["ceiling"].transpose("neuroid", "time_bin")
                                                        .values[sites][:, mask], axis=0)))
            rows.append({
                "model": label(ds),
                "benchmark": str(ds.attrs.get("benchmark", "")),
                "region": region,
                "sites": str(int(sites.sum())),
                "ceiled": f"{med:.3f}",
                "ci_stimuli": ci,
                "ci_sites": ci_sites,
                "r": f"{r:.3f}",
                "ceiling": f"{ceiling:.3f}",
            })
    return rows


def _ci_text(ds: xr.Dataset, region: str, mask: np.ndarray, low: str, high: str) -> str:
    if low not in ds.variables or high not in ds.variables:
        return "—"
    lo = float(np.nanmean(region_aggregate(ds, low, region)[mask]))
    hi = float(np.nanmean(region_aggregate(ds, high, region)[mask]))
    return f"[{lo:.3f}, {hi:.3f}]"


def comparison_table(comparisons: list[xr.Dataset]) -> list[dict[str, str]]:
    """Rows per comparison and region: bins significant after correction, as time ranges."""
    rows = []
    for c in comparisons:
        start, end = c["time_bin_start"].values, c["time_bin_end"].values
        for region in c["region"].values:
            sel = c.sel(region=region)
            significant = sel["significant"].values.astype(bool)
            better = significant & (sel["median_difference"].values > 0)
            worse = significant & (sel["median_difference"].values < 0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                mean_diff = float(np.nanmean(sel["median_difference"].values))
            rows.append({
                "comparison": f"{c.attrs['model_a']} − {c.attrs['model_b']}",
                "benchmark": c.attrs.get("benchmark_a", ""),
                "region": str(region),
                "sites": str(int(np.nanmax(sel["n_sites"].values))),
                "mean_difference": f"{mean_diff:+.3f}",
                "better": _ranges(start, end, better),
                "worse": _ranges(start, end, worse),
            })
    return rows


def _ranges(start: np.ndarray, end: np.ndarray, mask: np.ndarray) -> str:
    """Contiguous runs of masked bins as 'a–b ms' (bins that touch are merged)."""
    runs: list[list[float]] = []
    for s, e, m in zip(start, end, mask):
        if not m:
            continue
        if runs and np.isclose(runs[-1][1], s):
            runs[-1][1] = e
        else:
            runs.append([s, e])
    return ", ".join(f"{s:g}–{e:g} ms" for s, e in runs) or "none"


# --- methods -------------------------------------------------------------------------------------------------


def methods_text(
    sets: list[xr.Dataset],
    comparisons: list[xr.Dataset],
    method: str = "fdr_bh",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[str]:
    """The methods paragraphs, generated from the ScoreSets' attrs (values that differ are all listed).

    Example
    -------
    >>> methods_text([scoreset], [])[0]  # doctest: +SKIP
    'Scores were computed with neurofit 0.1.0 ...'
    """
    def values(key: str, names: dict[str, str] | Callable[[str], str] | None = None) -> str:
        found = list(dict.fromkeys(str(ds.attrs[key]) for ds in sets if key in ds.attrs and ds.attrs[key] != ""))
        if not found:
            return f"(not recorded: attr '{key}' missing)"
        if names is None:
            return "; ".join(found)
        describe = names if callable(names) else (lambda v: names.get(v, v))
        return "; ".join(f"{describe(v)} [{v}]" for v in found)

    benchmarks = list(dict.fromkeys(
        f"{ds.attrs.get('benchmark', '?')} (version {ds.attrs.get('benchmark_version', '?')})" for ds in sets
    ))
    models = list(dict.fromkeys(label(ds) for ds in sets))
    start, end = zip(*(time_bins(ds) for ds in sets))
    widths = sorted({float(w) for s, e in zip(start, end) for w in np.round(e - s, 6)})
    folds = values("n_splits") if _has(sets, "n_splits") else ""
    ceiling_key = next((k for k in ("ceiling_method", "ceiling") if _has(sets, k)), None)
    ceiling = values(ceiling_key, CEILINGS) if ceiling_key else _ceiling(sets)
    uncertainty = (f"Their confidence intervals: {values('bootstrap')}." if _has(sets, "bootstrap") else
                   "Their confidence intervals come from bootstrap resampling of stimuli and, separately, of sites, "
                   "as computed by the scoring step.")
    paragraphs = [
        f"Scores were computed with neurofit {values('neurofit_version')} for the model(s) {', '.join(models)} on "
        f"the benchmark(s) {', '.join(benchmarks)}, in time bins of {', '.join(f'{w:g}' for w in widths)} ms "
        f"after stimulus onset. Each site's repetition-averaged response was predicted from model features by "
        f"{values('metric', _metric_text)}, with {values('temporal_mode', TEMPORAL)}, and scored as the Pearson r "
        f"between held-out predictions and responses under {values('split_scheme', SPLITS)}"
        f"{f' ({folds} splits' if folds else ' ('}seed {values('seed')}). Model timesteps were assigned to time "
        f"bins by the mapping policy {values('mapping_policy', MAPPINGS)}." + _commitment_text(sets),
        f"The noise ceiling of each site and bin is {ceiling}. Ceiled scores are "
        f"{values('normalisation', NORMALISATIONS)}. Per-region values are medians over sites. {uncertainty}",
    ]
    if comparisons:
        n_tests = _family_size(comparisons)
        paragraphs.append(
            f"Models were compared with the reference {comparisons[0].attrs['model_b']} site by site in every "
            f"region and time bin on the sites scored for both: {WILCOXON}, and as a check a {PAIRED_T}. The "
            f"Wilcoxon p values of all {n_tests} tests (regions x bins x comparisons) were corrected together "
            f"by {METHODS[method]} (statsmodels multipletests, method '{method}') at alpha = {alpha:g}. The "
            f"95% confidence interval of each difference of medians is a percentile interval from {n_boot} "
            f"paired bootstrap draws of the sites (seed {seed}). Sites with an undefined score in either model "
            f"were dropped pairwise."
        )
    else:
        paragraphs.append("No two models were scored on the same benchmark, so no statistical comparison was made.")
    return paragraphs


def _metric_text(value: str) -> str:
    """``pls25-exact`` -> 'PLS regression with 25 components (exact)'; other values by :data:`METRICS`."""
    if value.startswith("pls"):
        head, _, algorithm = value.partition("-")
        n = head[3:]
        parts = ["partial least squares regression (PLS"]
        parts.append(f", {n} components" if n.isdigit() else "")
        parts.append(f", {algorithm} components)" if algorithm else ")")
        return "".join(parts)
    return METRICS.get(value, value)


def _commitment_text(sets: list[xr.Dataset]) -> str:
    committed = []
    for ds in sets:
        layers = ds.attrs.get("committed_layers")
        if isinstance(layers, dict) and layers:
            offsets = ds.attrs.get("committed_offsets_ms") or {}
            where = ", ".join(f"{region}: {layer}" + (f" ({float(offsets[region]):+g} ms)" if region in offsets else "")
                              for region, layer in layers.items())
            committed.append(f"{label(ds)} on {ds.attrs.get('benchmark', '?')} ({where})")
    if not committed:
        return ""
    how = next((str(ds.attrs["commitment"]) for ds in sets if ds.attrs.get("commitment")), "")
    return (f" Layers were committed to regions {'(' + how + ')' if how else 'on held-out stimuli'}: "
            + "; ".join(committed) + ".")


def _has(sets: list[xr.Dataset], key: str) -> bool:
    return any(key in ds.attrs for ds in sets)


def _ceiling(sets: list[xr.Dataset]) -> str:
    if all(ds.attrs.get("split_scheme") == "brainscore" for ds in sets):
        return ("Brain-Score's split-half reliability over repetitions (10 shuffle halvings, seed 1), Spearman-Brown "
                "corrected (the ScoreSet records no 'ceiling' attr; this is the rule of the 'brainscore' scheme)")
    return ("the split-half reliability over repetitions (Pearson r of half means over 10 random halvings), "
            "Spearman-Brown corrected (the ScoreSet records no 'ceiling' attr; this is neurofit's rule)")


# --- page ----------------------------------------------------------------------------------------------------

_CSS = """
body { font-family: "DejaVu Sans", Arial, Helvetica, sans-serif; margin: 2em auto; max-width: 60em;
       padding: 0 1em; color: #1a1a1a; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.05em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: 0.9em; color: #333; margin-top: 0.4em; }
.note { color: #7a4b00; background: #fff6e0; padding: 0.4em 0.7em; border-left: 3px solid #E69F00; }
code { font-size: 0.9em; word-break: break-all; }
"""


def _page(title, sets, sources, figs, comparisons, window, method, alpha, n_boot, seed) -> str:
    esc = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{len(sets)} ScoreSet(s): "
        + ", ".join(f"<b>{esc(label(ds))}</b> on {esc(str(ds.attrs.get('benchmark', '?')))}" for ds in sets)
        + f". Generated by neurofit {esc(__version__)}.</p>",
        "<h2>Scores per region</h2>",
        f"<p>Means over the bins of {esc(figures._window_text(window))} of the per-bin median ceiled score and of "
        "its CI bounds (bootstrap over stimuli, and over sites), with the median raw r and median noise "
        "ceiling.</p>",
        _table(
            ["Model", "Benchmark", "Region", "Sites", "Median ceiled score", "CI (stimuli)", "CI (sites)",
             "Median r", "Median ceiling"],
            [[row[k] for k in ("model", "benchmark", "region", "sites", "ceiled", "ci_stimuli", "ci_sites", "r",
                               "ceiling")] for row in score_table(sets, window)],
            numeric={3, 4, 5, 6, 7, 8},
            table_id="scores",
        ),
    ]
    if comparisons:
        parts += [
            "<h2>Comparisons</h2>",
            f"<p>Time bins where the difference of medians is significant ({esc(METHODS[method])}, q &lt; "
            f"{alpha:g}, Wilcoxon signed-rank over sites).</p>",
            _table(["Comparison", "Benchmark", "Region", "Sites", "Mean difference (all bins)", "Significantly higher",
                    "Significantly lower"],
                   [[row[k] for k in ("comparison", "benchmark", "region", "sites", "mean_difference", "better",
                                      "worse")] for row in comparison_table(comparisons)],
                   numeric={3, 4}, table_id="comparisons"),
        ]
    parts.append("<h2>Figures</h2>")
    for fig in figs:
        if fig.skipped:
            parts.append(f'<p class="note">{esc(fig.skipped)}</p>')
            continue
        png = fig.files["png"].name
        links = " · ".join(f'<a href="figures/{esc(p.name)}">{fmt.upper()}</a>' for fmt, p in fig.files.items())
        parts += [
            "<figure>",
            f"<h3>{esc(fig.title)}</h3>",
            f'<img src="figures/{esc(png)}" alt="{esc(fig.title)}" width="{int(fig.width_in * 96)}">',
            f"<figcaption>{esc(fig.caption)} Files: {links}.</figcaption>",
            "</figure>",
        ]
    parts.append("<h2>Methods</h2>")
    parts += [f"<p>{esc(p)}</p>" for p in methods_text(sets, comparisons, method, alpha, n_boot, seed)]
    parts.append("<h2>Provenance</h2>")
    for i, (ds, source) in enumerate(zip(sets, sources)):
        parts.append(f"<h3>ScoreSet {i + 1}: {esc(label(ds))} — {esc(source)}</h3>")
        rows = [[esc(str(k)), f"<code>{esc(_attr_text(v))}</code>"] for k, v in ds.attrs.items()]
        parts.append(_table(["Attribute", "Value"], rows, escape=False, table_id=f"provenance-{i + 1}"))
        dims = ", ".join(f"{esc(str(k))}: {v}" for k, v in ds.sizes.items())
        parts.append(f"<p>Dimensions: {dims}. Variables: {esc(', '.join(sorted(map(str, ds.data_vars))))}.</p>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _attr_text(value) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, separator=", ")
    return str(value)


def _table(header: list[str], rows: list[list[str]], numeric: set[int] | None = None, escape: bool = True,
           table_id: str = "") -> str:
    numeric = numeric or set()
    esc = html.escape if escape else (lambda s: s)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{esc(c)}</td>' if j in numeric else f"<td>{esc(c)}</td>"
                         for j, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
