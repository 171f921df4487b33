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
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from neurofit import __version__
from neurofit.atomic import atomic_path
from neurofit.data.io import read_dataset
from neurofit.errors import NeurofitError
from neurofit.report import figures
from neurofit.report.figures import metric_of
from neurofit.report.style import close, save_figure
from neurofit.scoreset import (
    bin_reliability,
    common_bins,
    default_variable,
    is_scoreset,
    label,
    ranges,
    require,
    site_regions,
    site_values,
    summarise,
    time_bins,
    window_mask,
)
from neurofit.scoreset import regions as region_order
from neurofit.stats.bootstrap import quiet_nan
from neurofit.stats.compare import compare_many, verdict_ranges
from neurofit.stats.multiple import METHODS

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
    stream: TextIO | None = None,
) -> Path:
    """Write figures and ``index.html`` for ScoreSets into ``out_dir``; return the path of ``index.html``.

    Parameters
    ----------
    scoresets : ScoreSets or paths to ScoreSet NetCDF files (several models and benchmarks may be mixed); a
        file that is not a ScoreSet (e.g. a comparison written by ``neurofit compare``) is skipped with a note
    out_dir : folder to write into (created); figures go to ``out_dir/figures``
    reference : ``model_id`` every other model is compared with, on each benchmark both were scored on
        (default: the first model given, e.g. the feedforward baseline)
    window : ``(start_ms, end_ms)`` for the table and the per-site scatter (default: the ScoreSet attr
        ``window_ms`` when present, else all bins)
    method, alpha : correction (``"fdr_bh"`` or ``"holm"``, ...) and level for the comparisons; the family
        is every region x bin x comparison in the report
    n_boot, seed : bootstrap draws and seed of the comparisons and of the table's CIs
    title : heading of the page
    stream : where the one-line notes about skipped files go (default stderr)

    Example
    -------
    >>> index = report(["ff.nc", "rec.nc"], "reports/demo")  # doctest: +SKIP
    >>> index.name  # doctest: +SKIP
    'index.html'
    """
    if method not in METHODS:
        raise NeurofitError(f"unknown correction {method!r}: use one of {sorted(METHODS)}")
    sets, sources, skipped = _load(scoresets, stream)
    out = Path(out_dir)
    fig_dir = out / "figures"
    window = window if window is not None else _attr_window(sets)
    pairs, pair_note = _pairs(sets, reference)
    comparisons: list[xr.Dataset] = []
    if pairs:
        try:
            comparisons = compare_many(pairs, method=method, alpha=alpha, n_boot=n_boot, seed=seed)
        except NeurofitError as err:
            pairs, pair_note = [], f"Model comparison: skipped ({err})."
    # the regression figures read per-site regression scores; metrics beyond regression get their own figures
    metric_sets = [ds for ds in sets if metric_of(ds) != "regression"]
    all_sets, sets = sets, [ds for ds in sets if metric_of(ds) == "regression"] or sets
    variable, _ = default_variable(sets)
    score_name = "ceiled score" if variable == "ceiled" else "Pearson r"
    planned: list[tuple[_Figure, Callable[[], Figure]]] = []
    if any(metric_of(ds) != "partition" for ds in metric_sets):
        planned.append((_Figure("Metrics over time", "metric_overview",
                                "Each row is one metric, each column a region: the raw metric per time bin for each "
                                "model (regression: median Pearson r over sites; RSA: mean similarity of the model's "
                                "RDM to the repetition groups' RDMs; CKA; reverse predictivity: median r over model "
                                "units) with its 95% bootstrap CI, and the metric's noise ceiling (grey, dashed; RSA: "
                                "band between rsatoolbox's lower and upper ceilings). Grey bins: ceiling not reliably "
                                "above zero.", 7.0),
                        lambda: figures.metric_overview(all_sets)))
    if any(metric_of(ds) == "partition" for ds in metric_sets):
        planned.append((_Figure("Variance partitioning over time", "partition_over_time",
                                "Median over sites of the unique variance of the committed layer's first driven step "
                                "(the feedforward sweep), of its step mapped to each bin (what the later steps add), "
                                "and of their shared variance, each as a fraction of the site's split-half ceiling "
                                "(cross-validated R² of banded ridge), with 95% site-bootstrap CIs. A model "
                                "partitioned against other models has one unique part per model instead, labelled by "
                                "the model (each model's own committed layer and time map).", 7.0),
                        lambda: figures.partition_over_time(metric_sets)))
    planned.append((_Figure("Predictivity over time", "predictivity_over_time",
                            f"Top: median over sites of the {score_name} per time bin with its bootstrap CI. Bottom: "
                            "median raw Pearson r of each model and the noise ceiling (median and interquartile "
                            "range over sites). Grey: bins whose noise ceiling is not reliably above zero "
                            "(left out of summaries and tests). Dotted: stimulus onset (and offset, shaded "
                            "between, when recorded).", 7.0),
                    lambda: figures.predictivity_over_time(sets)))
    diff_caption = _difference_caption(comparisons, method, alpha)
    planned.append((_Figure("Model comparison per time bin", "difference_per_bin", diff_caption, 7.0,
                            skipped=pair_note),
                    lambda: figures.difference_per_bin([a for a, _ in pairs], [b for _, b in pairs],
                                                       comparisons=comparisons)))
    by_model = _group_pairs(pairs)
    for other, group in by_model.items():
        ref_name = label(group[0][0])
        planned.append((_Figure(f"Per-site scores: {other} vs {ref_name}", f"site_scatter_{_slug(other)}",
                                f"Each point is one site, its {score_name} averaged over the reliable bins of "
                                f"{figures._window_text(window)}; dashed: identity.", 3.5),
                        lambda g=group: figures.site_scatter([a for a, _ in g], [b for _, b in g], window=window)))
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
                            "quartiles; whiskers: 1.5 IQR). Grey: unreliable bins.", 7.0),
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
    page = _page(title, all_sets, sources, skipped, [f for f, _ in planned], comparisons, window, method, alpha,
                 n_boot, seed)
    index = out / "index.html"
    with atomic_path(index) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return index


def _difference_caption(comparisons: list[xr.Dataset], method: str, alpha: float) -> str:
    if not comparisons:
        return ""
    attrs = comparisons[0].attrs
    level = 100 * float(attrs.get("ci_level", 0.95))
    return (f"B − A per bin, where A is the reference: the median over sites of the paired per-site differences "
            f"of the {_score_name(attrs.get('variable', 'ceiled'))}. Shaded: its {level:.4g}% interval "
            f"({attrs.get('uncertainty', '')}). Stars: {METHODS[method]} at {alpha:g} across all "
            f"{attrs.get('n_tests', '?')} tested region x bin x comparison cells, on the bootstrap p values of the "
            f"same draws; the interval level is the one at which the selection and the intervals agree, so a star "
            f"sits exactly where the interval excludes 0. Grey: bins not tested (ceiling not reliable).")


def _score_name(variable: str) -> str:
    return "ceiled score" if variable == "ceiled" else ("Pearson r" if variable == "r" else variable)


# --- inputs --------------------------------------------------------------------------------------------------


def _load(scoresets, stream: TextIO | None = None) -> tuple[list[xr.Dataset], list[str], list[str]]:
    """The ScoreSets and their sources; a file that is not a ScoreSet is skipped with a one-line note."""
    if isinstance(scoresets, (xr.Dataset, str, os.PathLike)):
        scoresets = [scoresets]
    sets, sources, skipped = [], [], []
    for item in scoresets:
        if isinstance(item, xr.Dataset):
            ds, source = item, "(in memory)"
        else:
            path = Path(item)
            ds = read_dataset(path)
            if not is_scoreset(ds):
                what = "a comparison" if "comparison" in ds.dims else "not a ScoreSet"
                note = f"skipped {path.name}: {what} (no per-site 'r' and 'ceiled' on neuroid x time_bin)"
                skipped.append(note)
                print(f"neurofit report: {note}", file=stream or sys.stderr)
                continue
            source = f"{path.name} (sha256 {hashlib.sha256(path.read_bytes()).hexdigest()})"
        require(ds, _REQUIRED, f"the report ({source})")
        sets.append(ds)
        sources.append(source)
    if not sets:
        raise NeurofitError("neurofit report needs at least one ScoreSet" + (f" ({'; '.join(skipped)})"
                                                                             if skipped else ""))
    return sets, sources, skipped


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
            if label(ds) != ref and ds.attrs.get("benchmark") == bench and metric_of(ds) == metric_of(ref_ds):
                pairs.append((ref_ds, ds))
    note = "" if pairs else ("Model comparison: skipped (it needs at least two models scored on the same "
                             "benchmark).")
    return pairs, note


def _group_pairs(pairs):
    groups: dict[str, list[tuple[xr.Dataset, xr.Dataset]]] = {}
    for ref_ds, ds in pairs:
        groups.setdefault(label(ds), []).append((ref_ds, ds))
    return groups


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)[:60]


# --- tables --------------------------------------------------------------------------------------------------


def score_table(sets: list[xr.Dataset], window: tuple[float, float] | None, *, n_boot: int = 1000,
                seed: int = 0) -> list[dict[str, str]]:
    """Rows of the per-region score table, every model of a benchmark averaged over the same bins.

    For each benchmark and region the bins are those inside ``window`` where every model of the table is
    driven and the noise ceiling is reliable (like with like); each row gives the mean over those bins of the
    per-bin median over sites, its 95% CI (stimuli and sites resampled when the ScoreSet has stimulus draws,
    else sites), and the median r and median ceiling over the same bins. ``bins`` names them.

    Example
    -------
    >>> rows = score_table([scoreset], (70, 170))  # doctest: +SKIP
    >>> rows[0]["region"], rows[0]["bins"]  # doctest: +SKIP
    ('V4', '70-170 ms')
    """
    rows = []
    groups: dict[tuple, list[xr.Dataset]] = {}
    for ds in sets:
        # ScoreSets of one benchmark on different time bins cannot share bins: they form groups of their own
        start, end = time_bins(ds)
        groups.setdefault((str(ds.attrs.get("benchmark", "")), tuple(start), tuple(end)), []).append(ds)
    for (bench, _, _), members in groups.items():
        variable, _ = default_variable(members)
        reliability = bin_reliability(members[0])
        start, end = time_bins(members[0])
        for region in region_order(members[0]):
            holders = [ds for ds in members if region in region_order(ds)]
            bins = common_bins(holders, region, variable, reliability) & window_mask(members[0], window)
            for ds in holders:
                s = summarise(ds, region, bins, variable, n_boot=n_boot, seed=seed)
                with quiet_nan():
                    r = float(np.nanmean(np.nanmedian(site_values(ds, "r", region)[:, bins], axis=0)))
                    ceiling = float(np.nanmean(np.nanmedian(site_values(ds, "ceiling", region)[:, bins], axis=0)))
                rows.append({
                    "model": label(ds),
                    "benchmark": bench,
                    "region": region,
                    "sites": str(int((site_regions(ds) == region).sum())),
                    "bins": ranges(start, end, bins) or "none",
                    "variable": variable,
                    "score": _num(s.value),
                    "ci": f"[{_num(s.low)}, {_num(s.high)}]",
                    "ci_how": s.how,
                    "r": _num(r),
                    "ceiling": _num(ceiling),
                })
    return rows


def _num(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{value:.3f}"


def unreliable_table(sets: list[xr.Dataset]) -> list[dict[str, str]]:
    """Per benchmark and region: the bins whose noise ceiling is not reliably above zero, and the rule.

    Example
    -------
    >>> unreliable_table([scoreset])[0]["bins"]  # doctest: +SKIP
    '0-60 ms'
    """
    rows, seen = [], set()
    for ds in sets:
        bench = str(ds.attrs.get("benchmark", ""))
        if bench in seen:
            continue
        seen.add(bench)
        reliability = bin_reliability(ds)
        for region, text in reliability.unreliable_text(ds).items():
            rows.append({"benchmark": bench, "region": region, "bins": text or "none", "rule": reliability.rule})
    return rows


def comparison_table(comparisons: list[xr.Dataset]) -> list[dict[str, str]]:
    """Rows per comparison and region: where B is better, worse, not detectably different, and not tested."""
    rows = []
    for c in comparisons:
        for k, (region, where) in enumerate(verdict_ranges(c).items()):
            untested = where["unreliable"] or "none"
            if where["no_draws"]:
                untested += f"; no paired stimulus-bootstrap draws: {where['no_draws']}"
            if where["not_driven"]:
                untested += f"; not driven: {where['not_driven']}"
            clustered = (c["cluster_significant"].values[k].astype(bool) if "cluster_significant" in c
                         else np.zeros(c.sizes["time_bin"], dtype=bool))
            rows.append({
                "comparison": f"{c.attrs['model_b']} − {c.attrs['model_a']}",
                "benchmark": c.attrs.get("benchmark", ""),
                "region": region,
                "sites": str(int(np.nanmax(c["n_sites"].values[k]))),
                "better": where["better"] or "none",
                "worse": where["worse"] or "none",
                "same": where["no_difference"] or "none",
                "untested": untested,
                "clusters": ranges(c["time_bin_start"].values, c["time_bin_end"].values, clustered) or "none",
            })
    return rows


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

    others = [ds for ds in sets if metric_of(ds) != "regression"]
    extra = (["Metrics beyond regression, on the same data, layer commitment and time map: "
              + "; ".join(dict.fromkeys(f"{ds.attrs.get('metric')}: {ds.attrs.get('metric_description', '')}"
                                        for ds in others)) + "."] if others else [])
    sets = [ds for ds in sets if metric_of(ds) == "regression"] or sets
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
        attrs = comparisons[0].attrs
        level = 100 * float(attrs.get("ci_level", 0.95))
        paragraphs.append(
            f"Models were compared with the reference {attrs['model_a']} site by site in every region and time bin, "
            f"on the sites scored for both (a site with an undefined score in either model left out of that bin). "
            f"The estimate is the median over sites of the paired per-site differences B − A of the "
            f"{_score_name(attrs.get('variable', 'ceiled'))}. Its uncertainty: {attrs.get('uncertainty', '')}, "
            f"{n_boot} draws (seed {seed}). The p value of each bin is the two-sided bootstrap p of a zero median "
            f"difference from the same draws; the p values of all {attrs.get('n_tests', '?')} tested cells "
            f"(regions x bins x comparisons) were corrected together by {METHODS[method]} (statsmodels "
            f"multipletests, method '{method}') at alpha = {alpha:g}. Every interval is the equal-tailed interval "
            f"of the same draws at {level:.4g}% coverage, the level at which the intervals and the selection "
            f"agree (for Benjamini-Hochberg, the false-coverage-rate adjusted interval of Benjamini & Yekutieli "
            f"2005), so a bin is marked exactly when its interval excludes zero. {attrs.get('untested_bins', '')}; "
            f"{attrs.get('reliability', '')}."
            + (f" Clusters of bins (the table's last column, the bars under the stars in the difference figure): "
               f"{attrs['cluster_test']}." if attrs.get("cluster_test", "not run") != "not run" else "")
        )
    else:
        paragraphs.append("No two models were scored on the same benchmark, so no statistical comparison was made.")
    return paragraphs + extra


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


def _score_caption(rows: list[dict[str, str]], window: tuple[float, float] | None) -> str:
    variables = {row["variable"] for row in rows}
    what = " and ".join(sorted("the ceiled score" if v == "ceiled" else "Pearson r (no noise ceiling)"
                               for v in variables))
    hows = sorted({row["ci_how"] for row in rows if row["ci_how"] != "no bins"})
    span = "" if window is None else f" inside {window[0]:g}–{window[1]:g} ms"
    return (f"Score: the mean over the listed bins of the per-bin median over sites of {what}. Every model of a "
            f"benchmark is averaged over the same bins: those{span} where every model in the table is driven and "
            f"the noise ceiling is reliable. 95% CI: bootstrap of that mean ({'; '.join(hows) or 'none'}). "
            "Median r and median ceiling: over the same bins.")


def _weights_text(sets: list[xr.Dataset]) -> str:
    described = [f"<b>{html.escape(label(ds))}</b>: {html.escape(str(ds.attrs['weights']))}" for ds in sets
                 if ds.attrs.get("weights")]
    return f"<p>Weights: {'; '.join(dict.fromkeys(described))}.</p>" if described else ""


def _page(title, sets, sources, skipped, figs, comparisons, window, method, alpha, n_boot, seed) -> str:
    esc = html.escape
    rows = score_table(sets, window, n_boot=n_boot, seed=seed)
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
        _weights_text(sets),
        *([f'<p class="note">{esc(note)}</p>' for note in skipped]),
        "<h2>Scores per region</h2>",
        f"<p>{esc(_score_caption(rows, window))}</p>",
        _table(
            ["Model", "Benchmark", "Region", "Sites", "Bins averaged", "Score", "95% CI", "Median r",
             "Median ceiling"],
            [[row[k] for k in ("model", "benchmark", "region", "sites", "bins", "score", "ci", "r", "ceiling")]
             for row in rows],
            numeric={3, 5, 6, 7, 8},
            table_id="scores",
        ),
        "<h2>Unreliable bins</h2>",
        "<p>Bins whose noise ceiling is not reliably above zero: flagged, shaded grey in the figures, left out of "
        "the table above and of the comparisons.</p>",
        _table(["Benchmark", "Region", "Unreliable bins", "Rule"],
               [[row[k] for k in ("benchmark", "region", "bins", "rule")] for row in unreliable_table(sets)],
               table_id="unreliable"),
    ]
    if comparisons:
        level = 100 * float(comparisons[0].attrs.get("ci_level", 0.95))
        parts += [
            "<h2>Comparisons</h2>",
            f"<p>B − A per tested bin, A the reference: where B is significantly better, worse, or not detectably "
            f"different ({esc(METHODS[method])} at {alpha:g}; equivalently, where the {level:.4g}% interval of the "
            "median paired difference lies above zero, below zero, or contains it).</p>",
            _table(["Comparison (B − A)", "Benchmark", "Region", "Sites", "B better", "B worse",
                    "No detectable difference", "Not tested", "Cluster test (family-wise over bins)"],
                   [[row[k] for k in ("comparison", "benchmark", "region", "sites", "better", "worse", "same",
                                      "untested", "clusters")] for row in comparison_table(comparisons)],
                   numeric={3}, table_id="comparisons"),
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
