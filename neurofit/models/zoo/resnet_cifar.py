"""ResNet-20 for CIFAR-10, as trained by github.com/akamaster/pytorch_resnet_cifar10.

He, Zhang, Ren & Sun (2016), "Deep Residual Learning for Image Recognition", CVPR, section 4.2 (the
CIFAR-10 networks); the implementation and pretrained weights are Yerlan Idelbayev's (``resnet.py`` and
``pretrained_models/resnet20-12fca82f.th`` of that repository, BSD-2-Clause; its ``best_prec1``: 91.78%
CIFAR-10 test accuracy). Architecture: 3x3 conv (16) -> BatchNorm -> ReLU -> three stages of ``n`` basic
blocks (16, 32, 64 channels, strides 1, 2, 2; ResNet-20: ``n = 3``) whose downsampling shortcuts are
"option A" (take every second pixel, zero-pad the new channels, no parameters) -> global average pool ->
linear. Inputs are 32 x 32 RGB in [0, 1] normalised with mean (0.485, 0.456, 0.406) and std (0.229, 0.224,
0.225). Parameter names are the reference's, so the published state_dict (keys prefixed ``module.``)
loads into :class:`ResNetCifar` without a missing or unexpected key.

:func:`resnet20_cifar` returns the network wrapped with :func:`neurofit.models.hooks.wrap_static`
(``T = 1``) recording ``conv1`` (the stem after its ReLU), ``layer1``, ``layer2``, ``layer3``,
``avgpool`` ``[T, B, 64]`` and ``logits`` ``[T, B, num_classes]``; the plain network is its ``.net``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from neurofit.models.hooks import HookedModel, wrap_static

CIFAR_MEAN = (0.485, 0.456, 0.406)
CIFAR_STD = (0.229, 0.224, 0.225)
LAYERS = {"conv1": "relu", "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "avgpool": "avgpool",
          "logits": "linear"}


class ShortcutA(nn.Module):
    """Option-A shortcut: stride-2 subsampling and ``pad`` zero channels on each side, no parameters."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad), "constant", 0.0)


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual connection: ``relu(bn2(conv2(relu(bn1(conv1 x)))) + x)``."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut: nn.Module = ShortcutA(planes // 4)
        else:
            self.shortcut = nn.Sequential()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNetCifar(nn.Module):
    """The CIFAR ResNet of depth ``6 n + 2`` (ResNet-20: ``blocks_per_stage=3``).

    Example
    -------
    >>> net = ResNetCifar()
    >>> net(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    >>> sum(p.numel() for p in net.parameters())
    269722
    """

    def __init__(self, blocks_per_stage: int = 3, num_classes: int = 10, width: int = 16) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        in_planes = width
        stages = []
        for planes, stride in ((width, 1), (2 * width, 2), (4 * width, 2)):
            blocks = []
            for s in [stride] + [1] * (blocks_per_stage - 1):
                blocks.append(BasicBlock(in_planes, planes, s))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        # the reference pools with a kernel as wide as the (square) map, i.e. a global average
        self.avgpool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.linear = nn.Linear(4 * width, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(self.avgpool(out))


def resnet20_cifar(num_classes: int = 10, width: int = 16, input_size: int = 32) -> HookedModel:
    """ResNet-20 (CIFAR-10), feedforward (``T = 1``), wrapped for neurofit; weights in ``.net``.

    Load the published weights with ``load_model("resnet20_cifar", ".../resnet20-12fca82f.th")``.

    Example
    -------
    >>> model = resnet20_cifar()
    >>> out = model.forward_sequence(torch.zeros(1, 2, 3, 32, 32))
    >>> {k: tuple(v.shape) for k, v in out.items()}["avgpool"]
    (1, 2, 64)
    """
    net = ResNetCifar(blocks_per_stage=3, num_classes=num_classes, width=width)
    model = wrap_static(net, LAYERS, input_size=input_size, mean=CIFAR_MEAN, std=CIFAR_STD,
                        config={"num_classes": num_classes, "width": width, "input_size": input_size})
    model.arch = "resnet20_cifar"
    return model
