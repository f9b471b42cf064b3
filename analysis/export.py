"""Exports: grids of results with their labels and footnotes, grid recipes and bundles (ZIP).

Result PNGs and their metadata are written and read by analysis/pngmeta.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image, ImageDraw, ImageFont

from analysis import schemas
from analysis.dream import OnStep, ShouldCancel, library_versions
from analysis.errors import ConfigError, ImageError
from analysis.images import tensor_to_pil
from analysis.labels import sample_images
from analysis.pngmeta import png_bytes
from analysis.recipes import REPLAY_OBSTACLES, Recipe, read_json, replay_obstacle, run_recipe
from analysis.zoo import LoadedModel, load_model

if TYPE_CHECKING:
    import pandas as pd

MIN_TEXT_WIDTH_EMS = 24
"""A grid is at least this many text heights wide, so its title and footnote stay readable."""


# ---------------------------------------------------------------- grids


def _font(size: int) -> "ImageFont.FreeTypeFont | ImageFont.ImageFont":

    try:
        return ImageFont.load_default(size=size)  # scalable (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _split_word(draw: "ImageDraw.ImageDraw", word: str, font: object, width: int) -> list[str]:
    """A word wider than the column, broken after - _ / . where possible, else between letters."""
    if draw.textlength(word, font=font) <= width:
        return [word]
    pieces, current = [], ""
    for token in re.findall(r"[^-_/.]*[-_/.]|[^-_/.]+", word):
        if current and draw.textlength(current + token, font=font) > width:
            pieces.append(current)
            current = ""
        for char in token:  # a token that alone is too wide: break between letters
            if current and draw.textlength(current + char, font=font) > width:
                pieces.append(current)
                current = ""
            current += char
    return pieces + ([current] if current else [])


def _wrap(draw: "ImageDraw.ImageDraw", text: str, font: object, width: int) -> list[str]:
    """Greedy word wrap to a pixel width; explicit newlines are kept; long words are broken."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        words = [piece for word in paragraph.split(" ") for piece in _split_word(draw, word, font, width)]
        line = ""
        for word in words:
            candidate = f"{line} {word}".strip()
            if not line or draw.textlength(candidate, font=font) <= width:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def grid_image(
    cells: list[list[Image.Image | None]],
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    title: str | None = None,
    footnote: str | None = None,
    cell_side: int | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    ink: tuple[int, int, int] = (20, 20, 20),
) -> Image.Image:
    """A labelled grid of pictures (rows x columns) as one RGB image.

    Every cell is fitted into a box of the largest cell's size (or cell_side for the longest
    side) and centred; None leaves a cell empty. Text scales with the cells, so labels stay
    readable at any size; long labels wrap. Row labels go on the left, column labels on top,
    the title above everything and the footnote below.
    """

    if not cells or not any(cells):
        raise ImageError("A grid needs at least one picture.")
    columns = max(len(row) for row in cells)
    pictures = [c for row in cells for c in row if c is not None]
    if not pictures:
        raise ImageError("A grid needs at least one picture.")
    if cell_side is not None and not 16 <= cell_side <= 4096:
        raise ConfigError(f"Cell size {cell_side} px is out of range: choose 16 to 4096 px.")
    if cell_side is not None:
        fits = [cell_side / max(p.size) for p in pictures]
        box_w = max(round(p.width * f) for p, f in zip(pictures, fits))
        box_h = max(round(p.height * f) for p, f in zip(pictures, fits))
    else:
        box_w, box_h = max(p.width for p in pictures), max(p.height for p in pictures)
    gap = max(4, box_w // 40)
    text_px = max(12, min(box_w, box_h) // 12)
    font, title_font = _font(text_px), _font(round(text_px * 1.35))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = round(text_px * 1.25)
    title_h = round(text_px * 1.35 * 1.3)

    col_lines = [_wrap(probe, label, font, box_w) for label in (col_labels or [])]
    header_h = (max((len(lines) for lines in col_lines), default=0) * line_h + gap) if col_labels else 0
    label_w = 0
    if row_labels:
        longest_word = max((probe.textlength(w, font=font) for label in row_labels for w in label.split()), default=0)
        label_w = int(min(max(box_w, 8 * text_px), max(longest_word + 2 * gap, 6 * text_px)))
    margin = 2 * gap
    natural = label_w + columns * box_w + (columns - 1) * gap
    # a narrow grid (one small cell) still gets lines long enough for the title and footnote
    width = margin * 2 + max(natural, MIN_TEXT_WIDTH_EMS * text_px)
    grid_left = margin + (width - 2 * margin - natural) // 2
    title_lines = _wrap(probe, title, title_font, width - 2 * margin) if title else []
    foot_lines = _wrap(probe, footnote, font, width - 2 * margin) if footnote else []
    top = margin + len(title_lines) * title_h + (gap if title_lines else 0)
    grid_top = top + header_h
    grid_h = len(cells) * box_h + (len(cells) - 1) * gap
    height = grid_top + grid_h + (gap + len(foot_lines) * line_h if foot_lines else 0) + margin

    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    y = margin
    for line in title_lines:
        draw.text((margin, y), line, font=title_font, fill=ink)
        y += title_h
    left = grid_left + label_w
    for c, lines in enumerate(col_lines):
        x0 = left + c * (box_w + gap)
        for i, line in enumerate(lines):
            x = x0 + max(0, (box_w - probe.textlength(line, font=font)) / 2)
            draw.text((x, top + i * line_h), line, font=font, fill=ink)
    for r, row in enumerate(cells):
        y0 = grid_top + r * (box_h + gap)
        if row_labels and r < len(row_labels):
            lines = _wrap(probe, row_labels[r], font, label_w - gap)
            ly = y0 + max(0, (box_h - len(lines) * line_h) / 2)
            for i, line in enumerate(lines):
                draw.text((grid_left, ly + i * line_h), line, font=font, fill=ink)
        for c, pic in enumerate(row):
            if pic is None:
                continue
            pic = pic.convert("RGB")
            s = min(box_w / pic.width, box_h / pic.height)
            if abs(s - 1.0) > 1e-6:
                scaled = (max(1, round(pic.width * s)), max(1, round(pic.height * s)))
                pic = pic.resize(scaled, Image.Resampling.LANCZOS)
            x0 = left + c * (box_w + gap)
            canvas.paste(pic, (x0 + (box_w - pic.width) // 2, y0 + (box_h - pic.height) // 2))
    y = grid_top + grid_h + gap
    for line in foot_lines:
        draw.text((margin, y), line, font=font, fill=(90, 90, 90))
        y += line_h
    return canvas


def caption_cell(picture: Image.Image, lines: list[str], ink: tuple[int, int, int] = (20, 20, 20),
                 background: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """A picture with short text lines under it (e.g. its top classes), for a grid cell.

    Exactly len(lines) text rows, each cut to the picture's width with an ellipsis, so cells
    with the same number of lines have the same height and line up in grid_image. Text
    scales with the picture, as grid_image's labels do.
    """

    picture = picture.convert("RGB")
    text_px = max(12, picture.width // 14)
    font, line_h, gap = _font(text_px), round(text_px * 1.25), max(4, picture.width // 40)
    canvas = Image.new("RGB", (picture.width, picture.height + gap + len(lines) * line_h), background)
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        text = str(line)
        while text and draw.textlength(text, font=font) > picture.width:
            text = text[:-2] + "…" if len(text) > 1 else ""
        draw.text((0, picture.height + gap + i * line_h), text, font=font, fill=ink)
    return canvas


# ---------------------------------------------------------------- arranging results into grids

GRID_FIELDS: tuple[str, ...] = ("model", "layer", "image", "objective", "settings", "seed", "title")
"""What a grid's rows or columns can stand for; every label is read from a result's metadata."""
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
    """One result to place in a grid: its picture, the metadata it was made with, a fallback title."""

    image: Image.Image
    metadata: dict = field(default_factory=dict)
    title: str = ""
    input_bytes: bytes | None = field(default=None, repr=False)  # an uploaded start photo, so bundles carry it


def _image_label(metadata: dict) -> str:
    source = (metadata.get("recipe") or {}).get("image") or {}
    kind, name = source.get("kind"), str(source.get("name", ""))
    if kind == "noise":
        return f"noise (seed {source.get('seed', 0)})"
    if kind == "sample":
        return next((s.title for s in sample_images() if s.path.name == name), name)
    return name if kind == "file" else str(metadata.get("image", ""))


def field_labels(items: Sequence[GridItem], name: str) -> list[str]:
    """Each item's label for one of GRID_FIELDS. 'settings' names only the settings that differ."""
    if name == "settings":
        configs = [{**(item.metadata.get("config") or {}), **_motion(item.metadata)} for item in items]
        keys = [k for k in dict.fromkeys(k for c in configs for k in c)
                if k != "seed" and len({json.dumps(c.get(k)) for c in configs}) > 1]
        return [", ".join(_config_phrase(k, c[k]) for k in keys if c.get(k) is not None) for c in configs]
    return [_label(item, name) for item in items]


def _motion(metadata: dict) -> dict:
    """An animation's own settings, so results that differ only in zoom or turn get told apart."""
    motion = metadata.get("animation") or {}
    return {key: motion[key] for key in ("frames", "zoom", "rotation") if key in motion}


def _label(item: GridItem, name: str) -> str:
    meta = item.metadata
    if name == "model":
        return str(meta.get("model", ""))
    if name == "layer":
        return ", ".join(meta.get("layers") or [])
    if name == "image":
        return _image_label(meta)
    if name == "objective":
        return str(meta.get("objective_text", ""))
    if name == "seed":
        return f"seed {meta['seed']}" if "seed" in meta else ""
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


def _weights_phrase(metadata: dict) -> str:
    sha = str(metadata.get("weights_sha256", "?"))
    return f"weights sha256 {sha[:12]}" if re.fullmatch(r"[0-9a-f]{64}", sha) else f"weights {sha}"


def settings_footnote(metadatas: Sequence[dict]) -> str:
    """The settings of a set of results in one paragraph: shared values once, 'varies' otherwise."""
    metas = [m for m in metadatas if m]
    if not metas:
        return ""
    parts = []
    by_model: dict[str, dict] = {}
    for meta in metas:
        if meta.get("model"):
            by_model.setdefault(str(meta["model"]), meta)
    if by_model:
        parts.append("; ".join(f"{name} ({m.get('training_data', '?')}, {_weights_phrase(m)})"
                               for name, m in by_model.items()))
    objectives = {m.get("objective_text") for m in metas}
    if len(objectives) == 1 and None not in objectives:
        parts.append(f"objective: {objectives.pop()}")
    configs = [m.get("config") or {} for m in metas]
    phrases = [_config_phrase(k, configs[0].get(k)) if len({json.dumps(c.get(k)) for c in configs}) == 1
               else f"{k.replace('_', ' ')} varies" for k in dict.fromkeys(k for c in configs for k in c)]
    if phrases:
        parts.append(", ".join(phrases))
    sides = {(m.get("recipe") or {}).get("max_side") for m in metas}
    if len(sides) == 1 and None not in sides:
        parts.append(f"longest side {sides.pop()} px")
    versions = metas[0].get("versions") or {}
    if versions:
        parts.append(", ".join(f"{'Inceptionism Lab' if k == 'inceptionism' else k} {v}" for k, v in versions.items()))
    devices = sorted({str(m["device"]) for m in metas if m.get("device")})
    if devices:
        parts.append("on " + ", ".join(devices))
    return " · ".join(parts)


@dataclass
class Grid:
    """Results laid out as rows x columns with labels, ready to render, export or turn into a recipe."""

    cells: list[list[GridItem | None]]
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    title: str = ""
    footnote: str = ""
    cell_side: int | None = None
    cancelled: bool = False  # a replay stopped early: some cells are empty

    def items(self) -> list[tuple[int, int, GridItem]]:
        return [(r, c, item) for r, row in enumerate(self.cells) for c, item in enumerate(row) if item is not None]

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
            obstacle = replay_obstacle(item.metadata)
            if obstacle is None:
                continue
            reason = REPLAY_OBSTACLES[obstacle]
            names.setdefault(reason, []).append(item.title or f"row {r + 1}, column {c + 1}")
        return [f"{', '.join(who)}: {reason}" for reason, who in names.items()]

    def recipe(self) -> GridRecipe | None:
        """The recipe that replays this grid, or None when a picture cannot be replayed."""
        if not self.items() or self.unreplayable():
            return None
        cells = [[Recipe.from_dict(item.metadata["recipe"]) if item else None for item in row] for row in self.cells]
        return GridRecipe(cells, list(self.row_labels), list(self.col_labels), self.title, self.footnote,
                          self.cell_side)

    def inputs(self) -> dict[str, bytes]:
        """Uploaded start photos by bundle file name ('<sha256 prefix>-<name>')."""
        out = {}
        for _, _, item in self.items():
            source = (item.metadata.get("recipe") or {}).get("image") or {}
            if item.input_bytes and source.get("kind") == "file":
                sha = hashlib.sha256(item.input_bytes).hexdigest()
                out[f"{sha[:12]}-{_slug(Path(str(source.get('name', 'photo'))).name, 80)}"] = item.input_bytes
        return out

    def metadata(self) -> dict:
        """What the grid PNG carries: labels, models, layers, seeds, settings, versions, the recipe."""
        metas = [item.metadata for _, _, item in self.items() if item.metadata]
        recipe = self.recipe()
        return {
            "kind": "grid", "title": self.title, "row_labels": self.row_labels, "col_labels": self.col_labels,
            "footnote": self.footnote,
            "models": list(dict.fromkeys(m["model"] for m in metas if m.get("model"))),
            "layers": list(dict.fromkeys(layer for m in metas for layer in m.get("layers") or [])),
            "seeds": list(dict.fromkeys(m["seed"] for m in metas if "seed" in m)),
            "weights_sha256": {m["model"]: m["weights_sha256"] for m in metas
                               if m.get("model") and m.get("weights_sha256")},
            "configs": list({json.dumps(m["config"], sort_keys=True): m["config"]
                             for m in metas if m.get("config")}.values()),
            "cells": [[_cell_summary(item) if item else None for item in row] for row in self.cells],
            "versions": library_versions(),
            "grid_recipe": recipe.to_dict() if recipe else None,
        }

    def png(self) -> bytes:
        return png_bytes(self.render(), self.metadata())


def _cell_summary(item: GridItem) -> dict:
    meta = item.metadata
    keys = ("model", "layers", "objective_text", "seed", "config", "weights_sha256", "steps")
    return {"title": item.title, **{k: meta[k] for k in keys if k in meta}}


def _slug(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.").lower()[:limit] or "x"


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
                settings_footnote([item.metadata for item in items]) if footnote is None else footnote, cell_side)


# ---------------------------------------------------------------- grid recipes and bundles

GRID_RECIPE_VERSION = schemas.GRID_RECIPE_VERSION
MAX_BUNDLE_BYTES = 1024 * 1024 * 1024
"""Refuse a bundle ZIP larger than this before reading it."""
MAX_BUNDLE_MEMBER = 64 * 1024 * 1024
"""Refuse a bundle member that unpacks to more than this (a ZIP is untrusted input)."""


@dataclass
class GridRecipe:
    """A grid as plain JSON: one dream recipe per cell plus the labels, replayable to the same pixels."""

    cells: list[list[Recipe | None]]
    row_labels: list[str] = field(default_factory=list)
    col_labels: list[str] = field(default_factory=list)
    title: str = ""
    footnote: str = ""
    cell_side: int | None = None

    def recipes(self) -> list[tuple[int, int, Recipe]]:
        return [(r, c, cell) for r, row in enumerate(self.cells) for c, cell in enumerate(row) if cell is not None]

    def model_names(self) -> list[str]:
        return list(dict.fromkeys(cell.model for _, _, cell in self.recipes()))

    def total_steps(self) -> int:
        return sum(cell.config.total_steps for _, _, cell in self.recipes())

    def to_dict(self) -> dict:
        return {"grid_recipe_version": GRID_RECIPE_VERSION, "title": self.title, "row_labels": self.row_labels,
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


def replay_grid(recipe: GridRecipe, load: Callable[[str], LoadedModel] = load_model,
                inputs: Mapping[str, bytes] | None = None, on_step: OnStep | None = None,
                should_cancel: ShouldCancel | None = None) -> Grid:
    """Dream every cell of a grid recipe again and lay the cells out as before.

    On the CPU, with the same library versions, the grid's pixels equal the original's.
    inputs: uploaded start photos by sha256 (a bundle carries them). A cancel keeps the
    finished cells (Grid.cancelled is set).
    """
    inputs = inputs or {}
    for _, _, cell in recipe.recipes():
        if cell.image.kind == "file" and cell.image.data is None and cell.image.sha256 not in inputs:
            raise ImageError(f"The recipe dreams the photo '{cell.image.name}', which was not given: replay the "
                             "bundle ZIP that carries it (inputs/), or give the folder it is in.")
    total, done = recipe.total_steps(), 0
    loaded: dict[str, LoadedModel] = {}
    cells: list[list[GridItem | None]] = [[None] * len(row) for row in recipe.cells]
    cancelled = False
    for r, c, cell in recipe.recipes():
        if should_cancel is not None and should_cancel():
            cancelled = True
            break
        data = (cell.image.data or inputs.get(cell.image.sha256)) if cell.image.kind == "file" else None
        if data is not None:
            cell = replace(cell, image=replace(cell.image, data=data))
        if cell.model not in loaded:
            loaded[cell.model] = load(cell.model)
        step_fn = None if on_step is None else (lambda s, _t, p, offset=done: on_step(offset + s, total, p))
        result = run_recipe(cell, loaded[cell.model], on_step=step_fn, should_cancel=should_cancel)
        if result.cancelled:
            cancelled = True
            break
        done += cell.config.total_steps
        labels = [recipe.row_labels[r] if r < len(recipe.row_labels) else "",
                  recipe.col_labels[c] if c < len(recipe.col_labels) else ""]
        cells[r][c] = GridItem(tensor_to_pil(result.image), result.metadata, " · ".join(x for x in labels if x),
                               input_bytes=data)
    return Grid(cells, recipe.row_labels, recipe.col_labels, recipe.title, recipe.footnote, recipe.cell_side,
                cancelled=cancelled)


def _cell_file(grid: Grid, r: int, c: int) -> str:
    parts = [grid.row_labels[r] if r < len(grid.row_labels) else "",
             grid.col_labels[c] if c < len(grid.col_labels) else ""]
    return "-".join([f"r{r + 1:02d}c{c + 1:02d}"] + [_slug(p) for p in parts if p])


def bundle_zip(grid: Grid, stats: pd.DataFrame | None = None,
               attachments: dict[str, tuple[str | bytes, str]] | None = None) -> bytes:
    """A ZIP to share: the grid, every picture, the statistics CSV, the recipe JSON, the start photos.

    attachments: more files, name -> (content, what it is: a line for the README), such as the
    animation recipe beside an animation's frames.
    """
    attachments = attachments or {}
    recipe = grid.recipe()
    inputs = grid.inputs()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("grid.png", grid.png(), compress_type=zipfile.ZIP_STORED)
        for r, c, item in grid.items():
            archive.writestr(f"images/{_cell_file(grid, r, c)}.png", png_bytes(item.image, item.metadata),
                             compress_type=zipfile.ZIP_STORED)
        if stats is not None and len(stats):
            archive.writestr("stats.csv", stats.to_csv(index=False))
        if recipe is not None:
            archive.writestr("recipe.json", recipe.to_json())
        for name, data in inputs.items():
            archive.writestr(f"inputs/{name}", data, compress_type=zipfile.ZIP_STORED)
        for name, (content, _) in attachments.items():
            archive.writestr(name, content)
        readme = _readme(grid, recipe is not None, stats is not None and len(stats) > 0, bool(inputs))
        readme += "".join(f"\n{name}\n    {about}\n" for name, (_, about) in attachments.items())
        archive.writestr("README.txt", readme)
    return buffer.getvalue()


def _readme(grid: Grid, replayable: bool, has_stats: bool, has_inputs: bool) -> str:
    rows, cols = grid.shape
    lines = [f"Inceptionism Lab bundle: {grid.title or 'grid'}", "",
             f"grid.png      the grid, {rows} x {cols}; its PNG text chunk 'inceptionism' holds the settings",
             "images/       every picture at full size, each PNG with the metadata of its own run"]
    if has_stats:
        lines.append("stats.csv     the statistics behind the pictures")
    if has_inputs:
        lines.append("inputs/       the photos the dreams started from")
    if replayable:
        lines += ["recipe.json   the grid recipe: models, objectives, settings, seeds and start images", "",
                  "Replay it (identical pixels on the CPU with the same library versions):",
                  "    python -m analysis grid --recipe THIS.zip --out grid.png --device cpu",
                  "or upload this ZIP (or recipe.json) under 'Replay a grid recipe' on the dashboard's Export page."]
    else:
        lines += ["", "There is no recipe.json: these pictures cannot be replayed exactly:"]
        lines += [f"  - {reason}" for reason in grid.unreplayable()]
    return "\n".join(lines) + "\n"


def _read_member(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as member:
        data = member.read(MAX_BUNDLE_MEMBER + 1)
    if len(data) > MAX_BUNDLE_MEMBER:
        raise ConfigError(f"The bundle's {name} is larger than {MAX_BUNDLE_MEMBER // 2**20} MB.")
    return data


def load_grid_recipe(data: bytes) -> tuple[GridRecipe, dict[str, bytes]]:
    """A grid recipe from recipe JSON or a bundle ZIP, with the start photos the ZIP carries (by sha256)."""
    if not data.startswith(b"PK\x03\x04"):
        return GridRecipe.from_json(data), {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            if "recipe.json" not in names:
                raise ConfigError("This bundle has no recipe.json (some pictures were not made from a recipe), "
                                  "so it cannot be replayed.")
            recipe = GridRecipe.from_json(_read_member(archive, "recipe.json"))
            photos = [_read_member(archive, n) for n in names if n.startswith("inputs/") and not n.endswith("/")]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
        raise ConfigError(f"The bundle is not a readable ZIP file ({type(err).__name__}).") from None
    return recipe, {hashlib.sha256(photo).hexdigest(): photo for photo in photos}


# ---------------------------------------------------------------- charts as a page


def figures_html(title: str, figures: Sequence[object], notes: Sequence[str] = ()) -> str:
    """Plotly figures and a few lines of text as one self-contained HTML page (plotly.js inlined once),
    so exported charts stay interactive offline."""
    import html

    import plotly.io as pio

    parts = [pio.to_html(fig, full_html=False, include_plotlyjs=i == 0) for i, fig in enumerate(figures)]
    items = "".join(f"<li>{html.escape(line)}</li>" for line in notes)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
            f"<body style='font-family:sans-serif;max-width:1100px;margin:auto'><h1>{html.escape(title)}</h1>"
            f"{f'<ul>{items}</ul>' if items else ''}{''.join(parts)}</body></html>")
