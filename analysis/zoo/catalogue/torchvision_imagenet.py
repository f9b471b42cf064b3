"""torchvision's ImageNet networks (GoogLeNet, VGG16, ResNet-50, AlexNet) and the layer selectors of
their architectures, which CSAIL's Places365 files (csail_places365) share."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn
from torchvision.models import get_weight as torchvision_weights

from analysis.zoo.specs import IMAGENET_MEAN_STD, ImageNet, ModelSpec, WeightsSource


def googlenet_layers(model: nn.Module) -> list[tuple[str, str]]:
    names = ["conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a", "inception4b",
             "inception4c", "inception4d", "inception4e", "inception5a", "inception5b"]
    return [(n, n) for n in names]


def vgg_style_layers(model: nn.Module) -> list[tuple[str, str]]:
    """ReLU outputs of model.features, named convS_K as in the papers."""
    out, stage, index = [], 1, 0
    for name, module in model.features.named_children():
        if isinstance(module, nn.MaxPool2d):
            stage, index = stage + 1, 0
        elif isinstance(module, nn.ReLU):
            index += 1
            out.append((f"features.{name}", f"conv{stage}_{index}"))
    if len({alias.split("_")[0] for _, alias in out}) == len(out):  # one conv per stage: AlexNet
        out = [(name, f"conv{i + 1}") for i, (name, _) in enumerate(out)]
    return out


def resnet_layers(model: nn.Module) -> list[tuple[str, str]]:
    out = [("relu", "stem")]
    for stage in range(1, 5):
        for block, _ in enumerate(getattr(model, f"layer{stage}")):
            out.append((f"layer{stage}.{block}", f"layer{stage}.{block}"))
    return out


def densenet_layers(model: nn.Module) -> list[tuple[str, str]]:
    names = [n for n, _ in model.features.named_children() if n.startswith(("denseblock", "transition"))]
    return [(f"features.{n}", n) for n in names] + [("features.norm5", "norm5")]


def torchvision_builder(arch: str, **kwargs: object) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm, arch)(weights=None, **kwargs)

    return build


def _imagenet(name: str, title: str, weights: str, layers: Callable[[nn.Module], list[tuple[str, str]]],
              **kwargs: object) -> ModelSpec:
    # torchvision's weights API names the file and its address; its cache is searched too.
    url = torchvision_weights(weights).url
    return ModelSpec(
        name=name, title=title, architecture=title, training_data=ImageNet, labels=ImageNet,
        convention=IMAGENET_MEAN_STD,
        weights=WeightsSource(format="torchvision", filename=url.rsplit("/", 1)[-1], url=url),
        build=torchvision_builder(name, **kwargs), layer_names=layers,
        drop_keys=("aux1.", "aux2.") if name == "googlenet" else (),
    )


SPECS = (
    _imagenet("googlenet", "GoogLeNet (Inception v1)", "GoogLeNet_Weights.IMAGENET1K_V1", googlenet_layers,
              aux_logits=False, transform_input=True, init_weights=False),
    _imagenet("vgg16", "VGG16", "VGG16_Weights.IMAGENET1K_V1", vgg_style_layers),
    _imagenet("resnet50", "ResNet-50", "ResNet50_Weights.IMAGENET1K_V1", resnet_layers),
    _imagenet("alexnet", "AlexNet", "AlexNet_Weights.IMAGENET1K_V1", vgg_style_layers),
)
