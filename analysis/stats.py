"""Activation statistics, layer by layer: what a network's layers do with an image (or a set).

For every dream-able layer, over all images and positions: mean, std, max, sparsity (the
share of activations at or below zero), L2 norm, and the share of channels that fire at
all; for every channel its mean, std, max and sparsity. Everything lands in one tidy
DataFrame (see COLUMNS) so two models line up by relative depth, and figures and CSV
exports are plain functions of it.

Images may differ in size: sums are accumulated image by image in float64, so a set of
photos is pooled exactly as if every activation had been put in one list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch
from PIL import Image

from analysis.drawing import grid_image
from analysis.dream import DreamConfig, DreamResult, dream_batch
from analysis.errors import ConfigError
from analysis.grids import settings_footnote
from analysis.images import tensor_to_pil
from analysis.objectives import Channels
from analysis.progress import OnStep, Relay, ShouldCancel
from analysis.zoo import LOGITS, LayerInfo, LoadedModel

COLUMNS = ("model", "training_data", "layer", "depth", "channel", "statistic", "value")
"""The tidy frame's columns; channel is -1 on layer-level rows."""

LAYER_LEVEL = -1
LAYER_STATISTICS: dict[str, str] = {
    "mean": "mean activation",
    "std": "standard deviation of the activations",
    "max": "largest activation",
    "sparsity": "share of activations at or below zero",
    "l2": "L2 norm of one image's activation tensor (mean over images)",
    "active_share": "share of channels that fire (above zero) anywhere",
}
CHANNEL_STATISTICS: dict[str, str] = {
    "mean": "mean activation of the channel",
    "std": "standard deviation of the channel",
    "max": "largest activation of the channel",
    "sparsity": "share of the channel's activations at or below zero",
}


@dataclass
class _Accumulator:
    """Running float64 sums for one layer: enough for mean, population std, max, sparsity."""

    channels: int
    count: torch.Tensor = field(init=False)  # activations per channel
    total: torch.Tensor = field(init=False)
    squares: torch.Tensor = field(init=False)
    at_most_zero: torch.Tensor = field(init=False)
    peak: torch.Tensor = field(init=False)
    norms: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        zeros = torch.zeros(self.channels, dtype=torch.float64)
        self.count, self.total, self.squares, self.at_most_zero = (zeros.clone() for _ in range(4))
        self.peak = torch.full((self.channels,), float("-inf"), dtype=torch.float64)

    def add(self, activation: torch.Tensor) -> None:
        """activation: (N, C, ...) for N images."""
        values = activation.detach().to("cpu", torch.float64)
        per_channel = values.transpose(0, 1).reshape(self.channels, -1)
        self.count += per_channel.shape[1]
        self.total += per_channel.sum(1)
        self.squares += per_channel.pow(2).sum(1)
        self.at_most_zero += (per_channel <= 0).sum(1)
        self.peak = torch.maximum(self.peak, per_channel.max(1).values)
        self.norms += values.flatten(1).norm(dim=1).tolist()

    def layer_values(self) -> dict[str, float]:
        count = float(self.count.sum())
        mean = float(self.total.sum()) / count
        variance = max(float(self.squares.sum()) / count - mean**2, 0.0)
        return {
            "mean": mean,
            "std": variance**0.5,
            "max": float(self.peak.max()),
            "sparsity": float(self.at_most_zero.sum()) / count,
            "l2": sum(self.norms) / len(self.norms),
            "active_share": float((self.peak > 0).double().mean()),
        }

    def channel_values(self) -> dict[str, torch.Tensor]:
        mean = self.total / self.count
        return {
            "mean": mean,
            "std": (self.squares / self.count - mean.pow(2)).clamp_min(0).sqrt(),
            "max": self.peak,
            "sparsity": self.at_most_zero / self.count,
        }


def stat_layers(model: LoadedModel, layers: Sequence[str] | None = None) -> list[LayerInfo]:
    """The layers to measure: the given names or aliases, or every layer but the class scores."""
    if layers:
        return [model.layer(name) for name in layers]
    return [info for info in model.layers if info.name != LOGITS]


def activation_stats(
    model: LoadedModel,
    images: Sequence[torch.Tensor],
    layers: Sequence[str] | None = None,
    on_step: OnStep | None = None,
    should_cancel: ShouldCancel | None = None,
) -> pd.DataFrame:
    """The tidy statistics frame of `model` over `images` ((3, H, W) tensors in [0, 1]).

    One forward per image (all layers captured at once). A cancel keeps what the images
    done so far give; frame.attrs['images'] says how many went in, attrs['cancelled'] whether
    it stopped early.
    """
    if not images:
        raise ConfigError("Choose at least one image for the statistics.")
    chosen = stat_layers(model, layers)
    accumulators = {info.name: _Accumulator(info.shape[0]) for info in chosen}
    done, cancelled = 0, False
    with torch.inference_mode():
        for image in images:
            if should_cancel is not None and should_cancel():
                cancelled = True
                break
            batch = image if image.dim() == 4 else image[None]
            acts = model.activations(batch, [info.name for info in chosen])
            for info in chosen:
                accumulators[info.name].add(acts[info.name])
            done += 1
            if on_step is not None:
                on_step(done, len(images), None)
    frame = _frame(model, chosen, accumulators) if done else pd.DataFrame(columns=list(COLUMNS))
    frame.attrs.update(images=done, cancelled=cancelled)
    return frame


def _frame(model: LoadedModel, layers: list[LayerInfo], accumulators: dict[str, _Accumulator]) -> pd.DataFrame:
    rows: list[tuple] = []
    base = (model.name, model.spec.training_data)
    for info in layers:
        acc = accumulators[info.name]
        for statistic, value in acc.layer_values().items():
            rows.append((*base, info.alias, info.depth, LAYER_LEVEL, statistic, value))
        for statistic, values in acc.channel_values().items():
            rows += [(*base, info.alias, info.depth, channel, statistic, float(v)) for channel, v in enumerate(values)]
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({"channel": "int64", "depth": "float64", "value": "float64"})


def combine(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Several models' frames as one (the images count and cancel flag are carried over)."""
    frame = pd.concat(list(frames), ignore_index=True)
    frame.attrs.update(images=min(f.attrs.get("images", 0) for f in frames),
                       cancelled=any(f.attrs.get("cancelled", False) for f in frames))
    return frame


def layer_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Layer-level rows, one per model and layer, a column per statistic, ordered by depth."""
    layer_rows = frame[frame["channel"] == LAYER_LEVEL]
    wide = layer_rows.pivot_table(index=["model", "training_data", "layer", "depth"], columns="statistic",
                                  values="value", sort=False).reset_index()
    wide.columns.name = None
    ordered = [s for s in LAYER_STATISTICS if s in wide.columns]
    return wide[["model", "training_data", "layer", "depth", *ordered]].sort_values(["model", "depth"],
                                                                                     kind="stable", ignore_index=True)


def top_channels(frame: pd.DataFrame, k: int = 10, layers: dict[str, str] | None = None) -> pd.DataFrame:
    """The k channels with the largest mean activation per model and layer.

    layers: model -> layer alias, to keep one layer per model; None keeps every layer.
    Columns: model, training_data, layer, depth, rank (1 = strongest), channel, mean, max, sparsity.
    """
    if k < 1:
        raise ConfigError("Ask for at least one top channel.")
    rows = frame[frame["channel"] != LAYER_LEVEL]
    if layers is not None:
        keep = pd.Series(False, index=rows.index)
        for model, layer in layers.items():
            keep |= (rows["model"] == model) & (rows["layer"] == layer)
        rows = rows[keep]
    wide = rows.pivot_table(index=["model", "training_data", "layer", "depth", "channel"], columns="statistic",
                            values="value", sort=False).reset_index()
    wide.columns.name = None
    wide = wide.sort_values(["model", "depth", "mean", "channel"], ascending=[True, True, False, True], kind="stable")
    top = wide.groupby(["model", "layer"], sort=False).head(k).copy()
    top.insert(4, "rank", top.groupby(["model", "layer"], sort=False).cumcount() + 1)
    columns = ["model", "training_data", "layer", "depth", "rank", "channel", "mean", "max", "sparsity"]
    return top[[c for c in columns if c in top.columns]].reset_index(drop=True)


def matched_layer(frame: pd.DataFrame, model: str, depth: float) -> str:
    """The measured layer of `model` whose relative depth is closest to `depth`."""
    layers = frame[frame["model"] == model][["layer", "depth"]].drop_duplicates()
    if layers.empty:
        raise ConfigError(f"No statistics for {model}.")
    return str(layers.loc[(layers["depth"] - depth).abs().idxmin(), "layer"])


def channel_dreams(
    model: LoadedModel,
    image: torch.Tensor,
    layer: str,
    channels: Sequence[int],
    config: DreamConfig,
    on_step: OnStep | None = None,
    should_cancel: ShouldCancel | None = None,
) -> list[DreamResult]:
    """Dream each channel on the same image (one dream_batch call): what each feature detector draws."""
    if not channels:
        raise ConfigError("Choose at least one channel to dream.")
    if len(channels) > 8:
        raise ConfigError("Dream at most 8 channels at once.")
    batch = image[None].repeat(len(channels), 1, 1, 1)
    objectives = [Channels(layer, [channel]) for channel in channels]
    return dream_batch(model, batch, objectives, config, on_step, should_cancel)


def channel_grid(image: torch.Tensor, results: Sequence[DreamResult], channels: Sequence[int], layer: str,
                 model_title: str, image_title: str) -> Image.Image:
    """original | channel c1 | channel c2 ..., one labelled row, ready to save as PNG."""
    config = DreamConfig.from_dict(results[0].record.config)
    steps = config.total_steps
    cells = [[tensor_to_pil(image)] + [tensor_to_pil(r.image) for r in results]]
    done = sum(r.record.steps for r in results)
    partial = "" if done == steps * len(results) else f" (cancelled after {done} of {steps * len(results)})"
    return grid_image(cells, col_labels=["original"] + [f"channel {c}" for c in channels],
                      title=f"{model_title}: channels of {layer} dreamed on {image_title}",
                      footnote=f"Objective: mean activation of one channel per picture{partial}. "
                               f"{settings_footnote([r.record for r in results])}")


def stats_for_models(
    models: Sequence[LoadedModel],
    images: Sequence[torch.Tensor],
    on_step: OnStep | None = None,
    should_cancel: ShouldCancel | None = None,
) -> pd.DataFrame:
    """activation_stats for each model over the same images, combined; progress counts every forward."""
    relay = Relay(on_step, len(models) * len(images))
    frames = []
    for index, model in enumerate(models):
        frame = activation_stats(model, images, on_step=relay.nth(index, len(images)), should_cancel=should_cancel)
        if frame.attrs["images"]:
            frames.append(frame)
        if frame.attrs["cancelled"]:
            break
    if not frames:
        empty = pd.DataFrame(columns=list(COLUMNS))
        empty.attrs.update(images=0, cancelled=True)
        return empty
    result = combine(frames)
    result.attrs["cancelled"] = result.attrs["cancelled"] or len(frames) < len(models)
    return result
