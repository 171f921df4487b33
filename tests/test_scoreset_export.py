"""Per-site export: a ScoreSet as a long table (pandas, CSV, parquet) with one row per site and bin."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scoreset_fixtures import make_scoreset

from neurofit.cli import main
from neurofit.data.io import write_netcdf
from neurofit.errors import NeurofitError
from neurofit.scoreset import bin_reliability, export_scores, to_dataframe


def test_the_table_holds_every_site_and_bin_with_its_values_and_reliability():
    ds = make_scoreset("rec", regions={"V4": 5, "IT": 7}, n_bins=6, grid=False)
    table = to_dataframe(ds)
    assert len(table) == 12 * 6 and table.model_id.unique().tolist() == ["rec"]
    site = table[(table.neuroid_id == "it_003") & (table.time_bin_start == 30.0)].iloc[0]
    k = list(ds.neuroid_id.values).index("it_003")
    assert site.region == "IT" and site.time_bin_end == 40.0
    for name in ("r", "ceiling", "ceiled"):
        np.testing.assert_equal(site[name], ds[name].values[k, 3])
    assert site.reliable == bin_reliability(ds).reliable["IT"][3]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips_through_csv_and_parquet(tmp_path, capsys, suffix):
    ds = make_scoreset("rec", regions={"IT": 4}, n_bins=3, grid=False)
    path = write_netcdf(ds, tmp_path / "rec.nc")
    assert main(["export", "table", str(path), "--out", str(tmp_path / f"rec{suffix}")]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {tmp_path / f'rec{suffix}'}"
    back = pd.read_csv(tmp_path / "rec.csv") if suffix == ".csv" else pd.read_parquet(tmp_path / "rec.parquet")
    pd.testing.assert_frame_equal(back, to_dataframe(ds), check_dtype=False)


def test_export_names_the_formats_it_writes(tmp_path):
    with pytest.raises(NeurofitError, match=r"\.csv or \.parquet"):
        export_scores(make_scoreset("x", regions={"IT": 2}, n_bins=2, grid=False), tmp_path / "x.xlsx")
