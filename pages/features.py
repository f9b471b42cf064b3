"""Features: what every channel of a layer wants to see (Microscope-style), tied to the user's image."""

from __future__ import annotations

import functools
import hashlib
import json
import math
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st
import torch
from PIL import Image, ImageDraw

from analysis import featviz, figures, zoo
from analysis.drawing import load_font, square_thumbnail
from analysis.dream import PRESETS, DreamConfig, DreamResult, preset
from analysis.errors import ImageError, LabError
from analysis.featviz import ChannelRender, FeatvizConfig, FeatvizResult, RenderCache
from analysis.images import load_image, tensor_to_pil
from analysis.labels import sample_images
from analysis.objectives import Channels
from analysis.recipes import Recipe, run_recipe
from analysis.zoo import LayerInfo, LoadedModel
from dashboard import progress, results, runs, state, widgets
from dashboard.readings import depth_reading

MEASURE_SLOT, MEASURED, MEASURE_TRIED = "features.measure_job", "features.measured", "features.measure_tried"
RENDER_SLOT, LAST_RENDERS = "features.render_job", "features.last_renders"
DREAM_SLOT, DREAMED = "features.dream_job", "features.dreamed"
CHOSEN, CANCELLED_NOTE = "features.channel", "features.cancelled_note"
TWIN, NONE = "(twin)", "(none)"
QUALITIES = {"Draft": (64, 64), "Standard": (128, 256), "Fine": (224, 512)}
CUSTOM = "Custom"
MEASURE_SIDE = 224  # the side the networks were trained at
COLUMNS = 6
BESIDE = 6  # the second model's channels shown: the ones the image excites most
TOP_IMAGES = 5


# ---------------------------------------------------------------- what the page keeps


@dataclass
class Beside:
    """The second model's layer at the same relative depth, and its channels' means on the image."""

    model: LoadedModel
    layer: LayerInfo
    means: torch.Tensor


@dataclass
class Measurement:
    """The layer on the user's image, every channel on every photo, and the second model beside it."""

    key: tuple
    acts: torch.Tensor = field(repr=False)  # the layer's activations on the user's image
    means: torch.Tensor  # each channel's mean activation on it
    table: pd.DataFrame  # featviz.channel_table: every channel on every photo
    thumbs: dict[str, Image.Image] = field(repr=False)
    image: Image.Image = field(repr=False)
    beside: Beside | None = None


@dataclass
class ChannelDream:
    """One channel dreamed into the user's image."""

    key: tuple
    result: DreamResult
    title: str
    input_bytes: bytes | None = field(default=None, repr=False)


@dataclass
class Context:
    """What every section of the page reads: the models, the layer, the image and the settings."""

    model: LoadedModel
    layer: LayerInfo
    title: str  # the model's title
    image_choice: widgets.ImageChoice
    image: torch.Tensor | None  # the user's image at MEASURE_SIDE; None while there is none
    extra: list[tuple[str, bytes]]  # more photos to search
    config: FeatvizConfig
    cache: RenderCache
    model_b: LoadedModel | None

    def image_key(self) -> str:
        if self.image_choice.kind == "sample":
            return self.image_choice.sample.path.name
        return hashlib.sha256(self.image_choice.data).hexdigest()[:16] if self.image_choice.data else ""

    def measure_key(self) -> tuple:
        gallery = tuple(f"{name}:{len(data)}" for name, data in self.extra)
        return (self.model.name, self.layer.name, self.image_key(), gallery,
                self.model_b.name if self.model_b else None)


# ---------------------------------------------------------------- the side column


def second_label(name: str) -> str:
    if name in (TWIN, NONE):
        return "Its twin (untrained or trained)" if name == TWIN else "None"
    spec = zoo.get_spec(name)
    return widgets.model_label(spec, zoo.weights_present(spec))


def rendering_ui() -> FeatvizConfig:
    """Quality (or custom size and steps) and seed of the renders from noise."""
    st.subheader("Rendering")
    qualities = [*QUALITIES, CUSTOM]
    state.default("keep.features.quality", "Draft" if state.current_device() == "cpu" else "Standard", qualities)
    quality = st.radio("Quality", qualities, key="keep.features.quality", horizontal=True,
                       captions=[f"{s} px · {n} steps" for s, n in QUALITIES.values()] + ["your numbers"],
                       help="Each channel is optimised from noise: more steps give cleaner pictures, more "
                            "pixels finer detail; time grows with both.")
    if quality == CUSTOM:
        state.default("keep.features.size", 128)
        state.default("keep.features.steps", 128)
        left, right = st.columns(2)
        size = left.number_input("Size (px)", 32, 512, step=16, key="keep.features.size")
        steps = right.number_input("Steps", 1, 4096, step=16, key="keep.features.steps")
    else:
        size, steps = QUALITIES[quality]
    state.default("keep.features.seed", 0)
    seed = st.number_input("Seed", 0, 2**31 - 1, step=1, key="keep.features.seed",
                           help="The noise each channel starts from; the same seed gives the same picture.")
    return FeatvizConfig(size=int(size), steps=int(steps), seed=int(seed))


def second_model_ui() -> str:
    names = zoo.model_names(include_twins=True)
    state.default("keep.features.second", TWIN, [TWIN, NONE, *names])
    return st.selectbox("Second model, beside it at the same depth", [TWIN, NONE, *names],
                        key="keep.features.second", format_func=second_label,
                        help="Its layer closest in relative depth is shown beside the chosen channel.")


def cache_ui(cache: RenderCache) -> None:
    def clear_cache() -> None:
        st.session_state.pop(LAST_RENDERS, None)
        st.toast(f"Removed {cache.clear()} cached renders.")

    files = cache.files()
    st.caption(f"Render cache: {len(files)} pictures, {sum(p.stat().st_size for p in files) / 2**20:.1f} MiB "
               f"of {cache.max_bytes / 2**20:.0f} MiB, in {cache.folder}. A layer rendered once opens instantly.")
    st.button("Clear the render cache", key="features.clear_cache", icon=":material/delete:", disabled=not files,
              on_click=clear_cache)


def side_ui(cache: RenderCache) -> tuple[widgets.ImageChoice, list[tuple[str, bytes]], FeatvizConfig, str]:
    """The user's image, more photos, the render settings and the second model."""
    st.subheader("Your image")
    image_choice = widgets.image_ui("features", allow_noise=False, per_row=3)
    extra = st.file_uploader("More photos to search for each channel's strongest images (optional)",
                             type=widgets.UPLOAD_TYPES, accept_multiple_files=True, key="features.extra",
                             max_upload_size=widgets.UPLOAD_LIMIT_MB)
    config = rendering_ui()
    second = second_model_ui()
    cache_ui(cache)
    return image_choice, [(u.name, u.getvalue()) for u in extra or []], config, second


# ---------------------------------------------------------------- the library calls (each job's work)


def measure_work(ctx: Context, key: tuple) -> progress.Work:
    """The layer on the user's image, every channel on every photo, and the second model's matched layer."""
    gallery = {s.title: s for s in sample_images()}
    model, layer, image, title, model_b = ctx.model, ctx.layer, ctx.image, ctx.image_choice.title, ctx.model_b

    def work(on_step, should_cancel) -> Measurement:
        pictures = {name: load_image(s.path, MEASURE_SIDE) for name, s in gallery.items()}
        pictures.update({name: load_image(data, MEASURE_SIDE) for name, data in ctx.extra})
        pictures.setdefault(title, image)
        acts = featviz.layer_activations(model, layer.name, image)
        table = featviz.channel_table(model, layer.name, pictures, on_step)
        beside = None
        if model_b is not None:
            matched = model_b.layer_at_depth(layer.depth)
            beside = Beside(model_b, matched, featviz.channel_means(model_b, matched.name, image))
        thumbs = {name: square_thumbnail(tensor_to_pil(picture)) for name, picture in pictures.items()}
        return Measurement(key, acts, acts.flatten(1).mean(1) if acts.dim() > 1 else acts, table, thumbs,
                           tensor_to_pil(image), beside)
    return work


def render_work(loaded: LoadedModel, info: LayerInfo, channels: list[int], config: FeatvizConfig,
                cache: RenderCache) -> progress.Work:
    def work(on_step, should_cancel) -> FeatvizResult:
        return featviz.render_channels(loaded, info.name, channels, config, cache, on_step, should_cancel)
    return work


def dream_work(ctx: Context, channel: int, preset_name: str, side: int,
               key: tuple) -> tuple[progress.Work, DreamConfig]:
    """The channel dreamed into the user's image, with its recipe; returns the work and its settings."""
    config = preset(preset_name)
    ctx.image_choice.load(side)  # a bad upload is refused here, before the job starts
    objective = Channels(ctx.layer.alias, [channel]).bind(ctx.model)
    recipe = Recipe(ctx.model.name, objective.to_dict(), config, ctx.image_choice.source(side), side,
                    ctx.model.precision)
    title, upload, model = ctx.image_choice.title, ctx.image_choice.upload, ctx.model

    def work(on_step, should_cancel) -> ChannelDream:
        result = run_recipe(recipe, model, on_step, should_cancel)
        return ChannelDream(key, result, title, upload)
    return work, config


# ---------------------------------------------------------------- measuring


def measure_ui(ctx: Context) -> Measurement | None:
    """Measure the image by itself whenever what it depends on changes; the measurement, once done."""
    key = ctx.measure_key()

    def needs_measure() -> bool:
        done = st.session_state.get(MEASURED)
        return (ctx.image is not None and MEASURE_SLOT not in st.session_state
                and (done is None or done.key != key) and st.session_state.get(MEASURE_TRIED) != key)

    if needs_measure():
        st.session_state[MEASURE_TRIED] = key
        with state.user_errors():
            runs.start_run(MEASURE_SLOT, f"Measuring {ctx.layer.alias} on the photos", measure_work(ctx, key),
                           ctx.model.device, total=len(sample_images()) + len(ctx.extra) + 1)
    progress.panel(MEASURE_SLOT, on_done=lambda done: st.session_state.update({MEASURED: done}))
    if needs_measure():  # a measurement of an earlier choice just ended: measure this one
        st.rerun()
    measured = st.session_state.get(MEASURED)
    return measured if measured is not None and measured.key == key else None


# ---------------------------------------------------------------- renders


def settings_key(config: FeatvizConfig) -> str:
    return json.dumps(config.key_dict(), sort_keys=True)


def keep_renders(result: FeatvizResult) -> None:
    """The last job's renders stay in the session: unfinished ones (cancel) are never cached."""
    st.session_state[LAST_RENDERS] = {(result.model, result.layer, r.channel, settings_key(result.config)): r
                                      for r in result.renders}
    if result.cancelled:
        st.session_state[CANCELLED_NOTE] = True


def renders_for(ctx: Context, loaded: LoadedModel, info: LayerInfo, channels: list[int]) -> dict[int, ChannelRender]:
    found = featviz.lookup(loaded, info.name, channels, ctx.config, ctx.cache)
    last = st.session_state.get(LAST_RENDERS, {})
    for channel in channels:
        fresh = last.get((loaded.name, info.alias, channel, settings_key(ctx.config)))
        if fresh is not None and channel not in found:
            found[channel] = fresh
    return found


def start_render(ctx: Context, loaded: LoadedModel, info: LayerInfo, channels: list[int]) -> None:
    with state.user_errors():
        runs.start_run(RENDER_SLOT, f"Rendering {len(channels)} channel(s) of {info.alias}",
                       render_work(loaded, info, channels, ctx.config, ctx.cache), loaded.device,
                       total=math.ceil(len(channels) / ctx.config.batch) * ctx.config.steps)


@functools.cache
def placeholder(side: int = 192) -> Image.Image:
    """A dark square that says so where a channel is not rendered yet, so the grid keeps its shape
    (square like the renders; drawn large enough for its words to stay sharp)."""
    picture = Image.new("RGB", (side, side), (52, 54, 62))
    font = load_font(side // 9)
    ImageDraw.Draw(picture).multiline_text((side / 2, side / 2), "not\nrendered yet", fill=(160, 162, 170),
                                           font=font, anchor="mm", align="center")
    return picture


def render_caption(render: ChannelRender | None) -> str:
    return "unfinished (cancelled)" if render is not None and not render.complete else ""


# ---------------------------------------------------------------- the grid


def order_ui(columns: list, count: int, model_name: str, layer_name: str) -> tuple[str, int, int]:
    """Sort order, pictures per page and the page, in three columns: (order, per_page, page number from 1)."""
    sort_column, per_page_column, page_column = columns
    state.default("keep.features.sort", featviz.SORT_ORDERS[0], featviz.SORT_ORDERS)
    by = sort_column.radio("Order", featviz.SORT_ORDERS, key="keep.features.sort", horizontal=True,
                           format_func=lambda o: {"excitation": "most excited by your image"}.get(o, o),
                           help="'Most excited' puts the channels your image drives hardest first.")
    state.default("keep.features.per_page", 12, [6, 12, 24, 48])
    per_page = per_page_column.selectbox("Per page", [6, 12, 24, 48], key="keep.features.per_page")
    pages = max(1, math.ceil(count / per_page))
    page_key = f"features.page.{model_name}.{layer_name}"
    state.default(page_key, 1, range(1, pages + 1))
    page_number = page_column.number_input(f"Page (of {pages})", 1, pages, step=1, key=page_key)
    return by, int(per_page), int(page_number)


def choose(model_name: str, layer_name: str, channel: int) -> None:
    st.session_state[CHOSEN] = (model_name, layer_name, channel)


def grid_ui(ctx: Context, means: torch.Tensor | None) -> tuple[int, bool]:
    """A page of channel renders with their activations; returns the open channel and whether it was picked."""
    model, layer = ctx.model, ctx.layer
    st.subheader(f"The {layer.shape[0]} channels of {layer.alias}")
    st.caption(f"{ctx.title} · depth {layer.depth:.2f}, where the network sees {depth_reading(layer.depth)}. "
               "Under each picture: the channel and its mean activation on your image.")
    count = layer.shape[0]
    *controls, run_column = st.columns([2, 1, 1, 2], vertical_alignment="bottom")
    by, per_page, page_number = order_ui(controls, count, model.name, layer.name)
    shown = featviz.page(featviz.channel_order(means, by, count), page_number - 1, per_page)
    renders = renders_for(ctx, model, layer, shown)
    missing = [c for c in shown if c not in renders or not renders[c].complete]
    if run_column.button(f"Render {len(missing)} channel(s)" if missing else "Page rendered", key="features.render",
                         type="primary", icon=":material/brush:", width="stretch",
                         disabled=progress.running(RENDER_SLOT) or not missing):
        start_render(ctx, model, layer, missing)
    if by == "excitation" and means is None:
        st.caption("The order by excitation appears once your image is measured.")
    progress.panel(RENDER_SLOT, on_done=keep_renders)
    if st.session_state.pop(CANCELLED_NOTE, False):
        st.warning("Cancelled: the pictures finished so far are shown; unfinished ones are marked and not cached.",
                   icon=":material/stop_circle:")

    chosen = st.session_state.get(CHOSEN)
    picked_here = bool(chosen) and chosen[:2] == (model.name, layer.name)
    if picked_here:
        channel = chosen[2]
    else:  # the channel the image excites most, once measured
        channel = int(means.argmax()) if means is not None else 0
    for start in range(0, len(shown), COLUMNS):
        for column, c in zip(st.columns(COLUMNS), shown[start:start + COLUMNS]):
            with column:
                render = renders.get(c)
                st.image(tensor_to_pil(render.image) if render else placeholder(), width="stretch",
                         caption=render_caption(render) or None)
                label = f"#{c}" + (f" · {means[c]:.2f}" if means is not None else "")
                st.button(label, key=f"features.open.{c}", on_click=choose, args=(model.name, layer.name, c),
                          width="stretch", type="primary" if c == channel else "secondary", help=f"Open channel {c}")
    return channel, picked_here


# ---------------------------------------------------------------- one channel


def wanted_ui(ctx: Context, channel: int, means: torch.Tensor | None) -> None:
    st.markdown("**What it wants to see**")
    config = ctx.config
    render = renders_for(ctx, ctx.model, ctx.layer, [channel]).get(channel)
    if render is not None:
        st.image(tensor_to_pil(render.image), width="stretch")
        st.caption(f"Rendered from noise: {config.size} px, {config.steps} steps, seed {config.seed}. "
                   f"Mean activation {render.activation:.2f} on this picture"
                   + (f", {means[channel]:.2f} on your image." if means is not None else ".")
                   + (" Unfinished (cancelled)." if not render.complete else ""))
    if render is None or not render.complete:
        if st.button(f"Render channel {channel}", key="features.render_one", icon=":material/brush:",
                     disabled=progress.running(RENDER_SLOT)):
            start_render(ctx, ctx.model, ctx.layer, [channel])


def keep_dream(done: ChannelDream) -> None:
    st.session_state[DREAMED] = done
    result = done.result
    results.add_result("features", f"{done.title} · channel {done.key[2]} of {result.record.layers[0]}",
                       result.image, result.record, input_bytes=done.input_bytes)


def dream_ui(ctx: Context, channel: int) -> None:
    st.markdown("**Dreamed into your image**")
    state.default("keep.features.dream_preset", "google", list(PRESETS))
    preset_name = st.selectbox("Preset", list(PRESETS), key="keep.features.dream_preset", format_func=str.capitalize,
                               help="DeepDream with this channel as the objective: what it amplifies in your photo.")
    side = MEASURE_SIDE if state.current_device() == "cpu" else 2 * MEASURE_SIDE
    key = (ctx.model.name, ctx.layer.name, channel, ctx.image_key(), preset_name)
    if st.button(f"Dream channel {channel}", key="features.dream", type="primary", icon=":material/auto_awesome:",
                 disabled=ctx.image is None or progress.running(DREAM_SLOT)):
        with state.user_errors():
            work, config = dream_work(ctx, channel, preset_name, side, key)
            runs.start_run(DREAM_SLOT, f"Dreaming channel {channel}", work, ctx.model.device, dream_config=config)
    progress.panel(DREAM_SLOT, on_done=keep_dream)
    dreamed = st.session_state.get(DREAMED)
    if dreamed is not None and dreamed.key == key:
        result = dreamed.result
        st.image(tensor_to_pil(result.image), width="stretch",
                 caption=f"{dreamed.title}, {result.record.steps} steps"
                         + (" (cancelled, partial)" if result.cancelled else ""))


def map_ui(ctx: Context, channel: int, measured: Measurement | None) -> None:
    st.markdown("**Where it fires on your image**")
    if measured is None:
        st.caption("Appears once your image is measured." if ctx.image is not None else "Choose or upload an image.")
        return
    with state.user_errors():
        frame = featviz.map_frame(measured.acts, channel)
        fig = figures.activation_map(frame, f"Channel {channel} on {ctx.image_choice.title}", measured.image)
        st.plotly_chart(fig, key="features.map", config={"displayModeBar": False})
        st.caption(f"The channel's {len(frame)}-cell feature map, stretched over the picture. "
                   f"Peak {frame['activation'].max():.2f}, mean {frame['activation'].mean():.2f}.")


def top_photos_ui(measured: Measurement, channel: int) -> None:
    top = featviz.top_images(measured.table, channel, TOP_IMAGES)
    st.markdown(f"**The photos that excite channel {channel} most** "
                f"(of {measured.table['image'].nunique()}: the bundled ones, your image and any you added)")
    for column, row in zip(st.columns(TOP_IMAGES), top.itertuples()):
        with column:
            st.image(measured.thumbs[row.image], width="stretch",
                     caption=f"{row.rank}. {row.image} · {row.activation:.2f}")


def channel_ui(ctx: Context, channel: int, picked_here: bool, measured: Measurement | None) -> None:
    means = measured.means if measured else None
    st.divider()
    st.subheader(f"Channel {channel} of {ctx.layer.alias}")
    if not picked_here and means is not None:
        st.caption("The channel your image excites most; open another with the buttons under the pictures.")
    view_column, dream_column, map_column = st.columns(3, gap="medium")
    with view_column:
        wanted_ui(ctx, channel, means)
    with dream_column:
        dream_ui(ctx, channel)
    with map_column:
        map_ui(ctx, channel, measured)
    if measured is not None:
        top_photos_ui(measured, channel)


# ---------------------------------------------------------------- the second model


def beside_ui(ctx: Context, measured: Measurement | None) -> None:
    model_b = ctx.model_b
    st.divider()
    beside = measured.beside if measured else None
    if beside is None:
        st.subheader(f"Beside it: {model_b.spec.title}")
        st.caption("Appears once your image is measured.")
        return
    matched = beside.layer
    st.subheader(f"Beside it: {model_b.spec.title}, {matched.alias}")
    st.caption(f"The same relative depth ({matched.depth:.2f}, against {ctx.layer.depth:.2f}): the {BESIDE} of its "
               f"{matched.shape[0]} channels your image excites most, rendered with the same settings.")
    top_b = featviz.channel_order(beside.means, "excitation", matched.shape[0])[:BESIDE]
    renders_b = renders_for(ctx, model_b, matched, top_b)
    missing_b = [c for c in top_b if c not in renders_b or not renders_b[c].complete]
    if missing_b and st.button(f"Render these {len(missing_b)} channel(s)", key="features.render_beside",
                               icon=":material/brush:", disabled=progress.running(RENDER_SLOT)):
        start_render(ctx, model_b, matched, missing_b)
    for column, c in zip(st.columns(COLUMNS), top_b):
        with column:
            render = renders_b.get(c)
            note = render_caption(render)
            st.image(tensor_to_pil(render.image) if render else placeholder(), width="stretch",
                     caption=f"#{c} · {beside.means[c]:.2f}" + (f" · {note}" if note else ""))


# ---------------------------------------------------------------- the page


def load_context(choice: widgets.ModelChoice, layer: LayerInfo, image_choice: widgets.ImageChoice,
                 extra: list[tuple[str, bytes]], config: FeatvizConfig, second: str, cache: RenderCache) -> Context:
    """The models and the image; raises LabError for the page to show (the second model's error goes to the
    sidebar and leaves it out)."""
    config.validate()
    model = state.load_model(choice.name)
    try:
        image = image_choice.load(MEASURE_SIDE) if image_choice.kind == "sample" or image_choice.data else None
    except ImageError:  # the uploader has already said what is wrong with the file
        image = None
    second_name = {TWIN: choice.spec.twin, NONE: None}.get(second, second)
    model_b = None
    if second_name and second_name != model.name:
        with state.user_errors(st.sidebar):
            model_b = state.load_model(second_name)
    return Context(model, layer, choice.title, image_choice, image, extra, config, cache, model_b)


def main() -> None:
    st.title("Features")
    st.caption("What each channel of a layer responds to, rendered from noise (feature visualisation, as in OpenAI "
               "Microscope), and how strongly your image excites it. Choose a channel to dream it into your image, "
               "see where it fires and which photos excite it most. The model and the layer are in the sidebar.")
    choice = widgets.model_ui()
    layer = widgets.layer_ui(choice)
    if not choice.runnable:
        state.show_error(choice.reason)
        return
    grid_column, side_column = st.columns([2, 1], gap="large")
    cache = RenderCache()
    with side_column:
        image_choice, extra, config, second = side_ui(cache)
    try:
        ctx = load_context(choice, layer, image_choice, extra, config, second, cache)
    except LabError as err:
        state.show_error(str(err))
        return
    with side_column:
        measured = measure_ui(ctx)
    with grid_column:
        channel, picked_here = grid_ui(ctx, measured.means if measured else None)
    channel_ui(ctx, channel, picked_here, measured)
    if ctx.model_b is not None:
        beside_ui(ctx, measured)


main()
