"""GoogLeNet trained in Caffe on Places205 / Places365, keyed like ProGamerGov's converted files.

Files: ``googlenet_places205.pth`` and ``googlenet_places365.pth`` from ProGamerGov/pytorch-places
(MMdnn conversions of the MIT Places205 GoogLeNet and of CSAIL's googlenet_places365.caffemodel).
ProGamerGov/neural-dream loads them into its ``GoogLeNetPlaces(205 | 365)`` class with a strict
``load_state_dict``, and pytorch-places' own ``googlenet_places205.py`` / ``googlenet_places365.py``
do the same, so the file holds exactly that class's parameters.

Key layout: a bare state dict, no wrapper, no prefix; one entry per Caffe layer with "/" turned
into "_", each with ``.weight`` and ``.bias``:

- ``conv1_7x7_s2``, ``conv2_3x3_reduce``, ``conv2_3x3``;
- ``inception_{3a,3b,4a,4b,4c,4d,4e,5a,5b}_{1x1,3x3_reduce,3x3,5x5_reduce,5x5,pool_proj}``;
- the auxiliary heads ``loss1_conv``, ``loss1_fc_1``, ``loss1_classifier_1`` (on inception_4a)
  and ``loss2_conv``, ``loss2_fc_1``, ``loss2_classifier_1`` (on inception_4d).

There is no ``loss3_classifier``: the main classifier was not carried over, so the logits here
come from the loss2 head, the deepest classifier the files hold.

Named block outputs with flat keys: every convolution is registered on the top-level module under
its flat Caffe name, so ``state_dict()`` equals the file's keys. Each inception block is a
parameter-free ``_Inception`` module (``inception_4c`` ...) that only *references* its six
convolutions (in a plain tuple, which nn.Module neither registers nor saves) and returns the
concatenation, i.e. the Caffe blob ``inception_4c/output``; a forward hook on it captures that
blob, and hooks on the flat convolutions (``inception_4d_3x3_reduce`` ...) still fire because
the block calls those very modules. ``.to()``, ``deepcopy`` and pickling keep the references
right because they act on the same conv objects. The auxiliary heads are wired the same way.

Input: BGR, 0-255, minus the training set's per-channel mean (``CAFFE_BGR_MEAN``, BGR order, the
values neural-dream's ``dream_auto.auto_mean`` uses for these two files). Pools use Caffe's
ceil rounding (the converter's -inf right/bottom pad before a floor pool is the same thing for
these stride-2 pools), LRN is Caffe's across-channel LRN (local_size 5, alpha 1e-4, beta 0.75),
dropout is left out (inference only).

The same trunk takes the other two public PyTorch layouts of these networks (and of BVLC's
ImageNet GoogLeNet), renamed to these flat names by ``googlenet_layouts``: ``head="loss3"``
replaces the two auxiliary heads by Caffe's main classifier (global average pool, then
``loss3_classifier``), which crowsonkb's and captum's files carry; ``stem="same"`` pads the
7x7/2 stem TensorFlow's way (captum's Lucid port: 2 pixels before and 3 after an even side)
instead of Caffe's 3 on each side. Every other convolution and pool is the same in all three.

The zoo's three Caffe GoogLeNets (BVLC ImageNet, Places205, Places365: their specs, layer
selector and layout adapter) are registered from the end of this file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from analysis.zoo.catalogue.googlenet_layouts import identify_layout, layout_mean
from analysis.zoo.specs import ImageNet, InputConvention, ModelSpec, Places205, Places365, WeightsSource, class_labels

CAFFE_BGR_MEAN: dict[int, tuple[float, float, float]] = {
    205: (105.417, 113.753, 116.047),
    365: (104.051, 112.514, 116.676),
}
"""ProGamerGov's files: per-channel mean (B, G, R) on the 0-255 scale, keyed by the number of classes."""

HEADS = ("loss2", "loss3")
STEMS = ("caffe", "same")

# name: (in, 1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj), as in the converted model.
_INCEPTION_WIDTHS: dict[str, tuple[int, int, int, int, int, int, int]] = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}

CAFFE_LAYERS: list[str] = ["conv1_relu_7x7", "conv2_relu_3x3"] + [f"inception_{b}" for b in _INCEPTION_WIDTHS]
"""Modules whose outputs are the Caffe blobs people dream at, in forward order."""

CAFFE_LAYER_ALIASES: dict[str, str] = {
    "conv1_relu_7x7": "conv1/7x7_s2",  # Caffe's ReLU is in place, so the blob holds the rectified map
    "conv2_relu_3x3": "conv2/3x3",
    **{f"inception_{b}": f"inception_{b}/output" for b in _INCEPTION_WIDTHS},
}


def _lrn() -> nn.LocalResponseNorm:
    """Caffe's pool1/norm1 and conv2/norm2 (PyTorch divides alpha by size, as Caffe does)."""
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)


class _Inception(nn.Module):
    """One inception block; its output is the Caffe blob ``inception_XX/output``.

    Holds references to convolutions registered on the parent, so it adds no state dict keys.
    """

    def __init__(self, convs: tuple[nn.Conv2d, nn.Conv2d, nn.Conv2d, nn.Conv2d, nn.Conv2d, nn.Conv2d]):
        super().__init__()
        self._convs = convs  # 1x1, 3x3_reduce, 3x3, 5x5_reduce, 5x5, pool_proj
        self.pool = nn.MaxPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b1, r3, b3, r5, b5, proj = self._convs
        return torch.cat(
            [F.relu(b1(x)), F.relu(b3(F.relu(r3(x)))), F.relu(b5(F.relu(r5(x)))), F.relu(proj(self.pool(x)))], 1
        )


class _AuxHead(nn.Module):
    """Caffe's lossN head: 5x5/3 average pool, 1x1 conv, fc 1024, classifier; references only."""

    def __init__(self, conv: nn.Conv2d, fc: nn.Linear, classifier: nn.Linear):
        super().__init__()
        self._layers = (conv, fc, classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv, fc, classifier = self._layers
        x = F.avg_pool2d(x, 5, stride=3, ceil_mode=True, count_include_pad=False)
        # 14x14 at 224 px already pools to 4x4 (a no-op here); other sizes still reach fc's 128*4*4 inputs.
        x = F.relu(conv(F.adaptive_avg_pool2d(x, 4)))
        return classifier(F.relu(fc(torch.flatten(x, 1))))


class _SamePad(nn.Module):
    """TensorFlow's "SAME" zero padding for one strided convolution, worked out per input size:
    the output has ceil(size / stride) positions and the odd pixel of padding goes after."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        def split(size: int) -> tuple[int, int]:
            total = max((-(-size // self.stride) - 1) * self.stride + self.kernel - size, 0)
            return total // 2, total - total // 2

        top, bottom = split(x.shape[-2])
        left, right = split(x.shape[-1])
        return F.pad(x, (left, right, top, bottom))


class CaffeGoogLeNet(nn.Module):
    """The Caffe GoogLeNet trunk to inception_5b, with logits from the loss2 head (ProGamerGov's
    files) or from the loss3 classifier (crowsonkb's and captum's).

    With the loss2 head, ``loss1`` (on an inception_4a output) is callable too; it is not part of ``forward``.
    A plain convolution after a separate pad keeps the "same" stem a plain, zero-padded Conv2d, so
    the CPU's polyphase stem gradient (analysis/polyphase.py) serves every layout.
    """

    def __init__(self, num_classes: int, head: str = "loss2", stem: str = "caffe"):
        super().__init__()
        if head not in HEADS or stem not in STEMS:
            raise ValueError(f"head is one of {HEADS} and stem one of {STEMS}, not {head!r} and {stem!r}.")
        self.head = head
        self.conv1_pad = _SamePad(7, 2) if stem == "same" else nn.Identity()
        self.conv1_7x7_s2 = nn.Conv2d(3, 64, 7, stride=2, padding=3 if stem == "caffe" else 0)
        self.conv1_relu_7x7 = nn.ReLU()
        self.pool1_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.pool1_norm1 = _lrn()
        self.conv2_3x3_reduce = nn.Conv2d(64, 64, 1)
        self.conv2_relu_3x3_reduce = nn.ReLU()
        self.conv2_3x3 = nn.Conv2d(64, 192, 3, padding=1)
        self.conv2_relu_3x3 = nn.ReLU()
        self.conv2_norm2 = _lrn()
        self.pool2_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception_3a = self._inception("3a")
        self.inception_3b = self._inception("3b")
        self.pool3_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception_4a = self._inception("4a")
        self.inception_4b = self._inception("4b")
        self.inception_4c = self._inception("4c")
        self.inception_4d = self._inception("4d")
        self.inception_4e = self._inception("4e")
        self.pool4_3x3_s2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception_5a = self._inception("5a")
        self.inception_5b = self._inception("5b")
        if head == "loss2":
            self.loss1 = self._aux_head("loss1", 512, num_classes)
            self.loss2 = self._aux_head("loss2", 528, num_classes)
        else:
            self.pool5 = nn.AdaptiveAvgPool2d(1)
            self.loss3_classifier = nn.Linear(1024, num_classes)

    def _inception(self, block: str) -> _Inception:
        """Register the block's convs under their flat Caffe names and return the block."""
        c_in, n1, r3, n3, r5, n5, pool = _INCEPTION_WIDTHS[block]
        specs = (
            ("1x1", c_in, n1, 1),
            ("3x3_reduce", c_in, r3, 1),
            ("3x3", r3, n3, 3),
            ("5x5_reduce", c_in, r5, 1),
            ("5x5", r5, n5, 5),
            ("pool_proj", c_in, pool, 1),
        )
        convs = []
        for suffix, c, n, k in specs:
            conv = nn.Conv2d(c, n, k, padding=k // 2)
            self.add_module(f"inception_{block}_{suffix}", conv)
            convs.append(conv)
        return _Inception((convs[0], convs[1], convs[2], convs[3], convs[4], convs[5]))

    def _aux_head(self, name: str, c_in: int, num_classes: int) -> _AuxHead:
        """Register lossN_conv, lossN_fc_1 and lossN_classifier_1 flat and return the head."""
        conv, fc, classifier = nn.Conv2d(c_in, 128, 1), nn.Linear(2048, 1024), nn.Linear(1024, num_classes)
        self.add_module(f"{name}_conv", conv)
        self.add_module(f"{name}_fc_1", fc)
        self.add_module(f"{name}_classifier_1", classifier)
        return _AuxHead(conv, fc, classifier)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool1_norm1(self.pool1_3x3_s2(self.conv1_relu_7x7(self.conv1_7x7_s2(self.conv1_pad(x)))))
        x = self.conv2_relu_3x3_reduce(self.conv2_3x3_reduce(x))
        x = self.pool2_3x3_s2(self.conv2_norm2(self.conv2_relu_3x3(self.conv2_3x3(x))))
        x = self.pool3_3x3_s2(self.inception_3b(self.inception_3a(x)))
        x = self.inception_4c(self.inception_4b(self.inception_4a(x)))
        out_4d = self.inception_4d(x)
        # The trunk goes on to inception_5b although loss2's logits come from the 4d head, so that a
        # hook on any of CAFFE_LAYERS fires in one forward; the head runs last, after every hook.
        out_5b = self.inception_5b(self.inception_5a(self.pool4_3x3_s2(self.inception_4e(out_4d))))
        if self.head == "loss2":
            return self.loss2(out_4d)
        return self.loss3_classifier(torch.flatten(self.pool5(out_5b), 1))


CLASS_COUNTS = (1000, 205, 365)  # BVLC (ImageNet), Places205, Places365


def caffe_googlenet(num_classes: int, head: str = "loss2", stem: str = "caffe") -> nn.Module:
    """GoogLeNet for the Caffe-trained BVLC (1000 classes) and Places (205, 365) weights, in the
    head and stem of the file's layout (see googlenet_layouts)."""
    if num_classes not in CLASS_COUNTS:
        raise ValueError(f"The Caffe GoogLeNets have {', '.join(map(str, CLASS_COUNTS))} classes, not {num_classes}.")
    return CaffeGoogLeNet(num_classes, head, stem)


# ---------------------------------------------------------------- in the zoo


def caffe_googlenet_layers(model: nn.Module) -> list[tuple[str, str]]:
    return [(n, CAFFE_LAYER_ALIASES.get(n, n)) for n in CAFFE_LAYERS]


def _builder(num_classes: int, head: str = "loss2", stem: str = "caffe") -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        return caffe_googlenet(num_classes, head, stem)

    return build


def _layout(spec: ModelSpec, state: dict[str, torch.Tensor], source: str
            ) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """The Caffe GoogLeNet spec for the file's layout (its head, stem padding and mean), found from its keys."""
    layout = identify_layout(state, source)
    classes = len(class_labels(spec.labels) or ())
    mean = layout_mean(layout, classes, source)
    return replace(spec, layout=layout.name, convention=InputConvention(channels="BGR", scale=255.0, mean=mean),
                   build=_builder(classes, layout.head, layout.stem)), layout.rename(state)


def _caffe_convention(classes: int) -> InputConvention:
    """Caffe GoogLeNet: BGR, 0-255, the training set's per-channel mean subtracted, no std."""
    return InputConvention(channels="BGR", scale=255.0, mean=CAFFE_BGR_MEAN[classes])


# crowsonkb/pytorch-caffe-models' release: the loss3 classifier, and a sha256 prefix in each name
# (torch.hub's check_hash). The other layouts' files are found under their own names too.
_CAFFE_MODELS = "https://github.com/crowsonkb/pytorch-caffe-models/releases/download/models-2/"


def _places(data: str, classes: int, file: str) -> ModelSpec:
    stem = f"googlenet_{data.lower()}"
    return ModelSpec(
        name=stem, title=f"GoogLeNet (Caffe, {data})", architecture="GoogLeNet (Caffe)",
        training_data=data, labels=data, convention=_caffe_convention(classes),
        weights=WeightsSource(format="caffe", filename=file, url=_CAFFE_MODELS + file,
                              other_files=(f"{stem}.pth", f"{stem}-*.pth")
                              + (("inceptionv1_places365.pth",) if classes == 365 else ())),
        build=_builder(classes), layer_names=caffe_googlenet_layers, layout="pytorch-places",
        adapt=_layout,
    )


SPECS = (
    _places(Places205, 205, "googlenet_places205-b57a3fc7a34557585.pth"),
    _places(Places365, 365, "googlenet_places365-da1e6512eb7d2613.pth"),
    ModelSpec(
        name="bvlc_googlenet", title="GoogLeNet (Caffe BVLC, ImageNet)", architecture="GoogLeNet (Caffe)",
        training_data=ImageNet, labels=ImageNet,
        convention=InputConvention(channels="BGR", scale=255.0, mean=(104.0, 117.0, 123.0)),
        weights=WeightsSource(format="caffe", filename="bvlc_googlenet-1f25f8c8778a8802.pth",
                              url=_CAFFE_MODELS + "bvlc_googlenet-1f25f8c8778a8802.pth",
                              other_files=("bvlc_googlenet-*.pth",)),
        build=_builder(1000, head="loss3"), layer_names=caffe_googlenet_layers, layout="pytorch-caffe-models",
        adapt=_layout,
    ),
)
