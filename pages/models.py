"""Models: the zoo, what is present, how to add what is missing; the layer browser."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from analysis import figures, zoo
from analysis.errors import LabError
from analysis.zoo.weights import downloads
from dashboard import widgets

ROW_PX = 35
DOWNLOADED = "models.downloaded"

def _weights(row: dict) -> str:
    if not row["weights_present"]:
        return "✗ missing"
    return f"✓ {row['size_mb']:.1f} MB" if row["size_mb"] is not None else "✓"


def zoo_table(rows: list[dict]) -> None:
    table = pd.DataFrame([{
        "model": row["title"], "trained on": row["training_data"], "architecture": row["architecture"],
        "weights": _weights(row), "name": row["model"],
    } for row in rows])
    st.dataframe(table, hide_index=True, width="stretch", key="models.table", height=ROW_PX * (len(table) + 1) + 3,
                 column_config={"name": st.column_config.TextColumn("name (command line)")})


def download(spec: zoo.ModelSpec) -> None:
    """One model's file, with a progress bar; the outcome is kept for the rerun that shows the new table."""
    bar = st.progress(0.0, text=f"Connecting for {spec.weights.filename}…")

    def on_bytes(received: int, total: int | None) -> None:
        of = f" of {total / 1e6:.1f}" if total else ""
        bar.progress(min(received / total, 1.0) if total else 0.0, text=f"{spec.weights.filename}: "
                     f"{received / 1e6:.1f}{of} MB")

    try:
        st.session_state[DOWNLOADED] = ("success", f"{spec.title}: saved "
                                        + downloads.download_weights(spec, on_bytes=on_bytes).describe())
    except LabError as err:
        st.session_state[DOWNLOADED] = ("error", str(err))
    st.rerun()


def download_outcome() -> None:
    """The last download's outcome, once: kept by download() across the rerun that shows the new table."""
    if DOWNLOADED in st.session_state:
        kind, message = st.session_state.pop(DOWNLOADED)
        (st.success if kind == "success" else st.error)(message)


def missing_ui(missing: list[dict]) -> None:
    """Where to put each missing file, and a download button where this machine can fetch it."""
    folder = zoo.weights_dir()
    mirror = os.environ.get(downloads.MIRROR_ENV, "")
    st.subheader("Adding a missing model")
    st.markdown(f"Download the file, put it in **`{folder}`** (or in the folder named by `INCEPTIONISM_WEIGHTS_DIR`) "
                "and reload the page. Where this machine is online, a button below (or "
                "`python -m analysis download NAME`) does both, checks the file's sha256 where its source publishes "
                "one and records it in `SHA256SUMS`"
                + (f"; downloads come from the mirror **{mirror}**." if mirror else
                   f"; `{downloads.MIRROR_ENV}` points every download at a mirror."))
    st.dataframe(pd.DataFrame([{"model": row["title"], "file name": row["weights_file"],
                                "download from": row["download"]} for row in missing]),
                 hide_index=True, width="stretch", key="models.missing", height=ROW_PX * (len(missing) + 1) + 3,
                 column_config={"download from": st.column_config.LinkColumn("download from")})
    try:  # a mistyped mirror is one line here, and no buttons
        sources = {row["model"]: downloads.source_url(zoo.get_spec(row["model"]))
                   for row in missing if zoo.get_spec(row["model"]).weights.url}
    except LabError as err:
        sources = {}
        st.error(str(err))
    columns = st.columns(3)
    for i, (name, url) in enumerate(sources.items()):
        spec = zoo.get_spec(name)
        published = downloads.published_sha256(spec)
        if columns[i % 3].button(f"Download {spec.title}", key=f"models.download.{name}", width="stretch",
                                 help=f"{spec.weights.filename} from {url}; sha256 "
                                      + (f"checked against the published {published}" if published else
                                         "recorded (the source publishes none)")):
            download(spec)


def layers_ui(choice: widgets.ModelChoice) -> None:
    """The layer browser of the sidebar's model: a table and a chart of channels and resolution by depth."""
    st.subheader(f"Layers of {choice.title}")
    st.caption("The layers a dream can use (change the model in the sidebar): output shape for a 224 px input and "
               "relative depth, 0 = first layer, 1 = class scores. Traced without loading any weights.")
    frame = figures.layers_frame(zoo.layer_table(choice.spec))
    left, right = st.columns([2, 3])
    with left:
        st.dataframe(frame[["layer", "shape", "depth", "module"]], hide_index=True, width="stretch",
                     key="models.layers", height=min(ROW_PX * (len(frame) + 1) + 3, 640), column_config={
                         "depth": st.column_config.ProgressColumn("depth", format="%.2f", min_value=0.0,
                                                                  max_value=1.0),
                         "module": st.column_config.TextColumn("module", help="The module path hooks attach to."),
                     })
    with right:
        st.plotly_chart(figures.channels_figure(frame, f"{choice.title}: channels and resolution by depth"),
                        key="models.chart")


def main() -> None:
    st.title("Models")
    st.caption("Every network the lab knows. EfficientNet-Lite ships with the lab; the others need a weight file. "
               "Every model also has an untrained twin (random weights, sidebar toggle) that needs none.")
    rows = zoo.model_table()
    zoo_table(rows)
    download_outcome()
    missing = [row for row in rows if not row["weights_present"]]
    if missing:
        missing_ui(missing)
    st.divider()
    layers_ui(widgets.model_ui())


main()
