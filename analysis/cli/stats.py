"""The `stats` command: activation statistics layer by layer and channel by channel, for one or two models."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from analysis import stats
from analysis.cli.arguments import (
    Progress,
    add_models_args,
    check_outputs,
    expand_images,
    image_source,
    load_models,
    print_json,
)
from analysis.errors import ConfigError
from analysis.pngmeta import write_file
from analysis.zoo import DEFAULT_MODEL


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("stats", help="activation statistics per layer and channel, for one or two models")
    add_models_args(p, f"model name (default {DEFAULT_MODEL}); give --model twice to compare two")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files, folders of images, or sample names")
    p.add_argument("--size", type=int, default=224, help="longest side in px the images are measured at (default 224)")
    p.add_argument("--out", required=True, type=Path, help="the tidy statistics as CSV")
    p.add_argument("--top", type=int, default=5, help="top channels per layer to report (default 5)")
    p.add_argument("--json", action="store_true", help="print the layer statistics and top channels as JSON")
    p.set_defaults(handler=cmd_stats)


def load_any(item: str, size: int) -> torch.Tensor:
    return image_source(item).load(size)


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
