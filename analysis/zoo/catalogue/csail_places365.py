"""CSAIL's Places365 networks (CSAILVision/places365): ResNet-18/50, AlexNet and DenseNet-161 as
torchvision builds them with 365 classes, and CSAIL's own ``wideresnet18``.

``wideresnet18`` is a ResNet-18 whose last feature map is 14x14 at 224 px.
Source: CSAILVision/places365, ``wideresnet.py``, built by ``run_placesCNN_unified.py`` as
``wideresnet.resnet18(num_classes=365)`` and filled from ``wideresnet18_places365.pth.tar``
after ``k.replace('module.', '')``. Its module names are torchvision's (conv1, bn1, layer1.0.conv1,
..., layer2.0.downsample.0, ..., fc), so torchvision's ResNet is reused and only the two
parameter-free differences are applied:

- no max-pool after the stem (commented out upstream): layer1 runs at 112x112 and layer4 at
  14x14 instead of 7x7, which is what makes its class activation maps finer;
- the head averages that 14x14 map. Upstream uses ``AvgPool2d(14)``; the adaptive pool here
  gives the same numbers at 224 px and still yields one vector at any other size, which octave
  dreaming needs.

Weight init upstream is normal(0, sqrt(2 / (k*k*out_channels))) for convs and 1/0 for
batch norm, i.e. torchvision's kaiming_normal(fan_out) init, so the untrained twin matches too.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from analysis.zoo.catalogue.torchvision_imagenet import (
    densenet_layers,
    resnet_layers,
    torchvision_builder,
    vgg_style_layers,
)
from analysis.zoo.specs import IMAGENET_MEAN_STD, ModelSpec, Places365, WeightsSource


def wideresnet18(num_classes: int = 365) -> nn.Module:
    """ResNet-18 without the stem max-pool, keyed exactly like CSAIL's checkpoint minus ``module.``."""
    model = ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
    model.maxpool = nn.Identity()
    return model


def _csail(arch: str) -> Callable[[], nn.Module]:
    """CSAIL's own wideresnet18, or torchvision's architecture with 365 classes."""
    if arch == "wideresnet18":
        return lambda: wideresnet18(num_classes=365)
    return torchvision_builder(arch, num_classes=365)


_CSAIL = "http://places2.csail.mit.edu/models_places365/"


def _places365(arch: str, title: str, layers: Callable[[nn.Module], list[tuple[str, str]]]) -> ModelSpec:
    file = f"{arch}_places365.pth.tar"
    return ModelSpec(
        name=f"{arch}_places365", title=f"{title} (Places365)", architecture=title,
        training_data=Places365, labels=Places365, convention=IMAGENET_MEAN_STD,
        weights=WeightsSource(format="csail", filename=file, url=_CSAIL + file),
        build=_csail(arch), layer_names=layers,
    )


SPECS = (
    _places365("resnet18", "ResNet-18", resnet_layers),
    _places365("resnet50", "ResNet-50", resnet_layers),
    _places365("alexnet", "AlexNet", vgg_style_layers),
    _places365("densenet161", "DenseNet-161", densenet_layers),
    _places365("wideresnet18", "Wide ResNet-18", resnet_layers),
)
