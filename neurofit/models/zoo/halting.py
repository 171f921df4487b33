"""Adaptive-halting ConvGRU: Adaptive Computation Time over the steps of a recurrent vision model.

Papers
------
* Graves (2016). Adaptive Computation Time for Recurrent Neural Networks. arXiv:1603.08983.
* Veerabadran, Ravishankar, Tang, Raina & de Sa (2023). Adaptive recurrent vision performs zero-shot
  computation scaling to unseen difficulty levels. NeurIPS 36. (ConvGRU "AdRNN" with a learned halting
  unit; run for more steps at test time than in training.)

Architecture
------------
``conv_in`` (a ``5x5`` convolution by default, ReLU, 2x2 max-pool unless ``stem_pool=False``) encodes the
frame ``movie[t]``; a stack of ConvGRU layers ``gru1 .. gruN`` (the
:class:`~neurofit.models.zoo._cells.ConvGRUCell`, 2x2 max-pool between layers) carries state from step to
step (sweep convention: each step is a full pass, recurrence from ``t - 1``). From the global average (or,
with ``readout_pool="max"``, the global maximum) ``g_t`` of the top GRU, ``y_t = W_o g_t + b_o`` are the
step's logits and ``h_t = σ(w_h · g_t + b_h)`` its halting probability (``b_h`` starts at ``halting_bias``,
1 as in Graves 2016). :class:`ConvGRUNet` (zoo name ``convgru``) is the same network without the halting
unit: the fixed-step baseline, whose answer is the readout at the last step.

Adaptive Computation Time (Graves 2016, eqs. 5-14), per image, over the ``T`` steps of the movie
--------------------------------------------------------------------------------------------------
With ``S_n = h_1 + ... + h_n`` (steps counted from 1 as in the paper)::

    N  = min{ n : S_n >= 1 - epsilon }, or T when no such n <= T
    R  = 1 - S_{N-1}                                  (remainder)
    p_n = h_n for n < N,  p_N = R,  p_n = 0 for n > N (ACT weights; they sum to 1)
    y  = sum_n p_n y_n                                (ACT output)
    ponder cost rho = N + R                           (add tau * rho to the training loss)

``N`` is piecewise constant, so the ponder cost's gradient flows through ``R`` into the halting unit.
The halting step is ``N - 1`` in neurofit's 0-based step index, and :meth:`HaltingConvGRU.validity` marks
steps ``0 .. N-1`` valid. The number of steps is the movie's length: a movie longer than the training
one lets an image that has not yet halted compute longer (zero-shot computation scaling).

Outputs of ``forward_sequence`` (all ``[T, B, ...]``)
----------------------------------------------------
``conv_in``, ``gru1`` .. ``gruN`` (layers); ``logits`` (``y_t``, each step's own readout);
``halt_prob`` ``[T, B]`` (``h_t``); ``act_logits`` ``[T, B, n_classes]``: entry ``t`` is the ACT output
of the run cut to the first ``t + 1`` steps (Graves' output with ``T = t + 1``), so ``act_logits[-1]`` is
the ACT output of the whole movie and ``act_logits[t] == act_logits[-1]`` once the image has halted.
:func:`act_halting` turns ``halt_prob`` into ``N``, ``R``, the ponder cost, the weights and the mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neurofit.errors import NeurofitError
from neurofit.models.zoo._blocks import RecurrentStack, check_odd, check_steps, check_widths
from neurofit.models.zoo._cells import ConvGRUCell, check_movie


@dataclass(frozen=True)
class ACTHalting:
    """The ACT quantities of one unroll (Graves 2016); per image unless said otherwise.

    Attributes
    ----------
    n_steps : Tensor [B] (long)
        ``N``, the number of steps used (1-based count).
    halting_step : Tensor [B] (long)
        ``N - 1``, the 0-based index of the last step used.
    remainder : Tensor [B]
        ``R = 1 - sum_{n<N} h_n``.
    ponder_cost : Tensor [B]
        ``N + R`` (differentiable through ``R``).
    weights : Tensor [T, B]
        ``p_t``: ``h_t`` before the halting step, ``R`` at it, 0 after.
    valid : Tensor [T, B] (bool)
        True up to and including the halting step.
    """

    n_steps: torch.Tensor
    halting_step: torch.Tensor
    remainder: torch.Tensor
    ponder_cost: torch.Tensor
    weights: torch.Tensor
    valid: torch.Tensor


def act_halting(halt_prob: torch.Tensor, epsilon: float = 0.01) -> ACTHalting:
    """Halting step, remainder, ponder cost, ACT weights and validity from halting probabilities.

    Parameters
    ----------
    halt_prob : Tensor [T, B]
        Halting probabilities ``h_t`` in ``[0, 1]``.
    epsilon : float
        Halt once the cumulative probability reaches ``1 - epsilon`` (Graves: 0.01).

    Example
    -------
    >>> act = act_halting(torch.tensor([[0.3], [0.5], [0.4], [0.9]]))
    >>> act.n_steps.tolist(), round(act.remainder.item(), 4), round(act.ponder_cost.item(), 4)
    ([3], 0.2, 3.2)
    >>> act.valid[:, 0].tolist()
    [True, True, True, False]
    """
    if halt_prob.dim() != 2:
        raise NeurofitError(f"halt_prob must be [T, B], got shape {tuple(halt_prob.shape)}")
    if not 0.0 <= epsilon < 1.0:
        raise NeurofitError(f"epsilon must be in [0, 1), got {epsilon}")
    steps = halt_prob.shape[0]
    cumulative = torch.cumsum(halt_prob, dim=0)
    before = torch.cat([torch.zeros_like(cumulative[:1]), cumulative[:-1]])  # S_{n-1}
    reached = cumulative >= 1.0 - epsilon
    # argmax returns the first maximal index, i.e. the first step whose cumulative sum crosses
    first = reached.to(torch.int8).argmax(dim=0)
    n_steps = torch.where(reached.any(dim=0), first + 1, torch.full_like(first, steps))
    halting_step = n_steps - 1
    remainder = 1.0 - before.gather(0, halting_step.unsqueeze(0)).squeeze(0)
    t = torch.arange(steps, device=halt_prob.device).unsqueeze(1)
    weights = torch.where(t < halting_step, halt_prob, torch.zeros_like(halt_prob))
    weights = torch.where(t == halting_step, remainder.unsqueeze(0).expand_as(weights), weights)
    return ACTHalting(n_steps=n_steps, halting_step=halting_step, remainder=remainder,
                      ponder_cost=n_steps.to(remainder.dtype) + remainder, weights=weights,
                      valid=t <= halting_step)


def act_output_per_cutoff(values: torch.Tensor, halt_prob: torch.Tensor, epsilon: float = 0.01) -> torch.Tensor:
    """ACT output of the run cut to the first ``t + 1`` steps, for every ``t``.

    ``values`` is ``[T, B, ...]`` (e.g. logits), ``halt_prob`` ``[T, B]``. Entry ``t`` equals
    ``sum_n p_n values_n`` with the ACT weights of ``halt_prob[: t + 1]``; the last entry is the ACT output
    of the whole run.

    Example
    -------
    >>> y = torch.tensor([[[1.0]], [[2.0]], [[4.0]]])
    >>> out = act_output_per_cutoff(y, torch.tensor([[0.5], [0.3], [0.9]]))
    >>> [round(v, 4) for v in out[:, 0, 0].tolist()]  # 1;  0.5*1 + 0.5*2;  0.5*1 + 0.3*2 + 0.2*4
    [1.0, 1.5, 1.9]
    """
    halting = act_halting(halt_prob, epsilon)
    extra = (1,) * (values.dim() - 2)
    h = halt_prob.reshape(*halt_prob.shape, *extra)
    weighted = torch.cumsum(h * values, dim=0)
    weighted_before = torch.cat([torch.zeros_like(weighted[:1]), weighted[:-1]])
    mass_before = torch.cat([torch.zeros_like(h[:1]), torch.cumsum(h, dim=0)[:-1]])
    # cut at step m (0-based, m <= N - 1): sum_{n<m} h_n y_n + (1 - S_{m-1}) y_m
    cut = weighted_before + (1.0 - mass_before) * values
    t = torch.arange(values.shape[0], device=values.device).unsqueeze(1)
    last = torch.minimum(t, halting.halting_step.unsqueeze(0))  # [T, B]
    index = last.reshape(*last.shape, *extra).expand_as(values)
    return cut.gather(0, index)


_READOUT_POOLS = ("mean", "max")


class ConvGRUNet(RecurrentStack):
    """A ConvGRU stack run for as many steps as the movie has: the fixed-step baseline of the halting model.

    Parameters
    ----------
    stem_channels : int
        Width of ``conv_in``.
    channels : sequence of int
        Widths of ``gru1 .. gruN``.
    kernel_size : int
        Kernel of the GRU convolutions.
    steps, num_classes, input_size, in_channels : int
        Default (training) unroll length, readout classes, image side in pixels, input channels.
    stem_kernel : int
        Kernel of ``conv_in`` (5 by default).
    stem_pool : bool
        2x2 max-pool after ``conv_in`` (default). Off for one-pixel-per-square inputs such as mazes, whose
        walls a pool would erase.
    readout_pool : {"mean", "max"}
        Global pooling of the top GRU before the readout. ``max`` answers "is there a place where ..."
        questions (is the goal reached?) the same way on any image size; ``mean`` dilutes a local answer
        by the image area.

    Example
    -------
    >>> model = ConvGRUNet(stem_channels=4, channels=(4,), steps=3, stem_pool=False, readout_pool="max")
    >>> out = model.forward_sequence(torch.zeros(5, 2, 3, 17, 17))  # any length, any image size
    >>> out["gru1"].shape, out["logits"].shape, "halt_prob" in out
    (torch.Size([5, 2, 4, 17, 17]), torch.Size([5, 2, 10]), False)
    """

    convention = "sweep"

    def __init__(
        self,
        stem_channels: int = 32,
        channels: tuple[int, ...] | list[int] = (32, 32),
        kernel_size: int = 3,
        steps: int = 8,
        num_classes: int = 10,
        input_size: int = 32,
        in_channels: int = 3,
        stem_kernel: int = 5,
        stem_pool: bool = True,
        readout_pool: str = "mean",
    ) -> None:
        super().__init__()
        name = type(self).__name__
        channels = check_widths(name, channels)
        if stem_channels < 1:
            raise NeurofitError(f"{name} stem_channels must be positive, got {stem_channels}")
        check_steps(name, steps)
        check_odd(name, "stem_kernel", stem_kernel)
        if readout_pool not in _READOUT_POOLS:
            raise NeurofitError(f"{name} readout_pool must be one of {_READOUT_POOLS}, got {readout_pool!r}")
        self._record({
            "stem_channels": stem_channels, "channels": list(channels), "kernel_size": kernel_size,
            "steps": steps, "num_classes": num_classes, "input_size": input_size, "in_channels": in_channels,
            "stem_kernel": stem_kernel, "stem_pool": bool(stem_pool), "readout_pool": readout_pool,
        }, ("conv_in", *(f"gru{i + 1}" for i in range(len(channels)))), steps=steps, input_size=input_size,
            in_channels=in_channels)
        self.stem_pool = bool(stem_pool)
        self.readout_pool = readout_pool
        self.conv_in = nn.Conv2d(in_channels, stem_channels, stem_kernel, padding=stem_kernel // 2)
        self.grus = nn.ModuleDict({
            name: ConvGRUCell(c_in, c, kernel_size)
            for name, c_in, c in zip(self.layers[1:], (stem_channels, *channels[:-1]), channels)
        })
        self.readout = nn.Linear(channels[-1], num_classes)

    def _unroll(self, movie: torch.Tensor, outputs: dict[str, list[torch.Tensor]]) -> list[torch.Tensor]:
        """Fill the layer outputs and ``logits`` per step; return the pooled top-GRU vector of each step."""
        check_movie(movie, self.in_channels, type(self).__name__)
        states: dict[str, tuple[torch.Tensor, ...]] = {}
        pooled_steps = []
        stem = None
        for t in range(movie.shape[0]):
            # an image held on gives the same stem output at every step: computed once
            if stem is None or not torch.equal(movie[t], movie[t - 1]):
                stem = F.relu(self.conv_in(movie[t]))
                if self.stem_pool:
                    stem = F.max_pool2d(stem, 2)
            x = stem
            outputs["conv_in"].append(x)
            for i, (name, cell) in enumerate(self.grus.items()):
                if i > 0:
                    x = F.max_pool2d(x, 2)
                if name not in states:
                    states[name] = cell.init_state(x)
                x, states[name] = cell(x, states[name])
                outputs[name].append(x)
            pooled = x.amax(dim=(2, 3)) if self.readout_pool == "max" else x.mean(dim=(2, 3))
            outputs["logits"].append(self.readout(pooled))
            pooled_steps.append(pooled)
        return pooled_steps

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unroll over ``movie`` ``[T, B, C, H, W]``: ``conv_in``, ``gru1`` .. ``gruN`` and ``logits``."""
        outputs = self._new_outputs()
        self._unroll(movie, outputs)
        return self._stacked(outputs)


class HaltingConvGRU(ConvGRUNet):
    """ConvGRU stack with an ACT halting unit (Graves 2016; Veerabadran et al. 2023).

    Parameters
    ----------
    epsilon : float
        ACT threshold ``1 - epsilon``.
    halting_bias : float
        Initial bias ``b_h`` of the halting unit (Graves 2016: 1, so ``h ~ 0.73`` and a fresh model halts
        after two steps; a negative bias starts it pondering longer).
    **kwargs
        The architecture of :class:`ConvGRUNet`.

    Example
    -------
    >>> model = HaltingConvGRU(steps=4)
    >>> out = model.forward_sequence(torch.zeros(6, 2, 3, 32, 32))  # more steps than in training
    >>> out["gru2"].shape, out["halt_prob"].shape, out["act_logits"].shape
    (torch.Size([6, 2, 32, 8, 8]), torch.Size([6, 2]), torch.Size([6, 2, 10]))
    >>> model.validity(out).shape
    torch.Size([6, 2])
    """

    def __init__(self, epsilon: float = 0.01, halting_bias: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= epsilon < 1.0:
            raise NeurofitError(f"HaltingConvGRU epsilon must be in [0, 1), got {epsilon}")
        self.config.update({"epsilon": epsilon, "halting_bias": float(halting_bias)})
        self.epsilon = epsilon
        self.halting_unit = nn.Linear(self.config["channels"][-1], 1)
        nn.init.constant_(self.halting_unit.bias, float(halting_bias))

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unroll over ``movie`` ``[T, B, C, H, W]``; see the module docstring for the outputs."""
        outputs = self._new_outputs()
        pooled = self._unroll(movie, outputs)
        result = self._stacked(outputs)
        result["halt_prob"] = torch.sigmoid(self.halting_unit(torch.stack(pooled))).squeeze(-1)
        result["act_logits"] = act_output_per_cutoff(result["logits"], result["halt_prob"], self.epsilon)
        return result

    def halting(self, outputs: dict[str, torch.Tensor]) -> ACTHalting:
        """ACT halting step, remainder, ponder cost, weights and mask of an unroll's ``outputs``.

        Example
        -------
        >>> model = HaltingConvGRU(steps=3)
        >>> act = model.halting(model.forward_sequence(torch.zeros(3, 2, 3, 32, 32)))
        >>> act.ponder_cost.shape
        torch.Size([2])
        """
        return act_halting(outputs["halt_prob"], self.epsilon)

    def validity(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """``[T, B]`` bool: True up to and including each image's halting step."""
        return self.halting(outputs).valid


def convgru(**kwargs: Any) -> ConvGRUNet:
    """The fixed-step ConvGRU: :func:`halting_convgru` without its halting unit (the same architecture).

    Example
    -------
    >>> convgru().layers
    ('conv_in', 'gru1', 'gru2')
    """
    return ConvGRUNet(**kwargs)


def halting_convgru(**kwargs: Any) -> HaltingConvGRU:
    """The adaptive-halting ConvGRU (ACT, Graves 2016; Veerabadran et al. 2023).

    Example
    -------
    >>> halting_convgru().layers
    ('conv_in', 'gru1', 'gru2')
    """
    return HaltingConvGRU(**kwargs)
