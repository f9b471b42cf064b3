"""The `dream` command: octave gradient ascent from flags, or the replay of a recipe (JSON or dream PNG)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from analysis.cli.arguments import (
    Progress,
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
from analysis.images import MAX_IMAGE_FILE_BYTES
from analysis.pngmeta import save_png, write_file
from analysis.recipes import PNG_SIGNATURE, ImageSource, Recipe, check_replay, run_recipe


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("dream", help="octave gradient ascent on an image or noise")
    add_model_args(p)
    add_start_args(p, default_size=512)
    p.add_argument("--out", required=True, type=Path, help="output PNG (metadata in text chunks)")
    add_config_args(p)
    p.add_argument("--recipe-out", type=Path, help="write the recipe JSON here")
    p.add_argument("--recipe", type=Path,
                   help="replay a recipe JSON, or the dream PNG that carries it (other settings are ignored)")
    p.add_argument("--json", action="store_true", help="print the result's metadata as JSON")
    p.set_defaults(handler=cmd_dream)


def cmd_dream(args: argparse.Namespace) -> None:
    check_outputs(args, ("out", "recipe_out"))
    progress = Progress("dreaming")
    replay = None  # what a replayed dream PNG says about its own pixels
    try:
        if args.recipe:  # recipe JSON, or the dream PNG that carries it
            recipe_bytes = read_input(args.recipe, "recipe", MAX_IMAGE_FILE_BYTES)
            recipe = Recipe.from_json(recipe_bytes)
            if args.image:  # the photo a recipe names by its sha256
                recipe = replace(recipe, image=recipe.image.at(Path(args.image)))
            model = load_from_args(args, recipe.model, recipe.precision)
            result = run_recipe(recipe, model, on_step=progress)
            if recipe_bytes.startswith(PNG_SIGNATURE):
                replay = check_replay(recipe_bytes, result).describe()
        else:
            if not args.image and not args.noise:
                raise ConfigError("Give --image PATH (or a sample name) or --noise.")
            config = config_from_args(args)
            if args.noise:
                source = ImageSource("noise", size=(args.size, args.size), seed=config.seed)
            else:
                source = image_source(args.image)
            model = load_from_args(args)
            objective = build_objective(args, model)
            recipe = Recipe(model.name, objective.bind(model).to_dict(), config, source, args.size, model.precision)
            result = run_recipe(recipe, model, on_step=progress)
    finally:
        progress.close()
    save_png(args.out, result.image, result.record)
    if args.recipe_out:
        write_file(args.recipe_out, json.dumps(result.record.recipe, indent=2))
    if args.json:
        print_json(result.record.to_dict() | ({"replay": replay} if replay else {}))
    else:
        trace = result.trace
        print(f"{args.out}: {result.record.objective_text} on {model.name}, {len(trace)} steps in "
              f"{result.record.seconds:.1f} s, objective {trace[0]:.3g} -> {trace[-1]:.3g}")
        if replay:
            print(f"replay: {replay}")
