"""Compare: two models dream the same image with the same settings, side by side."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
import streamlit as st
from PIL import Image

from analysis import compare, zoo
from analysis.errors import ConfigError
from analysis.pngmeta import png_bytes
from dashboard import progress, results, runs, state, widgets
from dashboard.readings import depth_reading

SLOT, RESULT = "compare.job", "compare.result"
PAIR_KEY, CUSTOM = "keep.compare.pair", "custom"
MODES = ("One depth", "Sweep of depths", "Layers per model")


@dataclass
class CompareRun:
    """A finished comparison and its labelled grid; the uploaded start photo, for the bundles."""

    comparison: compare.Comparison
    grid: Image.Image
    input_bytes: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class LayersChoice:
    """Layers matched by depth (depths) or chosen by name for each model (names_a, names_b)."""

    mode: str
    depths: list[float] = field(default_factory=list)
    names_a: list[str] = field(default_factory=list)
    names_b: list[str] = field(default_factory=list)


def spec_label(name: str) -> str:
    spec = zoo.get_spec(name)
    return widgets.model_label(spec, zoo.weights_present(spec))


def pair_label(option: str) -> str:
    if option == CUSTOM:
        return "Choose two models…"
    a, b = option.split("|")
    return f"{spec_label(a)}  vs  {spec_label(b)}"


def models_ui() -> tuple[str, str, list[str]]:
    """The two models; and why they cannot run (a missing weights file), one line each."""
    st.subheader("1 · Models")
    pairs = ["|".join(pair) for pair in compare.suggested_pairs()] + [CUSTOM]
    state.default(PAIR_KEY, pairs[0], pairs)
    option = st.selectbox("Pair", pairs, key=PAIR_KEY, format_func=pair_label,
                          help="ImageNet (objects) against Places365 (scenes) shows what training data does; "
                               "a network against its untrained twin shows what the architecture alone does.")
    if option == CUSTOM:
        names = zoo.model_names(include_twins=True)
        state.default("keep.compare.a", compare.DEFAULT_PAIR[0], names)
        state.default("keep.compare.b", compare.DEFAULT_PAIR[1], names)
        left, right = st.columns(2)
        name_a = left.selectbox("Model A", names, key="keep.compare.a", format_func=spec_label)
        name_b = right.selectbox("Model B", names, key="keep.compare.b", format_func=spec_label)
    else:
        name_a, name_b = option.split("|")
    if len(pairs) == 2:
        st.caption("ImageNet-vs-Places pairs (BVLC GoogLeNet vs Places GoogLeNet, ResNet-50, AlexNet) "
                   "are offered first once their weight files are in the weights folder: see the Models page.")
    missing = [zoo.missing_weights_message(zoo.get_spec(n)) for n in (name_a, name_b)
               if not zoo.weights_present(zoo.get_spec(n))]
    for message in missing:
        state.show_error(message)
    return name_a, name_b, missing


def layers_ui(name_a: str, name_b: str) -> LayersChoice:
    st.subheader("2 · Layers")
    mode_key = "keep.compare.mode"
    state.default(mode_key, MODES[1], MODES)
    mode = st.radio("Layers", MODES, key=mode_key, horizontal=True, label_visibility="collapsed")
    if mode == "One depth":
        state.default("keep.compare.depth", widgets.DEFAULT_DEPTH)
        depth = st.slider("Relative depth", 0.0, 1.0, step=0.05, key="keep.compare.depth",
                          help="0 = first layer, 1 = class scores; each model uses its layer closest to it.")
        st.caption(f"Depth {depth:.2f}: {depth_reading(depth)}.")
        return LayersChoice(mode, depths=[float(depth)])
    if mode == "Sweep of depths":
        state.default("keep.compare.count", 3)
        count = st.slider("Number of depths", 3, compare.MAX_COLUMNS, key="keep.compare.count")
        depths = compare.sweep_depths(int(count))
        st.caption("Depths " + ", ".join(f"{d:.2f} ({depth_reading(d)})" for d in depths) + ".")
        return LayersChoice(mode, depths=depths)
    chosen = {}
    for side, name in (("A", name_a), ("B", name_b)):
        spec = zoo.get_spec(name)
        infos = {i.name: i for i in widgets.dreamable_layers(zoo.get_spec(spec.base))}
        key = f"keep.compare.layers.{side}.{name}"
        state.default(key, [])
        chosen[side] = st.multiselect(
            f"Layers of {side}: {spec.title}", list(infos), key=key, max_selections=compare.MAX_COLUMNS,
            format_func=lambda n, infos=infos: infos[n].label, placeholder="Choose 1 to 6 layers")
    st.caption("Paired in the order chosen: the first of A with the first of B, and so on.")
    return LayersChoice(mode, names_a=chosen["A"], names_b=chosen["B"])


def start(name_a: str, name_b: str, layers: LayersChoice, image_choice: widgets.ImageChoice,
          settings: widgets.SettingsChoice) -> None:
    """The one library call: compare.compare (each dream carries the recipe that replays it)."""
    with state.user_errors():
        if name_a == name_b:
            raise ConfigError("Choose two different models.")
        config = settings.config()
        image_choice.load(settings.size)  # a bad upload is refused here, before the job starts
        model_a, model_b = state.load_model(name_a), state.load_model(name_b)
        if layers.mode == "Layers per model":
            columns = compare.match_by_name(model_a, model_b, layers.names_a, layers.names_b)
        else:
            columns = compare.match_by_depth(model_a, model_b, layers.depths)
        source, upload = image_choice.source(settings.size), image_choice.upload

        def work(on_step, should_cancel) -> CompareRun:
            result = compare.compare(model_a, model_b, source, settings.size, columns, config, image_choice.title,
                                     on_step, should_cancel)
            return CompareRun(result, compare.grid(result), upload)

        runs.start_run(SLOT, f"Dreaming {len(columns)} layer(s) with A, then with B", work, model_a.device,
                       dream_config=config, dreams=2)


def keep(run: CompareRun) -> None:
    """Keep the comparison for this page; register each of its dreams for the Export page, where
    rows by model and columns by layer lay them out again."""
    st.session_state[RESULT] = run
    comparison = run.comparison
    for side in (comparison.a, comparison.b):
        for column, result in zip(comparison.columns, side.results):
            layer = column.layer_a if side is comparison.a else column.layer_b
            results.add_result("compare", f"{comparison.image_title} · {side.title} · {layer.alias}", result.image,
                               result.record.with_extras(image=comparison.image_title), input_bytes=run.input_bytes)


def show(run: CompareRun) -> None:
    result = run.comparison
    st.divider()
    st.subheader(f"{result.a.label} vs {result.b.label}")
    if result.cancelled:
        st.warning("Cancelled: the grid holds what was dreamed before the stop.", icon=":material/stop_circle:")
    st.image(run.grid, width="stretch")
    rows = []
    for i, column in enumerate(result.columns):
        top = [side.top_dreams[i][0][1] if i < len(side.top_dreams) and side.top_dreams[i] else "-"
               for side in (result.a, result.b)]
        rows.append({"column": column.label, "layer A": f"{column.layer_a.alias} ({column.layer_a.depth:.2f})",
                     "layer B": f"{column.layer_b.alias} ({column.layer_b.depth:.2f})",
                     "A reads the dream as": top[0], "B reads the dream as": top[1]})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.download_button("Download grid PNG", png_bytes(run.grid, result.metadata()),
                       file_name=f"compare-{result.a.name}-vs-{result.b.name}.png", mime="image/png",
                       key="compare.download", icon=":material/download:",
                       help="The grid as shown, with both models, the layers and the settings in its metadata.")


def main() -> None:
    st.title("Compare two models")
    st.caption("The same image, seed, jitter and settings for both networks; only the training differs. Layers "
               "are matched by relative depth, and each dream's top classes are read with its own model's labels.")
    models_column, layers_column = st.columns(2, gap="large")
    with models_column:
        name_a, name_b, missing = models_ui()
    with layers_column:
        layers = layers_ui(name_a, name_b)
    image_column, settings_column = st.columns(2, gap="large")
    with image_column:
        st.subheader("3 · Start image")
        image_choice = widgets.image_ui("compare")
    with settings_column:
        st.subheader("4 · How hard")
        settings = widgets.settings_ui("compare", default_preset="quick",
                                       default_size=224 if state.current_device() == "cpu" else 448, max_size=768)
        st.caption("Objective: L2 of the matched layer (Google's original: amplify whatever the layer sees).")
        if st.button("Dream with both", type="primary", key="compare.run", icon=":material/compare:",
                     width="stretch", disabled=progress.running(SLOT) or bool(missing) or image_choice.unreadable
                     ) and not progress.running(SLOT):
            start(name_a, name_b, layers, image_choice, settings)
    progress.panel(SLOT, on_done=keep)
    run = st.session_state.get(RESULT)
    if run is not None:
        show(run)


main()
