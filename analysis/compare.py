"""Two models dream the same image side by side: what each training set makes a network amplify.

Both runs share the image, the DreamConfig (so the seed, and with it the jitter sequence,
is identical), and the objective (L2 of a layer); only the network differs. Layers are
matched by relative depth (or chosen per model). Each dream's top classes are read with
its own model's labels (ImageNet classes, Places365 categories).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from analysis import zoo
from analysis.drawing import caption_cell, grid_image
from analysis.dream import DreamConfig, DreamResult
from analysis.errors import ConfigError
from analysis.grids import settings_footnote
from analysis.images import tensor_to_pil
from analysis.labels import TopK, top_classes
from analysis.objectives import LayerL2
from analysis.progress import OnStep, Relay, ShouldCancel
from analysis.recipes import ImageSource, Recipe, run_recipes
from analysis.wording import model_label
from analysis.zoo import LayerInfo, LoadedModel

DEFAULT_PAIR = ("efficientnet_lite0", "efficientnet_lite0" + zoo.UNTRAINED_SUFFIX)
"""Works offline: the embedded ImageNet network against the same architecture untrained."""
PLACES_PAIRS = (("bvlc_googlenet", "googlenet_places205"), ("bvlc_googlenet", "googlenet_places365"),
                ("googlenet", "googlenet_places365"), ("resnet50", "resnet50_places365"),
                ("alexnet", "alexnet_places365"))
"""ImageNet against Places, same architecture: objects against scenes. BVLC's Caffe GoogLeNet against
the Places GoogLeNets first: the very same network and preprocessing scheme, only the training
data differs, which is the comparison of the original DeepDream gallery."""
MAX_COLUMNS = 6
TOP_CLASSES = 3


def suggested_pairs(folder: Path | None = None) -> list[tuple[str, str]]:
    """ImageNet-vs-Places pairs whose weights are all here come first, then the offline default."""
    present = [pair for pair in PLACES_PAIRS
               if all(zoo.weights_present(zoo.get_spec(name), folder) for name in pair)]
    return present + [DEFAULT_PAIR]


def sweep_depths(count: int, low: float = 0.1, high: float = 0.9) -> list[float]:
    """count depths evenly spread from low to high (one depth: the middle)."""
    if not 1 <= count <= MAX_COLUMNS:
        raise ConfigError(f"Choose 1 to {MAX_COLUMNS} depths.")
    if count == 1:
        return [round((low + high) / 2, 2)]
    return [round(low + i * (high - low) / (count - 1), 2) for i in range(count)]


def parse_depths(text: str) -> list[float]:
    """'0.2,0.5,0.8' -> [0.2, 0.5, 0.8], each 0 to 1, at most MAX_COLUMNS."""
    try:
        depths = [float(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"'{text}' is not a list of depths: write numbers from 0 to 1 such as 0.2,0.5,0.8.") from None
    if not 1 <= len(depths) <= MAX_COLUMNS:
        raise ConfigError(f"Give 1 to {MAX_COLUMNS} depths.")
    bad = [d for d in depths if not 0 <= d <= 1]
    if bad:
        raise ConfigError(f"Depth {bad[0]:g} is out of range: choose 0 to 1.")
    return depths


@dataclass(frozen=True)
class Column:
    """One column of the comparison: a layer of A and a layer of B."""

    layer_a: LayerInfo
    layer_b: LayerInfo
    depth: float | None = None  # the target depth when matched by depth

    @property
    def label(self) -> str:
        if self.depth is not None:
            return f"depth {self.depth:.2f}"
        return f"{self.layer_a.alias} / {self.layer_b.alias}"


def match_by_depth(model_a: LoadedModel, model_b: LoadedModel, depths: Sequence[float]) -> list[Column]:
    """For each depth, the layer of each model closest to it."""
    if not 1 <= len(depths) <= MAX_COLUMNS:
        raise ConfigError(f"Choose 1 to {MAX_COLUMNS} depths.")
    return [Column(model_a.layer_at_depth(d), model_b.layer_at_depth(d), float(d)) for d in depths]


def match_by_name(model_a: LoadedModel, model_b: LoadedModel, layers_a: Sequence[str],
                  layers_b: Sequence[str]) -> list[Column]:
    """Layers chosen per model, paired in order."""
    if len(layers_a) != len(layers_b):
        raise ConfigError(f"Choose as many layers for B as for A ({len(layers_a)} and {len(layers_b)} now).")
    if not 1 <= len(layers_a) <= MAX_COLUMNS:
        raise ConfigError(f"Choose 1 to {MAX_COLUMNS} layers per model.")
    return [Column(model_a.layer(a), model_b.layer(b)) for a, b in zip(layers_a, layers_b)]


@dataclass
class Side:
    """One model's row: its dreams and what it reads in them."""

    name: str
    title: str
    training_data: str
    results: list[DreamResult] = field(default_factory=list)
    top_original: TopK | None = None
    top_dreams: list[TopK | None] = field(default_factory=list)

    @property
    def label(self) -> str:
        return model_label(self.title, self.training_data)


@dataclass
class Comparison:
    original: torch.Tensor
    image_title: str
    columns: list[Column]
    config: DreamConfig
    a: Side
    b: Side

    @property
    def cancelled(self) -> bool:
        results = self.a.results + self.b.results
        return len(results) < 2 * len(self.columns) or any(r.cancelled for r in results)

    def metadata(self) -> dict:
        """What the grid PNG carries: both models, the matched layers, the settings."""
        first = (self.a.results or self.b.results or [None])[0]
        return {
            "kind": "comparison",
            "image": self.image_title,
            "models": [self.a.name, self.b.name],
            "training_data": [self.a.training_data, self.b.training_data],
            "columns": [{"depth": c.depth, "layer_a": c.layer_a.alias, "layer_b": c.layer_b.alias}
                        for c in self.columns],
            "objective_text": "L2 of each matched layer",
            "config": self.config.to_dict(),
            "seed": self.config.seed,
            "weights_sha256": [s.results[0].record.weights_sha256 for s in (self.a, self.b) if s.results],
            "versions": first.record.versions if first else {},
            "cancelled": self.cancelled,
            "top_classes": {side.name: [[name for _, name, _ in top] if top else None for top in side.top_dreams]
                            for side in (self.a, self.b)},
        }


def compare(
    model_a: LoadedModel,
    model_b: LoadedModel,
    source: ImageSource,
    max_side: int,
    columns: Sequence[Column],
    config: DreamConfig,
    image_title: str = "image",
    on_step: OnStep | None = None,
    should_cancel: ShouldCancel | None = None,
) -> Comparison:
    """Dream the start image (source at max_side px) at every column's layer with A, then with B, under the
    same config.

    Each model's columns are one run_recipes call, so each dream carries the recipe that replays it (where
    dreamed alone: see run_recipes). Progress counts both (A's steps, then B's). A cancel during A skips B;
    the comparison keeps what was dreamed (partial rows).
    """
    if not columns:
        raise ConfigError("Choose at least one depth or layer to compare.")
    if model_a.device != model_b.device:
        raise ConfigError("Both models must be on the same device.")
    config.validate()
    image = source.load(max_side)
    relay = Relay(on_step, 2 * config.total_steps)
    comparison = Comparison(image, image_title, list(columns), config,
                            *(Side(m.name, m.spec.title, m.spec.training_data) for m in (model_a, model_b)))
    for index, (model, side) in enumerate(((model_a, comparison.a), (model_b, comparison.b))):
        layers = [c.layer_a if index == 0 else c.layer_b for c in columns]
        recipes = [Recipe(model.name, LayerL2(info.name).to_dict(), config, source, max_side, model.precision)
                   for info in layers]
        side.results = run_recipes(recipes, model, relay.nth(index, config.total_steps), should_cancel)
        side.top_original = top_classes(model, image, TOP_CLASSES)
        side.top_dreams = [top_classes(model, r.image, TOP_CLASSES) for r in side.results]
        if any(r.cancelled for r in side.results):
            break
    return comparison


def percent(p: float) -> str:
    """'37%', and '0.10%' for the near-uniform guesses of an untrained network."""
    return f"{p:.0%}" if p >= 0.01 else f"{p:.2%}"


def _caption(first: str, top: TopK | None, lines: int) -> list[str]:
    """first line, then 'NN% class' per top class, padded to `lines` rows so cells line up."""
    text = [first] + ([f"{percent(p)} {name}" for _, name, p in top] if top is not None else ["(no class labels)"])
    return (text + [""] * lines)[:lines]


def grid(comparison: Comparison) -> Image.Image:
    """The 2 x (1 + N) grid: the original, then one dream per column; each with its model's top classes."""
    lines = 1 + TOP_CLASSES
    original = tensor_to_pil(comparison.original)
    rows = []
    for side, pick in ((comparison.a, lambda c: c.layer_a), (comparison.b, lambda c: c.layer_b)):
        if not side.results:  # cancelled before this model's run began
            rows.append([caption_cell(original, _caption("not dreamed (cancelled)", [], lines))])
            continue
        row = [caption_cell(original, _caption("original", side.top_original, lines))]
        for column, result, top in zip(comparison.columns, side.results, side.top_dreams):
            layer = pick(column)
            row.append(caption_cell(tensor_to_pil(result.image), _caption(f"{layer.alias} · depth {layer.depth:.2f}",
                                                                          top, lines)))
        rows.append(row)
    results = comparison.a.results + comparison.b.results
    partial = " Cancelled: partial dreams." if comparison.cancelled else ""
    footnote = (f"Same image, seed (same jitter sequence) and settings for both: L2 of each layer. Layers matched "
                f"by relative depth (0 = first layer, 1 = class scores); top-{TOP_CLASSES} classes read with each "
                f"model's own labels.{partial} {settings_footnote([r.record for r in results])}")
    title = f"{comparison.a.label} vs {comparison.b.label}: {comparison.image_title}"
    return grid_image(rows, row_labels=[comparison.a.label, comparison.b.label],
                      col_labels=["original"] + [c.label for c in comparison.columns], title=title, footnote=footnote)
