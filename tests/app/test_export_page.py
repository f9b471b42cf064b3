"""The Export page: this session's results as a grid with downloads, and replaying a recipe to the same pixels."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from analysis.dream import DreamConfig
from analysis.grids import Grid, GridItem
from analysis.images import tensor_to_pil
from analysis.objectives import LayerL2
from analysis.provenance import RunRecord
from analysis.recipes import ImageSource, Recipe, run_recipe
from analysis.zoo import load_model
from dashboard.results import RESULTS_KEY, Result, no_recipe_note

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "export.py")
TINY = DreamConfig(octaves=1, iterations=2, jitter=4, seed=3)


def page() -> AppTest:
    return AppTest.from_file(PAGE, default_timeout=120)


def fake_results() -> list[Result]:
    combos = [("net-a", "low"), ("net-a", "high"), ("net-b", "low"), ("net-b", "high")]
    return [Result(i + 1, "dream", f"{m} {layer}", Image.new("RGB", (64, 64), (60 * i, 90, 30)),
                   RunRecord(model=m, layers=[layer], seed=0, config=TINY.to_dict()))
            for i, (m, layer) in enumerate(combos)]


def captions(at: AppTest) -> list[str]:
    return [c for image in at.image for c in image.captions]


def test_without_results_the_page_says_where_they_come_from():
    at = page().run()
    assert not at.exception
    assert "No results yet" in at.info[0].value


def test_results_become_a_labelled_grid_with_png_and_bundle_downloads():
    at = page()
    at.session_state[RESULTS_KEY] = fake_results()
    at.run()
    assert not at.exception and not at.error
    # each result's full title under its picture (a checkbox label would be cut short), a tick for the grid
    assert captions(at)[:4] == ["net-a low", "net-a high", "net-b low", "net-b high"]
    assert [c.label for c in at.checkbox] == ["In the grid"] * 4
    assert "2 x 2 grid of 4 results" in captions(at)
    # each picture on its own (no recipe here: these are not single dreams), then the grid
    assert [b.label for b in at.get("download_button")] == ["Picture PNG"] * 4 + ["Grid PNG", "Bundle ZIP"]
    assert sum(c.value == no_recipe_note("no recipe") for c in at.caption) == 4
    assert any("cannot be replayed" in c.value and "made without a recipe" in c.value for c in at.caption)

    at.checkbox[3].uncheck().run()
    assert "2 x 2 grid of 3 results" in captions(at)
    at.selectbox(key="export.rows").set_value("none").run()
    assert "1 x 3 grid of 3 results" in captions(at)
    at.button(key="export.clear").click().run()
    assert "No results yet" in at.info[0].value


def test_a_single_dream_offers_its_recipe_and_a_stopped_one_does_not():
    model = load_model("efficientnet_lite0-untrained", device="cpu")
    recipe = Recipe(model.name, LayerL2("block3").to_dict(), TINY, ImageSource("noise", (32, 32), seed=2), 32)
    done = run_recipe(recipe, model)
    metadata, stopped = done.record, replace(done.record, steps=1)
    assert metadata.recipe == recipe.to_dict()
    at = page()
    at.session_state[RESULTS_KEY] = [Result(1, "dream", "noise · block3", tensor_to_pil(done.image), metadata),
                                     Result(2, "dream", "noise · block3, stopped", tensor_to_pil(done.image), stopped)]
    at.run()
    assert not at.exception
    assert [b.label for b in at.get("download_button")] == [
        "Picture PNG", "Recipe JSON", "Picture PNG", "Grid PNG", "Bundle ZIP"]  # the stopped one: no recipe
    assert any(c.value == no_recipe_note("stopped") for c in at.caption)


def wait_for(at: AppTest, key: str, seconds: float = 240) -> None:
    """Rerun until the background job has handed its result over (the page polls the same way)."""
    deadline = time.monotonic() + seconds
    while key not in at.session_state and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert key in at.session_state, [e.value for e in at.error]


def test_replaying_a_recipe_gives_the_same_pixels():
    model = load_model("efficientnet_lite0-untrained", device="cpu")
    recipe = Recipe(model.name, LayerL2("block3").to_dict(), TINY, ImageSource("noise", (64, 64), seed=2), 64)
    expected = Grid([[GridItem(tensor_to_pil(run_recipe(recipe, model).image))]]).render()

    at = page().run()
    at.file_uploader(key="export.recipe_upload").set_value(("cell.json", recipe.to_json().encode(), "application/json"))
    at.run()
    at.button(key="export.replay").click().run()
    wait_for(at, "export.replayed")
    assert not at.exception
    replayed = at.session_state["export.replayed"]
    assert np.array_equal(np.asarray(replayed.render()), np.asarray(expected))
    assert "Replayed grid" in captions(at)
    assert [b.label for b in at.get("download_button")] == ["Grid PNG", "Bundle ZIP"]


def test_a_broken_recipe_is_one_error_line():
    at = page().run()
    at.file_uploader(key="export.recipe_upload").set_value(("bad.json", b"{not json", "application/json"))
    at.run()
    at.button(key="export.replay").click().run()
    assert not at.exception
    assert [e.value for e in at.error] == ["The recipe is not valid JSON (JSONDecodeError)."]
