"""The study command: plan a study, run it (here or on a Ray cluster) into a results folder, report on it."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from analysis import bias
from analysis.cli.arguments import Progress, add_config_args, config_from_args, print_json
from analysis.errors import ConfigError
from analysis.featviz import PARAMETERISATIONS, FeatvizConfig
from analysis.objectives import parse_channels
from analysis.pngmeta import write_file
from analysis.studies import executors
from analysis.studies import stats as study_stats
from analysis.studies.judging import DEFAULT_JUDGE, check_depths, default_judges, with_controls
from analysis.studies.overview import SHEET_LIMIT, overview, sheet, sheet_html
from analysis.studies.plan import ALL_SAMPLES, WORKLOADS, Plan, default_threads, expand
from analysis.studies.store import Results
from analysis.zoo import DEFAULT_MODEL, PRECISIONS


def register(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("study", help="studies at dataset scale: plan, run (here or on Ray), report")
    sub = p.add_subparsers(dest="study_command", required=True, metavar="STEP")

    q = sub.add_parser("plan", help="write a study plan (JSON) from flags")
    q.add_argument("--workload", default=WORKLOADS[0], choices=WORKLOADS,
                   help="bias (default): each dream judged; sweep: every image dreamed at each layer, no judge; "
                        "gallery: every channel of each layer rendered by feature visualisation (no images)")
    q.add_argument("--channels", help="gallery: channels such as 0-15,20 (default: every channel of each layer)")
    q.add_argument("--featviz-steps", type=int, default=FeatvizConfig.steps,
                   help="gallery: optimisation steps per render (default %(default)s)")
    q.add_argument("--param", default="fft", choices=PARAMETERISATIONS,
                   help="gallery: fft (lucent's) or maco (phase only, natural magnitude)")
    q.add_argument("--model", action="append", default=[],
                   help=f"model that dreams (repeatable; default {DEFAULT_MODEL}); its untrained twin is added")
    q.add_argument("--no-control", action="store_true", help="leave out the untrained twins (not recommended)")
    q.add_argument("--depths", help="relative layer depths 0 to 1, comma-separated (default 0.2,0.4,0.6,0.8 "
                                    "unless --layers)")
    q.add_argument("--layers", help="layers by name or alias, comma-separated (each model must have them)")
    q.add_argument("--images", action="append", default=[],
                   help=f"a folder (searched recursively), a glob, a file, a bundled sample name, or '{ALL_SAMPLES}' "
                        "for every bundled photo (repeatable; not for a gallery)")
    q.add_argument("--noise-seeds", type=int, default=0, help="also dream N grey-noise images (seeds 0 to N-1)")
    q.add_argument("--seeds", default="0", help="dream seeds, comma-separated (default 0)")
    q.add_argument("--judge", action="append", default=[],
                   help=f"classifier that judges (repeatable; default {DEFAULT_JUDGE}, plus a Places365 "
                        "model whose weights are present)")
    q.add_argument("--size", type=int, default=224, help="longest side in px (default 224; a gallery's renders are "
                                                          "square, 32 to 512 px)")
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
    s.add_argument("--out", type=Path, help="also write the charts and the reading (a sweep or gallery: its contact "
                                            "sheet) as one offline HTML page")
    s.add_argument("--limit", type=int, default=SHEET_LIMIT,
                   help="a sweep or gallery: pictures on the contact sheet at most (default %(default)s)")
    s.add_argument("--json", action="store_true", help="print the intervals and the reading as JSON")
    s.set_defaults(handler=cmd_report)


MAX_CHANNEL = 100_000
"""--channels is checked against each layer when the plan is expanded; this only bounds the flag."""


def numbers(text: str, kind: type, what: str) -> list:
    try:
        return [kind(part) for part in text.replace(";", ",").split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"'{text}' is not a list of {what} (comma-separated numbers).") from None


def plan_from(models: list[str], no_control: bool, depths: list[float], layers: list[str], images: list[str],
              noise_seeds: int, seeds: list[int], judges: list[str], size: int, preset: str, config: object,
              precision: str = "fp32", threads: int | None = None, workload: str = WORKLOADS[0],
              channels: tuple[int, ...] = (), featviz: FeatvizConfig | None = None) -> Plan:
    """The plan the flags describe (shared by 'study plan' and the 'bias' shortcut), validated.
    Only a bias study judges: a sweep or a gallery given a judge is refused by the plan."""
    names = models or [DEFAULT_MODEL]
    judged = tuple(dict.fromkeys(judges or default_judges())) if workload == "bias" else tuple(judges)
    return Plan(models=tuple(names if no_control else with_controls(names)), depths=tuple(depths),
                layers=tuple(layers), images=tuple(images), noise_seeds=noise_seeds, seeds=tuple(seeds),
                config=config, preset=preset, size=size, judges=judged, precision=precision,
                threads=threads or default_threads(), workload=workload, channels=channels,
                featviz=featviz or FeatvizConfig()).validate()


def cmd_plan(args: argparse.Namespace) -> None:
    if args.seed is not None:
        raise ConfigError("A study's seeds are --seeds (comma-separated), not --seed.")
    layers = [part.strip() for part in (args.layers or "").split(",") if part.strip()]
    depths = check_depths(numbers(args.depths, float, "depths")) if args.depths else \
        ([] if layers else list(bias.DEFAULT_DEPTHS))
    if args.workload != "gallery" and (args.channels or args.param != "fft"
                                       or args.featviz_steps != FeatvizConfig.steps):
        raise ConfigError("--channels, --featviz-steps and --param belong to a gallery (--workload gallery).")
    channels = tuple(parse_channels(args.channels, MAX_CHANNEL)) if args.channels else ()
    settings = replace(FeatvizConfig(), steps=args.featviz_steps, parameterisation=args.param)
    plan = plan_from(args.model, args.no_control, depths, layers, args.images, args.noise_seeds,
                     numbers(args.seeds, int, "seeds"), args.judge, args.size, args.preset, config_from_args(args),
                     args.precision, args.threads, args.workload, channels, settings)
    items = expand(plan)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(plan.to_json())
    layers_count = len(plan.depths) + len(plan.layers)
    if plan.workload == "gallery":
        print(f"{args.out}: {len(items)} renders ({len(plan.models)} models x {layers_count} layers x their channels "
              f"x {len(plan.seeds)} seeds), {plan.featviz.steps} steps each at {plan.size} px")
        return
    images = len({item.image.name for item in items})
    print(f"{args.out}: {len(items)} items ({len(plan.models)} models x {layers_count} layers "
          f"x {images} images x {len(plan.seeds)} seeds), {plan.config.total_steps} steps each at {plan.size} px"
          + ("" if plan.workload == "bias" else " (a sweep: no judge)"))


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
    if Results.open(args.results).plan().workload != "bias":
        return report_sheet(args)
    view = overview(args.results, args.group, args.judge, args.over, args.resamples)
    read = view.reading
    if args.out:
        from analysis import figures  # plotly: only for the page

        charts = [figures.study_ratio_depth(read.intervals)]
        if len(view.table):
            charts.append(figures.bias_emergent(view.emergent()))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        title = f"Study {args.results.name}: '{view.group}' judged by {view.judge}"
        args.out.write_text(figures.figures_html(title, charts,
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


def report_sheet(args: argparse.Namespace) -> None:
    """A sweep's or a gallery's report: progress, a line per model and layer, the contact sheet with --out."""
    if not 1 <= args.limit <= 100_000:
        raise ConfigError("--limit must be 1 to 100000 pictures.")
    view = sheet(args.results)
    summary = view.summary()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_file(args.out, sheet_html(view, args.limit))
    if args.json:
        return print_json({"results": str(args.results), "workload": view.plan.workload, "state": view.state,
                           "rows": len(view.rows), "planned": view.planned, "skipped_images": view.skipped,
                           "layers": summary.to_dict(orient="records"), "out": str(args.out) if args.out else None})
    measure = summary.columns[-1]
    print(f"{args.results}: {view.plan.workload}, {len(view.rows)} of {view.planned} items ({view.state})")
    print(f"  {'model':<34}{'depth':>6}  {'layer':<14}{'items':>7}  mean {measure.replace('_', ' ')}")
    for row in summary.itertuples(index=False):
        print(f"  {row.model:<34}{row.depth:>6g}  {row.layer:<14}{row.items:>7}  {row[-1]:.4g}")
    if view.skipped:
        print(f"  {len(view.skipped)} unreadable image(s) skipped: {', '.join(view.skipped)}")
    if args.out:
        print(f"wrote {args.out} (contact sheet, at most {args.limit} pictures)")
