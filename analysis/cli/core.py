"""Core commands: models, layers, classify, download, dream."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from analysis import schemas, zoo
from analysis.cli import print_json
from analysis.dream import PRESETS, DreamConfig, dream, preset
from analysis.errors import ConfigError, ImageError
from analysis.images import MAX_IMAGE_FILE_BYTES, file_sha256, load_image
from analysis.objectives import Channels, ClassLogit, Guide, LayerL2, Objective, Sum
from analysis.pngmeta import save_png, write_file
from analysis.recipes import PNG_SIGNATURE, ImageSource, Recipe, check_replay, run_recipe


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("models", help="list the model zoo and whether weights are present")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.set_defaults(handler=cmd_models)

    p = commands.add_parser("layers", help="dream-able layers of a model, with shapes and depth")
    p.add_argument("model", help="model name (see 'models')")
    p.add_argument("--json", action="store_true", help="print the layers as JSON")
    p.set_defaults(handler=cmd_layers)

    p = commands.add_parser("download", help="download a model's weights into the weights folder (needs a network, "
                                             "or a mirror in INCEPTIONISM_WEIGHTS_MIRROR)")
    p.add_argument("model")
    p.set_defaults(handler=cmd_download)

    p = commands.add_parser("classify", help="top-K classes of images")
    add_model_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or sample names such as cat_chelsea")
    p.add_argument("--top", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="print the classes as JSON")
    p.set_defaults(handler=cmd_classify)

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

    p = commands.add_parser("schema", help="the JSON Schema of a file you can hand in (recipe, zoom recipe, bundle)")
    p.add_argument("kind", choices=sorted(schemas.SCHEMAS),
                   help="recipe (dream --recipe), zoom (zoom --recipe) "
                        "or bundle (a bundle's recipe.json, grid --recipe)")
    p.add_argument("--out", type=Path, help="write the schema here instead of printing it")
    p.set_defaults(handler=cmd_schema)


def add_model_args(p: argparse.ArgumentParser, default: str | None = zoo.DEFAULT_MODEL) -> None:
    p.add_argument("--model", default=default, help=f"model name (default {default}); '-untrained' for a twin")
    add_device_args(p)
    p.add_argument("--weights", type=Path, help="checkpoint file to use instead of the weights folder")


def add_device_args(p: argparse.ArgumentParser, note: str = "") -> None:
    """--device and --precision; note ends both help texts (what they mean for this command)."""
    p.add_argument("--device", default="auto", help=f"auto, cpu, cuda or mps{note}")
    p.add_argument("--precision", default="auto", choices=("auto", *zoo.PRECISIONS),
                   help=f"auto (bf16 autocast on CUDA, fp32 elsewhere), fp32 or bf16{note}")


def add_start_args(p: argparse.ArgumentParser, default_size: int) -> None:
    """Where a dream starts and what it amplifies: read back by image_source and build_objective."""
    p.add_argument("--layer",
                   help=f"layer name or alias (see 'layers MODEL'); default: the layer at depth {DEFAULT_DEPTH}")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--image", help="image file, or a bundled sample name such as cat_chelsea")
    source.add_argument("--noise", action="store_true", help="start from seeded noise")
    p.add_argument("--size", type=int, default=default_size, help=f"longest side in px (default {default_size})")
    p.add_argument("--channel", type=int, action="append", default=[], help="channel objective (repeatable)")
    p.add_argument("--class", dest="classes", type=int, action="append", default=[],
                   help="class logit objective (repeatable)")
    p.add_argument("--guide", help="guide image: dream toward its features at the layer")


def add_config_args(p: argparse.ArgumentParser, step_flag: str = "--step") -> None:
    """The dream settings; step_flag renames --step where a command needs it for something else (video)."""
    p.add_argument("--preset", default="google", choices=sorted(PRESETS))
    p.add_argument("--octaves", type=int)
    p.add_argument("--octave-scale", type=float)
    p.add_argument("--iterations", type=int, help="steps per octave")
    p.add_argument(step_flag, dest="step", type=float, help="step size in [0, 1] pixel units")
    p.add_argument("--jitter", type=int)
    p.add_argument("--norm", choices=["mean-abs", "std", "laplacian"])
    p.add_argument("--seed", type=int)
    p.add_argument("--tile", type=int, help="tile size in px (0 = off)")


def config_from_args(args: argparse.Namespace) -> DreamConfig:
    return preset(args.preset, octaves=args.octaves, octave_scale=args.octave_scale, iterations=args.iterations,
                  step_size=args.step, jitter=args.jitter, normalization=args.norm, seed=args.seed,
                  tile_size=args.tile)


def load_from_args(args: argparse.Namespace, name: str | None = None, recipe_precision: str | None = None
                   ) -> zoo.LoadedModel:
    """The model named (or --model) on --device at --precision; a replay's auto precision is its recipe's."""
    precision = recipe_precision if args.precision == "auto" and recipe_precision else args.precision
    model = zoo.load_model(name or args.model, device=args.device, checkpoint=args.weights, precision=precision)
    if note := zoo.precision_note(model.precision, model.device):
        print(f"note: {note}", file=sys.stderr)
    return model


def image_source(arg: str) -> tuple[ImageSource, Path | None]:
    """A path, or the name of a bundled sample."""
    path = Path(arg)
    if path.is_file():
        return ImageSource("file", name=path.name, sha256=file_sha256(path)), path
    try:
        return ImageSource.sample(arg), None
    except ImageError:
        raise ImageError(f"No image file at {arg} (and no bundled sample of that name).") from None


def read_input(path: Path, what: str, limit: int) -> bytes:
    """A file the user names (a recipe, a bundle), its size checked before it is read."""
    if not path.is_file():
        raise ConfigError(f"No {what} file at {path}.")
    size = path.stat().st_size
    if size > limit:
        raise ConfigError(f"{path} is {size / 2**20:.0f} MB; a {what} file is at most {limit // 2**20} MB.")
    return path.read_bytes()


def check_outputs(args: argparse.Namespace, files: tuple[str, ...] = ("out",), folders: tuple[str, ...] = ()) -> None:
    """Before the work starts, every output path the command will write can be written: a folder given where a
    file belongs (or the other way round), a parent that is a file, or no permission is one line now, not a
    traceback after the work is done. files and folders name the args attributes (None: not given)."""
    for names, folder in ((files, False), (folders, True)):
        for name in names:
            path = getattr(args, name)
            if path is not None:
                check_output(Path(path), "--" + name.replace("_", "-"), folder)


def check_output(path: Path, flag: str, folder: bool = False) -> None:
    want = "folder" if folder else "file"
    try:
        if path.exists():
            if path.is_dir() != folder:
                raise ConfigError(f"{flag} {path} is a {'file' if folder else 'folder'}: give a {want} name.")
            if not os.access(path, os.W_OK):
                raise ConfigError(f"{flag} {path} cannot be written (no permission).")
            return
        ancestor = path.parent
        while not ancestor.exists():
            ancestor = ancestor.parent
    except OSError as err:  # a name too long, a path through something unreadable
        raise ConfigError(f"{flag} {path} cannot be written ({err.strerror or type(err).__name__}).") from None
    if not ancestor.is_dir():
        raise ConfigError(f"{flag} {path} cannot be written: {ancestor} is a file, not a folder.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {path} cannot be written: no permission to create it in {ancestor}.")


class Progress:
    """tqdm bar for on_step callbacks (steps of a dream, or items of a study: tqdm shows rate and time left)."""

    def __init__(self, description: str, unit: str = "step"):
        self.bar: tqdm | None = None
        self.description = description
        self.unit = unit

    def __call__(self, step: int, total: int, _preview: object) -> None:
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.description, unit=self.unit, leave=False)
        self.bar.update(step - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_schema(args: argparse.Namespace) -> None:
    text = json.dumps(schemas.json_schema(args.kind), indent=2) + "\n"
    if args.out is None:
        print(text, end="")
        return
    check_outputs(args)
    write_file(args.out, text)
    print(f"wrote the {args.kind} schema to {args.out}")


def cmd_models(args: argparse.Namespace) -> None:
    rows = zoo.model_table()
    if args.json:
        return print_json(rows)
    print(f"{'model':<26}{'training data':<15}{'weights':<10}architecture")
    for r in rows:
        weights = "present" if r["weights_present"] else "missing"
        print(f"{r['model']:<26}{r['training_data']:<15}{weights:<10}{r['architecture']}")
    missing = [r for r in rows if not r["weights_present"] and r.get("weights_file")]
    if missing:
        print("\nMissing weights: put the file in the weights folder, or 'download MODEL' where online:")
        for r in missing:
            print(f"  {r['weights_file']:<44}{r['download'] or 'no public download: see README'}")
    print(f"\nWeights folder: {zoo.weights_dir()}  ·  "
          f"add '{zoo.UNTRAINED_SUFFIX}' to any name for its untrained twin.")


def cmd_layers(args: argparse.Namespace) -> None:
    spec = zoo.get_spec(args.model)
    table = zoo.layer_table(spec)
    if args.json:
        return print_json([{"name": i.name, "alias": i.alias, "shape": list(i.shape), "depth": i.depth} for i in table])
    print(f"{'alias':<24}{'module':<24}{'shape (224 px)':<18}depth")
    for i in table:
        print(f"{i.alias:<24}{i.name:<24}{'x'.join(map(str, i.shape)):<18}{i.depth:.2f}")


def cmd_download(args: argparse.Namespace) -> None:
    from analysis.zoo.weights.downloads import download_weights

    spec = zoo.get_spec(args.model)
    # leave=True: the bar ends its line, so an error after it starts a line of its own
    with tqdm(desc=spec.weights.filename or spec.name, unit="B", unit_scale=True, leave=True) as bar:
        def on_bytes(received: int, total: int | None) -> None:
            bar.total = total
            bar.update(received - bar.n)

        done = download_weights(spec, on_bytes=on_bytes)
    print(f"saved {done.describe()}")


def cmd_classify(args: argparse.Namespace) -> None:
    model = load_from_args(args)
    rows = []
    for item in args.images:
        _, path = image_source(item)
        image = load_image(path) if path else ImageSource.sample(item).load(1024)
        rows.append({"image": item, "top": [{"index": i, "name": n, "probability": round(p, 4)}
                                           for i, n, p in model.classify(image, args.top)]})
    if args.json:
        return print_json(rows)
    for row in rows:
        print(row["image"])
        for t in row["top"]:
            print(f"  {t['probability']:7.2%}  {t['index']:4d}  {t['name']}")


DEFAULT_DEPTH = 0.6
"""Without --layer or --class, dream the layer at this depth: where the ImageNet model's dog effect peaks."""


def build_objective(args: argparse.Namespace, model: zoo.LoadedModel) -> Objective:
    terms: list[Objective] = []
    if args.layer:
        if args.channel:
            terms.append(Channels(args.layer, args.channel))
        elif args.guide:
            terms.append(Guide(args.layer, load_image(args.guide, 224)))
        else:
            terms.append(LayerL2(args.layer))
    elif args.channel or args.guide:
        raise ConfigError("--channel and --guide need --layer.")
    if args.classes:
        terms.append(ClassLogit(args.classes))
    if not terms:
        terms.append(LayerL2(model.layer_at_depth(DEFAULT_DEPTH).name))
    return terms[0] if len(terms) == 1 else Sum([(1.0, t) for t in terms])


def cmd_dream(args: argparse.Namespace) -> None:
    check_outputs(args, ("out", "recipe_out"))
    progress = Progress("dreaming")
    replay = None  # what a replayed dream PNG says about its own pixels
    try:
        if args.recipe:  # recipe JSON, or the dream PNG that carries it
            recipe_bytes = read_input(args.recipe, "recipe", MAX_IMAGE_FILE_BYTES)
            recipe = Recipe.from_json(recipe_bytes)
            file = Path(args.image) if args.image else None
            model = load_from_args(args, recipe.model, recipe.precision)
            result = run_recipe(recipe, model, file, on_step=progress)
            if recipe_bytes.startswith(PNG_SIGNATURE):
                replay = check_replay(recipe_bytes, result).describe()
        else:
            if not args.image and not args.noise:
                raise ConfigError("Give --image PATH (or a sample name) or --noise.")
            config = config_from_args(args)
            if args.noise:
                source, file = ImageSource("noise", size=(args.size, args.size), seed=config.seed), None
            else:
                source, file = image_source(args.image)
            model = load_from_args(args)
            objective = build_objective(args, model)
            recipe = Recipe(model.name, objective.bind(model).to_dict(), config, source, args.size, model.precision)
            image = source.load(args.size, file)
            result = dream(model, image, objective, config, on_step=progress)
            result.metadata["recipe"] = recipe.to_dict()
    finally:
        progress.close()
    save_png(args.out, result.image, result.metadata)
    if args.recipe_out:
        write_file(args.recipe_out, json.dumps(result.metadata["recipe"], indent=2))
    if args.json:
        print_json(result.metadata | ({"replay": replay} if replay else {}))
    else:
        trace = result.trace
        print(f"{args.out}: {result.metadata['objective_text']} on {model.name}, {len(trace)} steps in "
              f"{result.metadata['seconds']:.1f} s, objective {trace[0]:.3g} -> {trace[-1]:.3g}")
        if replay:
            print(f"replay: {replay}")
