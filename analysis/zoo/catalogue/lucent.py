"""lucent's InceptionV1 (TensorFlow's inception5h, as in lucid and the DeepDream notebooks)."""

from __future__ import annotations

import torch.nn as nn

from analysis.zoo.specs import ImageNet, InputConvention, ModelSpec, WeightsSource

LUCENT_INCEPTION = InputConvention(scale=255.0, mean=(117.0, 117.0, 117.0))


def lucent_layers(model: nn.Module) -> list[tuple[str, str]]:
    names = ["conv2d0", "conv2d1", "conv2d2", "mixed3a", "mixed3b", "mixed4a", "mixed4b",
             "mixed4c", "mixed4d", "mixed4e", "mixed5a", "mixed5b"]
    return [(n, n) for n in names]


def _lucent_inception() -> nn.Module:
    from lucent.modelzoo.inceptionv1.InceptionV1 import InceptionV1

    # Plain ReLU gradients: a dream follows the network as trained (lucid redirects them only
    # to escape dead units when starting from noise).
    return InceptionV1(pretrained=False, redirected_ReLU=False)


SPECS = (
    ModelSpec(
        name="inceptionv1_lucent", title="InceptionV1 (lucent, inception5h)",
        architecture="GoogLeNet (TF inception5h)", training_data=ImageNet, labels=None, convention=LUCENT_INCEPTION,
        weights=WeightsSource(format="lucent", filename="inception5h.pth",
                              url="https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth"),
        build=_lucent_inception, layer_names=lucent_layers,
    ),
)
