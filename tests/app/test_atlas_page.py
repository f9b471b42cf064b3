"""The Atlas page in AppTest: a deep link opens a unit, the pass runs and resumes, the grid filters,
the twin sits beside it with units per concept, bad links say so."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis import atlas
from tests.app.conftest import finish_job

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "atlas.py")
QUICK = "Bundled photos, 14 views (whole and mirrored)"


def open_page(params: dict[str, str] | None = None, quick: bool = True) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    if quick:
        at.session_state["keep.atlas.collection"] = QUICK
        at.session_state["keep.atlas.side"] = 64
        at.session_state["keep.atlas.top_k"] = 4
    return at.run()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("INCEPTIONISM_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def test_a_link_opens_that_unit_after_the_pass_and_the_twin_is_compared(isolated):
    link = {"model": "efficientnet_lite0", "layer": "block3", "unit": "7", "views": "whole", "size": "64", "k": "4"}
    at = open_page(link, quick=False)  # the link alone chooses the collection, view size and k
    assert not at.exception and not at.error
    assert at.selectbox(key="keep.layer.efficientnet_lite0").value == "_blocks.3"
    assert at.selectbox(key="keep.atlas.collection").value == QUICK and at.selectbox(key="keep.atlas.side").value == 64
    assert at.button(key="atlas.run").label == "Run the atlas"
    at.button(key="atlas.run").click().run()
    at = finish_job(at, "atlas.pass_job")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.button(key="atlas.run").label == "Atlas ready" and at.button(key="atlas.run").disabled
    stored = atlas.atlas_root() / "whole" / "efficientnet_lite0__block3__64px"
    assert atlas.is_complete(stored)
    titles = [s.value for s in at.subheader]
    assert "Unit 7 of block3" in titles  # the linked unit, not the strongest one
    assert {k: at.query_params[k] for k in link} == link  # the page's own link is the one it was opened with
    unit_buttons = [b for b in at.button if b.key and b.key.startswith("atlas.open.")]
    assert len(unit_buttons) == 12  # a page of the grid

    # another unit from the grid: the URL follows
    other = unit_buttons[0]
    number = int(other.key.rsplit(".", 1)[1])
    other.click().run()
    assert f"Unit {number} of block3" in [s.value for s in at.subheader]
    assert at.query_params["unit"] == str(number)

    # filtering by concept keeps only that concept's units
    readings = atlas.load_readings(atlas.load_atlas(stored), "efficientnet_lite0", 4)
    concept = readings["concept"].value_counts().index[0]
    at.multiselect(key="atlas.concepts").set_value([concept]).run()
    shown = [int(b.key.rsplit(".", 1)[1]) for b in at.button if b.key and b.key.startswith("atlas.open.")]
    expected = set(readings.loc[readings["concept"] == concept, "unit"])
    assert shown and set(shown) <= expected and len(shown) == min(12, len(expected))

    # the unit's two feature visualisations (draft quality), MaCo with its attribution map
    at.session_state["keep.atlas.quality"] = "Draft"
    at.run()
    at.button(key="atlas.render_unit").click().run()
    at = finish_job(at, "atlas.render_job")
    assert not at.exception and not at.error
    captions = [c for image in at.image for c in image.captions]
    assert {"FFT (lucent)", "MaCo", "MaCo attribution: where the picture matters to the unit"} <= set(captions)
    assert "atlas.render_unit" not in [b.key for b in at.button]  # both rendered: no button

    # its DeepDream on a bundled photo, the unit as the objective
    at.button(key="atlas.dream").click().run()
    at = finish_job(at, "atlas.dream_job")
    assert not at.exception and not at.error
    assert any(c.endswith("the unit as the objective (Google preset)") for image in at.image for c in image.captions)

    # the untrained twin beside it, at the same depth, then the units-per-concept chart
    at.button(key="atlas.run_second").click().run()
    at = finish_job(at, "atlas.pass_job")
    assert not at.exception and not at.error
    chart = at.get("plotly_chart")
    assert chart, "the units-per-concept chart is missing"
    assert any("Dog units" in c.value for c in at.caption)


def test_a_bad_link_says_so_and_the_page_still_works(isolated):
    at = open_page({"model": "efficientnet_lite0", "layer": "no_such_layer", "unit": "3"})
    assert not at.exception
    assert any("could not be opened" in e.value for e in at.error)
    assert at.button(key="atlas.run").label == "Run the atlas"
    at = open_page({"model": "nonsense"})
    assert not at.exception and any("Unknown model" in e.value for e in at.error)
    at = open_page({"model": "efficientnet_lite0", "size": "100"}, quick=False)
    assert not at.exception and any("size 100 is not one of" in e.value for e in at.error)


def test_a_cancelled_pass_keeps_its_batches_and_resumes(isolated):
    at = open_page({"model": "efficientnet_lite0", "layer": "block3", "views": "default", "size": "64", "k": "4"},
                   quick=False)
    at.button(key="atlas.run").click().run()
    at.session_state["atlas.pass_job"].cancel()  # stops between batches: the receptive field alone takes longer
    at = finish_job(at, "atlas.pass_job")
    assert not at.exception and not at.error
    assert at.button(key="atlas.run").label == "Resume the atlas"
    stored = atlas.atlas_root() / "default" / "efficientnet_lite0__block3__64px"
    kept = sorted((stored / atlas.BATCHES).glob("*.npz"))
    assert len(kept) < 23 and not atlas.is_complete(stored)  # 364 views in batches of 16
    written = [p.stat().st_mtime_ns for p in kept]
    at.button(key="atlas.run").click().run()
    at = finish_job(at, "atlas.pass_job")
    assert not at.exception and not at.error
    assert at.button(key="atlas.run").label == "Atlas ready" and atlas.is_complete(stored)
    assert [p.stat().st_mtime_ns for p in kept] == written  # the kept batches were not run again
