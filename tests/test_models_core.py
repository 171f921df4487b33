"""Hook adapter, arrival probing, checkpoint loading and the `models list` command."""

import hashlib
import importlib

import pytest
import torch
from torch import nn

from neurofit.cli import main
from neurofit.errors import NeurofitError
from neurofit.models import (
    check_arrival,
    file_sha256,
    load_model,
    present,
    probe_arrival,
    save_checkpoint,
    wrap,
    wrap_static,
)
from neurofit.models.base import TemporalModel
from neurofit.models.catalog import list_models
from neurofit.models.checkpoint import read_checkpoint
from neurofit.models.zoo import ZOO


class Leaky(nn.Module):
    """A stateful module fed one frame per call: h_t = tanh(conv(x_t) + 0.5 * h_{t-1})."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.act = nn.Tanh()
        self.h = None

    def reset(self):
        self.h = None

    def forward(self, x):
        drive = self.conv(x)
        self.h = self.act(drive if self.h is None else drive + 0.5 * self.h)
        return self.h


class Looping(nn.Module):
    """Runs its own unroll: block called `n` times on one image, head once, returns (out, state)."""

    def __init__(self, n=3):
        super().__init__()
        self.n = n
        self.block = nn.Conv2d(3, 3, 3, padding=1)
        self.head = nn.Linear(3, 5)

    def forward(self, x):
        for _ in range(self.n):
            x = torch.relu(self.block(x))
        return self.head(x.mean((2, 3))), x


class Pair(nn.Module):
    def forward(self, x):
        return x * 2, x * 3


def test_hooked_conv_before_inplace_relu_stores_pre_relu_values():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True))
    images = torch.randn(2, 3, 8, 8)
    expected = net[0](images).detach()
    out = wrap_static(net, {"conv": "0", "relu": "1"}).forward_sequence(present(images, 1))
    assert (out["conv"] < 0).any(), "pre-ReLU values must keep their negative entries"
    torch.testing.assert_close(out["conv"][0], expected, rtol=0, atol=0)
    torch.testing.assert_close(out["relu"][0], expected.clamp_min(0), rtol=0, atol=0)


def test_frames_feed_equals_explicit_unroll_of_a_stateful_module():
    torch.manual_seed(1)
    net = Leaky()
    movie = torch.randn(4, 2, 3, 6, 6)
    model = wrap(net, ["conv", "act"], steps=1, feed="frames", reset=Leaky.reset, default_steps=4)
    first = model.forward_sequence(movie)
    second = model.forward_sequence(movie)  # state is reset between movies
    net.reset()
    with torch.no_grad():
        explicit = torch.stack([net(frame) for frame in movie])
    assert first["act"].shape == (4, 2, 4, 6, 6)
    torch.testing.assert_close(first["act"], explicit, rtol=0, atol=0)
    torch.testing.assert_close(second["act"], explicit, rtol=0, atol=0)
    assert model.steps_per_layer(4) == {"conv": 4, "act": 4}


def test_unroll_feed_counts_each_layer_separately():
    torch.manual_seed(2)
    net = Looping(n=3)
    image = torch.rand(2, 3, 8, 8)
    model = wrap(net, {"block": "block", "logits": "head"}, steps={"block": 3, "logits": 1})
    out = model.forward_sequence(present(image, 3))
    assert out["block"].shape == (3, 2, 3, 8, 8) and out["logits"].shape == (1, 2, 5)
    assert model.layers == ("block",) and model.default_steps == 3
    x = image
    for t in range(3):
        conv = net.block(x).detach()
        torch.testing.assert_close(out["block"][t], conv, rtol=0, atol=0)
        x = torch.relu(conv)


def test_call_count_mismatch_names_layer_expected_and_actual():
    model = wrap(Looping(n=4), {"block": "block", "logits": "head"}, steps={"block": 3, "logits": 1})
    with pytest.raises(NeurofitError, match=r"layer 'block' \(submodule 'block'\) expected 3 calls, got 4"):
        model.forward_sequence(torch.rand(2, 3, 8, 8))


def test_hooks_are_removed_after_success_and_after_failure():
    net = Looping(n=2)
    model = wrap(net, ["block"], steps=2)
    model.forward_sequence(torch.rand(1, 3, 8, 8))
    assert not net.block._forward_hooks
    with pytest.raises(RuntimeError):
        model.forward_sequence(torch.rand(1, 5, 8, 8))  # wrong channel count fails inside the conv
    assert not net.block._forward_hooks
    with pytest.raises(NeurofitError):
        wrap(net, ["block"], steps=5).forward_sequence(torch.rand(1, 3, 8, 8))
    assert not net.block._forward_hooks


def test_unknown_layer_lists_valid_submodule_names():
    with pytest.raises(NeurofitError, match=r"no submodule named 'blok'.*'block', 'head'"):
        wrap(Looping(), ["blok"], steps=3)


def test_wrap_options_are_one_dataclass_and_unknown_options_are_named():
    from neurofit.models.hooks import HookedModel, HookOptions

    with pytest.raises(NeurofitError, match=r"unknown wrap\(\) option\(s\) 'defualt_steps'; valid options: feed, "):
        wrap(Looping(), ["block"], steps=3, defualt_steps=2)
    options = HookOptions(feed="frames", default_steps=4, input_size=8)
    direct = HookedModel(Looping(), ["block"], 3, options)
    through_wrap = wrap(Looping(), ["block"], steps=3, feed="frames", default_steps=4, input_size=8)
    assert direct.default_steps == through_wrap.default_steps == 4 and direct.input_size == 8
    assert direct.hook_spec == through_wrap.hook_spec


def test_tuple_outputs_take_element_zero_unless_select_says_otherwise():
    images = torch.rand(2, 3, 4, 4)
    default = wrap_static(Pair(), {"out": ""}).forward_sequence(present(images, 1))
    chosen = wrap_static(Pair(), {"out": ""}, select=lambda o: o[1]).forward_sequence(present(images, 1))
    torch.testing.assert_close(default["out"][0], images * 2)
    torch.testing.assert_close(chosen["out"][0], images * 3)


def test_unroll_feed_refuses_a_movie_that_switches_the_image_off():
    model = wrap(Looping(n=2), ["block"], steps=2)
    with pytest.raises(NeurofitError, match="frame 2 differs"):
        model.forward_sequence(present(torch.rand(1, 3, 8, 8), steps=4, on=0, off=2))


class DelayLine(TemporalModel):
    """Layer k repeats layer k-1 from one step earlier: layer k is first driven at step k."""

    layers = ("L0", "L1", "L2")
    default_steps = 4
    input_size = 8

    def __init__(self, convention):
        super().__init__()
        self.convention = convention
        self.conv = nn.Conv2d(3, 2, 3, padding=1)

    def forward_sequence(self, movie):
        l0 = torch.stack([self.conv(frame) for frame in movie])
        shift = lambda x: torch.cat([torch.zeros_like(x[:1]), x[:-1]])  # noqa: E731
        l1 = shift(l0)
        return {"L0": l0, "L1": l1, "L2": shift(l1)}


def test_probe_arrival_measures_the_delay_of_each_layer():
    model = DelayLine("biological")
    assert [probe_arrival(model, layer) for layer in model.layers] == [0, 1, 2]
    assert probe_arrival(model, "L2", steps=2) is None
    assert check_arrival(model) == {"L0": (0, 0), "L1": (1, 1), "L2": (2, 2)}


def test_check_arrival_rejects_a_declaration_that_disagrees_with_measurement():
    with pytest.raises(NeurofitError, match="L1: declared 0, measured 1"):
        check_arrival(DelayLine("sweep"))


def test_probe_restores_training_mode():
    model = DelayLine("biological").train()
    probe_arrival(model, "L0")
    assert model.training


def _available_zoo_names():
    names = []
    for name, target in ZOO.items():
        module_name = target.split(":")[0]
        try:
            importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            if err.name != module_name:
                raise
            continue
        names.append(name)
    return names


@pytest.mark.parametrize("name", sorted(ZOO))
def test_every_zoo_model_round_trips_through_safetensors(name, tmp_path):
    if name not in _available_zoo_names():
        pytest.skip(f"family of {name} not written yet")
    torch.manual_seed(3)
    model = load_model(name)
    # perturb every buffer too (BatchNorm statistics) so that a missing buffer would show
    with torch.no_grad():
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.add_(0.01 * torch.randn_like(value))
    path = save_checkpoint(model, tmp_path / f"{name}.safetensors", {"note": "round trip", "epochs": 2})
    loaded = load_model(path)
    assert loaded.arch == name and loaded.config == model.config
    assert loaded.weights_sha256 == file_sha256(path)
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        torch.testing.assert_close(restored[key], original[key], rtol=0, atol=0)


def test_state_dict_file_with_wrapper_and_module_prefix_loads(tmp_path):
    torch.manual_seed(4)
    source = load_model("cornet_z", width=8)
    wrapped = {"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "best_prec1": 50.0}
    path = tmp_path / "legacy.th"
    torch.save(wrapped, path)
    loaded = load_model("cornet_z", path, width=8)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    assert not loaded.training


def test_missing_unexpected_and_misshapen_keys_are_named(tmp_path):
    state = load_model("cornet_z", width=8).state_dict()
    state.pop("V2.conv.bias")
    state["V9.conv.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(NeurofitError, match=r"missing keys: V2\.conv\.bias; unexpected keys: V9\.conv\.weight"):
        load_model("cornet_z", tmp_path / "partial.pt", width=8)
    with pytest.raises(NeurofitError, match=r"shape mismatches: V1\.conv\.weight \(checkpoint \(8, 3, 7, 7\), "
                                             r"model \(16, 3, 7, 7\)\)"):
        load_model("cornet_z", tmp_path / "partial.pt", width=16)


class Payload:
    """Any class: pickling it makes the file need code to load."""

    def __init__(self):
        self.weights = torch.zeros(2)


def test_a_checkpoint_that_needs_unpickling_code_is_refused(tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, path)
    with pytest.raises(NeurofitError, match=r"refusing to load .*unsafe\.pt.*arbitrary code.*weights_only=True"):
        read_checkpoint(path)


def test_a_state_dict_without_architecture_needs_an_arch(tmp_path):
    torch.save(load_model("cornet_z", width=8).state_dict(), tmp_path / "w.pt")
    with pytest.raises(NeurofitError, match="does not say which architecture"):
        load_model(tmp_path / "w.pt")


def test_safetensors_of_another_architecture_is_refused(tmp_path):
    path = save_checkpoint(load_model("cornet_z", width=8), tmp_path / "z.safetensors")
    with pytest.raises(NeurofitError, match="holds weights of 'cornet_z', not 'deep_ff'"):
        load_model("deep_ff", path)


def test_import_path_architecture_and_config_errors():
    model = load_model("neurofit.models.zoo.cornet:cornet_s", width=8)
    assert model.arch == "neurofit.models.zoo.cornet:cornet_s" and model.config["width"] == 8
    with pytest.raises(NeurofitError, match="does not accept config.*its parameters: width"):
        load_model("cornet_rt", depth=3)
    with pytest.raises(NeurofitError, match="unknown architecture 'cornet_q'"):
        load_model("cornet_q")
    with pytest.raises(NeurofitError, match="cannot import module 'no.such'"):
        load_model("no.such:factory")


def test_save_checkpoint_replaces_the_file_atomically_and_needs_an_arch(tmp_path):
    target = tmp_path / "m.safetensors"
    target.write_bytes(b"old")
    save_checkpoint(load_model("cornet_z", width=8), target)
    assert read_checkpoint(target)[1]["neurofit_arch"] == "cornet_z"
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
    plain = nn.Linear(2, 2)
    with pytest.raises(NeurofitError, match="pass arch="):
        save_checkpoint(plain, tmp_path / "p.safetensors")
    save_checkpoint(plain, tmp_path / "p.safetensors", arch="torch.nn:Linear")


def test_file_sha256_matches_hashlib(tmp_path):
    data = torch.randint(0, 256, (3_000_000,), dtype=torch.uint8).numpy().tobytes()
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_models_list_shows_every_zoo_model(capsys):
    table = list_models()
    assert list(table["name"]) == list(ZOO)
    cornet_s = table.set_index("name").loc["cornet_s"]
    assert cornet_s["layers"] == "V1, V2[2], V4[4], IT[2]" and cornet_s["params"] > 0
    assert main(["models", "list"]) == 0
    printed = capsys.readouterr().out
    for name in ZOO:
        assert name in printed


def test_models_list_marks_missing_family_and_raises_real_errors(monkeypatch):
    monkeypatch.setitem(ZOO, "ghost", "neurofit.models.zoo.no_such_family:ghost")
    row = list_models().set_index("name").loc["ghost"]
    assert not row["available"] and "not available: module neurofit.models.zoo.no_such_family" in row["note"]
    monkeypatch.setitem(ZOO, "ghost", "neurofit.models.zoo.cornet:cornet_rt_missing")
    with pytest.raises(AttributeError):
        list_models()


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_a_truncated_checkpoint_is_reported_by_name(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    if suffix == ".pt":
        torch.save(load_model("cornet_z", width=8).state_dict(), path)
    else:
        save_checkpoint(load_model("cornet_z", width=8), path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(NeurofitError, match=rf"cannot read .*cut\{suffix}"):
        read_checkpoint(path)


def test_importing_models_flushes_denormals_on_cpu():
    import neurofit.models

    if not neurofit.models.flush_denormals():
        pytest.skip("this CPU cannot flush denormals")
    tiny = torch.tensor([1e-40], dtype=torch.float32)  # a float32 denormal
    assert (tiny * 1.0).item() == 0.0


def test_public_api_reexports_the_model_functions():
    import neurofit

    assert neurofit.load_model is load_model and neurofit.wrap is wrap and neurofit.wrap_static is wrap_static


def test_input_fn_prepares_each_frame_and_select_can_differ_per_layer():
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Flatten())
    upsample = lambda x: nn.functional.interpolate(x, scale_factor=2.0)  # noqa: E731
    model = wrap_static(net, {"conv": "0", "flat": "1"}, input_fn=upsample,
                        select={"flat": lambda o: o[:, :5]})
    images = torch.rand(2, 3, 4, 4)
    out = model.forward_sequence(present(images, 1))
    expected = net[0](upsample(images)).detach()
    torch.testing.assert_close(out["conv"][0], expected, rtol=0, atol=0)
    torch.testing.assert_close(out["flat"][0], expected.flatten(1)[:, :5], rtol=0, atol=0)


def tiny_wrapped(channels=2):
    """A user factory returning a wrapped plain module (used through its import path)."""
    return wrap_static(nn.Sequential(nn.Conv2d(3, channels, 3), nn.BatchNorm2d(channels)), {"conv": "0"},
                       config={"channels": channels})


def test_a_wrapped_user_module_round_trips_through_its_import_path(tmp_path):
    torch.manual_seed(7)
    arch = f"{__name__}:tiny_wrapped"
    model = tiny_wrapped(channels=3)
    path = save_checkpoint(model, tmp_path / "user.safetensors", arch=arch)
    assert set(read_checkpoint(path)[0]) == set(model.net.state_dict()), "keys are the plain module's"
    with pytest.raises(NeurofitError, match="names code to import"):
        load_model(path)  # the file may not name code; the user does
    loaded = load_model(arch, path)
    assert loaded.arch == arch and loaded.config == {"channels": 3}
    images = present(torch.rand(2, 3, 8, 8), 1)
    torch.testing.assert_close(loaded.forward_sequence(images)["conv"], model.forward_sequence(images)["conv"],
                               rtol=0, atol=0)
