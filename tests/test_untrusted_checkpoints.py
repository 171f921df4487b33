"""Bad-input corpus, checkpoints: a file never names code to run, and a malformed one fails in one line.

The exploit of issue 15: a ``.safetensors`` whose metadata said ``neurofit_arch = "os:system"`` and
``neurofit_config = {"command": ...}`` ran the shell command when loaded. Each test here builds such a file
and checks that nothing ran and that the refusal says why.
"""

from __future__ import annotations

import json
import sys

import pytest
import torch
from safetensors.torch import save_file

from neurofit.cli import main
from neurofit.errors import NeurofitError
from neurofit.models.checkpoint import load_model, save_checkpoint


def _write(path, arch, config, tensors=None):
    meta = {"neurofit_arch": arch}
    if config is not None:
        meta["neurofit_config"] = config if isinstance(config, str) else json.dumps(config)
    save_file(tensors or {"w": torch.zeros(1)}, str(path), metadata=meta)
    return path


@pytest.fixture
def exploit(tmp_path):
    marker = tmp_path / "pwned"
    path = _write(tmp_path / "evil.safetensors", "os:system", {"command": f"touch {marker}"})
    return path, marker


def test_the_os_system_exploit_runs_nothing_and_says_why(exploit):
    path, marker = exploit
    with pytest.raises(NeurofitError, match=r"evil\.safetensors: metadata 'neurofit_arch' names code to import "
                                            r"\('os:system'\).*nothing was run"):
        load_model(path)
    assert not marker.exists()


def test_the_exploit_through_the_score_cli_exits_2_without_running(exploit, tmp_path, capsys):
    path, marker = exploit
    out = tmp_path / "scores.nc"
    status = main(["score", "--model", str(path), "--benchmark", "synthetic-ventral-it-temporal",
                   "--out", str(out), "--quiet", "--no-cache"])
    err = capsys.readouterr().err
    assert status == 2 and not marker.exists() and not out.exists()
    assert err.count("\n") == 1 and "names code to import ('os:system')" in err


def test_the_exploit_through_analyze_dynamics_runs_nothing(exploit):
    from neurofit.analysis.dynamics import resolve_model

    path, marker = exploit
    with pytest.raises(NeurofitError, match="names code to import"):
        resolve_model(path)
    assert not marker.exists()


def test_metadata_cannot_import_a_module(tmp_path):
    sys.modules.pop("antigravity", None)
    path = _write(tmp_path / "a.safetensors", "antigravity:nothing", {})
    with pytest.raises(NeurofitError, match="names code to import"):
        load_model(path)
    assert "antigravity" not in sys.modules


def test_metadata_cannot_make_a_zero_argument_call(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sys.modules[__name__], "factory_spy", lambda: calls.append(1), raising=False)
    path = _write(tmp_path / "z.safetensors", f"{__name__}:factory_spy", None)
    with pytest.raises(NeurofitError, match="names code to import"):
        load_model(path)
    assert calls == []


def test_an_unknown_plain_name_in_metadata_is_not_a_zoo_model(tmp_path):
    path = _write(tmp_path / "u.safetensors", "system", {})
    with pytest.raises(NeurofitError, match=r"metadata 'neurofit_arch' is 'system', not a zoo name"):
        load_model(path)


def test_an_import_path_the_user_types_is_honoured(tmp_path):
    model = load_model("cornet_z", width=8)
    path = save_checkpoint(model, tmp_path / "z.safetensors", arch="neurofit.models.zoo.feedforward:cornet_z")
    with pytest.raises(NeurofitError, match="names code to import"):
        load_model(path)
    loaded = load_model("neurofit.models.zoo.feedforward:cornet_z", path)
    assert loaded.config["width"] == 8


@pytest.mark.parametrize("config, why", [
    ("[1, 2]", "must be a JSON object of factory arguments, got list"),
    ('"width"', "must be a JSON object of factory arguments, got str"),
    ("{width: 8", "is not JSON"),
])
def test_a_config_that_is_not_a_json_object_is_one_line(tmp_path, config, why):
    path = _write(tmp_path / "c.safetensors", "cornet_z", config)
    with pytest.raises(NeurofitError, match=rf"c\.safetensors: metadata 'neurofit_config' {why}"):
        load_model(path)


def test_a_config_asking_for_a_huge_network_allocates_nothing(tmp_path):
    # width 10**6 would ask for terabytes; the network is built on the meta device and refused because the
    # file does not hold tensors of those shapes
    weights = load_model("cornet_z", width=8).state_dict()
    path = _write(tmp_path / "h.safetensors", "cornet_z", {"width": 10**6}, tensors=dict(weights))
    with pytest.raises(NeurofitError, match=r"does not fit .*shape mismatches"):
        load_model(path)


def test_the_exploit_through_compare_models_exits_2_without_running(exploit, capsys):
    path, marker = exploit
    status = main(["compare", "--models", str(path), "cornet_z", "--benchmark", "synthetic-ventral-it-temporal",
                   "--quiet"])
    err = capsys.readouterr().err
    assert status == 2 and not marker.exists() and err.count("\n") == 1 and "names code to import" in err


@pytest.mark.parametrize(("record", "message"), [
    ("{not json", "metadata 'neurofit_training' is not JSON"),
    ('["steps", 4]', "metadata 'neurofit_training' must be a JSON object, got list"),
    ('{"steps": 1000000}', r"key 'steps' must be a whole number in \[1, 1000\], got 1000000"),
    ('{"steps": 2.5}', "key 'steps' must be a whole number"),
    ('{"image_size": 100000}', "key 'image_size' must be a whole number in"),
    ('{"holdout": "half"}', "key 'holdout' must be a number in"),
    ('{"seed": -1}', "key 'seed' must be a whole number in"),
    ('{"classes": "abc"}', "key 'classes' must be a list of names"),
])
def test_a_training_record_that_would_steer_an_analysis_badly_is_one_line(tmp_path, record, message):
    from neurofit.analysis.dynamics import resolve_model

    model = load_model("cornet_z", width=8)
    path = save_checkpoint(model, tmp_path / "z.safetensors", metadata={"neurofit_training": record})
    with pytest.raises(NeurofitError, match=rf"z\.safetensors: .*{message}"):
        resolve_model(path)
