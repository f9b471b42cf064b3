"""The `zoom` command: a dream animation (MP4 or GIF), each frame dreamed from the last, zoomed in."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from analysis import schemas, zoo
from analysis.animation import VIDEO_FORMATS, AnimationRecipe, ZoomSettings, run_animation_recipe, write_video
from analysis.cli.arguments import (
    Progress,
    StopOnInterrupt,
    add_config_args,
    add_model_args,
    add_start_args,
    build_objective,
    check_outputs,
    config_from_args,
    image_source,
    load_from_args,
    print_json,
    read_input,
)
from analysis.errors import ConfigError
from analysis.pngmeta import save_png, write_file
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


def _zoom_recipe(args: argparse.Namespace) -> tuple[AnimationRecipe, zoo.LoadedModel]:
    """The animation recipe to run (read from --recipe, or made from the other arguments) and its model."""
    if args.recipe:
        recipe = AnimationRecipe.from_json(read_input(args.recipe, "recipe", schemas.MAX_JSON_BYTES))
        model = load_from_args(args, recipe.dream.model, recipe.dream.precision)
        return replace(recipe, dream=replace(recipe.dream, image=recipe.dream.image.at(args.image))), model
    if not args.image and not args.noise:
        raise ConfigError("Give --image PATH (or a sample name) or --noise.")
    config = config_from_args(args)
    settings = ZoomSettings(args.frames, args.zoom, args.rotate, args.fps).validate()
    if args.noise:
        source = ImageSource("noise", size=(args.size, args.size), seed=config.seed)
    else:
        source = image_source(args.image)
    model = load_from_args(args)
    objective = build_objective(args, model).bind(model)
    return AnimationRecipe(Recipe(model.name, objective.to_dict(), config, source, args.size, model.precision),
                           settings), model


def cmd_zoom(args: argparse.Namespace) -> None:
    if args.out.suffix.lower() not in VIDEO_FORMATS:
        raise ConfigError(f"--out must end in {' or '.join(VIDEO_FORMATS)} (got '{args.out.name}').")
    check_outputs(args, ("out", "recipe_out"), ("frames_dir",))
    recipe, model = _zoom_recipe(args)
    settings = recipe.zoom
    progress = Progress(f"{settings.frames} frames")
    try:
        with StopOnInterrupt() as stop:
            animation = run_animation_recipe(recipe, model, progress, stop)
    finally:
        progress.close()
    if not animation.frames:
        raise ConfigError("Stopped before the first frame finished: nothing was written.")
    write_video(args.out, animation.frames, settings.fps)
    if args.recipe_out:
        write_file(args.recipe_out, recipe.finished(animation).to_json())
    if args.frames_dir:
        for i, frame in enumerate(animation.frames):
            save_png(args.frames_dir / f"frame-{i:04d}.png", frame, animation.record.with_extras(frame=i))
    if args.json:
        return print_json(animation.record.to_dict())
    height, width = animation.frames[0].shape[-2:]
    stopped = f" (stopped after {len(animation.frames)} of {settings.frames} frames)" if animation.cancelled else ""
    print(f"{args.out}: {len(animation.frames)} frames of {width}x{height} px at {settings.fps} fps, "
          f"{animation.record.objective_text} on {model.name}, {animation.record.seconds:.1f} s{stopped}")
