"""``neurofit report``: one offline HTML page with figures, score tables, methods and full provenance."""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import numpy as np
import pytest
from scoreset_fixtures import make_scoreset

from neurofit.cli import main
from neurofit.data.io import write_netcdf
from neurofit.report import report
from neurofit.report.html import methods_text, score_table


def write_demo_like_scoresets(folder: Path) -> list[Path]:
    """A feedforward and a recurrent model on a V4 and an IT benchmark; the feedforward IT set has no grid."""
    specs = [
        ("feedforward", "synthetic-ventral-v4-temporal", {"V4": 10}, 0.3, 0, True),
        ("convrnn", "synthetic-ventral-v4-temporal", {"V4": 10}, 0.7, 1, True),
        ("feedforward", "synthetic-ventral-it-temporal", {"IT": 12}, 0.3, 2, False),
        ("convrnn", "synthetic-ventral-it-temporal", {"IT": 12}, 0.7, 3, True),
    ]
    paths = []
    for model, bench, regions, late, seed, grid in specs:
        ds = make_scoreset(model, benchmark=bench, regions=regions, n_bins=15, late=late, seed=seed, grid=grid)
        paths.append(write_netcdf(ds, folder / f"{model}-{bench}.nc"))
    return paths


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    paths = write_demo_like_scoresets(folder)
    index = report(paths, folder / "out", window=(60, 150), n_boot=200)
    return paths, index, index.read_text(encoding="utf-8")


def test_report_writes_index_and_every_linked_figure(built):
    _, index, page = built
    assert index.name == "index.html"
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    pngs = [s for s in sources if s.endswith(".png")]
    # predictivity, difference, one scatter, three grids (one ScoreSet has none), ceilings, peak times
    assert len(re.findall(r'<img src="([^"]+)"', page)) == 8
    for src in sources:
        target = index.parent / src
        assert target.exists() and target.stat().st_size > 0, src
    assert {Path(s).suffix for s in sources} == {".png", ".svg", ".pdf"}
    assert len(pngs) == 16  # each figure's image and its PNG link


def test_report_works_offline(built):
    page = built[2]
    assert "<script" not in page and "<link" not in page
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert "@import" not in page and "url(" not in page


def test_report_tables_average_every_model_over_the_same_reliable_driven_bins(built):
    paths, _, page = built
    from neurofit.data.io import read_dataset
    from neurofit.scoreset import bin_reliability

    sets = [read_dataset(p) for p in paths]
    rows = score_table(sets, (20, 150), n_boot=200)
    assert [(r["model"], r["region"]) for r in rows] == [("feedforward", "V4"), ("convrnn", "V4"),
                                                         ("feedforward", "IT"), ("convrnn", "IT")]
    for pair in (rows[:2], rows[2:]):
        assert pair[0]["bins"] == pair[1]["bins"]  # like with like: one set of bins per benchmark and region
    ds = sets[1]
    window = (ds.time_bin_start.values >= 20) & (ds.time_bin_end.values <= 150)
    mask = window & bin_reliability(ds).reliable["V4"] & np.isfinite(sets[0].median_ceiled.values[0])
    assert 0 < mask.sum() < window.sum()  # the fixture's early bins are unreliable and left out
    assert float(rows[1]["score"]) == pytest.approx(ds.median_ceiled.values[0, mask].mean(), abs=5e-4)
    low, high = (float(v) for v in rows[1]["ci"].strip("[]").split(","))
    assert low < float(rows[1]["score"]) < high and rows[1]["ci_how"] == "sites resampled"
    shown = score_table(sets, (60, 150), n_boot=200)  # the page's window and draws
    table = page[page.index('<table id="scores"'):]
    table = table[:table.index("</table>")]
    assert table.count("<tr>") == 5 and shown[1]["score"] in table and shown[1]["ci"] in table
    caption = html.unescape(page[page.index("<h2>Scores per region</h2>"):page.index('<table id="scores"')])
    assert "averaged over the same bins" in caption and "over the bins of over" not in caption
    unreliable = page[page.index('<table id="unreliable"'):]
    assert "0-" in unreliable[:unreliable.index("</table>")]
    comparisons = page[page.index('<table id="comparisons"'):]
    assert "convrnn − feedforward" in comparisons and "ms" in comparisons


def test_report_skips_a_file_that_is_not_a_scoreset_with_a_one_line_note(built, tmp_path, capsys):
    from neurofit.stats.compare import compare

    paths = built[0]
    comparison = tmp_path / "compare.nc"
    compare(paths[0], paths[1], n_boot=50, out=comparison)
    index = report([*paths[:2], comparison], tmp_path / "r", n_boot=50)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped compare.nc: a comparison" in err
    assert "skipped compare.nc" in index.read_text()


def test_report_shows_the_provenance_of_every_scoreset(built):
    paths, _, page = built
    from neurofit.data.io import read_dataset

    text = html.unescape(page)
    for i, path in enumerate(paths):
        ds = read_dataset(path)
        assert hashlib.sha256(path.read_bytes()).hexdigest() in text
        block = text[text.index(f'id="provenance-{i + 1}"'):]
        block = block[:block.index("</table>")]
        for key, value in ds.attrs.items():
            assert f"<td>{key}</td>" in block
            assert str(value) in block


def test_methods_paragraph_is_generated_from_the_attrs(built):
    text = html.unescape(re.sub(r"<[^>]+>", " ", built[2]))
    methods = text[text.index("Methods"):text.index("Provenance")]
    for needle in ["neurofit 0.1.0", "partial least squares", "[pls]", "K-fold", "[kfold]", "r²/ceiling",
                   "[r2_over_ceiling]", "[one_to_one]", "[per_bin]", "Spearman-Brown",
                   "median over sites of the paired per-site differences", "bootstrap p", "Benjamini-Hochberg",
                   "fdr_bh", "200 draws", "Benjamini & Yekutieli 2005", "excludes zero"]:
        assert needle in methods, needle


def test_methods_list_every_distinct_value_and_say_when_an_attr_is_missing():
    a = make_scoreset("a", n_bins=5)
    b = make_scoreset("b", n_bins=5)
    b.attrs["metric"] = "ridge"
    del b.attrs["mapping_policy"]
    del a.attrs["mapping_policy"]
    text = " ".join(methods_text([a, b], []))
    assert "[pls]" in text and "[ridge]" in text
    assert "attr 'mapping_policy' missing" in text
    assert "no statistical comparison" in text


def test_missing_grid_is_a_note_naming_the_variable(built):
    page = html.unescape(built[2])
    assert "feedforward on synthetic-ventral-it-temporal: no 'grid_ceiled' in this ScoreSet" in page


@pytest.mark.slow
def test_report_is_deterministic(built, tmp_path):
    paths, index, page = built
    again = report(paths[:2], tmp_path / "a", window=(60, 150), n_boot=50)
    again2 = report(paths[:2], tmp_path / "b", window=(60, 150), n_boot=50)
    assert again.read_bytes() == again2.read_bytes()
    for f in sorted((tmp_path / "a" / "figures").iterdir()):
        assert f.read_bytes() == (tmp_path / "b" / "figures" / f.name).read_bytes(), f.name


def test_cli_report_writes_the_page_and_prints_its_path(tmp_path, capsys):
    ds = make_scoreset("solo", regions={"IT": 6}, n_bins=8, grid=False)
    path = write_netcdf(ds, tmp_path / "solo.nc")
    assert main(["report", str(path), "--out", str(tmp_path / "r"), "--window", "20", "60", "--n-boot", "50"]) == 0
    assert capsys.readouterr().out.strip().endswith("index.html")
    page = (tmp_path / "r" / "index.html").read_text()
    assert "it needs at least two models scored on the same benchmark" in page


def test_cli_report_errors_are_one_line_naming_the_problem(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing.nc"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.nc" in capsys.readouterr().err
    ds = make_scoreset("solo", regions={"IT": 6}, n_bins=8)
    path = write_netcdf(ds, tmp_path / "solo.nc")
    assert main(["report", str(path), "--out", str(tmp_path / "r"), "--reference", "nope"]) == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "solo" in err
    broken = write_netcdf(ds.drop_vars("ceiling"), tmp_path / "broken.nc")
    assert main(["report", str(broken), "--out", str(tmp_path / "r2")]) == 2
    assert "'ceiling'" in capsys.readouterr().err
    assert not (tmp_path / "r2" / "index.html").exists()
    assert np.isfinite(ds.ceiling.values).any()


def test_scoresets_that_cannot_be_compared_give_a_note_not_a_crash(tmp_path):
    a = make_scoreset("ff", regions={"IT": 6}, n_bins=8, grid=False)
    b = make_scoreset("rec", regions={"IT": 6}, n_bins=6, grid=False, seed=1)  # other time bins
    page = report([a, b], tmp_path / "r", n_boot=20).read_text()
    assert "Model comparison: skipped (ScoreSets &#x27;ff&#x27; and &#x27;rec&#x27; have different time bins" in page
