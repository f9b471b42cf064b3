"""Study commands: activation statistics layer by layer, and two models dreaming side by side."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from analysis import compare as comparing
from analysis import stats
from analysis.cli import print_json
from analysis.cli.core import Progress, add_config_args, add_device_args, check_outputs, config_from_args, image_source
from analysis.errors import ConfigError, ImageError
from analysis.images import load_image
from analysis.pngmeta import save_png, write_file
from analysis.zoo import DEFAULT_MODEL, LoadedModel, load_model

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("stats", help="activation statistics per layer and channel, for one or two models")
    add_models_args(p, f"model name (default {DEFAULT_MODEL}); give --model twice to compare two")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders of images, or sample names")
    p.add_argument("--size", type=int, default=224, help="longest side in px the images are measured at (default 224)")
    p.add_argument("--out", required=True, type=Path, help="the tidy statistics as CSV")
    p.add_argument("--top", type=int, default=5, help="top channels per layer to report (default 5)")
    p.add_argument("--json", action="store_true", help="print the layer statistics and top channels as JSON")
    p.set_defaults(handler=cmd_stats)

    p = commands.add_parser("compare", help="two models dream the same image with the same settings: a 2 x N grid")
    add_models_args(p, "give --model twice: A then B (default: efficientnet_lite0 and its untrained twin)")
    p.add_argument("--image", required=True, help="image file, or a bundled sample name such as cat_chelsea")
    p.add_argument("--depths", default="0.2,0.5,0.8", help="relative depths 0 to 1, comma-separated (1 to 6)")
    p.add_argument("--layers-a", help="layers of A, comma-separated, instead of --depths (as many as --layers-b)")
    p.add_argument("--layers-b", help="layers of B, comma-separated")
    p.add_argument("--size", type=int, default=256, help="longest side in px (default 256)")
    p.add_argument("--out", required=True, type=Path, help="output PNG grid (settings in its metadata)")
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="print the grid's metadata (layers, top classes) as JSON")
    p.set_defaults(handler=cmd_compare)


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


def load_any(item: str, size: int) -> torch.Tensor:
    source, path = image_source(item)
    return load_image(path, size) if path else source.load(size)


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def cmd_stats(args: argparse.Namespace) -> None:
    check_outputs(args)
    names = args.model or [DEFAULT_MODEL]
    if len(names) > 2:
        raise ConfigError("Give one or two --model.")
    items = expand_images(args.images)
    images = [load_any(item, args.size) for item in items]
    loaded = load_models(args, names)
    progress = Progress("measuring")
    try:
        frame = stats.stats_for_models(loaded, images, on_step=progress)
    finally:
        progress.close()
    write_file(args.out, frame.to_csv(index=False))
    table = stats.layer_table(frame)
    top = stats.top_channels(frame, args.top)
    if args.json:
        return print_json({"out": str(args.out), "images": items, "models": names,
                           "layers": table.to_dict(orient="records"), "top_channels": top.to_dict(orient="records")})
    for name in names:
        print(f"\n{name} · {len(items)} image(s) at {args.size} px")
        print(f"  {'layer':<22}{'depth':>6}{'mean':>11}{'std':>11}{'max':>11}{'sparsity':>10}{'active':>8}"
              "  top channels")
        for row in table[table["model"] == name].itertuples():
            best = top[(top["model"] == name) & (top["layer"] == row.layer)]["channel"].tolist()
            print(f"  {row.layer:<22}{row.depth:>6.2f}{row.mean:>11.3g}{row.std:>11.3g}{row.max:>11.3g}"
                  f"{row.sparsity:>10.1%}{row.active_share:>8.0%}  {', '.join(map(str, best))}")
    print(f"\nwrote {len(frame)} rows to {args.out}")


def cmd_compare(args: argparse.Namespace) -> None:
    check_outputs(args)
    names = args.model or list(comparing.DEFAULT_PAIR)
    if len(names) != 2:
        raise ConfigError("Give exactly two models: --model A --model B.")
    config = config_from_args(args)
    source, path = image_source(args.image)
    image = load_image(path, args.size) if path else source.load(args.size)
    model_a, model_b = load_models(args, names)
    if args.layers_a or args.layers_b:
        columns = comparing.match_by_name(model_a, model_b, _split(args.layers_a), _split(args.layers_b))
    else:
        columns = comparing.match_by_depth(model_a, model_b, comparing.parse_depths(args.depths))
    title = source.name or str(args.image)
    progress = Progress("dreaming A and B")
    try:
        result = comparing.compare(model_a, model_b, image, columns, config, title, on_step=progress)
    finally:
        progress.close()
    metadata = result.metadata()
    save_png(args.out, comparing.grid(result), metadata)
    if args.json:
        return print_json(metadata)
    for column in result.columns:
        print(f"{column.label:<14} A: {column.layer_a.alias:<22} B: {column.layer_b.alias}")
    print(f"{args.out}: {names[0]} vs {names[1]}, {len(columns)} column(s), seed {config.seed}")
