"""Bundles: a grid replayed from its recipe, and a grid shared as one ZIP (and read back).

A bundle ZIP holds the grid PNG, every picture with its own run's metadata, the statistics,
the grid recipe and the start photos, so whoever receives it can replay it to the same pixels.
A ZIP is untrusted input: sizes are checked before anything is unpacked.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.errors import ConfigError, ImageError
from analysis.grids import Grid, GridItem, GridRecipe
from analysis.images import tensor_to_pil
from analysis.pngmeta import png_bytes
from analysis.progress import OnStep, Relay, ShouldCancel
from analysis.recipes import run_recipe
from analysis.zoo import LoadedModel, load_model

if TYPE_CHECKING:
    import pandas as pd


def slug(text: str, limit: int = 40, fallback: str = "x") -> str:
    """A file name made of the text's letters, digits and dots, lower case: safe on every system and in a ZIP."""
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.").lower()[:limit] or fallback


MAX_BUNDLE_BYTES = 1024 * 1024 * 1024
"""Refuse a bundle ZIP larger than this before reading it."""
MAX_BUNDLE_MEMBER = 64 * 1024 * 1024
"""Refuse a bundle member that unpacks to more than this (a ZIP is untrusted input)."""


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
    relay, done = Relay(on_step, recipe.total_steps()), 0
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
        result = run_recipe(cell, loaded[cell.model], on_step=relay.part(done, cell.config.total_steps),
                            should_cancel=should_cancel)
        if result.cancelled:
            cancelled = True
            break
        done += cell.config.total_steps
        labels = [recipe.row_labels[r] if r < len(recipe.row_labels) else "",
                  recipe.col_labels[c] if c < len(recipe.col_labels) else ""]
        cells[r][c] = GridItem(tensor_to_pil(result.image), result.record, " · ".join(x for x in labels if x),
                               input_bytes=data)
    return Grid(cells, recipe.row_labels, recipe.col_labels, recipe.title, recipe.footnote, recipe.cell_side,
                cancelled=cancelled)


def _cell_file(grid: Grid, r: int, c: int) -> str:
    parts = [grid.row_labels[r] if r < len(grid.row_labels) else "",
             grid.col_labels[c] if c < len(grid.col_labels) else ""]
    return "-".join([f"r{r + 1:02d}c{c + 1:02d}"] + [slug(p) for p in parts if p])



def _inputs(grid: Grid) -> dict[str, bytes]:
    """Uploaded start photos by bundle file name ('<sha256 prefix>-<name>')."""
    out = {}
    for _, _, item in grid.items():
        source = (item.record.recipe or {}).get("image") or {}
        if item.input_bytes and source.get("kind") == "file":
            sha = hashlib.sha256(item.input_bytes).hexdigest()
            out[f"{sha[:12]}-{slug(Path(str(source.get('name', 'photo'))).name, 80)}"] = item.input_bytes
    return out


def bundle_zip(grid: Grid, stats: pd.DataFrame | None = None,
               attachments: dict[str, tuple[str | bytes, str]] | None = None) -> bytes:
    """A ZIP to share: the grid, every picture, the statistics CSV, the recipe JSON, the start photos.

    attachments: more files, name -> (content, what it is: a line for the README), such as the
    animation recipe beside an animation's frames.
    """
    attachments = attachments or {}
    recipe = grid.recipe()
    inputs = _inputs(grid)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("grid.png", grid.png(), compress_type=zipfile.ZIP_STORED)
        for r, c, item in grid.items():
            archive.writestr(f"images/{_cell_file(grid, r, c)}.png", png_bytes(item.image, item.record),
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
                carried = [n for n in names if n.endswith(".recipe.json") and "/" not in n]
                if carried:  # an animation's bundle: its frames replay as the animation, not as a grid
                    raise ConfigError(f"This bundle has no grid recipe.json: it carries {', '.join(carried)}, which "
                                      f"replays the whole animation ('python -m analysis zoom --recipe {carried[0]}').")
                raise ConfigError("This bundle has no recipe.json (some pictures were not made from a recipe), "
                                  "so it cannot be replayed.")
            recipe = GridRecipe.from_json(_read_member(archive, "recipe.json"))
            photos = [_read_member(archive, n) for n in names if n.startswith("inputs/") and not n.endswith("/")]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as err:
        raise ConfigError(f"The bundle is not a readable ZIP file ({type(err).__name__}).") from None
    return recipe, {hashlib.sha256(photo).hexdigest(): photo for photo in photos}
