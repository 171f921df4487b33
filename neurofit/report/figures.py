"""Publication figures from ScoreSets: one public function per figure, each returning a matplotlib Figure.

Every function takes ScoreSets (one ``xarray.Dataset`` or a sequence of them), draws in neurofit's style
(:mod:`neurofit.report.style`) at a journal column width, and raises a :class:`NeurofitError` naming the
variable it needs when a ScoreSet lacks it. Write a figure with :func:`neurofit.report.style.save_figure`.

>>> from neurofit.report.figures import predictivity_over_time  # doctest: +SKIP
>>> save_figure(predictivity_over_time([ff, rec]), "out/predictivity")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from neurofit.errors import NeurofitError, quiet_nan
from neurofit.report.style import (
    CEILING_COLOUR,
    DOUBLE_COLUMN_IN,
    SINGLE_COLUMN_IN,
    STIMULUS_COLOUR,
    colour,
    neurofit_style,
    new_figure,
)
from neurofit.scoreset import (
    aggregate_regions,
    bin_reliability,
    default_variable,
    label,
    region_aggregate,
    require,
    site_regions,
    site_values,
    time_bins,
    window_mask,
)
from neurofit.scoreset import regions as region_order
from neurofit.stats.compare import compare_many

ScoreSets = xr.Dataset | Sequence[xr.Dataset]

TIME_LABEL = "Time after stimulus onset (ms)"
TIME_SHORT = "Time after onset (ms)"
NORMALISATION_LABELS = {
    "r2_over_ceiling": "r²/ceiling",
    "legacy": "(r/ceiling)²",
    "feve": "FEVe",
}


def predictivity_over_time(
    scoresets: ScoreSets,
    *,
    regions: Sequence[str] | None = None,
    width: float = DOUBLE_COLUMN_IN,
    height: float | None = None,
) -> Figure:
    """Median ceiled score per time bin, one line per model and one column per region.

    Top row: the median over sites of the ceiled score with its bootstrap CI band (``median_ceiled_low``/
    ``median_ceiled_high``, over stimuli; the band is left out when a ScoreSet has no aggregates); without
    noise ceilings (r-only data) the median r. Bottom row: the median raw Pearson r of each model against the
    noise ceiling (median split-half r over sites, band = interquartile range over sites). Bins whose ceiling
    is not reliably above zero (:func:`neurofit.scoreset.bin_reliability`) are shaded grey and the ceiled
    score is not drawn there. The stimulus presentation is marked from the attrs ``stimulus_on_ms``
    (default 0) and ``stimulus_off_ms`` (when present).

    Parameters
    ----------
    scoresets : ScoreSet or sequence of ScoreSets (several models, possibly several benchmarks)
    regions : regions to show, in order (default: every region, in order of first appearance)
    width, height : figure size in inches (default double column, height from the layout)

    Example
    -------
    >>> fig = predictivity_over_time([feedforward_scores, recurrent_scores])  # doctest: +SKIP
    """
    sets = _as_list(scoresets)
    for ds in sets:
        require(ds, ["ceiled", "r", "ceiling", "region", "time_bin_start", "time_bin_end"],
                "the predictivity-over-time figure")
    names = _regions(sets, regions)
    labels = _legend_labels(sets)
    colours = _model_colours(labels)
    variable, _ = default_variable(sets)
    reliability = {i: bin_reliability(ds) for i, ds in enumerate(sets)}
    with neurofit_style():
        fig = new_figure(width, height or 4.2, nrows=2, ncols=len(names), sharex="col", squeeze=False)
        axes = np.asarray(fig.axes).reshape(2, len(names))
        drawn_ceiling: set[tuple[str, str]] = set()
        shaded: set[str] = set()
        for col, region in enumerate(names):
            top, bottom = axes[0, col], axes[1, col]
            for i, ds in enumerate(sets):
                if region not in region_order(ds):
                    continue
                centres = _centres(ds)
                shift = _dodge(ds, i, len(sets) + 1)
                median, low, high = _median_score(ds, region, variable)
                unreliable = ~reliability[i].reliable[region]
                median = np.where(unreliable, np.nan, median)
                _series(top, centres + shift, median, low if low is None else np.where(unreliable, np.nan, low),
                        high if high is None else np.where(unreliable, np.nan, high), colours[i], label=labels[i])
                if region not in shaded:  # the reliability belongs to the data: one ScoreSet draws it
                    shaded.add(region)
                    _shade_bins(top, ds, unreliable)
                    _shade_bins(bottom, ds, unreliable)
                sites = site_regions(ds) == region
                r = _nanmedian(ds["r"].transpose("neuroid", "time_bin").values[sites], axis=0)
                _series(bottom, centres + shift, r, None, None, colours[i])
                key = (str(ds.attrs.get("dataset_sha256", ds.attrs.get("benchmark", i))), region)
                if key not in drawn_ceiling:
                    drawn_ceiling.add(key)
                    ceiling = ds["ceiling"].transpose("neuroid", "time_bin").values[sites]
                    q25, q50, q75 = _nanpercentile(ceiling, [25, 50, 75])
                    _series(bottom, centres + _dodge(ds, len(sets), len(sets) + 1), q50, q25, q75, CEILING_COLOUR,
                            linestyle="--", band_alpha=0.25)
                _span_bins(top, ds)
            top.set_title(f"{region} ({_n_sites(sets, region)} sites)")
            for ax in (top, bottom):
                _mark_stimulus(ax, sets)
                ax.axhline(0, color="black", linewidth=0.5, alpha=0.4)
        axes[0, 0].set_ylabel(f"Ceiled score ({_normalisation_label(sets)})" if variable == "ceiled"
                              else "Pearson r (no ceiling)")
        axes[1, 0].set_ylabel("Pearson r")
        handles = _legend_handles(labels, colours)
        handles += [
            Patch(facecolor=to_rgba(colour(0), 0.2), label="95% CI (bootstrap over stimuli)"),
            Line2D([], [], color=CEILING_COLOUR, linestyle="--", label="noise ceiling (median r, IQR)"),
        ]
        if any((~rel.reliable[r]).any() for rel in reliability.values() for r in rel.reliable):
            handles.append(Patch(facecolor=UNRELIABLE_COLOUR, label="unreliable ceiling (not scored)"))
        if time_bins(sets[0])[0].size >= _FEW_BINS:
            handles.append(_stimulus_handle(sets))
        _xlabel(axes[1], TIME_LABEL, TIME_SHORT, width)
        _legend(fig, handles, width)
    return fig


METRIC_NAMES = {"regression": "Regression", "rsa": "RSA", "cka": "CKA", "reverse_pls": "Reverse (PLS)",
                "reverse_ridge": "Reverse (ridge)", "partition": "Partition"}


def metric_of(ds: xr.Dataset) -> str:
    """The metric family of a ScoreSet: ``"regression"`` (PLS, ridge) or a metric of :mod:`neurofit.scoring.metric`.

    Example
    -------
    >>> rsa = xr.Dataset(attrs={"metric": "rsa", "metric_scope": "population"})
    >>> metric_of(xr.Dataset(attrs={"metric": "pls25-exact"})), metric_of(rsa)
    ('regression', 'rsa')
    """
    return str(ds.attrs["metric"]) if ds.attrs.get("metric_scope") else "regression"


def metric_overview(
    scoresets: ScoreSets,
    *,
    regions: Sequence[str] | None = None,
    width: float = DOUBLE_COLUMN_IN,
) -> Figure:
    """Every metric over time: one row per metric (regression, RSA, CKA, reverse), one column per region.

    Each panel shows, per model, the raw metric per bin (regression: median Pearson r over sites; RSA: mean
    similarity to the repetition groups' RDMs; CKA; reverse predictivity: median r over model units) with its
    95% bootstrap CI, and the metric's noise ceiling as a grey band: RSA between rsatoolbox's lower and upper
    ceilings, otherwise the interval of the median ceiling (a line without one). Bins whose ceiling is not
    reliably above zero are shaded. Variance partitioning has its own figure (:func:`partition_over_time`).

    Example
    -------
    >>> fig = metric_overview([ff_pls, rec_pls, ff_rsa, rec_rsa, ff_cka, rec_cka])  # doctest: +SKIP
    """
    sets = [ds for ds in _as_list(scoresets) if metric_of(ds) != "partition"]
    if not sets:
        raise NeurofitError("the metric overview needs ScoreSets of a metric other than partition")
    for ds in sets:
        require(ds, ["r", "ceiling", "region", "time_bin_start", "time_bin_end"], "the metric overview figure")
    metrics = [m for m in METRIC_NAMES if any(metric_of(ds) == m for ds in sets)]
    names = _regions(sets, regions)
    # one model keeps one name and colour across the metric rows; a model repeated within a metric is numbered
    keys = [(label(ds, f"model {i + 1}"), str(ds.attrs.get("benchmark", "")), metric_of(ds))
            for i, ds in enumerate(sets)]
    labels = [k[0] if keys.count(k) == 1 else f"{k[0]} [{i + 1}]" for i, k in enumerate(keys)]
    colours = _model_colours([k[0] for k in keys])
    with neurofit_style():
        fig = new_figure(width, 1.0 + 1.6 * len(metrics), nrows=len(metrics), ncols=len(names), sharex="col",
                         squeeze=False)
        axes = np.asarray(fig.axes).reshape(len(metrics), len(names))
        for row, metric in enumerate(metrics):
            members = [i for i, ds in enumerate(sets) if metric_of(ds) == metric]
            for col, region in enumerate(names):
                ax = axes[row, col]
                drawn: set[str] = set()
                for n, i in enumerate(members):
                    ds = sets[i]
                    if region not in region_order(ds):
                        continue
                    centres = _centres(ds)
                    median, low, high = _median_score(ds, region, "r")
                    if low is None and "median_r_sites_low" in ds.variables:
                        low = region_aggregate(ds, "median_r_sites_low", region)
                        high = region_aggregate(ds, "median_r_sites_high", region)
                        low, high = (None, None) if not np.isfinite(low).any() else (low, high)
                    shift = _dodge(ds, n, len(members) + 1)
                    _series(ax, centres + shift, median, low, high, colours[i], label=labels[i])
                    key = str(ds.attrs.get("dataset_sha256", ds.attrs.get("benchmark", i)))
                    if key not in drawn:
                        drawn.add(key)
                        _ceiling_band(ax, ds, region, centres + _dodge(ds, len(members), len(members) + 1))
                        _shade_bins(ax, ds, ~bin_reliability(ds).reliable[region])
                _mark_stimulus(ax, sets)
                ax.axhline(0, color="black", linewidth=0.5, alpha=0.4)
                if row == 0:
                    ax.set_title(region)
            axes[row, 0].set_ylabel(METRIC_NAMES[metric])
        handles = _legend_handles(labels, colours)
        handles += [Patch(facecolor=to_rgba(colour(0), 0.2), label="95% CI (bootstrap)"),
                    Patch(facecolor=to_rgba(CEILING_COLOUR, 0.3), label="noise ceiling")]
        _xlabel(axes[-1], TIME_LABEL, TIME_SHORT, width)
        _legend(fig, handles, width)
    return fig


def _ceiling_band(ax: Axes, ds: xr.Dataset, region: str, x: np.ndarray) -> None:
    """The metric's ceiling: RSA's lower-upper band, else the median ceiling's interval (or its line)."""
    median = _median_score(ds, region, "ceiling")[0]
    if "median_ceiling_upper" in ds.variables:
        low, high = median, region_aggregate(ds, "median_ceiling_upper", region)
    elif "median_ceiling_low" in ds.variables and np.isfinite(region_aggregate(ds, "median_ceiling_low", region)).any():
        low, high = (region_aggregate(ds, f"median_ceiling_{k}", region) for k in ("low", "high"))
    else:
        low = high = None
    _series(ax, x, median, low, high, CEILING_COLOUR, linestyle="--", band_alpha=0.25)


PARTITION_PARTS = (("unique_fraction_feedforward", "unique: first driven step (feedforward)"),
                   ("unique_fraction_mapped", "unique: step mapped to the bin (later steps)"),
                   ("shared_fraction", "shared"))


def partition_parts(ds: xr.Dataset) -> list[tuple[str, str]]:
    """The parts a ``partition`` ScoreSet divides each site's variance into: ``(variable, legend text)`` each.

    One entry per feature space (``unique_fraction_<space>``, labelled by the ``space_label`` coordinate: the
    model of each space when models are partitioned against each other), then ``shared_fraction``. ScoreSets
    written before spaces were labelled have the one-model parts (:data:`PARTITION_PARTS`).

    Example
    -------
    >>> ds = xr.Dataset(coords={"space": ("space", ["model", "other_1"]),
    ...                         "space_label": ("space", ["bl", "cornet_z"])})
    >>> [text for _, text in partition_parts(ds)]
    ['unique: bl', 'unique: cornet_z', 'shared']
    """
    if "space_label" not in ds.coords:
        return list(PARTITION_PARTS)
    spaces = zip((str(s) for s in ds["space"].values), (str(t) for t in ds["space_label"].values))
    parts = [(f"unique_fraction_{space}", f"unique: {text}") for space, text in spaces]
    return [*parts, ("shared_fraction", "shared")]


def _partition_layers(sets: Sequence[xr.Dataset], region: str) -> str:
    """Each partitioned model's committed layer for ``region`` (models partitioned against each other), one a line."""
    lines: list[str] = []
    for ds in sets:
        spaces = ds.attrs.get("partition_spaces")
        if ds.attrs.get("partition_ceiled_space") != "model" or not isinstance(spaces, dict):
            continue
        for info in spaces.values():
            layer = dict(info.get("committed_layers") or {}).get(region)
            line = f"{info.get('label', info.get('model_id'))}: {layer}"
            if layer is not None and line not in lines:
                lines.append(line)
    return "\n".join(lines)


def partition_over_time(
    scoresets: ScoreSets,
    *,
    regions: Sequence[str] | None = None,
    width: float = DOUBLE_COLUMN_IN,
) -> Figure:
    """Variance partitioning over time: unique and shared variance as fractions of the ceiling, per region.

    For each ``partition`` ScoreSet (one line style per ScoreSet): the median over sites of the unique variance of
    each feature space and of their shared variance, each divided by the site's split-half ceiling, with 95%
    site-bootstrap CIs. The spaces are a model's first driven step (the feedforward sweep) and its step mapped to
    each bin (what the later steps add), or, for a model partitioned against other models, each model's committed
    features, labelled by the model (:func:`partition_parts`; each panel names the model's committed layer for
    its region); one colour per label across the ScoreSets.

    Example
    -------
    >>> fig = partition_over_time([rec_partition])  # doctest: +SKIP
    """
    sets = [ds for ds in _as_list(scoresets) if metric_of(ds) == "partition"]
    if not sets:
        raise NeurofitError("the variance-partitioning figure needs ScoreSets scored with metric='partition'")
    parts = [partition_parts(ds) for ds in sets]
    for ds, own in zip(sets, parts):
        require(ds, [f"median_{name}" for name, _ in own], "the variance-partitioning figure")
    texts = list(dict.fromkeys(text for own in parts for _, text in own))  # one colour per label
    names = _regions(sets, regions)
    labels = _legend_labels(sets)
    styles = ["-", "--", ":", "-."]
    with neurofit_style():
        fig = new_figure(width, 2.8, nrows=1, ncols=len(names), squeeze=False)
        axes = np.asarray(fig.axes).reshape(1, len(names))
        for col, region in enumerate(names):
            ax = axes[0, col]
            for i, ds in enumerate(sets):
                if region not in region_order(ds):
                    continue
                centres = _centres(ds)
                reliable = bin_reliability(ds).reliable[region]
                for k, (name, text) in enumerate(parts[i]):
                    median = np.where(reliable, region_aggregate(ds, f"median_{name}", region), np.nan)
                    low = region_aggregate(ds, f"median_{name}_sites_low", region)
                    high = region_aggregate(ds, f"median_{name}_sites_high", region)
                    _series(ax, centres + _dodge(ds, k, len(parts[i])), median,
                            None if not np.isfinite(low).any() else low, high, colour(texts.index(text)),
                            linestyle=styles[i % len(styles)])
                if i == 0:
                    _shade_bins(ax, ds, ~reliable)
            layers = _partition_layers(sets, region)
            if layers:
                ax.text(0.02, 0.98, layers, transform=ax.transAxes, va="top", ha="left", fontsize=6)
            _mark_stimulus(ax, sets)
            ax.axhline(0, color="black", linewidth=0.5, alpha=0.4)
            ax.set_title(region)
        axes[0, 0].set_ylabel("Fraction of the ceiling")
        handles = [Line2D([], [], color=colour(k), label=text) for k, text in enumerate(texts)]
        if len(sets) > 1:
            handles += [Line2D([], [], color="black", linestyle=styles[i % len(styles)], label=lab)
                        for i, lab in enumerate(labels)]
        _xlabel(axes[0], TIME_LABEL, TIME_SHORT, width)
        _legend(fig, handles, width)
    return fig


def difference_per_bin(
    reference: ScoreSets,
    other: ScoreSets,
    *,
    comparisons: Sequence[xr.Dataset] | None = None,
    method: str = "fdr_bh",
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
    width: float = DOUBLE_COLUMN_IN,
    height: float | None = None,
) -> Figure:
    """``other - reference`` per time bin: the median paired difference, its interval and significance marks.

    ``reference`` and ``other`` are matched pairwise (e.g. the feedforward and the recurrent model's ScoreSets
    of the V4 and of the IT benchmark); the comparison is :func:`neurofit.stats.compare.compare_many` unless
    the precomputed ``comparisons`` are given. The band is the comparison's interval and a star sits above
    exactly the bins where it excludes zero (significant after the correction); untested bins are grey. A bar
    under the stars spans the bins of every cluster significant in the comparison's cluster test over bins
    (``cluster_significant``: family-wise over the region's bins; per site or, for population metrics, over the
    stimulus draws, as the comparison's ``cluster_test`` attr says).

    Example
    -------
    >>> fig = difference_per_bin(feedforward_scores, recurrent_scores)  # doctest: +SKIP
    """
    sets_a, sets_b = _as_list(reference), _as_list(other)
    if len(sets_a) != len(sets_b):
        raise NeurofitError(f"difference_per_bin pairs reference with other: got {len(sets_a)} and {len(sets_b)} "
                            "ScoreSets")
    if comparisons is None:
        comparisons = compare_many(list(zip(sets_a, sets_b)), method=method, alpha=alpha, n_boot=n_boot, seed=seed)
    comparisons = list(comparisons)
    names = list(dict.fromkeys(str(r) for c in comparisons for r in c["region"].values))
    pair_labels = list(dict.fromkeys(_pair_label(c) for c in comparisons))
    with neurofit_style():
        fig = new_figure(width, height or 2.6, nrows=1, ncols=len(names), squeeze=False)
        axes = np.asarray(fig.axes)
        clusters_drawn = False
        for col, region in enumerate(names):
            ax = axes[col]
            marks = []
            shaded = False
            for c in comparisons:
                if region not in [str(r) for r in c["region"].values]:
                    continue
                k = pair_labels.index(_pair_label(c))
                sel = c.sel(region=region)
                tested = sel["tested"].values.astype(bool)
                centres = (c["time_bin_start"].values + c["time_bin_end"].values) / 2
                keep = lambda v, t=tested: np.where(t, v, np.nan)  # noqa: E731 - untested bins are not drawn
                _series(ax, centres, keep(sel["median_difference"].values), keep(sel["ci_low"].values),
                        keep(sel["ci_high"].values), colour(k))
                if not shaded:
                    _shade_bins(ax, c, ~tested)
                    shaded = True
                _span_bins(ax, c)
                clustered = (sel["cluster_significant"].values.astype(bool) if "cluster_significant" in sel
                             else np.zeros(len(centres), dtype=bool))
                marks.append((k, centres[sel["significant"].values.astype(bool)],
                              list(zip(c["time_bin_start"].values[clustered], c["time_bin_end"].values[clustered]))))
            ax.axhline(0, color="black", linewidth=0.6)
            _mark_stimulus(ax, sets_a)
            ax.set_title(f"{region}")
            # Significance marks sit in a strip above the data, one row per comparison, so they never cover it.
            ax.margins(y=0.08)
            y0, y1 = ax.get_ylim()
            step = 0.07 * (y1 - y0)
            for row, (k, xs, spans) in enumerate(marks):
                y = y1 + step * (row + 0.5)
                ax.plot(xs, np.full(xs.shape, y), linestyle="none", marker="*", markersize=4, color=colour(k),
                        clip_on=False)
                clusters_drawn = clusters_drawn or bool(spans)
                for lo, hi in spans:  # bins of a significant cluster (family-wise over bins): a bar under the stars
                    ax.plot([lo, hi], [y - 0.5 * step] * 2, color=colour(k), linewidth=1.0, solid_capstyle="butt",
                            clip_on=False)
            ax.set_ylim(y0, y1 + step * (len(marks) + 0.3))
        first = comparisons[0].attrs
        variable = first.get("variable", "ceiled")
        axes[0].set_ylabel("B − A, median paired difference\n" + (f"({_normalisation_label(sets_a)})"
                                                                  if variable == "ceiled" else "(Pearson r)"))
        handles = [Line2D([], [], color=colour(k), label=text) for k, text in enumerate(pair_labels)]
        handles += [
            Patch(facecolor=to_rgba(colour(0), 0.2), label=f"{100 * float(first.get('ci_level', 0.95)):.4g}% interval "
                                                              "(stimuli and sites)" if "two-level" in
                                                              first.get("uncertainty", "") else
                  f"{100 * float(first.get('ci_level', 0.95)):.4g}% interval (sites)"),
            Line2D([], [], color="black", marker="*", linestyle="none", markersize=5,
                   label=f"{_method_name(first.get('correction', method))} {first.get('alpha', alpha):g}: "
                         "interval excludes 0"),
            Patch(facecolor=UNRELIABLE_COLOUR, label="not tested"),
        ]
        if clusters_drawn:
            bar = Line2D([], [], color="black", linewidth=1.5,
                         label=f"cluster test {first.get('alpha', alpha):g}, family-wise over bins")
            if width < 4.5:  # a narrow figure's one-column legend has no room for a row more: the bar joins the star
                star = handles[-2]
                handles[-2] = (star, bar)
                labels = [h.get_label() for h in handles[:-2]] + [f"{star.get_label()}; bar: cluster",
                                                                   handles[-1].get_label()]
            else:
                handles.insert(-1, bar)
        _xlabel(axes, TIME_LABEL, TIME_SHORT, width)
        if any(isinstance(h, tuple) for h in handles):
            fig.legend(handles, labels, loc="outside lower center", ncols=1)
        else:
            _legend(fig, handles, width)
    return fig


def _pair_label(comparison: xr.Dataset) -> str:
    return f"B {comparison.attrs.get('model_b', 'B')} − A {comparison.attrs.get('model_a', 'A')}"


def site_scatter(
    reference: ScoreSets,
    other: ScoreSets,
    *,
    window: tuple[float, float] | None = None,
    width: float = SINGLE_COLUMN_IN,
    height: float | None = None,
) -> Figure:
    """Per-site score of ``other`` (y) against the ``reference`` (x), averaged over the reliable bins of a window.

    Sites are matched by ``neuroid_id`` (each side may be several ScoreSets, e.g. one per benchmark, which are
    pooled) and coloured by region; the identity line marks equal scores. Unreliable bins (noise ceiling not
    reliably above zero) are left out of each site's mean; without ceilings the score is r.

    Example
    -------
    >>> fig = site_scatter(feedforward_scores, recurrent_scores, window=(70, 170))  # doctest: +SKIP
    """
    variable, _ = default_variable([*_as_list(reference), *_as_list(other)])
    xb, region_b, name_b = _window_means(_as_list(reference), window, variable)
    xa, _, name_a = _window_means(_as_list(other), window, variable)
    shared = [nid for nid in xa if nid in xb]
    if not shared:
        raise NeurofitError(f"site_scatter: {name_a!r} and {name_b!r} share no neuroid_id")
    va = np.array([xa[nid] for nid in shared])
    vb = np.array([xb[nid] for nid in shared])
    site_region = np.array([region_b[nid] for nid in shared])
    names = list(dict.fromkeys(site_region))
    what = "ceiled score" if variable == "ceiled" else "Pearson r"
    with neurofit_style():
        fig = new_figure(width, height or width, nrows=1, ncols=1)
        ax = fig.axes[0]
        finite = np.isfinite(va) & np.isfinite(vb)
        lo = min(0.0, float(np.min(va[finite], initial=0)), float(np.min(vb[finite], initial=0)))
        hi = max(float(np.max(va[finite], initial=1)), float(np.max(vb[finite], initial=1)))
        pad = 0.04 * (hi - lo)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="black", linewidth=0.7, linestyle="--",
                label="identity")
        for i, region in enumerate(names):
            sel = (site_region == region) & finite
            ax.scatter(vb[sel], va[sel], s=10, color=colour(i), alpha=0.8, linewidths=0,
                       label=f"{region} ({sel.sum()} sites)")
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_aspect("equal")
        span = _window_text(window)
        ax.set_xlabel(f"A {name_b}: {what}\n(mean {span})")
        ax.set_ylabel(f"B {name_a}: {what}\n(mean {span})")
        _legend(fig, ax.get_legend_handles_labels()[0], width, loc="outside upper center",
                ncols=min(len(names) + 1, 3))
    return fig


def layer_step_heatmap(
    scoreset: xr.Dataset,
    *,
    window: tuple[float, float] | None = None,
    regions: Sequence[str] | None = None,
    width: float = DOUBLE_COLUMN_IN,
    height: float | None = None,
) -> Figure:
    """Median ceiled score of every (layer, timestep) of one model, one heatmap per region.

    Uses ``grid_ceiled`` (dims ``(region, layer, step, time_bin)``, or without ``time_bin`` when already a
    window mean), averaged over the bins inside ``window``. Cells with no score (steps before the
    layer's arrival) are grey.

    Example
    -------
    >>> fig = layer_step_heatmap(recurrent_scores, window=(70, 170))  # doctest: +SKIP
    """
    require(scoreset, ["grid_ceiled"], "the layer x timestep heatmap")
    grid = scoreset["grid_ceiled"]
    missing = {"region", "layer", "step"} - set(grid.dims)
    if missing:
        raise NeurofitError(f"grid_ceiled of {label(scoreset)!r} lacks dims {sorted(missing)}; it must have "
                            "(region, layer, step[, time_bin])")
    if "time_bin" in grid.dims:
        mask = window_mask(scoreset, window)
        values = _nanmean(grid.transpose("region", "layer", "step", "time_bin").values[..., mask], axis=-1)
    else:
        values = grid.transpose("region", "layer", "step").values.astype(np.float64)
    region_labels = aggregate_regions(scoreset)
    names = list(regions) if regions else [r for r in region_order(scoreset) if r in region_labels]
    layers = [str(v) for v in grid["layer"].values] if "layer" in grid.coords else list(range(grid.sizes["layer"]))
    steps = (np.asarray(grid["step"].values) if "step" in grid.coords else np.arange(grid.sizes["step"]))
    finite = values[np.isfinite(values)]
    vmin, vmax = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    with neurofit_style():
        fig = new_figure(width, height or 2.2 + 0.18 * len(layers), nrows=1, ncols=len(names), squeeze=False)
        axes = np.asarray(fig.axes)
        image = None
        for col, region in enumerate(names):
            if region not in region_labels:
                raise NeurofitError(f"grid_ceiled of {label(scoreset)!r} has no region {region!r} "
                                    f"(has {region_labels})")
            ax = axes[col]
            data = np.ma.masked_invalid(values[region_labels.index(region)])
            cmap = _cmap_with_absent()
            image = ax.imshow(data, aspect="auto", origin="lower", cmap=cmap, vmin=vmin, vmax=vmax,
                              interpolation="nearest")
            ax.set_yticks(range(len(layers)), [str(v) for v in layers])
            ax.set_xticks(_tick_positions(len(steps)), [str(steps[i]) for i in _tick_positions(len(steps))])
            ax.set_title(region)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if data.mask.any():
                best = np.unravel_index(np.nanargmax(np.where(data.mask, -np.inf, data.filled(0))), data.shape)
            else:
                best = np.unravel_index(np.argmax(data), data.shape)
            ax.plot(best[1], best[0], marker="o", markersize=5, markerfacecolor="none", markeredgecolor="white",
                    markeredgewidth=1.2)
        axes[0].set_ylabel("Layer")
        _xlabel(axes, "Model timestep", "Timestep", width)
        bar = fig.colorbar(image, ax=list(axes), shrink=0.9, pad=0.02)
        bar.set_label(f"Ceiled score ({_normalisation_label([scoreset])})\nmean {_window_text(window)}")
        bar.outline.set_visible(False)
        fig.suptitle(f"{label(scoreset)}: grey = no signal yet (before arrival); circle = best cell",
                     fontsize=7)
    return fig


def ceiling_distributions(
    scoresets: ScoreSets,
    *,
    regions: Sequence[str] | None = None,
    width: float = DOUBLE_COLUMN_IN,
    height: float | None = None,
) -> Figure:
    """Distribution over sites of the noise ceiling (split-half r) per time bin, one panel per region.

    The ceiling belongs to the data, not to a model: each region's panel shows the first ScoreSet that has
    the region.

    Example
    -------
    >>> fig = ceiling_distributions([v4_scores, it_scores])  # doctest: +SKIP
    """
    sets = _as_list(scoresets)
    for ds in sets:
        require(ds, ["ceiling", "region", "time_bin_start", "time_bin_end"], "the ceiling-distribution figure")
    names = _regions(sets, regions)
    with neurofit_style():
        fig = new_figure(width, height or 2.4, nrows=1, ncols=len(names), squeeze=False, sharey=True)
        axes = np.asarray(fig.axes)
        for col, region in enumerate(names):
            ax = axes[col]
            # Several models scored on the same data share its ceiling: draw the first ScoreSet that has the region.
            for ds in [next(d for d in sets if region in region_order(d))]:
                centres = _centres(ds)
                widths = 0.7 * (ds["time_bin_end"].values - ds["time_bin_start"].values)
                ceiling = ds["ceiling"].transpose("neuroid", "time_bin").values[site_regions(ds) == region]
                columns = [col_values[np.isfinite(col_values)] for col_values in ceiling.T]
                ax.boxplot(columns, positions=centres, widths=widths, manage_ticks=False, patch_artist=True,
                           showfliers=True,
                           boxprops={"facecolor": to_rgba(colour(col), 0.35), "edgecolor": colour(col),
                                     "linewidth": 0.6},
                           medianprops={"color": "black", "linewidth": 0.8},
                           whiskerprops={"color": colour(col), "linewidth": 0.6},
                           capprops={"color": colour(col), "linewidth": 0.6},
                           flierprops={"marker": ".", "markersize": 2, "markeredgecolor": colour(col),
                                       "alpha": 0.6})
                _shade_bins(ax, ds, ~bin_reliability(ds).reliable[region])
                _span_bins(ax, ds)
            _mark_stimulus(ax, sets)
            ax.axhline(0, color="black", linewidth=0.5, alpha=0.4)
            ax.set_title(f"{region} ({_n_sites(sets, region)} sites)")
        _xlabel(axes, TIME_LABEL, TIME_SHORT, width)
        axes[0].set_ylabel("Noise ceiling\n(split-half r, Spearman-Brown)")
    return fig


def peak_time_histogram(
    scoresets: ScoreSets,
    *,
    regions: Sequence[str] | None = None,
    min_ceiling: float = 0.1,
    width: float = DOUBLE_COLUMN_IN,
    height: float | None = None,
) -> Figure:
    """Histogram over sites of the time bin where each site's ceiled score peaks, one outline per model.

    A ceiled score divides by the ceiling, so bins where a site is barely reliable (ceiling below
    ``min_ceiling``, e.g. before its response) can show huge, meaningless ratios: those bins are left out of
    the peak search. Sites with no remaining bin are left out (the panel title gives the count used).

    Example
    -------
    >>> fig = peak_time_histogram([feedforward_scores, recurrent_scores])  # doctest: +SKIP
    """
    sets = _as_list(scoresets)
    for ds in sets:
        require(ds, ["ceiled", "ceiling", "region", "time_bin_start", "time_bin_end"], "the peak-time histogram")
        if time_bins(ds)[0].size < 3:
            raise NeurofitError(f"the peak-time histogram needs at least 3 time bins; ScoreSet {label(ds)!r} has "
                                f"{time_bins(ds)[0].size}")
    names = _regions(sets, regions)
    labels = _legend_labels(sets)
    colours = _model_colours(labels)
    with neurofit_style():
        fig = new_figure(width, height or 2.4, nrows=1, ncols=len(names), squeeze=False)
        axes = np.asarray(fig.axes)
        for col, region in enumerate(names):
            ax = axes[col]
            used = 0
            for i, ds in enumerate(sets):
                if region not in region_order(ds):
                    continue
                peaks = peak_times(ds, region, min_ceiling=min_ceiling)
                used = max(used, peaks.size)
                start, end = time_bins(ds)
                edges = np.append(start, end[-1])
                ax.hist(peaks, bins=edges, histtype="step", color=colours[i], linewidth=1.3, label=labels[i])
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            _mark_stimulus(ax, sets)
            ax.set_title(f"{region} ({used} of {_n_sites(sets, region)} sites)")
        axes[0].set_ylabel("Sites (count)")
        handles = _legend_handles(labels, colours)
        _xlabel(axes, f"Peak time of ceiled score (ms; bins with ceiling ≥ {min_ceiling:g})", "Peak time (ms)",
                width)
        _legend(fig, handles, width)
    return fig


def peak_times(scoreset: xr.Dataset, region: str | None = None, min_ceiling: float = 0.1) -> np.ndarray:
    """Centre (ms) of the bin with each site's largest ceiled score among bins with ceiling >= ``min_ceiling``.

    Sites with no such bin (or only NaN scores) are left out.

    Example
    -------
    >>> ds = xr.Dataset({"ceiled": (("neuroid", "time_bin"), [[0.9, 0.5], [np.nan, np.nan]]),
    ...                  "ceiling": (("neuroid", "time_bin"), [[0.02, 0.6], [0.5, 0.5]])},
    ...                 coords={"region": ("neuroid", ["IT", "IT"]), "time_bin_start": ("time_bin", [0.0, 10.0]),
    ...                         "time_bin_end": ("time_bin", [10.0, 20.0])})
    >>> peak_times(ds).tolist()
    [15.0]
    """
    require(scoreset, ["ceiled", "ceiling", "region", "time_bin_start", "time_bin_end"], "peak_times")
    values = scoreset["ceiled"].transpose("neuroid", "time_bin").values.astype(np.float64)
    ceiling = scoreset["ceiling"].transpose("neuroid", "time_bin").values
    if region is not None:
        keep = site_regions(scoreset) == region
        values, ceiling = values[keep], ceiling[keep]
    with np.errstate(invalid="ignore"):
        values = np.where(ceiling >= min_ceiling, values, np.nan)
    valid = np.isfinite(values).any(axis=1)
    best = np.argmax(np.where(np.isfinite(values[valid]), values[valid], -np.inf), axis=1)
    return _centres(scoreset)[best]


# --- helpers shared by the figures -------------------------------------------------------------------------


def _as_list(scoresets: ScoreSets) -> list[xr.Dataset]:
    sets = [scoresets] if isinstance(scoresets, xr.Dataset) else list(scoresets)
    if not sets:
        raise NeurofitError("a figure needs at least one ScoreSet")
    for ds in sets:
        if not isinstance(ds, xr.Dataset):
            raise NeurofitError(f"figures take ScoreSets (xarray.Dataset), got {type(ds).__name__}; "
                                "read files with neurofit.data.io.read_dataset")
    return sets


def _regions(sets: list[xr.Dataset], wanted: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(r for ds in sets for r in region_order(ds)))
    if wanted is None:
        return present
    unknown = [r for r in wanted if r not in present]
    if unknown:
        raise NeurofitError(f"regions {unknown} are in none of the ScoreSets (they have {present})")
    return list(wanted)


def _model_colours(labels: list[str]) -> list[str]:
    """One colour per distinct model label (the same model on two benchmarks keeps its colour)."""
    distinct = list(dict.fromkeys(labels))
    return [colour(distinct.index(lab)) for lab in labels]


def _legend_handles(labels: list[str], colours: list[str]) -> list[Line2D]:
    seen = dict(zip(labels, colours))
    return [Line2D([], [], color=c, label=lab) for lab, c in seen.items()]


def _legend_labels(sets: list[xr.Dataset]) -> list[str]:
    labels = [label(ds, f"model {i + 1}") for i, ds in enumerate(sets)]
    # The same model on two benchmarks is one model: only models repeated within one benchmark are renamed.
    keys = [(lab, str(ds.attrs.get("benchmark", ""))) for lab, ds in zip(labels, sets)]
    return [lab if keys.count(key) == 1 else f"{lab} [{i + 1}]" for i, (lab, key) in enumerate(zip(labels, keys))]


def _centres(ds: xr.Dataset) -> np.ndarray:
    start, end = time_bins(ds)
    return (start + end) / 2


def _median_score(ds: xr.Dataset, region: str, variable: str = "ceiled"
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Scoring's aggregate ``median_<variable>`` and its CI when present, else the median over sites, no band."""
    name = f"median_{variable}"
    if name in ds.variables and region in aggregate_regions(ds):
        median = region_aggregate(ds, name, region)
        if f"{name}_low" in ds.variables and f"{name}_high" in ds.variables:
            low, high = region_aggregate(ds, f"{name}_low", region), region_aggregate(ds, f"{name}_high", region)
            if np.isfinite(low).any():
                return median, low, high
        return median, None, None
    return _nanmedian(site_values(ds, variable, region), axis=0), None, None


UNRELIABLE_COLOUR = "#E5E5E5"


def _shade_bins(ax: Axes, ds: xr.Dataset, mask: np.ndarray) -> None:
    """Grey spans over the masked bins (unreliable or untested), behind the data."""
    start, end = time_bins(ds)
    for s, e, m in zip(start, end, mask):
        if m:
            ax.axvspan(s, e, color=UNRELIABLE_COLOUR, linewidth=0, zorder=0)


def _n_sites(sets: list[xr.Dataset], region: str) -> int:
    return max(int((site_regions(ds) == region).sum()) for ds in sets)


def _mark_stimulus(ax: Axes, sets: list[xr.Dataset]) -> None:
    if sets and time_bins(sets[0])[0].size < _FEW_BINS:
        return  # a few wide bins are labelled by their extent; onset marks would stretch the axis
    on = float(sets[0].attrs.get("stimulus_on_ms", 0.0)) if sets else 0.0
    off = sets[0].attrs.get("stimulus_off_ms") if sets else None
    ax.axvline(on, color=STIMULUS_COLOUR, linewidth=0.6, linestyle=":")
    if off is not None and np.isfinite(float(off)):
        ax.axvspan(on, float(off), color=STIMULUS_COLOUR, alpha=0.06, linewidth=0)
        ax.axvline(float(off), color=STIMULUS_COLOUR, linewidth=0.6, linestyle=":")


# Fewer bins than this are drawn as points with error bars: a line or band through one or two points is invisible
# or misleading (e.g. one 100 ms bin).
_FEW_BINS = 4


def _series(ax: Axes, x: np.ndarray, y: np.ndarray, low: np.ndarray | None, high: np.ndarray | None, color: str,
            label: str | None = None, linestyle: str = "-", band_alpha: float = 0.2) -> None:
    """A line with a shaded band over time, or points with error bars when there are only a few bins."""
    if x.size < _FEW_BINS:
        yerr = None if low is None else np.vstack([y - low, high - y])
        ax.errorbar(x, y, yerr=yerr, fmt="o", color=color, markersize=4, capsize=3, linewidth=1.0, label=label,
                    mfc="white" if linestyle != "-" else color)
        return
    ax.plot(x, y, color=color, label=label, linestyle=linestyle,
            linewidth=1.1 if linestyle != "-" else None)
    if low is not None:
        ax.fill_between(x, low, high, color=color, alpha=band_alpha, linewidth=0)


def _dodge(ds: xr.Dataset, index: int, count: int) -> np.ndarray | float:
    """Horizontal offset (ms) that keeps error bars of several series apart when there are only a few bins."""
    start, end = time_bins(ds)
    if start.size >= _FEW_BINS:
        return 0.0
    return (end - start) * 0.5 * ((index + 0.5) / count - 0.5)


def _span_bins(ax: Axes, ds: xr.Dataset) -> None:
    """With only a few (wide) bins, label each bin by its extent, so offset points read as one bin."""
    start, end = ds["time_bin_start"].values, ds["time_bin_end"].values
    if start.size >= _FEW_BINS:
        return
    ax.set_xticks((start + end) / 2, [f"{a:g}–{b:g}" for a, b in zip(start, end)])
    ax.set_xlim(float(np.min(start)), float(np.max(end)))


def _xlabel(axes: np.ndarray, text: str, short: str, width: float) -> None:
    """Label every panel's x axis; narrow panels get the short form so neighbouring labels never collide."""
    axes = list(np.ravel(axes))
    for ax in axes:
        ax.set_xlabel(short if width / len(axes) < 2.6 else text)


def _legend(fig: Figure, handles: list, width: float, loc: str = "outside lower center",
            ncols: int | None = None) -> None:
    """A legend outside the axes, so it never hides data; one column when the figure is narrow."""
    ncols = ncols or (1 if width < 4.5 else min(len(handles), 3))
    fig.legend(handles=handles, loc=loc, ncols=ncols)


def _stimulus_handle(sets: list[xr.Dataset]) -> Patch | Line2D:
    if sets and sets[0].attrs.get("stimulus_off_ms") is not None:
        return Patch(facecolor=to_rgba(STIMULUS_COLOUR, 0.12), label="stimulus on")
    return Line2D([], [], color=STIMULUS_COLOUR, linewidth=0.6, linestyle=":", label="stimulus onset")


def _normalisation_label(sets: list[xr.Dataset]) -> str:
    rules = {str(ds.attrs.get("normalisation", "r2_over_ceiling")) for ds in sets}
    return ", ".join(NORMALISATION_LABELS.get(rule, rule) for rule in sorted(rules))


def _method_name(method: str) -> str:
    return {"fdr_bh": "BH-FDR", "holm": "Holm", "bonferroni": "Bonferroni", "fdr_by": "BY-FDR"}.get(method, method)


def _window_text(window: tuple[float, float] | None) -> str:
    return "over all bins" if window is None else f"{window[0]:g}–{window[1]:g} ms"


def _window_means(sets: list[xr.Dataset], window, variable: str = "ceiled"
                  ) -> tuple[dict[str, float], dict[str, str], str]:
    values: dict[str, float] = {}
    region_of: dict[str, str] = {}
    for ds in sets:
        require(ds, [variable, "neuroid_id", "region", "time_bin_start", "time_bin_end"], "the per-site scatter")
        mask = window_mask(ds, window)
        reliability = bin_reliability(ds)
        regions_of_sites = site_regions(ds)
        per_site = ds[variable].transpose("neuroid", "time_bin").values
        for nid, reg, row in zip(ds["neuroid_id"].values, regions_of_sites, per_site):
            keep = mask & reliability.reliable.get(str(reg), np.ones(mask.shape, dtype=bool))
            values[str(nid)] = float(_nanmean(row[keep][None], axis=1)[0]) if keep.any() else np.nan
            region_of[str(nid)] = str(reg)
    return values, region_of, label(sets[0])


def _tick_positions(n: int, most: int = 10) -> list[int]:
    step = max(1, int(np.ceil(n / most)))
    return list(range(0, n, step))


def _cmap_with_absent():
    return matplotlib.colormaps["viridis"].with_extremes(bad="#D9D9D9")


def _nanmedian(x: np.ndarray, axis: int) -> np.ndarray:
    with quiet_nan():
        return np.nanmedian(x, axis=axis)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with quiet_nan():
        return np.nanmean(x, axis=axis)


def _nanpercentile(x: np.ndarray, q: Sequence[float]) -> np.ndarray:
    with quiet_nan():
        return np.nanpercentile(x, q, axis=0)
