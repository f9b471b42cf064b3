"""What a page runs: start_run (the one way a page starts a job), the work functions it hands over,
and the results they keep.

Each work function runs in the worker thread while the device lock is held, so it may
use the model freely (dream, then classify) and must not call st.*.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from PIL import Image

from analysis.drawing import grid_image
from analysis.dream import DreamConfig, DreamResult
from analysis.grids import settings_footnote
from analysis.images import tensor_to_pil
from analysis.labels import TopK, top_classes
from analysis.objectives import LayerL2
from analysis.pngmeta import png_bytes
from analysis.provenance import RunRecord
from analysis.recipes import ImageSource, Recipe, check_replay, run_recipe, run_recipes
from analysis.wording import model_label
from analysis.zoo import LayerInfo, LoadedModel
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

    def png(self) -> bytes:
        """The dream as PNG with its run record and recipe (encoded once)."""
        if self._png is None:
            self._png = png_bytes(self.result.image, self.result.record)
        return self._png


def dream_work(model: LoadedModel, recipe: Recipe, image: torch.Tensor, image_title: str, objective_text: str):
    """A new dream; `image` is the recipe's start image as the page shows it beside the dream."""
    def work(on_step, should_cancel) -> DreamRun:
        result = run_recipe(recipe, model, on_step, should_cancel)
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
                        result.record.objective_text or "", top_classes(model, image),
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
    record: RunRecord = field(default_factory=RunRecord)  # the sweep's: every layer, no single recipe
    input_bytes: bytes | None = field(default=None, repr=False)  # an uploaded start photo
    _png: bytes | None = field(default=None, repr=False)

    def png(self) -> bytes:
        """The grid as PNG with the sweep's run record (encoded once)."""
        if self._png is None:
            self._png = png_bytes(self.grid, self.record)
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
    steps, planned = sum(r.record.steps for r in run.results), run.config.total_steps * len(run.results)
    cancelled = "" if steps == planned else f"; cancelled after {steps} of {planned} steps"
    footnote = f"Objective: L2 of each layer{cancelled}. {settings_footnote([r.record for r in run.results])}"
    return grid_image(cells, col_labels=columns, title=title, footnote=footnote)


def layers_work(model: LoadedModel, image: torch.Tensor, layers: list[LayerInfo], config: DreamConfig,
                source: ImageSource, max_side: int, image_title: str, input_bytes: bytes | None = None):
    """The sweep, one recipe per layer; `image` is the start image (`source` at `max_side` px) as the page shows it.
    Each layer dreamed alone (the CPU) keeps its recipe, which replays to its very pixels (recipes.run_recipes)."""
    def work(on_step, should_cancel) -> LayersRun:
        recipes = [Recipe(model.name, LayerL2(info.name).to_dict(), config, source, max_side, model.precision)
                   for info in layers]
        results = run_recipes(recipes, model, on_step, should_cancel)
        title = model_label(model.spec.title, model.spec.training_data)
        run = LayersRun(image, layers, results, title, image_title, config, input_bytes=input_bytes)
        # the first layer's record, less its objective and recipe: the grid's record is about all of them
        run.record = replace(results[0].record, objective=None, recipe=None, layers=[i.alias for i in layers],
                             objective_text="L2 of each layer").with_extras(image=image_title)
        run.grid = layers_grid(run)
        return run
    return work
