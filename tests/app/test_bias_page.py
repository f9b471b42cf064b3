"""The Bias page in AppTest: set up a small study, run it, read the numbers, export; one-line errors."""

from __future__ import annotations

from dashboard import results
from tests.app.conftest import finish_job

SLOT, RESULT = "bias.job", "bias.result"


def small(at, samples: list[str], depths: list[float]):
    at.slider(key="keep.bias.size").set_value(64)
    at.selectbox(key="keep.bias.preset").set_value("quick")
    at.multiselect(key="keep.bias.samples").set_value(samples)
    at.multiselect(key="keep.bias.depths").set_value(depths)
    return at.run()


def test_a_study_runs_and_reads_its_own_numbers(open_page):
    at = open_page("bias")
    assert at.multiselect(key="keep.bias.models").value == ["efficientnet_lite0"]
    assert at.toggle(key="keep.bias.controls").value is True
    assert at.multiselect(key="keep.bias.judges").value == ["efficientnet_lite0"]  # no Places365 weights here
    assert 0.6 in at.multiselect(key="keep.bias.depths").value
    at = small(at, ["coffee.jpg"], [0.2, 0.6])
    at.number_input(key="keep.bias.noise").set_value(1).run()
    assert "**8 dreams**" in " ".join(c.value for c in at.caption)  # 2 models x 2 depths x 2 images
    at.button(key="bias.run").click().run()
    assert not at.exception and not at.error
    at = finish_job(at, SLOT)
    assert not at.exception and not at.error
    study = at.session_state[RESULT]
    assert study.done == 8 and set(study.table["model"]) == {"efficientnet_lite0", "efficientnet_lite0-untrained"}
    reading = " ".join(m.value for m in at.markdown)
    assert "efficientnet_lite0 (ImageNet)'s dreams are judged dogs" in reading and "its untrained twin's" in reading
    assert len(at.get("plotly_chart")) == 3
    assert len(at.tabs) == 2  # one gallery tab per image
    assert len(at.get("download_button")) == 4  # CSV, charts HTML, grid PNG, bundle ZIP
    assert [r.kind for r in at.session_state[results.RESULTS_KEY]] == ["bias"]
    at.selectbox(key="bias.view.group.efficientnet_lite0").set_value("birds").run()
    assert not at.exception and "judged birds" in " ".join(m.value for m in at.markdown)


def test_missing_choices_are_one_line_errors(open_page):
    at = small(open_page("bias"), [], [0.6])
    at.button(key="bias.run").click().run()
    assert [e.value for e in at.error] == ["Choose at least one image: a bundled photo, your own, or noise."]
    at = small(at, ["coffee.jpg"], [])
    at.button(key="bias.run").click().run()
    assert [e.value for e in at.error] == ["Choose at least one depth (0 = first layer, 1 = last)."]
    at.multiselect(key="keep.bias.depths").set_value([0.6])
    at.multiselect(key="keep.bias.models").set_value([]).run()
    at.toggle(key="keep.bias.controls").set_value(False).run()
    at.button(key="bias.run").click().run()
    assert [e.value for e in at.error] == ["Choose at least one model that dreams."]
    assert not at.exception
