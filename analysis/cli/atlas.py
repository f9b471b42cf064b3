"""The `atlas` command: what every unit of a layer responds to, for one or more models side by side.

    atlas --model M [--model M2 ...] --layer L [--layer L2 ...] [--images FOLDER] [--top-k 9]
          [--ray [ADDRESS]] --out DIR
    atlas report DIR

The first model's layers are the ones named; every other model gets its layer at the same
relative depth. Each (model, layer) is stored in its own folder under DIR and resumes if run
again. The example pass runs on the study engine: in this process by default, on Ray actors
(each loads the model once) with --ray, with the same numbers either way.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import pandas as pd

from analysis import atlas
from analysis.cli.arguments import Progress, add_device_args, check_outputs, print_json
from analysis.errors import ConfigError
from analysis.labels import class_groups
from analysis.studies import executors
from analysis.studies.judging import DEFAULT_JUDGE, Judge
from analysis.zoo import DEFAULT_MODEL, load_model


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "atlas", help="unit atlas: each unit's top images, receptive-field crops, distribution and concept; "
                      "'atlas report DIR' counts units per concept")
    p.add_argument("action", nargs="?", choices=["report"], help="report: tables of a finished atlas folder")
    p.add_argument("folder", nargs="?", type=Path, help="with report: the atlas folder (the --out of a run)")
    p.add_argument("--model", action="append", default=[],
                   help="model (repeatable: the others are matched at the same relative depth; "
                        f"default {DEFAULT_MODEL})")
    p.add_argument("--layer", action="append", default=[], help="layer of the first model (repeatable)")
    p.add_argument("--images", type=Path, help="folder of images (default: the bundled photos at several crops)")
    p.add_argument("--crops", action="store_true",
                   help="with --images: also take each image at several crops and mirrored")
    p.add_argument("--top-k", type=int, default=atlas.DEFAULT_TOP_K,
                   help="examples per unit judged (default %(default)s)")
    p.add_argument("--size", type=int, default=atlas.DEFAULT_SIDE, help="side of each view in px (default %(default)s)")
    p.add_argument("--batch", type=int, default=atlas.DEFAULT_BATCH, help="views per forward (default %(default)s)")
    p.add_argument("--judge", default=DEFAULT_JUDGE, help="ImageNet or Places365 classifier that reads the concepts "
                                                         "(default %(default)s); 'none' to skip")
    p.add_argument("--threshold", type=float, default=atlas.CONCEPT_THRESHOLD,
                   help="share of a unit's top-k crops its group needs (default %(default)s)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help=f"run the pass on Ray: alone, the cluster in ${executors.RAY_ADDRESS_ENV} or Ray started "
                        "here; with ADDRESS (HOST:PORT), that cluster")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per batch, fixed so every executor gives the same numbers (default: this "
                        "machine's)")
    p.add_argument("--out", type=Path, help="root folder: one sub-folder per model and layer")
    p.add_argument("--per-group", type=int, default=5, help="with report: top units listed per concept")
    add_device_args(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_atlas)


def cmd_atlas(args: argparse.Namespace) -> int | None:
    if args.action == "report":
        if args.folder is None:
            raise ConfigError("Name the atlas folder: atlas report DIR.")
        return report(args.folder, args.per_group, args.json)
    if args.folder is not None:
        raise ConfigError(f"Unexpected '{args.folder}': a run takes --out DIR (or use 'atlas report DIR').")
    if args.out is None or not args.layer:
        raise ConfigError("A run needs --layer and --out (see 'atlas --help').")
    if args.top_k < 1:
        raise ConfigError("--top-k must be at least 1.")
    check_outputs(args, (), ("out",))
    settings = atlas.AtlasSettings(side=args.size, batch=args.batch).validate()
    if args.images is not None:
        views = atlas.folder_collection(args.images, crops=args.crops)
    else:
        views = atlas.sample_collection()
    ray = executors.executor_for(args.ray) if args.ray is not None else None
    if ray is not None:
        ray.ready()  # an unreachable cluster says so before any model is loaded
    judge = None
    if args.judge.lower() != "none":
        judge = Judge.of(load_model(args.judge, device=args.device, precision=args.precision))
    names = args.model or [DEFAULT_MODEL]
    with ray.session() if ray is not None else contextlib.nullcontext():  # one Ray start for every pass
        records = _passes(args, names, views, settings, judge, ray)
    if args.json:
        print_json(records)
    return None


def _passes(args: argparse.Namespace, names: list[str], views: list, settings: atlas.AtlasSettings,
            judge: Judge | None, ray: executors.RayExecutor | None) -> list[dict]:
    """Each model's example pass at each layer (the first model's layers, the others' at the same depth),
    then its concept reading; a line printed per pass."""
    first = load_model(names[0], device=args.device, precision=args.precision)
    layers = [first.layer(name) for name in args.layer]
    records = []
    for name in names:
        model = first if name == names[0] else load_model(name, device=args.device, precision=args.precision)
        for asked in layers:
            info = asked if model is first else model.layer_at_depth(asked.depth)
            folder = atlas.run_folder(args.out, model.name, info.alias, settings.side)
            progress = Progress(f"{model.name} {info.alias}" + (f" ({ray.name})" if ray else ""))
            try:
                done = atlas.run_pass(model, info.name, views, folder, settings, on_step=progress, executor=ray,
                                      threads=args.threads)
            finally:
                progress.close()
            record = {"model": model.name, "layer": info.alias, "depth": info.depth, "folder": str(folder),
                      "views": done.views, "skipped": done.skipped, "seconds": done.seconds}
            if judge is not None:
                found = atlas.load_atlas(folder)
                reading = Progress(f"concepts {model.name} {info.alias}")
                try:
                    readings = atlas.stored_readings(found, judge, args.top_k, args.threshold, on_step=reading)
                finally:
                    reading.close()
                counts = readings["concept"].value_counts()
                record["units_per_concept"] = {str(k): int(v) for k, v in counts.items()}
            records.append(record)
            if not args.json:
                concepts = record.get("units_per_concept")
                summary = ", ".join(f"{k} {v}" for k, v in concepts.items()) if concepts else "no judge"
                skipped = f"; {len(done.skipped)} unreadable images skipped" if done.skipped else ""
                print(f"{folder}: {done.views} views of {info.alias} (depth {info.depth:.2f}) on {model.name} "
                      f"in {done.seconds:.1f} s{' on Ray' if ray else ''}{skipped}; units: {summary}")
    return records


def report(root: Path, per_group: int, as_json: bool) -> None:
    found = sorted((atlas.load_atlas(f) for f in atlas.atlas_folders(root)),
                   key=lambda a: (a.model, a.manifest["layer_depth"]))  # each model's layers low to high
    readings = [atlas.stored_readings_of(a.folder) for a in found]
    tables = {(a.model, a.layer): a.unit_table() for a in found}
    every = pd.concat(readings, ignore_index=True)
    judges = every["judge"].unique().tolist()
    if len(judges) != 1:
        raise ConfigError(f"{root} mixes readings of several judges ({', '.join(judges)}): report one root per judge.")
    groups = list(class_groups(every["judge_data"].iloc[0]))
    counts = atlas.units_per_group(every, groups)
    best = atlas.top_units(every, tables, per_group)
    root_folder = root if root.is_dir() else root.parent
    counts_path, top_path = root_folder / "units_per_group.csv", root_folder / "top_units.csv"
    counts.to_csv(counts_path, index=False)
    best.to_csv(top_path, index=False)
    if as_json:
        return print_json({"units_per_group": counts.to_dict("records"), "top_units": best.to_dict("records"),
                           "files": [str(counts_path), str(top_path)]})
    wide = counts.pivot(index="group", columns=["model", "layer"], values="units")
    wide = wide.loc[counts["group"].unique(), list(dict.fromkeys(zip(counts["model"], counts["layer"])))]
    print(f"Units per concept (judge {judges[0]}, a unit's group needs {every['threshold'].iloc[0]:g} of its crops):")
    print(wide.to_string())
    print(f"\nClearest units per concept (up to {per_group}):")
    print(best.to_string(index=False, float_format=lambda v: f"{v:.3g}") if len(best)
          else "(no unit reached the threshold)")
    print(f"\nWritten: {counts_path}, {top_path}")
    return None
