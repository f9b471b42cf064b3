"""Bias: what each network dreams of, measured: the dog effect against a baseline and a control."""

from pathlib import Path

import streamlit as st

from analysis import bias, figures, zoo
from analysis.errors import ConfigError, ImageError
from analysis.export import bundle_zip, figures_html
from analysis.images import tensor_to_pil
from analysis.labels import sample_images
from analysis.studies import executors
from analysis.studies.overview import overview
from analysis.studies.plan import Plan, expand
from dashboard import progress, results, state, widgets
from dashboard.readings import depth_reading

SLOT, RESULT, GALLERY = "bias.job", "bias.result", "bias.gallery"
DEPTH_CHOICES = [round(i / 10, 1) for i in range(11)]
DEFAULT_SAMPLES = ["cat_chelsea.jpg", "coffee.jpg", "astronaut.jpg"]
MAX_MODELS = 4
FOLDER_SLOT = "bias.folder.job"
FOLDER_BATCH = 2  # dreams per committed batch of a page study: a cancel lets at most this many finish
FOLLOW_SECONDS = 2.0
GALLERY_SAMPLE = 8

st.title("Dataset bias: what do networks dream of?")
st.caption("118 of ImageNet's 1000 classes are dog breeds, so ImageNet networks are said to dream of dogs. "
           "This page measures it: every image is dreamed at several depths, and a judge classifier scores the "
           "originals and the dreams. The originals' share is the baseline; each model's untrained twin "
           "(same architecture, random weights) is the control.")

specs = {name: zoo.get_spec(name) for name in zoo.model_names()}
present = [name for name, spec in specs.items() if zoo.weights_present(spec)]
samples = {s.path.name: s for s in sample_images()}

setup, settings_column = st.columns([3, 2], gap="large")
with setup:
    st.subheader("1 · Models that dream")
    state.default("keep.bias.models", [zoo.DEFAULT_MODEL])
    st.session_state["keep.bias.models"] = [n for n in st.session_state["keep.bias.models"] if n in present]
    chosen = st.multiselect("Models", present, key="keep.bias.models", max_selections=MAX_MODELS,
                            format_func=lambda n: widgets.model_label(specs[n], True),
                            placeholder="Choose 1 to 4 models",
                            help="Only models whose weights are on this machine; "
                                 "the Models page says how to add others.")
    state.default("keep.bias.controls", True)
    controls = st.toggle("Add each model's untrained twin as the control", key="keep.bias.controls",
                         help="The twin dreams the same images at the same depths with random weights: what it "
                              "produces comes from the architecture and the optimisation, not the training data.")
    st.subheader("2 · Images")
    state.default("keep.bias.samples", [f for f in DEFAULT_SAMPLES if f in samples])
    picked = st.multiselect("Bundled photos", list(samples), key="keep.bias.samples",
                            format_func=lambda f: samples[f].title, placeholder="None")
    uploads = st.file_uploader(f"Your photos (PNG, JPEG or WebP, up to {widgets.UPLOAD_LIMIT_MB} MB each)",
                               type=widgets.UPLOAD_TYPES, accept_multiple_files=True, key="bias.uploads",
                               max_upload_size=widgets.UPLOAD_LIMIT_MB)
    state.default("keep.bias.noise", 0)
    noise = st.number_input("Noise images (seeds 0, 1, …)", 0, 20, step=1, key="keep.bias.noise",
                            help="Grey noise: what a network draws from nothing, free of any photo's content.")
with settings_column:
    st.subheader("3 · Depths and judge")
    state.default("keep.bias.depths", list(bias.DEFAULT_DEPTHS))
    depths = st.multiselect("Layer depths", DEPTH_CHOICES, key="keep.bias.depths",
                            format_func=lambda d: f"{d:g} · {depth_reading(d)}", placeholder="Choose depths",
                            help="0 = first layer, 1 = last; each model dreams at its layer nearest each depth. "
                                 "The dog effect is usually strongest around 0.6.")
    judge_options = bias.judge_names()
    state.default("keep.bias.judges", bias.default_judges())
    st.session_state["keep.bias.judges"] = [n for n in st.session_state["keep.bias.judges"] if n in judge_options]
    judge_names = st.multiselect("Judges", judge_options, key="keep.bias.judges", placeholder="Choose a judge",
                                 format_func=lambda n: widgets.model_label(specs[n], True),
                                 help="Classifiers that score originals and dreams. ImageNet judges report "
                                      "dogs, birds, food…; Places365 judges indoor and outdoor scenes.")
    if bias.scene_judge_name() is None:
        st.caption("A Places365 scene judge appears here once its weights are present (see the Models page).")
    settings = widgets.settings_ui("bias", default_preset="google",
                                   default_size=224 if state.current_device() == "cpu" else 320, max_size=640)

dreamers = bias.with_controls(chosen) if controls else list(chosen)
image_count = len(picked) + len(uploads or []) + int(noise)


def study_images(size: int) -> list[bias.StudyImage]:
    images = [bias.sample_image(name, size) for name in picked]
    for upload in uploads or []:
        try:
            images.append(bias.upload_image(upload.name, upload.getvalue(), size))
        except ImageError as err:
            raise widgets.named(err, upload.name) from None
    return images + bias.noise_images(int(noise), size)


def start() -> None:
    with state.user_errors():
        if not dreamers:
            raise ConfigError("Choose at least one model that dreams.")
        if not judge_names:
            raise ConfigError("Choose at least one judge.")
        config = settings.config()
        checked = bias.check_depths(depths)
        images = study_images(settings.size)
        if not images:
            raise ConfigError("Choose at least one image: a bundled photo, your own, or noise.")
        loaded = {name: state.load_model(name) for name in dict.fromkeys(dreamers + judge_names)}
        judges = [bias.Judge.of(loaded[name]) for name in judge_names]
        models_in = [loaded[name] for name in dreamers]

        def work(on_step, should_cancel) -> bias.Study:
            return bias.run_study(models_in, checked, images, judges, config, on_step, should_cancel)

        progress.start(SLOT, f"Bias study: {len(models_in) * len(checked) * len(images)} dreams", work,
                       lock=state.device_lock(models_in[0].device),
                       total=len(models_in) * len(images) * config.total_steps, preview=images[0].pixels)


def finished(study: bias.Study) -> None:
    st.session_state[RESULT] = study
    st.session_state.pop("bias.view.depth", None)  # the new study's strongest depth becomes the default
    st.session_state.pop(GALLERY, None)
    if len(study.table):
        table = study.table
        group = bias.DEFAULT_GROUP[table["judge_data"].iloc[0]]
        grid = bias.gallery(study, group)
        results.add_result("bias", f"Bias study · {table['image'].nunique()} images", grid.render(),
                           grid.metadata(), table=table)


busy = progress.running(SLOT)
with settings_column:
    with state.user_errors():
        steps = settings.config().total_steps
        st.caption(f"{len(dreamers)} model(s) x {len(depths)} depth(s) x {image_count} image(s) = "
                   f"**{len(dreamers) * len(depths) * image_count} dreams** of {steps} steps each "
                   "(batched per image on a GPU).")
    if st.button("Run the study", type="primary", key="bias.run", icon=":material/pets:", width="stretch",
                 disabled=busy) and not progress.running(SLOT):
        start()

progress.panel(SLOT, on_done=finished)


def gallery_tab(study: bias.Study, image: str, group: str, judge: str) -> None:
    rows = study.table[(study.table["judge"] == judge) & (study.table["group"] == group)
                       & (study.table["image"] == image)]
    study_depths = sorted(rows["depth"].unique())
    for k, model in enumerate(dict.fromkeys(rows["model"])):
        part = rows[rows["model"] == model].set_index("depth")
        st.markdown(f"**{model}**")
        columns = st.columns(len(study_depths) + 1)
        if k == 0:
            first = part.iloc[0]
            columns[0].image(tensor_to_pil(study.originals[image]), width="stretch")
            columns[0].caption(f"original · {first['original_top']}  \n{group} {first['share_original']:.2%}")
        for column, depth in zip(columns[1:], study_depths):
            row = part.loc[depth]
            column.image(tensor_to_pil(study.dreams[(model, depth, image)]), width="stretch")
            column.caption(f"{depth:g} · {row['layer']} · **{row['dream_top']}** {row['dream_top_p']:.0%}  \n"
                           f"{group} {row['share_dream']:.2%}")


study = st.session_state.get(RESULT)
if study is not None:
    st.divider()
    if study.cancelled:
        st.warning(f"Cancelled: {study.done} of {study.planned} dreams kept. The dreams in flight were dropped, "
                   "so every number below comes from whole dreams.", icon=":material/stop_circle:")
    if study.table.empty:
        st.info("No dream finished before the cancel: nothing to measure yet.")
    else:
        table = study.table
        pick_judge, pick_group, pick_depth = st.columns(3)
        judges_run = list(dict.fromkeys(table["judge"]))
        judge = pick_judge.selectbox("Judge", judges_run, key="bias.view.judge")
        groups = bias.groups_in(table, judge)
        default_group = bias.DEFAULT_GROUP[table.loc[table["judge"] == judge, "judge_data"].iloc[0]]
        state.default(f"bias.view.group.{judge}", default_group, groups)
        group = pick_group.selectbox("Class group", groups, key=f"bias.view.group.{judge}")
        summary = bias.summary(table, group, judge)
        run_depths = sorted(summary["depth"].unique())
        strongest = float(summary.loc[~summary["control"]].sort_values("ratio").iloc[-1]["depth"]) \
            if (~summary["control"]).any() else run_depths[0]
        state.default("bias.view.depth", strongest, run_depths)
        depth = pick_depth.selectbox("Depth for the detail charts", run_depths, key="bias.view.depth",
                                     format_func=lambda d: f"{d:g} · {depth_reading(d)}")
        lines = bias.reading(table, group, judge)
        chart, words = st.columns([3, 2], gap="large")
        depth_figure = figures.bias_depth(summary)
        chart.plotly_chart(depth_figure, key="bias.chart.depth")
        with words:
            st.markdown("#### Reading")
            st.markdown("\n".join(f"- {line}" for line in lines))
        left, right = st.columns(2)
        groups_figure = figures.bias_groups(bias.group_shares(table, depth, judge), depth)
        emergent_figure = figures.bias_emergent(bias.emergent_counts(table, judge))
        left.plotly_chart(groups_figure, key="bias.chart.groups")
        right.plotly_chart(emergent_figure, key="bias.chart.emergent")

        st.subheader("Gallery")
        st.caption(f"Under each picture: the depth and layer, the judge's top label, and the '{group}' share.")
        names = list(dict.fromkeys(table["image"]))
        for tab, image in zip(st.tabs(names), names):
            with tab:
                gallery_tab(study, image, group, judge)

        st.subheader("Export")
        csv, html, _ = st.columns([1, 1, 2])
        csv.download_button("Study CSV", table.to_csv(index=False), file_name="bias-study.csv", mime="text/csv",
                            key="bias.csv", on_click="ignore", icon=":material/table:",
                            help="One row per model, depth, image, judge and class group.")
        html.download_button(
            "Charts HTML", lambda: figures_html(f"Dataset bias: '{group}' judged by {judge}",
                                                [depth_figure, groups_figure, emergent_figure], lines),
            file_name="bias-charts.html", mime="text/html", key="bias.html", on_click="ignore",
            icon=":material/bar_chart:", help="The three charts, interactive, with the reading, in one offline page. "
                                              "The camera icon on each chart saves it as PNG.")
        grids = st.session_state.setdefault(GALLERY, {})
        if (group, judge) not in grids:
            grids[(group, judge)] = bias.gallery(study, group, judge)
        grid = grids[(group, judge)]
        png, bundle, note = st.columns([1, 1, 2])
        png.download_button("Gallery PNG", grid.png, file_name="bias-gallery.png", mime="image/png",
                            key="bias.gallery.png", on_click="ignore", icon=":material/grid_view:",
                            help="Every dream with the judge's verdict under it; the settings are in its metadata.")
        bundle.download_button("Bundle ZIP", lambda: bundle_zip(grid, table), file_name="bias-study.zip",
                               mime="application/zip", key="bias.gallery.zip", on_click="ignore",
                               icon=":material/folder_zip:", help="The gallery, every picture and the study CSV.")
        note.caption(":material/info: A study dreams its depths in batches, which are not bit-identical to single "
                     "dreams, so the bundle carries each dream's settings and seed but no replayable recipe.")
        with st.expander("Summary table"):
            st.dataframe(summary, hide_index=True, width="stretch")


# ---------------------------------------------------------------- studies at scale: a results folder

st.divider()
st.subheader("Studies at scale: a results folder")
st.caption("A study run into a folder keeps every finished dream (Parquet rows and PNGs): a stop loses at most "
           "the batch in flight, a new run carries on where it stopped, and the folder opens here while it is "
           "still being written, by this page or by `python -m analysis study run` (in-process or on Ray). "
           "The charts quote 95% bootstrap intervals.")
path_column, extra_column = st.columns([3, 2], gap="large")
state.default("keep.bias.folder", "")
folder_text = path_column.text_input("Results folder on this machine", key="keep.bias.folder",
                                     placeholder="/data/studies/dogs",
                                     help="A new or empty folder to run into, or a study's results folder to open.")
state.default("keep.bias.image_folder", "")
image_folder = extra_column.text_input("Images: a folder or glob on this machine (optional)",
                                       key="keep.bias.image_folder", placeholder="/data/imagenet/val/*.JPEG",
                                       help="Added to the bundled photos and noise chosen above; unreadable files "
                                            "are skipped and counted. Uploads stay in the quick study above.")
state.default("keep.bias.seeds", 1)
seed_count = extra_column.number_input("Seeds per dream", 1, 10, step=1, key="keep.bias.seeds",
                                       help="Each image is dreamed with seeds 0, 1, …: intervals over seeds.")


def start_folder_study() -> None:
    with state.user_errors():
        if not folder_text.strip():
            raise ConfigError("Give the results folder to run into.")
        plan = Plan(models=tuple(dreamers), depths=tuple(depths),
                    images=tuple(Path(name).stem for name in picked) + ((image_folder.strip(),) if image_folder.strip()
                                                                        else ()),
                    noise_seeds=int(noise), seeds=tuple(range(int(seed_count))), config=settings.config(),
                    preset=settings.preset, size=settings.size, judges=tuple(judge_names),
                    precision=state.current_precision()).validate()
        items = expand(plan)
        loaded = {name: state.load_model(name) for name in dict.fromkeys(plan.models + plan.judges)}
        executor = executors.InProcess(load=loaded.__getitem__)
        target = Path(folder_text.strip())

        def work(on_step, should_cancel) -> executors.RunSummary:
            return executors.run(plan, target, executor, resume=True, batch_size=FOLDER_BATCH, on_step=on_step,
                                 should_cancel=should_cancel)

        progress.start(FOLDER_SLOT, f"Study into {target.name}: {len(items)} dreams", work,
                       lock=state.device_lock(state.current_device()), total=len(items))


def folder_finished(summary: executors.RunSummary) -> None:
    kept = "cancelled: " if summary.cancelled else ""
    st.toast(f"Study {kept}{summary.done} of {summary.planned} dreams in the folder "
             f"({len(summary.skipped)} unreadable images skipped).", icon=":material/folder:")


if st.button("Run the study into this folder", key="bias.folder.run", icon=":material/folder:",
             disabled=progress.running(FOLDER_SLOT),
             help="The models, images, depths, judges and settings above; a folder that holds this very study "
                  "carries on where it stopped.") and not progress.running(FOLDER_SLOT):
    start_folder_study()
progress.panel(FOLDER_SLOT, on_done=folder_finished)


@st.fragment(run_every=FOLLOW_SECONDS if progress.running(FOLDER_SLOT) else None)
def folder_view(folder: Path) -> None:
    """The folder read afresh on every run of this fragment: it follows a running study by itself."""
    judge_pick, group_pick, over_pick = st.columns(3)
    with state.user_errors():
        judge, over = st.session_state.get("bias.folder.judge"), st.session_state.get("bias.folder.over", "images")
        try:
            view = overview(folder, st.session_state.get("bias.folder.group"), judge, over)
        except ConfigError:  # the group kept from another judge: this judge's default group
            view = overview(folder, None, judge, over)
        judge_pick.selectbox("Judge", list(view.plan.judges), key="bias.folder.judge")
        state.default("bias.folder.group", view.group, view.groups)
        group_pick.selectbox("Class group", view.groups or [view.group], key="bias.folder.group")
        over_pick.radio("Intervals over", ["images", "seeds"], key="bias.folder.over", horizontal=True)
        st.progress(min(1.0, view.rows / max(view.planned, 1)),
                    text=f"{view.rows} of {view.planned} dreams · {view.state} · {len(view.skipped)} unreadable "
                         "image(s) skipped")
        if view.table.empty:
            st.info("No finished dream in this folder yet.")
            return
        chart, words = st.columns([3, 2], gap="large")
        chart.plotly_chart(figures.study_ratio_depth(view.reading.intervals), key="bias.folder.chart")
        words.markdown("#### Reading")
        words.markdown("\n".join(f"- {line}" for line in view.reading.lines))
        st.plotly_chart(figures.bias_emergent(view.emergent()), key="bias.folder.emergent")
        st.markdown(f"**A sample of the dreams** ({GALLERY_SAMPLE} of {view.table['item'].nunique()})")
        pictures = view.gallery(GALLERY_SAMPLE)
        for row_start in range(0, len(pictures), 4):
            for column, picture in zip(st.columns(4), pictures[row_start:row_start + 4]):
                column.image(str(picture.path), caption=picture.caption, width="stretch")


if folder_text.strip():
    chosen_folder = Path(folder_text.strip())
    if (chosen_folder / "plan.json").is_file():
        folder_view(chosen_folder)
    else:
        st.caption("No study in this folder yet: the button above runs one into it.")
