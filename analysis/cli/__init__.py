"""The command line: one parser, one module per command (or tight family of commands), named after it.

Shared flags and their readers live in analysis/cli/arguments.py.

Every LabError becomes one line on stderr and a non-zero exit; tracebacks are for bugs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from analysis.errors import LabError

EXIT_USER_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    from analysis.cli import (
        atlas,
        bias,
        classify,
        compare,
        dream,
        featviz,
        grid,
        schema,
        stats,
        studies,
        video,
        zoo,
        zoom,
    )

    called = Path(sys.argv[0]).name
    parser = argparse.ArgumentParser(
        prog=called if called == "inceptionism" else "python -m analysis",
        description="Inceptionism Lab: DeepDream and layer analysis from the command line.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # the order of this list is the order of `--help`
    for module in (zoo, classify, dream, schema, featviz, stats, compare, zoom, grid, bias, studies, atlas, video):
        module.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except LabError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("error: interrupted.", file=sys.stderr)
        return 130
