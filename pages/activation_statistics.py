"""Statistics: how two networks' activations differ layer by layer, and which channels an image excites."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd
import streamlit as st
import torch
from PIL import Image

from analysis import compare, figures, stats, zoo
from analysis import labels as label_files
from analysis.dream import DreamResult
from analysis.errors import ConfigError
from analysis.images import fit_tensor, load_image
from analysis.pngmeta import png_bytes
from analysis.provenance import RunRecord
from dashboard import progress, runs, state, widgets

SLOT, RESULT = "statistics.job", "statistics.result"
DREAM_SLOT, DREAMS = "statistics.dream_job", "statistics.dreams"
NONE = "(none)"
MAX_IMAGES = 16


@dataclass
class Measured:
    """The tidy statistics of every model on every image (stats.stats_for_models), and what was measured."""

    frame: pd.DataFrame
    models: list[str]
    images: list[tuple[str, torch.Tensor]] = field(repr=False)  # (title, pixels) as measured


@dataclass
class ChannelDreams:
    """Chosen channels of one layer, each dreamed on its own, as a labelled grid."""

    results: list[DreamResult]
    channels: list[int]
    grid: Image.Image
    record: RunRecord
    title: str


# ---------------------------------------------------------------- setup


def spec_label(name: str) -> str:
    if name == NONE:
        return "(no second model)"
    spec = zoo.get_spec(name)
    return widgets.model_label(spec, zoo.weights_present(spec))


def models_ui() -> tuple[list[str], list[str]]:
    """Model A and an optional B; and why they cannot run (a missing weights file), one line each."""
    st.subheader("1 · Models")
    names = zoo.model_names(include_twins=True)
    pair = compare.suggested_pairs()[0]
    state.default("keep.statistics.a", pair[0], names)
    state.default("keep.statistics.b", pair[1], [NONE, *names])
    name_a = st.selectbox("Model A", names, key="keep.statistics.a", format_func=spec_label)
    name_b = st.selectbox("Model B", [NONE, *names], key="keep.statistics.b", format_func=spec_label,
                          help="A second network to line up with the first by relative depth.")
    chosen = [name_a] + ([name_b] if name_b not in (NONE, name_a) else [])
    missing = [zoo.missing_weights_message(zoo.get_spec(n)) for n in chosen
               if not zoo.weights_present(zoo.get_spec(n))]
    for message in missing:
        state.show_error(message)
    return chosen, missing


def images_ui() -> tuple[list[str], list[tuple[str, bytes]], int]:
    """Bundled photos (file names), uploads and the side they are measured at."""
    st.subheader("2 · Images")
    samples = label_files.sample_images()
    files = [s.path.name for s in samples]
    titles = {s.path.name: s.title for s in samples}
    state.default("keep.statistics.samples", ["cat_chelsea.jpg"] if "cat_chelsea.jpg" in files else files[:1], None)
    picked = st.multiselect("Bundled photos", files, key="keep.statistics.samples", format_func=titles.get,
                            placeholder="Choose photos")
    uploads = st.file_uploader("…and/or your own (PNG, JPEG or WebP)", type=widgets.UPLOAD_TYPES,
                               accept_multiple_files=True, key="statistics.uploads",
                               max_upload_size=widgets.UPLOAD_LIMIT_MB)
    state.default("keep.statistics.size", 224)
    size = st.slider("Measured at (longest side, px)", 64, 512, step=32, key="keep.statistics.size",
                     help="The networks were trained at 224 px.")
    return list(picked), [(u.name, u.getvalue()) for u in uploads or []], int(size)


def start(chosen: list[str], picked: list[str], uploads: list[tuple[str, bytes]], size: int) -> None:
    """The one library call: stats.stats_for_models on every image."""
    with state.user_errors():
        titles = {s.path.name: s.title for s in label_files.sample_images()}
        images = [(titles[f], load_image(label_files.SAMPLES_DIR / f, size)) for f in picked]
        images += [(name, load_image(data, size)) for name, data in uploads]
        if not images:
            raise ConfigError("Choose at least one photo or upload one.")
        if len(images) > MAX_IMAGES:
            raise ConfigError(f"Choose at most {MAX_IMAGES} images.")
        loaded = [state.load_model(n) for n in chosen]
        tensors = [image for _, image in images]

        def work(on_step, should_cancel) -> Measured:
            frame = stats.stats_for_models(loaded, tensors, on_step, should_cancel)
            return Measured(frame, [m.name for m in loaded], images)

        runs.start_run(SLOT, f"Measuring {len(images)} image(s) with {len(loaded)} model(s)", work,
                       loaded[0].device, total=len(images) * len(loaded))


def keep_result(run: Measured) -> None:
    st.session_state[RESULT] = run
    st.session_state.pop(DREAMS, None)


# ---------------------------------------------------------------- the charts


def depth_section(frame: pd.DataFrame) -> None:
    st.subheader("Across depth")
    left, right = st.columns([1, 3])
    with left:
        state.default("keep.statistics.line_stat", "std", list(stats.LAYER_STATISTICS))
        line_stat = st.selectbox("Statistic", list(stats.LAYER_STATISTICS), key="keep.statistics.line_stat",
                                 help="; ".join(f"{k}: {v}" for k, v in stats.LAYER_STATISTICS.items()))
        st.caption(stats.LAYER_STATISTICS[line_stat])
        positive = bool((frame[(frame["channel"] == stats.LAYER_LEVEL) & (frame["statistic"] == line_stat)]["value"]
                         > 0).all())
        log_y = st.toggle("Log scale", value=True, key="statistics.log", disabled=not positive,
                          help="For statistics that are always above zero; it shows an untrained twin's "
                               "shrinking activations.")
    right.plotly_chart(figures.depth_lines(frame, line_stat, log_y=log_y and positive), key="statistics.lines")


def channels_section(frame: pd.DataFrame, measured: list[str]) -> dict[str, str]:
    """One layer per model, by relative depth, and its channels; returns the chosen layer of each model."""
    st.subheader("Channels of one layer")
    left, right = st.columns([1, 3])
    with left:
        state.default("keep.statistics.depth", widgets.DEFAULT_DEPTH)
        depth = st.slider("Relative depth", 0.0, 1.0, step=0.05, key="keep.statistics.depth",
                          help="Each model's measured layer closest to this depth.")
        layers = {m: stats.matched_layer(frame, m, depth) for m in measured}
        st.caption("Layers: " + ", ".join(f"**{layer}** ({m})" for m, layer in layers.items()))
        state.default("keep.statistics.channel_stat", "mean", list(stats.CHANNEL_STATISTICS))
        channel_stat = st.selectbox("Per-channel statistic", list(stats.CHANNEL_STATISTICS),
                                    key="keep.statistics.channel_stat")
        state.default("keep.statistics.kind", "violin", ["violin", "histogram"])
        kind = st.radio("Plot", ["violin", "histogram"], key="keep.statistics.kind", horizontal=True)
    chosen_rows = frame[frame["layer"] == frame["model"].map(layers)]
    right.plotly_chart(figures.channel_distribution(chosen_rows, channel_stat, kind), key="statistics.distribution")
    return layers


def heatmap_section(frame: pd.DataFrame, measured: list[str]) -> None:
    st.subheader("Channel x layer")
    left, right = st.columns([1, 3])
    with left:
        heat_model = st.selectbox("Model", measured, key="statistics.heat_model")
        heat_stat = st.selectbox("Per-channel statistic", list(stats.CHANNEL_STATISTICS), key="statistics.heat_stat")
        scaled = st.toggle("Scale each layer to its largest value", value=True, key="statistics.heat_scaled",
                           help="Layers differ in range; scaled, every layer's pattern shows.")
        widest = max(32, int(frame[frame["model"] == heat_model]["channel"].max()) + 1)
        shown = st.slider("Channels shown", 16, widest, value=min(128, widest), step=16,
                          key="statistics.heat_channels", help="The first N channels of every layer.")
    right.plotly_chart(figures.channel_heatmap(frame, heat_model, heat_stat, per_layer_scale=scaled,
                                               max_channels=int(shown)), key="statistics.heatmap")


def top_section(frame: pd.DataFrame, layers: dict[str, str]) -> pd.DataFrame:
    """The channels this image excites most in each chosen layer, with the CSV downloads; returns them."""
    st.subheader("Which channels does this image excite most?")
    state.default("keep.statistics.top_k", 8)
    top_k = st.slider("Top channels per layer", 3, 32, key="keep.statistics.top_k")
    top = stats.top_channels(frame, int(top_k), layers)
    st.dataframe(top, hide_index=True, width="stretch",
                 column_config={"depth": st.column_config.NumberColumn(format="%.2f"),
                                "mean": st.column_config.NumberColumn(format="%.4g"),
                                "max": st.column_config.NumberColumn(format="%.4g"),
                                "sparsity": st.column_config.NumberColumn(format="percent")})
    a, b, _ = st.columns([1, 1, 2])
    a.download_button("Top channels CSV", top.to_csv(index=False), file_name="top-channels.csv", mime="text/csv",
                      key="statistics.top_csv", icon=":material/download:")
    b.download_button("All statistics CSV", frame.to_csv(index=False), file_name="activation-statistics.csv",
                      mime="text/csv", key="statistics.all_csv", icon=":material/download:",
                      help="Tidy: model, training_data, layer, depth, channel (-1 = the whole layer), "
                           "statistic, value.")
    return top


# ---------------------------------------------------------------- dreaming the channels


def start_dreams(run: Measured, model_name: str, layer: str, channels: list[int], image_index: int,
                 settings: widgets.SettingsChoice) -> None:
    """The one library call: stats.channel_dreams, one dream per channel, then their grid."""
    with state.user_errors():
        if not channels:
            raise ConfigError("Choose at least one channel to dream.")
        config = settings.config()
        title, image = run.images[image_index]
        image = fit_tensor(image, settings.size)
        model = state.load_model(model_name)

        def work(on_step, should_cancel) -> ChannelDreams:
            dreams = stats.channel_dreams(model, image, layer, channels, config, on_step, should_cancel)
            grid = stats.channel_grid(image, dreams, channels, layer, model.spec.title, title)
            record = replace(dreams[0].record, objective_text=f"channels {', '.join(map(str, channels))} of {layer}, "
                                                               "one per picture")
            return ChannelDreams(dreams, channels, grid, record, f"{model.spec.title} · {layer}")

        runs.start_run(DREAM_SLOT, f"Dreaming {len(channels)} channel(s) of {layer}", work, model.device,
                       dream_config=config)


def dream_section(run: Measured, measured: list[str], layers: dict[str, str], top: pd.DataFrame) -> None:
    """measured: the models the statistics cover (fewer than asked for after a cancel)."""
    frame = run.frame
    st.subheader("Dream those channels")
    left, right = st.columns([1, 1], gap="large")
    with left:
        dream_model = st.selectbox("Model", measured, key="statistics.dream_model")
        layer = layers[dream_model]
        count = int(frame[(frame["model"] == dream_model) & (frame["layer"] == layer)]["channel"].max()) + 1
        best = top[top["model"] == dream_model]["channel"].head(4).tolist()
        channel_key = f"statistics.channels.{dream_model}.{layer}"
        state.default(channel_key, best, None)
        channels = st.multiselect(f"Channels of {layer} (0 to {count - 1})", list(range(count)), key=channel_key,
                                  max_selections=8, help="Preselected: the channels this image excites most.")
        image_titles = [t for t, _ in run.images]
        image_index = st.selectbox("Dream on", range(len(image_titles)), format_func=image_titles.__getitem__,
                                   key="statistics.dream_image")
    with right:
        settings = widgets.settings_ui("statistics_dream", default_preset="quick", default_size=224, max_size=512)
        st.caption("The dream is never larger than the measured image.")
    with left:
        if st.button("Dream these channels", type="primary", key="statistics.dream", icon=":material/auto_awesome:",
                     disabled=progress.running(DREAM_SLOT), width="stretch") and not progress.running(DREAM_SLOT):
            start_dreams(run, dream_model, layer, list(channels), image_index, settings)
    progress.panel(DREAM_SLOT, on_done=lambda dreams: st.session_state.update({DREAMS: dreams}))
    dreams = st.session_state.get(DREAMS)
    if dreams is not None:
        st.markdown(f"**{dreams.title}**")
        if any(r.cancelled for r in dreams.results):
            st.warning("Cancelled: these are the partial dreams.", icon=":material/stop_circle:")
        st.image(dreams.grid, width="stretch")
        st.download_button("Download channel grid PNG", png_bytes(dreams.grid, dreams.record),
                           file_name="channels-grid.png", mime="image/png", key="statistics.dream_png",
                           icon=":material/download:")


def show(run: Measured) -> None:
    frame = run.frame
    if frame.empty:
        st.warning("Cancelled before the first image was measured.", icon=":material/stop_circle:")
        return
    measured = frame["model"].unique().tolist()
    st.divider()
    if frame.attrs.get("cancelled"):
        st.warning(f"Cancelled: these statistics cover {frame.attrs.get('images', 0)} image(s) and "
                   f"{len(measured)} model(s).", icon=":material/stop_circle:")
    st.caption(f"{len(run.images)} image(s): {', '.join(t for t, _ in run.images)}. "
               "Sparsity is the share of activations at or below zero; 'active share' the share of channels "
               "that fire anywhere.")
    depth_section(frame)
    layers = channels_section(frame, measured)
    heatmap_section(frame, measured)
    top = top_section(frame, layers)
    dream_section(run, measured, layers, top)


def main() -> None:
    st.title("Activation statistics")
    st.caption("Show the networks some photos and measure every layer: how strongly it responds, how sparse it is, "
               "how many channels fire, and which channels this picture excites most. Then dream those channels.")
    setup_models, setup_images = st.columns(2, gap="large")
    with setup_models:
        chosen, missing = models_ui()
    with setup_images:
        picked, uploads, size = images_ui()
        if st.button("Measure", type="primary", key="statistics.run", icon=":material/query_stats:", width="stretch",
                     disabled=progress.running(SLOT) or bool(missing)) and not progress.running(SLOT):
            start(chosen, picked, uploads, size)
    progress.panel(SLOT, on_done=keep_result)
    run = st.session_state.get(RESULT)
    if run is not None:
        show(run)


main()
