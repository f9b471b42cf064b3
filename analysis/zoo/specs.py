"""What a model is, before anything is loaded: its spec, its input convention, its layers, the registry.

Modelled on torchvision's registry: a name maps to a spec that carries its own input convention,
labels, weight source and dream-able layers. The catalogue (analysis/zoo/catalogue/) fills the
registry; a spec's layers and their shapes are traced on the meta device, so they are known
without weights.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import torch
import torch.nn as nn

from analysis import labels as label_files
from analysis.errors import ConfigError

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


def class_labels(dataset: str | None) -> list[str] | None:
    if dataset == ImageNet:
        return label_files.imagenet_classes()
    if dataset == Places365:
        return label_files.places365_classes()
    if dataset == Places205:
        return label_files.places205_classes()
    return None


# ---------------------------------------------------------------- registry

REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    """Add a model to the zoo; a name registered twice is a bug (the second would silently win)."""
    if spec.name in REGISTRY:
        raise ValueError(f"A model named {spec.name} is already registered.")
    REGISTRY[spec.name] = spec
    return spec


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


