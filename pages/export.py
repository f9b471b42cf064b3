"""Export: this session's results as a labelled grid, PNG and ZIP downloads, and replaying a grid recipe."""

from __future__ import annotations

import streamlit as st

from analysis.bundles import load_grid_recipe, replay_grid
from analysis.grids import GRID_FIELDS, ONE_ROW, Grid, arrange
from dashboard import progress, results, runs, state

SLOT, REPLAYED = "export.job", "export.replayed"
AUTO = "auto"
FIELD_NAMES = {AUTO: "automatic (what differs)", ONE_ROW: "one row", "model": "model", "layer": "layer",
               "image": "start image", "objective": "objective", "settings": "settings", "seed": "seed",
               "title": "result title"}
CELL_SIZES = [0, 128, 192, 256, 384, 512]
PER_ROW = 6


def picks_ui(found: list[results.Result]) -> list[results.Result]:
    """Every result of this session with a tick box and its own downloads; returns the ticked ones."""
    head, clear = st.columns([4, 1])
    head.markdown(f"**{len(found)} result{'s' * (len(found) != 1)} this session** · tick the ones to lay out "
                  f"(the newest {results.MAX_RESULTS} are kept)")
    clear.button("Clear all", key="export.clear", on_click=results.clear_results, icon=":material/delete:",
                 width="stretch")
    chosen = []
    for start in range(0, len(found), PER_ROW):
        for column, result in zip(st.columns(PER_ROW), found[start:start + PER_ROW]):
            with column:  # the title as a caption: it wraps, where a checkbox label would be cut short
                st.image(result.image, width="stretch", caption=result.title)
                if st.checkbox("In the grid", value=True, key=f"export.pick.{result.id}",
                               help=f"From the {result.kind.capitalize()} page"):
                    chosen.append(result)
                results.result_downloads(result, key=f"export.save.{result.id}")
    return chosen


def layout_ui() -> tuple[str | None, str | None, str | None, int | None]:
    """Rows by, columns by (None: automatic), the title (None: automatic) and the cell side (None: as is)."""
    st.subheader("Layout")
    a, b, c, d = st.columns(4)
    rows_by = a.selectbox("Rows", [AUTO, ONE_ROW, *GRID_FIELDS], key="export.rows", format_func=FIELD_NAMES.get)
    cols_by = b.selectbox("Columns", [AUTO, *GRID_FIELDS], key="export.cols", format_func=FIELD_NAMES.get)
    title = c.text_input("Title", key="export.title", placeholder="automatic")
    side = d.selectbox("Cell size", CELL_SIZES, key="export.cell",
                       format_func=lambda v: f"{v} px" if v else "as the pictures",
                       help="The longest side of every cell; pictures are fitted and centred.")
    return (None if rows_by == AUTO else rows_by, None if cols_by == AUTO else cols_by, title.strip() or None,
            side or None)


def build_tab() -> None:
    found = results.list_results()
    if not found:
        st.info("No results yet. Dream on the other pages: every result appears here, ready to be laid out.",
                icon=":material/photo_library:")
        return
    chosen = picks_ui(found)
    rows_by, cols_by, title, side = layout_ui()
    if not chosen:
        st.info("Tick at least one result to build a grid.")
        return
    with state.user_errors():
        grid = arrange([r.grid_item() for r in chosen], rows_by, cols_by, title, cell_side=side)
        rows, cols = grid.shape
        plural = "s" * (len(chosen) != 1)
        st.image(grid.render(), caption=f"{rows} x {cols} grid of {len(chosen)} result{plural}")
        results.export_buttons(grid, key="export.grid", stats=results.stats_table(chosen))


def start_replay(data: bytes) -> None:
    """The one library call: replay_grid, every cell dreamed again."""
    with state.user_errors():
        recipe, inputs = load_grid_recipe(data)
        loaded = {name: state.load_model(name) for name in recipe.model_names()}
        device = next(iter(loaded.values())).device

        def work(on_step, should_cancel) -> Grid:
            return replay_grid(recipe, loaded.__getitem__, inputs, on_step, should_cancel)

        runs.start_run(SLOT, f"Replaying {len(recipe.recipes())} dreams", work, device, total=recipe.total_steps())


def replay_tab() -> None:
    st.caption("Upload a bundle ZIP (or its recipe.json, or a single dream's recipe): every cell is dreamed again "
               "and laid out as before. On the CPU the pixels equal the original grid's.")
    upload = st.file_uploader("Bundle ZIP or recipe JSON", type=["zip", "json"], key="export.recipe_upload",
                              max_upload_size=20)
    if st.button("Replay", type="primary", key="export.replay", icon=":material/replay:",
                 disabled=progress.running(SLOT) or upload is None) and upload is not None \
            and not progress.running(SLOT):
        start_replay(upload.getvalue())
    progress.panel(SLOT, on_done=lambda grid: st.session_state.update({REPLAYED: grid}))
    replayed = st.session_state.get(REPLAYED)
    if replayed is not None:
        if replayed.cancelled:
            st.warning(f"Cancelled: {len(replayed.items())} cells were replayed; the others are left empty.",
                       icon=":material/stop_circle:")
        if replayed.items():
            st.image(replayed.render(), caption="Replayed grid")
            results.export_buttons(replayed, key="export.replayed", file_stem="replayed-grid")


def main() -> None:
    st.title("Export")
    st.caption("Lay out results of this session as a labelled grid, then download the grid PNG or a ZIP bundle "
               "(every picture, the grid, statistics, and a recipe that replays the grid to the same pixels).")
    build, replay = st.tabs(["Build a grid", "Replay a grid recipe"])
    with build:
        build_tab()
    with replay:
        replay_tab()


main()
