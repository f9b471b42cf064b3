"""The three public PyTorch layouts of the Caffe GoogLeNets, renamed into one architecture.

The BVLC (ImageNet), Places205 and Places365 GoogLeNets were trained in Caffe; three projects
converted them to PyTorch, each with its own module names, head and preprocessing. A file is
recognised by its keys (never by its name: users rename files) and renamed to the flat Caffe
names of ``caffe_googlenet.CaffeGoogLeNet``:

- ``pytorch-places``: ProGamerGov/pytorch-places ``googlenet_places{205,365}.pth`` (MMdnn
  conversions, loaded by its ``googlenet_places*.py``): flat Caffe names already
  (``inception_3a_1x1``), the two auxiliary heads, no loss3 classifier. Mean: neural-dream's.
- ``pytorch-caffe-models``: crowsonkb/pytorch-caffe-models ``bvlc_googlenet-*.pth``,
  ``googlenet_places205-*.pth``, ``googlenet_places365-*.pth`` (its ``googlenet.py``): a stem
  named ``conv1``, ``conv2_reduce``, ``conv2``, inception blocks with children
  ``inception_3a.conv_1x1`` ... ``.pool_proj``, no auxiliary heads, the main classifier
  ``loss3_classifier``. Its ``models.py`` subtracts the RGB means (123, 117, 104) for BVLC,
  (116.047, 113.753, 105.417) for Places205 and (116.676, 112.514, 104.051) for Places365
  from 0-255 pixels, then flips to BGR.
- ``captum``: captum.optim's ``inceptionv1_places365.pth`` (its ``InceptionV1Places365``, a port
  of Lucid's Places365 InceptionV1 as on Microscope): ``conv1`` (7x7/2), ``conv2`` (the 1x1
  reduce), ``conv3`` (3x3), blocks ``mixed3a.conv_1x1`` ..., auxiliary heads ``aux1``/``aux2``
  (conv, fc1, fc2; left out here: the logits come from ``fc``, the loss3 classifier), and
  TensorFlow "same" convolutions, which differ from Caffe's only at the strided stem. Its
  transform subtracts RGB (116.7894, 112.6004, 104.0437) from 0-255 pixels, then flips to BGR.

Every layout wants BGR pixels on the 0-255 scale minus a per-channel mean and no std; the means
are stored here in B, G, R order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from analysis.errors import CheckpointError

BLOCKS = ("3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b")
BRANCHES = ("1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj")
_CHILD = {"1x1": "conv_1x1", "3x3_reduce": "conv_3x3_reduce", "3x3": "conv_3x3",
          "5x5_reduce": "conv_5x5_reduce", "5x5": "conv_5x5", "pool_proj": "pool_proj"}
"""The branch children of crowsonkb's and captum's inception modules, by Caffe branch name."""

Mean = tuple[float, float, float]


def _nested_blocks(prefix: str) -> dict[str, str]:
    """Module names of inception blocks with child convolutions (``<prefix>3a.conv_1x1``) -> flat Caffe names."""
    return {f"{prefix}{b}.{_CHILD[s]}": f"inception_{b}_{s}" for b in BLOCKS for s in BRANCHES}


@dataclass(frozen=True)
class GoogLeNetLayout:
    """One project's key layout: how to recognise it, rename it, and feed it pixels."""

    name: str  # recorded in each result's metadata
    project: str
    marker: str  # a key that only this layout's files have
    head: str  # "loss2" | "loss3": see caffe_googlenet.CaffeGoogLeNet
    stem: str  # "caffe" | "same"
    bgr_mean: Mapping[int, Mean]  # by number of classes: 1000 (BVLC ImageNet), 205, 365
    modules: Mapping[str, str] = field(default_factory=dict)  # file module name -> flat name
    dropped: tuple[str, ...] = ()  # module prefixes the file has and the architecture leaves out

    def rename(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The file's tensors under the flat names. A key the layout does not know keeps its name,
        so the strict load names it as unexpected."""
        renamed: dict[str, torch.Tensor] = {}
        for key, value in state.items():
            module, dot, parameter = key.rpartition(".")
            if module.startswith(self.dropped):
                continue
            renamed[self.modules.get(module, module) + dot + parameter] = value
        return renamed


PYTORCH_PLACES = GoogLeNetLayout(
    name="pytorch-places", project="ProGamerGov/pytorch-places", marker="inception_3a_1x1.weight",
    head="loss2", stem="caffe",
    bgr_mean={205: (105.417, 113.753, 116.047), 365: (104.051, 112.514, 116.676)},
)
PYTORCH_CAFFE_MODELS = GoogLeNetLayout(
    name="pytorch-caffe-models", project="crowsonkb/pytorch-caffe-models", marker="inception_3a.conv_1x1.weight",
    head="loss3", stem="caffe",
    bgr_mean={1000: (104.0, 117.0, 123.0), 205: (105.417, 113.753, 116.047), 365: (104.051, 112.514, 116.676)},
    modules={"conv1": "conv1_7x7_s2", "conv2_reduce": "conv2_3x3_reduce", "conv2": "conv2_3x3",
             **_nested_blocks("inception_")},
)
CAPTUM = GoogLeNetLayout(
    name="captum", project="captum.optim (InceptionV1Places365, Lucid's port)", marker="mixed3a.conv_1x1.weight",
    head="loss3", stem="same",
    bgr_mean={365: (104.0437, 112.6004, 116.7894)},
    modules={"conv1": "conv1_7x7_s2", "conv2": "conv2_3x3_reduce", "conv3": "conv2_3x3", "fc": "loss3_classifier",
             **_nested_blocks("mixed")},
    dropped=("aux1.", "aux2."),
)
LAYOUTS = (PYTORCH_PLACES, PYTORCH_CAFFE_MODELS, CAPTUM)


def identify_layout(state: Mapping[str, torch.Tensor], source: str) -> GoogLeNetLayout:
    """The layout whose marker key the file has; a file with none (or several) is refused, naming the known ones."""
    found = [layout for layout in LAYOUTS if layout.marker in state]
    if len(found) != 1:
        known = "; ".join(f"{layout.project} ('{layout.marker}')" for layout in LAYOUTS)
        what = "keys of several layouts at once" if found else "none of their keys"
        raise CheckpointError(f"{source} is no Caffe GoogLeNet checkpoint in a known layout ({what}). "
                              f"Known layouts and a key each has: {known}.")
    return found[0]


def layout_mean(layout: GoogLeNetLayout, num_classes: int, source: str) -> Mean:
    """The mean this layout's file for num_classes was trained with; a combination no project published is refused."""
    if num_classes not in layout.bgr_mean:
        published = ", ".join(str(n) for n in layout.bgr_mean)
        raise CheckpointError(f"{source} is in {layout.project}'s layout, which publishes GoogLeNets with "
                              f"{published} classes, not {num_classes}: choose the model of that file's dataset.")
    return layout.bgr_mean[num_classes]
