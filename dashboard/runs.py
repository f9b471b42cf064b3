"""What a page runs: the work functions handed to progress.start, and the results they keep.

Each work function runs in the worker thread while the device lock is held, so it may
use the model freely (dream, then classify) and must not call st.*.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from analysis.dream import DreamConfig, DreamResult, dream, dream_batch
from analysis.export import grid_image
from analysis.images import tensor_to_pil
from analysis.objectives import LayerL2, Objective
from analysis.pngmeta import png_bytes
from analysis.recipes import ImageSource, Recipe, check_replay, run_recipe
from analysis.zoo import LayerInfo, LoadedModel
from dashboard.readings import depth_reading

TopK = list[tuple[int, str, float]]


@dataclass
class DreamRun:
    """One dream, everything the result view needs."""

    original: torch.Tensor
    result: DreamResult
    recipe: Recipe
    model_title: str
    image_title: str
    objective_text: str
    top_original: TopK | None = None
    top_dream: TopK | None = None
    replayed: str | None = None  # a replay: what it says about its pixels against the original's
    _png: bytes | None = field(default=None, repr=False)

    @property
    def metadata(self) -> dict:
        return {**self.result.metadata, "recipe": self.recipe.to_dict()}

    def png(self) -> bytes:
        """The dream as PNG with its metadata and recipe (encoded once)."""
        if self._png is None:
            self._png = png_bytes(self.result.image, self.metadata)
        return self._png


def _top(model: LoadedModel, image: torch.Tensor) -> TopK | None:
    return model.classify(image) if model.labels is not None else None


def dream_work(model: LoadedModel, image: torch.Tensor, objective: Objective, config: DreamConfig,
               recipe: Recipe, image_title: str, objective_text: str):
    def work(on_step, should_cancel) -> DreamRun:
        result = dream(model, image, objective, config, on_step, should_cancel)
        return DreamRun(image, result, recipe, model.spec.title, image_title, objective_text,
                        _top(model, image), _top(model, result.image))
    return work


def recipe_work(model: LoadedModel, recipe: Recipe, image: torch.Tensor, image_title: str,
                original_png: bytes | None = None):
    """A replay; from a dream PNG, the result is compared with that PNG's own pixels."""
    def work(on_step, should_cancel) -> DreamRun:
        result = run_recipe(recipe, model, on_step=on_step, should_cancel=should_cancel)
        replayed = ("Replayed from a recipe JSON: identical pixels on the same device, precision, CPU kind "
                    "and library versions as the original." if original_png is None or result.cancelled
                    else f"Replayed from a dream PNG: {check_replay(original_png, result).describe()}.")
        return DreamRun(image, result, recipe, model.spec.title, image_title,
                        result.metadata.get("objective_text", ""), _top(model, image), _top(model, result.image),
                        replayed=replayed)
    return work


@dataclass
class LayersRun:
    """The same image dreamed at several layers, low to high."""

    original: torch.Tensor
    layers: list[LayerInfo]
    results: list[DreamResult]
    model_title: str
    image_title: str
    config: DreamConfig
    grid: Image.Image | None = None
    metadata: dict = field(default_factory=dict)
    input_bytes: bytes | None = field(default=None, repr=False)  # an uploaded start photo
    _png: bytes | None = field(default=None, repr=False)

    def png(self) -> bytes:
        """The grid as PNG with the run's metadata (encoded once)."""
        if self._png is None:
            self._png = png_bytes(self.grid, self.metadata)
        return self._png

    @property
    def cancelled(self) -> bool:
        return any(r.cancelled for r in self.results)


def layers_grid(run: LayersRun) -> Image.Image:
    """original | layer 1 | ... | layer N, one labelled row, as a PNG-ready picture."""
    cells = [[tensor_to_pil(run.original)] + [tensor_to_pil(r.image) for r in run.results]]
    columns = ["original"] + [f"{info.alias} · depth {info.depth:.2f}\n{depth_reading(info.depth)}"
                              for info in run.layers]
    config = run.config
    title = f"{run.model_title}: {run.image_title} dreamed at {len(run.layers)} layers, low to high"
    steps, planned = sum(r.metadata.get("steps", 0) for r in run.results), config.total_steps * len(run.results)
    footnote = (f"Objective: L2 of each layer. {config.octaves} octaves x{config.octave_scale:g}, "
                f"{config.iterations} steps each, step {config.step_size * 255:.2g}/255, "
                f"{config.normalization}, seed {config.seed}"
                + ("" if steps == planned else f"; cancelled after {steps} of {planned} steps")
                + ". Inceptionism Lab.")
    return grid_image(cells, col_labels=columns, title=title, footnote=footnote)


def attach_recipes(model: LoadedModel, results: list[DreamResult], config: DreamConfig, source: ImageSource,
                   max_side: int) -> None:
    """Each dream of a sweep that was dreamed alone (the CPU) gets the single-dream recipe, which
    replays to its very pixels; a batched GPU sweep is not pixel-identical to single dreams: none."""
    for result in results:
        if result.metadata.get("batch_size") == 1:
            recipe = Recipe(model.name, result.metadata["objective"], config, source, max_side, model.precision)
            result.metadata["recipe"] = recipe.to_dict()


def layers_work(model: LoadedModel, image: torch.Tensor, layers: list[LayerInfo], config: DreamConfig,
                source: ImageSource, max_side: int, image_title: str, input_bytes: bytes | None = None):
    """The sweep; `source` and `max_side` say where `image` came from, for the per-layer recipes."""
    def work(on_step, should_cancel) -> LayersRun:
        batch = image[None].repeat(len(layers), 1, 1, 1)
        objectives = [LayerL2(info.alias) for info in layers]
        results = dream_batch(model, batch, objectives, config, on_step, should_cancel)
        attach_recipes(model, results, config, source, max_side)
        title = model.spec.title
        if model.spec.training_data not in title:
            title = f"{title} ({model.spec.training_data})"
        run = LayersRun(image, layers, results, title, image_title, config, input_bytes=input_bytes)
        meta = dict(results[0].metadata)
        for key in ("objective", "recipe"):  # the first layer's: the grid's metadata is about all of them
            meta.pop(key, None)
        meta.update(layers=[info.alias for info in layers], objective_text="L2 of each layer", image=image_title)
        run.metadata = meta
        run.grid = layers_grid(run)
        return run
    return work
