"""neurofit's figure style and the one way figures are written to disk.

Sizes follow journal columns (single 3.5 in, double 7 in) with fonts that stay readable when printed at
that width; colours are the Okabe-Ito palette, distinguishable with the common colour-vision deficiencies;
no top/right spines and no heavy grids. :func:`save_figure` writes vector PDF and SVG plus a 300-dpi PNG,
each atomically and without timestamps, so regenerating a report gives the same files.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from neurofit.atomic import atomic_path
from neurofit.errors import NeurofitError

SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.0
DPI = 300

# Okabe & Ito (2008), "Color Universal Design"; black last, kept for reference lines.
OKABE_ITO: dict[str, str] = {
    "orange": "#E69F00",
    "sky_blue": "#56B4E9",
    "bluish_green": "#009E73",
    "yellow": "#F0E442",
    "blue": "#0072B2",
    "vermillion": "#D55E00",
    "reddish_purple": "#CC79A7",
    "black": "#000000",
}
# Yellow is hard to see on white, so it comes last among the line colours.
PALETTE: tuple[str, ...] = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
CEILING_COLOUR = "#7F7F7F"
STIMULUS_COLOUR = "#404040"

RC: dict[str, object] = {
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": False,
    "axes.linewidth": 0.8,
    "axes.prop_cycle": matplotlib.cycler(color=list(PALETTE)),
    "lines.linewidth": 1.4,
    "xtick.major.width": 0.8,
    "ytick.major.width": 0.8,
    "xtick.major.size": 3,
    "ytick.major.size": 3,
    "figure.dpi": 100,
    "savefig.dpi": DPI,
    "pdf.fonttype": 42,
    "svg.fonttype": "path",
    # A fixed salt makes the SVG element ids, and so the file, the same on every run.
    "svg.hashsalt": "neurofit",
    "image.cmap": "viridis",
}

# Keys matplotlib writes into each format that would otherwise carry the time or vary between runs.
_METADATA: dict[str, dict[str, object]] = {
    "pdf": {"CreationDate": None, "ModDate": None, "Producer": None, "Creator": "neurofit"},
    "svg": {"Date": None, "Creator": "neurofit"},
    "png": {"Software": "neurofit"},
}


def colour(i: int) -> str:
    """The ``i``-th line colour of the palette (cycled).

    Example
    -------
    >>> colour(0)
    '#0072B2'
    """
    return PALETTE[i % len(PALETTE)]


@contextmanager
def neurofit_style() -> Iterator[None]:
    """Apply neurofit's rcParams inside the block (and restore the caller's afterwards).

    Example
    -------
    >>> with neurofit_style():
    ...     fig = new_figure(SINGLE_COLUMN_IN, 2.5)
    >>> fig.get_size_inches().tolist()
    [3.5, 2.5]
    """
    with matplotlib.rc_context(RC):
        yield


def new_figure(width_in: float, height_in: float, **subplots_kw) -> Figure:
    """A figure of the given size in inches (use :data:`SINGLE_COLUMN_IN` or :data:`DOUBLE_COLUMN_IN`).

    The figure is not registered with pyplot (no GUI backend is touched, so it works headless and never
    changes a notebook's backend), and building many never leaks memory or warns.
    Extra keywords go to :meth:`Figure.subplots` when ``nrows``/``ncols`` are among them.

    Example
    -------
    >>> new_figure(7.0, 2.0).get_size_inches().tolist()
    [7.0, 2.0]
    """
    if width_in <= 0 or height_in <= 0:
        raise NeurofitError(f"figure size must be positive, got {width_in} x {height_in} in")
    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    if subplots_kw:
        fig.subplots(**subplots_kw)
    return fig


def save_figure(
    fig: Figure, stem: str | os.PathLike[str], formats: Sequence[str] = ("pdf", "svg", "png")
) -> dict[str, Path]:
    """Write ``fig`` as ``stem.pdf``, ``stem.svg`` and a 300-dpi ``stem.png``, atomically and timestamp-free.

    The PNG has exactly ``width_in * 300`` x ``height_in * 300`` pixels (no tight bounding box, so the
    size asked for is the size printed). The figure's layout is fixed by the first save: later changes to
    the figure are drawn but not laid out again.

    Parameters
    ----------
    fig : Figure
    stem : path without suffix, e.g. ``out/predictivity``; parent folders are created.
    formats : any of ``"pdf"``, ``"svg"``, ``"png"``.

    Returns
    -------
    dict format -> Path written.

    Example
    -------
    >>> import tempfile, pathlib
    >>> fig = new_figure(SINGLE_COLUMN_IN, 2.0, nrows=1)
    >>> paths = save_figure(fig, pathlib.Path(tempfile.mkdtemp()) / "fig")
    >>> sorted(paths)
    ['pdf', 'png', 'svg']
    """
    stem = Path(stem)
    unknown = [fmt for fmt in formats if fmt not in _METADATA]
    if unknown:
        raise NeurofitError(f"unknown figure format {unknown[0]!r}: use any of {sorted(_METADATA)}")
    out: dict[str, Path] = {}
    with neurofit_style():
        # Constrained layout moves the axes a little on every draw: laying out once and then fixing the layout
        # gives every format the same geometry and makes saving again give the same bytes.
        fig.draw_without_rendering()
        fig.set_layout_engine("none")
        for fmt in formats:
            target = stem.with_name(f"{stem.name}.{fmt}")
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt, dpi=DPI, metadata=_METADATA[fmt])
            out[fmt] = target
    return out


def close(fig: Figure) -> None:
    """Release a figure made by :func:`new_figure` (or by pyplot, which then forgets it too)."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    fig.clear()
