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

from analysis.errors import CheckpointError
from analysis.zoo.catalogue.caffe_googlenet import (
    CAFFE_BGR_MEAN,
    CAFFE_LAYER_ALIASES,
    CAFFE_LAYERS,
    caffe_googlenet,
)
from analysis.zoo.catalogue.csail_places365 import wideresnet18
from analysis.zoo.catalogue.googlenet_layouts import CAPTUM, PYTORCH_CAFFE_MODELS, PYTORCH_PLACES, identify_layout
from analysis.zoo.weights.checkpoint_keys import (
    add_missing_bn_counters,
    fix_old_densenet_keys,
    strip_module,
    unwrap_checkpoint,
)

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


# ---------------------------------------------------------------- the other GoogLeNet layouts

# The inception widths as both upstream constructors are called: Inception(in, 1x1, 3x3 reduce,
# 3x3, 5x5 reduce, 5x5, pool proj) in crowsonkb's googlenet.py and InceptionModule(...) in captum's.
UPSTREAM_WIDTHS = {
    "3a": (192, 64, 96, 128, 16, 32, 32), "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64), "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64), "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128), "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}


def _conv(shapes: dict, name: str, c_out: int, c_in: int, k: int) -> None:
    shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (c_out, c_in, k, k), (c_out,)


def _linear(shapes: dict, name: str, c_out: int, c_in: int) -> None:
    shapes[f"{name}.weight"], shapes[f"{name}.bias"] = (c_out, c_in), (c_out,)


def _upstream_blocks(shapes: dict, prefix: str) -> None:
    for block, (c_in, n1, r3, n3, r5, n5, proj) in UPSTREAM_WIDTHS.items():
        for child, c_out, c, k in (("conv_1x1", n1, c_in, 1), ("conv_3x3_reduce", r3, c_in, 1),
                                   ("conv_3x3", n3, r3, 3), ("conv_5x5_reduce", r5, c_in, 1),
                                   ("conv_5x5", n5, r5, 5), ("pool_proj", proj, c_in, 1)):
            _conv(shapes, f"{prefix}{block}.{child}", c_out, c, k)


def crowsonkb_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
    """pytorch_caffe_models.GoogLeNet's state dict: stem conv1, conv2_reduce, conv2; blocks; loss3_classifier."""
    shapes: dict[str, tuple[int, ...]] = {}
    _conv(shapes, "conv1", 64, 3, 7)
    _conv(shapes, "conv2_reduce", 64, 64, 1)
    _conv(shapes, "conv2", 192, 64, 3)
    _upstream_blocks(shapes, "inception_")
    _linear(shapes, "loss3_classifier", num_classes, 1024)
    return shapes


def captum_shapes(num_classes: int = 365) -> dict[str, tuple[int, ...]]:
    """captum.optim's InceptionV1Places365 state dict (aux_logits=True, as its file is saved)."""
    shapes: dict[str, tuple[int, ...]] = {}
    _conv(shapes, "conv1", 64, 3, 7)
    _conv(shapes, "conv2", 64, 64, 1)
    _conv(shapes, "conv3", 192, 64, 3)
    _upstream_blocks(shapes, "mixed")
    for aux, c_in in (("aux1", 512), ("aux2", 528)):
        _conv(shapes, f"{aux}.conv", 128, c_in, 1)
        _linear(shapes, f"{aux}.fc1", 1024, 2048)
        _linear(shapes, f"{aux}.fc2", num_classes, 1024)
    _linear(shapes, "fc", num_classes, 1024)
    return shapes


def random_file(shapes: dict[str, tuple[int, ...]], seed: int = 1) -> OrderedDict[str, torch.Tensor]:
    """Random tensors of the file's shapes, scaled by fan-in so activations stay finite through depth."""
    generator = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in shapes.items():
        fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 1
        state[key] = torch.randn(shape, generator=generator) * ((2 / fan_in) ** 0.5 if len(shape) > 1 else 0.01)
    return state


@pytest.mark.parametrize("num_classes", [1000, 205, 365])
def test_crowsonkb_layout_loads_strict_with_the_loss3_head(num_classes: int, tmp_path: Path) -> None:
    file = random_file(crowsonkb_shapes(num_classes))
    path = tmp_path / "any-name.pth"
    torch.save(file, path)
    state = _read(path)
    layout = identify_layout(state, path.name)
    assert layout is PYTORCH_CAFFE_MODELS
    model = caffe_googlenet(num_classes, layout.head, layout.stem).eval()
    model.load_state_dict(layout.rename(state), strict=True)
    assert torch.equal(model.conv2_3x3_reduce.weight, file["conv2_reduce.weight"])
    assert torch.equal(model.conv2_3x3.weight, file["conv2.weight"])
    assert torch.equal(model.inception_4d_5x5.weight, file["inception_4d.conv_5x5.weight"])
    assert torch.equal(model.loss3_classifier.weight, file["loss3_classifier.weight"])
    with torch.no_grad():
        assert model(_image() * 60).shape == (1, num_classes)


def test_captum_layout_loads_strict_without_its_aux_heads(tmp_path: Path) -> None:
    file = random_file(captum_shapes())
    path = tmp_path / "inceptionv1_places365.pth"
    torch.save(file, path)
    state = _read(path)
    layout = identify_layout(state, path.name)
    assert layout is CAPTUM and layout.stem == "same"
    model = caffe_googlenet(365, layout.head, layout.stem).eval()
    model.load_state_dict(layout.rename(state), strict=True)
    assert torch.equal(model.conv2_3x3_reduce.weight, file["conv2.weight"])  # captum's conv2 is the 1x1 reduce
    assert torch.equal(model.conv2_3x3.weight, file["conv3.weight"])
    assert torch.equal(model.inception_5b_pool_proj.weight, file["mixed5b.pool_proj.weight"])
    assert torch.equal(model.loss3_classifier.bias, file["fc.bias"])


@pytest.mark.parametrize("side", [224, 225])
def test_captum_stem_pads_the_tensorflow_way(side: int) -> None:
    """Conv2dSame at 7x7/2: ceil(side / 2) outputs, the odd pixel of padding after (2 + 3 at an even side)."""
    model = caffe_googlenet(365, "loss3", "same").eval()
    x = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(3))
    before, after = (2, 3) if side % 2 == 0 else (3, 3)
    conv = model.conv1_7x7_s2
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (before, after, before, after)),
                                          conv.weight, conv.bias, stride=2)
    with torch.no_grad():
        got = conv(model.conv1_pad(x))
    assert got.shape[-1] == -(-side // 2)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    caffe = caffe_googlenet(365, "loss3", "caffe").eval()
    assert caffe.conv1_7x7_s2.padding == (3, 3) and isinstance(caffe.conv1_pad, nn.Identity)


def test_every_layout_is_told_from_its_keys_and_odd_files_are_refused() -> None:
    places = {k: torch.zeros(1) for k in _file_state(caffe_googlenet(365), lambda k: k)}
    assert identify_layout(places, "f") is PYTORCH_PLACES
    assert identify_layout(dict.fromkeys(crowsonkb_shapes(365), torch.zeros(1)), "f") is PYTORCH_CAFFE_MODELS
    assert identify_layout(dict.fromkeys(captum_shapes(), torch.zeros(1)), "f") is CAPTUM
    for odd in ({"fc.weight": torch.zeros(1)}, {**places, "mixed3a.conv_1x1.weight": torch.zeros(1)}):
        with pytest.raises(CheckpointError, match="no Caffe GoogLeNet checkpoint in a known layout"):
            identify_layout(odd, "f")


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
