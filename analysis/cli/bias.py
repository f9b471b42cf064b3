"""The bias command: dream at several depths, judge originals and dreams, measure the dog effect (study engine)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from analysis import bias, zoo
from analysis.cli.arguments import (
    Progress,
    add_config_args,
    add_device_args,
    check_outputs,
    config_from_args,
    expand_images,
    print_json,
)
from analysis.cli.studies import plan_from
from analysis.compare import parse_depths
from analysis.errors import ConfigError
from analysis.labels import class_groups
from analysis.pngmeta import write_file
from analysis.studies import executors
from analysis.studies import stats as study_stats
from analysis.studies.judging import DEFAULT_GROUP, DEFAULT_JUDGE, check_judge_name
from analysis.studies.store import Results
from analysis.zoo import DEFAULT_MODEL, pick_device, pick_precision


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bias", help="dataset bias: what each model's dreams are judged to be (the dog effect)")
    p.add_argument("--model", action="append", default=[],
                   help=f"model that dreams (repeatable; default {DEFAULT_MODEL}); its untrained twin is added")
    p.add_argument("--depths", default=",".join(f"{d:g}" for d in bias.DEFAULT_DEPTHS),
                   help="relative layer depths 0 to 1, comma-separated (default %(default)s)")
    p.add_argument("--noise-seeds", type=int, default=0, help="also dream N grey-noise images (seeds 0 to N-1)")
    p.add_argument("--judge", action="append", default=[],
                   help=f"classifier that judges (repeatable; default {DEFAULT_JUDGE}, plus a Places365 "
                        "model whose weights are present)")
    p.add_argument("--group", help="class group the reading is about (default: dogs for an ImageNet judge, "
                                   "outdoor man-made for a Places365 judge)")
    p.add_argument("--no-control", action="store_true", help="leave out the untrained twins (not recommended)")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files, folders of images, or sample names")
    p.add_argument("--size", type=int, default=224, help="longest side in px the images are dreamed at (default 224)")
    p.add_argument("--out", required=True, type=Path, help="the tidy study as CSV (one row per dream and group)")
    p.add_argument("--results", type=Path, help="the study's results folder (default: beside --out, "
                                                "OUT-results/); a rerun carries on where it stopped")
    add_device_args(p)
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="print each judge's summary and reading as JSON")
    p.set_defaults(handler=cmd_bias)


def reading_group(judge: str, groups: list[str], dataset: str, asked: str | None) -> str:
    if asked is None:
        return DEFAULT_GROUP[dataset]
    if asked not in groups:
        raise ConfigError(f"The judge {judge} has no group '{asked}'. Groups: {', '.join(groups)}.")
    return asked


def cmd_bias(args: argparse.Namespace) -> None:
    """A shortcut onto the study engine: a plan from the flags, run here into a results folder beside the CSV
    (run again, it carries on where it stopped), then the tidy table as CSV and each judge's reading."""
    check_outputs(args)
    depths = parse_depths(args.depths)
    config = config_from_args(args)
    images = expand_images(args.images)
    if not images and not args.noise_seeds:
        raise ConfigError("Give at least one IMAGE (a file, a folder or a sample name such as cat_chelsea) "
                          "or --noise-seeds N.")
    if not 0 <= args.noise_seeds <= 100:
        raise ConfigError("Choose 0 to 100 noise seeds.")
    for name in args.judge:
        check_judge_name(name)
    plan = plan_from(args.model, args.no_control, depths, [], images, args.noise_seeds, [config.seed], args.judge,
                     args.size, args.preset, config, pick_precision(args.precision, pick_device(args.device)))
    folder = args.results or args.out.with_name(args.out.stem + "-results")
    progress = Progress("bias study", unit="item")
    try:
        executors.run(plan, folder, executors.InProcess(args.device), resume=True, on_step=progress,
                      on_skip=lambda image, why: tqdm.write(f"skipped {image}: {why}", file=sys.stderr))
    finally:
        progress.close()
    table = study_stats.tidy(Results.open(folder).table(), plan)
    write_file(args.out, table.to_csv(index=False))
    report = []
    for judge in plan.judges:
        dataset = zoo.get_spec(judge).labels
        group = reading_group(judge, list(class_groups(dataset)), dataset, args.group)
        report.append({"judge": judge, "group": group,
                       "summary": bias.summary(table, group, judge).to_dict(orient="records"),
                       "reading": bias.reading(table, group, judge)})
    names = list(dict.fromkeys(table["image"]))
    if args.json:
        return print_json({"out": str(args.out), "results": str(folder), "models": list(plan.models),
                           "depths": depths, "images": names, "judges": report})
    for part in report:
        print(f"\njudge {part['judge']} · group '{part['group']}' · {len(names)} image(s) at {args.size} px")
        print(f"  {'model':<34}{'depth':>6}  {'layer':<16}{'originals':>10}{'dreams':>10}{'ratio':>8}")
        for row in part["summary"]:
            print(f"  {row['model']:<34}{row['depth']:>6g}  {row['layer']:<16}{row['share_original']:>10.2%}"
                  f"{row['share_dream']:>10.2%}{row['ratio']:>7.1f}x")
        for line in part["reading"]:
            print(f"  · {line}")
    dreams = table["item"].nunique()
    print(f"\nwrote {len(table)} rows ({dreams} dreams) to {args.out}; every dream is in {folder} "
          f"('study report {folder}' adds intervals)")
