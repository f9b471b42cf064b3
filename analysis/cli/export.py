"""Export commands: `zoom` (dream animations as MP4 or GIF) and `grid` (labelled grids, bundles, replays)."""

from __future__ import annotations

import argparse
import glob
import signal
import threading
from pathlib import Path

from PIL import Image

from analysis import schemas, zoo
from analysis.animation import VIDEO_FORMATS, AnimationRecipe, ZoomSettings, run_animation_recipe, write_video
from analysis.cli import print_json
from analysis.cli.core import (
    Progress,
    add_config_args,
    add_device_args,
    add_model_args,
    add_start_args,
    build_objective,
    check_outputs,
    config_from_args,
    image_source,
    load_from_args,
    read_input,
)
from analysis.errors import ConfigError, ImageError
from analysis.export import (
    GRID_FIELDS,
    MAX_BUNDLE_BYTES,
    ONE_ROW,
    Grid,
    GridItem,
    GridRecipe,
    arrange,
    bundle_zip,
    load_grid_recipe,
    replay_grid,
)
from analysis.images import file_sha256, read_verified, to_rgb
from analysis.pngmeta import read_png_metadata, save_png, write_file
from analysis.recipes import ImageSource, Recipe


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("zoom", help="dream animation: each frame dreamed from the last, zoomed in (MP4 or GIF)")
    add_model_args(p)
    add_start_args(p, default_size=256)
    p.add_argument("--frames", type=int, default=24, help="number of frames (default 24)")
    p.add_argument("--zoom", type=float, default=0.05, help="zoom per frame (default 0.05 = 5%% closer)")
    p.add_argument("--rotate", type=float, default=0.0, help="degrees per frame, counter-clockwise (default 0)")
    p.add_argument("--fps", type=int, default=12, help="frames per second of the video (default 12)")
    p.add_argument("--out", required=True, type=Path, help="output video: .mp4 or .gif")
    p.add_argument("--frames-dir", type=Path, help="also save every frame as a PNG here")
    add_config_args(p)
    p.set_defaults(preset="quick")  # a frame takes octaves x iterations steps: keep each frame light
    p.add_argument("--recipe-out", type=Path, help="write the animation recipe JSON here")
    p.add_argument("--recipe", type=Path,
                   help="replay an animation recipe JSON (other dream and zoom settings are ignored)")
    p.add_argument("--json", action="store_true", help="print the animation's metadata as JSON")
    p.set_defaults(handler=cmd_zoom)

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


class _StopOnInterrupt:
    """Ctrl-C asks the loop to stop (finished frames are kept); a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.previous = None

    def __enter__(self) -> _StopOnInterrupt:
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, _signum: int, _frame: object) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()

    def __exit__(self, *_exc: object) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def __call__(self) -> bool:
        return self.event.is_set()


def _zoom_recipe(args: argparse.Namespace) -> tuple[AnimationRecipe, zoo.LoadedModel, Path | None]:
    """The animation recipe to run (read from --recipe, or made from the other arguments), its model and image file."""
    if args.recipe:
        recipe = AnimationRecipe.from_json(read_input(args.recipe, "recipe", schemas.MAX_JSON_BYTES))
        model = load_from_args(args, recipe.dream.model, recipe.dream.precision)
        return recipe, model, Path(args.image) if args.image else None
    if not args.image and not args.noise:
        raise ConfigError("Give --image PATH (or a sample name) or --noise.")
    config = config_from_args(args)
    settings = ZoomSettings(args.frames, args.zoom, args.rotate, args.fps).validate()
    if args.noise:
        source, file = ImageSource("noise", size=(args.size, args.size), seed=config.seed), None
    else:
        source, file = image_source(args.image)
    model = load_from_args(args)
    objective = build_objective(args, model).bind(model)
    return AnimationRecipe(Recipe(model.name, objective.to_dict(), config, source, args.size, model.precision),
                           settings), model, file


def cmd_zoom(args: argparse.Namespace) -> None:
    if args.out.suffix.lower() not in VIDEO_FORMATS:
        raise ConfigError(f"--out must end in {' or '.join(VIDEO_FORMATS)} (got '{args.out.name}').")
    check_outputs(args, ("out", "recipe_out"), ("frames_dir",))
    recipe, model, file = _zoom_recipe(args)
    settings = recipe.zoom
    progress = Progress(f"{settings.frames} frames")
    try:
        with _StopOnInterrupt() as stop:
            animation = run_animation_recipe(recipe, model, file, progress, stop)
    finally:
        progress.close()
    if not animation.frames:
        raise ConfigError("Stopped before the first frame finished: nothing was written.")
    write_video(args.out, animation.frames, settings.fps)
    if args.recipe_out:
        write_file(args.recipe_out, recipe.finished(animation).to_json())
    if args.frames_dir:
        for i, frame in enumerate(animation.frames):
            save_png(args.frames_dir / f"frame-{i:04d}.png", frame, {**animation.metadata, "frame": i})
    if args.json:
        return print_json(animation.metadata)
    height, width = animation.frames[0].shape[-2:]
    stopped = f" (stopped after {len(animation.frames)} of {settings.frames} frames)" if animation.cancelled else ""
    print(f"{args.out}: {len(animation.frames)} frames of {width}x{height} px at {settings.fps} fps, "
          f"{animation.metadata['objective_text']} on {model.name}, {animation.metadata['seconds']:.1f} s{stopped}")


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
        metadata = read_png_metadata(path)
        with Image.open(path) as picture:
            items.append(GridItem(to_rgb(picture), metadata, title=path.stem))
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
