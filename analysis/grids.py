"""Grids of results: which results go in which row and column, their labels and the footnote.

A Grid holds GridItems (a picture and the record of the run that made it), laid out by what
differs between them (arrange); its GridRecipe is the same grid as plain JSON, one dream recipe
per cell. Pictures are drawn by analysis.drawing; replaying a recipe and bundling a grid into a
ZIP are analysis.bundles, which builds on this module (never the other way round).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from PIL import Image

from analysis import schemas
from analysis.drawing import grid_image
from analysis.errors import ConfigError
from analysis.labels import sample_images
from analysis.pngmeta import png_bytes
from analysis.provenance import RunRecord, library_versions
from analysis.recipes import REPLAY_OBSTACLES, Recipe, read_json, replay_obstacle

GRID_FIELDS: tuple[str, ...] = ("model", "layer", "image", "objective", "settings", "seed", "title")
"""What a grid's rows or columns can stand for; every label is read from a result's run record."""
ONE_ROW = "none"
"""rows_by for a grid of one row."""

_PLURALS = {"model": "models", "layer": "layers", "image": "images", "objective": "objectives",
            "settings": "settings", "seed": "seeds", "title": "results"}

_CONFIG_PHRASES: dict[str, Callable[[object], str]] = {
    "octaves": lambda v: f"{v} octave{'s' * (v != 1)}",
    "octave_scale": lambda v: f"octave scale {v:g}",
    "iterations": lambda v: f"{v} step{'s' * (v != 1)} per octave",
    "step_size": lambda v: f"step {v * 255:.3g}/255",
    "jitter": lambda v: f"jitter {v} px",
    "normalization": lambda v: f"{v} normalisation",
    "clip": lambda v: "clipped" if v else "not clipped",
    "seed": lambda v: f"seed {v}",
    "tile_size": lambda v: f"tiles of {v} px" if v else "no tiles",
    "frames": lambda v: f"{v} frames",
    "zoom": lambda v: f"zoom {v:g}",
    "rotation": lambda v: f"turn {v:g}°",
}


def _config_phrase(key: str, value: object) -> str:
    phrase = _CONFIG_PHRASES.get(key)
    return phrase(value) if phrase is not None and value is not None else f"{key} {value}"


@dataclass
class GridItem:
    """One result to place in a grid: its picture, the record of the run that made it, a fallback title."""

    image: Image.Image
    record: RunRecord = field(default_factory=RunRecord)
    title: str = ""
    input_bytes: bytes | None = field(default=None, repr=False)  # an uploaded start photo, so bundles carry it


def _image_label(record: RunRecord) -> str:
    source = (record.recipe or {}).get("image") or {}
    kind, name = source.get("kind"), str(source.get("name", ""))
    if kind == "noise":
        return f"noise (seed {source.get('seed', 0)})"
    if kind == "sample":
        return next((s.title for s in sample_images() if s.path.name == name), name)
    return name if kind == "file" else str(record.extras.get("image", ""))


def field_labels(items: Sequence[GridItem], name: str) -> list[str]:
    """Each item's label for one of GRID_FIELDS. 'settings' names only the settings that differ."""
    if name == "settings":
        configs = [{**(item.record.config or {}), **_motion(item.record)} for item in items]
        keys = [k for k in dict.fromkeys(k for c in configs for k in c)
                if k != "seed" and len({json.dumps(c.get(k)) for c in configs}) > 1]
        return [", ".join(_config_phrase(k, c[k]) for k in keys if c.get(k) is not None) for c in configs]
    return [_label(item, name) for item in items]


def _motion(record: RunRecord) -> dict:
    """An animation's own settings, so results that differ only in zoom or turn get told apart."""
    motion = record.extras.get("animation") or {}
    return {key: motion[key] for key in ("frames", "zoom", "rotation") if key in motion}


def _label(item: GridItem, name: str) -> str:
    record = item.record
    if name == "model":
        return record.model or ""
    if name == "layer":
        return ", ".join(record.layers)
    if name == "image":
        return _image_label(record)
    if name == "objective":
        return record.objective_text or ""
    if name == "seed":
        return f"seed {record.seed}" if record.seed is not None else ""
    return item.title


def varying_fields(items: Sequence[GridItem]) -> list[str]:
    """The fields whose labels differ between items, in GRID_FIELDS order.

    A field that splits the items exactly as an earlier one does (the objective when only the
    layer changes) is left out; 'title' only counts when nothing else differs.
    """
    partitions: list[tuple[int, ...]] = []
    out = []
    for name in GRID_FIELDS[:-1]:
        labels = field_labels(items, name)
        partition = tuple(labels.index(label) for label in labels)
        if len(set(labels)) > 1 and partition not in partitions:
            partitions.append(partition)
            out.append(name)
    return out


def _weights_phrase(record: RunRecord) -> str:
    sha = record.weights_sha256 or "?"
    return f"weights sha256 {sha[:12]}" if re.fullmatch(r"[0-9a-f]{64}", sha) else f"weights {sha}"


def settings_footnote(records: Sequence[RunRecord]) -> str:
    """The settings of a set of results in one paragraph: shared values once, 'varies' otherwise."""
    metas = [m for m in records if m != RunRecord()]
    if not metas:
        return ""
    parts = []
    by_model: dict[str, RunRecord] = {}
    for meta in metas:
        if meta.model:
            by_model.setdefault(meta.model, meta)
    if by_model:
        parts.append("; ".join(f"{name} ({m.training_data or '?'}, {_weights_phrase(m)})"
                               for name, m in by_model.items()))
    objectives = {m.objective_text for m in metas}
    if len(objectives) == 1 and None not in objectives:
        parts.append(f"objective: {objectives.pop()}")
    configs = [m.config or {} for m in metas]
    phrases = [_config_phrase(k, configs[0].get(k)) if len({json.dumps(c.get(k)) for c in configs}) == 1
               else f"{k.replace('_', ' ')} varies" for k in dict.fromkeys(k for c in configs for k in c)]
    if phrases:
        parts.append(", ".join(phrases))
    sides = {(m.recipe or {}).get("max_side") for m in metas}
    if len(sides) == 1 and None not in sides:
        parts.append(f"longest side {sides.pop()} px")
    versions = metas[0].versions
    if versions:
        parts.append(", ".join(f"{'Inceptionism Lab' if k == 'inceptionism' else k} {v}" for k, v in versions.items()))
    devices = sorted({m.device for m in metas if m.device})
    if devices:
        parts.append("on " + ", ".join(devices))
    return " · ".join(parts)


Cell = TypeVar("Cell")


@dataclass
class Layout(Generic[Cell]):
    """Rows x columns of cells (None: empty) with their labels: what a Grid and its GridRecipe share."""

    cells: list[list[Cell | None]]
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    title: str = ""
    footnote: str = ""
    cell_side: int | None = None

    def filled(self) -> list[tuple[int, int, Cell]]:
        """(row, column, cell) of every cell that is not empty, row by row."""
        return [(r, c, cell) for r, row in enumerate(self.cells) for c, cell in enumerate(row) if cell is not None]


@dataclass
class Grid(Layout[GridItem]):
    """Results laid out as rows x columns with labels, ready to render, export or turn into a recipe."""

    cancelled: bool = False  # a replay stopped early: some cells are empty

    def items(self) -> list[tuple[int, int, GridItem]]:
        return self.filled()

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.cells), max((len(row) for row in self.cells), default=0)

    def render(self) -> Image.Image:
        return grid_image([[item.image if item else None for item in row] for row in self.cells],
                          self.row_labels or None, self.col_labels or None, self.title or None,
                          self.footnote or None, cell_side=self.cell_side)

    def unreplayable(self) -> list[str]:
        """Why the pictures that cannot be replayed cannot (no recipe, cancelled part-way, ...), one line per reason."""
        names: dict[str, list[str]] = {}
        for r, c, item in self.items():
            obstacle = replay_obstacle(item.record)
            if obstacle is None:
                continue
            reason = REPLAY_OBSTACLES[obstacle]
            names.setdefault(reason, []).append(item.title or f"row {r + 1}, column {c + 1}")
        return [f"{', '.join(who)}: {reason}" for reason, who in names.items()]

    def recipe(self) -> GridRecipe | None:
        """The recipe that replays this grid, or None when a picture cannot be replayed."""
        if not self.items() or self.unreplayable():
            return None
        cells = [[Recipe.from_dict(item.record.recipe) if item else None for item in row] for row in self.cells]
        return GridRecipe(cells, list(self.row_labels), list(self.col_labels), self.title, self.footnote,
                          self.cell_side)

    def metadata(self) -> dict:
        """What the grid PNG carries: labels, models, layers, seeds, settings, versions, the recipe."""
        metas = [item.record for _, _, item in self.items()]
        recipe = self.recipe()
        return {
            "kind": "grid", "title": self.title, "row_labels": self.row_labels, "col_labels": self.col_labels,
            "footnote": self.footnote,
            "models": list(dict.fromkeys(m.model for m in metas if m.model)),
            "layers": list(dict.fromkeys(layer for m in metas for layer in m.layers)),
            "seeds": list(dict.fromkeys(m.seed for m in metas if m.seed is not None)),
            "weights_sha256": {m.model: m.weights_sha256 for m in metas if m.model and m.weights_sha256},
            "configs": list({json.dumps(m.config, sort_keys=True): m.config for m in metas if m.config}.values()),
            "cells": [[_cell_summary(item) if item else None for item in row] for row in self.cells],
            "versions": library_versions(),
            "grid_recipe": recipe.to_dict() if recipe else None,
        }

    def png(self) -> bytes:
        return png_bytes(self.render(), self.metadata())


def _cell_summary(item: GridItem) -> dict:
    meta = item.record.to_dict()
    keys = ("model", "layers", "objective_text", "seed", "config", "weights_sha256", "steps")
    return {"title": item.title, **{k: meta[k] for k in keys if k in meta}}


def arrange(items: Sequence[GridItem], rows_by: str | None = None, cols_by: str | None = None,
            title: str | None = None, footnote: str | None = None, cell_side: int | None = None) -> Grid:
    """Lay results out as rows x columns by what differs between them.

    rows_by / cols_by: one of GRID_FIELDS, or None to choose: the first two fields that differ
    (in GRID_FIELDS order: models x layers, layers x images, ...); rows_by=ONE_ROW puts every
    result in one row. Other fields that differ are added to the column labels, so two
    different results never share a cell. A title and a footnote with the settings are
    written unless given.
    """
    if not items:
        raise ConfigError("Choose at least one result for the grid.")
    for name, allowed in ((rows_by, (*GRID_FIELDS, ONE_ROW)), (cols_by, GRID_FIELDS)):
        if name is not None and name not in allowed:
            raise ConfigError(f"Unknown grid field '{name}': choose from {', '.join(allowed)}.")
    if rows_by is not None and rows_by == cols_by:
        raise ConfigError("Rows and columns must stand for different things.")
    varying = varying_fields(items)
    if rows_by is None:
        others = [f for f in varying if f != cols_by]
        rows_by = others[0] if others and (cols_by is not None or len(varying) >= 2) else None
    elif rows_by == ONE_ROW:
        rows_by = None
    if cols_by is None:
        cols_by = next((f for f in varying if f != rows_by), None if rows_by else "title")
    col_fields = [f for f in [cols_by, *varying] if f and f != rows_by]
    col_fields = list(dict.fromkeys(col_fields))
    labels = {name: field_labels(items, name) for name in {rows_by, *col_fields, "title"} - {None}}

    def keys(fields: list[str]) -> list[str]:
        return [" · ".join(labels[f][i] for f in fields if labels[f][i]) for i in range(len(items))]

    row_keys = keys([rows_by]) if rows_by else [""] * len(items)
    if col_fields:
        col_keys = keys(col_fields)
        if len(set(zip(row_keys, col_keys))) < len(items) and "title" not in col_fields:
            col_keys = keys(col_fields + ["title"])
        counts: dict[tuple[str, str], int] = {}
        for i, pair in enumerate(zip(row_keys, col_keys)):
            counts[pair] = counts.get(pair, 0) + 1
            if counts[pair] > 1:
                col_keys[i] = f"{col_keys[i]} ({counts[pair]})"
    else:  # only the rows differ: each row's results side by side, unlabelled
        position: dict[str, int] = {}
        col_keys = []
        for key in row_keys:
            position[key] = position.get(key, 0) + 1
            col_keys.append(str(position[key]))
    rows, cols = list(dict.fromkeys(row_keys)), list(dict.fromkeys(col_keys))
    cells: list[list[GridItem | None]] = [[None] * len(cols) for _ in rows]
    for item, row_key, col_key in zip(items, row_keys, col_keys):
        cells[rows.index(row_key)][cols.index(col_key)] = item
    if title is None:
        axes = " x ".join(_PLURALS[f] for f in (rows_by, cols_by) if f).capitalize()
        shared = [field_labels(items, f)[0] for f in ("model", "image") if f not in varying]
        title = " · ".join(part for part in [axes, *shared] if part)
    return Grid(cells, rows if rows_by else [], cols if col_fields else [], title,
                settings_footnote([item.record for item in items]) if footnote is None else footnote, cell_side)


@dataclass
class GridRecipe(Layout[Recipe]):
    """A grid as plain JSON: one dream recipe per cell plus the labels, replayable to the same pixels."""

    def recipes(self) -> list[tuple[int, int, Recipe]]:
        return self.filled()

    def model_names(self) -> list[str]:
        return list(dict.fromkeys(cell.model for _, _, cell in self.recipes()))

    def total_steps(self) -> int:
        return sum(cell.config.total_steps for _, _, cell in self.recipes())

    def to_dict(self) -> dict:
        return {"grid_recipe_version": schemas.GRID_RECIPE_VERSION, "title": self.title, "row_labels": self.row_labels,
                "col_labels": self.col_labels, "footnote": self.footnote, "cell_side": self.cell_side,
                "cells": [[cell.to_dict() if cell else None for cell in row] for row in self.cells]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: object) -> GridRecipe:
        """A grid recipe; a single dream recipe is accepted as a grid of one."""
        if isinstance(data, dict) and "model" in data and "cells" not in data:
            return cls([[Recipe.from_dict(data)]])
        if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
            raise ConfigError("This is not a grid recipe (no 'cells').")
        grid = schemas.validate(schemas.GridRecipeFile, data, "grid recipe")
        cells = [[Recipe.from_schema(cell, f"grid recipe's cells[{r}][{c}]") if cell is not None else None
                  for c, cell in enumerate(row)] for r, row in enumerate(grid.cells)]
        return cls(cells, list(grid.row_labels), list(grid.col_labels), grid.title or "", grid.footnote or "",
                   grid.cell_side)

    @classmethod
    def from_json(cls, text: str | bytes) -> GridRecipe:
        return cls.from_dict(read_json(text))
