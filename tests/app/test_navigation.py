"""The whole app through dashboard/app.py: every page opens, choices survive page switches."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard import progress
from tests.app.conftest import APP


def app_pages() -> list[str]:
    """The page files listed in dashboard/app.py's PAGES tuple."""
    tree = ast.parse(Path(APP).read_text())
    node = next(n for n in tree.body if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "PAGES")
    return [file for file, _title, _icon in ast.literal_eval(node.value)]


def test_home_is_first_and_every_page_file_exists():
    pages = app_pages()
    assert pages[0] == "home.py" and {"dream.py", "layers.py", "models.py"} <= set(pages)
    assert all((Path(APP).parents[1] / "pages" / page).is_file() for page in pages)


@pytest.mark.parametrize("page", app_pages())
def test_every_page_opens_without_error(no_extra_weights, page):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert not at.exception and not at.error
    at.switch_page(f"../pages/{page}").run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.title and at.title[0].value
    assert at.selectbox(key="keep.device").value == "auto"  # the sidebar's device picker, on every page
    assert at.selectbox(key="keep.precision").value == "auto" and any("in fp32" in c.value for c in at.sidebar.caption)
    progress.stop_all(wait=60)  # a page may start work on opening: stop it


def test_my_pages_titles(no_extra_weights):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert at.title[0].value == "Inceptionism Lab"
    for page, title in (("dream", "Dream"), ("layers", "Layers: from low to high"), ("models", "Models")):
        at.switch_page(f"../pages/{page}.py").run()
        assert at.title[0].value == title


def test_choices_survive_a_page_switch(no_extra_weights):
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.switch_page("../pages/dream.py").run()
    at.slider(key="keep.dream.size").set_value(96)
    at.selectbox(key="keep.dream.preset").set_value("quick")
    at.radio(key="keep.dream.objective").set_value("Channels").run()
    at.switch_page("../pages/models.py").run()
    assert not at.exception
    at.switch_page("../pages/dream.py").run()
    assert at.slider(key="keep.dream.size").value == 96
    assert at.selectbox(key="keep.dream.preset").value == "quick"
    assert at.radio(key="keep.dream.objective").value == "Channels"
