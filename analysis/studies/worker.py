"""What one work item is: load its image, dream it, judge the original and the dream, encode the PNG.

The same ItemRunner runs in this process and inside every Ray actor, so both give the same rows
and, on the same hardware, the same pixels: torch's thread count is fixed per item (oneDNN's
reductions depend on it) and recorded in the row. A runner loads each model once and keeps
the judges' verdicts on the originals it has seen, so a model's items cost one load in all.
"""

from __future__ import annotations

import hashlib
import itertools
import platform
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch

from analysis import zoo
from analysis.dream import dream
from analysis.errors import ImageError
from analysis.featviz import optimise_channels, render_record
from analysis.objectives import LayerL2
from analysis.pngmeta import png_bytes
from analysis.recipes import ImageSource, Recipe
from analysis.studies.judging import Judge
from analysis.studies.plan import ChannelItem, Item, Plan
from analysis.zoo import LoadedModel, load_model

ORIGINALS_KEPT = 64
"""Originals' verdicts a runner remembers: items of one image run close together, so a few suffice."""


def share_column(stage: str, judge: str, group: str) -> str:
    """'original:efficientnet_lite0:dogs': one judge's share of one group, for the original or the dream."""
    return f"{stage}:{judge}:{group}"


def judge_column(field_name: str, judge: str) -> str:
    """'dream_top:efficientnet_lite0': a per-judge verdict (original_top, dream_top, dream_top_p, emergent)."""
    return f"{field_name}:{judge}"


@dataclass
class ItemResult:
    """One finished item: its row, and its dream as PNG bytes (None when skipped)."""

    row: dict
    png: bytes | None = field(default=None, repr=False)

    @property
    def skipped(self) -> bool:
        return self.row["status"] == "skipped"

    def skips(self) -> list[tuple[str, str]]:
        return [(self.row["image"], self.row["error"])] if self.skipped else []


class ItemRunner:
    """Runs items of one plan; holds the loaded models and judges for as long as it lives."""

    def __init__(self, plan: Plan, device: str | None = None, load: Callable[[str], LoadedModel] | None = None):
        """load: how a model is had (default: loaded here); the dashboard passes the models it already holds."""
        self.plan = plan
        self.device = device
        self.load = load or (lambda name: load_model(name, device=self.device, precision=self.plan.precision))
        self._models: dict[str, LoadedModel] = {}
        self._judges: list[Judge] | None = None
        self._originals: OrderedDict[str, tuple[torch.Tensor, dict[str, torch.Tensor], ImageSource]] = OrderedDict()

    def model(self, name: str) -> LoadedModel:
        if name not in self._models:
            self._models[name] = self.load(name)
        return self._models[name]

    def judges(self) -> list[Judge]:
        if self._judges is None:
            self._judges = [Judge.of(self.model(name)) for name in self.plan.judges]
        return self._judges

    def prepare(self) -> str:
        """Load every model and judge now: a worker that lacks weights says so before its first item."""
        for name in self.plan.models:
            self.model(name)
        self.judges()
        return platform.node()

    def _original(self, item: Item) -> tuple[torch.Tensor, dict[str, torch.Tensor], ImageSource]:
        """The start image, the judges' verdicts on it and its source, remembered for the image's next items."""
        key = item.image.name
        if key not in self._originals:
            pixels, source = item.image.load(self.plan.size)
            verdicts = {judge.name: judge.probabilities(pixels)[0] for judge in self.judges()}
            self._originals[key] = (pixels, verdicts, source)
            while len(self._originals) > ORIGINALS_KEPT:
                self._originals.popitem(last=False)
        self._originals.move_to_end(key)
        return self._originals[key]

    def run(self, item: Item) -> ItemResult:
        """Dream and judge one item at the plan's thread count (the process's own is restored after)."""
        before = torch.get_num_threads()
        torch.set_num_threads(self.plan.threads)
        try:
            return self._run(item)
        finally:
            torch.set_num_threads(before)

    def _run(self, item: Item) -> ItemResult:
        """An unreadable image gives a 'skipped' row, not an exception."""
        started = time.perf_counter()
        base = self._base_row(item)
        try:
            pixels, p_originals, source = self._original(item)
        except ImageError as err:
            return ItemResult({**base, "status": "skipped", "error": str(err)})
        model = self.model(item.model)
        config = self.plan.item_config(item)
        objective = LayerL2(item.layer)
        result = dream(model, pixels, objective, config)
        dreamed = result.image
        recipe = Recipe(model.name, objective.bind(model).to_dict(), config, source, self.plan.size, model.precision)
        record = replace(result.record, seconds=None, recipe=recipe.to_dict())  # no seconds: the same bytes every run
        png = png_bytes(dreamed, record.with_extras(image=item.image.name, study_item=item.id, study_depth=item.depth))
        row = {**base, "status": "done", "error": "", "width": int(dreamed.shape[-1]),
               "height": int(dreamed.shape[-2]), "pixel_change": float((dreamed - pixels).abs().mean()),
               "device": str(model.device), "threads": torch.get_num_threads(),
               "dream_sha256": hashlib.sha256(png).hexdigest()}
        stacked = dreamed[None]
        for judge in self.judges():
            p_original, p_dream = p_originals[judge.name], judge.probabilities(stacked)[0]
            for group, share in judge.shares(p_original).items():
                row[share_column("original", judge.name, group)] = share
            for group, share in judge.shares(p_dream).items():
                row[share_column("dream", judge.name, group)] = share
            row[judge_column("original_top", judge.name)] = judge.top_label(p_original)[0]
            row[judge_column("dream_top", judge.name)], row[judge_column("dream_top_p", judge.name)] = \
                judge.top_label(p_dream)
            row[judge_column("emergent", judge.name)] = judge.emergent(p_original, p_dream)
        row["seconds"] = round(time.perf_counter() - started, 4)
        return ItemResult(row, png)

    def run_batch(self, items: list[Item]) -> list[ItemResult]:
        return [self.run(item) for item in items]

    def _base_row(self, item: Item) -> dict:
        spec = zoo.get_spec(item.model)
        return {"item": item.id, "model": item.model, "training_data": spec.training_data,
                "control": spec.training_data == zoo.Untrained, "depth": item.depth, "layer": item.layer_alias,
                "layer_depth": item.layer_depth, "image": item.image.name, "image_kind": item.image.kind,
                "seed": item.seed, "host": platform.node()}


class ChannelRunner:
    """Renders a gallery's channels: consecutive items of one model, layer and seed are one batched
    feature-visualisation optimisation (a batch's channels are rendered together, in every executor)."""

    def __init__(self, plan: Plan, device: str | None = None, load: Callable[[str], LoadedModel] | None = None):
        self.plan = plan
        self.load = load or (lambda name: load_model(name, device=device, precision=plan.precision))
        self._models: dict[str, LoadedModel] = {}

    def model(self, name: str) -> LoadedModel:
        if name not in self._models:
            self._models[name] = self.load(name)
        return self._models[name]

    def prepare(self) -> str:
        for name in self.plan.models:
            self.model(name)
        return platform.node()

    def run_batch(self, items: list[ChannelItem]) -> list[ItemResult]:
        before = torch.get_num_threads()
        torch.set_num_threads(self.plan.threads)
        try:
            results: list[ItemResult] = []
            for _key, group in itertools.groupby(items, key=lambda item: (item.model, item.layer, item.seed)):
                results += self._render(list(group))
            return results
        finally:
            torch.set_num_threads(before)

    def _render(self, items: list[ChannelItem]) -> list[ItemResult]:
        started = time.perf_counter()
        first = items[0]
        model = self.model(first.model)
        config = self.plan.featviz_config(first.seed, batch=len(items))
        channels = [item.channel for item in items]
        done = optimise_channels(model, first.layer, channels, config)
        with torch.no_grad():
            act = model.activations(done.images.to(model.device), [first.layer])[first.layer].float()
        means = (act.flatten(2).mean(2) if act.dim() > 2 else act).cpu()
        seconds = round((time.perf_counter() - started) / len(items), 4)
        spec = zoo.get_spec(first.model)
        results = []
        for k, item in enumerate(items):
            activation = float(means[k, item.channel])
            record = render_record(model, model.layer(item.layer), item.channel, config, activation, config.steps)
            png = png_bytes(done.images[k], record.with_extras(study_item=item.id))
            row = {"item": item.id, "model": item.model, "training_data": spec.training_data,
                   "control": spec.training_data == zoo.Untrained, "depth": item.depth,
                   "layer": item.layer_alias, "layer_depth": item.layer_depth, "channel": item.channel,
                   "seed": item.seed, "status": "done", "error": "", "width": int(done.images.shape[-1]),
                   "height": int(done.images.shape[-2]), "activation": activation, "seconds": seconds,
                   "device": str(model.device), "threads": torch.get_num_threads(), "host": platform.node(),
                   "dream_sha256": hashlib.sha256(png).hexdigest()}
            results.append(ItemResult(row, png))
        return results
