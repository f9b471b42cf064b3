"""The `schema` command: the JSON Schema of each file a user can hand in (recipe, zoom recipe, bundle, study plan)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from analysis import schemas
from analysis.cli.arguments import check_outputs
from analysis.pngmeta import write_file


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("schema",
                            help="the JSON Schema of a file you can hand in (recipe, zoom recipe, bundle, plan)")
    p.add_argument("kind", choices=sorted(schemas.SCHEMAS),
                   help="recipe (dream --recipe), zoom (zoom --recipe), bundle (a bundle's recipe.json, "
                        "grid --recipe) or plan (a study plan, study run)")
    p.add_argument("--out", type=Path, help="write the schema here instead of printing it")
    p.set_defaults(handler=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> None:
    text = json.dumps(schemas.json_schema(args.kind), indent=2) + "\n"
    if args.out is None:
        print(text, end="")
        return
    check_outputs(args)
    write_file(args.out, text)
    print(f"wrote the {args.kind} schema to {args.out}")
