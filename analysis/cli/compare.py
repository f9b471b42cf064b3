"""The `compare` command: two models dream the same image with the same settings, side by side in a grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import compare as comparing
from analysis.cli.arguments import (
    Progress,
    add_config_args,
    add_models_args,
    check_outputs,
    config_from_args,
    image_source,
    load_models,
    print_json,
)
from analysis.errors import ConfigError
from analysis.pngmeta import save_png


def register(commands: argparse._SubParsersAction) -> None:
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


def _split(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def cmd_compare(args: argparse.Namespace) -> None:
    check_outputs(args)
    names = args.model or list(comparing.DEFAULT_PAIR)
    if len(names) != 2:
        raise ConfigError("Give exactly two models: --model A --model B.")
    config = config_from_args(args)
    source = image_source(args.image)
    model_a, model_b = load_models(args, names)
    if args.layers_a or args.layers_b:
        columns = comparing.match_by_name(model_a, model_b, _split(args.layers_a), _split(args.layers_b))
    else:
        columns = comparing.match_by_depth(model_a, model_b, comparing.parse_depths(args.depths))
    title = source.name or str(args.image)
    progress = Progress("dreaming A and B")
    try:
        result = comparing.compare(model_a, model_b, source, args.size, columns, config, title, on_step=progress)
    finally:
        progress.close()
    metadata = result.metadata()
    save_png(args.out, comparing.grid(result), metadata)
    if args.json:
        return print_json(metadata)
    for column in result.columns:
        print(f"{column.label:<14} A: {column.layer_a.alias:<22} B: {column.layer_b.alias}")
    print(f"{args.out}: {names[0]} vs {names[1]}, {len(columns)} column(s), seed {config.seed}")
