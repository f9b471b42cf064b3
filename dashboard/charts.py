"""Plotly figures and tables for the pages: pure functions of plain data.

(Candidates for analysis.figures once that module exists.)
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from analysis.zoo import LayerInfo


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


def topk_frame(top: list[tuple[int, str, float]] | None) -> pd.DataFrame:
    rows = [{"class": name, "index": index, "probability": prob} for index, name, prob in top or []]
    return pd.DataFrame(rows, columns=["class", "index", "probability"])


def layers_frame(layers: tuple[LayerInfo, ...] | list[LayerInfo]) -> pd.DataFrame:
    rows = []
    for info in layers:
        channels = info.shape[0]
        spatial = "x".join(str(s) for s in info.shape[1:]) or "-"
        rows.append({"layer": info.alias, "module": info.name, "channels": channels, "spatial (224 px in)": spatial,
                     "shape": "x".join(str(s) for s in info.shape), "depth": info.depth})
    return pd.DataFrame(rows)


def channels_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Channels (bars, log scale) and spatial side (line) against relative depth."""
    from plotly.subplots import make_subplots

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
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, legend={"orientation": "h", "y": -0.2})
    return fig


def _power_ticks(values) -> dict:
    """Tick marks at powers of two across the values' range, labelled as plain numbers."""
    values = [v for v in values if v]
    if not values:
        return {}
    low, high = min(values), max(values)
    ticks = [2 ** k for k in range(0, 16) if low / 2 < 2 ** k < high * 2]
    return {"tickvals": ticks, "ticktext": [str(t) for t in ticks]}
