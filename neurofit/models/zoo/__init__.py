"""The model zoo: name -> factory, resolved lazily so that importing the zoo imports no family file.

Each family lives in one readable file citing its paper (``cornet.py``, ``blt.py``, ``convrnn.py``,
``halting.py``, ``feedforward.py``, ``resnet_cifar.py``). A factory takes keyword arguments (width,
input size, steps, number of classes, ...) and returns a :class:`neurofit.models.base.TemporalModel`
(``resnet20_cifar`` returns the plain CIFAR network already wrapped with ``wrap_static``; its own module is ``.net``).

Example
-------
>>> "cornet_rt" in ZOO
True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from neurofit.errors import NeurofitError

# name -> "module:factory"
ZOO: dict[str, str] = {
    # feedforward baselines
    "cornet_z": "neurofit.models.zoo.feedforward:cornet_z",
    "deep_ff": "neurofit.models.zoo.feedforward:deep_ff",
    "resnet20_cifar": "neurofit.models.zoo.resnet_cifar:resnet20_cifar",
    # CORnet (Kubilius et al. 2018/2019)
    "cornet_rt": "neurofit.models.zoo.cornet:cornet_rt",
    "cornet_s": "neurofit.models.zoo.cornet:cornet_s",
    # Spoerer et al. 2017/2020, Thorat et al. 2023
    "b": "neurofit.models.zoo.blt:b",
    "bl": "neurofit.models.zoo.blt:bl",
    "bt": "neurofit.models.zoo.blt:bt",
    "blt": "neurofit.models.zoo.blt:blt",
    "bl_mult": "neurofit.models.zoo.blt:bl_mult",
    "bt_mult": "neurofit.models.zoo.blt:bt_mult",
    "blt_mult": "neurofit.models.zoo.blt:blt_mult",
    # Nayebi et al. 2018 ConvRNNs with local cells
    "convrnn_vanilla": "neurofit.models.zoo.convrnn:convrnn_vanilla",
    "convrnn_lstm": "neurofit.models.zoo.convrnn:convrnn_lstm",
    "convrnn_gru": "neurofit.models.zoo.convrnn:convrnn_gru",
    "convrnn_ugrnn": "neurofit.models.zoo.convrnn:convrnn_ugrnn",
    "convrnn_timedecay": "neurofit.models.zoo.convrnn:convrnn_timedecay",
    "convrnn_rgc": "neurofit.models.zoo.convrnn:convrnn_rgc",
    "convrnn_rgc_feedback": "neurofit.models.zoo.convrnn:convrnn_rgc_feedback",
    # Graves 2016 ACT / Veerabadran et al. 2023
    "halting_convgru": "neurofit.models.zoo.halting:halting_convgru",
    "convgru": "neurofit.models.zoo.halting:convgru",
}


def get_factory(name: str) -> Callable[..., Any]:
    """The factory for zoo model ``name``; an unknown name lists the valid ones.

    Example
    -------
    >>> get_factory("no_such_model")
    Traceback (most recent call last):
    ...
    neurofit.errors.NeurofitError: unknown zoo model 'no_such_model'; valid names: ...
    """
    target = ZOO.get(name)
    if target is None:
        raise NeurofitError(f"unknown zoo model {name!r}; valid names: {', '.join(sorted(ZOO))}")
    module_name, attr = target.split(":")
    return getattr(importlib.import_module(module_name), attr)
