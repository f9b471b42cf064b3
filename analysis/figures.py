"""Plotly figure builders: pure functions of tidy DataFrames (DataFrame -> go.Figure), and the
small tables the pages show beside them (plain data -> DataFrame).

No state, no I/O, no streamlit: the dashboard renders the figures, tests assert on their
data. Each builder documents the columns it reads. Plotly 7 dropped the figure_factory
helpers, so everything here is plain go.*.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from PIL import Image
from plotly.subplots import make_subplots

from analysis.labels import TopK
from analysis.wording import model_label, times

if TYPE_CHECKING:
    from analysis.zoo import LayerInfo

_MARGIN = {"l": 10, "r": 10, "t": 50, "b": 10}


# ---------------------------------------------------------------- dreams and layers (the Dream and Models pages)


def trace_figure(trace: list[float], steps_per_octave: int, title: str = "Objective per step") -> go.Figure:
    """The objective at every step, with the octave boundaries marked."""
    steps = list(range(1, len(trace) + 1))
    fig = go.Figure(go.Scatter(x=steps, y=trace, mode="lines+markers", name="objective",
                               marker={"size": 4}, hovertemplate="step %{x}<br>objective %{y:.4g}<extra></extra>"))
    if steps_per_octave:
        for boundary in range(steps_per_octave, len(trace), steps_per_octave):
            fig.add_vline(x=boundary + 0.5, line_dash="dot", line_color="grey", opacity=0.6)
    fig.update_layout(title=title, xaxis_title="step (dotted lines: next octave, larger image)",
                      yaxis_title="objective", height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      showlegend=False)
    return fig


def topk_frame(top: TopK | None) -> pd.DataFrame:
    rows = [{"class": name, "index": index, "probability": prob} for index, name, prob in top or []]
    return pd.DataFrame(rows, columns=["class", "index", "probability"])


def layers_frame(layers: Sequence[LayerInfo]) -> pd.DataFrame:
    rows = []
    for info in layers:
        channels = info.shape[0]
        spatial = "x".join(str(s) for s in info.shape[1:]) or "-"
        rows.append({"layer": info.alias, "module": info.name, "channels": channels, "spatial (224 px in)": spatial,
                     "shape": "x".join(str(s) for s in info.shape), "depth": info.depth})
    return pd.DataFrame(rows)


def channels_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Channels (bars, log scale) and spatial side (line) against relative depth."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=frame["depth"], y=frame["channels"], mode="lines+markers", name="channels",
                             line={"color": "#ff4b4b"},
                             text=frame["layer"], customdata=frame[["shape"]],
                             hovertemplate="%{text}<br>depth %{x:.2f}<br>%{customdata[0]}<extra></extra>"),
                  secondary_y=False)
    sides = [int(s.split("x")[0]) if s != "-" else None for s in frame["spatial (224 px in)"]]
    fig.add_trace(go.Scatter(x=frame["depth"], y=sides, mode="lines+markers", name="height/width (px)",
                             line={"dash": "dot", "color": "#4b9bff"}, text=frame["layer"],
                             hovertemplate="%{text}<br>%{y} px<extra></extra>"), secondary_y=True)
    fig.update_yaxes(title_text="channels", type="log", secondary_y=False, **_power_ticks(frame["channels"]))
    fig.update_yaxes(title_text="feature map side (px)", type="log", secondary_y=True, showgrid=False,
                     **_power_ticks([s for s in sides if s]))
    fig.update_layout(title=title, xaxis_title="relative depth (0 = first layer, 1 = class scores)", height=420,
                      margin=_MARGIN, legend={"orientation": "h", "y": -0.2})
    return fig


def _power_ticks(values: Iterable[float | None]) -> dict:
    """Tick marks at powers of two across the values' range, labelled as plain numbers."""
    values = [v for v in values if v]
    if not values:
        return {}
    low, high = min(values), max(values)
    ticks = [2 ** k for k in range(0, 16) if low / 2 < 2 ** k < high * 2]
    return {"tickvals": ticks, "ticktext": [str(t) for t in ticks]}


# ---------------------------------------------------------------- activation statistics (analysis.stats)
# These read the tidy frame of analysis.stats: model, training_data, layer, depth, channel, statistic,
# value; channel is -1 on layer-level rows.


def depth_lines(frame: pd.DataFrame, statistic: str, log_y: bool = False) -> go.Figure:
    """One layer-level statistic against relative depth, a line per model: how two networks differ."""
    rows = frame[(frame["channel"] == -1) & (frame["statistic"] == statistic)].sort_values("depth", kind="stable")
    fig = go.Figure()
    for (model, data), group in rows.groupby(["model", "training_data"], sort=False):
        fig.add_trace(go.Scatter(
            x=group["depth"].tolist(), y=group["value"].tolist(), text=group["layer"].tolist(),
            mode="lines+markers", name=model_label(model, data),
            hovertemplate="%{text}<br>depth %{x:.2f}<br>" + statistic + " %{y:.4g}<extra>%{fullData.name}</extra>"))
    fig.update_layout(title=f"{statistic} per layer", xaxis_title="relative depth (0 = first layer, 1 = class scores)",
                      yaxis_title=statistic, yaxis_type="log" if log_y else "linear", height=360, margin=_MARGIN,
                      legend={"orientation": "h", "y": -0.25})
    if log_y:
        fig.update_yaxes(dtick="D2")  # 1, 2, 5 per decade: every digit crowds the axis
    return fig


def channel_distribution(frame: pd.DataFrame, statistic: str = "mean", kind: str = "violin") -> go.Figure:
    """The per-channel values of a statistic, one violin (or histogram) per model and layer in the frame.

    Each gets its own panel and axis: an untrained network's values can be a million times smaller
    than a trained one's, and would vanish on a shared scale. Filter the frame to the layers to
    show first (e.g. the layer of each model at one depth).
    """
    if kind not in ("violin", "histogram"):
        raise ValueError(f"kind must be 'violin' or 'histogram', not {kind!r}")
    rows = frame[(frame["channel"] != -1) & (frame["statistic"] == statistic)]
    groups = list(rows.groupby(["model", "training_data", "layer"], sort=False))
    names = [f"{model_label(model, data)} · {layer}" for (model, data, layer), _ in groups]
    fig = make_subplots(rows=1, cols=max(1, len(groups)), subplot_titles=names)
    for column, (name, (_, group)) in enumerate(zip(names, groups), start=1):
        values, channels = group["value"].tolist(), group["channel"].tolist()
        if kind == "violin":
            trace = go.Violin(y=values, customdata=channels, name=name, box_visible=True, meanline_visible=True,
                              points="all", pointpos=0, jitter=0.4, marker={"size": 3},
                              hovertemplate="channel %{customdata}<br>" + statistic + " %{y:.4g}<extra></extra>")
        else:
            trace = go.Histogram(x=values, name=name, nbinsx=40,
                                 hovertemplate=statistic + " %{x}<br>%{y} channels<extra></extra>")
        fig.add_trace(trace, row=1, col=column)
        fig.update_xaxes(showticklabels=kind == "histogram", title_text=f"channel {statistic}" if kind == "histogram"
                         else None, row=1, col=column)
        fig.update_yaxes(title_text=("channels" if kind == "histogram" else f"channel {statistic}") if column == 1
                         else None, row=1, col=column)
    fig.update_layout(title=f"Channel {statistic}: one value per channel", height=400, margin=_MARGIN,
                      showlegend=False)
    return fig


def channel_heatmap(frame: pd.DataFrame, model: str, statistic: str = "mean", per_layer_scale: bool = False,
                    max_channels: int | None = None) -> go.Figure:
    """Channel x layer heatmap of one model's per-channel statistic; layers left to right by depth.

    Layers have different channel counts: cells past a layer's last channel are empty.
    per_layer_scale divides each layer by its largest |value| (over all its channels), so shallow and
    deep layers share one colour scale. max_channels keeps the first channels only, so narrow layers
    are not squeezed flat by a 1000-channel one.
    """
    rows = frame[(frame["model"] == model) & (frame["channel"] != -1) & (frame["statistic"] == statistic)]
    layers = rows[["layer", "depth"]].drop_duplicates().sort_values("depth", kind="stable")["layer"].tolist()
    grid = rows.pivot_table(index="channel", columns="layer", values="value", sort=True)
    grid = grid.reindex(columns=layers)
    if per_layer_scale:
        grid = grid / grid.abs().max().replace(0, 1)
    if max_channels is not None:
        grid = grid[grid.index < max_channels]
    z = [[None if pd.isna(v) else float(v) for v in row] for row in grid.to_numpy()]
    fig = go.Figure(go.Heatmap(
        z=z, x=layers, y=grid.index.tolist(), colorscale="Viridis", hoverongaps=False,
        colorbar={"title": f"{statistic} / layer max" if per_layer_scale else statistic},
        hovertemplate="%{x}<br>channel %{y}<br>%{z:.4g}<extra></extra>"))
    fig.update_layout(title=f"{model}: channel {statistic} by layer", xaxis_title="layer (low to high)",
                      yaxis_title="channel", height=460, margin=_MARGIN)
    return fig


# ---------------------------------------------------------------- dataset bias (analysis.bias)
# These read the frames of analysis.bias: summary() (model, training_data, control, depth, layer, group,
# share_original, share_dream, ratio), group_shares() (model, control, group, share_original, share_dream)
# and emergent_counts() (model, control, class_name, dreams). Untrained twins (control) are dashed or grey.


def _bias_name(model: str, training_data: str, control: bool) -> str:
    return model_label(model, training_data) + (" · control" if control else "")


def bias_depth(summary: pd.DataFrame) -> go.Figure:
    """A group's share of the judge's probability in the dreams, against the dreamed layer's depth.

    The originals' share is the baseline (dotted); each point is labelled with dream/original.
    """
    group = summary["group"].iloc[0] if len(summary) else ""
    rows = summary.sort_values("depth", kind="stable")
    baseline = rows.groupby("depth", sort=True)["share_original"].mean()
    fig = go.Figure(go.Scatter(
        x=baseline.index.tolist(), y=(baseline * 100).tolist(), name="originals (baseline)", mode="lines+markers",
        line={"dash": "dot", "color": "grey"}, marker={"size": 5, "color": "grey"},
        hovertemplate="originals: %{y:.2g}%<extra></extra>"))
    for (model, data, control), part in rows.groupby(["model", "training_data", "control"], sort=False):
        fig.add_trace(go.Scatter(
            x=part["depth"].tolist(), y=(part["share_dream"] * 100).tolist(), name=_bias_name(model, data, control),
            mode="lines+markers+text", text=[times(r) for r in part["ratio"]], textposition="top center",
            customdata=list(zip(part["layer"], part["ratio"])), line={"dash": "dash" if control else "solid"},
            hovertemplate="%{customdata[0]} · depth %{x:g}<br>" + group
                          + " %{y:.2g}% of the judge's probability<br>%{customdata[1]:.2f}x the originals"
                          "<extra>%{fullData.name}</extra>"))
    fig.update_layout(title=f"'{group}' in the dreams vs layer depth (labels: dreams / originals)",
                      xaxis_title="relative depth of the dreamed layer (0 = first, 1 = last)",
                      yaxis_title=f"{group}: share of the judge's probability (%)", yaxis_rangemode="tozero",
                      height=420, margin=_MARGIN, legend={"orientation": "h", "y": -0.2})
    return fig


def bias_groups(shares: pd.DataFrame, depth: float) -> go.Figure:
    """Every class group's share in the originals and in each model's dreams at one depth."""
    groups = list(dict.fromkeys(shares["group"]))
    baseline = shares.groupby("group", sort=False)["share_original"].mean().reindex(groups)
    fig = go.Figure(go.Bar(y=groups, x=(baseline * 100).tolist(), name="originals (baseline)", orientation="h",
                           marker={"color": "grey"}, hovertemplate="%{y}: %{x:.2g}%<extra>originals</extra>"))
    for (model, control), part in shares.groupby(["model", "control"], sort=False):
        part = part.set_index("group").reindex(groups)
        fig.add_trace(go.Bar(y=groups, x=(part["share_dream"] * 100).tolist(),
                             name=model + (" · control" if control else ""), orientation="h",
                             marker={"pattern": {"shape": "/"}} if control else None,
                             hovertemplate="%{y}: %{x:.2g}%<extra>%{fullData.name}</extra>"))
    fig.update_layout(title=f"What the dreams are judged to be at depth {depth:g}", barmode="group",
                      xaxis_title="share of the judge's probability (%)", yaxis={"autorange": "reversed"},
                      height=max(320, 60 + 26 * len(groups) * max(1, len(fig.data)) // 2), margin=_MARGIN,
                      legend={"orientation": "h", "y": -0.15})
    return fig


def bias_emergent(counts: pd.DataFrame) -> go.Figure:
    """The classes that most often emerged in each model's dreams: one panel of bars per model."""
    panels = list(counts.groupby(["model", "control"], sort=False))
    heights = [max(len(part), 1) for _, part in panels] or [1]
    fig = make_subplots(rows=len(heights), cols=1, shared_xaxes=True, vertical_spacing=0.12 / max(len(heights), 1),
                        row_heights=heights, subplot_titles=[m + (" · control" if c else "") for (m, c), _ in panels])
    for row, ((model, control), part) in enumerate(panels, start=1):
        part = part.sort_values("dreams", ascending=True, kind="stable")
        fig.add_trace(go.Bar(y=part["class_name"].tolist(), x=part["dreams"].tolist(), orientation="h",
                             name=model + (" · control" if control else ""),
                             marker={"pattern": {"shape": "/"}} if control else None,
                             hovertemplate="%{y}: emerged in %{x} dream(s)<extra>%{fullData.name}</extra>"),
                      row=row, col=1)
    most = int(counts["dreams"].max()) if len(counts) else 0
    fig.update_xaxes(title_text="dreams in which the class emerged", tickformat="d", row=len(heights), col=1,
                     dtick=1 if most <= 12 else None)  # whole numbers; a tick per dream only while they fit
    fig.update_layout(title="Classes that emerged most often<br><sup>largest gain in the judge's probability</sup>",
                      showlegend=False, height=max(300, 110 + 24 * sum(heights) + 40 * len(heights)),
                      margin={**_MARGIN, "t": 75})  # room for the title's second line
    return fig


def study_ratio_depth(intervals: pd.DataFrame) -> go.Figure:
    """A group's share ratio (dreams / originals) against depth, per model, with its bootstrap interval.

    Reads analysis.studies.stats.ratio_intervals: model, training_data, control, depth, layer, group,
    over, units, ratio, low, high. The line at 1 is "no effect"; untrained twins are dashed.
    """
    group = intervals["group"].iloc[0] if len(intervals) else ""
    over = intervals["over"].iloc[0] if len(intervals) else "images"
    fig = go.Figure()
    rows = intervals.sort_values("depth", kind="stable")
    for (model, data, control), part in rows.groupby(["model", "training_data", "control"], sort=False):
        fig.add_trace(go.Scatter(
            x=part["depth"].tolist(), y=part["ratio"].tolist(), name=_bias_name(model, data, control),
            mode="lines+markers", line={"dash": "dash" if control else "solid"},
            error_y={"type": "data", "symmetric": False, "array": (part["high"] - part["ratio"]).tolist(),
                     "arrayminus": (part["ratio"] - part["low"]).tolist()},
            customdata=list(zip(part["layer"], part["low"], part["high"], part["units"])),
            hovertemplate="%{customdata[0]} · depth %{x:g}<br>%{y:.3g}x the originals' " + group
                          + " share<br>95% CI %{customdata[1]:.3g}x to %{customdata[2]:.3g}x (%{customdata[3]} "
                          + over + ")<extra>%{fullData.name}</extra>"))
    fig.add_hline(y=1, line={"dash": "dot", "color": "grey"}, annotation_text="no effect")
    fig.update_layout(title=f"'{group}': share in the dreams / share in the originals, with 95% intervals "
                            f"(bootstrap over {over})",
                      xaxis_title="relative depth of the dreamed layer (0 = first, 1 = last)",
                      yaxis_title="dreams / originals", height=420, margin=_MARGIN,
                      legend={"orientation": "h", "y": -0.2})
    return fig


# ---------------------------------------------------------------- feature visualisation (analysis.featviz)


def activation_map(frame: pd.DataFrame, title: str, image: Image.Image | None = None) -> go.Figure:
    """Where one channel fires over an image: a heatmap of its feature map, laid over the picture.

    Reads analysis.featviz.map_frame's frame: row, col, activation (one row per map cell).
    The cells are stretched to the picture's pixels, so a hot spot sits on what caused it.
    """
    import base64
    import io

    grid = frame.pivot(index="row", columns="col", values="activation").sort_index().sort_index(axis=1)
    rows, cols = grid.shape
    width, height = image.size if image is not None else (cols, rows)
    xs = [(c + 0.5) * width / cols - 0.5 for c in range(cols)]
    ys = [(r + 0.5) * height / rows - 0.5 for r in range(rows)]
    fig = go.Figure()
    if image is not None:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        fig.add_trace(go.Image(source="data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(),
                               hoverinfo="skip"))
    fig.add_trace(go.Heatmap(
        z=grid.to_numpy().tolist(), x=xs, y=ys, colorscale="Inferno", opacity=0.5 if image is not None else 1.0,
        colorbar={"title": {"text": "activation", "side": "top"}, "orientation": "h", "y": -0.02, "yanchor": "top",
                  "thickness": 10},
        hovertemplate="map cell (%{customdata[0]}, %{customdata[1]})<br>activation %{z:.3g}<extra></extra>",
        customdata=[[[r, c] for c in range(cols)] for r in range(rows)]))
    fig.update_xaxes(visible=False, range=[-0.5, width - 0.5])
    fig.update_yaxes(visible=False, range=[height - 0.5, -0.5], scaleanchor="x")
    fig.update_layout(title=title, height=380, margin={"l": 10, "r": 10, "t": 40, "b": 70})
    return fig


# ---------------------------------------------------------------- unit atlas (analysis.atlas)


def units_per_concept(counts: pd.DataFrame) -> go.Figure:
    """Units per concept group, one bar series per model and layer: the Network Dissection comparison.

    Reads the frame of atlas.units_per_group: model, layer, group, units, share, of."""
    groups = list(dict.fromkeys(counts["group"]))
    fig = go.Figure()
    for (model, layer), part in counts.groupby(["model", "layer"], sort=False):
        part = part.set_index("group").reindex(groups)
        fig.add_trace(go.Bar(x=groups, y=part["units"].tolist(), name=f"{model} · {layer}",
                             customdata=(part["share"] * 100).round(1).tolist(),
                             hovertemplate="%{x}: %{y} units (%{customdata}%)<extra>%{fullData.name}</extra>"))
    fig.update_layout(title="Units per concept", barmode="group", yaxis_title="units", height=380, margin=_MARGIN,
                      legend={"orientation": "h", "y": -0.35})
    return fig


def unit_histogram(histogram: pd.DataFrame, title: str) -> go.Figure:
    """A unit's activation distribution over the collection (atlas.Atlas.histogram: left, right, views)."""
    centres = ((histogram["left"] + histogram["right"]) / 2).tolist()
    widths = (histogram["right"] - histogram["left"]).tolist()
    fig = go.Figure(go.Bar(x=centres, y=histogram["views"].tolist(), width=widths,
                           hovertemplate="%{x:.3g}: %{y} views<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="activation", yaxis_title="views", bargap=0, height=300, margin=_MARGIN)
    return fig


# ---------------------------------------------------------------- charts as a page


def figures_html(title: str, figures: Sequence[object], notes: Sequence[str] = ()) -> str:
    """Plotly figures and a few lines of text as one self-contained HTML page (plotly.js inlined once),
    so exported charts stay interactive offline."""
    parts = [pio.to_html(fig, full_html=False, include_plotlyjs=i == 0) for i, fig in enumerate(figures)]
    items = "".join(f"<li>{html.escape(line)}</li>" for line in notes)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;max-width:1100px;margin:auto'><h1>{html.escape(title)}</h1>"
            f"{f'<ul>{items}</ul>' if items else ''}{''.join(parts)}</body></html>")
