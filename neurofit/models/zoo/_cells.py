"""Convolutional recurrent cells of the recurrent zoo (ConvRNN of Nayebi et al. 2018, halting ConvGRU).

Every cell maps its feedforward input ``x_t`` ``[B, C_in, H, W]`` and its state at ``t - 1`` to its output
``[B, C, H, W]`` and its new state; ``*`` is a 'same'-padded convolution with bias, ``σ`` the logistic
sigmoid, ``⊙`` the elementwise product. Each cell owns the convolutions of its input, so a layer built
on a cell needs no separate feedforward convolution.

* :class:`ConvVanillaCell`   ``h' = ReLU(W*x + U*h)``
* :class:`ConvLSTMCell`      ``i, f, g, o = σ, σ, tanh, σ (W*x + U*h)``; ``c' = f⊙c + i⊙g``;
  ``h' = o⊙tanh(c')`` (gate order and biases as :class:`torch.nn.LSTMCell`; Shi et al. 2015)
* :class:`ConvGRUCell`       ``r, z = σ(W_r*x + U_r*h), σ(W_z*x + U_z*h)``;
  ``n = tanh(W_n*x + r⊙(U_n*h))``; ``h' = (1-z)⊙n + z⊙h`` (as :class:`torch.nn.GRUCell`; Ballas et al.
  2016)
* :class:`ConvUGRNNCell`     ``c = tanh(W_c*x + U_c*h)``, ``g = σ(W_g*x + U_g*h)``; ``h' = g⊙h + (1-g)⊙c``
  (Collins, Sohl-Dickstein & Sussillo 2017)
* :class:`ConvTimeDecayCell` ``s' = exp(-1/τ)⊙s + W*x``; output ``ReLU(s')``, with a learned positive time
  constant ``τ`` per channel (Nayebi et al. 2018)
* :class:`ReciprocalGatedCell` (Nayebi et al. 2018, Fig. 2 and supplement): with the feedforward drive
  ``a = W_x*x``, the cell state ``c`` and the output ``h`` gate each other, and the drive bypasses the cell
  on its way to the output::

      c' = ELU((1 - σ(W_cc*c)) ⊙ c + (1 - σ(W_hc*h)) ⊙ (W_ac*a))
      h' = ELU((1 - σ(W_hh*h)) ⊙ h + (1 - σ(W_ch*c)) ⊙ a)

  (both gates read the state at ``t - 1``, as in the authors' ``ReciprocalGateCell``).

The cells run on any spatial size; with 1x1 kernels on 1x1 maps the LSTM, GRU and vanilla cells compute
exactly what :class:`torch.nn.LSTMCell`, :class:`torch.nn.GRUCell` and ``nn.RNNCell(nonlinearity="relu")``
compute with the same weights (the tests check this).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neurofit.errors import NeurofitError

State = tuple[torch.Tensor, ...]


def _conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class ConvCell(nn.Module):
    """Base of the convolutional cells: ``forward(x, state) -> (output, new_state)``.

    ``state_names`` names the tensors of the state (each ``[B, channels, H, W]``); :meth:`init_state` gives
    the zero state for an input ``x``.
    """

    state_names: tuple[str, ...] = ("h",)

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise NeurofitError(f"cell kernel_size must be odd (same padding), got {kernel_size}")
        self.in_channels = in_channels
        self.channels = channels
        self.kernel_size = kernel_size

    def init_state(self, x: torch.Tensor) -> State:
        """Zero state matching input ``x`` ``[B, C_in, H, W]``."""
        shape = (x.shape[0], self.channels, *x.shape[2:])
        return tuple(x.new_zeros(shape) for _ in self.state_names)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        raise NotImplementedError


class ConvVanillaCell(ConvCell):
    """Convolutional vanilla RNN: ``h' = ReLU(W*x + U*h)``.

    Example
    -------
    >>> cell = ConvVanillaCell(3, 4)
    >>> x = torch.zeros(2, 3, 5, 5)
    >>> out, state = cell(x, cell.init_state(x))
    >>> out.shape
    torch.Size([2, 4, 5, 5])
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, channels, kernel_size)
        self.w_x = _conv(in_channels, channels, kernel_size)
        self.w_h = _conv(channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        (h,) = state
        h = F.relu(self.w_x(x) + self.w_h(h))
        return h, (h,)


class ConvLSTMCell(ConvCell):
    """Convolutional LSTM (Shi et al. 2015) with :class:`torch.nn.LSTMCell`'s gate order ``i, f, g, o``.

    Example
    -------
    >>> cell = ConvLSTMCell(3, 4)
    >>> x = torch.zeros(2, 3, 5, 5)
    >>> out, (h, c) = cell(x, cell.init_state(x))
    >>> out.shape, c.shape
    (torch.Size([2, 4, 5, 5]), torch.Size([2, 4, 5, 5]))
    """

    state_names = ("h", "c")

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, channels, kernel_size)
        self.w_x = _conv(in_channels, 4 * channels, kernel_size)
        self.w_h = _conv(channels, 4 * channels, kernel_size)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = state
        i, f, g, o = (self.w_x(x) + self.w_h(h)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, (h, c)


class ConvGRUCell(ConvCell):
    """Convolutional GRU (Ballas et al. 2016) in :class:`torch.nn.GRUCell`'s form (gate order ``r, z, n``).

    Example
    -------
    >>> cell = ConvGRUCell(3, 4)
    >>> x = torch.zeros(2, 3, 5, 5)
    >>> cell(x, cell.init_state(x))[0].shape
    torch.Size([2, 4, 5, 5])
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, channels, kernel_size)
        self.w_x = _conv(in_channels, 3 * channels, kernel_size)
        self.w_h = _conv(channels, 3 * channels, kernel_size)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        (h,) = state
        x_r, x_z, x_n = self.w_x(x).chunk(3, dim=1)
        h_r, h_z, h_n = self.w_h(h).chunk(3, dim=1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        h = (1 - z) * n + z * h
        return h, (h,)


class ConvUGRNNCell(ConvCell):
    """Update-gate RNN (Collins et al. 2017): ``h' = g⊙h + (1-g)⊙tanh(W_c*x + U_c*h)``.

    Example
    -------
    >>> cell = ConvUGRNNCell(3, 4)
    >>> x = torch.zeros(2, 3, 5, 5)
    >>> cell(x, cell.init_state(x))[0].shape
    torch.Size([2, 4, 5, 5])
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, channels, kernel_size)
        self.w_x = _conv(in_channels, 2 * channels, kernel_size)  # candidate, gate
        self.w_h = _conv(channels, 2 * channels, kernel_size)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        (h,) = state
        c, g = (self.w_x(x) + self.w_h(h)).chunk(2, dim=1)
        g = torch.sigmoid(g)
        h = g * h + (1 - g) * torch.tanh(c)
        return h, (h,)


class ConvTimeDecayCell(ConvCell):
    """Time-decay cell (Nayebi et al. 2018): ``s' = exp(-1/τ)⊙s + W*x``, output ``ReLU(s')``.

    ``τ = softplus(tau_raw)`` per channel keeps the time constant positive, so the decay lies in (0, 1)
    and the state cannot grow without bound under a bounded drive; ``τ -> 0`` recovers the feedforward
    layer ``ReLU(W*x)``. ``tau_raw`` starts at 0.5413 (``τ = 1``: decay ``1/e`` per step).

    Example
    -------
    >>> cell = ConvTimeDecayCell(3, 4)
    >>> round(float(cell.decay().detach()[0]), 4)
    0.3679
    """

    state_names = ("s",)

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, channels, kernel_size)
        self.w_x = _conv(in_channels, channels, kernel_size)
        # softplus(0.5413) = 1.0000
        self.tau_raw = nn.Parameter(torch.full((channels,), 0.5413))

    def decay(self) -> torch.Tensor:
        """Per-channel decay ``exp(-1/τ)`` ``[channels]``."""
        return torch.exp(-1.0 / F.softplus(self.tau_raw))

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        (s,) = state
        s = self.decay().view(1, -1, 1, 1) * s + self.w_x(x)
        return F.relu(s), (s,)


class ReciprocalGatedCell(ConvCell):
    """Reciprocal gated cell (Nayebi et al. 2018): cell and output gate each other; the drive bypasses the cell.

    With ``a = W_x*x``::

        c' = ELU((1 - σ(W_cc*c)) ⊙ c + (1 - σ(W_hc*h)) ⊙ (W_ac*a))
        h' = ELU((1 - σ(W_hh*h)) ⊙ h + (1 - σ(W_ch*c)) ⊙ a)

    The output is ``h'``. Module names follow the equations (``w_x``, ``w_ac``, ``w_cc``, ``w_hc``,
    ``w_hh``, ``w_ch``).

    Example
    -------
    >>> cell = ReciprocalGatedCell(3, 4)
    >>> x = torch.zeros(2, 3, 5, 5)
    >>> out, (h, c) = cell(x, cell.init_state(x))
    >>> out.shape
    torch.Size([2, 4, 5, 5])
    """

    state_names = ("h", "c")

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3) -> None:
        super().__init__(in_channels, channels, kernel_size)
        self.w_x = _conv(in_channels, channels, kernel_size)
        self.w_ac = _conv(channels, channels, kernel_size)
        self.w_cc = _conv(channels, channels, kernel_size)
        self.w_hc = _conv(channels, channels, kernel_size)
        self.w_hh = _conv(channels, channels, kernel_size)
        self.w_ch = _conv(channels, channels, kernel_size)

    def forward(self, x: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        h, c = state
        a = self.w_x(x)
        c_new = F.elu((1 - torch.sigmoid(self.w_cc(c))) * c + (1 - torch.sigmoid(self.w_hc(h))) * self.w_ac(a))
        h_new = F.elu((1 - torch.sigmoid(self.w_hh(h))) * h + (1 - torch.sigmoid(self.w_ch(c))) * a)
        return h_new, (h_new, c_new)


CELLS: dict[str, type[ConvCell]] = {
    "vanilla": ConvVanillaCell,
    "lstm": ConvLSTMCell,
    "gru": ConvGRUCell,
    "ugrnn": ConvUGRNNCell,
    "timedecay": ConvTimeDecayCell,
    "rgc": ReciprocalGatedCell,
}


def make_cell(kind: str, in_channels: int, channels: int, kernel_size: int = 3) -> ConvCell:
    """Build the cell named ``kind`` (one of :data:`CELLS`).

    Example
    -------
    >>> type(make_cell("rgc", 3, 4)).__name__
    'ReciprocalGatedCell'
    """
    if kind not in CELLS:
        raise NeurofitError(f"unknown cell {kind!r}; valid cells: {', '.join(sorted(CELLS))}")
    return CELLS[kind](in_channels, channels, kernel_size)


def check_movie(movie: torch.Tensor, in_channels: int, model: str) -> None:
    """Raise :class:`NeurofitError` unless ``movie`` is ``[T, B, in_channels, H, W]`` with ``T >= 1``."""
    if movie.dim() != 5 or movie.shape[2] != in_channels or movie.shape[0] < 1:
        raise NeurofitError(
            f"{model}.forward_sequence needs a movie [T, B, {in_channels}, H, W] with T >= 1, got shape "
            f"{tuple(movie.shape)}; build one from images [B, C, H, W] with neurofit.models.base.present"
        )
