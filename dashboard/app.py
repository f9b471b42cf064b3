"""Inceptionism Lab: the Streamlit entry point.  Run with `make run`
(or `streamlit run dashboard/app.py`).

To add a page: write pages/<name>.py and add one line to PAGES.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts dashboard/ on the path, not the repository
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import state, widgets  # noqa: E402

# (file under pages/, title in the navigation, Material icon)
PAGES: tuple[tuple[str, str, str], ...] = (
    ("home.py", "Home", ":material/home:"),
    ("dream.py", "Dream", ":material/auto_awesome:"),
    ("layers.py", "Layers", ":material/layers:"),
    ("features.py", "Features", ":material/grid_view:"),
    ("atlas.py", "Atlas", ":material/travel_explore:"),
    ("compare.py", "Compare", ":material/compare:"),
    ("activation_statistics.py", "Statistics", ":material/query_stats:"),
    ("bias.py", "Bias", ":material/pets:"),
    ("animation.py", "Animation", ":material/animated_images:"),
    ("video.py", "Video", ":material/movie:"),
    ("export.py", "Export", ":material/ios_share:"),
    ("models.py", "Models", ":material/inventory_2:"),
)

st.set_page_config(page_title="Inceptionism Lab", page_icon=":material/cyclone:", layout="wide")
state.keep_widget_values()
page = st.navigation([st.Page(ROOT / "pages" / file, title=title, icon=icon, default=i == 0)
                      for i, (file, title, icon) in enumerate(PAGES)])
page.run()
widgets.device_ui()
