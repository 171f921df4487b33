"""Issue 14 from the command line: weights named, the random baseline, r-only output, empty stimulus tables."""

from __future__ import annotations

import numpy as np
import pytest
from test_scoring_cli import _score_args, toy_files  # noqa: F401  (fixture)

from neurofit.cli import main
from neurofit.scoreset import read_scoreset


def test_score_names_the_weights_and_the_baseline_random_scores_beside_it(toy_files, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "cz.nc"
    assert main(_score_args(toy_files, out, tmp_path / "work", extra=["--baseline", "random"])) == 0
    text = capsys.readouterr().out
    assert text.startswith("metric: ")  # the first line names the metric
    assert "weights: trained: shipped checkpoint cornet_z.safetensors (sha256 " in text
    assert "weights: untrained (random init, seed 0)" in text
    assert "vs random init" in text
    trained, random = read_scoreset(out), read_scoreset(tmp_path / "cz-random.nc")
    assert trained.attrs["weights"].startswith("trained: ") and random.attrs["weights"].startswith("untrained")
    assert not np.allclose(trained.r.values, random.r.values, equal_nan=True)
    # compare names the weights of both, right under the metric line
    assert main(["compare", str(out), str(tmp_path / "cz-random.nc"), "--n-boot", "50"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("compared: ") and lines[1].startswith("weights: cornet_z: trained: shipped checkpoint")
    assert "; cornet_z (random init): untrained (random init, seed 0)" in lines[1]


def test_weights_random_scores_the_architecture_untrained(toy_files, tmp_path, capsys):  # noqa: F811
    assert main(_score_args(toy_files, tmp_path / "r.nc", tmp_path / "work", extra=["--weights", "random"])) == 0
    assert "weights: untrained (random init, seed 0)" in capsys.readouterr().out
    assert main(_score_args(toy_files, tmp_path / "x.nc", tmp_path / "work", model="cornet_rt",
                            extra=["--weights", "trained"])) == 2
    assert "no shipped trained checkpoint" in capsys.readouterr().err


def test_r_only_benchmarks_print_median_r_with_cis_and_compare_uses_r(toy_files, tmp_path, capsys):  # noqa: F811
    (tmp_path / "r").mkdir()
    bench = tmp_path / "r" / "toy.toml"
    bench.write_text((toy_files / "toy.toml").read_text().replace("[commitment]",
                                                                  "[ceiling]\nmethod = \"none\"\n\n[commitment]"))
    paths = []
    for name, extra in (("a", []), ("b", ["--layers", "V4=V2", "IT=IT"])):
        args = _score_args(toy_files, tmp_path / f"{name}.nc", tmp_path / "work", extra=extra)
        args[args.index("--benchmark") + 1] = str(bench)
        assert main(args) == 0
        paths.append(str(tmp_path / f"{name}.nc"))
    text = capsys.readouterr().out
    assert "median ceiled" not in text and "no noise ceiling" in text.splitlines()[0]
    row = next(line for line in text.splitlines() if line.startswith("IT ") and "no ceiling" in line)
    assert row.count("[") == 2 and "nan" not in row  # median r with its stimulus and site CIs
    assert main(["compare", *paths, "--n-boot", "100", "--out", str(tmp_path / "c.nc")]) == 0
    text = capsys.readouterr().out
    assert text.startswith("compared: Pearson r per site") and "no noise ceiling" in text.splitlines()[0]
    from neurofit.data.io import read_dataset

    result = read_dataset(tmp_path / "c.nc")
    assert result.attrs["variable"] == "r" and "no noise ceiling" in result.attrs["variable_note"]
    assert np.isfinite(result.median_difference.values).all()


@pytest.mark.parametrize("content", ["", "  \n", "stimulus_id,object_name\n"])
def test_an_empty_or_header_only_stimulus_table_is_a_one_line_error(toy_files, tmp_path, capsys, content):  # noqa: F811
    csv = tmp_path / "stimuli.csv"
    csv.write_text(content)
    args = _score_args(toy_files, tmp_path / "x.nc", tmp_path / "work")
    args[args.index("--stimuli") + 1] = str(csv)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(csv) in err
    assert ("the file is empty" in err) if "stimulus_id" not in content else ("no stimulus rows" in err)
    assert main(["data", "validate", str(toy_files / "rec.nc"), "--stimuli", str(csv)]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_report_names_each_models_weights(toy_files, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "cz.nc"
    assert main(_score_args(toy_files, out, tmp_path / "work", extra=["--baseline", "random"])) == 0
    assert main(["report", str(out), str(tmp_path / "cz-random.nc"), "--out", str(tmp_path / "rep")]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "untrained (random init, seed 0)" in page and "trained: shipped checkpoint cornet_z.safetensors" in page
