"""Video: a dream of a whole video that holds still, the previous frame's detail carried along the optical flow."""

from __future__ import annotations

import hashlib
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st

from analysis import labels
from analysis.dream import DreamConfig
from analysis.errors import LabError
from analysis.objectives import LayerL2
from analysis.video import (
    FLOWS,
    LIMITS_TEXT,
    MAX_VIDEO_BYTES,
    VideoDream,
    VideoInfo,
    VideoRecipe,
    VideoSettings,
    dream_video,
    pan_clip,
    parse_schedule,
    probe_video,
    video_recipe,
    write_gif,
    write_mp4,
)
from analysis.zoo import LayerInfo, LoadedModel
from dashboard import progress, results, runs, state, widgets

SLOT, RESULT, SOURCE = "video.job", "video.result", "video.source"
UPLOAD_TYPES = ["mp4", "webm", "mov", "mkv", "m4v", "gif"]
DEMO, UPLOAD = "Demo: a pan across a sample photo", "My video"
FLOW_NAMES = {"dis": "DIS (fast, OpenCV)", "farneback": "Farneback (OpenCV)",
              "none": "None: plain blending with the previous dream"}


@dataclass
class VideoRun:
    """A finished (or cancelled) video dream, its files, and what Continue needs to carry it on."""

    result: VideoDream
    files: dict[str, bytes] = field(repr=False)  # "mp4", and "gif" when asked for
    title: str
    source: Path
    gif: bool
    full_recipe: VideoRecipe  # the whole run's settings: Continue dreams the rest with them
    recipe: VideoRecipe  # the frames finished, for the Recipe download


def session_folder() -> Path:
    """This browser session's scratch folder: sources, work folders with the finished frames, outputs."""
    if "video.folder" not in st.session_state:
        st.session_state["video.folder"] = str(Path(tempfile.gettempdir()) / "inceptionism-video" / uuid.uuid4().hex)
    return Path(st.session_state["video.folder"])


def probed(path: Path) -> tuple[VideoInfo | None, str | None]:
    """probe_video once per file (cached in Session State): the VideoInfo, or the one-line reason it is refused."""
    cached = st.session_state.get(SOURCE)
    if cached is None or cached[0] != str(path):
        try:
            cached = (str(path), probe_video(path), None)
        except LabError as err:
            cached = (str(path), None, str(err))
        st.session_state[SOURCE] = cached
    return cached[1], cached[2]


def source_ui() -> Path | None:
    """The video to dream: an upload, or a demo clip made from a bundled photo."""
    kind_key = "keep.video.kind"
    state.default(kind_key, DEMO, [DEMO, UPLOAD])
    kind = st.radio("Video", [DEMO, UPLOAD], key=kind_key, horizontal=True, label_visibility="collapsed")
    if kind == UPLOAD:
        stored = widgets.remembered_upload("video", f"MP4, WebM, MOV, MKV or animated GIF: {LIMITS_TEXT}",
                                           UPLOAD_TYPES, MAX_VIDEO_BYTES // 2**20)
        if not stored:
            return None
        name, data = stored
        safe = re.sub(r"[^\w.-]", "_", Path(name).name)[-80:] or "video.mp4"
        path = session_folder() / "sources" / hashlib.sha256(data).hexdigest()[:16] / safe
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return path
    samples = {s.title: s.path for s in labels.sample_images()}
    state.default("keep.video.demo_photo", next(iter(samples)), list(samples))
    state.default("keep.video.demo_frames", 24)
    left, right = st.columns(2)
    photo = left.selectbox("Photo", list(samples), key="keep.video.demo_photo")
    frames = right.slider("Frames (12 fps)", 4, 96, key="keep.video.demo_frames")
    path = session_folder() / "sources" / f"pan-{Path(samples[photo]).stem}-{int(frames)}.mp4"
    if not path.is_file():
        with state.user_errors():
            pan_clip(path, samples[photo], frames=int(frames))
    st.caption("The window slides 2 px a frame to the right (the picture moves left), with a 440 Hz tone.")
    return path if path.is_file() else None


@dataclass(frozen=True)
class FramesChoice:
    """How the frames are chosen and carried from one to the next (checked into VideoSettings)."""

    first: int
    stop: int
    step: int
    flow: str
    blend_moving: float
    blend_static: float
    steps_per_frame: int
    schedule: str
    gif: bool

    def settings(self) -> VideoSettings:
        """The VideoSettings; raises ConfigError (a schedule entry, a range) for the page to show."""
        return VideoSettings(self.flow, self.blend_moving, self.blend_static, self.steps_per_frame, self.first,
                             self.stop or None, self.step,
                             parse_schedule(self.schedule) if self.schedule.strip() else ()).validate()


def source_section() -> tuple[Path | None, VideoInfo | None]:
    st.subheader("1 · The video")
    source = source_ui()
    info, refusal = probed(source) if source is not None else (None, None)
    if refusal:
        state.show_error(refusal)
    elif info is not None:
        st.video(source.read_bytes(), loop=True, muted=True)
        st.caption(f"{info.name}: {info.frames} frames of {info.width} x {info.height} px at {float(info.fps):.3g} fps "
                   f"({info.seconds:.1f} s), {info.codec}, {'with' if info.has_audio else 'no'} sound")
    return source, info


def frames_ui(info: VideoInfo | None) -> FramesChoice:
    st.subheader("2 · Frames and flow")
    defaults = VideoSettings()
    last = info.frames if info is not None else 1
    for key, value in (("start", 0), ("stop", 0), ("step", 1), ("flow", defaults.flow),
                       ("blend_moving", defaults.blend_moving), ("blend_static", defaults.blend_static),
                       ("steps_per_frame", defaults.steps_per_frame), ("schedule", ""), ("gif", True)):
        state.default(f"keep.video.{key}", value)
    a, b, c = st.columns(3)
    first = a.number_input("First frame", 0, max(0, last - 1), step=1, key="keep.video.start")
    stop = b.number_input("Stop before (0 = end)", 0, last, step=1, key="keep.video.stop")
    step = c.number_input("Every n-th frame", 1, 100, step=1, key="keep.video.step",
                          help="The video then runs at the source rate / n, so the sound stays in step.")
    flow = st.selectbox("Optical flow", FLOWS, format_func=FLOW_NAMES.get, key="keep.video.flow")
    left, right = st.columns(2)
    blend_moving = left.slider("Carry where it moves", 0.0, 1.0, step=0.05, key="keep.video.blend_moving",
                               disabled=flow == "none", help="Share of the previous dream's detail kept where the "
                               "content moves (a warp blurs a little).")
    blend_static = right.slider("Carry where it stands still" if flow != "none" else "Previous dream's share",
                                0.0, 1.0, step=0.05, key="keep.video.blend_static")
    steps_per_frame = st.number_input("Steps per octave after the first frame", 1, 100, step=1,
                                      key="keep.video.steps_per_frame",
                                      help="The carried detail is most of each frame: a few steps refresh it.")
    schedule = st.text_input("Layer schedule (optional)", key="keep.video.schedule",
                             placeholder="e.g. 0:block5,48:block8", help="From these source frames on, these "
                             "layers; empty: the layer chosen above for every frame.")
    gif = st.toggle("Also a GIF", key="keep.video.gif")
    return FramesChoice(int(first), int(stop), int(step), flow, float(blend_moving), float(blend_static),
                        int(steps_per_frame), schedule, bool(gif))


def steps_note(info: VideoInfo, config: DreamConfig, video_settings: VideoSettings) -> None:
    count = len(video_settings.indices(info.frames))
    steps = config.total_steps + (count - 1) * config.octaves * video_settings.steps_per_frame
    st.caption(f"{count} frames: the first takes {config.total_steps} steps, each other "
               f"{config.octaves * video_settings.steps_per_frame}; {steps} steps in all.")


def launch(model: LoadedModel, recipe: VideoRecipe, path: Path, gif: bool, title: str) -> None:
    """The one library call: dream_video in the background, then the files. A work folder named by the
    recipe holds its frames, so the same settings continue after the frames already finished (a cancelled
    run, or an earlier one)."""
    key = hashlib.sha256(recipe.to_json().encode()).hexdigest()[:16]
    work, outputs = session_folder() / "work" / key, session_folder() / "out" / key

    def work_fn(on_step, should_cancel) -> VideoRun:
        result = dream_video(model, path, recipe, work, on_step, should_cancel, resume=work.is_dir())
        files = {}
        if result.frames:
            files["mp4"] = write_mp4(outputs / "dream.mp4", result, path).read_bytes()
            if gif:
                files["gif"] = write_gif(outputs / "dream.gif", result).read_bytes()
        return VideoRun(result, files, title, path, gif, recipe, recipe.finished(result))

    count = len(recipe.video.indices(probe_video(path).frames))
    runs.start_run(SLOT, f"Dreaming {count} frames", work_fn, model.device)


def start(choice: widgets.ModelChoice, layer: LayerInfo, info: VideoInfo, source: Path, frames: FramesChoice,
          settings: widgets.SettingsChoice) -> None:
    with state.user_errors():
        model = state.load_model(choice.name)
        recipe = video_recipe(model, info, LayerL2(layer.name), settings.config(), frames.settings(), settings.size)
        flow = FLOW_NAMES[frames.flow].split(" (")[0].split(":")[0]
        launch(model, recipe, source, frames.gif, f"{model.spec.title}: {layer.alias}, {flow} flow, {info.name}")


def resume(run: VideoRun) -> None:
    """Continue a cancelled run with its own settings, whatever the widgets say now."""
    with state.user_errors():
        recipe = run.full_recipe
        launch(state.load_model(recipe.dream.model), recipe, run.source, run.gif, run.title)


def keep(run: VideoRun) -> None:
    """Store the finished (or cancelled) run and put its last frame in the session's results."""
    st.session_state[RESULT] = run
    result = run.result
    if result.frames:
        results.add_result("video", f"{run.title} frame {len(result.frames)}", result.load(len(result.frames) - 1),
                           result.record)


def downloads_ui(run: VideoRun) -> None:
    files = run.files
    columns = st.columns(3)
    columns[0].download_button("MP4", files["mp4"], file_name="dream-video.mp4", mime="video/mp4",
                               key="video.mp4", on_click="ignore", icon=":material/movie:", width="stretch")
    if "gif" in files:
        columns[1].download_button("GIF", files["gif"], file_name="dream-video.gif", mime="image/gif",
                                   key="video.gif", on_click="ignore", icon=":material/gif_box:", width="stretch")
    columns[2].download_button("Recipe", run.recipe.to_json(), file_name="dream-video.recipe.json",
                               mime="application/json", key="video.recipe", on_click="ignore",
                               icon=":material/receipt_long:", width="stretch",
                               help="These frames' settings as JSON, the video named by its sha256: `python -m "
                                    "analysis video --in VIDEO --recipe dream-video.recipe.json --out again.mp4` "
                                    "dreams them again (on the CPU, to identical pixels).")


def show(run: VideoRun) -> None:
    result = run.result
    st.divider()
    st.subheader(run.title)
    if result.cancelled:
        st.warning(f"Cancelled after {len(result.frames)} of {result.total_frames} frames: the video holds the frames "
                   "so far, and Continue dreams the rest.", icon=":material/stop_circle:")
        st.button("Continue", key="video.resume", icon=":material/play_arrow:", disabled=progress.running(SLOT),
                  on_click=resume, args=(run,),  # before the rerun draws the panel, which then shows it
                  help="Dreams the remaining frames after the finished ones (the same settings as the run above).")
    if not result.frames:
        st.info("No frame finished before the cancel, so there is nothing to show.")
        return
    before, after = st.columns(2)
    before.video(Path(run.source).read_bytes(), loop=True, muted=True)
    before.caption("The source")
    after.video(run.files["mp4"], loop=True, muted=True)
    height, width = result.record.extras["video"]["size"]
    flicker = "n/a (one frame)" if result.mean_flicker is None else f"{result.mean_flicker:.2f}"
    after.caption(f"The dream: {len(result.frames)} frames of {width} x {height} px at {float(result.fps):.3g} fps,"
                  f" flicker {flicker} (0-255: how much each frame's dream changes beyond the motion) · "
                  f"{result.record.seconds:.0f} s on {result.record.device}")
    downloads_ui(run)


def main() -> None:
    st.title("Video: a dream that holds still")
    st.caption("The first frame is a full dream; every next frame starts from the previous dream's detail carried "
               "along the optical flow (where the flow can be trusted) and takes a short dream. Dreaming each frame "
               f"on its own makes the picture boil. Limits: {LIMITS_TEXT}.")
    choice = widgets.model_ui()
    layer = widgets.layer_ui(choice)
    on_cpu = state.current_device() == "cpu"
    source_column, settings_column = st.columns([3, 2], gap="large")
    with source_column:
        source, info = source_section()
    with settings_column:
        frames = frames_ui(info)
        st.subheader("3 · Each dream")
        settings = widgets.settings_ui("video", default_preset="google", default_size=128 if on_cpu else 384,
                                       max_size=1024)
        with state.user_errors():
            config, video_settings = settings.config(), frames.settings()
            if info is not None:
                steps_note(info, config, video_settings)
        if widgets.run_button("Dream the video", "video.run", ":material/movie:", choice, SLOT) and info is not None:
            start(choice, layer, info, source, frames, settings)
    progress.panel(SLOT, on_done=keep)
    run = st.session_state.get(RESULT)
    if run is not None:
        show(run)


main()
