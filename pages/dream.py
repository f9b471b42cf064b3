"""Dream: one start image, one model and layer, one objective; live progress; result and downloads."""

from __future__ import annotations

import hashlib

import streamlit as st

from analysis.errors import ImageError
from analysis.labels import sample_images
from analysis.recipes import PNG_SIGNATURE, Recipe
from analysis.zoo import LayerInfo
from dashboard import progress, results, runs, state, views, widgets

SLOT, RESULT = "dream.job", "dream.result"


def start_dream(choice: widgets.ModelChoice, layer: LayerInfo, image_choice: widgets.ImageChoice,
                objective_choice: widgets.ObjectiveChoice, settings: widgets.SettingsChoice) -> None:
    """The one library call for a new dream (runs.dream_work)."""
    with state.user_errors():
        config = settings.config()
        image = image_choice.load(settings.size)
        objective = objective_choice.build(layer, settings.size)
        model = state.load_model(choice.name)
        recipe = Recipe(model.name, objective.to_dict(), config, image_choice.source(settings.size), settings.size,
                        model.precision)
        runs.start_run(SLOT, "Dreaming", runs.dream_work(
            model, recipe, image, image_choice.title, objective_choice.describe(layer, model.labels)),
            model.device, dream_config=config, preview=image)


def _image_title(recipe: Recipe) -> str:
    source = recipe.image
    if source.kind == "sample":
        return next((s.title for s in sample_images() if s.path.name == source.name), source.name)
    return f"noise (seed {source.seed})" if source.kind == "noise" else source.name


def start_replay(data: bytes) -> None:
    """The one library call for a replay (runs.recipe_work): a recipe JSON or a dream PNG."""
    with state.user_errors():
        recipe = Recipe.from_json(data)
        if recipe.image.kind == "file":
            stored = widgets.stored_upload("dream")
            if not stored or hashlib.sha256(stored[1]).hexdigest() != recipe.image.sha256:
                raise ImageError(f"This recipe dreams your file '{recipe.image.name}': choose 'My image', "
                                 "upload that same file, then replay.")
            recipe.image.data = stored[1]
        image = recipe.image.load(recipe.max_side)
        model = state.load_model(recipe.model, precision=recipe.precision)
        runs.start_run(SLOT, "Replaying the recipe", runs.recipe_work(
            model, recipe, image, _image_title(recipe), data if data.startswith(PNG_SIGNATURE) else None),
            model.device, dream_config=recipe.config, preview=image)


def replay_ui() -> None:
    with st.expander("Replay a recipe", icon=":material/replay:"):
        recipe_file = st.file_uploader("Recipe JSON (from 'Download recipe'), or a result PNG", type=["json", "png"],
                                       key="dream.recipe_upload", max_upload_size=64)
        if st.button("Replay", key="dream.replay", disabled=progress.running(SLOT) or recipe_file is None) \
                and recipe_file is not None and not progress.running(SLOT):
            start_replay(recipe_file.getvalue())


def keep(run: runs.DreamRun) -> None:
    """Keep the result for this page and register it for the Export page."""
    st.session_state[RESULT] = run
    layers = ", ".join(run.result.record.layers)
    upload = run.recipe.image.data if run.recipe.image.kind == "file" else None
    results.add_result("dream", f"{run.image_title} · {run.model_title} · {layers}", run.result.image,
                       run.result.record, input_bytes=upload)


def main() -> None:
    st.title("Dream")
    st.caption("Pick a start image, what to amplify and how hard, then press **Dream**. "
               "The model and the layer are in the sidebar.")
    choice = widgets.model_ui()
    layer = widgets.layer_ui(choice)
    image_column, settings_column = st.columns([3, 2], gap="large")
    with image_column:
        st.subheader("1 · Start image")
        image_choice = widgets.image_ui("dream")
        st.subheader("2 · What to amplify")
        objective_choice = widgets.objective_ui("dream", choice, layer)
    with settings_column:
        st.subheader("3 · How hard")
        settings = widgets.settings_ui("dream", default_preset="google",
                                       default_size=384 if state.current_device() == "cpu" else 768)
        if widgets.run_button("Dream", "dream.run", ":material/auto_awesome:", choice, SLOT, image_choice):
            start_dream(choice, layer, image_choice, objective_choice, settings)
        replay_ui()
    progress.panel(SLOT, on_done=keep)
    result = st.session_state.get(RESULT)
    if result is not None:
        st.divider()
        st.subheader("Result")
        views.dream_result(result, key="dream.view")


main()
