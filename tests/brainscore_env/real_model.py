"""A real Brain-Score model that builds offline: Brain-Score's ``PytorchWrapper`` and ``ModelCommitment``
around a small seeded torch network, with its preprocessing in numpy and Pillow (no torchvision, no download).

``network()`` and ``preprocess()`` are plain torch and Pillow, so neurofit's environment imports this file too
and computes what the model must answer; ``build()`` needs Brain-Score and runs only in its environment.
"""

from collections import OrderedDict

import numpy as np
import torch
from PIL import Image

IDENTIFIER = "neurofit-test-cnn"
REGION_LAYERS = {"V4": "relu1", "IT": "relu2"}
IMAGE_SIZE = 24


def network():
    torch.manual_seed(7)
    return torch.nn.Sequential(OrderedDict([
        ("conv1", torch.nn.Conv2d(3, 6, 3, stride=2, padding=1)), ("relu1", torch.nn.ReLU()),
        ("conv2", torch.nn.Conv2d(6, 8, 3, stride=2, padding=1)), ("relu2", torch.nn.ReLU()),
    ])).eval()


def preprocess(paths):
    images = []
    for path in paths:
        with Image.open(path) as image:
            image = image.convert("RGB").resize((IMAGE_SIZE, IMAGE_SIZE), Image.BILINEAR)
            images.append(np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 255.0)
    return (np.stack(images) - 0.5) / 0.25


def layer_features(paths, layer):
    """What the network gives at ``layer`` (flattened, channels first), computed without Brain-Score."""
    net = network()
    x = torch.from_numpy(preprocess(paths))
    with torch.no_grad():
        for name, module in net.named_children():
            x = module(x)
            if name == layer:
                return x.reshape(len(paths), -1).numpy()
    raise KeyError(layer)


def build():
    from brainscore_vision.model_helpers.activations.pytorch import PytorchWrapper
    from brainscore_vision.model_helpers.brain_transformation import ModelCommitment

    wrapper = PytorchWrapper(identifier=IDENTIFIER, model=network(), preprocessing=preprocess)
    return ModelCommitment(identifier=IDENTIFIER, activations_model=wrapper, layers=list(REGION_LAYERS.values()),
                           region_layer_map=dict(REGION_LAYERS), visual_degrees=8)
