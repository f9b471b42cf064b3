"""Layers: the same image dreamed at N layers, low to high, as a labelled grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import streamlit as st

from analysis.errors import ConfigError
from analysis.images import tensor_to_pil
from analysis.zoo import LayerInfo, LoadedModel
from dashboard import progress, results, runs, state, widgets
from dashboard.readings import depth_parts, depth_reading

SLOT, RESULT = "layers.job", "layers.result"
MAX_LAYERS = 12
SPREAD, CHOOSE = "Spread evenly", "Choose"


@dataclass(frozen=True)
class LayersChoice:
    """count layers spread evenly over the depth, or the layers picked by name."""

    count: int = 0
    picked: list[str] = field(default_factory=list)

    def layers(self, model: LoadedModel) -> list[LayerInfo]:
        if self.count:
            return model.layers_spread(self.count)
        if not self.picked:
            raise ConfigError("Choose at least one layer.")
        return sorted((model.layer(name) for name in self.picked), key=lambda info: info.depth)


def layers_ui(choice: widgets.ModelChoice) -> LayersChoice:
    st.subheader("2 · Layers")
    available = widgets.dreamable_layers(choice.spec)
    state.default("keep.layers.mode", SPREAD, [SPREAD, CHOOSE])
    mode = st.radio("Which layers", [SPREAD, CHOOSE], key="keep.layers.mode", horizontal=True,
                    label_visibility="collapsed")
    if mode == SPREAD:
        return LayersChoice(count=widgets.count_slider("Number of layers", min(MAX_LAYERS, len(available)),
                                                       "keep.layers.count", 6))
    by_name = {info.name: info for info in available}
    pick_key = f"keep.layers.pick.{choice.spec.base}"
    state.default(pick_key, [])
    picked = st.multiselect("Layers", list(by_name), key=pick_key, max_selections=MAX_LAYERS,
                            format_func=lambda n: by_name[n].label, placeholder="Choose 1 to 12 layers")
    return LayersChoice(picked=list(picked))


def start(choice: widgets.ModelChoice, layers_choice: LayersChoice, image_choice: widgets.ImageChoice,
          settings: widgets.SettingsChoice) -> None:
    """The one library call: runs.layers_work, the sweep."""
    with state.user_errors():
        config = settings.config()
        image = image_choice.load(settings.size)
        model = state.load_model(choice.name)
        layers = layers_choice.layers(model)
        work = runs.layers_work(model, image, layers, config, image_choice.source(settings.size), settings.size,
                                image_choice.title, image_choice.upload)
        runs.start_run(SLOT, f"Dreaming {len(layers)} layers", work, model.device, dream_config=config,
                       preview=image)


def keep(run: runs.LayersRun) -> None:
    """Keep the sweep for this page; register each layer's dream for the Export page.

    A layer dreamed alone (the CPU) carries its recipe, which replays to its very pixels; a batched
    GPU sweep is not pixel-identical to single dreams, so its layers carry none (runs.layers_work).
    """
    st.session_state[RESULT] = run
    for info, result in zip(run.layers, run.results):
        results.add_result("layers", f"{run.image_title} · {run.model_title} · {info.alias}", result.image,
                           result.record.with_extras(image=run.image_title),
                           input_bytes=run.input_bytes)


def show(run: runs.LayersRun) -> None:
    st.divider()
    st.subheader(f"{run.model_title}: {run.image_title}, from low to high")
    if run.cancelled:
        steps = sum(r.record.steps for r in run.results)
        st.warning(f"Cancelled after {steps} of {run.config.total_steps * len(run.results)} steps: "
                   "these are the partial dreams.",
                   icon=":material/stop_circle:")
    cells = [(tensor_to_pil(run.original), "**original**", run.image_title)]
    cells += [(tensor_to_pil(result.image), f"**{info.alias}** · depth {info.depth:.2f}",
               depth_reading(info.depth)) for info, result in zip(run.layers, run.results)]
    per_row = min(len(cells), 4)
    for start_at in range(0, len(cells), per_row):
        for column, (picture, label, reading) in zip(st.columns(per_row), cells[start_at:start_at + per_row]):
            column.image(picture, width="stretch")
            column.markdown(f"{label}  \n{reading}")
    seen = list(dict.fromkeys(depth_parts(info.depth) for info in run.layers))  # low to high, once each
    st.markdown("**Reading the depths.** " + " ".join(f"*{short}*: {long}." for short, long in seen))
    st.caption("High layers see the picture at a coarse resolution (7x7 at 224 px): for clearer parts and objects, "
               "give them a larger image or more steps (the Deep preset).")
    left, right = st.columns([1, 3])
    left.download_button("Download grid PNG", run.png(), file_name="layers-grid.png", width="stretch",
                         mime="image/png", key="layers.download", icon=":material/download:",
                         help="One labelled image, low to high, with the settings in its metadata.")
    with right.expander("The grid as it will be saved"):
        st.image(run.grid, width="stretch")
    replayable = any(r.record.recipe is not None for r in run.results)
    st.caption(":material/ios_share: Each layer's dream is also on the **Export** page: lay them out your way and "
               "download them as a bundle" + (" with the recipe that replays them." if replayable else "."))


def main() -> None:
    st.title("Layers: from low to high")
    st.caption("The same picture dreamed at several depths of one network, side by side. Low layers amplify "
               "strokes and edges, then textures and patterns; high layers hallucinate parts and whole objects.")
    choice = widgets.model_ui()
    image_column, settings_column = st.columns([3, 2], gap="large")
    with image_column:
        st.subheader("1 · Start image")
        image_choice = widgets.image_ui("layers")
    with settings_column:
        layers_choice = layers_ui(choice)
        st.subheader("3 · How hard")
        settings = widgets.settings_ui("layers", default_preset="google",
                                       default_size=256 if state.current_device() == "cpu" else 512, max_size=768)
        if widgets.run_button("Dream every layer", "layers.run", ":material/layers:", choice, SLOT, image_choice):
            start(choice, layers_choice, image_choice, settings)
        if state.current_device() == "cpu":
            st.caption("Layers are dreamed one after another. Each layer's dream goes to the Export page with a "
                       "recipe that replays it to the same pixels.")
        else:
            st.caption("All layers are dreamed in one batched run: quicker, but a batch is not pixel-identical to "
                       "single dreams, so these dreams carry no recipe. Each goes to the Export page.")
    progress.panel(SLOT, on_done=keep)
    run = st.session_state.get(RESULT)
    if run is not None:
        show(run)


main()
