"""The `video` command: a frame-coherent dream of a video along the optical flow (analysis/video.py)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from analysis import zoo
from analysis.cli.arguments import (
    Progress,
    StopOnInterrupt,
    add_config_args,
    add_model_args,
    check_outputs,
    config_from_args,
    load_from_args,
    print_json,
)
from analysis.errors import ConfigError
from analysis.objectives import DEFAULT_DEPTH, LayerL2
from analysis.pngmeta import write_file
from analysis.video import (
    DEFAULT_FRAME_SIDE,
    FLOWS,
    LIMITS_TEXT,
    RECIPE_FILE,
    VideoDream,
    VideoRecipe,
    VideoSettings,
    parse_frame_range,
    parse_schedule,
    probe_video,
    run_video_recipe,
    video_recipe,
    write_gif,
    write_mp4,
)


def register(commands: argparse._SubParsersAction) -> None:
    defaults = VideoSettings()
    p = commands.add_parser(
        "video", help="dream a video frame by frame along the optical flow (MP4 with the source's audio)",
        description=f"Dream a video: the first frame a full dream, every next frame the previous dream's detail "
                    f"carried along the optical flow plus a short dream. Limits: {LIMITS_TEXT}.")
    p.add_argument("--in", dest="source", required=True, type=Path,
                   help=f"the video (MP4, WebM, MOV, MKV, animated GIF; {LIMITS_TEXT})")
    p.add_argument("--out", required=True, type=Path, help="output video, .mp4 (H.264, the source's audio kept)")
    add_model_args(p)
    p.add_argument("--layer", help=f"layer name or alias, or a schedule FRAME:LAYER,... from source frames on "
                                   f"(e.g. 0:block5,48:block8); default: the layer at depth {DEFAULT_DEPTH}")
    p.add_argument("--size", type=int, default=DEFAULT_FRAME_SIDE,
                   help=f"longest side of the dreamed frames in px (default {DEFAULT_FRAME_SIDE}; never enlarged)")
    add_config_args(p, step_flag="--step-size")  # google by default: its gentle steps flicker least
    p.add_argument("--flow", choices=FLOWS, default=defaults.flow,
                   help="optical flow: dis (default), farneback, or none (plain blending with the previous dream)")
    p.add_argument("--blend-moving", type=float, default=defaults.blend_moving,
                   help=f"share of the carried detail kept where the content moves (default {defaults.blend_moving})")
    p.add_argument("--blend-static", type=float, default=defaults.blend_static,
                   help=f"... where it stands still; with --flow none, the previous dream's share "
                        f"(default {defaults.blend_static})")
    p.add_argument("--frames", default=":", help="source frames A:B, A included, B not (default: all)")
    p.add_argument("--step", dest="frame_step", type=int, default=1,
                   help="dream every N-th source frame (the video then runs at the source rate / N; default 1)")
    p.add_argument("--steps-per-frame", type=int, default=defaults.steps_per_frame,
                   help=f"steps per octave for every frame after the first (default {defaults.steps_per_frame})")
    p.add_argument("--gif", type=Path, help="also write a looping GIF here")
    p.add_argument("--work", type=Path, help="folder for the finished frames (default: OUT with .frames)")
    p.add_argument("--resume", action="store_true", help="continue after the last finished frame in the work folder")
    p.add_argument("--keep-frames", action="store_true", help="keep the work folder's frames after a complete run")
    p.add_argument("--recipe-out", type=Path, help="write the video recipe JSON here")
    p.add_argument("--recipe", type=Path, help="replay a video recipe JSON on --in (other dream settings are ignored)")
    p.add_argument("--json", action="store_true", help="print the run's metadata as JSON")
    p.set_defaults(handler=cmd_video)


def _recipe(args: argparse.Namespace) -> tuple[VideoRecipe, zoo.LoadedModel]:
    """The recipe to run (read from --recipe, or made from the arguments) and its model; the source is probed first."""
    info = probe_video(args.source)
    if args.recipe:
        if not args.recipe.is_file():
            raise ConfigError(f"No recipe file at {args.recipe}.")
        recipe = VideoRecipe.from_json(args.recipe.read_bytes())
        return recipe, load_from_args(args, recipe.dream.model, recipe.dream.precision)
    config = config_from_args(args)
    start, stop = parse_frame_range(args.frames)
    schedule = parse_schedule(args.layer) if args.layer else ()
    settings = VideoSettings(args.flow, args.blend_moving, args.blend_static, args.steps_per_frame, start, stop,
                             args.frame_step, schedule if len(schedule) > 1 else ()).validate()
    settings.indices(info.frames)  # a range past the end is refused before the model loads
    model = load_from_args(args)
    layer = schedule[0][1] if schedule else model.layer_at_depth(DEFAULT_DEPTH).name
    return video_recipe(model, info, LayerL2(layer), config, settings, args.size), model


def _remove_frames(result: VideoDream, work: Path) -> None:
    """Delete the run's own files (frames, recipe), and the folder if nothing else is in it."""
    for path in [*result.frames, work / RECIPE_FILE]:
        path.unlink(missing_ok=True)
    if work.is_dir() and not any(work.iterdir()):
        shutil.rmtree(work)


def cmd_video(args: argparse.Namespace) -> None:
    if args.out.suffix.lower() != ".mp4":
        raise ConfigError(f"--out must end in .mp4 (got '{args.out.name}'); --gif writes a GIF beside it.")
    if args.gif and args.gif.suffix.lower() != ".gif":
        raise ConfigError(f"--gif must end in .gif (got '{args.gif.name}').")
    check_outputs(args, ("out", "gif", "recipe_out"), ("work",))
    recipe, model = _recipe(args)
    work = args.work or args.out.with_suffix(".frames")
    progress = Progress("video")
    try:
        with StopOnInterrupt() as stop:
            result = run_video_recipe(recipe, args.source, work, model, progress, stop, args.resume)
    finally:
        progress.close()
    if not result.frames:
        raise ConfigError("Stopped before the first frame finished: nothing was written.")
    write_mp4(args.out, result, args.source)
    if args.gif:
        write_gif(args.gif, result)
    if args.recipe_out:
        write_file(args.recipe_out, recipe.finished(result).to_json())
    if not result.cancelled and not args.keep_frames:
        _remove_frames(result, work)
    if args.json:
        return print_json(result.record.to_dict())
    height, width = result.record.extras["video"]["size"]
    flicker = "n/a (one frame)" if result.mean_flicker is None else f"{result.mean_flicker:.2f}"
    stopped = (f" (stopped after {len(result.frames)} of {result.total_frames} frames: --resume continues from "
               f"{work})" if result.cancelled else "")
    print(f"{args.out}: {len(result.frames)} frames of {width}x{height} px at {float(result.fps):.3g} fps, "
          f"flow {recipe.video.flow}, flicker {flicker} (0-255), {result.record.objective_text} on {model.name}, "
          f"audio {'kept' if result.info.has_audio else 'none in the source'}, {result.record.seconds:.1f} s"
          f"{stopped}")
