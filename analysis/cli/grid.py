"""The `grid` command: a labelled grid from result PNGs, or the replay of a grid recipe or bundle."""

from __future__ import annotations

import argparse
import glob
from pathlib import Path

from PIL import Image

from analysis import zoo
from analysis.bundles import MAX_BUNDLE_BYTES, bundle_zip, load_grid_recipe, replay_grid
from analysis.cli.arguments import Progress, add_device_args, check_outputs, print_json, read_input
from analysis.errors import ConfigError, ImageError
from analysis.grids import GRID_FIELDS, ONE_ROW, Grid, GridItem, GridRecipe, arrange
from analysis.images import file_sha256, read_verified, to_rgb
from analysis.pngmeta import read_png_record, write_file


def register(commands: argparse._SubParsersAction) -> None:
    fields = ", ".join(GRID_FIELDS)
    p = commands.add_parser("grid", help="a labelled grid from result PNGs, or replay a grid recipe or bundle")
    p.add_argument("pngs", nargs="*", metavar="PNG", help="result PNGs (their metadata gives the labels)")
    p.add_argument("--recipe", type=Path, help="replay a grid recipe JSON or a bundle ZIP instead")
    p.add_argument("--out", required=True, type=Path, help="output grid PNG")
    p.add_argument("--bundle", type=Path, help="also write a ZIP bundle here (images, grid, recipe, stats)")
    p.add_argument("--stats", type=Path, help="a statistics CSV to put in the bundle")
    p.add_argument("--rows", choices=(*GRID_FIELDS, ONE_ROW),
                   help=f"what the rows stand for ({fields}, or none for one row; default: what differs)")
    p.add_argument("--cols", choices=GRID_FIELDS, help="what the columns stand for")
    p.add_argument("--title", help="title above the grid (default: from the labels)")
    p.add_argument("--cell", type=int, help="cell size in px, longest side (default: the largest picture)")
    p.add_argument("--inputs", type=Path, help="folder with the photos a recipe JSON dreams (default: beside it)")
    add_device_args(p, note=" (a recipe replays to identical pixels on the cpu, at the precision it was dreamed in)")
    p.add_argument("--json", action="store_true", help="print the grid's metadata as JSON")
    p.set_defaults(handler=cmd_grid)


def _inputs_beside(recipe: GridRecipe, folder: Path) -> dict[str, bytes]:
    """The photos a recipe dreams, looked up by name in folder and folder/inputs, checked by sha256.

    Each candidate's size is checked and its sha256 computed while streaming: only the file that is
    the recipe's photo is read into memory.
    """
    found = {}
    for _, _, cell in recipe.recipes():
        if cell.image.kind != "file" or cell.image.sha256 in found:
            continue
        candidates = [folder / cell.image.name, folder / "inputs" / cell.image.name,
                      *sorted((folder / "inputs").glob(f"*-{glob.escape(cell.image.name)}"))]
        for path in candidates:
            if path.is_file() and file_sha256(path) == cell.image.sha256:  # a file over the size limit: one line
                found[cell.image.sha256] = read_verified(path, cell.image.sha256, cell.image.name)
                break
    return found


def _items_from_pngs(paths: list[str]) -> list[GridItem]:
    items = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise ImageError(f"No image file at {path}.")
        record = read_png_record(path)
        with Image.open(path) as picture:
            items.append(GridItem(to_rgb(picture), record, title=path.stem))
    return items


def cmd_grid(args: argparse.Namespace) -> None:
    if args.recipe and args.pngs:
        raise ConfigError("Give result PNGs or --recipe, not both.")
    check_outputs(args, ("out", "bundle"))
    if args.recipe:
        recipe, inputs = load_grid_recipe(read_input(args.recipe, "recipe", MAX_BUNDLE_BYTES))
        inputs = {**_inputs_beside(recipe, args.inputs or args.recipe.parent), **inputs}
        device = zoo.pick_device(args.device)
        progress = Progress(f"replaying {len(recipe.recipes())} dreams")
        try:
            grid = replay_grid(recipe, lambda name: zoo.load_model(name, device=device, precision=args.precision),
                               inputs, on_step=progress)
        finally:
            progress.close()
    elif args.pngs:
        grid = arrange(_items_from_pngs(args.pngs), args.rows, args.cols, args.title, cell_side=args.cell)
    else:
        raise ConfigError("Give result PNGs to lay out, or --recipe FILE to replay.")
    _write(grid, args)


def _write(grid: Grid, args: argparse.Namespace) -> None:
    stats = None
    if args.stats:
        import pandas as pd

        if not args.stats.is_file():
            raise ConfigError(f"No statistics file at {args.stats}.")
        try:
            stats = pd.read_csv(args.stats)
        except (ValueError, UnicodeDecodeError) as err:
            raise ConfigError(f"{args.stats} is not a readable CSV ({type(err).__name__}).") from None
    write_file(args.out, grid.png())
    if args.bundle:
        write_file(args.bundle, bundle_zip(grid, stats))
    if args.json:
        return print_json(grid.metadata())
    rows, cols = grid.shape
    with Image.open(args.out) as picture:
        size = picture.size
    notes = [f"{args.out}: {rows} x {cols} grid, {size[0]}x{size[1]} px"]
    if args.bundle:
        reasons = grid.unreplayable()
        notes.append(f"bundle {args.bundle}" + (f" (not replayable: {'; '.join(reasons)})" if reasons else ""))
    print(", ".join(notes))
