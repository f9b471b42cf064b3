"""The Statistics page (pages/activation_statistics.py; not statistics.py, which would shadow the stdlib
module when pages/ is on sys.path) in AppTest: measure two models, read the figures, dream a channel."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import finish_job

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "activation_statistics.py")


@pytest.fixture
def measured(tmp_path, monkeypatch) -> AppTest:
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="keep.statistics.a").value == "efficientnet_lite0"
    assert at.selectbox(key="keep.statistics.b").value == "efficientnet_lite0-untrained"
    at.multiselect(key="keep.statistics.samples").set_value(["cat_chelsea.jpg", "coffee.jpg"])
    at.slider(key="keep.statistics.size").set_value(64)
    at.button(key="statistics.run").click().run()
    return finish_job(at, "statistics.job")


def test_two_models_are_measured_and_drawn(measured):
    at = measured
    assert not at.exception and not at.error
    frame = at.session_state["statistics.result"].frame
    assert set(frame["model"]) == {"efficientnet_lite0", "efficientnet_lite0-untrained"}
    assert frame.attrs == {"images": 2, "cancelled": False}
    assert len(at.get("plotly_chart")) == 3  # depth lines, channel distribution, heatmap
    top = at.dataframe[0].value
    assert set(top["model"]) == {"efficientnet_lite0", "efficientnet_lite0-untrained"}
    assert top.groupby("model")["rank"].max().tolist() == [8, 8]
    assert {b.label for b in at.get("download_button")} >= {"Top channels CSV", "All statistics CSV"}


def test_the_depth_slider_picks_each_models_layer(measured):
    at = measured
    at.slider(key="keep.statistics.depth").set_value(0.9).run()
    top = at.dataframe[0].value
    assert set(top["layer"]) == {"block15"}


def test_choosing_channels_dreams_them_on_the_image(measured):
    at = measured
    model = at.selectbox(key="statistics.dream_model").value
    assert model == "efficientnet_lite0"
    channel_box = next(m for m in at.multiselect if m.key.startswith("statistics.channels."))
    top = at.dataframe[0].value
    assert channel_box.value == top[top["model"] == model]["channel"].head(4).tolist()
    channel_box.set_value(channel_box.value[:2])
    at.slider(key="keep.statistics_dream.size").set_value(64)
    at.button(key="statistics.dream").click().run()
    at = finish_job(at, "statistics.dream_job")
    assert not at.exception and not at.error
    dreams = at.session_state["statistics.dreams"]
    assert dreams.channels == channel_box.value[:2] and len(dreams.results) == 2
    assert [r.record.objective["channels"] for r in dreams.results] == [[c] for c in dreams.channels]


def test_no_image_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    at.multiselect(key="keep.statistics.samples").set_value([]).run()
    at.button(key="statistics.run").click().run()
    assert [e.value for e in at.error] == ["Choose at least one photo or upload one."]
    assert "statistics.result" not in at.session_state
