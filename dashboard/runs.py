"""What a page runs: start_run (the one way a page starts a job), the work functions it hands over,
and the results they keep.

Each work function runs in the worker thread while the device lock is held, so it may
use the model freely (dream, then classify) and must not call st.*.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image

from analysis.drawing import grid_image
from analysis.dream import DreamConfig, DreamResult, dream, dream_batch
from analysis.grids import settings_footnote
from analysis.images import tensor_to_pil
from analysis.labels import TopK, top_classes
from analysis.models import LayerInfo, LoadedModel
from analysis.objectives import LayerL2, Objective
from analysis.pngmeta import png_bytes
from analysis.recipes import ImageSource, Recipe, check_replay, run_recipe
from analysis.wording import model_label
from dashboard import progress, state
from dashboard.readings import depth_reading


def start_run(slot: str, title: str, work: progress.Work, device: str | torch.device | None, *,
              dream_config: DreamConfig | None = None, dreams: int = 1, total: int = 0,
              preview: torch.Tensor | None = None) -> progress.Job:
    """Start `work` in the background under the device's lock, with its step total.

    device: whose lock the job holds while it runs; None for work that runs elsewhere (a Ray cluster).
    dream_config: the job is `dreams` dreams of these settings one after another (a batch counts as
    one), so its total is their steps; a single dream also shows its octave. Otherwise `total` counts
    whatever unit the work reports (images, batches, frames).
    """
    steps_per_octave = None
    if dream_config is not None:
        total = dream_config.total_steps * dreams
        steps_per_octave = dream_config.iterations if dreams == 1 else None
    return progress.start(slot, title, work, lock=None if device is None else state.device_lock(device),
                          steps_per_octave=steps_per_octave, total=total, preview=preview)


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


def dream_work(model: LoadedModel, image: torch.Tensor, objective: Objective, config: DreamConfig,
               recipe: Recipe, image_title: str, objective_text: str):
    def work(on_step, should_cancel) -> DreamRun:
        result = dream(model, image, objective, config, on_step, should_cancel)
        return DreamRun(image, result, recipe, model.spec.title, image_title, objective_text,
                        top_classes(model, image), top_classes(model, result.image))
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
                        result.metadata.get("objective_text", ""), top_classes(model, image),
                        top_classes(model, result.image), replayed=replayed)
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
    title = f"{run.model_title}: {run.image_title} dreamed at {len(run.layers)} layers, low to high"
    steps, planned = sum(r.metadata.get("steps", 0) for r in run.results), run.config.total_steps * len(run.results)
    cancelled = "" if steps == planned else f"; cancelled after {steps} of {planned} steps"
    footnote = f"Objective: L2 of each layer{cancelled}. {settings_footnote([r.metadata for r in run.results])}"
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
        title = model_label(model.spec.title, model.spec.training_data)
        run = LayersRun(image, layers, results, title, image_title, config, input_bytes=input_bytes)
        meta = dict(results[0].metadata)
        for key in ("objective", "recipe"):  # the first layer's: the grid's metadata is about all of them
            meta.pop(key, None)
        meta.update(layers=[info.alias for info in layers], objective_text="L2 of each layer", image=image_title)
        run.metadata = meta
        run.grid = layers_grid(run)
        return run
    return work
