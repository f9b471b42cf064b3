"""Home: what the lab shows, one picture, and a one-click example dream."""

from __future__ import annotations

import streamlit as st

from analysis import zoo
from analysis.dream import preset
from analysis.images import tensor_to_pil
from analysis.objectives import LayerL2
from analysis.recipes import ImageSource, Recipe
from dashboard import progress, results, runs, state, views

SLOT, RESULT = "home.job", "home.result"
EXAMPLE_SAMPLE, EXAMPLE_SIDE, EXAMPLE_PRESET = "cat_chelsea.jpg", 224, "quick"
EXAMPLE_DEPTH = 0.47  # a middle layer (eyes and spirals): visible in the quick preset's 10 bold steps
EXAMPLE = ImageSource.sample(EXAMPLE_SAMPLE)


def introduction() -> None:
    st.title("Inceptionism Lab")
    st.markdown(
        "A trained network is asked to **amplify whatever it sees** in a photo, over and over, at several scales: "
        "that is *DeepDream* (Google, 2015). What comes out shows what a layer has learnt. "
        "**Low layers** paint strokes, edges and textures; **high layers** hallucinate eyes, fur, dog heads and "
        "buildings, the things the training photos were full of.")
    st.markdown(
        "- **Dream**: your photo (or a bundled one, or noise), one model and one layer, with live progress.\n"
        "- **Layers**: the same photo dreamed at six depths, side by side, from low to high.\n"
        "- **Features**: what every channel of a layer wants to see, rendered from noise.\n"
        "- **Compare** and **Statistics**: two networks (ImageNet vs Places, or vs an untrained twin) on the "
        "same image and seed, and their activations layer by layer.\n"
        "- **Bias**: measure the \"dog effect\": how often each model's dreams are judged to be dogs.\n"
        "- **Animation** and **Export**: zoom loops, labelled grids, replayable bundles.\n"
        "- **Models**: the model zoo, which weights are here, and every layer's shape and depth.")


def start() -> None:
    """The one library call: the example dream of the cat."""
    if progress.running(SLOT):
        return
    with state.user_errors():
        model = state.load_model(zoo.DEFAULT_MODEL)
        layer = model.layer_at_depth(EXAMPLE_DEPTH)
        config = preset(EXAMPLE_PRESET)
        image = EXAMPLE.load(EXAMPLE_SIDE)
        objective = LayerL2(layer.alias)
        recipe = Recipe(model.name, objective.to_dict(), config, EXAMPLE, EXAMPLE_SIDE, model.precision)
        runs.start_run(SLOT, "Dreaming the cat", runs.dream_work(
            model, recipe, image, "Chelsea the cat", objective.describe()),
            model.device, dream_config=config, preview=image)


def keep(run: runs.DreamRun) -> None:
    st.session_state[RESULT] = run
    results.add_result("dream", f"{run.image_title} · {run.model_title} · {run.objective_text}", run.result.image,
                       run.result.record)


def main() -> None:
    introduction()
    st.subheader("Try it: one click, a few seconds")
    if st.button("Dream the cat", type="primary", key="home.run", icon=":material/auto_awesome:",
                 disabled=progress.running(SLOT),
                 help=f"{zoo.get_spec(zoo.DEFAULT_MODEL).title}, a middle layer, the '{EXAMPLE_PRESET}' preset "
                      f"(10 steps) with a firmer step, {EXAMPLE_SIDE} px."):
        start()
    progress.panel(SLOT, on_done=keep)
    result = st.session_state.get(RESULT)
    if result is None:
        left, _ = st.columns([1, 1])
        left.image(tensor_to_pil(EXAMPLE.load(480)), caption="Chelsea the cat (CC0): the photo the example dreams.",
                   width="stretch")
    else:
        views.dream_result(result, key="home.view", details=False)
        st.page_link(state.page_path("dream.py"), label="Open the Dream page for your own image, layer and settings",
                     icon=":material/arrow_forward:")


main()
