"""Every figure renders from small ScoreSets into PDF, SVG and a 300-dpi PNG of the size asked for."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from PIL import Image
from scoreset_fixtures import make_scoreset

from neurofit.errors import NeurofitError
from neurofit.report import figures
from neurofit.report.style import DPI, OKABE_ITO, PALETTE, close, save_figure


@pytest.fixture(scope="module")
def models():
    ff = make_scoreset("feedforward", regions={"V4": 8, "IT": 10}, n_bins=15, late=0.3, seed=0)
    rec = make_scoreset("convrnn", regions={"V4": 8, "IT": 10}, n_bins=15, late=0.7, seed=1)
    return ff, rec


BUILDERS = {
    "predictivity_over_time": (lambda ff, rec: figures.predictivity_over_time([ff, rec], width=7.0, height=4.0),
                               (7.0, 4.0)),
    "difference_per_bin": (lambda ff, rec: figures.difference_per_bin(ff, rec, n_boot=100, width=7.0, height=2.5),
                           (7.0, 2.5)),
    "site_scatter": (lambda ff, rec: figures.site_scatter(ff, rec, window=(60, 150), width=3.5, height=3.5),
                     (3.5, 3.5)),
    "layer_step_heatmap": (lambda ff, rec: figures.layer_step_heatmap(rec, window=(60, 150), width=7.0, height=2.6),
                           (7.0, 2.6)),
    "ceiling_distributions": (lambda ff, rec: figures.ceiling_distributions([ff, rec], width=3.5, height=2.4),
                              (3.5, 2.4)),
    "peak_time_histogram": (lambda ff, rec: figures.peak_time_histogram([ff, rec], width=7.0, height=2.4),
                            (7.0, 2.4)),
}


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_figure_writes_pdf_svg_and_png_at_the_requested_size(name, models, tmp_path):
    build, (width, height) = BUILDERS[name]
    fig = build(*models)
    try:
        _assert_readable(fig)
        paths = save_figure(fig, tmp_path / name)
    finally:
        close(fig)
    assert sorted(paths) == ["pdf", "png", "svg"]
    for path in paths.values():
        assert path.exists() and path.stat().st_size > 1000
    assert paths["pdf"].read_bytes().startswith(b"%PDF")
    assert ET.parse(paths["svg"]).getroot().tag.endswith("svg")
    with Image.open(paths["png"]) as image:
        assert image.size == (round(width * DPI), round(height * DPI))
    assert not list(tmp_path.glob(".*.tmp")), "atomic writes leave no temporary files"


def _assert_readable(fig):
    """No text below 7 pt at print size, no top/right spines, no grid, and axis labels present."""
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_text().strip() and t.get_visible()]
    assert min(sizes) >= 7
    for ax in fig.axes:
        if ax.get_label() == "<colorbar>":
            continue
        assert not ax.spines["top"].get_visible() and not ax.spines["right"].get_visible()
        assert not any(line.get_visible() for line in [*ax.get_xgridlines(), *ax.get_ygridlines()])
    labelled = [ax for ax in fig.axes if ax.get_xlabel()]
    assert labelled, "figure has no axis label"


def test_time_axes_state_milliseconds_and_the_score_axis_its_normalisation(models):
    fig = figures.predictivity_over_time(list(models))
    try:
        assert all("(ms)" in ax.get_xlabel() for ax in fig.axes[2:])
        assert "r²/ceiling" in fig.axes[0].get_ylabel()
    finally:
        close(fig)


def test_palette_is_okabe_ito_and_models_keep_their_colour_across_benchmarks():
    assert set(PALETTE) <= set(OKABE_ITO.values())
    v4 = [make_scoreset(m, benchmark="v4", regions={"V4": 6}, n_bins=10, seed=s) for m, s in (("ff", 0), ("rec", 1))]
    it = [make_scoreset(m, benchmark="it", regions={"IT": 6}, n_bins=10, seed=s) for m, s in (("ff", 2), ("rec", 3))]
    fig = figures.predictivity_over_time([*v4, *it])
    try:
        v4_top, it_top = fig.axes[0], fig.axes[1]
        colours = [[line.get_color() for line in ax.get_lines() if line.get_label() in ("ff", "rec")]
                   for ax in (v4_top, it_top)]
        assert colours[0] == colours[1] == [PALETTE[0], PALETTE[1]]
    finally:
        close(fig)


def test_save_figure_is_byte_stable(models, tmp_path):
    fig = figures.site_scatter(models[1], models[0])
    try:
        first = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in save_figure(fig, tmp_path / "a").items()}
        second = {k: hashlib.sha256(p.read_bytes()).hexdigest() for k, p in save_figure(fig, tmp_path / "b").items()}
    finally:
        close(fig)
    assert first == second
    assert b"CreationDate" not in (tmp_path / "a.pdf").read_bytes()
    assert b"<dc:date>" not in (tmp_path / "a.svg").read_bytes()


def test_heatmap_without_grid_names_the_missing_variable(models):
    with pytest.raises(NeurofitError, match="'grid_ceiled'"):
        figures.layer_step_heatmap(models[0].drop_vars("grid_ceiled"))


def test_figures_name_missing_per_site_variables(models):
    with pytest.raises(NeurofitError, match="'ceiling'"):
        figures.ceiling_distributions(models[0].drop_vars("ceiling"))
    with pytest.raises(NeurofitError, match="'ceiled'"):
        figures.peak_time_histogram([models[0].drop_vars("ceiled")])


def test_predictivity_without_aggregates_falls_back_to_the_site_median(models):
    bare = models[0].drop_vars([v for v in models[0].data_vars if str(v).startswith("median_")])
    fig = figures.predictivity_over_time(bare)
    try:
        line = fig.axes[0].get_lines()[0]
        sites = bare.region.values == "V4"
        from neurofit.scoreset import bin_reliability

        # unreliable bins (ceiling not reliably above zero) are shaded, and their ceiled score is not drawn
        reliable = bin_reliability(bare).reliable["V4"]
        assert 0 < reliable.sum() < reliable.size
        np.testing.assert_allclose(line.get_ydata(),
                                   np.where(reliable, np.nanmedian(bare.ceiled.values[sites], axis=0), np.nan))
        assert not fig.axes[0].collections or all(c.get_alpha() != 0.2 for c in fig.axes[0].collections)
    finally:
        close(fig)


def test_peak_times_are_the_bin_centres_of_each_sites_maximum_among_reliable_bins(models):
    ff = models[0]
    sites = ff.region.values == "IT"
    values = ff.ceiled.values[sites].copy()
    values[ff.ceiling.values[sites] < 0.3] = np.nan
    centres = (ff.time_bin_start.values + ff.time_bin_end.values) / 2
    expected = centres[np.nanargmax(values, axis=1)]
    np.testing.assert_array_equal(figures.peak_times(ff, "IT", min_ceiling=0.3), expected)
    assert figures.peak_times(ff, "IT", min_ceiling=2.0).size == 0


def test_difference_figure_marks_exactly_the_significant_bins(models):
    from neurofit.stats import compare_many

    ff, rec = models
    comparisons = compare_many([(ff, rec)], n_boot=100)
    fig = figures.difference_per_bin(ff, rec, comparisons=comparisons)
    try:
        for ax, region in zip(fig.axes, ["V4", "IT"]):
            stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
            sel = comparisons[0].sel(region=region)
            centres = (sel.time_bin_start.values + sel.time_bin_end.values) / 2
            np.testing.assert_array_equal(stars[0].get_xdata(), centres[sel.significant.values])
            # and a star sits exactly where the drawn interval excludes zero
            excludes = (sel.ci_low.values > 0) | (sel.ci_high.values < 0)
            np.testing.assert_array_equal(centres[sel.significant.values], centres[sel.tested.values & excludes])
    finally:
        close(fig)


@pytest.mark.parametrize("name", ["predictivity_over_time", "difference_per_bin", "layer_step_heatmap",
                                  "ceiling_distributions", "peak_time_histogram"])
def test_labels_and_legends_do_not_collide_at_single_column_width(name, models):
    ff, rec = models
    build = {
        "predictivity_over_time": lambda: figures.predictivity_over_time([ff, rec], width=3.5, height=4.2),
        "difference_per_bin": lambda: figures.difference_per_bin(ff, rec, n_boot=50, width=3.5, height=2.8),
        "layer_step_heatmap": lambda: figures.layer_step_heatmap(rec, width=3.5, height=2.8),
        "ceiling_distributions": lambda: figures.ceiling_distributions([ff], width=3.5, height=2.4),
        "peak_time_histogram": lambda: figures.peak_time_histogram([ff, rec], width=3.5, height=2.6),
    }[name]
    fig = build()
    try:
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        boxes = []
        for ax in fig.axes:
            for text in (ax.xaxis.label, ax.yaxis.label, ax.title):
                if text.get_text():
                    boxes.append(text.get_window_extent(renderer))
        legends = [artist.get_window_extent(renderer) for artist in fig.legends]
        for i, a in enumerate(boxes):
            for b in boxes[i + 1:]:
                assert not a.overlaps(b), f"{name}: two axis labels/titles overlap"
            for legend in legends:
                assert not a.overlaps(legend), f"{name}: the legend covers a label"
        for legend in legends:
            for ax in fig.axes:
                assert not legend.overlaps(ax.get_window_extent(renderer)), f"{name}: the legend covers data"
        width, height = canvas.get_width_height()
        for box in [*boxes, *legends]:
            assert box.x0 >= -1 and box.x1 <= width + 1 and box.y0 >= -1 and box.y1 <= height + 1, "text cut off"
    finally:
        close(fig)


def _one_wide_bin(model: str, seed: int, late: float):
    ds = make_scoreset(model, regions={"V4": 20}, n_bins=15, late=late, seed=seed, grid=False).isel(time_bin=[10])
    return ds.assign_coords(time_bin_start=("time_bin", [50.0]), time_bin_end=("time_bin", [150.0]))


def test_a_single_wide_bin_is_drawn_as_points_with_error_bars_labelled_by_its_extent():
    ff, rec = _one_wide_bin("ff", 0, 0.3), _one_wide_bin("rec", 1, 0.7)
    fig = figures.predictivity_over_time([ff, rec])
    try:
        top = fig.axes[0]
        assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["50–150"]  # the shared x axis
        assert len(top.containers) == 2  # one errorbar per model
        ys = sorted(float(c.lines[0].get_ydata()[0]) for c in top.containers)
        assert ys == sorted([float(ff.median_ceiled.values[0, 0]), float(rec.median_ceiled.values[0, 0])])
    finally:
        close(fig)
    with pytest.raises(NeurofitError, match="at least 3 time bins"):
        figures.peak_time_histogram([ff, rec])
