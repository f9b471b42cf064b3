"""The model zoo commands: `models` (the table and missing weights), `layers MODEL`, `download MODEL`."""

from __future__ import annotations

import argparse

from tqdm import tqdm

from analysis import zoo
from analysis.cli.arguments import print_json


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
    from analysis.zoo.weights.downloads import download_weights, source_url

    spec = zoo.get_spec(args.model)
    source_url(spec)  # a model with nothing to download says so before an empty progress bar is drawn
    # leave=True: the bar ends its line, so an error after it starts a line of its own
    with tqdm(desc=spec.weights.filename or spec.name, unit="B", unit_scale=True, leave=True) as bar:
        def on_bytes(received: int, total: int | None) -> None:
            bar.total = total
            bar.update(received - bar.n)

        done = download_weights(spec, on_bytes=on_bytes)
    print(f"saved {done.describe()}")
