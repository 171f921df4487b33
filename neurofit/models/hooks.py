"""The hook adapter: any ``nn.Module`` becomes a :class:`~neurofit.models.base.TemporalModel`.

:func:`wrap` registers forward hooks on named submodules for the duration of one ``forward_sequence``,
counts how often each is called (a submodule called ``n`` times yields ``n`` timesteps; counts may differ
between layers, e.g. CORnet-S's V2/V4/IT are called 2/4/2 times per image), stores a
``detach().clone()`` of every output (an in-place op later in the network, such as
``nn.ReLU(inplace=True)``, would otherwise overwrite what was stored), checks the counts against the
declared ones and removes the hooks in ``finally`` even when the forward pass fails.

How the wrapped module sees the movie ``[T, B, C, H, W]`` is chosen by ``feed``:

* ``"unroll"``: the module runs its own unroll on one image (CORnet-S with ``times``, a ConvRNN whose
  ``forward`` loops ``n`` steps). It is called once, on ``movie[0]``; the movie must hold that image for
  all of its frames (the module cannot see an image switched off), and a 4-D image batch is accepted too.
  Layer ``L`` yields ``[steps[L], B, ...]`` whatever the movie's length.
* ``"frames"``: the module is called once per movie frame and keeps its own state between calls (reset
  by ``reset(module)`` before each movie); a feedforward module simply responds to each frame. Layer ``L``
  yields ``[T * steps[L], B, ...]`` (``steps`` counts calls per frame, usually 1).

:func:`wrap_static` is the feedforward case: ``feed="frames"``, one call per frame, ``T = 1`` by default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from neurofit.errors import NeurofitError
from neurofit.models.base import Convention, TemporalModel

Feed = Literal["unroll", "frames"]
Select = Callable[[Any], torch.Tensor]


def _default_select(output: Any) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        # recurrent cells conventionally return (output, state); element 0 is the layer's response
        return output[0]
    raise TypeError(
        f"a hooked submodule returned {type(output).__name__}, not a tensor or a tuple starting with one; "
        "pass select=... (a function output -> Tensor) to wrap()"
    )


def _resolve_layers(module: nn.Module, layers: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    mapping = dict(layers) if isinstance(layers, Mapping) else {name: name for name in layers}
    if not mapping:
        raise NeurofitError("wrap() needs at least one layer to record")
    named = dict(module.named_modules())
    unknown = [path for path in mapping.values() if path not in named]
    if unknown:
        valid = ", ".join(repr(n) for n in named if n)
        raise NeurofitError(
            f"{type(module).__name__} has no submodule named {', '.join(map(repr, unknown))}; "
            f"valid submodule names: {valid}"
        )
    return mapping


@dataclass(frozen=True)
class HookOptions:
    """How :func:`wrap` feeds the module, reads its hooks and describes the result (all optional).

    Attributes
    ----------
    feed : {"unroll", "frames"}
        ``"unroll"``: the module is called once on the (held-on) image and runs its own unroll.
        ``"frames"``: it is called once per movie frame, keeping its own state; ``reset`` is called on it
        before each movie.
    select : callable or mapping str -> callable, optional
        Picks the tensor to store from a hooked submodule's output (default: the output, or element 0
        of a tuple such as ``(output, state)``).
    input_fn : callable, optional
        Applied to each image/frame before the module is called (``module(input_fn(frame))``).
    reset : callable, optional
        ``reset(module)`` before each movie (``feed="frames"``).
    convention, first_driven, default_steps
        The declared time structure (checked by :func:`neurofit.models.probe.check_arrival`).
    detach : bool
        Store ``output.detach().clone()`` (default) or ``output.clone()`` (keeps the graph).
    input_size, mean, std, config
        Model metadata (input resolution, normalisation, constructor arguments for provenance).

    Example
    -------
    >>> HookOptions(feed="frames").detach
    True
    """

    feed: Feed = "unroll"
    select: Select | Mapping[str, Select] | None = None
    input_fn: Callable[[torch.Tensor], Any] | None = None
    reset: Callable[[nn.Module], None] | None = None
    convention: Convention = "sweep"
    first_driven: Mapping[str, int] | None = None
    default_steps: int | None = None
    detach: bool = True
    input_size: int | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    config: Mapping[str, Any] | None = None

    @classmethod
    def from_keywords(cls, options: Mapping[str, Any]) -> HookOptions:
        """Options from keyword arguments; an unknown name is a one-line error listing the valid ones."""
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = [name for name in options if name not in valid]
        if unknown:
            raise NeurofitError(f"unknown wrap() option(s) {', '.join(map(repr, unknown))}; valid options: "
                                f"{', '.join(valid)}")
        return cls(**options)


class HookedModel(TemporalModel):
    """A user ``nn.Module`` read out through forward hooks; build it with :func:`wrap` or :func:`wrap_static`.

    The wrapped module is the attribute ``net``; :func:`neurofit.models.checkpoint.save_checkpoint` and
    ``load_model`` read and write ``net``'s own state_dict, so its keys stay those of the plain module.
    ``config`` is what the model's factory takes (given by the factory; empty otherwise); ``hook_spec``
    records the wrapped class, the hooked submodules, their call counts and the feed.
    """

    def __init__(
        self,
        module: nn.Module,
        layers: Sequence[str] | Mapping[str, str],
        steps: int | Mapping[str, int] = 1,
        options: HookOptions | None = None,
    ) -> None:
        options = options or HookOptions()
        feed, select, default_steps = options.feed, options.select, options.default_steps
        super().__init__()
        if feed not in ("unroll", "frames"):
            raise NeurofitError(f"feed must be 'unroll' or 'frames', got {feed!r}")
        self.net = module
        self.layer_paths = _resolve_layers(module, layers)
        # "logits" is recorded like any layer but, as for every TemporalModel, is not one of `layers`
        self.layers = tuple(name for name in self.layer_paths if name != "logits")
        recorded = tuple(self.layer_paths)
        if isinstance(steps, Mapping):
            missing = [name for name in recorded if name not in steps]
            extra = [name for name in steps if name not in self.layer_paths]
            if missing or extra:
                raise NeurofitError(
                    f"steps must give a count for every layer: missing {missing}, not a layer {extra}"
                )
            self.calls = {name: int(steps[name]) for name in recorded}
        else:
            self.calls = dict.fromkeys(recorded, int(steps))
        bad = {name: n for name, n in self.calls.items() if n < 1}
        if bad:
            raise NeurofitError(f"expected call counts must be >= 1, got {bad}")
        self.feed: Feed = feed
        self.selects: dict[str, Select] = {
            name: (select.get(name, _default_select) if isinstance(select, Mapping)
                   else (select or _default_select))
            for name in recorded
        }
        self.input_fn = options.input_fn
        self.reset = options.reset
        self.convention = options.convention
        self._first_driven = dict(options.first_driven) if options.first_driven is not None else None
        if default_steps is None:
            default_steps = max(self.calls.values()) if feed == "unroll" else 1
        self.default_steps = int(default_steps)
        self.detach = options.detach
        if options.input_size is not None:
            self.input_size = int(options.input_size)
        if options.mean is not None:
            self.mean = tuple(float(m) for m in options.mean)
        if options.std is not None:
            self.std = tuple(float(s) for s in options.std)
        # config holds the factory's arguments (none known for a user's module); what is hooked is separate
        self.config = dict(options.config) if options.config is not None else {}
        self.hook_spec = {
            "wrapped": f"{type(module).__module__}.{type(module).__qualname__}",
            "layers": dict(self.layer_paths),
            "steps": dict(self.calls),
            "feed": feed,
        }

    def steps_per_layer(self, steps: int | None = None) -> dict[str, int]:
        if self.feed == "unroll":
            return {name: self.calls[name] for name in self.layers}
        steps = self.default_steps if steps is None else steps
        return {name: steps * self.calls[name] for name in self.layers}

    def declared_arrival(self) -> dict[str, int]:
        if self._first_driven is not None:
            return {name: int(self._first_driven.get(name, 0)) for name in self.layers}
        return super().declared_arrival()

    def _call(self, frame: torch.Tensor) -> Any:
        return self.net(frame if self.input_fn is None else self.input_fn(frame))

    def forward_sequence(self, movie: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the wrapped module on ``movie`` and return ``{layer: Tensor[n_calls, B, ...]}``.

        Example
        -------
        >>> net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
        >>> model = wrap_static(net, {"conv": "0"})
        >>> model.forward_sequence(torch.zeros(2, 5, 3, 8, 8))["conv"].shape
        torch.Size([2, 5, 4, 6, 6])
        """
        if self.feed == "unroll":
            if movie.dim() == 5:
                changed = [t for t in range(1, movie.shape[0]) if not torch.equal(movie[t], movie[0])]
                if changed:
                    raise NeurofitError(
                        f"this wrapped module unrolls itself on one image (feed='unroll'), but movie frame "
                        f"{changed[0]} differs from frame 0; present the image on for every step "
                        "(present(images, steps) with on=0, off=None) or wrap with feed='frames'"
                    )
                frames = [movie[0]]
            elif movie.dim() == 4:
                frames = [movie]
            else:
                raise NeurofitError(f"movie must be [T, B, C, H, W] (or [B, C, H, W]), got {tuple(movie.shape)}")
            n_module_calls = 1
        else:
            if movie.dim() != 5:
                raise NeurofitError(f"movie must be [T, B, C, H, W], got shape {tuple(movie.shape)}")
            frames = list(movie)
            n_module_calls = len(frames)

        records: dict[str, list[torch.Tensor]] = {name: [] for name in self.layer_paths}
        # detached outputs are copied once, straight into one [n_calls, B, ...] buffer per layer (a clone
        # per call and a stack at the end would copy every activation twice); a call past the expected
        # count or of another shape or dtype sends that layer back to per-call clones (then an error below)
        buffers: dict[str, torch.Tensor | None] = {}
        modules = dict(self.net.named_modules())
        handles = []

        def make_hook(name: str) -> Callable[..., None]:
            select = self.selects[name]
            expected = self.calls[name] * n_module_calls

            def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
                value = select(output)
                if not self.detach:
                    records[name].append(value.clone())
                    return
                value = value.detach()
                done = len(records[name])
                buffer = buffers.get(name)
                if done == 0 and name not in buffers and expected > 1:
                    buffer = buffers[name] = value.new_empty((expected, *value.shape))
                if buffer is not None and done < expected and buffer.shape[1:] == value.shape \
                        and buffer.dtype == value.dtype:
                    records[name].append(buffer[done].copy_(value))
                    return
                if buffer is not None:  # leave the buffer: keep what it holds as independent copies
                    records[name][:] = [v.clone() for v in records[name]]
                    buffers[name] = None
                records[name].append(value.clone())

            return hook

        try:
            for name, path in self.layer_paths.items():
                handles.append(modules[path].register_forward_hook(make_hook(name)))
            if self.reset is not None:
                self.reset(self.net)
            for frame in frames:
                self._call(frame)
        finally:
            for handle in handles:
                handle.remove()

        wrong = {
            name: (self.calls[name] * n_module_calls, len(records[name]))
            for name in self.layer_paths
            if len(records[name]) != self.calls[name] * n_module_calls
        }
        if wrong:
            details = "; ".join(
                f"layer {name!r} (submodule {self.layer_paths[name]!r}) expected {exp} calls, got {got}"
                for name, (exp, got) in wrong.items()
            )
            raise NeurofitError(
                f"hook call counts do not match ({details}) over {n_module_calls} call(s) of "
                f"{type(self.net).__name__} with feed={self.feed!r}; pass the true per-layer counts as "
                "steps={layer: count}"
            )
        out = {}
        for name, values in records.items():
            shapes = {tuple(v.shape) for v in values}
            if len(shapes) > 1:
                raise NeurofitError(
                    f"layer {name!r} returned outputs of different shapes across calls: {sorted(shapes)}"
                )
            buffer = buffers.get(name)
            if buffer is not None and len(values) == buffer.shape[0]:
                out[name] = buffer  # the values are its rows, in order
            elif len(values) == 1:
                out[name] = values[0].unsqueeze(0)  # a view of the one stored copy
            else:
                out[name] = torch.stack(values)
        return out


def wrap(
    module: nn.Module,
    layers: Sequence[str] | Mapping[str, str],
    steps: int | Mapping[str, int],
    select: Select | Mapping[str, Select] | None = None,
    input_fn: Callable[[torch.Tensor], Any] | None = None,
    **options: Any,
) -> HookedModel:
    """Turn ``module`` into a TemporalModel that records ``layers`` through forward hooks.

    Parameters
    ----------
    module : nn.Module
        Any network. Its weights are not copied: the returned model holds ``module`` as ``.net``.
    layers : sequence of str or mapping str -> str
        Submodule names (``dict(module.named_modules())`` keys) to record, or ``{output name: submodule
        name}`` to record under other names (``{"logits": "decoder.linear"}``). An unknown name raises
        NeurofitError listing the valid ones.
    steps : int or mapping str -> int
        How many times each layer's submodule is called per call of ``module``: one count for all
        layers, or one per layer (CORnet-S: ``{"V1": 1, "V2": 2, "V4": 4, "IT": 2}``). Any other count
        at run time raises NeurofitError naming the layer, the expected and the actual count.
    select, input_fn, **options
        The :class:`HookOptions`: ``select``, ``input_fn``, ``feed`` (``"unroll"`` or ``"frames"``),
        ``reset``, ``convention``, ``first_driven``, ``default_steps``, ``detach``, ``input_size``, ``mean``,
        ``std``, ``config``; an unknown name raises NeurofitError listing the valid ones.

    Returns
    -------
    HookedModel
        Its ``forward_sequence(movie)`` returns ``{layer: Tensor[n, B, ...]}`` with ``n`` the call count.

    Example
    -------
    >>> class Loop(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.conv = nn.Conv2d(3, 3, 3, padding=1)
    ...     def forward(self, x):
    ...         for _ in range(4):
    ...             x = self.conv(x)
    ...         return x
    >>> model = wrap(Loop(), ["conv"], steps=4)
    >>> model.forward_sequence(torch.rand(1, 2, 3, 8, 8))["conv"].shape
    torch.Size([4, 2, 3, 8, 8])
    """
    return HookedModel(module, layers, steps,
                       HookOptions.from_keywords({"select": select, "input_fn": input_fn, **options}))


def wrap_static(
    module: nn.Module,
    layers: Sequence[str] | Mapping[str, str],
    select: Select | Mapping[str, Select] | None = None,
    input_fn: Callable[[torch.Tensor], Any] | None = None,
    **kwargs: Any,
) -> HookedModel:
    """Wrap a feedforward ``module`` (``T = 1``): each movie frame is one independent forward pass.

    Every layer must be called exactly once per pass. A movie of ``T`` frames yields ``[T, B, ...]``
    per layer; the default unroll is one step. Keyword arguments go to :func:`wrap`.

    Example
    -------
    >>> net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
    >>> model = wrap_static(net, {"conv": "0"})
    >>> out = model.forward_sequence(torch.randn(1, 2, 3, 8, 8))
    >>> bool((out["conv"] < 0).any())  # stored before the in-place ReLU ran
    True
    """
    return wrap(module, layers, 1, select, input_fn, feed="frames", **kwargs)
