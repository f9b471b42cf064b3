"""Export: this session's results as a labelled grid, PNG and ZIP downloads, and replaying a grid recipe."""

import streamlit as st

from analysis.bundles import load_grid_recipe, replay_grid
from analysis.grids import GRID_FIELDS, ONE_ROW, Grid, arrange
from dashboard import progress, results, state

SLOT, REPLAYED = "export.job", "export.replayed"
AUTO = "auto"
FIELD_NAMES = {AUTO: "automatic (what differs)", ONE_ROW: "one row", "model": "model", "layer": "layer",
               "image": "start image", "objective": "objective", "settings": "settings", "seed": "seed",
               "title": "result title"}
CELL_SIZES = [0, 128, 192, 256, 384, 512]
PER_ROW = 6

st.title("Export")
st.caption("Lay out results of this session as a labelled grid, then download the grid PNG or a ZIP bundle "
           "(every picture, the grid, statistics, and a recipe that replays the grid to the same pixels).")

build_tab, replay_tab = st.tabs(["Build a grid", "Replay a grid recipe"])

with build_tab:
    found = results.list_results()
    if not found:
        st.info("No results yet. Dream on the other pages: every result appears here, ready to be laid out.",
                icon=":material/photo_library:")
    else:
        head, clear = st.columns([4, 1])
        head.markdown(f"**{len(found)} result{'s' * (len(found) != 1)} this session** · tick the ones to lay out "
                      f"(the newest {results.MAX_RESULTS} are kept)")
        clear.button("Clear all", key="export.clear", on_click=results.clear_results, icon=":material/delete:",
                     width="stretch")
        for start in range(0, len(found), PER_ROW):
            for column, result in zip(st.columns(PER_ROW), found[start:start + PER_ROW]):
                with column:  # the title as a caption: it wraps, where a checkbox label would be cut short
                    st.image(result.image, width="stretch", caption=result.title)
                    st.checkbox("In the grid", value=True, key=f"export.pick.{result.id}",
                                help=f"From the {result.kind.capitalize()} page")
                    results.result_downloads(result, key=f"export.save.{result.id}")
        chosen = [r for r in found if st.session_state.get(f"export.pick.{r.id}", True)]

        st.subheader("Layout")
        a, b, c, d = st.columns(4)
        rows_by = a.selectbox("Rows", [AUTO, ONE_ROW, *GRID_FIELDS], key="export.rows", format_func=FIELD_NAMES.get)
        cols_by = b.selectbox("Columns", [AUTO, *GRID_FIELDS], key="export.cols", format_func=FIELD_NAMES.get)
        title = c.text_input("Title", key="export.title", placeholder="automatic")
        side = d.selectbox("Cell size", CELL_SIZES, key="export.cell",
                           format_func=lambda v: f"{v} px" if v else "as the pictures",
                           help="The longest side of every cell; pictures are fitted and centred.")
        if not chosen:
            st.info("Tick at least one result to build a grid.")
        else:
            with state.user_errors():
                grid = arrange([r.grid_item() for r in chosen], None if rows_by == AUTO else rows_by,
                               None if cols_by == AUTO else cols_by, title.strip() or None, cell_side=side or None)
                rows, cols = grid.shape
                plural = "s" * (len(chosen) != 1)
                st.image(grid.render(), caption=f"{rows} x {cols} grid of {len(chosen)} result{plural}")
                results.export_buttons(grid, key="export.grid", stats=results.stats_table(chosen))


def start_replay(data: bytes) -> None:
    with state.user_errors():
        recipe, inputs = load_grid_recipe(data)
        loaded = {name: state.load_model(name) for name in recipe.model_names()}
        device = next(iter(loaded.values())).device

        def work(on_step, should_cancel) -> Grid:
            return replay_grid(recipe, loaded.__getitem__, inputs, on_step, should_cancel)

        progress.start(SLOT, f"Replaying {len(recipe.recipes())} dreams", work, lock=state.device_lock(device),
                       total=recipe.total_steps())


with replay_tab:
    st.caption("Upload a bundle ZIP (or its recipe.json, or a single dream's recipe): every cell is dreamed again "
               "and laid out as before. On the CPU the pixels equal the original grid's.")
    upload = st.file_uploader("Bundle ZIP or recipe JSON", type=["zip", "json"], key="export.recipe_upload",
                              max_upload_size=20)
    busy = progress.running(SLOT)
    if st.button("Replay", type="primary", key="export.replay", icon=":material/replay:",
                 disabled=busy or upload is None) and upload is not None and not progress.running(SLOT):
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
