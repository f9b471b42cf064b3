"""Bias: what each network dreams of, measured: the dog effect against a baseline and a control.

Every study on this page runs on the study engine (analysis.studies): "Run the study" into a folder of
this session, shown in full (every dream, a gallery tab per image); "Run the study into this folder"
into a folder of any size, which the page follows while it fills. Both run here in a worker thread,
or on the configured Ray cluster.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from analysis import bias, figures, zoo
from analysis.bundles import bundle_zip
from analysis.errors import ConfigError
from analysis.images import tensor_to_pil
from analysis.labels import DOGS, class_groups, sample_images
from analysis.provenance import RunRecord
from analysis.studies import executors
from analysis.studies.judging import (
    DEFAULT_GROUP,
    check_depths,
    default_judges,
    judge_names,
    scene_judge_name,
    with_controls,
)
from analysis.studies.overview import load_study, overview, sheet
from analysis.studies.plan import Plan, expand
from analysis.studies.store import Results
from dashboard import progress, results, runs, state, widgets
from dashboard.readings import depth_reading

SLOT, RESULT, GALLERY, SKIPPED = "bias.job", "bias.result", "bias.gallery", "bias.skipped"
DEPTH_CHOICES = [round(i / 10, 1) for i in range(11)]
DEFAULT_SAMPLES = ["cat_chelsea.jpg", "coffee.jpg", "astronaut.jpg"]
MAX_MODELS = 4
FOLDER_SLOT = "bias.folder.job"
STUDY_BATCH = 2  # dreams per committed batch of a page study: a cancel lets at most this many finish
FOLLOW_SECONDS = 2.0
GALLERY_SAMPLE = 8


# ---------------------------------------------------------------- choices


@dataclass(frozen=True)
class StudyChoice:
    """What the setup columns chose: the same for a study shown here and one run into a folder."""

    dreamers: list[str]  # the chosen models, with their twins when the control is on
    judges: list[str]
    depths: list[float]
    samples: list[str]  # bundled photo file names
    uploads: list[tuple[str, bytes]]
    noise: int
    settings: widgets.SettingsChoice
    cluster: str | None  # the Ray cluster's address when the study runs there

    @property
    def image_count(self) -> int:
        return len(self.samples) + len(self.uploads) + self.noise

    def plan(self, images: tuple[str, ...] = (), seeds: tuple[int, ...] | None = None) -> Plan:
        """The study plan; `images` adds folders or globs to the bundled photos. One-line errors for
        a missing choice, in the order the page asks for them."""
        if not self.dreamers:
            raise ConfigError("Choose at least one model that dreams.")
        if not self.judges:
            raise ConfigError("Choose at least one judge.")
        config = self.settings.config()
        depths = check_depths(self.depths)
        names = tuple(Path(name).stem for name in self.samples) + images
        if not names and not self.noise:
            raise ConfigError("Choose at least one image: a bundled photo, your own, or noise.")
        return Plan(models=tuple(self.dreamers), depths=tuple(depths), images=names, noise_seeds=self.noise,
                    seeds=seeds or (config.seed,), config=config, preset=self.settings.preset,
                    size=self.settings.size, judges=tuple(self.judges),
                    precision=state.current_precision()).validate()


def models_ui(specs: dict[str, zoo.ModelSpec], present: list[str]) -> list[str]:
    """The models that dream, with their untrained twins as the control unless turned off."""
    st.subheader("1 · Models that dream")
    chosen = widgets.kept_multiselect(
        "Models", present, key="keep.bias.models", default=[zoo.DEFAULT_MODEL], max_selections=MAX_MODELS,
        format_func=lambda n: widgets.model_label(specs[n], True), placeholder="Choose 1 to 4 models",
        help="Only models whose weights are on this machine; the Models page says how to add others.")
    state.default("keep.bias.controls", True)
    controls = st.toggle("Add each model's untrained twin as the control", key="keep.bias.controls",
                         help="The twin dreams the same images at the same depths with random weights: what it "
                              "produces comes from the architecture and the optimisation, not the training data.")
    return with_controls(chosen) if controls else list(chosen)


def images_ui() -> tuple[list[str], list[tuple[str, bytes]], int]:
    """Bundled photos, uploads and noise seeds."""
    st.subheader("2 · Images")
    samples = {s.path.name: s for s in sample_images()}
    state.default("keep.bias.samples", [f for f in DEFAULT_SAMPLES if f in samples])
    picked = st.multiselect("Bundled photos", list(samples), key="keep.bias.samples",
                            format_func=lambda f: samples[f].title, placeholder="None")
    uploads = st.file_uploader(f"Your photos (PNG, JPEG or WebP, up to {widgets.UPLOAD_LIMIT_MB} MB each)",
                               type=widgets.UPLOAD_TYPES, accept_multiple_files=True, key="bias.uploads",
                               max_upload_size=widgets.UPLOAD_LIMIT_MB)
    state.default("keep.bias.noise", 0)
    noise = st.number_input("Noise images (seeds 0, 1, …)", 0, 20, step=1, key="keep.bias.noise",
                            help="Grey noise: what a network draws from nothing, free of any photo's content.")
    return list(picked), [(u.name, u.getvalue()) for u in uploads or []], int(noise)


def depths_and_judges_ui(specs: dict[str, zoo.ModelSpec]) -> tuple[list[float], list[str]]:
    st.subheader("3 · Depths and judge")
    state.default("keep.bias.depths", list(bias.DEFAULT_DEPTHS))
    depths = st.multiselect("Layer depths", DEPTH_CHOICES, key="keep.bias.depths",
                            format_func=lambda d: f"{d:g} · {depth_reading(d)}", placeholder="Choose depths",
                            help="0 = first layer, 1 = last; each model dreams at its layer nearest each depth. "
                                 "The dog effect is usually strongest around 0.6.")
    judges = widgets.kept_multiselect(
        "Judges", judge_names(), key="keep.bias.judges", default=default_judges(),
        placeholder="Choose a judge", format_func=lambda n: widgets.model_label(specs[n], True),
        help="Classifiers that score originals and dreams. ImageNet judges report dogs, birds, food…; "
             "Places365 judges indoor and outdoor scenes.")
    if scene_judge_name() is None:
        st.caption("A Places365 scene judge appears here once its weights are present (see the Models page).")
    return list(depths), judges


def cluster_ui() -> str | None:
    """Where studies run: here, or on the Ray cluster INCEPTIONISM_RAY_ADDRESS names (offered only then)."""
    address = os.environ.get(executors.RAY_ADDRESS_ENV)
    if not address:
        return None
    state.default("keep.bias.cluster", False)
    on_cluster = st.toggle(f"Run on the Ray cluster at {address}", key="keep.bias.cluster",
                           help=f"Set by {executors.RAY_ADDRESS_ENV}. Its workers need the models' weights; "
                                "off, studies run in this server's process.")
    return address if on_cluster else None


def setup_ui() -> StudyChoice:
    specs = {name: zoo.get_spec(name) for name in zoo.model_names()}
    present = [name for name, spec in specs.items() if zoo.weights_present(spec)]
    setup, settings_column = st.columns([3, 2], gap="large")
    with setup:
        dreamers = models_ui(specs, present)
        samples, uploads, noise = images_ui()
    with settings_column:
        depths, judges = depths_and_judges_ui(specs)
        settings = widgets.settings_ui("bias", default_preset="google",
                                       default_size=224 if state.current_device() == "cpu" else 320, max_size=640)
        cluster = cluster_ui()
    choice = StudyChoice(dreamers, judges, depths, samples, uploads, noise, settings, cluster)
    with settings_column:
        with state.user_errors():
            steps = settings.config().total_steps
            dreams = len(dreamers) * len(depths) * choice.image_count
            st.caption(f"{len(dreamers)} model(s) x {len(depths)} depth(s) x {choice.image_count} image(s) = "
                       f"**{dreams} dreams** of {steps} steps each, committed {STUDY_BATCH} at a time.")
        if st.button("Run the study", type="primary", key="bias.run", icon=":material/pets:", width="stretch",
                     disabled=progress.running(SLOT)) and not progress.running(SLOT):
            start_session_study(choice)
    return choice


# ---------------------------------------------------------------- running a study (the one library call)


@dataclass
class StudyRun:
    """A finished run: the engine's summary, and the study loaded for this page when it is shown here."""

    summary: executors.RunSummary
    study: bias.Study | None = None


def start_study(slot: str, choice: StudyChoice, plan: Plan, folder: Path, scratch: Path | None = None) -> None:
    """Run the plan into the folder on the study engine, here (under the device lock) or on the cluster.
    With `scratch` (a folder holding `folder`), the finished folder is read back as an in-memory study for
    the page to show, and the scratch folder is removed."""
    items = len(expand(plan))
    if choice.cluster is None:
        loaded = {name: state.load_model(name) for name in dict.fromkeys(plan.models + plan.judges)}
        executor, device = executors.InProcess(load=loaded.__getitem__), state.current_device()
    else:
        executor, device = executors.executor_for(choice.cluster), None

    def work(on_step, should_cancel) -> StudyRun:
        try:
            summary = executors.run(plan, folder, executor, resume=True, batch_size=STUDY_BATCH, on_step=on_step,
                                    should_cancel=should_cancel)
            return StudyRun(summary, None if scratch is None else load_study(folder))
        finally:
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)

    where = "" if choice.cluster is None else " on the cluster"
    into = "Bias study" if scratch is not None else f"Study into {folder.name}"
    runs.start_run(slot, f"{into}{where}: {items} dreams", work, device, total=items)


def session_folder() -> Path:
    """A new folder for a study shown on this page, one per run, in the temporary folder: removed once the
    study is read back into memory (a study worth keeping on disk is run into a folder below)."""
    return Path(tempfile.gettempdir()) / "inceptionism-studies" / uuid.uuid4().hex[:12]


def save_uploads(uploads: list[tuple[str, bytes]], folder: Path) -> tuple[str, ...]:
    """Uploads as files the plan can name (a folder beside the results); unreadable ones are skipped there."""
    if not uploads:
        return ()
    folder.mkdir(parents=True, exist_ok=True)
    for k, (name, data) in enumerate(uploads):
        file = folder / (Path(name).name or f"upload-{k}.png")
        if file.exists():  # two uploads of one name stay two images
            file = folder / f"{k}-{file.name}"
        file.write_bytes(data)
    return (str(folder),)


def start_session_study(choice: StudyChoice) -> None:
    with state.user_errors():
        root = session_folder()
        choice.plan()  # its one-line errors before anything is written
        plan = choice.plan(save_uploads(choice.uploads, root / "uploads"))
        start_study(SLOT, choice, plan, root / "results", scratch=root)


def session_study_done(run: StudyRun) -> None:
    study = run.study
    st.session_state[RESULT] = study
    st.session_state[SKIPPED] = run.summary.skipped
    widgets.forget("bias.view.depth")  # the new study's strongest depth becomes the default
    st.session_state.pop(GALLERY, None)
    if len(study.table):
        table = study.table
        grid = bias.gallery(study, DEFAULT_GROUP[table["judge_data"].iloc[0]])
        results.add_result("bias", f"Bias study · {table['image'].nunique()} images", grid.render(),
                           RunRecord.from_dict(grid.metadata()), table=table)


# ---------------------------------------------------------------- a study shown in full


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


def view_ui(study: bias.Study) -> tuple[str, str, float]:
    """The judge, class group and detail depth the charts read."""
    table = study.table
    pick_judge, pick_group, pick_depth = st.columns(3)
    judge = pick_judge.selectbox("Judge", list(dict.fromkeys(table["judge"])), key="bias.view.judge")
    groups = bias.groups_in(table, judge)
    default_group = DEFAULT_GROUP[table.loc[table["judge"] == judge, "judge_data"].iloc[0]]
    state.default(f"bias.view.group.{judge}", default_group, groups)
    group = pick_group.selectbox("Class group", groups, key=f"bias.view.group.{judge}")
    summary = bias.summary(table, group, judge)
    run_depths = sorted(summary["depth"].unique())
    trained = summary.loc[~summary["control"]]
    strongest = float(trained.sort_values("ratio").iloc[-1]["depth"]) if len(trained) else run_depths[0]
    state.default("bias.view.depth", strongest, run_depths)
    depth = pick_depth.selectbox("Depth for the detail charts", run_depths, key="bias.view.depth",
                                 format_func=lambda d: f"{d:g} · {depth_reading(d)}")
    return judge, group, depth


def export_ui(study: bias.Study, group: str, judge: str, figures_shown: list, lines: list[str]) -> None:
    table = study.table
    st.subheader("Export")
    csv, html, _ = st.columns([1, 1, 2])
    csv.download_button("Study CSV", table.to_csv(index=False), file_name="bias-study.csv", mime="text/csv",
                        key="bias.csv", on_click="ignore", icon=":material/table:",
                        help="One row per model, depth, image, judge and class group.")
    html.download_button(
        "Charts HTML", lambda: figures.figures_html(f"Dataset bias: '{group}' judged by {judge}", figures_shown, lines),
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
    note.caption(":material/info: The bundle carries each dream's settings and seed; the study's plan.json "
                 "(in its results folder) runs the whole study again.")


def show_study(study: bias.Study, skipped: dict[str, str]) -> None:
    st.divider()
    for image, why in skipped.items():
        st.warning(f"Skipped {image}: {why}", icon=":material/broken_image:")
    if study.cancelled:
        st.warning(f"Cancelled: {study.done} of {study.planned} dreams kept (the batch in flight finished), "
                   "so every number below comes from whole dreams.", icon=":material/stop_circle:")
    if study.table.empty:
        st.info("No dream finished before the cancel: nothing to measure yet.")
        return
    table = study.table
    judge, group, depth = view_ui(study)
    lines = bias.reading(table, group, judge)
    chart, words = st.columns([3, 2], gap="large")
    depth_figure = figures.bias_depth(bias.summary(table, group, judge))
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
    export_ui(study, group, judge, [depth_figure, groups_figure, emergent_figure], lines)
    with st.expander("Summary table"):
        st.dataframe(bias.summary(table, group, judge), hide_index=True, width="stretch")


# ---------------------------------------------------------------- studies at scale: a results folder


def folder_ui() -> tuple[str, str, int]:
    """The results folder, extra images (a folder or glob) and the seeds per dream."""
    path_column, extra_column = st.columns([3, 2], gap="large")
    state.default("keep.bias.folder", "")
    folder = path_column.text_input("Results folder on this machine", key="keep.bias.folder",
                                    placeholder="/data/studies/dogs",
                                    help="A new or empty folder to run into, or a study's results folder to open.")
    state.default("keep.bias.image_folder", "")
    image_folder = extra_column.text_input(
        "Images: a folder or glob on this machine (optional)", key="keep.bias.image_folder",
        placeholder="/data/imagenet/val/*.JPEG",
        help="Added to the bundled photos and noise chosen above; unreadable files are skipped and counted. "
             "Uploads stay in the study above.")
    state.default("keep.bias.seeds", 1)
    seeds = extra_column.number_input("Seeds per dream", 1, 10, step=1, key="keep.bias.seeds",
                                      help="Each image is dreamed with seeds 0, 1, …: intervals over seeds.")
    return folder.strip(), image_folder.strip(), int(seeds)


def start_folder_study(choice: StudyChoice, folder: str, image_folder: str, seeds: int) -> None:
    with state.user_errors():
        if not folder:
            raise ConfigError("Give the results folder to run into.")
        plan = choice.plan((image_folder,) if image_folder else (), tuple(range(seeds)))
        start_study(FOLDER_SLOT, choice, plan, Path(folder))


def folder_study_done(run: StudyRun) -> None:
    summary = run.summary
    kept = "cancelled: " if summary.cancelled else ""
    st.toast(f"Study {kept}{summary.done} of {summary.planned} dreams in the folder "
             f"({len(summary.skipped)} unreadable images skipped).", icon=":material/folder:")


def folder_choices_ui(plan: Plan) -> tuple[str, str, str]:
    """The judge, its class group and what the intervals are over, for a folder's plan."""
    judge_pick, group_pick, over_pick = st.columns(3)
    judge = judge_pick.selectbox("Judge", list(plan.judges), key="bias.folder.judge")
    dataset = zoo.get_spec(judge).labels
    groups = list(class_groups(dataset))
    state.default("bias.folder.group", DEFAULT_GROUP.get(dataset, DOGS), groups)
    group = group_pick.selectbox("Class group", groups, key="bias.folder.group")
    over = over_pick.radio("Intervals over", ["images", "seeds"], key="bias.folder.over", horizontal=True)
    return judge, group, over


def show_sheet(folder: Path) -> None:
    """A layer sweep or a feature-visualisation gallery: no judge, no interval; its progress, a line per model
    and layer, and a sample of its pictures (the whole contact sheet: `study report FOLDER --out sheet.html`)."""
    view = sheet(folder)
    kind = "layer sweep" if view.plan.workload == "sweep" else "feature-visualisation gallery"
    st.progress(min(1.0, len(view.rows) / max(view.planned, 1)),
                text=f"A {kind}: {len(view.rows)} of {view.planned} items · {view.state} · {len(view.skipped)} "
                     "unreadable image(s) skipped")
    if view.rows.empty:
        st.info("No finished item in this folder yet.")
        return
    st.dataframe(view.summary(), hide_index=True, width="stretch")
    pictures = view.pictures(GALLERY_SAMPLE)
    st.markdown(f"**The first {len(pictures)} pictures** · the whole contact sheet: "
                f"`python -m analysis study report {folder} --out sheet.html`")
    for row_start in range(0, len(pictures), 4):
        for column, (row, col, path, caption) in zip(st.columns(4), pictures[row_start:row_start + 4]):
            column.image(str(path), caption=f"{row} · {col}" if view.plan.workload == "sweep" else f"{row} · {caption}",
                         width="stretch")


def show_folder(folder: Path) -> None:
    """The folder read afresh on every run: while a study fills it, the fragment below reruns this."""
    with state.user_errors():
        plan = Results.open(folder).plan()
        if plan.workload != "bias":
            show_sheet(folder)
            return
        judge, group, over = folder_choices_ui(plan)
        view = overview(folder, group, judge, over)
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


def folder_section(choice: StudyChoice) -> None:
    st.divider()
    st.subheader("Studies at scale: a results folder")
    st.caption("A study run into a folder keeps every finished dream (Parquet rows and PNGs): a stop loses at most "
               "the batch in flight, a new run carries on where it stopped, and the folder opens here while it is "
               "still being written, by this page or by `python -m analysis study run` (in-process or on Ray). "
               "The charts quote 95% bootstrap intervals.")
    folder, image_folder, seeds = folder_ui()
    if st.button("Run the study into this folder", key="bias.folder.run", icon=":material/folder:",
                 disabled=progress.running(FOLDER_SLOT),
                 help="The models, images, depths, judges and settings above; a folder that holds this very study "
                      "carries on where it stopped.") and not progress.running(FOLDER_SLOT):
        start_folder_study(choice, folder, image_folder, seeds)
    progress.panel(FOLDER_SLOT, on_done=folder_study_done)
    if not folder:
        return
    if not (Path(folder) / "plan.json").is_file():
        st.caption("No study in this folder yet: the button above runs one into it.")
        return
    st.fragment(show_folder, run_every=FOLLOW_SECONDS if progress.running(FOLDER_SLOT) else None)(Path(folder))


def main() -> None:
    st.title("Dataset bias: what do networks dream of?")
    st.caption("118 of ImageNet's 1000 classes are dog breeds, so ImageNet networks are said to dream of dogs. "
               "This page measures it: every image is dreamed at several depths, and a judge classifier scores the "
               "originals and the dreams. The originals' share is the baseline; each model's untrained twin "
               "(same architecture, random weights) is the control.")
    choice = setup_ui()
    progress.panel(SLOT, on_done=session_study_done)
    study = st.session_state.get(RESULT)
    if study is not None:
        show_study(study, st.session_state.get(SKIPPED, {}))
    folder_section(choice)


main()
