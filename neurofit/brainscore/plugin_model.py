"""A neurofit model as a Brain-Score model: the ``model.py`` of a plugin written by ``neurofit export brainscore``.

This file is self-contained. It needs torch, safetensors, numpy and Pillow, and the network's own code, copied
beside it into ``neurofit_arch/`` by the export; never neurofit itself (which cannot be installed beside
Brain-Score's pinned xarray). ``neurofit_model.json`` holds what neurofit committed the model to:

* ``regions``: the layer that stands for each region and its latency offset in ms;
* the TimeMap: model step ``t`` covers ``[t0_ms + t * step_ms, t0_ms + (t + 1) * step_ms)`` ms after stimulus
  onset (shifted by the region's offset); the image is on from step ``on`` to ``off`` (``null``: to the end)
  on a mid-gray screen; ``first_driven`` is the first step at which each layer carries image-driven signal;
* the preprocessing: images (already placed on screen by the benchmark) are centre-cropped to a square,
  resized to ``input_size`` (bilinear, antialiased), scaled to [0, 1] and normalised with ``mean``/``std``.

A recorded time bin is the overlap-weighted mean of the driven steps that overlap it (neurofit's ``portion``
mapping: with 10 ms bins and 10 ms steps, one step per bin). A bin that no driven step overlaps holds the
network's state over that bin, which carries no image information. A feedforward network (one step) gives
its one response for every bin, as Brain-Score does for static models.
"""

import importlib
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

try:
    from brainscore_vision.model_interface import BrainModel
except ImportError:  # so that this file can be imported (and tested) where Brain-Score is not installed
    BrainModel = object

HERE = Path(__file__).resolve().parent
GRAY = 0.5  # the screen's gray level in [0, 1], before normalisation
BATCH = 32


def load_spec(folder=HERE):
    return json.loads((Path(folder) / "neurofit_model.json").read_text())


def build_network(spec, package=__package__, folder=HERE):
    """The network from its copied code and its safetensors weights (loaded strictly), in eval mode on CPU."""
    module = importlib.import_module(f"{package}.neurofit_arch.{spec['module']}")
    network = getattr(module, spec["factory"])(**spec["config"])
    state = load_file(str(Path(folder) / spec["weights"]))
    target = getattr(network, spec["weights_module"]) if spec["weights_module"] else network
    target.load_state_dict(state, strict=True)
    return network.eval()


def load_image(path, size):
    """An image file as float32 ``[3, size, size]`` in [0, 1]: centre square, bilinear antialiased resize."""
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    tensor = torch.from_numpy(np.array(pixels, copy=True)).permute(2, 0, 1).float().div_(255.0)
    height, width = tensor.shape[-2:]
    if height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        tensor = tensor[:, top:top + side, left:left + side]
    if tensor.shape[-1] != size:
        tensor = F.interpolate(tensor[None], size=(size, size), mode="bilinear", align_corners=False,
                               antialias=True)[0].clamp_(0.0, 1.0)
    return tensor


def bin_weights(bins, steps, step_ms, t0_ms, first_driven):
    """Per bin, ``[(step, weight), ...]``: the driven steps overlapping it, weighted by overlap in ms."""
    out = []
    for start, end in bins:
        terms = []
        for step in range(steps):
            s0 = t0_ms + step * step_ms
            overlap = min(end, s0 + step_ms) - max(start, s0)
            if overlap > 1e-9:
                terms.append((step, overlap))
        driven = [(step, w) for step, w in terms if step >= first_driven]
        chosen = driven or terms or [(steps - 1, 1.0)]
        total = sum(w for _, w in chosen)
        out.append([(step, w / total) for step, w in chosen])
    return out


class NeurofitModel(BrainModel):
    """A neurofit model recorded per region and time bin, as Brain-Score benchmarks record models."""

    def __init__(self, folder=HERE, package=__package__):
        self.spec = load_spec(folder)
        self.network = build_network(self.spec, package, folder)
        self._region = None
        self._bins = None
        if not torch.cuda.is_available():
            torch.set_flush_denormal(True)  # gated recurrent cells run up to 20x slower on denormals

    @property
    def identifier(self):
        return self.spec["identifier"]

    def visual_degrees(self):
        return self.spec["visual_degrees"]

    def start_task(self, task, *args, **kwargs):
        if task != "passive":
            raise NotImplementedError(f"{self.identifier} commits to neural recordings only, not to task {task!r}")

    def start_recording(self, recording_target, time_bins):
        if recording_target not in self.spec["regions"]:
            raise ValueError(f"{self.identifier} commits no layer to region {recording_target!r}; it records "
                             f"{', '.join(self.spec['regions'])}")
        self._region = recording_target
        self._bins = [(float(start), float(end)) for start, end in time_bins]

    def _steps(self, offset):
        if self.spec["feedforward"]:
            return 1
        span = max(end for _, end in self._bins) - offset - self.spec["t0_ms"]
        return max(1, math.ceil(span / self.spec["step_ms"] - 1e-9))

    def responses(self, paths):
        """Features ``[n_images, n_features, n_bins]`` (float32) of the recorded region's layer."""
        if self._region is None:
            raise RuntimeError("call start_recording(region, time_bins) before look_at")
        spec = self.spec
        layer, offset = spec["regions"][self._region]["layer"], spec["regions"][self._region]["offset_ms"]
        steps = self._steps(offset)
        if spec["feedforward"]:
            weights = [[(0, 1.0)] for _ in self._bins]
        else:
            weights = bin_weights(self._bins, steps, spec["step_ms"], spec["t0_ms"] + offset,
                                  spec["first_driven"][layer])
        mean = torch.tensor(spec["mean"]).view(1, -1, 1, 1)
        std = torch.tensor(spec["std"]).view(1, -1, 1, 1)
        blank = ((torch.full((1, spec["in_channels"], 1, 1), GRAY) - mean) / std)[0]
        out = []
        for start in range(0, len(paths), BATCH):
            images = torch.stack([load_image(p, spec["input_size"]) for p in paths[start:start + BATCH]])
            if spec["in_channels"] == 1:
                images = images.mean(dim=1, keepdim=True)
            images = (images - mean) / std
            stop = steps if spec["off"] is None else min(spec["off"], steps)
            movie = blank.expand(images.shape[1:]).expand(steps, *images.shape).clone()
            movie[spec["on"]:stop] = images
            with torch.no_grad():
                output = self.network.forward_sequence(movie)[layer]
            flat = output.reshape(output.shape[0], output.shape[1], -1)
            out.append(torch.stack([sum(w * flat[t] for t, w in terms) for terms in weights], dim=-1))
        return torch.cat(out).numpy()

    def look_at(self, stimuli, number_of_trials=1, require_variance=False):
        """A ``presentation x neuroid x time_bin`` assembly (deterministic: one trial stands for all)."""
        ids = [str(s) for s in stimuli["stimulus_id"]]
        values = self.responses([str(stimuli.get_stimulus(s)) for s in ids])
        layer = self.spec["regions"][self._region]["layer"]
        presentation = {"stimulus_id": ("presentation", ids)}
        for column in stimuli.columns:
            if column != "stimulus_id" and np.asarray(stimuli[column]).dtype.kind in "biufUO":
                presentation[column] = ("presentation", stimuli[column].values)
        coords = {
            **presentation,
            "neuroid_id": ("neuroid", [f"{layer}.{k}" for k in range(values.shape[1])]),
            "layer": ("neuroid", [layer] * values.shape[1]),
            "region": ("neuroid", [self._region] * values.shape[1]),
            "time_bin_start": ("time_bin", [b[0] for b in self._bins]),
            "time_bin_end": ("time_bin", [b[1] for b in self._bins]),
        }
        dims = ["presentation", "neuroid", "time_bin"]
        try:
            from brainscore_core.supported_data_standards.brainio.assemblies import NeuroidAssembly
        except ImportError:
            import xarray

            return xarray.DataArray(values, coords=coords, dims=dims)
        return NeuroidAssembly(values, coords=coords, dims=dims)
