"""What a dream maximises. Small composable objectives, after lucent.

An objective names the layers it needs (so the forward stops at the deepest), scores a
dict of activations with one value per image in the batch, adds and scales with + and *,
and round-trips through a plain dict for recipes.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from analysis.errors import ConfigError
from analysis.zoo import LOGITS, LoadedModel

LayerLabel = Callable[[str], str]

Activations = dict[str, torch.Tensor]

DEFAULT_DEPTH = 0.6
"""Where no layer is chosen (the CLI, the Dream page, the benches), dream the layer at this relative
depth: high enough for patterns and parts, and where the ImageNet model's dog effect peaks."""


def _mean_per_image(values: torch.Tensor) -> torch.Tensor:
    """(N,) means, as sum / count: the backward broadcasts one number per image over the
    activation's own (channels_last) layout. flatten(1).mean(1) copied to NCHW and mean()'s
    backward made an NCHW gradient; mixed layouts made a 512 px conv1 step 2.6x as long."""
    return values.sum(dim=tuple(range(1, values.dim()))) / math.prod(values.shape[1:])


class Objective:
    """Base: subclasses set `layers` and implement `score` -> (N,) tensor."""

    layers: tuple[str, ...] = ()

    def score(self, acts: Activations) -> torch.Tensor:
        raise NotImplementedError

    def bind(self, model: LoadedModel) -> Objective:
        """Resolve aliases and check ranges against a loaded model; returns a ready objective."""
        return self

    def to_dict(self) -> dict:
        raise NotImplementedError

    def describe(self, label: LayerLabel = str) -> str:
        """In words; label turns a layer's module name into what the user calls it (its alias)."""
        raise NotImplementedError

    def __add__(self, other: Objective) -> Objective:
        return Sum([(1.0, self), (1.0, other)])

    def __rmul__(self, weight: float) -> Objective:
        return Sum([(float(weight), self)])

    __mul__ = __rmul__


@dataclass
class LayerL2(Objective):
    """Google's original: whatever the layer sees, amplify it (mean squared activation)."""

    layer: str

    def __post_init__(self) -> None:
        self.layers = (self.layer,)

    def bind(self, model: LoadedModel) -> LayerL2:
        return LayerL2(model.layer(self.layer).name)

    def score(self, acts: Activations) -> torch.Tensor:
        return _mean_per_image(torch.square(acts[self.layer]))

    def to_dict(self) -> dict:
        return {"type": "layer", "layer": self.layer}

    def describe(self, label: LayerLabel = str) -> str:
        return f"L2 of {label(self.layer)}"


CHANNELS_EXAMPLE = "3, 17, 40-42"
"""How a channel list is written, everywhere one is typed (the CLI's --channels, the pages' fields)."""


def check_channels(channels: Sequence[int], count: int, layer: str = "this layer") -> list[int]:
    """Channel indices that exist in a layer of `count` channels, each once in the order given."""
    channels = [int(c) for c in channels]
    if not channels:
        raise ConfigError(f"Choose at least one channel, e.g. {CHANNELS_EXAMPLE} ({layer} has 0 to {count - 1}).")
    bad = [c for c in channels if not 0 <= c < count]
    if bad:
        raise ConfigError(f"Channel {bad[0]} does not exist: {layer} has channels 0 to {count - 1}.")
    return list(dict.fromkeys(channels))


def parse_channels(text: str, count: int, layer: str = "this layer", most: int | None = None) -> list[int]:
    """The one channel-list grammar: '3, 17, 40-42' -> [3, 17, 40, 41, 42].

    Numbers and inclusive ranges, separated by commas (or semicolons); spaces are ignored and
    repeats kept once. Checked against the layer's channel count; `most` caps how many.
    """
    channels: list[int] = []
    for part in str(text).replace(";", ",").replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part[1:]:  # a range; a leading '-' is a (negative, so missing) channel
                first, last = (int(v) for v in part.split("-", 1))
                if last < first:
                    raise ValueError
                channels += range(first, last + 1)
            else:
                channels.append(int(part))
        except ValueError:
            raise ConfigError(f"'{part}' is not a channel number: write numbers such as {CHANNELS_EXAMPLE}.") from None
    channels = check_channels(channels, count, layer)
    if most is not None and len(channels) > most:
        raise ConfigError(f"Choose at most {most} channels.")
    return channels


@dataclass
class Channels(Objective):
    """Mean activation of chosen channels: dream one feature detector."""

    layer: str
    channels: Sequence[int]

    def __post_init__(self) -> None:
        self.layers = (self.layer,)
        self.channels = [int(c) for c in self.channels]
        if not self.channels:
            raise ConfigError("Choose at least one channel.")

    def bind(self, model: LoadedModel) -> Channels:
        info = model.layer(self.layer)
        check_channels(self.channels, info.shape[0], info.alias)
        return Channels(info.name, self.channels)

    def score(self, acts: Activations) -> torch.Tensor:
        act = acts[self.layer]  # summed over space before the channels are picked: a list index
        spatial = act.sum(dim=tuple(range(2, act.dim()))) if act.dim() > 2 else act  # hands back NCHW
        return _mean_per_image(spatial[:, self.channels]) / math.prod(act.shape[2:])

    def to_dict(self) -> dict:
        return {"type": "channels", "layer": self.layer, "channels": list(self.channels)}

    def describe(self, label: LayerLabel = str) -> str:
        return f"channels {', '.join(map(str, self.channels))} of {label(self.layer)}"


@dataclass
class ClassLogit(Objective):
    """"Make it more dog": raise the logits of chosen classes."""

    classes: Sequence[int]

    def __post_init__(self) -> None:
        self.layers = (LOGITS,)
        self.classes = [int(c) for c in self.classes]
        if not self.classes:
            raise ConfigError("Choose at least one class.")

    def bind(self, model: LoadedModel) -> ClassLogit:
        if model.labels is None:
            raise ConfigError(f"{model.name} has no class labels, so it has no class objective.")
        bad = [c for c in self.classes if not 0 <= c < len(model.labels)]
        if bad:
            raise ConfigError(f"Class {bad[0]} does not exist: {model.name} has classes 0 to {len(model.labels) - 1}.")
        return self

    def score(self, acts: Activations) -> torch.Tensor:
        return acts[LOGITS][:, self.classes].mean(1)

    def to_dict(self) -> dict:
        return {"type": "class", "classes": list(self.classes)}

    def describe(self, label: LayerLabel = str) -> str:
        return f"class {', '.join(map(str, self.classes))}"


@dataclass
class Guide(Objective):
    """Google's guided dream: each position moves toward the best-matching guide feature.

    The gradient of max_j <x_i, y_j> with respect to x_i is the guide feature y_j that
    matches x_i best, exactly the notebook's objective_guide.
    """

    layer: str
    guide_image: torch.Tensor  # (3, H, W) in [0, 1]
    features: torch.Tensor | None = None

    def __post_init__(self) -> None:
        self.layers = (self.layer,)

    def bind(self, model: LoadedModel) -> Guide:
        name = model.layer(self.layer).name
        with torch.no_grad():
            feats = model.activations(self.guide_image[None], [name])[name][0]
        return Guide(name, self.guide_image, feats.flatten(1))  # (C, P)

    def score(self, acts: Activations) -> torch.Tensor:
        if self.features is None:
            raise ConfigError("Guide objective used before bind(model).")
        act = acts[self.layer].flatten(2)  # (N, C, Q)
        guide = self.features.to(act.device, act.dtype)
        match = torch.einsum("ncq,cp->nqp", act, guide)  # dot product of every position with every guide feature
        return match.max(dim=2).values.mean(1)

    def to_dict(self) -> dict:
        from analysis.images import tensor_to_pil

        buffer = io.BytesIO()
        tensor_to_pil(self.guide_image).save(buffer, format="PNG")
        return {"type": "guide", "layer": self.layer, "guide_png": base64.b64encode(buffer.getvalue()).decode()}

    def describe(self, label: LayerLabel = str) -> str:
        return f"guide image at {label(self.layer)}"


@dataclass
class Sum(Objective):
    """Weighted sum of objectives, possibly over several layers."""

    terms: list[tuple[float, Objective]]

    def __post_init__(self) -> None:
        flat: list[tuple[float, Objective]] = []
        for weight, term in self.terms:
            flat += [(weight * w, t) for w, t in term.terms] if isinstance(term, Sum) else [(weight, term)]
        self.terms = flat
        self.layers = tuple(dict.fromkeys(layer for _, t in flat for layer in t.layers))

    def bind(self, model: LoadedModel) -> Sum:
        return Sum([(w, t.bind(model)) for w, t in self.terms])

    def score(self, acts: Activations) -> torch.Tensor:
        return sum(w * t.score(acts) for w, t in self.terms)

    def to_dict(self) -> dict:
        return {"type": "sum", "terms": [{"weight": w, "objective": t.to_dict()} for w, t in self.terms]}

    def describe(self, label: LayerLabel = str) -> str:
        return " + ".join(f"{w:g}×{t.describe(label)}" for w, t in self.terms)


def objective_from_dict(data: dict) -> Objective:
    """Inverse of to_dict, for recipes. Unknown or malformed objectives are a clear error."""
    try:
        return _objective_from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise ConfigError(f"The recipe's objective is malformed ({type(err).__name__}: {err}).") from None


def _objective_from_dict(data: dict) -> Objective:
    kind = data.get("type")
    if kind == "layer":
        return LayerL2(data["layer"])
    if kind == "channels":
        return Channels(data["layer"], data["channels"])
    if kind == "class":
        return ClassLogit(data["classes"])
    if kind == "guide":
        from analysis.images import load_image

        return Guide(data["layer"], load_image(base64.b64decode(data["guide_png"])))
    if kind == "sum":
        return Sum([(float(t["weight"]), _objective_from_dict(t["objective"])) for t in data["terms"]])
    raise ConfigError(f"Unknown objective type '{kind}' in the recipe.")
