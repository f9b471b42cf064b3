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


FOLDER_SLOT = "bias.folder.job"


def test_a_study_runs_into_a_folder_and_the_page_reads_it_back(open_page, tmp_path):
    from analysis.studies.store import Results

    at = small(open_page("bias"), ["coffee.jpg"], [0.6])
    at.text_input(key="keep.bias.folder").set_value(str(tmp_path / "r")).run()
    assert "No study in this folder yet" in " ".join(c.value for c in at.caption)
    at.button(key="bias.folder.run").click().run()
    assert not at.exception and not at.error
    at = finish_job(at, FOLDER_SLOT)
    assert not at.exception and not at.error
    table = Results.open(tmp_path / "r").table()
    assert len(table) == 2 and set(table["model"]) == {"efficientnet_lite0", "efficientnet_lite0-untrained"}
    text = " ".join(m.value for m in at.markdown)
    assert "efficientnet_lite0 (ImageNet)'s dreams carry 'dogs'" in text and "its untrained twin" in text
    assert len(at.get("plotly_chart")) == 2  # the ratio with its intervals, the emergent classes
    assert len(at.image) == 2  # the gallery sample: both dreams
    at.selectbox(key="bias.folder.group").set_value("birds").run()
    assert not at.exception and "carry 'birds'" in " ".join(m.value for m in at.markdown)


def test_the_page_follows_a_folder_another_writer_is_filling(open_page, tmp_path):
    from analysis.dream import preset
    from analysis.studies import executors
    from analysis.studies.plan import Plan
    from analysis.studies.store import Writer

    plan = Plan(models=("efficientnet_lite0",), depths=(0.6,), noise_seeds=1, seeds=(0, 1),
                config=preset("quick", octaves=1, iterations=2), size=64, threads=1).validate()
    executors.run(plan, tmp_path / "r", batch_size=1, should_cancel=lambda: bool(list((tmp_path / "r").glob(
        "parts/part-*"))))  # stops after the first of two dreams
    with Writer(tmp_path / "r", plan, 2, resume=True):  # another process is writing it now
        at = open_page("bias")
        at.text_input(key="keep.bias.folder").set_value(str(tmp_path / "r")).run()
        assert not at.exception and not at.error
        (bar,) = at.get("progress")
        assert bar.proto.text == "1 of 2 dreams · running · 0 unreadable image(s) skipped"
        assert any("one image only: no interval" in m.value for m in at.markdown)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "plan.json").write_text("{")
    at.text_input(key="keep.bias.folder").set_value(str(tmp_path / "bad")).run()
    assert [e.value for e in at.error] == [("The plan is not valid JSON (make one with 'study plan ... --out "
                                            "PLAN.json').")]
    assert not at.exception


def test_a_cluster_that_does_not_answer_is_one_line(open_page, monkeypatch):
    import socket

    monkeypatch.delenv("INCEPTIONISM_RAY_ADDRESS", raising=False)
    at = open_page("bias")
    assert "keep.bias.cluster" not in [t.key for t in at.toggle]  # offered only where a cluster is configured
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
    monkeypatch.setenv("INCEPTIONISM_RAY_ADDRESS", address)
    at = small(open_page("bias"), ["coffee.jpg"], [0.6])
    at.toggle(key="keep.bias.cluster").set_value(True).run()
    at.button(key="bias.run").click().run()
    at = finish_job(at, SLOT)
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith(f"No Ray cluster answers at {address}")
    assert RESULT not in at.session_state


def test_a_sweep_folder_opens_as_its_pictures_not_an_error(open_page, tmp_path):
    """A layer sweep has no judge and no interval: the page shows its progress, a line per layer and its
    pictures, and points to the contact sheet."""
    from analysis.cli import main

    plan = tmp_path / "sweep.json"
    assert main(["study", "plan", "--workload", "sweep", "--model", "efficientnet_lite0", "--no-control", "--depths",
                 "0.3,0.6", "--noise-seeds", "1", "--size", "32", "--preset", "quick", "--octaves", "1",
                 "--iterations", "1", "--threads", "1", "--out", str(plan)]) == 0
    assert main(["study", "run", str(plan), "--out", str(tmp_path / "sweep")]) == 0
    at = open_page("bias")
    at.text_input(key="keep.bias.folder").set_value(str(tmp_path / "sweep")).run()
    assert not at.exception and not at.error
    (bar,) = at.get("progress")
    assert bar.proto.text == "A layer sweep: 2 of 2 items · finished · 0 unreadable image(s) skipped"
    (table,) = at.dataframe
    assert table.value["layer"].tolist() == ["block5", "block10"] and table.value["items"].tolist() == [1, 1]
    captions = [c for image in at.image for c in image.captions]
    assert captions == ["noise seed 0 · seed 0 · efficientnet_lite0 · block5 (depth 0.3)",
                        "noise seed 0 · seed 0 · efficientnet_lite0 · block10 (depth 0.6)"]
    assert any("study report" in m.value for m in at.markdown)
