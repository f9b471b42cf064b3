"""The models the lab knows, one module per family, each spec beside its architecture and layer selector.

Registered here in the order the Models page and `python -m analysis models` list them.
"""

from __future__ import annotations

from analysis.zoo.catalogue import caffe_googlenet, csail_places365, efficientnet, lucent, torchvision_imagenet
from analysis.zoo.specs import register

DEFAULT_MODEL = "efficientnet_lite0"
"""Embedded, offline and real: the default everywhere."""

for _spec in (*efficientnet.SPECS, *torchvision_imagenet.SPECS, *csail_places365.SPECS, *caffe_googlenet.SPECS,
              *lucent.SPECS):
    register(_spec)
