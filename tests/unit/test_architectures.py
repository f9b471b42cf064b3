"""Published checkpoint layouts load strict into our architectures.

No real weights here: each test writes a synthetic file with the real file's layout (wrapper,
key prefixes, old key names, serialisation format), taken from a freshly initialised model, then
reads it back the way the library does: torch.load(weights_only=True), unwrap, fix keys, strict load.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from lucent.modelzoo.inceptionv1.InceptionV1 import InceptionV1
from torch import nn
from torchvision import models as tv

from analysis.architectures.caffe_googlenet import (
    CAFFE_BGR_MEAN,
    CAFFE_LAYER_ALIASES,
    CAFFE_LAYERS,
    caffe_googlenet,
)
from analysis.architectures.checkpoint_keys import (
    add_missing_bn_counters,
    fix_old_densenet_keys,
    strip_module,
    unwrap_checkpoint,
)
from analysis.architectures.csail_wideresnet import wideresnet18
from analysis.errors import CheckpointError

KeyMap = Callable[[str], str]


def _image() -> torch.Tensor:
    return torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def _file_state(model: nn.Module, rename: KeyMap) -> OrderedDict[str, torch.Tensor]:
    """The model's weights under the file's key names, without the buffers PyTorch 0.2 lacked."""
    return OrderedDict(
        (rename(k), v.clone()) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
    )


def _read(path: Path) -> dict[str, torch.Tensor]:
    """What the library does with a file: safe load, unwrap, every key fix."""
    state = unwrap_checkpoint(torch.load(path, map_location="cpu", weights_only=True))
    return add_missing_bn_counters(fix_old_densenet_keys(strip_module(state)))


def _assert_same_weights(source: nn.Module, target: nn.Module) -> None:
    got = target.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(got[key], value), key


# ---------------------------------------------------------------- CSAIL Places365 .pth.tar


def _whole_model_data_parallel(key: str) -> str:
    return "module." + key  # train_placesCNN.py: model = DataParallel(model)


def _features_data_parallel(key: str) -> str:
    return re.sub(r"^features\.", "features.module.", key)  # alexnet/vgg: model.features = DataParallel(...)


def _old_densenet(key: str) -> str:
    """PyTorch 0.2 torchvision named _DenseLayer children 'norm.1', 'conv.1', 'norm.2', 'conv.2'."""
    return "module." + re.sub(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.", r"\1.\2.", key)


# arch: (architecture, file key naming, keys the real file has)
CSAIL: dict[str, tuple[Callable[[], nn.Module], KeyMap, tuple[str, ...]]] = {
    "resnet18": (
        lambda: tv.resnet18(num_classes=365),
        _whole_model_data_parallel,
        ("module.layer4.1.bn2.running_var",),
    ),
    "resnet50": (
        lambda: tv.resnet50(num_classes=365),
        _whole_model_data_parallel,
        ("module.layer1.0.downsample.0.weight",),
    ),
    "alexnet": (
        lambda: tv.alexnet(num_classes=365),
        _features_data_parallel,
        ("features.module.0.weight", "features.module.10.bias", "classifier.6.weight"),
    ),
    "densenet161": (
        lambda: tv.densenet161(num_classes=365),
        _old_densenet,
        (
            "module.features.denseblock1.denselayer1.norm.1.weight",
            "module.features.denseblock4.denselayer24.conv.2.weight",
            "module.features.transition1.conv.weight",
        ),
    ),
    "wideresnet18": (lambda: wideresnet18(num_classes=365), _whole_model_data_parallel, ("module.fc.weight",)),
}


@pytest.mark.parametrize("arch", list(CSAIL))
def test_csail_checkpoint_loads_strict(arch: str, tmp_path: Path) -> None:
    build, rename, real_keys = CSAIL[arch]
    torch.manual_seed(1)
    source = build().eval()
    state = _file_state(source, rename)
    assert set(real_keys) <= set(state)
    path = tmp_path / f"{arch}_places365.pth.tar"
    # PyTorch 0.2 wrote the pre-zip format; the wrapper is train_placesCNN.py's save_checkpoint.
    checkpoint = {"epoch": 90, "arch": arch, "state_dict": state, "best_prec1": 54.65}
    torch.save(checkpoint, path, _use_new_zipfile_serialization=False)

    torch.manual_seed(2)
    target = build().eval()
    target.load_state_dict(_read(path), strict=True)

    _assert_same_weights(source, target)
    with torch.no_grad():
        assert target(_image()).shape == (1, 365)


def test_wideresnet18_keeps_a_14x14_last_map() -> None:
    """No stem max-pool: the point of CSAIL's variant (finer class activation maps)."""
    model = wideresnet18().eval()
    shapes: list[torch.Size] = []
    handle = model.get_submodule("layer4").register_forward_hook(lambda _m, _i, out: shapes.append(out.shape))
    try:
        with torch.no_grad():
            model(_image())
    finally:
        handle.remove()
    assert shapes == [torch.Size([1, 512, 14, 14])]
    assert set(model.state_dict()) == set(tv.resnet18(num_classes=365).state_dict())


# ---------------------------------------------------------------- Caffe GoogLeNet (ProGamerGov)

_BLOCKS = ["3a", "3b", "4a", "4b", "4c", "4d", "4e", "5a", "5b"]
_BRANCHES = ["1x1", "3x3_reduce", "3x3", "5x5_reduce", "5x5", "pool_proj"]
# The module names of GoogLeNetPlaces in ProGamerGov/pytorch-places and neural-dream.
CAFFE_FILE_MODULES = (
    ["conv1_7x7_s2", "conv2_3x3_reduce", "conv2_3x3"]
    + [f"inception_{b}_{s}" for b in _BLOCKS for s in _BRANCHES]
    + [f"loss{n}_{s}" for n in (1, 2) for s in ("conv", "fc_1", "classifier_1")]
)


@pytest.mark.parametrize("num_classes", [205, 365])
def test_caffe_googlenet_loads_strict(num_classes: int, tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = caffe_googlenet(num_classes).eval()
    state = _file_state(source, lambda k: k)
    assert set(state) == {f"{m}.{p}" for m in CAFFE_FILE_MODULES for p in ("weight", "bias")}
    assert state["loss2_classifier_1.weight"].shape == (num_classes, 1024)
    path = tmp_path / f"googlenet_places{num_classes}.pth"
    torch.save(state, path)  # a bare state dict

    torch.manual_seed(2)
    target = caffe_googlenet(num_classes).eval()
    target.load_state_dict(_read(path), strict=True)

    _assert_same_weights(source, target)
    with torch.no_grad():
        assert target(_image() * 60).shape == (1, num_classes)
    assert len(CAFFE_BGR_MEAN[num_classes]) == 3


def test_caffe_layers_are_hookable_blobs_in_order() -> None:
    model = caffe_googlenet(365).eval()
    seen: list[tuple[str, int]] = []
    names = [*CAFFE_LAYERS, "inception_4d_3x3_reduce"]
    handles = [
        model.get_submodule(n).register_forward_hook(lambda _m, _i, out, n=n: seen.append((n, out.shape[1])))
        for n in names
    ]
    try:
        with torch.no_grad():
            model(_image())
    finally:
        for handle in handles:
            handle.remove()
    blobs = [s for s in seen if s[0] != "inception_4d_3x3_reduce"]
    assert [n for n, _ in blobs] == CAFFE_LAYERS
    assert [c for _, c in blobs] == [64, 192, 256, 480, 512, 512, 512, 528, 832, 832, 1024]
    assert ("inception_4d_3x3_reduce", 144) in seen
    assert CAFFE_LAYER_ALIASES["inception_4c"] == "inception_4c/output"
    assert set(CAFFE_LAYER_ALIASES) == set(CAFFE_LAYERS)
    assert not any(list(model.get_submodule(n).parameters()) for n in CAFFE_LAYERS)


# ---------------------------------------------------------------- lucent inception5h.pth


def test_lucent_inception5h_loads_strict(tmp_path: Path) -> None:
    torch.manual_seed(1)
    source = InceptionV1(pretrained=False).eval()
    path = tmp_path / "inception5h.pth"
    torch.save(source.state_dict(), path)  # bare state dict, read by torch.hub.load_state_dict_from_url

    torch.manual_seed(2)
    target = InceptionV1(pretrained=False).eval()
    target.load_state_dict(_read(path), strict=True)

    _assert_same_weights(source, target)
    with torch.no_grad():
        probs = target(_image() * 255 - 117)
    assert probs.shape == (1, 1008)
    assert torch.allclose(probs.sum(), torch.tensor(1.0), atol=1e-4)  # lucent's forward ends in softmax2


# ---------------------------------------------------------------- key functions


def test_strip_module_drops_the_segment_anywhere() -> None:
    t = torch.zeros(1)
    state = {"module.conv1.weight": t, "features.module.0.weight": t, "layer.submodule.weight": t}
    assert list(strip_module(state)) == ["conv1.weight", "features.0.weight", "layer.submodule.weight"]


def test_fix_old_densenet_keys_renames_only_dense_layers() -> None:
    t = torch.zeros(1)
    state = {
        "features.denseblock1.denselayer1.norm.1.running_mean": t,
        "features.denseblock3.denselayer36.conv.2.weight": t,
        "features.transition1.norm.weight": t,
        "features.norm5.bias": t,
    }
    assert list(fix_old_densenet_keys(state)) == [
        "features.denseblock1.denselayer1.norm1.running_mean",
        "features.denseblock3.denselayer36.conv2.weight",
        "features.transition1.norm.weight",
        "features.norm5.bias",
    ]


def test_add_missing_bn_counters_only_where_missing() -> None:
    kept = torch.tensor(7)
    state = {"bn1.running_var": torch.ones(2), "bn2.running_var": torch.ones(2), "bn2.num_batches_tracked": kept}
    filled = add_missing_bn_counters(state)
    assert filled["bn1.num_batches_tracked"].item() == 0
    assert filled["bn2.num_batches_tracked"] is kept


def test_unwrap_checkpoint_refuses_what_is_no_state_dict() -> None:
    bare = {"w": torch.zeros(1)}
    assert unwrap_checkpoint(bare) == bare
    for bad in ({"epoch": 3, "arch": "resnet18"}, {}, [torch.zeros(1)], {"state_dict": {"w": 1.0}}):
        with pytest.raises(CheckpointError):
            unwrap_checkpoint(bad)
