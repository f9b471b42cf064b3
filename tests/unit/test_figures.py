"""Figure builders are pure functions of a tidy frame: assert on the data they plot."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import figures
from analysis.stats import COLUMNS


def tidy() -> pd.DataFrame:
    """Two models; A has layers low (2 channels, depth 0.1) and high (3 channels, depth 0.9), B has one layer."""
    rows = [
        ("A", "ImageNet", "high", 0.9, -1, "mean", 3.0),
        ("A", "ImageNet", "low", 0.1, -1, "mean", 1.0),
        ("B", "Places365", "mid", 0.5, -1, "mean", 2.0),
        ("A", "ImageNet", "low", 0.1, 0, "mean", 0.5),
        ("A", "ImageNet", "low", 0.1, 1, "mean", -2.0),
        ("A", "ImageNet", "high", 0.9, 0, "mean", 4.0),
        ("A", "ImageNet", "high", 0.9, 1, "mean", 1.0),
        ("A", "ImageNet", "high", 0.9, 2, "mean", 2.0),
        ("B", "Places365", "mid", 0.5, 0, "mean", 7.0),
        ("A", "ImageNet", "low", 0.1, 0, "max", 9.0),
    ]
    return pd.DataFrame(rows, columns=list(COLUMNS))


def test_depth_lines_draw_one_line_per_model_sorted_by_depth():
    fig = figures.depth_lines(tidy(), "mean")
    assert [t.name for t in fig.data] == ["A (ImageNet)", "B (Places365)"]
    a = fig.data[0]
    assert list(a.x) == [0.1, 0.9] and list(a.y) == [1.0, 3.0] and list(a.text) == ["low", "high"]
    assert list(fig.data[1].y) == [2.0]
    assert fig.layout.yaxis.type == "linear"
    assert figures.depth_lines(tidy(), "mean", log_y=True).layout.yaxis.type == "log"


def test_training_data_already_in_the_name_is_not_repeated():
    frame = tidy().assign(model="resnet50_places365", training_data="Places365")
    assert figures.depth_lines(frame, "mean").data[0].name == "resnet50_places365"


def test_channel_distribution_has_one_trace_per_model_and_layer_with_channel_values():
    violin = figures.channel_distribution(tidy(), "mean", "violin")
    assert [t.type for t in violin.data] == ["violin"] * 3
    by_name = {t.name: t for t in violin.data}
    assert list(by_name["A (ImageNet) · low"].y) == [0.5, -2.0]
    assert list(by_name["A (ImageNet) · low"].customdata) == [0, 1]
    assert list(by_name["B (Places365) · mid"].y) == [7.0]
    assert [t.yaxis for t in violin.data] == ["y", "y2", "y3"]  # own scale each: an untrained net's values are tiny
    histogram = figures.channel_distribution(tidy(), "mean", "histogram")
    assert [t.type for t in histogram.data] == ["histogram"] * 3
    assert list(histogram.data[0].x) == [0.5, -2.0]
    assert [a.text for a in histogram.layout.annotations] == [t.name for t in histogram.data]
    with pytest.raises(ValueError):
        figures.channel_distribution(tidy(), "mean", "pie")


def test_channel_heatmap_is_channels_by_layers_in_depth_order_with_gaps():
    fig = figures.channel_heatmap(tidy(), "A", "mean")
    heat = fig.data[0]
    assert list(heat.x) == ["low", "high"]
    assert list(heat.y) == [0, 1, 2]
    assert [list(row) for row in heat.z] == [[0.5, 4.0], [-2.0, 1.0], [None, 2.0]]


def test_channel_heatmap_scales_each_layer_to_its_largest_magnitude():
    heat = figures.channel_heatmap(tidy(), "A", "mean", per_layer_scale=True).data[0]
    z = [list(row) for row in heat.z]
    assert z[0] == pytest.approx([0.25, 1.0]) and z[1] == pytest.approx([-1.0, 0.25])
    assert z[2][0] is None and math.isclose(z[2][1], 0.5)


def test_channel_heatmap_can_keep_the_first_channels_only():
    heat = figures.channel_heatmap(tidy(), "A", "mean", per_layer_scale=True, max_channels=2).data[0]
    assert list(heat.y) == [0, 1]
    assert [v for row in heat.z for v in row] == pytest.approx([0.25, 1.0, -1.0, 0.25])  # scaled over all channels
