"""Serve a Brain-Score model from its own Python environment: the other end of :class:`ExternalBrainModel`.

This file is executed by another environment's python (``python -I -B driver.py CONFIG.json``), one where
Brain-Score is installed; it never imports neurofit, and neurofit never imports it. The config (JSON) says
which model to load -- ``model``: a Brain-Score identifier, loaded with ``brainscore_vision.load_model``, or
``factory``: ``/path/to/file.py:function`` -- plus, optionally, ``plugins``: extra plugin folders that
``load_model`` should find beside Brain-Score's own (shown to it through a temporary overlay of the
``brainscore_vision`` package made of symlinks, so the installed package is never modified). Both name code the
user chose.

Protocol: once the model is loaded, one JSON line on stdout (``identifier``, ``visual_degrees``); then, for
each JSON line on stdin -- ``stimuli_csv`` (the table with a ``stimulus_path`` column), ``region``,
``time_bins``, ``number_of_trials``, ``out`` -- the model records the region, looks at the stimuli, Brain-Score's
own ``write_netcdf`` writes the assembly to ``out``, and one JSON line answers (``{"ok": true}`` or the
error). Anything the model prints goes to stderr, never into the protocol.
"""

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

os.environ.setdefault("BS_INSTALL_DEPENDENCIES", "no")


def overlay(plugins, root):
    """A ``brainscore_vision`` package in ``root`` whose ``models/`` also holds ``plugins`` (symlinks only)."""
    spec = importlib.util.find_spec("brainscore_vision")
    real = Path(spec.origin).parent
    package = Path(root) / "brainscore_vision"
    package.mkdir()
    for entry in real.iterdir():
        if entry.name not in ("models", "__pycache__"):
            (package / entry.name).symlink_to(entry)
    models = package / "models"
    models.mkdir()
    for entry in (real / "models").iterdir():
        if entry.name != "__pycache__":
            (models / entry.name).symlink_to(entry)
    for plugin in plugins:
        plugin = Path(plugin).resolve()
        if (models / plugin.name).exists():
            raise SystemExit(f"plugin folder name {plugin.name!r} is taken by a Brain-Score plugin")
        (models / plugin.name).symlink_to(plugin)
    sys.path.insert(0, str(root))


def load(config):
    if config.get("factory"):
        path, _, function = config["factory"].rpartition(":")
        spec = importlib.util.spec_from_file_location("neurofit_external_model", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, function)()
    import brainscore_vision

    return brainscore_vision.load_model(config["model"])


def stimulus_set(csv_path, identifier):
    import pandas as pd
    from brainscore_core.supported_data_standards.brainio.stimuli import StimulusSet

    table = pd.read_csv(csv_path, dtype={"stimulus_id": str}, keep_default_na=False)
    paths = dict(zip(table["stimulus_id"], table.pop("stimulus_path")))
    stimuli = StimulusSet(table)
    stimuli.stimulus_paths = paths
    stimuli.identifier = identifier
    return stimuli


def record(model, request):
    from brainscore_core.supported_data_standards.brainio.packaging import write_netcdf

    stimuli = stimulus_set(request["stimuli_csv"], request["stimulus_set_identifier"])
    model.start_recording(request["region"], time_bins=[tuple(b) for b in request["time_bins"]])
    assembly = model.look_at(stimuli, number_of_trials=int(request["number_of_trials"]))
    write_netcdf(assembly, request["out"])


def main(config_path):
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # whatever the model prints goes to stderr
    config = json.loads(Path(config_path).read_text())
    root = tempfile.mkdtemp(prefix="neurofit-brainscore-overlay-")
    try:
        if config.get("plugins"):
            overlay(config["plugins"], root)
        model = load(config)
        protocol.write(json.dumps({"identifier": str(model.identifier),
                                   "visual_degrees": float(model.visual_degrees())}) + "\n")
        protocol.flush()
        for line in sys.stdin:
            try:
                record(model, json.loads(line))
                answer = {"ok": True}
            except Exception as err:  # the model's own failure, reported to neurofit in one line
                traceback.print_exc()
                answer = {"ok": False, "error": f"{type(err).__name__}: {err}".splitlines()[0]}
            protocol.write(json.dumps(answer) + "\n")
            protocol.flush()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
