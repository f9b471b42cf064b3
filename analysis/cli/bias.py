"""The bias command: dream at several depths, judge originals and dreams, measure the dog effect."""

from __future__ import annotations

import argparse
from pathlib import Path

from analysis import bias
from analysis.cli import print_json
from analysis.cli.core import Progress, add_config_args, add_device_args, check_outputs, config_from_args, image_source
from analysis.cli.study import expand_images
from analysis.compare import parse_depths
from analysis.errors import ConfigError
from analysis.export import write_file
from analysis.models import DEFAULT_MODEL, LoadedModel, load_model


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("bias", help="dataset bias: what each model's dreams are judged to be (the dog effect)")
    p.add_argument("--model", action="append", default=[],
                   help=f"model that dreams (repeatable; default {DEFAULT_MODEL}); its untrained twin is added")
    p.add_argument("--depths", default=",".join(f"{d:g}" for d in bias.DEFAULT_DEPTHS),
                   help="relative layer depths 0 to 1, comma-separated (default %(default)s)")
    p.add_argument("--noise-seeds", type=int, default=0, help="also dream N grey-noise images (seeds 0 to N-1)")
    p.add_argument("--judge", action="append", default=[],
                   help=f"classifier that judges (repeatable; default {bias.DEFAULT_JUDGE}, plus a Places365 "
                        "model whose weights are present)")
    p.add_argument("--group", help="class group the reading is about (default: dogs for an ImageNet judge, "
                                   "outdoor man-made for a Places365 judge)")
    p.add_argument("--no-control", action="store_true", help="leave out the untrained twins (not recommended)")
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files, folders of images, or sample names")
    p.add_argument("--size", type=int, default=224, help="longest side in px the images are dreamed at (default 224)")
    p.add_argument("--out", required=True, type=Path, help="the tidy study as CSV (one row per dream and group)")
    add_device_args(p)
    add_config_args(p)
    p.add_argument("--json", action="store_true", help="print each judge's summary and reading as JSON")
    p.set_defaults(handler=cmd_bias)


def study_image(item: str, size: int) -> bias.StudyImage:
    _, path = image_source(item)
    return bias.upload_image(path.name, path.read_bytes(), size) if path else bias.sample_image(item, size)


def reading_group(judge: bias.Judge, asked: str | None) -> str:
    if asked is None:
        return bias.DEFAULT_GROUP[judge.dataset]
    if asked not in judge.groups:
        raise ConfigError(f"The judge {judge.name} has no group '{asked}'. Groups: {', '.join(judge.groups)}.")
    return asked


def cmd_bias(args: argparse.Namespace) -> None:
    check_outputs(args)
    depths = parse_depths(args.depths)
    config = config_from_args(args)
    images = [study_image(item, args.size) for item in expand_images(args.images)]
    images += bias.noise_images(args.noise_seeds, args.size)
    if not images:
        raise ConfigError("Give at least one IMAGE (a file, a folder or a sample name such as cat_chelsea) "
                          "or --noise-seeds N.")
    names = args.model or [DEFAULT_MODEL]
    names = names if args.no_control else bias.with_controls(names)
    loaded: dict[str, LoadedModel] = {}
    for name in dict.fromkeys(names + (args.judge or bias.default_judges())):
        loaded[name] = load_model(name, device=args.device, precision=args.precision)
    judges = [bias.Judge.of(loaded[name]) for name in dict.fromkeys(args.judge or bias.default_judges())]
    groups = {judge.name: reading_group(judge, args.group) for judge in judges}
    progress = Progress("bias study")
    try:
        study = bias.run_study([loaded[n] for n in names], depths, images, judges, config, on_step=progress)
    finally:
        progress.close()
    write_file(args.out, study.table.to_csv(index=False))
    report = [{"judge": judge.name, "group": groups[judge.name],
               "summary": bias.summary(study.table, groups[judge.name], judge.name).to_dict(orient="records"),
               "reading": bias.reading(study.table, groups[judge.name], judge.name)} for judge in judges]
    if args.json:
        return print_json({"out": str(args.out), "models": names, "depths": depths,
                           "images": [image.name for image in images], "judges": report})
    for part in report:
        print(f"\njudge {part['judge']} · group '{part['group']}' · {len(images)} image(s) at {args.size} px")
        print(f"  {'model':<34}{'depth':>6}  {'layer':<16}{'originals':>10}{'dreams':>10}{'ratio':>8}")
        for row in part["summary"]:
            print(f"  {row['model']:<34}{row['depth']:>6g}  {row['layer']:<16}{row['share_original']:>10.2%}"
                  f"{row['share_dream']:>10.2%}{row['ratio']:>7.1f}x")
        for line in part["reading"]:
            print(f"  · {line}")
    print(f"\nwrote {len(study.table)} rows ({study.done} dreams) to {args.out}")
