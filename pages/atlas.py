"""Atlas: what every unit of a layer responds to over a photo collection, with a concept per unit,
and two models side by side at the same relative depth (the Network Dissection comparison)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import streamlit as st
from PIL import Image

from analysis import atlas, featviz, figures, zoo
from analysis.dream import DreamResult, dream, preset
from analysis.errors import Cancelled, ConfigError, LabError
from analysis.featviz import FeatvizConfig, RenderCache
from analysis.images import load_image, tensor_to_pil
from analysis.labels import class_groups, sample_images
from analysis.objectives import Channels
from analysis.studies.judging import DEFAULT_JUDGE, Judge
from dashboard import progress, runs, state, widgets

PASS_SLOT, RENDER_SLOT, DREAM_SLOT = "atlas.pass_job", "atlas.render_job", "atlas.dream_job"
UNIT, LINKED, DREAMED, RENDERED = "atlas.unit", "atlas.linked", "atlas.dreamed", "atlas.rendered"
TWIN = "(twin)"
COLLECTIONS = {"Bundled photos, 364 views (crops and mirrors)": atlas.DEFAULT_SCALES,
               "Bundled photos, 14 views (whole and mirrored)": ((1.0, 1),)}
COLLECTION_IDS = dict(zip(COLLECTIONS, ("default", "whole")))  # in links and folder names
TOP_KS = [4, 9, 16]
SIDES = [64, 128, 224]
PER_PAGE, COLUMNS = 12, 4
QUALITIES = {"Draft": (64, 64), "Standard": (128, 128), "Fine": (224, 512)}  # feature visualisation: px, steps
DREAM_SIDE = 224


def apply_link() -> None:
    """A shared link (?model=...&layer=...&unit=...) opens that unit: its values go into the sidebar's
    widgets before they are drawn, once per session."""
    params = st.query_params
    if st.session_state.get(LINKED) or "model" not in params:
        return
    st.session_state[LINKED] = True
    try:
        spec = zoo.get_spec(params["model"])
        base = spec.base
        layer = params.get("layer")
        if layer is not None:
            by_alias = {i.alias: i.name for i in widgets.dreamable_layers(zoo.get_spec(base))}
            if layer not in by_alias and layer not in by_alias.values():
                raise ConfigError(f"The link's layer '{layer}' is not a layer of {base}.")
        widgets.choose_model(base, twin=spec.parent is not None,
                             layer=None if layer is None else by_alias.get(layer, layer))
        if "unit" in params:
            st.session_state[UNIT] = int(params["unit"])
        # the atlas itself: the same collection, view size and k give the very same unit reading
        by_id = {v: k for k, v in COLLECTION_IDS.items()}
        if "views" in params:
            if params["views"] not in by_id:
                raise ConfigError(f"The link's collection '{params['views']}' is not one of {', '.join(by_id)}.")
            st.session_state["keep.atlas.collection"] = by_id[params["views"]]
        for name, key, allowed in (("size", "keep.atlas.side", SIDES), ("k", "keep.atlas.top_k", TOP_KS)):
            if name in params:
                if int(params[name]) not in allowed:
                    raise ConfigError(f"The link's {name} {params[name]} is not one of {allowed}.")
                st.session_state[key] = int(params[name])
    except (LabError, ValueError) as err:
        st.session_state["atlas.link_error"] = f"The link could not be opened: {err}"


@dataclass(frozen=True)
class AtlasChoice:
    """The sidebar's atlas settings."""

    collection: str  # a key of COLLECTIONS
    side: int
    top_k: int
    quality: str  # a key of QUALITIES
    second: str  # TWIN or a model name


def atlas_ui() -> AtlasChoice:
    st.subheader("Atlas")
    state.default("keep.atlas.collection", next(iter(COLLECTIONS)), list(COLLECTIONS))
    collection = st.selectbox("Collection", list(COLLECTIONS), key="keep.atlas.collection")
    state.default("keep.atlas.side", atlas.DEFAULT_SIDE, SIDES)
    side = st.selectbox("View size (px)", SIDES, key="keep.atlas.side",
                        help="Each view is shown to the network at this size; 224 is what it was trained at.")
    state.default("keep.atlas.top_k", atlas.DEFAULT_TOP_K, TOP_KS)
    top_k = st.selectbox("Examples per unit", TOP_KS, key="keep.atlas.top_k")
    state.default("keep.atlas.quality", "Standard", list(QUALITIES))
    quality = st.selectbox("Feature visualisations", list(QUALITIES), key="keep.atlas.quality",
                           format_func=lambda q: f"{q}: {QUALITIES[q][0]} px, {QUALITIES[q][1]} steps",
                           help="Both renderers (lucent's FFT and MaCo) use these; renders are cached.")
    names = [TWIN, *zoo.model_names(include_twins=True)]
    state.default("keep.atlas.second", TWIN, names)
    second = st.selectbox("Beside it", names, key="keep.atlas.second",
                          format_func=lambda n: "its twin (untrained or trained)" if n == TWIN else n)
    return AtlasChoice(collection, int(side), int(top_k), quality, second)


@dataclass
class Context:
    """What every section reads: the model and layer, the judge, the views and where atlases are stored."""

    choice: widgets.ModelChoice
    model: zoo.LoadedModel
    layer: zoo.LayerInfo
    judge: Judge
    atlas_choice: AtlasChoice
    views: list
    cache: RenderCache

    @property
    def root(self) -> Path:
        return atlas.atlas_root() / COLLECTION_IDS[self.atlas_choice.collection]

    @property
    def groups(self) -> list[str]:
        return list(class_groups(self.judge.dataset))

    @property
    def fft(self) -> FeatvizConfig:
        size, steps = QUALITIES[self.atlas_choice.quality]
        return FeatvizConfig(size=size, steps=steps)

    @property
    def maco(self) -> FeatvizConfig:
        size, steps = QUALITIES[self.atlas_choice.quality]
        return FeatvizConfig(size=size, steps=steps, parameterisation="maco")

    def folder_of(self, loaded: zoo.LoadedModel, info: zoo.LayerInfo) -> Path:
        return atlas.run_folder(self.root, loaded.name, info.alias, self.atlas_choice.side)

    def readings_of(self, found: atlas.Atlas) -> pd.DataFrame | None:
        return atlas.load_readings(found, self.judge.name, self.atlas_choice.top_k)


# ---------------------------------------------------------------- the library calls (each job's work)


def start_pass(ctx: Context, loaded: zoo.LoadedModel, info: zoo.LayerInfo) -> None:
    """The atlas pass over the views, then the judge's readings of the top crops."""
    folder, views, judge, top_k = ctx.folder_of(loaded, info), ctx.views, ctx.judge, ctx.atlas_choice.top_k
    settings = atlas.AtlasSettings(side=ctx.atlas_choice.side)

    def work(on_step, should_cancel) -> str:
        done = atlas.run_pass(loaded, info.name, views, folder, settings, on_step, should_cancel)
        if not done.complete:
            return "cancelled"
        try:
            atlas.stored_readings(atlas.load_atlas(folder), judge, top_k, on_step=on_step,
                                  should_cancel=should_cancel)
        except Cancelled:
            return "cancelled"
        return "done"

    with state.user_errors():
        runs.start_run(PASS_SLOT, f"Atlas of {info.alias} on {loaded.name}", work, loaded.device, total=len(views))


def pass_done(outcome: str) -> None:
    if outcome == "cancelled":
        st.toast("Cancelled: the finished batches are kept; Resume goes on from there.", icon=":material/stop_circle:")


def start_render(ctx: Context, loaded: zoo.LoadedModel, info: zoo.LayerInfo, channels: list[int]) -> None:
    """Both feature visualisations (FFT and MaCo) of the units, into the render cache."""
    configs, cache = (ctx.fft, ctx.maco), ctx.cache

    def work(on_step, should_cancel) -> str:
        for config in configs:
            featviz.render_channels(loaded, info.name, channels, config, cache, on_step, should_cancel)
        return "rendered"

    with state.user_errors():
        runs.start_run(RENDER_SLOT, f"Rendering {len(channels)} unit(s) of {info.alias}, FFT and MaCo", work,
                       loaded.device)


@dataclass
class UnitDream:
    key: tuple
    result: DreamResult


def start_dream(ctx: Context, unit: int, sample_path: Path, key: tuple) -> None:
    """The unit as a DeepDream objective on a bundled photo."""
    model = ctx.model
    with state.user_errors():
        start_image = load_image(sample_path, DREAM_SIDE)
        objective = Channels(ctx.layer.alias, [unit]).bind(model)
        config = preset("google")

        def work(on_step, should_cancel) -> UnitDream:
            return UnitDream(key, dream(model, start_image, objective, config, on_step, should_cancel))

        runs.start_run(DREAM_SLOT, f"Dreaming unit {unit}", work, model.device, dream_config=config)


# ---------------------------------------------------------------- the sections


def open_unit(number: int) -> None:
    st.session_state[UNIT] = number


def best_crop(found: atlas.Atlas, number: int) -> Image.Image:
    _, crop = found.example_images(found.top_examples(number, 1)[0])
    return tensor_to_pil(crop).resize((96, 96), Image.Resampling.LANCZOS)


def caption(found: atlas.Atlas, folder: Path) -> None:
    """Where the atlas is stored and what a unit sees."""
    field = found.field
    field_text = ("no spatial map: each unit sees the whole view" if field is None else
                  f"receptive field {field.side} px"
                  + (" or more (the whole view)" if field.clipped or field.side >= found.side
                     else f" of the {found.side} px view"))
    st.caption(f"Stored in {folder} · {field_text}.")


def grid(ctx: Context, found: atlas.Atlas, overview: pd.DataFrame, folder: Path) -> int:
    """The layer's units, filtered and sorted, a page at a time; returns the unit to open."""
    st.subheader(f"The {found.channels} units of {ctx.layer.alias}")
    filters = st.columns([3, 1, 1, 1], vertical_alignment="bottom")
    present = [g for g in [*ctx.groups, atlas.NO_CONCEPT] if g in set(overview["concept"])]
    chosen_groups = filters[0].multiselect("Concepts", present, default=present, key="atlas.concepts")
    state.default("keep.atlas.sort", "peak", list(atlas.SORT_KEYS))
    sort = filters[1].selectbox("Order", atlas.SORT_KEYS, key="keep.atlas.sort",
                                help="peak: the strongest response; selectivity: how far the best view stands out from "
                                     "the typical one; share: how clear its concept is.")
    min_selectivity = filters[2].slider("Selectivity at least", 0.0, 1.0, 0.0, 0.05, key="atlas.min_selectivity")
    units = atlas.choose_units(overview, chosen_groups, sort, min_selectivity)
    pages = max(1, math.ceil(len(units) / PER_PAGE))
    page_number = filters[3].number_input(f"Page (of {pages})", 1, pages, 1, key=f"atlas.page.{folder.name}")
    shown = units[(int(page_number) - 1) * PER_PAGE:int(page_number) * PER_PAGE]
    rows = overview.set_index("unit")
    renders = featviz.lookup(ctx.model, ctx.layer.name, shown, ctx.fft, ctx.cache) if shown else {}
    unit = st.session_state.get(UNIT)
    if unit is None or not 0 <= unit < found.channels:
        unit = shown[0] if shown else 0

    if not shown:
        st.caption("No unit matches these filters.")
    for start in range(0, len(shown), COLUMNS):
        for column, number in zip(st.columns(COLUMNS), shown[start:start + COLUMNS]):
            with column, st.container(border=True):
                pictures = st.columns(2)
                render = renders.get(number)
                if render is not None:
                    pictures[0].image(tensor_to_pil(render.image), width="stretch")
                else:
                    pictures[0].caption("feature visualisation not rendered yet")
                pictures[1].image(best_crop(found, number), width="stretch")
                row = rows.loc[number]
                st.button(f"#{number} · {row['concept']}", key=f"atlas.open.{number}",
                          on_click=open_unit, args=(number,), width="stretch",
                          type="primary" if number == unit else "secondary",
                          help=f"peak {row['peak']:.3g}, selectivity {row['selectivity']:.2f}")

    missing = [n for n in shown if n not in renders]
    if missing and st.button(f"Render the feature visualisations of these {len(missing)} units (FFT and MaCo)",
                             key="atlas.render_page", icon=":material/brush:", disabled=progress.running(RENDER_SLOT)):
        start_render(ctx, ctx.model, ctx.layer, missing)
    progress.panel(RENDER_SLOT, on_done=lambda _: None)
    return unit


def examples_ui(found: atlas.Atlas, unit: int, top_k: int) -> None:
    examples = found.top_examples(unit, top_k)
    crops_column, whole_column = st.columns(2, gap="large")
    pictures = [found.example_images(e) for e in examples]
    with crops_column:
        st.markdown("**Top examples: what its receptive field sees**")
        for start in range(0, len(examples), 3):
            for column, example, (_, crop) in zip(st.columns(3), examples[start:start + 3], pictures[start:start + 3]):
                column.image(tensor_to_pil(crop).resize((128, 128), Image.Resampling.LANCZOS),
                             caption=f"{example.rank}. {example.activation:.3g}", width="stretch")
    with whole_column:
        st.markdown("**The whole views**")
        for start in range(0, len(examples), 3):
            for column, example, (whole, _) in zip(st.columns(3), examples[start:start + 3], pictures[start:start + 3]):
                column.image(tensor_to_pil(whole), caption=found.views[example.view].name, width="stretch")


def renders_ui(ctx: Context, unit: int) -> None:
    st.markdown("**What it wants to see**")
    both = st.columns(2)
    unrendered = False
    for column, config, name in ((both[0], ctx.fft, "FFT (lucent)"), (both[1], ctx.maco, "MaCo")):
        render = featviz.lookup(ctx.model, ctx.layer.name, [unit], config, ctx.cache).get(unit)
        if render is None:
            unrendered = True
            column.caption(f"{name}: not rendered yet")
            continue
        column.image(tensor_to_pil(render.image), caption=name, width="stretch")
        if config.parameterisation == "maco" and render.attribution is not None:
            column.image(tensor_to_pil(render.attribution[None].expand(3, -1, -1)), width="stretch",
                         caption="MaCo attribution: where the picture matters to the unit")
    if unrendered and st.button(f"Render unit {unit}", key="atlas.render_unit", icon=":material/brush:",
                                disabled=progress.running(RENDER_SLOT)):
        start_render(ctx, ctx.model, ctx.layer, [unit])


def dream_ui(ctx: Context, unit: int) -> None:
    st.markdown("**Its DeepDream on a photo**")
    samples = {s.path.name: s for s in sample_images()}
    state.default("keep.atlas.dream_image", "cat_chelsea.jpg", list(samples))
    sample = samples[st.selectbox("Photo", list(samples), key="keep.atlas.dream_image",
                                  format_func=lambda f: samples[f].title)]
    key = (ctx.model.name, ctx.layer.name, unit, sample.path.name)
    if st.button(f"Dream unit {unit}", key="atlas.dream", type="primary", icon=":material/auto_awesome:",
                 disabled=progress.running(DREAM_SLOT)):
        start_dream(ctx, unit, sample.path, key)
    progress.panel(DREAM_SLOT, on_done=lambda done: st.session_state.update({DREAMED: done}))
    dreamed = st.session_state.get(DREAMED)
    if dreamed is not None and dreamed.key == key:
        st.image(tensor_to_pil(dreamed.result.image), width="stretch",
                 caption=f"{sample.title}, the unit as the objective (Google preset)")


def unit_view(ctx: Context, found: atlas.Atlas, overview: pd.DataFrame, unit: int) -> None:
    """One unit: its address, concept, top crops and views, histogram, renders and DeepDream."""
    rows = overview.set_index("unit")
    chosen = ctx.atlas_choice
    link = {"model": ctx.model.name, "layer": ctx.layer.alias, "unit": str(unit),
            "views": COLLECTION_IDS[chosen.collection], "size": str(chosen.side), "k": str(chosen.top_k)}
    st.query_params.update(link)
    st.divider()
    st.subheader(f"Unit {unit} of {ctx.layer.alias}")
    row = rows.loc[unit]
    reading = (f"Concept: **{row['concept']}**, {row['share']:.0%} of its {chosen.top_k} top crops judged "
               f"{'so' if row['concept'] != atlas.NO_CONCEPT else 'in its commonest group'} "
               f"(most common class: {row['top_class']})"
               if isinstance(row["top_class"], str) else "No concept reading.")
    st.markdown(f"{reading}. Peak {row['peak']:.3g}, typical maximum {row['median_max']:.3g}, "
                f"active on {row['active_share']:.0%} of the views. "
                f"Link: `?{'&'.join(f'{k}={v}' for k, v in link.items())}`")
    examples_ui(found, unit, chosen.top_k)
    histogram_column, fv_column, dream_column = st.columns(3, gap="medium")
    with histogram_column:
        st.plotly_chart(figures.unit_histogram(found.histogram(unit), f"Unit {unit}: maximum per view"),
                        key="atlas.histogram", config={"displayModeBar": False})
    with fv_column:
        renders_ui(ctx, unit)
    with dream_column:
        dream_ui(ctx, unit)


def beside(ctx: Context, readings: pd.DataFrame) -> None:
    """The second model at the same relative depth, and the units per concept of both."""
    st.divider()
    second = ctx.atlas_choice.second
    second_name = ctx.choice.spec.twin if second == TWIN else second
    try:
        model_b = state.load_model(second_name)
    except LabError as err:
        state.show_error(str(err))
        return
    layer_b = model_b.layer_at_depth(ctx.layer.depth)
    st.subheader(f"Beside it: {model_b.spec.title}, {layer_b.alias}")
    folder_b = ctx.folder_of(model_b, layer_b)
    found_b = atlas.load_atlas(folder_b) if atlas.is_complete(folder_b) else None
    readings_b = ctx.readings_of(found_b) if found_b is not None else None
    if readings_b is None:
        st.caption(f"At the same relative depth ({layer_b.depth:.2f} against {ctx.layer.depth:.2f}); "
                   "its atlas is not computed yet.")
        if st.button(f"Run the atlas of {layer_b.alias} on {model_b.spec.title}", key="atlas.run_second",
                     icon=":material/travel_explore:", disabled=progress.running(PASS_SLOT)):
            start_pass(ctx, model_b, layer_b)
        return
    counts = atlas.units_per_group(pd.concat([readings, readings_b], ignore_index=True), ctx.groups)
    st.plotly_chart(figures.units_per_concept(counts), key="atlas.compare", config={"displayModeBar": False})
    dogs = counts[counts["group"] == "dogs"].set_index("model")["units"]
    st.caption(f"Same views, same judge, same threshold. Dog units: {ctx.model.name} {dogs.get(ctx.model.name, 0)}, "
               f"{model_b.name} {dogs.get(model_b.name, 0)}.")


def main() -> None:
    st.title("Atlas")
    st.caption("Every unit (channel) of a layer over a photo collection: the views that drive it hardest with the "
               "crop its receptive field sees, its activation distribution, what it wants to see (two feature "
               "visualisations), and the concept a judge reads in its top crops. The model and the layer are in the "
               "sidebar; a unit's address is in the URL, so a link opens that unit.")
    apply_link()
    choice = widgets.model_ui()
    layer = widgets.layer_ui(choice)
    if message := st.session_state.pop("atlas.link_error", None):
        st.error(message, icon=":material/link_off:")
    if not choice.runnable:
        state.show_error(choice.reason)
        return
    with st.sidebar:
        atlas_choice = atlas_ui()
    try:
        model = state.load_model(choice.name)
        judge = Judge.of(state.load_model(DEFAULT_JUDGE))
    except LabError as err:
        state.show_error(str(err))
        return
    ctx = Context(choice, model, layer, judge, atlas_choice,
                  atlas.sample_collection(COLLECTIONS[atlas_choice.collection]), RenderCache())
    folder = ctx.folder_of(model, layer)
    complete = atlas.is_complete(folder)
    found = atlas.load_atlas(folder) if (folder / atlas.MANIFEST).is_file() else None
    readings = ctx.readings_of(found) if found is not None else None
    ready = complete and readings is not None

    top_row = st.columns([3, 1], vertical_alignment="bottom")
    top_row[0].markdown(f"**{choice.title} · {layer.alias}** (depth {layer.depth:.2f}, {layer.shape[0]} units) over "
                        f"{len(ctx.views)} views at {atlas_choice.side} px; concepts read by {judge.model.spec.title}, "
                        f"a unit's group needs {atlas.CONCEPT_THRESHOLD:.0%} of its {atlas_choice.top_k} crops.")
    label = "Atlas ready" if ready else ("Resume the atlas" if found is not None else "Run the atlas")
    if top_row[1].button(label, key="atlas.run", type="primary", icon=":material/travel_explore:", width="stretch",
                         disabled=ready or progress.running(PASS_SLOT)):
        start_pass(ctx, model, layer)
    progress.panel(PASS_SLOT, on_done=pass_done)
    if not ready:
        st.info("No atlas of this layer yet: Run computes it (stored, and resumed if stopped).", icon=":material/info:")
        return
    overview = atlas.unit_overview(found, readings)
    caption(found, folder)
    unit_view(ctx, found, overview, grid(ctx, found, overview, folder))
    beside(ctx, readings)


main()
