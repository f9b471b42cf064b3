"""Result views shared by pages: a dream beside its original, its trace, its top-5, downloads."""

from __future__ import annotations

import streamlit as st

from analysis import figures
from analysis.bundles import slug
from analysis.images import tensor_to_pil
from dashboard.runs import DreamRun


def file_stem(run: DreamRun) -> str:
    record = run.result.record
    layers = "-".join(record.layers) or "dream"
    return slug(f"{record.model or 'model'}-{layers}-seed{record.seed or 0}", 60, "dream")


PROBABILITY = {"probability": st.column_config.ProgressColumn("probability", format="percent", min_value=0.0,
                                                            max_value=1.0),
               "index": st.column_config.NumberColumn("#", width="small", help="class index")}


def _top5(top: list | None, title: str, key: str) -> None:
    if top is None:
        return
    st.markdown(f"**{title}**")
    st.dataframe(figures.topk_frame(top), hide_index=True, column_config=PROBABILITY, width="stretch", key=key)


def pair(run: DreamRun, key: str, classes: bool = True) -> None:
    """Original and dream side by side, each with its top-5 classes underneath."""
    left, right = st.columns(2)
    steps = run.result.record.steps
    with left:
        st.image(tensor_to_pil(run.original), caption=f"Original: {run.image_title}", width="stretch")
        if classes:
            _top5(run.top_original, "What the network sees in the original", f"{key}.top_original")
    with right:
        st.image(tensor_to_pil(run.result.image), width="stretch",
                 caption=f"Dream: {run.model_title}, {run.objective_text}, {steps} steps"
                         + (" (cancelled, partial)" if run.result.cancelled else ""))
        if classes:
            _top5(run.top_dream, "What it sees in the dream", f"{key}.top_dream")
    if classes and run.top_original is None:
        st.caption("This model has no class labels here, so there is no top-5.")


def dream_result(run: DreamRun, key: str, details: bool = True) -> None:
    """The full result: pair, a cancelled note, trace, top-5, downloads."""
    result = run.result
    config = run.recipe.config
    if result.cancelled:
        st.warning(f"Cancelled after {result.record.steps} of {config.total_steps} steps: "
                   "this is the partial dream.", icon=":material/stop_circle:")
    if run.replayed:
        st.info(run.replayed, icon=":material/replay:")
    pair(run, key)
    if not details:
        return
    stem = file_stem(run)
    a, b, c = st.columns([1, 1, 2], vertical_alignment="center")
    a.download_button("Download PNG", run.png(), file_name=f"{stem}.png", mime="image/png", key=f"{key}.png",
                      icon=":material/download:", width="stretch",
                      help="The dream at full size; the PNG carries its settings and recipe as metadata.")
    b.download_button("Download recipe", run.recipe.to_json(), file_name=f"{stem}.recipe.json",
                      mime="application/json", key=f"{key}.recipe", icon=":material/receipt_long:", width="stretch",
                      help="Plain JSON: upload it under 'Replay a recipe' to make the same dream again.")
    record = result.record
    c.caption(f"{record.seconds:.1f} s on {record.device} · seed {record.seed} · "
              f"weights sha256 {str(record.weights_sha256)[:12]}…")
    st.plotly_chart(figures.trace_figure(result.trace, config.iterations,
                                        title=f"Objective per step: {run.objective_text}"), key=f"{key}.trace")
