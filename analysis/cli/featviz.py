"""The `featviz` command: render (or reuse from the cache) channels of a layer to PNG files."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import featviz
from analysis.cli.arguments import Progress, add_model_args, check_outputs, load_from_args, print_json
from analysis.featviz import FeatvizConfig, RenderCache, cache_dir, contact_sheet, render_channels
from analysis.objectives import parse_channels
from analysis.pngmeta import save_png


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("featviz", help="render what channels of a layer respond to, from noise (cached)")
    add_model_args(p)
    p.add_argument("--layer", required=True, help="layer name or alias (see 'layers MODEL')")
    p.add_argument("--channels", default="0-15", help="channels such as 0-63 or 0,5,10-12 (default 0-15)")
    p.add_argument("--out", required=True, type=Path, help="folder for one PNG per channel and contact_sheet.png")
    defaults = FeatvizConfig()
    p.add_argument("--size", type=int, default=defaults.size, help=f"px, square (default {defaults.size})")
    p.add_argument("--steps", type=int, default=defaults.steps, help=f"optimisation steps (default {defaults.steps})")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--lr", type=float, default=defaults.learning_rate, help="Adam learning rate")
    p.add_argument("--batch", type=int, default=defaults.batch, help="channels per batched optimisation")
    p.add_argument("--param", default=defaults.parameterisation, choices=featviz.PARAMETERISATIONS,
                   help="fft: lucent's Fourier parameterisation; maco: phase only under natural photos' magnitude "
                        "(Fel et al. 2023), also writes each channel's attribution map (default %(default)s)")
    p.add_argument("--no-transforms", action="store_true", help="optimise without jitter/scale/rotate")
    p.add_argument("--no-cache", action="store_true", help=f"neither read nor write the render cache ({cache_dir()})")
    p.add_argument("--json", action="store_true", help="print one record per channel as JSON")
    p.set_defaults(handler=cmd_featviz)

    p = commands.add_parser("featviz-cache", help="show or clear the feature-visualisation render cache")
    p.add_argument("--clear", action="store_true", help="delete every cached render")
    p.set_defaults(handler=cmd_featviz_cache)


def cmd_featviz(args: argparse.Namespace) -> None:
    check_outputs(args, files=(), folders=("out",))
    config = FeatvizConfig(size=args.size, steps=args.steps, learning_rate=args.lr, seed=args.seed,
                           transforms=not args.no_transforms, batch=args.batch,
                           parameterisation=args.param).validate()
    model = load_from_args(args)
    info = model.layer(args.layer)
    channels = parse_channels(args.channels, info.shape[0], info.alias)
    progress = Progress(f"featviz {info.alias}")
    try:
        result = render_channels(model, info.name, channels, config,
                                 cache=None if args.no_cache else RenderCache(), on_step=progress)
    finally:
        progress.close()
    records = []
    for render in result.renders:
        name = f"{model.name}_{info.alias}_c{render.channel:04d}.png".replace("/", "-")
        path = save_png(args.out / name, render.image, render.record)
        record = {"channel": render.channel, "file": str(path), "activation": render.activation,
                  "cached": render.cached}
        if config.parameterisation == "maco" and render.attribution is not None:
            record["attribution"] = str(save_png(path.with_suffix(".attribution.png"),
                                                 render.attribution[None].expand(3, -1, -1)))
        records.append(record)
    sheet_path = save_png(args.out / "contact_sheet.png", contact_sheet(result))
    if args.json:
        return print_json({"model": model.name, "layer": info.alias, "contact_sheet": str(sheet_path),
                           "seconds": result.seconds, "channels": records})
    reused = sum(r["cached"] for r in records)
    print(f"{args.out}: {len(records)} channels of {info.alias} on {model.name} ({reused} from the cache) "
          f"in {result.seconds:.1f} s; contact sheet {sheet_path}")


def cmd_featviz_cache(args: argparse.Namespace) -> None:
    cache = RenderCache()
    if args.clear:
        print(f"removed {cache.clear()} renders from {cache.folder}")
    else:
        print(f"{cache.folder}: {len(cache.files())} renders, {cache.size_bytes() / 2**20:.1f} MiB "
              f"(limit {cache.max_bytes / 2**20:.0f} MiB)")
