"""Features: what every channel of a layer wants to see (Microscope-style), tied to the user's image."""

import functools
import hashlib
import json
import math

import streamlit as st
from PIL import Image, ImageDraw, ImageFont

from analysis import featviz, figures, zoo
from analysis.dream import PRESETS, dream, preset
from analysis.errors import ImageError, LabError
from analysis.featviz import ChannelRender, FeatvizConfig, FeatvizResult, RenderCache
from analysis.images import tensor_to_pil
from analysis.labels import sample_images
from analysis.objectives import Channels
from analysis.recipes import Recipe
from dashboard import progress, results, state, widgets
from dashboard.readings import depth_reading

MEASURE_SLOT, MEASURED, MEASURE_TRIED = "features.measure_job", "features.measured", "features.measure_tried"
RENDER_SLOT, LAST_RENDERS = "features.render_job", "features.last_renders"
DREAM_SLOT, DREAMED = "features.dream_job", "features.dreamed"
CHOSEN = "features.channel"
TWIN, NONE = "(twin)", "(none)"
QUALITIES = {"Draft": (64, 64), "Standard": (128, 256), "Fine": (224, 512)}
CUSTOM = "Custom"
MEASURE_SIDE = 224  # the side the networks were trained at
COLUMNS = 6
BESIDE = 6  # the second model's channels shown: the ones the image excites most
TOP_IMAGES = 5

st.title("Features")
st.caption("What each channel of a layer responds to, rendered from noise (feature visualisation, as in OpenAI "
           "Microscope), and how strongly your image excites it. Choose a channel to dream it into your image, "
           "see where it fires and which photos excite it most. The model and the layer are in the sidebar.")

choice = widgets.model_ui()
layer = widgets.layer_ui(choice)
if not choice.runnable:
    state.show_error(choice.reason)
    st.stop()


def second_label(name: str) -> str:
    if name in (TWIN, NONE):
        return "Its twin (untrained or trained)" if name == TWIN else "None"
    spec = zoo.get_spec(name)
    return widgets.model_label(spec, zoo.weights_present(spec))


grid_column, side_column = st.columns([2, 1], gap="large")
with side_column:
    st.subheader("Your image")
    image_choice = widgets.image_ui("features", allow_noise=False, per_row=3)
    extra = st.file_uploader("More photos to search for each channel's strongest images (optional)",
                             type=widgets.UPLOAD_TYPES, accept_multiple_files=True, key="features.extra",
                             max_upload_size=widgets.UPLOAD_LIMIT_MB)
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
    config = FeatvizConfig(size=int(size), steps=int(steps), seed=int(seed))
    names = zoo.model_names(include_twins=True)
    state.default("keep.features.second", TWIN, [TWIN, NONE, *names])
    second = st.selectbox(
        "Second model, beside it at the same depth", [TWIN, NONE, *names], key="keep.features.second",
        format_func=second_label,
        help="Its layer closest in relative depth is shown beside the chosen channel.")
    cache = RenderCache()

    def clear_cache() -> None:
        st.session_state.pop(LAST_RENDERS, None)
        st.toast(f"Removed {cache.clear()} cached renders.")

    files = cache.files()
    st.caption(f"Render cache: {len(files)} pictures, {sum(p.stat().st_size for p in files) / 2**20:.1f} MiB "
               f"of {cache.max_bytes / 2**20:.0f} MiB, in {cache.folder}. A layer rendered once opens instantly.")
    st.button("Clear the render cache", key="features.clear_cache", icon=":material/delete:", disabled=not files,
              on_click=clear_cache)

try:
    config.validate()
    model = state.load_model(choice.name)
except LabError as err:
    state.show_error(str(err))
    st.stop()
try:
    image = image_choice.load(MEASURE_SIDE) if image_choice.kind == "sample" or image_choice.data else None
except ImageError:  # the uploader has already said what is wrong with the file
    image = None
second_name = {TWIN: choice.spec.twin, NONE: None}.get(second, second)
model_b = None
if second_name and second_name != model.name:
    with state.user_errors(st.sidebar):
        model_b = state.load_model(second_name)


def image_key() -> str:
    if image_choice.kind == "sample":
        return image_choice.sample.path.name
    return hashlib.sha256(image_choice.data).hexdigest()[:16] if image_choice.data else ""


def gallery_key() -> tuple[str, ...]:
    return tuple(f"{u.name}:{u.size}" for u in extra or [])


measure_key = (model.name, layer.name, image_key(), gallery_key(), model_b.name if model_b else None)


def measure_work(image, title):
    """The layer on the user's image, every channel on every photo, and the second model's matched layer."""
    gallery = {s.title: s for s in sample_images()}
    uploads = [(u.name, u.getvalue()) for u in extra or []]

    def work(on_step, should_cancel) -> dict:
        from analysis.images import load_image

        pictures = {name: load_image(s.path, MEASURE_SIDE) for name, s in gallery.items()}
        pictures.update({name: load_image(data, MEASURE_SIDE) for name, data in uploads})
        pictures.setdefault(title, image)
        acts = featviz.layer_activations(model, layer.name, image)
        table = featviz.channel_table(model, layer.name, pictures, on_step)
        beside = None
        if model_b is not None:
            matched = model_b.layer_at_depth(layer.depth)
            beside = {"model": model_b, "layer": matched, "means": featviz.channel_means(model_b, matched.name, image)}
        thumbs = {name: square(tensor_to_pil(picture)) for name, picture in pictures.items()}
        return {"key": measure_key, "acts": acts, "means": acts.flatten(1).mean(1) if acts.dim() > 1 else acts,
                "table": table, "thumbs": thumbs, "image": tensor_to_pil(image), "beside": beside}
    return work


def square(picture: Image.Image, side: int = 160) -> Image.Image:
    """A centre-cropped square thumbnail, so a row of photos lines up."""
    crop = min(picture.size)
    left, top = (picture.width - crop) // 2, (picture.height - crop) // 2
    return picture.crop((left, top, left + crop, top + crop)).resize((side, side), Image.Resampling.LANCZOS)


def start_measure() -> None:
    st.session_state[MEASURE_TRIED] = measure_key
    with state.user_errors():
        progress.start(MEASURE_SLOT, f"Measuring {layer.alias} on the photos", measure_work(image, image_choice.title),
                       lock=state.device_lock(model.device), total=len(sample_images()) + len(extra or []) + 1)


def needs_measure() -> bool:
    done = st.session_state.get(MEASURED)
    return (image is not None and MEASURE_SLOT not in st.session_state
            and (done is None or done["key"] != measure_key) and st.session_state.get(MEASURE_TRIED) != measure_key)


with side_column:
    if needs_measure():
        start_measure()
    progress.panel(MEASURE_SLOT, on_done=lambda done: st.session_state.update({MEASURED: done}))
    if needs_measure():  # a measurement of an earlier choice just ended: measure this one
        st.rerun()
measured = st.session_state.get(MEASURED)
measured = measured if measured is not None and measured["key"] == measure_key else None
means = measured["means"] if measured else None


# ---------------------------------------------------------------- renders


def settings_key(result_config: FeatvizConfig) -> str:
    return json.dumps(result_config.key_dict(), sort_keys=True)


def keep_renders(result: FeatvizResult) -> None:
    """The last job's renders stay in the session: unfinished ones (cancel) are never cached."""
    st.session_state[LAST_RENDERS] = {(result.model, result.layer, r.channel, settings_key(result.config)): r
                                      for r in result.renders}
    if result.cancelled:
        st.session_state["features.cancelled_note"] = True


def renders_for(loaded: zoo.LoadedModel, info: zoo.LayerInfo, channels: list[int]) -> dict[int, ChannelRender]:
    found = featviz.lookup(loaded, info.name, channels, config, cache)
    last = st.session_state.get(LAST_RENDERS, {})
    for channel in channels:
        fresh = last.get((loaded.name, info.alias, channel, settings_key(config)))
        if fresh is not None and channel not in found:
            found[channel] = fresh
    return found


def start_render(loaded: zoo.LoadedModel, info: zoo.LayerInfo, channels: list[int]) -> None:
    def work(on_step, should_cancel) -> FeatvizResult:
        return featviz.render_channels(loaded, info.name, channels, config, cache, on_step, should_cancel)

    with state.user_errors():
        progress.start(RENDER_SLOT, f"Rendering {len(channels)} channel(s) of {info.alias}", work,
                       lock=state.device_lock(loaded.device),
                       total=math.ceil(len(channels) / config.batch) * config.steps)


@functools.cache
def placeholder(side: int = 192) -> Image.Image:
    """A dark square that says so where a channel is not rendered yet, so the grid keeps its shape
    (square like the renders; drawn large enough for its words to stay sharp)."""
    picture = Image.new("RGB", (side, side), (52, 54, 62))
    font = ImageFont.load_default(size=side // 9)
    ImageDraw.Draw(picture).multiline_text((side / 2, side / 2), "not\nrendered yet", fill=(160, 162, 170),
                                           font=font, anchor="mm", align="center")
    return picture


def choose(channel: int) -> None:
    st.session_state[CHOSEN] = (model.name, layer.name, channel)


def render_caption(render: ChannelRender | None) -> str:
    return "unfinished (cancelled)" if render is not None and not render.complete else ""


# ---------------------------------------------------------------- the grid

with grid_column:
    st.subheader(f"The {layer.shape[0]} channels of {layer.alias}")
    st.caption(f"{choice.title} · depth {layer.depth:.2f}, where the network sees {depth_reading(layer.depth)}. "
               "Under each picture: the channel and its mean activation on your image.")
    count = layer.shape[0]
    sort_column, per_page_column, page_column, run_column = st.columns([2, 1, 1, 2], vertical_alignment="bottom")
    state.default("keep.features.sort", featviz.SORT_ORDERS[0], featviz.SORT_ORDERS)
    by = sort_column.radio("Order", featviz.SORT_ORDERS, key="keep.features.sort", horizontal=True,
                           format_func=lambda o: {"excitation": "most excited by your image"}.get(o, o),
                           help="'Most excited' puts the channels your image drives hardest first.")
    state.default("keep.features.per_page", 12, [6, 12, 24, 48])
    per_page = per_page_column.selectbox("Per page", [6, 12, 24, 48], key="keep.features.per_page")
    pages = max(1, math.ceil(count / per_page))
    page_key = f"features.page.{model.name}.{layer.name}"
    state.default(page_key, 1, range(1, pages + 1))
    page_number = page_column.number_input(f"Page (of {pages})", 1, pages, step=1, key=page_key)
    order = featviz.channel_order(means, by, count)
    shown = featviz.page(order, int(page_number) - 1, per_page)
    renders = renders_for(model, layer, shown)
    missing = [c for c in shown if c not in renders or not renders[c].complete]
    busy = progress.running(RENDER_SLOT)
    if run_column.button(f"Render {len(missing)} channel(s)" if missing else "Page rendered", key="features.render",
                         type="primary", icon=":material/brush:", width="stretch", disabled=busy or not missing):
        start_render(model, layer, missing)
    if by == "excitation" and means is None:
        st.caption("The order by excitation appears once your image is measured.")
    progress.panel(RENDER_SLOT, on_done=keep_renders)
    if st.session_state.pop("features.cancelled_note", False):
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
                st.button(label, key=f"features.open.{c}", on_click=choose, args=(c,), width="stretch",
                          type="primary" if c == channel else "secondary", help=f"Open channel {c}")


# ---------------------------------------------------------------- one channel

st.divider()
st.subheader(f"Channel {channel} of {layer.alias}")
if not picked_here and means is not None:
    st.caption("The channel your image excites most; open another with the buttons under the pictures.")
view_column, dream_column, map_column = st.columns(3, gap="medium")
with view_column:
    st.markdown("**What it wants to see**")
    render = renders_for(model, layer, [channel]).get(channel)
    if render is not None:
        st.image(tensor_to_pil(render.image), width="stretch")
        st.caption(f"Rendered from noise: {config.size} px, {config.steps} steps, seed {config.seed}. "
                   f"Mean activation {render.activation:.2f} on this picture"
                   + (f", {means[channel]:.2f} on your image." if means is not None else ".")
                   + (" Unfinished (cancelled)." if not render.complete else ""))
    if render is None or not render.complete:
        if st.button(f"Render channel {channel}", key="features.render_one", icon=":material/brush:",
                     disabled=progress.running(RENDER_SLOT)):
            start_render(model, layer, [channel])

with dream_column:
    st.markdown("**Dreamed into your image**")
    state.default("keep.features.dream_preset", "google",
                  list(PRESETS))
    preset_name = st.selectbox("Preset", list(PRESETS), key="keep.features.dream_preset", format_func=str.capitalize,
                               help="DeepDream with this channel as the objective: what it amplifies in your photo.")
    dream_side = MEASURE_SIDE if state.current_device() == "cpu" else 2 * MEASURE_SIDE
    dream_key = (model.name, layer.name, channel, image_key(), preset_name)

    def start_dream() -> None:
        with state.user_errors():
            dream_config = preset(preset_name)
            start_image = image_choice.load(dream_side)
            objective = Channels(layer.alias, [channel]).bind(model)
            recipe = Recipe(model.name, objective.to_dict(), dream_config, image_choice.source(dream_side), dream_side,
                            model.precision)
            upload = image_choice.upload

            def work(on_step, should_cancel) -> dict:
                result = dream(model, start_image, objective, dream_config, on_step, should_cancel)
                result.metadata["recipe"] = recipe.to_dict()
                return {"key": dream_key, "result": result, "title": image_choice.title, "input_bytes": upload}

            progress.start(DREAM_SLOT, f"Dreaming channel {channel}", work, lock=state.device_lock(model.device),
                           steps_per_octave=dream_config.iterations, total=dream_config.total_steps)

    def keep_dream(done: dict) -> None:
        st.session_state[DREAMED] = done
        result = done["result"]
        results.add_result("features", f"{done['title']} · channel {done['key'][2]} of {result.metadata['layers'][0]}",
                           result.image, result.metadata, input_bytes=done["input_bytes"])

    if st.button(f"Dream channel {channel}", key="features.dream", type="primary", icon=":material/auto_awesome:",
                 disabled=image is None or progress.running(DREAM_SLOT)):
        start_dream()
    progress.panel(DREAM_SLOT, on_done=keep_dream)
    dreamed = st.session_state.get(DREAMED)
    if dreamed is not None and dreamed["key"] == dream_key:
        result = dreamed["result"]
        st.image(tensor_to_pil(result.image), width="stretch",
                 caption=f"{dreamed['title']}, {result.metadata['steps']} steps"
                         + (" (cancelled, partial)" if result.cancelled else ""))

with map_column:
    st.markdown("**Where it fires on your image**")
    if measured is None:
        st.caption("Appears once your image is measured." if image is not None else "Choose or upload an image.")
    else:
        with state.user_errors():
            frame = featviz.map_frame(measured["acts"], channel)
            title = image_choice.title
            fig = figures.activation_map(frame, f"Channel {channel} on {title}", measured["image"])
            st.plotly_chart(fig, key="features.map", config={"displayModeBar": False})
            st.caption(f"The channel's {len(frame)}-cell feature map, stretched over the picture. "
                       f"Peak {frame['activation'].max():.2f}, mean {frame['activation'].mean():.2f}.")

if measured is not None:
    top = featviz.top_images(measured["table"], channel, TOP_IMAGES)
    st.markdown(f"**The photos that excite channel {channel} most** "
                f"(of {measured['table']['image'].nunique()}: the bundled ones, your image and any you added)")
    for column, row in zip(st.columns(TOP_IMAGES), top.itertuples()):
        with column:
            st.image(measured["thumbs"][row.image], width="stretch",
                     caption=f"{row.rank}. {row.image} · {row.activation:.2f}")


# ---------------------------------------------------------------- the second model

if model_b is not None:
    st.divider()
    beside = measured["beside"] if measured else None
    if beside is None:
        st.subheader(f"Beside it: {model_b.spec.title}")
        st.caption("Appears once your image is measured.")
    else:
        matched = beside["layer"]
        st.subheader(f"Beside it: {model_b.spec.title}, {matched.alias}")
        st.caption(f"The same relative depth ({matched.depth:.2f}, against {layer.depth:.2f}): the {BESIDE} of its "
                   f"{matched.shape[0]} channels your image excites most, rendered with the same settings.")
        top_b = featviz.channel_order(beside["means"], "excitation", matched.shape[0])[:BESIDE]
        renders_b = renders_for(model_b, matched, top_b)
        missing_b = [c for c in top_b if c not in renders_b or not renders_b[c].complete]
        if missing_b and st.button(f"Render these {len(missing_b)} channel(s)", key="features.render_beside",
                                   icon=":material/brush:", disabled=progress.running(RENDER_SLOT)):
            start_render(model_b, matched, missing_b)
        for column, c in zip(st.columns(COLUMNS), top_b):
            with column:
                render = renders_b.get(c)
                st.image(tensor_to_pil(render.image) if render else placeholder(), width="stretch",
                         caption=f"#{c} · {beside['means'][c]:.2f}" + (f" · {render_caption(render)}"
                                                                      if render_caption(render) else ""))
