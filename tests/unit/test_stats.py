"""Activation statistics: exact values on a tiny network with known weights, then the real model."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from analysis import stats
from analysis.errors import ConfigError
from analysis.zoo import InputConvention, LayerInfo, LoadedModel, ModelSpec, Preprocess, WeightsSource, count_hooks


def tiny_model() -> LoadedModel:
    """1x1 conv with 3 output channels, then ReLU. Identity input convention.

    channel 0 = R - 0.5, channel 1 = 0.25 - G, channel 2 = -1 everywhere (never fires).
    """
    conv = nn.Conv2d(3, 3, kernel_size=1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0, 0], [0, -1.0, 0], [0, 0, 0]]).view(3, 3, 1, 1))
        conv.bias.copy_(torch.tensor([-0.5, 0.25, -1.0]))
    module = nn.Sequential(conv, nn.ReLU()).eval().requires_grad_(False)
    spec = ModelSpec(name="tiny", title="Tiny", architecture="tiny", training_data="hand-made", labels=None,
                     convention=InputConvention(), weights=WeightsSource(format="random"), build=lambda: module,
                     layer_names=lambda m: [("0", "conv"), ("1", "relu")])
    layers = (LayerInfo("0", "conv", (3, 2, 2), 0.0), LayerInfo("1", "relu", (3, 2, 2), 1.0))
    return LoadedModel(spec=spec, module=module, preprocess=Preprocess(spec.convention), layers=layers, labels=None,
                       weights_sha256="hand-made", device=torch.device("cpu"))


def image_2x2() -> torch.Tensor:
    image = torch.zeros(3, 2, 2)
    image[0] = torch.tensor([[0.0, 1.0], [0.5, 1.0]])  # R
    image[1] = torch.tensor([[0.0, 0.5], [1.0, 0.0]])  # G
    return image


def value(frame, layer: str, statistic: str, channel: int = stats.LAYER_LEVEL) -> float:
    row = frame[(frame["layer"] == layer) & (frame["statistic"] == statistic) & (frame["channel"] == channel)]
    assert len(row) == 1
    return float(row["value"].iloc[0])


def test_layer_statistics_equal_hand_computed_values():
    # conv: ch0 = R - .5 = [-.5, .5, 0, .5]; ch1 = .25 - G = [.25, -.25, -.75, .25]; ch2 = [-1] * 4
    # relu: ch0 = [0, .5, 0, .5];          ch1 = [.25, 0, 0, .25];                ch2 = [0] * 4
    frame = stats.activation_stats(tiny_model(), [image_2x2()])
    assert list(frame.columns) == list(stats.COLUMNS)
    assert value(frame, "conv", "mean") == pytest.approx(-4 / 12)  # sum 0 + 0 - 4 over 12 values
    assert value(frame, "conv", "std") == pytest.approx(math.sqrt(5.5 / 12 - 1 / 9))  # squares 1 + .75 + 4 = 5.5
    assert value(frame, "conv", "max") == pytest.approx(0.5)
    assert value(frame, "conv", "sparsity") == pytest.approx(8 / 12)  # -.5, 0, -.25, -.75 and the four -1
    assert value(frame, "conv", "l2") == pytest.approx(math.sqrt(5.5))
    assert value(frame, "conv", "active_share") == pytest.approx(2 / 3)  # channel 2 never goes above zero
    assert value(frame, "relu", "mean") == pytest.approx(1.5 / 12)
    assert value(frame, "relu", "std") == pytest.approx(math.sqrt(0.625 / 12 - (1.5 / 12) ** 2))
    assert value(frame, "relu", "sparsity") == pytest.approx(8 / 12)
    assert value(frame, "relu", "l2") == pytest.approx(math.sqrt(0.625))
    assert value(frame, "relu", "active_share") == pytest.approx(2 / 3)


def test_channel_statistics_equal_hand_computed_values():
    frame = stats.activation_stats(tiny_model(), [image_2x2()])
    assert value(frame, "relu", "mean", 0) == pytest.approx(0.25)
    assert value(frame, "relu", "std", 0) == pytest.approx(0.25)
    assert value(frame, "relu", "max", 1) == pytest.approx(0.25)
    assert value(frame, "relu", "sparsity", 1) == pytest.approx(0.5)
    assert value(frame, "relu", "max", 2) == 0.0 and value(frame, "relu", "sparsity", 2) == 1.0
    assert value(frame, "conv", "mean", 1) == pytest.approx(-0.125)
    per_channel = frame[(frame["channel"] >= 0) & (frame["layer"] == "relu")]
    assert sorted(per_channel["channel"].unique()) == [0, 1, 2]
    assert set(per_channel["statistic"]) == set(stats.CHANNEL_STATISTICS)
    assert set(frame["model"]) == {"tiny"} and set(frame["training_data"]) == {"hand-made"}
    assert set(frame[frame["layer"] == "relu"]["depth"]) == {1.0}


def test_images_of_different_sizes_pool_as_one_set():
    one_pixel = torch.zeros(3, 1, 1)
    one_pixel[0] = 1.0  # relu: ch0 .5, ch1 .25, ch2 0
    frame = stats.activation_stats(tiny_model(), [image_2x2(), one_pixel])
    assert frame.attrs["images"] == 2
    assert value(frame, "relu", "mean", 0) == pytest.approx((0 + 0.5 + 0 + 0.5 + 0.5) / 5)
    assert value(frame, "relu", "mean") == pytest.approx((1.5 + 0.75) / 15)
    assert value(frame, "relu", "l2") == pytest.approx((math.sqrt(0.625) + math.sqrt(0.3125)) / 2)


def test_top_channels_rank_by_mean():
    frame = stats.activation_stats(tiny_model(), [image_2x2()])
    top = stats.top_channels(frame, k=2, layers={"tiny": "relu"})
    assert top["channel"].tolist() == [0, 1]
    assert top["rank"].tolist() == [1, 2]
    assert top["mean"].tolist() == pytest.approx([0.25, 0.125])
    assert set(top["layer"]) == {"relu"}
    with pytest.raises(ConfigError):
        stats.top_channels(frame, k=0)


def test_layer_table_has_one_row_per_layer_ordered_by_depth():
    table = stats.layer_table(stats.activation_stats(tiny_model(), [image_2x2()]))
    assert table["layer"].tolist() == ["conv", "relu"]
    assert table.loc[1, "mean"] == pytest.approx(0.125)
    assert list(table.columns[4:]) == list(stats.LAYER_STATISTICS)


def test_cancel_keeps_the_images_done():
    calls = []
    frame = stats.activation_stats(tiny_model(), [image_2x2(), image_2x2(), image_2x2()],
                                   on_step=lambda s, t, p: calls.append((s, t)),
                                   should_cancel=lambda: len(calls) >= 1)
    assert frame.attrs == {"images": 1, "cancelled": True}
    assert calls == [(1, 3)]
    assert value(frame, "relu", "mean") == pytest.approx(0.125)


def test_no_image_is_a_clear_error():
    with pytest.raises(ConfigError, match="at least one image"):
        stats.activation_stats(tiny_model(), [])


def test_two_real_models_line_up_by_depth(lite0, cat_small):
    from analysis.zoo import load_model

    twin = load_model("efficientnet_lite0-untrained", device="cpu")
    hooks = count_hooks(lite0.module)
    frame = stats.stats_for_models([lite0, twin], [cat_small])
    assert count_hooks(lite0.module) == hooks
    assert set(frame["training_data"]) == {"ImageNet", "untrained"}
    table = stats.layer_table(frame)
    trained, untrained = (table[table["model"] == m] for m in ("efficientnet_lite0", "efficientnet_lite0-untrained"))
    assert trained["depth"].tolist() == untrained["depth"].tolist() == [i.depth for i in lite0.layers[:-1]]
    assert stats.matched_layer(frame, "efficientnet_lite0", 0.5) == lite0.layer_at_depth(0.5).alias
    head = len(frame[(frame["model"] == "efficientnet_lite0") & (frame["layer"] == "head")
                     & (frame["statistic"] == "mean") & (frame["channel"] >= 0)])
    assert head == 1280


def test_channel_dreams_dream_each_channel_on_the_image(lite0, cat_small):
    from analysis.dream import DreamConfig

    config = DreamConfig(octaves=1, iterations=2, jitter=4)
    results = stats.channel_dreams(lite0, cat_small, "block5", [3, 50], config)
    assert [r.record.objective for r in results] == [
        {"type": "channels", "layer": "_blocks.5", "channels": [3]},
        {"type": "channels", "layer": "_blocks.5", "channels": [50]}]
    assert not torch.equal(results[0].image, results[1].image)
    grid = stats.channel_grid(cat_small, results, [3, 50], "block5", "EfficientNet-Lite0", "cat")
    assert grid.width >= 3 * cat_small.shape[-1] and grid.height > cat_small.shape[-2]
    with pytest.raises(ConfigError):
        stats.channel_dreams(lite0, cat_small, "block5", [], config)
