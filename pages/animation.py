"""Animation: the endless zoom. Each frame is dreamed from the previous one, zoomed in about the centre."""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from analysis.animation import (
    VIDEO_FORMATS,
    Animation,
    AnimationRecipe,
    ZoomSettings,
    contact_sheet,
    run_animation_recipe,
    video_bytes,
)
from analysis.recipes import Recipe
from analysis.zoo import LayerInfo
from dashboard import progress, results, runs, state, widgets

SLOT, RESULT = "animation.job", "animation.result"


@dataclass
class AnimationRun:
    """A finished (or cancelled) zoom: its frames, the videos made of them and the recipe that replays them."""

    animation: Animation
    videos: dict[str, bytes] = field(repr=False)  # suffix -> file
    title: str
    short_title: str  # the Export page's label: what tells results apart first
    recipe: AnimationRecipe
    input_bytes: bytes | None = field(default=None, repr=False)


def zoom_ui(on_cpu: bool) -> ZoomSettings:
    """Frames, zoom and turn per frame, and the video's frame rate (checked when the run starts)."""
    st.subheader("3 · The zoom")
    for key, value in (("frames", 16 if on_cpu else 60), ("zoom", 0.05), ("rotation", 0.0), ("fps", 12)):
        state.default(f"keep.animation.{key}", value)
    frames = st.slider("Frames", 2, 240, key="keep.animation.frames",
                       help="Every frame is a short dream of its own: the time grows with the number of frames.")
    left, right = st.columns(2)
    zoom = left.slider("Zoom per frame", 0.0, 0.2, step=0.01, key="keep.animation.zoom",
                       help="0.05 = 5 % closer each frame, as in Google's 2015 notebook.")
    rotation = right.slider("Turn per frame (degrees)", -10.0, 10.0, step=0.5, key="keep.animation.rotation",
                            help="Positive turns counter-clockwise.")
    fps = st.slider("Frames per second (video)", 2, 30, key="keep.animation.fps")
    return ZoomSettings(int(frames), float(zoom), float(rotation), int(fps))


def start(choice: widgets.ModelChoice, layer: LayerInfo, image_choice: widgets.ImageChoice,
          objective_choice: widgets.ObjectiveChoice, settings: widgets.SettingsChoice, zoom: ZoomSettings) -> None:
    """The one library call: run_animation_recipe, then the videos."""
    with state.user_errors():
        config = settings.config()
        zoom_settings = zoom.validate()
        image_choice.load(settings.size)  # a bad upload is refused here, before the job starts
        objective = objective_choice.build(layer, settings.size)
        model = state.load_model(choice.name)
        recipe = AnimationRecipe(Recipe(model.name, objective.to_dict(), config, image_choice.source(settings.size),
                                        settings.size, model.precision), zoom_settings)
        what = objective_choice.describe(layer, model.labels)
        title = f"{model.spec.title}: {what}, from {image_choice.title}"
        short = f"{image_choice.title} · {what} · zoom"

        def work(on_step, should_cancel) -> AnimationRun:
            animation = run_animation_recipe(recipe, model, on_step, should_cancel)
            videos = {suffix: video_bytes(animation.frames, suffix, zoom_settings.fps)
                      for suffix in VIDEO_FORMATS} if animation.frames else {}
            return AnimationRun(animation, videos, title, short, recipe.finished(animation), image_choice.data)

        runs.start_run(SLOT, f"Dreaming {zoom_settings.frames} frames", work, model.device, dream_config=config,
                       dreams=zoom_settings.frames)


def keep(run: AnimationRun) -> None:
    """Store the finished (or cancelled) run and put its last frame in the session's results."""
    st.session_state[RESULT] = run
    animation = run.animation
    if animation.frames:
        results.add_result("animation", f"{run.short_title} frame {len(animation.frames)}", animation.frames[-1],
                           animation.record, input_bytes=run.input_bytes)


def video_ui(run: AnimationRun) -> None:
    animation, videos = run.animation, run.videos
    height, width = animation.frames[0].shape[-2:]
    st.video(videos[".mp4"], loop=True, autoplay=True, muted=True)
    st.caption(f"{len(animation.frames)} frames of {width} x {height} px at "
               f"{animation.record.extras['animation']['fps']} fps · {animation.record.seconds:.0f} s "
               f"on {animation.record.device}")
    a, b, c = st.columns(3)
    a.download_button("MP4", videos[".mp4"], file_name="dream-zoom.mp4", mime="video/mp4",
                      key="animation.mp4", on_click="ignore", icon=":material/movie:", width="stretch")
    b.download_button("GIF", videos[".gif"], file_name="dream-zoom.gif", mime="image/gif",
                      key="animation.gif", on_click="ignore", icon=":material/gif_box:", width="stretch")
    c.download_button("Recipe", run.recipe.to_json(), file_name="dream-zoom.recipe.json",
                      mime="application/json", key="animation.recipe", on_click="ignore",
                      icon=":material/receipt_long:", width="stretch",
                      help=f"These {len(animation.frames)} frames' settings as JSON: `python -m analysis "
                           "zoom --recipe dream-zoom.recipe.json --out again.mp4` dreams them again (on the "
                           "CPU, to identical pixels).")


def sheet_ui(run: AnimationRun) -> None:
    grid = contact_sheet(run.animation, title=run.title)
    st.image(grid.render(), caption="Frames, evenly spaced")
    recipe_about = ("the animation recipe: `python -m analysis zoom --recipe dream-zoom.recipe.json "
                    "--out again.mp4` dreams these frames again (on the CPU, to identical pixels)")
    results.export_buttons(grid, key="animation.sheet", file_stem="dream-zoom-frames",
                           note=":material/replay: These frames are stills: the **Recipe** beside the video, "
                                "also in the bundle, replays the whole animation.",
                           attachments={"dream-zoom.recipe.json": (run.recipe.to_json(), recipe_about)})


def show(run: AnimationRun) -> None:
    animation = run.animation
    requested = animation.record.extras["animation"]["frames"]
    st.divider()
    st.subheader(run.title)
    if animation.cancelled:
        st.warning(f"Cancelled after {len(animation.frames)} of {requested} frames: the videos hold the frames "
                   "so far.", icon=":material/stop_circle:")
    if not animation.frames:
        st.info("No frame finished before the cancel, so there is nothing to show.")
        return
    movie, sheet = st.columns([2, 3])
    with movie:
        video_ui(run)
    with sheet:
        sheet_ui(run)


def main() -> None:
    st.title("Animation: the endless zoom")
    st.caption("Each frame is dreamed from the previous one after zooming in a little (and optionally turning), so "
               "the network keeps hallucinating into the detail it just added. Start from a photo or from noise.")
    choice = widgets.model_ui()
    layer = widgets.layer_ui(choice)
    on_cpu = state.current_device() == "cpu"
    image_column, settings_column = st.columns([3, 2], gap="large")
    with image_column:
        st.subheader("1 · Start image")
        image_choice = widgets.image_ui("animation")
        st.subheader("2 · What to amplify")
        objective_choice = widgets.objective_ui("animation", choice, layer)
    with settings_column:
        zoom = zoom_ui(on_cpu)
        st.subheader("4 · Each frame")
        settings = widgets.settings_ui("animation", default_preset="quick", default_size=192 if on_cpu else 512,
                                       max_size=768)
        with state.user_errors():
            per_frame = settings.config().total_steps
            st.caption(f"Each frame takes {per_frame} steps; {zoom.frames} frames take {per_frame * zoom.frames} "
                       "steps.")
        if widgets.run_button("Dream the zoom", "animation.run", ":material/animated_images:", choice, SLOT,
                              image_choice):
            start(choice, layer, image_choice, objective_choice, settings, zoom)
    progress.panel(SLOT, on_done=keep)
    run = st.session_state.get(RESULT)
    if run is not None:
        show(run)


main()
