"""This session's results, for the Export page, and the grid + bundle downloads every page offers.

Any page that shows a result registers it once, when its job finishes::

    from dashboard import results
    results.add_result("dream", "Chelsea the cat · block8", result.image, result.record)

The record should carry the run's recipe (the library's dream functions attach it) so the
Export page's grids replay to the same pixels; pass `table` for statistics behind the
picture and `input_bytes` for an uploaded start photo, so bundles can carry it. A page
that shows several results as a grid offers the same downloads with `export_buttons(grid)`.
"""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st
import torch
from PIL import Image

from analysis.bundles import bundle_zip
from analysis.grids import Grid, GridItem
from analysis.images import tensor_to_pil
from analysis.pngmeta import png_bytes
from analysis.provenance import RunRecord
from analysis.recipes import REPLAY_OBSTACLES, replay_obstacle

RESULTS_KEY = "results.registry"
MAX_RESULTS = 100
"""The newest results kept per browser session; older ones are dropped to bound memory."""

_IDS = itertools.count(1)


@dataclass
class Result:
    id: int
    kind: str  # the page that made it: "dream", "layers", "compare", "bias", "animation", ...
    title: str
    image: Image.Image
    record: RunRecord
    table: pd.DataFrame | None = None
    input_bytes: bytes | None = field(default=None, repr=False)
    created: float = field(default_factory=time.time)

    def grid_item(self) -> GridItem:
        return GridItem(self.image, self.record, self.title, self.input_bytes)


def add_result(kind: str, title: str, image: torch.Tensor | Image.Image, record: RunRecord,
               table: pd.DataFrame | None = None, input_bytes: bytes | None = None) -> Result:
    """Keep a result for this session (newest last); returns it."""
    picture = tensor_to_pil(image) if isinstance(image, torch.Tensor) else image.convert("RGB")
    result = Result(next(_IDS), kind, title, picture, record, table, input_bytes)
    registry = st.session_state.setdefault(RESULTS_KEY, [])
    registry.append(result)
    del registry[:-MAX_RESULTS]
    return result


def list_results(kind: str | None = None) -> list[Result]:
    """This session's results, oldest first; only one kind when given."""
    return [r for r in st.session_state.get(RESULTS_KEY, []) if kind is None or r.kind == kind]


def result_downloads(result: Result, key: str) -> None:
    """One result on its own: its PNG (settings and, for a single dream, its recipe in the metadata)
    and, when the recipe gives these very pixels, the recipe JSON; both made only when clicked."""
    stem = f"{result.kind}-{result.id}"
    obstacle = replay_obstacle(result.record)
    with st.popover("Save", icon=":material/download:", width="stretch"):
        st.download_button("Picture PNG", lambda: png_bytes(result.image, result.record), file_name=f"{stem}.png",
                           mime="image/png", key=f"{key}.png", on_click="ignore", icon=":material/image:",
                           width="stretch",
                           help="Its settings are in the PNG metadata" + (
                               "; the Dream page's replay box and `python -m analysis dream --recipe` take it "
                               "as it is." if obstacle is None else "."))
        if obstacle is None:
            st.download_button("Recipe JSON", lambda: json.dumps(result.record.recipe, indent=2),
                               file_name=f"{stem}-recipe.json", mime="application/json", key=f"{key}.recipe",
                               on_click="ignore", icon=":material/replay:", width="stretch",
                               help="Model, objective, settings, seed and start image: replays to these pixels.")
        else:
            st.caption(no_recipe_note(obstacle))


def no_recipe_note(obstacle: str) -> str:
    return f"No recipe replays this picture: {REPLAY_OBSTACLES[obstacle]}."


def clear_results() -> None:
    st.session_state[RESULTS_KEY] = []


def stats_table(chosen: list[Result]) -> pd.DataFrame | None:
    """The statistics behind the chosen results, one table with a 'result' column (None when none)."""
    tables = [r.table.assign(result=r.title) for r in chosen if r.table is not None and len(r.table)]
    return pd.concat(tables, ignore_index=True) if tables else None


def export_buttons(grid: Grid, key: str, stats: pd.DataFrame | None = None, file_stem: str = "grid",
                   note: str | None = None, attachments: dict[str, tuple[str | bytes, str]] | None = None) -> None:
    """Grid PNG and ZIP bundle downloads; both files are made only when clicked.

    `note` replaces the line on whether the bundle replays, where the page offers its own
    recipe beside the grid (an animation's frames replay from the animation recipe), which
    `attachments` puts into the bundle too (see analysis.bundles.bundle_zip).
    """
    left, right, note_column = st.columns([1, 1, 2])
    left.download_button("Grid PNG", grid.png, file_name=f"{file_stem}.png", mime="image/png", key=f"{key}.png",
                         on_click="ignore", icon=":material/grid_view:",
                         help="The labelled grid; its PNG metadata holds the settings, seeds and the recipe.")
    right.download_button("Bundle ZIP", lambda: bundle_zip(grid, stats, attachments), file_name=f"{file_stem}.zip",
                          mime="application/zip", key=f"{key}.zip", on_click="ignore",
                          icon=":material/folder_zip:",
                          help="Every picture, the grid, the statistics CSV and the recipe JSON.")
    if note:
        note_column.caption(note)
        return
    reasons = grid.unreplayable()
    if reasons:
        more = f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""
        note_column.caption(f":material/info: The bundle has no recipe, so it cannot be replayed: "
                            f"{'; '.join(reasons[:3])}{more}.")
    else:
        note_column.caption(":material/replay: The bundle's recipe replays this grid; on the CPU, to identical "
                            "pixels.")
