"""The study command: plan a study, run it (here or on a Ray cluster) into a results folder, report on it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from analysis import bias
from analysis.cli import print_json
from analysis.cli.core import Progress, add_config_args, config_from_args
from analysis.errors import ConfigError
from analysis.export import figures_html
from analysis.studies import executors
from analysis.studies import stats as study_stats
from analysis.studies.judging import check_depths, default_judges, with_controls
from analysis.studies.overview import overview
from analysis.studies.plan import ALL_SAMPLES, Plan, default_threads, expand
from analysis.zoo import DEFAULT_MODEL, PRECISIONS


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("study", help="studies at dataset scale: plan, run (here or on Ray), report")
    sub = p.add_subparsers(dest="study_command", required=True, metavar="STEP")

    q = sub.add_parser("plan", help="write a study plan (JSON) from flags")
    q.add_argument("--model", action="append", default=[],
                   help=f"model that dreams (repeatable; default {DEFAULT_MODEL}); its untrained twin is added")
    q.add_argument("--no-control", action="store_true", help="leave out the untrained twins (not recommended)")
    q.add_argument("--depths", help="relative layer depths 0 to 1, comma-separated (default 0.2,0.4,0.6,0.8 "
                                    "unless --layers)")
    q.add_argument("--layers", help="layers by name or alias, comma-separated (each model must have them)")
    q.add_argument("--images", action="append", default=[],
                   help=f"a folder (searched recursively), a glob, a file, a bundled sample name, or '{ALL_SAMPLES}' "
                        "for every bundled photo (repeatable)")
    q.add_argument("--noise-seeds", type=int, default=0, help="also dream N grey-noise images (seeds 0 to N-1)")
    q.add_argument("--seeds", default="0", help="dream seeds, comma-separated (default 0)")
    q.add_argument("--judge", action="append", default=[],
                   help=f"classifier that judges (repeatable; default {bias.DEFAULT_JUDGE}, plus a Places365 "
                        "model whose weights are present)")
    q.add_argument("--size", type=int, default=224, help="longest side in px (default 224)")
    q.add_argument("--precision", default="fp32", choices=PRECISIONS, help="fp32 (default) or bf16")
    q.add_argument("--threads", type=int, default=default_threads(),
                   help="torch threads per item, fixed so every executor gives the same pixels (default: this "
                        "machine's, %(default)s)")
    add_config_args(q)
    q.add_argument("--out", required=True, type=Path, help="the plan JSON")
    q.set_defaults(handler=cmd_plan)

    r = sub.add_parser("run", help="run a plan into a results folder (resumable)")
    r.add_argument("plan", type=Path, help="the plan JSON")
    r.add_argument("--out", required=True, type=Path, help="the results folder")
    r.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help=f"run on Ray: alone, the cluster in ${executors.RAY_ADDRESS_ENV} or Ray started here; "
                        "with ADDRESS (HOST:PORT), that cluster")
    r.add_argument("--resume", action="store_true", help="carry on a stopped run: only the missing items are dreamed")
    r.add_argument("--batch", type=int, default=executors.DEFAULT_BATCH,
                   help="items per committed batch (default %(default)s)")
    r.add_argument("--device", default=None, help="in-process: auto, cpu, cuda or mps (default auto)")
    r.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    r.set_defaults(handler=cmd_run)

    s = sub.add_parser("report", help="intervals and reading of a results folder (finished or running)")
    s.add_argument("results", type=Path, help="the results folder")
    s.add_argument("--group", help="class group (default: dogs for an ImageNet judge, outdoor man-made for Places)")
    s.add_argument("--judge", help="which judge (default: the plan's first)")
    s.add_argument("--over", default="images", choices=sorted(study_stats.UNITS),
                   help="bootstrap over images (default) or seeds")
    s.add_argument("--resamples", type=int, default=study_stats.RESAMPLES,
                   help="bootstrap resamples (default %(default)s)")
    s.add_argument("--out", type=Path, help="also write the charts and the reading as one offline HTML page")
    s.add_argument("--json", action="store_true", help="print the intervals and the reading as JSON")
    s.set_defaults(handler=cmd_report)


def numbers(text: str, kind: type, what: str) -> list:
    try:
        return [kind(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"'{text}' is not a list of {what} (comma-separated numbers).") from None


def plan_from(models: list[str], no_control: bool, depths: list[float], layers: list[str], images: list[str],
              noise_seeds: int, seeds: list[int], judges: list[str], size: int, preset: str, config: object,
              precision: str = "fp32", threads: int | None = None) -> Plan:
    """The plan the flags describe (shared by 'study plan' and the 'bias' shortcut), validated."""
    names = models or [DEFAULT_MODEL]
    return Plan(models=tuple(names if no_control else with_controls(names)), depths=tuple(depths),
                layers=tuple(layers), images=tuple(images), noise_seeds=noise_seeds, seeds=tuple(seeds),
                config=config, preset=preset, size=size, judges=tuple(dict.fromkeys(judges or default_judges())),
                precision=precision, threads=threads or default_threads()).validate()


def cmd_plan(args: argparse.Namespace) -> None:
    if args.seed is not None:
        raise ConfigError("A study's seeds are --seeds (comma-separated), not --seed.")
    layers = [part.strip() for part in (args.layers or "").split(",") if part.strip()]
    depths = check_depths(numbers(args.depths, float, "depths")) if args.depths else \
        ([] if layers else list(bias.DEFAULT_DEPTHS))
    plan = plan_from(args.model, args.no_control, depths, layers, args.images, args.noise_seeds,
                     numbers(args.seeds, int, "seeds"), args.judge, args.size, args.preset, config_from_args(args),
                     args.precision, args.threads)
    items = expand(plan)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(plan.to_json())
    images = len({item.image.name for item in items})
    print(f"{args.out}: {len(items)} items ({len(plan.models)} models x {len(plan.depths) + len(plan.layers)} layers "
          f"x {images} images x {len(plan.seeds)} seeds), {plan.config.total_steps} steps each at {plan.size} px")


def cmd_run(args: argparse.Namespace) -> None:
    plan = Plan.load(args.plan)
    executor = executors.executor_for(args.ray)
    if isinstance(executor, executors.InProcess):
        executor.device = args.device
    progress = Progress(f"study ({executor.name})", unit="item")

    def skipped(image: str, why: str) -> None:
        tqdm.write(f"skipped {image}: {why}", file=sys.stderr)

    try:
        summary = executors.run(plan, args.out, executor, resume=args.resume, batch_size=args.batch,
                                on_step=progress, on_skip=skipped)
    finally:
        progress.close()
    record = {"results": str(args.out), "executor": summary.executor, "planned": summary.planned,
              "done": summary.done, "written": summary.written, "skipped_images": len(summary.skipped),
              "seconds": round(summary.seconds, 2), "items_per_second": round(summary.per_second, 4)}
    if args.json:
        return print_json(record)
    print(f"{args.out}: {summary.done} of {summary.planned} items done ({summary.written} now, "
          f"{summary.done_before} before) in {summary.seconds:.1f} s, {summary.per_second:.2f} items/s "
          f"({summary.executor}); {len(summary.skipped)} unreadable image(s) skipped")


def cmd_report(args: argparse.Namespace) -> None:
    view = overview(args.results, args.group, args.judge, args.over, args.resamples)
    read = view.reading
    if args.out:
        from analysis import figures  # plotly: only for the page

        charts = [figures.study_ratio_depth(read.intervals)]
        if len(view.table):
            charts.append(figures.bias_emergent(view.emergent()))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(figures_html(f"Study {args.results.name}: '{view.group}' judged by {view.judge}", charts,
                                         read.lines + [f"{len(view.skipped)} unreadable image(s) skipped."]))
    if args.json:
        return print_json({"results": str(args.results), "state": view.state, "rows": view.rows,
                           "planned": view.planned, "skipped_images": view.skipped, "judge": view.judge,
                           "group": view.group, "over": args.over,
                           "intervals": read.intervals.to_dict(orient="records"),
                           "controls": read.controls.to_dict(orient="records"), "reading": read.lines})
    print(f"{args.results}: {view.rows} of {view.planned} items ({view.state}) · judge {view.judge} · group "
          f"'{view.group}' · 95% bootstrap over {args.over}")
    print(f"  {'model':<34}{'depth':>6}  {'layer':<14}{'originals':>10}{'dreams':>10}{'ratio':>8}  95% CI")
    for row in read.intervals.itertuples():
        print(f"  {row.model:<34}{row.depth:>6g}  {row.layer:<14}{row.share_original:>10.2%}{row.share_dream:>10.2%}"
              f"{row.ratio:>7.2f}x  {row.low:.2f}x to {row.high:.2f}x ({row.units} {args.over})")
    for line in read.lines:
        print(f"  · {line}")
    skipped = f": {', '.join(view.skipped)}" if view.skipped else ""
    print(f"  {len(view.skipped)} unreadable image(s) skipped{skipped}")
    if args.out:
        print(f"wrote {args.out}")
