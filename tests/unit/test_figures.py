"""Figure builders are pure functions of a tidy frame: assert on the data they plot."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis import figures, wording
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


def test_models_and_numbers_read_the_same_in_every_text():
    assert wording.model_label("resnet50", "ImageNet") == "resnet50 (ImageNet)"
    assert wording.model_label("ResNet-50 (Places365)", "Places365") == "ResNet-50 (Places365)"
    assert wording.model_label("efficientnet_lite0-untrained", "untrained") == "efficientnet_lite0-untrained"
    assert [wording.times(r) for r in (47.4, 2.345, 0.25)] == ["47x", "2.3x", "0.25x"]
    assert [wording.percent(s) for s in (0.031, 0.00052)] == ["3.1%", "0.052%"]


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


def test_trace_figure_plots_every_step_and_marks_each_new_octave():
    fig = figures.trace_figure([1.0, 2.0, 3.0, 2.5, 4.0, 5.0], steps_per_octave=2, title="L2")
    assert list(fig.data[0].x) == [1, 2, 3, 4, 5, 6] and list(fig.data[0].y) == [1.0, 2.0, 3.0, 2.5, 4.0, 5.0]
    assert [shape.x0 for shape in fig.layout.shapes] == [2.5, 4.5]  # between the octaves' last and first steps
    assert fig.layout.title.text == "L2"
    assert not figures.trace_figure([1.0, 2.0], steps_per_octave=0).layout.shapes


def test_topk_frame_is_one_row_per_class_and_empty_without_classes():
    frame = figures.topk_frame([(281, "tabby", 0.5), (285, "Egyptian cat", 0.25)])
    assert frame.to_dict("records") == [{"class": "tabby", "index": 281, "probability": 0.5},
                                        {"class": "Egyptian cat", "index": 285, "probability": 0.25}]
    assert list(figures.topk_frame(None).columns) == ["class", "index", "probability"]
    assert figures.topk_frame(None).empty


def test_layers_frame_and_channels_figure_read_the_layer_table():
    from analysis.zoo import LayerInfo

    layers = [LayerInfo("features.1", "block1", (16, 112, 112), 0.1),
              LayerInfo("features.5", "block5", (96, 14, 14), 0.6), LayerInfo("classifier", "logits", (1000,), 1.0)]
    frame = figures.layers_frame(layers)
    assert frame["layer"].tolist() == ["block1", "block5", "logits"]
    assert frame["spatial (224 px in)"].tolist() == ["112x112", "14x14", "-"]
    assert frame["shape"].tolist() == ["16x112x112", "96x14x14", "1000"]
    fig = figures.channels_figure(frame, "lite0")
    channels, sides = fig.data
    assert list(channels.y) == [16, 96, 1000] and list(channels.x) == [0.1, 0.6, 1.0]
    assert list(sides.y) == [112, 14, None]  # class scores have no spatial side
    assert list(fig.layout.yaxis.tickvals) == [16, 32, 64, 128, 256, 512, 1024]  # powers of two over the range
    assert list(fig.layout.yaxis2.tickvals) == [8, 16, 32, 64, 128]


@pytest.mark.parametrize(("most", "dtick"), [(5, 1), (118, None)])
def test_emergent_counts_axis_keeps_whole_numbers_readable(most: int, dtick: int | None) -> None:
    """A tick per dream while they fit; a 1458-dream study gets plotly's own spacing, still whole numbers."""
    counts = pd.DataFrame({"model": ["A", "A", "B"], "control": [False, False, True],
                           "class_name": ["pillow", "peacock", "velvet"], "dreams": [most, 2, 1]})
    fig = figures.bias_emergent(counts)
    assert sorted(x for trace in fig.data for x in trace.x) == sorted([most, 2, 1])
    axis = fig.layout.xaxis2  # the bottom panel carries the shared axis
    assert axis.dtick == dtick and axis.tickformat == "d"
