"""Measure when each layer first carries image-driven signal.

A layer is image-driven at step ``t`` when different images give different outputs there. Before that
step its output is the same for every image (zeros, biases, a blank-driven state) and must be treated as
absent, never as signal. :func:`probe_arrival` measures that step for one layer by running a batch of
different random images through the model; :func:`check_arrival` compares the model's declared
``TimeMap`` with the measurement for every layer.
"""

from __future__ import annotations

import torch

from neurofit.errors import NeurofitError
from neurofit.models.base import TemporalModel, present


def _probe_outputs(model: TemporalModel, steps: int | None, n_images: int, seed: int) -> dict[str, torch.Tensor]:
    steps = model.default_steps if steps is None else int(steps)
    generator = torch.Generator().manual_seed(seed)
    size = int(model.input_size)
    images = torch.rand(n_images, int(model.in_channels), size, size, generator=generator)
    try:
        param = next(model.parameters())
        device, dtype = param.device, param.dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    images = model.normalize(images).to(device=device, dtype=dtype)
    was_training = model.training
    # eval mode: train-mode BatchNorm mixes the images of a batch, which would fake an early arrival
    model.eval()
    try:
        with torch.no_grad():
            return model.forward_sequence(present(images, steps))
    finally:
        model.train(was_training)


def _first_differing_step(values: torch.Tensor, rtol: float) -> int | None:
    flat = values.reshape(values.shape[0], values.shape[1], -1).double()
    scale = flat.abs().amax(dim=(1, 2)).clamp_min(torch.finfo(torch.float64).tiny)
    spread = (flat - flat[:, :1]).abs().amax(dim=(1, 2))
    driven = (spread > rtol * scale).nonzero()
    return int(driven[0, 0]) if len(driven) else None


def probe_arrival(
    model: TemporalModel,
    layer: str,
    steps: int | None = None,
    n_images: int = 4,
    seed: int = 0,
    rtol: float = 1e-5,
) -> int | None:
    """The first step at which different images give different outputs of ``layer``.

    ``n_images`` random images (uniform in ``[0, 1]``, normalised with the model's ``mean``/``std``, seeded)
    are shown from step 0 for ``steps`` steps (default: the model's ``default_steps``), with the model in
    eval mode and without gradients. A step counts as driven when some image's output differs from image
    0's by more than ``rtol`` times the largest absolute output at that step.

    Parameters
    ----------
    model : TemporalModel
    layer : str
        A key of ``model.forward_sequence``'s output.
    steps : int, optional
        Length of the probe movie.

    Returns
    -------
    int or None
        The first driven step along the layer's own time axis, or ``None`` when the layer is never driven
        within ``steps``.

    Example
    -------
    >>> from neurofit.models.zoo.cornet import cornet_rt
    >>> probe_arrival(cornet_rt(width=8), "IT", steps=5)
    3
    """
    outputs = _probe_outputs(model, steps, n_images, seed)
    if layer not in outputs:
        raise NeurofitError(f"layer {layer!r} is not an output of {type(model).__name__}; "
                            f"its layers: {', '.join(outputs)}")
    return _first_differing_step(outputs[layer], rtol)


def check_arrival(
    model: TemporalModel, steps: int | None = None, n_images: int = 4, seed: int = 0, rtol: float = 1e-5
) -> dict[str, tuple[int, int | None]]:
    """Compare the declared first-driven step of every layer with :func:`probe_arrival`'s measurement.

    Returns ``{layer: (declared, measured)}``; raises NeurofitError naming every layer where they differ
    (a declared arrival earlier than the measured one would let undriven steps pass for signal).

    Example
    -------
    >>> from neurofit.models.zoo.cornet import cornet_rt
    >>> check_arrival(cornet_rt(width=8), steps=5)["V4"]
    (2, 2)
    """
    steps = model.default_steps if steps is None else int(steps)
    outputs = _probe_outputs(model, steps, n_images, seed)
    declared = model.time_map(steps=steps).first_driven
    result = {layer: (declared[layer], _first_differing_step(outputs[layer], rtol)) for layer in model.layers}
    wrong = {layer: pair for layer, pair in result.items() if pair[0] != pair[1]}
    if wrong:
        details = ", ".join(f"{layer}: declared {d}, measured {m}" for layer, (d, m) in wrong.items())
        raise NeurofitError(
            f"{type(model).__name__}'s declared arrival steps disagree with measurement over {steps} steps "
            f"({details}); fix the model's convention/declared_arrival"
        )
    return result
