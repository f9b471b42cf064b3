"""The Compare page in streamlit's AppTest: the offline default pair dreams a grid; mistakes are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from analysis.recipes import Recipe, replay_obstacle, run_recipe
from analysis.zoo import load_model
from dashboard.results import RESULTS_KEY
from tests.app.conftest import finish_job

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "compare.py")


@pytest.fixture
def page(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path))  # no Places weights: the offline default
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def test_default_pair_dreams_a_two_row_grid_with_each_models_readings(page):
    at = page
    assert at.selectbox(key="keep.compare.pair").value == "efficientnet_lite0|efficientnet_lite0-untrained"
    assert not at.error
    at.slider(key="keep.compare.size").set_value(64)
    at.slider(key="keep.compare.count").set_value(3)
    at.button(key="compare.run").click().run()
    at = finish_job(at, "compare.job")
    assert not at.exception and not at.error
    run = at.session_state["compare.result"]
    result = run.comparison
    assert [len(result.a.results), len(result.b.results)] == [3, 3]
    assert [c.depth for c in result.columns] == [0.1, 0.5, 0.9]
    assert result.a.results[0].record.seed == result.b.results[0].record.seed
    table = at.dataframe[0].value
    assert table["column"].tolist() == ["depth 0.10", "depth 0.50", "depth 0.90"]
    assert len(at.get("download_button")) == 1
    assert run.grid.width > 4 * 64  # original + 3 dreams per row
    # every dream goes to the Export page, each with the recipe of its single dream (the CPU)
    kept = at.session_state[RESULTS_KEY]
    assert [r.kind for r in kept] == ["compare"] * 6
    assert {r.record.model for r in kept} == {"efficientnet_lite0", "efficientnet_lite0-untrained"}
    assert all(replay_obstacle(r.record) is None for r in kept)
    replayed = run_recipe(Recipe.from_dict(kept[1].record.recipe), load_model("efficientnet_lite0", device="cpu"))
    assert torch.equal(replayed.image, result.a.results[1].image)  # the recipe gives the very pixels


def test_the_same_model_twice_is_refused_in_one_line(page):
    at = page
    at.selectbox(key="keep.compare.pair").set_value("custom").run()
    at.selectbox(key="keep.compare.b").set_value("efficientnet_lite0").run()
    at.button(key="compare.run").click().run()
    assert [e.value for e in at.error] == ["Choose two different models."]
    assert "compare.result" not in at.session_state


def test_a_model_without_weights_says_which_file_and_cannot_run(page):
    at = page
    at.selectbox(key="keep.compare.pair").set_value("custom").run()
    at.selectbox(key="keep.compare.a").set_value("resnet50_places365").run()
    assert any("resnet50_places365.pth.tar" in e.value for e in at.error)
    assert at.button(key="compare.run").disabled


def test_layers_chosen_per_model_must_pair_up(page):
    at = page
    at.radio(key="keep.compare.mode").set_value("Layers per model").run()
    at.multiselect(key="keep.compare.layers.A.efficientnet_lite0").set_value(["_blocks.3", "_blocks.9"]).run()
    at.multiselect(key="keep.compare.layers.B.efficientnet_lite0-untrained").set_value(["_blocks.3"]).run()
    at.button(key="compare.run").click().run()
    assert len(at.error) == 1 and "as many layers for B as for A" in at.error[0].value


def test_bvlc_and_places_googlenet_files_make_their_pair_the_default(tmp_path, monkeypatch):
    """Presence is all the choice needs (nothing is loaded before a dream): empty files stand for the weights."""
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no-hub"))
    for name in ("bvlc_googlenet-1f25f8c8778a8802.pth", "googlenet_places205.pth"):
        (tmp_path / name).write_bytes(b"x")
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="keep.compare.pair").value == "bvlc_googlenet|googlenet_places205"
