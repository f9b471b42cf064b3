"""The `classify` command: a model's top-K classes of images."""

from __future__ import annotations

import argparse

from analysis.cli.arguments import add_model_args, image_source, load_from_args, print_json
from analysis.images import MAX_DREAM_SIDE


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("classify", help="top-K classes of images")
    add_model_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or sample names such as cat_chelsea")
    p.add_argument("--top", type=int, default=5, help="classes per image (default 5)")
    p.add_argument("--json", action="store_true", help="print the classes as JSON")
    p.set_defaults(handler=cmd_classify)


def cmd_classify(args: argparse.Namespace) -> None:
    model = load_from_args(args)
    rows = []
    for item in args.images:
        image = image_source(item).load(MAX_DREAM_SIDE)
        rows.append({"image": item, "top": [{"index": i, "name": n, "probability": round(p, 4)}
                                           for i, n, p in model.classify(image, args.top)]})
    if args.json:
        return print_json(rows)
    for row in rows:
        print(row["image"])
        for t in row["top"]:
            print(f"  {t['probability']:7.2%}  {t['index']:4d}  {t['name']}")
