"""The Layers page in AppTest: N layers low to high, a labelled grid, replayable layers, one-line errors."""

from __future__ import annotations

import functools
import io

import pytest
import torch
from PIL import Image

from analysis import dream as dreaming
from analysis import recipes
from analysis.dream import preset
from analysis.errors import ConfigError
from analysis.grids import arrange
from analysis.images import noise_image
from analysis.pngmeta import read_png_metadata
from analysis.recipes import ImageSource, Recipe, run_recipe
from dashboard import results, runs
from tests.app.conftest import finish_job

SLOT, RESULT = "layers.job", "layers.result"


def small(at):
    at.slider(key="keep.layers.size").set_value(64)
    at.selectbox(key="keep.layers.preset").set_value("quick")
    return at.run()


def test_layers_spread_low_to_high_as_a_labelled_grid(open_page):
    at = small(open_page("layers"))
    assert at.slider(key="keep.layers.count").value == 6  # the default
    at.slider(key="keep.layers.count").set_value(3).run()
    at.button(key="layers.run").click().run()
    assert not at.exception and not at.error
    at = finish_job(at, SLOT)
    assert not at.exception and not at.error
    run = at.session_state[RESULT]
    depths = [info.depth for info in run.layers]
    assert depths == sorted(depths) and depths[0] == 0.0 and len(depths) == 3
    assert len(run.results) == 3 and all(len(r.trace) == 10 for r in run.results)
    assert len(at.image) >= 4  # original + 3 dreams (+ the grid preview)
    labels = " ".join(m.value for m in at.markdown)
    assert "strokes and edges" in labels and "block0" in labels
    (_download,) = at.get("download_button")  # exactly one: the grid PNG
    grid = Image.open(io.BytesIO(run.png()))
    assert grid.width > 4 * 64
    assert read_png_metadata(run.png())["layers"] == [info.alias for info in run.layers]
    assert [r.kind for r in at.session_state[results.RESULTS_KEY]] == ["layers"] * 3
    assert "recipe" not in read_png_metadata(run.png())  # the grid is about every layer, not the first


def test_each_layer_dreamed_on_the_cpu_replays_from_its_recipe(open_page, lite0):
    at = small(open_page("layers"))
    at.slider(key="keep.layers.count").set_value(2).run()
    at.button(key="layers.run").click().run()
    at = finish_job(at, SLOT)
    registered = at.session_state[results.RESULTS_KEY]
    assert all(r.record.batch_size == 1 and r.record.recipe["max_side"] == 64 for r in registered)
    last = registered[-1]  # the high layer: the other one is the same code path
    replay = run_recipe(Recipe.from_dict(last.record.recipe), lite0)
    assert replay.record.layers == last.record.layers
    assert torch.equal(replay.image, at.session_state[RESULT].results[-1].image)
    assert any("recipe that replays it" in c.value for c in at.caption)  # the page says so, on the CPU

    grid = arrange([r.grid_item() for r in registered])  # as the Export page lays them out and bundles them
    assert [cell.to_dict() for _, _, cell in grid.recipe().recipes()] == [r.record.recipe for r in registered]
    with pytest.raises(ConfigError, match="grid recipe.*analysis grid --recipe"):
        Recipe.from_dict(grid.recipe().to_dict())  # `dream --recipe` on a bundle's recipe.json says what to run


def test_a_batched_sweep_carries_no_recipe(lite0, monkeypatch):
    monkeypatch.setattr(recipes, "dream_batch", functools.partial(dreaming.dream_batch, batched=True))  # as on a GPU
    source = ImageSource("noise", size=(64, 64), seed=1)
    work = runs.layers_work(lite0, noise_image(64, 1), lite0.layers_spread(2), preset("quick", iterations=2),
                            source, 64, "noise")
    run = work(None, None)
    assert [r.record.batch_size for r in run.results] == [2, 2]
    assert not any(r.record.recipe is not None for r in run.results)


def test_chosen_layers_are_sorted_low_to_high(open_page):
    at = small(open_page("layers"))
    at.radio(key="keep.layers.mode").set_value("Choose").run()
    at.button(key="layers.run").click().run()
    assert [e.value for e in at.error] == ["Choose at least one layer."]
    at.multiselect(key="keep.layers.pick.efficientnet_lite0").set_value(["_bn1", "_blocks.2"]).run()
    at.button(key="layers.run").click().run()
    at = finish_job(at, SLOT)
    assert not at.error
    assert [info.alias for info in at.session_state[RESULT].layers] == ["block2", "head"]


def test_model_without_weights_cannot_run(open_page):
    at = open_page("layers")
    at.selectbox(key="keep.model").set_value("resnet18_places365").run()
    (message,) = [e.value for e in at.error]
    assert "resnet18_places365.pth.tar" in message and "places2.csail.mit.edu" in message
    assert at.button(key="layers.run").disabled
