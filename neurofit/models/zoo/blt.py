"""B, BL, BT and BLT recurrent convolutional networks, with additive or multiplicative recurrence.

Papers
------
* Spoerer, McClure & Kriegeskorte (2017). Recurrent convolutional neural networks: a better model of
  biological object recognition. Frontiers in Psychology 8:1551. B, BL, BT, BLT; 3x3 kernels, max-pooling
  between layers, local response normalisation.
* Spoerer, Kietzmann, Mehrer, Charest & Kriegeskorte (2020). Recurrent neural networks can explain
  flexible trading of speed and accuracy in biological vision. PLOS Computational Biology 16(10):e1008215.
  Batch normalisation with separate parameters at every time step, a global-average-pool readout at every
  step (the authors' ``rcnn-sat`` code: ``BatchNorm_Layer_{l}_Time_{t}``).
* Greco, D'Alessandro, Friston, Pezzulo & Siegel (2025). Sensory robustness through top-down feedback and
  neural stochasticity in recurrent vision models. arXiv:2508.07115. (B/BL/BT/BLT-style ConvRNNs trained
  with and without dropout: "randomly silencing single units".)
* Thorat, Doerig & Kietzmann (2023). Characterising representation dynamics in recurrent neural networks
  for object recognition (CCN 2023); Thorat, Aldegheri & Kietzmann (2021), Category-orthogonal object
  features guide information processing in recurrent neural networks trained for object categorization
  (SVRHM 2021). Lateral and top-down inputs interacting additively or multiplicatively with the
  bottom-up drive.

The unroll (``convention = "sweep"``)
-------------------------------------
Layer ``l`` (``conv1`` .. ``convN``) at step ``t``, with ``h_{0,t}`` the input frame ``movie[t]``::

    b = W_b^l * pool(h_{l-1,t})          bottom-up, from the same step (no pool before conv1)
    r = W_l^l * h_{l,t-1}                lateral, from the previous step   (BL, BLT)
      + W_t^l ⊛ h_{l+1,t-1}              top-down, from the layer above at the previous step (BT, BLT);
                                         ⊛ is a stride-2 transposed convolution undoing the 2x2 pool
    additive:        a = b + r
    multiplicative:  a = b ⊙ (1 + r)         (``modulation="linear"``, the default)
                     a = b ⊙ (1 + tanh(r))   (``modulation="tanh"``: a bounded gain in (0, 2))
    h_{l,t} = ReLU(BN_{l,t}(a))          ``norm="batchnorm"`` (default; Spoerer 2020, one BN per step)
    h_{l,t} = LRN(ReLU(a))               ``norm="lrn"`` (Spoerer 2017; size 5, AlexNet constants)
    h_{l,t} = ReLU(a)                    ``norm="none"``
    h_{l,t} = dropout_p(h_{l,t})         with ``dropout=p > 0`` (Greco et al. 2025: units silenced at
                                         random, a fresh mask at every step, in training mode only)
    logits_t = W_o · mean_{x,y}(h_{N,t}) + b_o

The recurrent convolutions have no bias and the state before the first step is zero, so at ``t = 0``
every variant computes the feedforward pass, and with the lateral and top-down weights at zero every
variant (additive or multiplicative) computes exactly the B network: the multiplicative gain is
``1 + r = 1``. Multiplicative recurrence modulates the bottom-up drive and cannot create activity where
there is none; additive recurrence can. The linear form is that of a public PyTorch ``BLT_net``
(``LT_interaction="multiplicative"``: ``b * (1 + l + t)``); Thorat et al.'s own code was not available to
check the exact gain function against, hence the option. The tanh form keeps the gain positive, so the
recurrence can scale the drive but never flip its sign.

With ``norm="batchnorm"`` there is one BatchNorm per layer per step of ``steps``; an unroll longer than
``steps`` reuses the last step's BatchNorm (running statistics of the final trained step). The bottom-up
convolution has a bias only when there is no BatchNorm (BN's shift replaces it).

Every layer is driven by the image from step 0 (sweep convention), and logits are read out at every step.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from neurofit.errors import NeurofitError
from neurofit.models.zoo._blocks import RecurrentStack, check_odd, check_steps, check_widths
from neurofit.models.zoo._cells import check_movie

_NORMS = ("batchnorm", "lrn", "none")
_INTERACTIONS = ("additive", "multiplicative")
_MODULATIONS = ("linear", "tanh")


class BLTNet(RecurrentStack):
    """A B/BL/BT/BLT network (Spoerer 2017/2020) with additive or multiplicative recurrence (Thorat 2023).

    Parameters
    ----------
    channels : sequence of int
        Feature maps of ``conv1 .. convN`` (default ``(16, 32, 64)``: three layers, doubling the width as
        each 2x2 max-pool halves the resolution, as in Spoerer 2020).
    kernel_size : int
        Kernel of the bottom-up, lateral and top-down convolutions (3, as in both papers).
    lateral, topdown : bool
        Lateral (``h_{l,t-1}``) and top-down (``h_{l+1,t-1}``) connections; both off is the B control.
    interaction : {"additive", "multiplicative"}
        How the lateral/top-down input ``r`` meets the bottom-up drive ``b`` (module docstring).
    modulation : {"linear", "tanh"}
        The multiplicative gain ``1 + r`` or ``1 + tanh(r)``; ignored for additive interactions.
    norm : {"batchnorm", "lrn", "none"}
        Per-step normalisation (module docstring).
    steps : int
        Default unroll length (and number of per-step BatchNorms).
    dropout : float
        Probability of silencing each unit of every layer's output at every step (training mode only;
        :func:`neurofit.analysis.robustness.stochastic` keeps it on at evaluation). Default 0.
    num_classes, input_size, in_channels : int
        Readout classes; image side in pixels (must be divisible by ``2**(N-1)`` when ``topdown``);
        input channels.

    Example
    -------
    >>> model = BLTNet(channels=(8, 16), steps=3, num_classes=5).eval()
    >>> out = model.forward_sequence(torch.zeros(3, 2, 3, 32, 32))
    >>> out["conv1"].shape, out["conv2"].shape, out["logits"].shape
    (torch.Size([3, 2, 8, 32, 32]), torch.Size([3, 2, 16, 16, 16]), torch.Size([3, 2, 5]))
    """

    convention = "sweep"

    def __init__(
        self,
        channels: tuple[int, ...] | list[int] = (16, 32, 64),
        kernel_size: int = 3,
        lateral: bool = True,
        topdown: bool = True,
        interaction: str = "additive",
        modulation: str = "linear",
        norm: str = "batchnorm",
        steps: int = 8,
        num_classes: int = 10,
        input_size: int = 32,
        in_channels: int = 3,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        channels = check_widths("BLTNet", channels)
        if not 0.0 <= dropout < 1.0:
            raise NeurofitError(f"BLTNet dropout must be in [0, 1), got {dropout}")
        check_odd("BLTNet", "kernel_size", kernel_size)
        if interaction not in _INTERACTIONS:
            raise NeurofitError(f"BLTNet interaction must be one of {_INTERACTIONS}, got {interaction!r}")
        if modulation not in _MODULATIONS:
            raise NeurofitError(f"BLTNet modulation must be one of {_MODULATIONS}, got {modulation!r}")
        if norm not in _NORMS:
            raise NeurofitError(f"BLTNet norm must be one of {_NORMS}, got {norm!r}")
        check_steps("BLTNet", steps)
        factor = 2 ** (len(channels) - 1)
        if topdown and input_size % factor:
            raise NeurofitError(
                f"BLTNet input_size {input_size} must be divisible by {factor} (2 ** (layers - 1)) so that "
                "the top-down transposed convolutions restore each layer's size; pick e.g. "
                f"{input_size - input_size % factor or factor}"
            )
        self._record({
            "channels": list(channels), "kernel_size": kernel_size, "lateral": lateral, "topdown": topdown,
            "interaction": interaction, "modulation": modulation, "norm": norm, "steps": steps,
            "num_classes": num_classes, "input_size": input_size, "in_channels": in_channels,
            "dropout": float(dropout),
        }, [f"conv{i + 1}" for i in range(len(channels))], steps=steps, input_size=input_size,
            in_channels=in_channels)
        self.interaction = interaction
        self.modulation = modulation
        self.norm = norm
        pad = kernel_size // 2
        below = (in_channels, *channels[:-1])
        self.bottom_up = nn.ModuleDict({
            name: nn.Conv2d(c_in, c, kernel_size, padding=pad, bias=norm != "batchnorm")
            for name, c_in, c in zip(self.layers, below, channels)
        })
        self.lateral = nn.ModuleDict({
            name: nn.Conv2d(c, c, kernel_size, padding=pad, bias=False) for name, c in zip(self.layers, channels)
        }) if lateral else None
        # top-down into every layer but the last, from the (pooled, half-size) layer above
        self.topdown = nn.ModuleDict({
            name: nn.ConvTranspose2d(c_above, c, kernel_size, stride=2, padding=pad, output_padding=1,
                                     bias=False)
            for name, c, c_above in zip(self.layers[:-1], channels[:-1], channels[1:])
        }) if topdown and len(channels) > 1 else None
        if norm == "batchnorm":
            self.norms = nn.ModuleDict({
                name: nn.ModuleList(nn.BatchNorm2d(c) for _ in range(steps))
                for name, c in zip(self.layers, channels)
            })
        elif norm == "lrn":
            self.lrn = nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=2.0)
        self.dropout = nn.Dropout(dropout)
        self.readout = nn.Linear(channels[-1], num_classes)

    def _activate(self, a: torch.Tensor, layer: str, t: int) -> torch.Tensor:
        if self.norm == "batchnorm":
            bns = self.norms[layer]
            return F.relu(bns[min(t, len(bns) - 1)](a))
        if self.norm == "lrn":
            return self.lrn(F.relu(a))
        return F.relu(a)

    def _combine(self, b: torch.Tensor, r: torch.Tensor | None) -> torch.Tensor:
        if r is None:
            return b
        if self.interaction == "additive":
            return b + r
        gain = r if self.modulation == "linear" else torch.tanh(r)
        return b * (1 + gain)

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unroll over ``movie`` ``[T, B, C, H, W]``.

        Returns ``{"conv1": [T, B, C1, H, W], ..., "convN": [T, B, CN, H/2^(N-1), W/2^(N-1)],
        "logits": [T, B, num_classes]}`` (post-ReLU/normalisation layer outputs, before pooling).
        """
        check_movie(movie, self.in_channels, type(self).__name__)
        factor = 2 ** (len(self.layers) - 1)
        if self.topdown is not None and (movie.shape[-1] % factor or movie.shape[-2] % factor):
            raise NeurofitError(
                f"BLTNet with top-down connections needs frames whose height and width are divisible by "
                f"{factor}, got {tuple(movie.shape[-2:])}; resize the images to its input_size {self.input_size}"
            )
        outputs = self._new_outputs()
        previous: list[torch.Tensor] | None = None
        for t in range(movie.shape[0]):
            current: list[torch.Tensor] = []
            for l, name in enumerate(self.layers):
                x = movie[t] if l == 0 else F.max_pool2d(current[l - 1], 2)
                b = self.bottom_up[name](x)
                r = None
                if previous is not None:
                    if self.lateral is not None:
                        r = self.lateral[name](previous[l])
                    if self.topdown is not None and name in self.topdown:
                        td = self.topdown[name](previous[l + 1])
                        r = td if r is None else r + td
                h = self._activate(self._combine(b, r), name, t)
                if self.dropout.p > 0:
                    h = self.dropout(h)
                current.append(h)
                outputs[name].append(h)
            outputs["logits"].append(self._logits(current[-1]))
            previous = current
        return self._stacked(outputs)


def _build(fixed: dict[str, Any], kwargs: dict[str, Any]) -> BLTNet:
    for key, value in fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise NeurofitError(
                f"this BLT factory fixes {key}={value!r} but got {key}={kwargs[key]!r}; use the factory "
                "of the variant you want (b, bl, bt, blt, bl_mult, bt_mult, blt_mult) or BLTNet directly"
            )
    return BLTNet(**{**kwargs, **fixed})


def b(**kwargs: Any) -> BLTNet:
    """B: the feedforward control, the same bottom-up pass at every step.

    Example
    -------
    >>> b(steps=2).config["lateral"], b(steps=2).config["topdown"]
    (False, False)
    """
    return _build({"lateral": False, "topdown": False}, kwargs)


def bl(**kwargs: Any) -> BLTNet:
    """BL: bottom-up plus additive lateral recurrence.

    Example
    -------
    >>> bl().layers
    ('conv1', 'conv2', 'conv3')
    """
    return _build({"lateral": True, "topdown": False, "interaction": "additive"}, kwargs)


def bt(**kwargs: Any) -> BLTNet:
    """BT: bottom-up plus additive top-down recurrence.

    Example
    -------
    >>> bt().config["topdown"]
    True
    """
    return _build({"lateral": False, "topdown": True, "interaction": "additive"}, kwargs)


def blt(**kwargs: Any) -> BLTNet:
    """BLT: bottom-up plus additive lateral and top-down recurrence.

    Example
    -------
    >>> blt(channels=(8, 16)).forward_sequence(torch.zeros(2, 1, 3, 32, 32))["logits"].shape
    torch.Size([2, 1, 10])
    """
    return _build({"lateral": True, "topdown": True, "interaction": "additive"}, kwargs)


def bl_mult(**kwargs: Any) -> BLTNet:
    """BL with multiplicative lateral modulation of the bottom-up drive.

    Example
    -------
    >>> bl_mult().config["interaction"]
    'multiplicative'
    """
    return _build({"lateral": True, "topdown": False, "interaction": "multiplicative"}, kwargs)


def bt_mult(**kwargs: Any) -> BLTNet:
    """BT with multiplicative top-down modulation of the bottom-up drive.

    Example
    -------
    >>> bt_mult().config["lateral"]
    False
    """
    return _build({"lateral": False, "topdown": True, "interaction": "multiplicative"}, kwargs)


def blt_mult(**kwargs: Any) -> BLTNet:
    """BLT with multiplicative lateral and top-down modulation of the bottom-up drive.

    Example
    -------
    >>> blt_mult(modulation="tanh").config["modulation"]
    'tanh'
    """
    return _build({"lateral": True, "topdown": True, "interaction": "multiplicative"}, kwargs)
