"""Argument helpers every command shares, so a flag means the same thing in each command that takes it.

The flag groups (model, device, dream settings, where a dream starts) and their readers, the checks of
user-named files before any work starts, the tqdm progress bar and Ctrl-C handling for on_step / cancel
callbacks, and JSON printing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from tqdm import tqdm

from analysis import zoo
from analysis.dream import PRESETS, DreamConfig, preset
from analysis.errors import ConfigError, ImageError
from analysis.images import load_image
from analysis.objectives import DEFAULT_DEPTH, Channels, ClassLogit, Guide, LayerL2, Objective, Sum
from analysis.recipes import ImageSource
from analysis.zoo import LoadedModel, load_model


def print_json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str))


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


def add_models_args(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--model", action="append", default=[], help=help_text)
    p.add_argument("--weights", type=Path, action="append", default=[],
                   help="checkpoint file per --model, in the same order (default: the weights folder)")
    add_device_args(p)


def load_models(args: argparse.Namespace, names: list[str]) -> list[LoadedModel]:
    if args.weights and len(args.weights) != len(names):
        raise ConfigError(f"Give one --weights per --model ({len(names)} models, {len(args.weights)} files).")
    files = args.weights or [None] * len(names)
    return [load_model(name, device=args.device, checkpoint=file, precision=args.precision)
            for name, file in zip(names, files)]


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


def image_source(arg: str) -> ImageSource:
    """A path, or the name of a bundled sample."""
    path = Path(arg)
    if path.is_file():
        return ImageSource.file(path)
    try:
        return ImageSource.sample(arg)
    except ImageError:
        raise ImageError(f"No image file at {arg} (and no bundled sample of that name).") from None


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def expand_images(items: list[str]) -> list[str]:
    """Folders become the images inside them (sorted); files and sample names stay as they are."""
    out: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(str(p) for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
            if not found:
                raise ImageError(f"No PNG, JPEG or WebP images in the folder {item}.")
            out += found
        else:
            out.append(item)
    return out


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
            if not folder and not path.is_file():  # a device or a pipe: the rename would replace it, not write to it
                raise ConfigError(f"{flag} {path} is not a regular file (a device or a pipe): give a file name.")
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
    """tqdm bar that is an OnStep (analysis.progress): steps of a dream, or items of a study (rate, time left)."""

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


class StopOnInterrupt:
    """Ctrl-C asks the loop to stop (finished frames are kept); a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.previous = None

    def __enter__(self) -> StopOnInterrupt:
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
