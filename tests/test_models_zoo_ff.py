"""Zoo part A: CORnet-Z, the deep feedforward control, CORnet-RT, CORnet-S and the CIFAR ResNet-20."""

import copy
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from neurofit.errors import NeurofitError
from neurofit.models import check_arrival, load_model, present, probe_arrival, save_checkpoint, wrap
from neurofit.models.checkpoint import read_checkpoint
from neurofit.models.zoo.cornet import cornet_rt, cornet_s
from neurofit.models.zoo.feedforward import cornet_z, deep_ff
from neurofit.models.zoo.resnet_cifar import ShortcutA, resnet20_cifar

OWNED = ("cornet_z", "deep_ff", "cornet_rt", "cornet_s", "resnet20_cifar")

# documented outputs at width 8, 32 px input, batch 2 (leading dim: steps of each layer for default_steps)
EXPECTED_SHAPES = {
    "cornet_z": {"V1": (1, 2, 8, 16, 16), "V2": (1, 2, 16, 8, 8), "V4": (1, 2, 32, 4, 4),
                 "IT": (1, 2, 64, 2, 2), "logits": (1, 2, 10)},
    "deep_ff": {"V1": (1, 2, 8, 32, 32), "V2": (1, 2, 16, 16, 16), "V4": (1, 2, 32, 8, 8),
                "IT": (1, 2, 64, 4, 4), "logits": (1, 2, 10)},
    "cornet_rt": {"V1": (5, 2, 8, 32, 32), "V2": (5, 2, 16, 16, 16), "V4": (5, 2, 32, 8, 8),
                  "IT": (5, 2, 64, 4, 4), "logits": (5, 2, 10)},
    "cornet_s": {"V1": (1, 2, 8, 16, 16), "V2": (2, 2, 16, 8, 8), "V4": (4, 2, 32, 4, 4),
                 "IT": (2, 2, 64, 2, 2), "logits": (1, 2, 10)},
}

RESNET_PATH = Path(os.environ.get("NEUROFIT_DATA_PATH", "/nonexistent")) / "cifar10_resnet" / "resnet20-12fca82f.th"


def _small(name):
    return load_model(name) if name == "resnet20_cifar" else load_model(name, width=8)


@pytest.mark.parametrize("name", sorted(EXPECTED_SHAPES))
def test_forward_sequence_returns_documented_layers_and_shapes_at_32px(name):
    model = _small(name)
    with torch.no_grad():
        out = model.forward_sequence(present(torch.rand(2, 3, 32, 32), model.default_steps))
    assert {k: tuple(v.shape) for k, v in out.items()} == EXPECTED_SHAPES[name]
    assert model.layers == ("V1", "V2", "V4", "IT")
    steps = model.steps_per_layer()
    assert steps == {layer: EXPECTED_SHAPES[name][layer][0] for layer in model.layers}


def test_resnet20_returns_documented_layers_and_shapes_at_32px():
    model = resnet20_cifar()
    with torch.no_grad():
        out = model.forward_sequence(present(torch.rand(2, 3, 32, 32), 1))
    assert {k: tuple(v.shape) for k, v in out.items()} == {
        "conv1": (1, 2, 16, 32, 32), "layer1": (1, 2, 16, 32, 32), "layer2": (1, 2, 32, 16, 16),
        "layer3": (1, 2, 64, 8, 8), "avgpool": (1, 2, 64), "logits": (1, 2, 10)}
    assert model.layers == ("conv1", "layer1", "layer2", "layer3", "avgpool")


@pytest.mark.parametrize("name", [n for n in OWNED if n != "cornet_rt"])
def test_declared_arrival_matches_measurement(name):
    model = _small(name)
    result = check_arrival(model)
    assert all(declared == measured for declared, measured in result.values())


def test_cornet_rt_it_is_first_driven_at_step_3_of_5():
    model = cornet_rt(width=8)
    assert probe_arrival(model, "IT", steps=5) == 3
    assert check_arrival(model, steps=5) == {"V1": (0, 0), "V2": (1, 1), "V4": (2, 2), "IT": (3, 3)}


def test_feedforward_models_respond_to_each_frame_independently():
    model = cornet_z(width=8)
    images = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        movie_out = model.forward_sequence(present(images, steps=3, on=1, off=2))
        alone = model.forward_sequence(present(images, steps=1))
    torch.testing.assert_close(movie_out["IT"][1], alone["IT"][0])
    torch.testing.assert_close(movie_out["IT"][0], movie_out["IT"][2])


@pytest.mark.parametrize("width,num_classes", [(8, 10), (16, 10), (32, 100), (64, 1000)])
def test_deep_ff_matches_cornet_rt_parameter_count_within_10_percent(width, num_classes):
    def count(model):
        return sum(p.numel() for p in model.parameters())

    ff, rt, z = (f(width=width, num_classes=num_classes) for f in (deep_ff, cornet_rt, cornet_z))
    assert abs(count(ff) - count(rt)) <= 0.10 * count(rt)
    convs = lambda m: sum(isinstance(x, nn.Conv2d) for x in m.modules())  # noqa: E731
    assert convs(ff) == 2 * convs(z) == 8, "the control is deeper than CORnet-Z"
    assert count(ff) > count(z)


class ReferenceRT(nn.Module):
    """The reference CORnet_RT.forward loop (github.com/dicarlolab/CORnet, cornet_rt.py) on a model's blocks:
    zero input to V2..IT at t = 0, then each block takes the previous block's output from step t - 1."""

    def __init__(self, model, times, sizes):
        super().__init__()
        self.V1, self.V2, self.V4, self.IT, self.decoder = model.V1, model.V2, model.V4, model.IT, model.decoder
        self.times, self.sizes = times, sizes

    def forward(self, inp):
        outputs, states = {"inp": inp}, {}
        blocks = ["inp", "V1", "V2", "V4", "IT"]
        for k, block in enumerate(blocks[1:]):
            this_inp = outputs["inp"] if block == "V1" else None
            shape = (len(inp), getattr(self, block).out_channels, self.sizes[k], self.sizes[k])
            outputs[block] = states[block] = getattr(self, block)(this_inp, None, empty_shape=shape)
        for _ in range(1, self.times):
            new_outputs = {"inp": inp}
            for block in blocks[1:]:
                prev_output = outputs[blocks[blocks.index(block) - 1]]
                new_outputs[block] = states[block] = getattr(self, block)(prev_output, states[block])
            outputs = new_outputs
        return self.decoder(outputs["IT"])


def test_cornet_rt_unroll_equals_hooks_on_the_reference_loop():
    torch.manual_seed(0)
    model = cornet_rt(width=8).eval()
    image = torch.rand(2, 3, 32, 32)
    reference = wrap(ReferenceRT(model, times=5, sizes=(32, 16, 8, 4)),
                     {"V1": "V1.output", "V2": "V2.output", "V4": "V4.output", "IT": "IT.output",
                      "logits": "decoder.linear"},
                     steps={"V1": 5, "V2": 5, "V4": 5, "IT": 5, "logits": 1})
    with torch.no_grad():
        hooked = reference.forward_sequence(image)
        unrolled = model.forward_sequence(present(image, 5))
    for area in ("V1", "V2", "V4", "IT"):
        torch.testing.assert_close(unrolled[area], hooked[area], rtol=0, atol=0)
    torch.testing.assert_close(unrolled["logits"][-1], hooked["logits"][0], rtol=0, atol=0)


CORNET_S_LAYERS = {"V1": "V1.output", "V2": "V2.output", "V4": "V4.output", "IT": "IT.output",
                   "logits": "decoder.output"}


def test_cornet_s_hook_adapter_counts_2_4_2_and_equals_the_explicit_unroll():
    torch.manual_seed(1)
    model = cornet_s(width=8).eval()
    image = torch.rand(2, 3, 32, 32)
    counts = {"V1": 1, "V2": 2, "V4": 4, "IT": 2, "logits": 1}
    hooked_model = wrap(model.as_sequential(), CORNET_S_LAYERS, steps=counts)
    with torch.no_grad():
        hooked = hooked_model.forward_sequence(image)
        unrolled = model.forward_sequence(present(image, 1))
    assert {k: v.shape[0] for k, v in hooked.items()} == counts
    for layer in counts:
        torch.testing.assert_close(unrolled[layer], hooked[layer], rtol=0, atol=0)
    wrong = wrap(model.as_sequential(), CORNET_S_LAYERS, steps={**counts, "V4": 2})
    with pytest.raises(NeurofitError, match=r"layer 'V4' \(submodule 'V4.output'\) expected 2 calls, got 4"):
        wrong.forward_sequence(image)


def _reference_block_s(block, inp):
    """The reference CORblock_S.forward, which sets conv2.stride before each repetition (on a copy)."""
    block = copy.deepcopy(block)
    x = block.conv_input(inp)
    for t in range(block.times):
        if t == 0:
            skip = block.norm_skip(block.skip(x))
            block.conv2.stride = (2, 2)
        else:
            skip = x
            block.conv2.stride = (1, 1)
        x = block.nonlin1(getattr(block, f"norm1_{t}")(block.conv1(x)))
        x = block.nonlin2(getattr(block, f"norm2_{t}")(block.conv2(x)))
        x = getattr(block, f"norm3_{t}")(block.conv3(x))
        x += skip
        x = block.nonlin3(x)
    return x


def test_cornet_s_blocks_equal_the_reference_block_code():
    torch.manual_seed(2)
    model = cornet_s(width=8).eval()
    with torch.no_grad():
        for m in model.modules():  # non-trivial BatchNorm statistics
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
        x = model.V1(torch.rand(2, 3, 32, 32))
        for area in ("V2", "V4", "IT"):
            block = getattr(model, area)
            torch.testing.assert_close(block(x), _reference_block_s(block, x), rtol=1e-6, atol=1e-6)
            x = block(x)


def test_cornet_s_uses_one_batchnorm_per_repetition():
    torch.manual_seed(3)
    model = cornet_s(width=8).eval()
    image = present(torch.rand(2, 3, 32, 32), 1)
    with torch.no_grad():
        before = model.forward_sequence(image)
        model.V4.norm1_3.bias.add_(1.0)
        after = model.forward_sequence(image)
    torch.testing.assert_close(after["V4"][:3], before["V4"][:3], rtol=0, atol=0)
    assert not torch.allclose(after["V4"][3], before["V4"][3])
    assert {f"norm1_{t}" for t in range(4)} <= set(dict(model.V4.named_children()))


@pytest.mark.parametrize("name", OWNED)
def test_checkpoint_round_trip_reproduces_outputs(name, tmp_path):
    torch.manual_seed(4)
    model = _small(name).train()
    images = present(torch.rand(2, 3, 32, 32), model.default_steps)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    if name == "resnet20_cifar":
        model.detach = False  # the hook adapter keeps the graph for this one training step
    loss = model.forward_sequence(images)["logits"].square().mean()
    loss.backward()
    opt.step()  # trained weights and updated BatchNorm statistics, not the initialisation
    model.eval()
    path = save_checkpoint(model, tmp_path / f"{name}.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, tmp_path / "w.pth")
    if name == "resnet20_cifar":
        torch.save({"state_dict": {f"module.{k}": v for k, v in model.net.state_dict().items()}},
                   tmp_path / "w.pth")
    with torch.no_grad():
        expected = model.forward_sequence(images)
        for loaded in (load_model(path), load_model(name, tmp_path / "w.pth", **model.config)):
            out = loaded.forward_sequence(images)
            for layer, value in expected.items():
                torch.testing.assert_close(out[layer], value, rtol=0, atol=0)


def test_option_a_shortcut_subsamples_and_zero_pads_channels():
    x = torch.randn(2, 16, 8, 8)
    y = ShortcutA(8)(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.all(y[:, :8] == 0) and torch.all(y[:, 24:] == 0)
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2], rtol=0, atol=0)


def test_resnet20_has_the_published_parameter_count():
    # akamaster/pytorch_resnet_cifar10 README: ResNet-20, 0.27M parameters
    assert sum(p.numel() for p in resnet20_cifar().parameters()) == 269_722


def _reference_resnet20(state, images):
    """akamaster's ResNet-20 forward written directly on the raw state_dict (eval-mode BatchNorm)."""

    def bn(x, prefix):
        return F.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                            state[f"{prefix}.weight"], state[f"{prefix}.bias"], False, 0.0, 1e-5)

    out = F.relu(bn(F.conv2d(images, state["conv1.weight"], padding=1), "bn1"))
    for stage, planes in ((1, 16), (2, 32), (3, 64)):
        for block in range(3):
            p = f"layer{stage}.{block}"
            stride = 2 if stage > 1 and block == 0 else 1
            h = F.relu(bn(F.conv2d(out, state[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
            h = bn(F.conv2d(h, state[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            if stride != 1 or out.shape[1] != planes:
                out = F.pad(out[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
            out = F.relu(h + out)
    out = F.avg_pool2d(out, out.size()[3]).flatten(1)
    return F.linear(out, state["linear.weight"], state["linear.bias"])


def _smooth_images(n, seed):
    generator = torch.Generator().manual_seed(seed)
    return F.interpolate(torch.rand(n, 3, 4, 4, generator=generator), size=32, mode="bilinear",
                         align_corners=False)


@pytest.mark.realdata
@pytest.mark.skipif(not RESNET_PATH.is_file(), reason="NEUROFIT_DATA_PATH/cifar10_resnet not available")
def test_real_resnet20_loads_without_missing_keys_and_matches_the_reference_forward():
    raw = torch.load(RESNET_PATH, map_location="cpu", weights_only=True)
    assert abs(float(raw["best_prec1"]) - 91.78) < 0.01
    model = load_model("resnet20_cifar", RESNET_PATH)  # raises on any missing/unexpected key
    state, _ = read_checkpoint(RESNET_PATH)
    own = {k for k in model.net.state_dict() if not k.endswith("num_batches_tracked")}
    assert set(state) == own and len(state) == 97
    images = model.normalize(_smooth_images(16, seed=0))
    with torch.no_grad():
        logits = model.forward_sequence(present(images, 1))["logits"][0]
        torch.testing.assert_close(logits, _reference_resnet20(state, images), rtol=1e-5, atol=1e-5)


@pytest.mark.realdata
@pytest.mark.skipif(not RESNET_PATH.is_file(), reason="NEUROFIT_DATA_PATH/cifar10_resnet not available")
def test_real_resnet20_classifies_procedural_images_deterministically():
    model = load_model("resnet20_cifar", RESNET_PATH)
    images = model.normalize(_smooth_images(100, seed=1))
    with torch.no_grad():
        first = model.forward_sequence(present(images, 1))["logits"][0]
        second = model.forward_sequence(present(images, 1))["logits"][0]
        one_by_one = torch.cat([model.forward_sequence(present(images[i:i + 1], 1))["logits"][0]
                                for i in range(0, 100, 25)])
        fresh = load_model("resnet20_cifar").forward_sequence(present(images, 1))["logits"][0]
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    torch.testing.assert_close(one_by_one, first[::25], rtol=1e-5, atol=1e-5)
    # a trained classifier spreads structured inputs over several classes with moderate confidence;
    # the untrained network (kaiming init, unit BatchNorm statistics) puts them all in one class
    probs = first.softmax(-1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
    assert first.argmax(-1).unique().numel() >= 3 and 0.1 < entropy < 2.0
    assert fresh.argmax(-1).unique().numel() < first.argmax(-1).unique().numel()


def _quadrant_task():
    """8 images, 4 classes: a bright 8 x 8 square in one of the four quadrants on dim noise."""
    generator = torch.Generator().manual_seed(0)
    images = 0.3 * torch.rand(8, 3, 32, 32, generator=generator)
    labels = torch.arange(8) % 4
    for i, k in enumerate(labels.tolist()):
        row, col = divmod(k, 2)
        images[i, :, row * 16 + 4:row * 16 + 12, col * 16 + 4:col * 16 + 12] = 1.0
    return images, labels


@pytest.mark.slow
@pytest.mark.parametrize("name", OWNED)
def test_each_model_trains_on_cpu_at_32px(name):
    """15 Adam steps on 32 px images halve the loss, and every parameter receives a gradient."""
    torch.manual_seed(6)
    model = _small(name).train()
    if name == "resnet20_cifar":
        model.detach = False
    images, labels = _quadrant_task()
    movie = present(model.normalize(images), model.default_steps)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(15):
        loss = F.cross_entropy(model.forward_sequence(movie)["logits"][-1], labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert no_grad == []
