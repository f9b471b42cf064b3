"""Home: a few lines, one picture, and the one-click example dream of the cat."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from dashboard import results
from tests.app.conftest import APP, finish_job


def test_one_click_example_dreams_the_cat(no_extra_weights):
    at = AppTest.from_file(APP, default_timeout=120).run()
    assert len(at.image) == 1  # the picture
    at.button(key="home.run").click().run()
    assert not at.exception and not at.error
    at = finish_job(at, "home.job")
    assert not at.exception and not at.error
    run = at.session_state["home.result"]
    assert run.result.image.shape[0] == 3 and max(run.result.image.shape[1:]) == 224
    assert run.recipe.config.octaves == 2 and len(run.result.trace) == 10
    assert len(at.image) == 2  # original beside the dream
    assert at.image[1].captions[0].startswith("Dream: EfficientNet-Lite0")
    assert len(at.dataframe) == 2  # top-5 of both
    assert [r.kind for r in at.session_state[results.RESULTS_KEY]] == ["dream"]
