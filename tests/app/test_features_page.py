"""The Features page in AppTest: measure the image, render a page of channels, open one, cancel, errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from analysis.zoo import count_hooks
from dashboard import state
from tests.app.conftest import finish_job

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "features.py")


def channel_buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button if b.key and b.key.startswith("features.open.")]


@pytest.fixture
def page(tmp_path, monkeypatch) -> AppTest:
    """The page after its first run and the measurement it starts by itself, with tiny renders."""
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path / "weights"))
    monkeypatch.setenv("INCEPTIONISM_CACHE_DIR", str(tmp_path / "cache"))
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception and not at.error
    at = finish_job(at, "features.measure_job")
    assert not at.exception and not at.error
    at.radio(key="keep.features.quality").set_value("Custom").run()
    at.number_input(key="keep.features.size").set_value(64)
    at.number_input(key="keep.features.steps").set_value(8)
    at.selectbox(key="keep.features.per_page").set_value(6).run()
    return at


def test_the_grid_shows_each_channels_activation_and_sorts_by_it(page):
    at = page
    measured = at.session_state["features.measured"]
    means = measured.means
    assert channel_buttons(at)[:2] == [f"#0 · {means[0]:.2f}", f"#1 · {means[1]:.2f}"]
    at.radio(key="keep.features.sort").set_value("excitation").run()
    best = int(means.argmax())
    assert channel_buttons(at)[0] == f"#{best} · {means[best]:.2f}"
    assert at.subheader[-2].value.startswith(f"Channel {best} of block10")  # the most excited opens first
    assert at.subheader[-1].value == "Beside it: EfficientNet-Lite0 (untrained twin), block10"


def test_a_page_renders_once_then_comes_from_the_cache(page, tmp_path):
    at = page
    assert at.button(key="features.render").label == "Render 6 channel(s)"
    at.button(key="features.render").click().run()
    at = finish_job(at, "features.render_job")
    assert not at.exception and not at.error
    assert len(list((tmp_path / "cache" / "featviz").glob("*.png"))) == 6
    assert at.button(key="features.render").label == "Page rendered" and at.button(key="features.render").disabled

    fresh = AppTest.from_file(PAGE, default_timeout=120)  # a new session: the renders come from disk
    fresh.run()
    fresh = finish_job(fresh, "features.measure_job")
    fresh.radio(key="keep.features.quality").set_value("Custom").run()
    fresh.number_input(key="keep.features.size").set_value(64)
    fresh.number_input(key="keep.features.steps").set_value(8)
    fresh.selectbox(key="keep.features.per_page").set_value(6).run()
    assert fresh.button(key="features.render").label == "Page rendered"
    assert "features.render_job" not in fresh.session_state


def test_a_chosen_channel_is_mapped_dreamed_and_its_top_photos_listed(page):
    at = page
    at.button(key="features.open.3").click().run()
    assert at.subheader[-2].value == "Channel 3 of block10"
    chart = at.get("plotly_chart")
    assert len(chart) == 1
    captions = [c.value for c in at.caption]
    assert any(c.startswith("The channel's 140-cell feature map") for c in captions)  # the cat: 224x160 px, stride 16
    top = at.session_state["features.measured"].table
    best = top[top["channel"] == 3].sort_values("activation", ascending=False)["image"].iloc[0]
    assert any(md.value.startswith("**The photos that excite channel 3 most**") for md in at.markdown)
    image_captions = [c for image in at.get("image") for c in image.captions]
    assert any(c.startswith(f"1. {best} · ") for c in image_captions)
    at.button(key="features.dream").click().run()
    at = finish_job(at, "features.dream_job")
    assert not at.exception and not at.error
    dreamed = at.session_state["features.dreamed"]
    assert dreamed.key[:3] == ("efficientnet_lite0", "_blocks.10", 3)
    assert dreamed.result.record.objective == {"type": "channels", "layer": "_blocks.10", "channels": [3]}


def test_a_cancelled_render_keeps_its_pictures_caches_none_and_leaves_no_hooks(page, tmp_path):
    at = page
    model = state._cached_model("efficientnet_lite0", "cpu", "fp32")  # the page's own instance (a process-wide cache)
    assert at.session_state["features.measured"].beside.model is state._cached_model(
        "efficientnet_lite0-untrained", "cpu", "fp32")
    hooks = count_hooks(model.module)
    at.number_input(key="keep.features.steps").set_value(400).run()
    at.button(key="features.render").click().run()
    job = at.session_state["features.render_job"]
    deadline = time.monotonic() + 120
    while job.step < 2 and not job.finished and time.monotonic() < deadline:
        time.sleep(0.05)
    job.cancel()
    at = finish_job(at, "features.render_job")
    assert not at.exception and not at.error
    assert [w.value for w in at.warning][0].startswith("Cancelled: the pictures finished so far are shown")
    last = at.session_state["features.last_renders"]
    assert len(last) == 6 and not any(r.complete for r in last.values())
    assert list((tmp_path / "cache" / "featviz").glob("*.png")) == []
    assert count_hooks(model.module) == hooks
    assert at.button(key="features.render").label == "Render 6 channel(s)"  # unfinished ones can be rendered again


def test_a_model_without_weights_is_one_line(page):
    at = page
    at.sidebar.selectbox(key="keep.model").set_value("resnet50").run()
    assert not at.exception
    assert len(at.error) == 1 and "resnet50-0676ba61.pth" in at.error[0].value
