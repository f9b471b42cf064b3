"""Dataset bias: a real study on the embedded model (run by the study engine, in-process), its tidy
table, reading, figures and command."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from analysis import bias, figures
from analysis.cli import main
from analysis.dream import preset
from analysis.errors import ConfigError
from analysis.pngmeta import read_png_metadata
from analysis.studies import executors, judging
from analysis.studies import stats as study_stats
from analysis.studies.overview import load_study
from analysis.studies.plan import Plan
from analysis.zoo import LoadedModel, load_model

DOGS = list(range(151, 269))
MODELS = ("efficientnet_lite0", "efficientnet_lite0-untrained")


@pytest.fixture(scope="module")
def twin() -> LoadedModel:
    return load_model("efficientnet_lite0-untrained", device="cpu")


def run_plan(folder: Path, **fields: object) -> tuple[bias.Study, executors.RunSummary]:
    """A bias plan run in this process into folder, read back as a Study (every dream loaded)."""
    summary = executors.run(Plan(**fields).validate(), folder)
    return load_study(folder), summary


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> bias.Study:
    """The cat at 192 px, Google's preset, dreamed at depth 0.6 and 0.2 by Lite0 and its twin."""
    folder = tmp_path_factory.mktemp("bias") / "results"
    return run_plan(folder, models=MODELS, depths=(0.6, 0.2), images=("cat_chelsea",), config=preset("google"),
                    preset="google", size=192)[0]


def test_at_a_high_layer_the_imagenet_model_dreams_of_dogs(study: bias.Study) -> None:
    s = bias.summary(study.table, "dogs").set_index(["model", "depth"])
    trained, control = s.loc[("efficientnet_lite0", 0.6)], s.loc[("efficientnet_lite0-untrained", 0.6)]
    assert trained["layer"] == "block10"
    assert trained["share_dream"] > 3 * trained["share_original"]  # x11 measured (x1.1 for the twin)
    assert trained["share_dream"] > 3 * control["share_dream"]


def test_the_table_is_tidy_and_every_class_counts_once(study: bias.Study) -> None:
    table = study.table
    assert list(table.columns) == bias.COLUMNS + study_stats.TIDY_EXTRA
    assert len(table) == 2 * 2 * 1 * 10  # models x depths x images x ImageNet groups
    assert set(table.loc[table["group"] == "dogs", "group_classes"]) == {118}
    assert table.groupby(["model", "depth", "image"])["group_classes"].sum().eq(1000).all()
    for column in ("share_original", "share_dream"):
        assert table.groupby(["model", "depth", "image"])[column].sum().sub(1).abs().lt(1e-4).all()
    assert (table["ratio"] - table["share_dream"] / table["share_original"]).abs().max() < 1e-9
    assert set(table["control"]) == {False, True}
    assert sorted(study.dreams) == sorted((m, d, "cat_chelsea") for m in table["model"].unique() for d in (0.2, 0.6))
    assert study.done == study.planned == 4 and not study.cancelled


def test_the_judges_dog_group_is_exactly_the_118_breeds(lite0: LoadedModel) -> None:
    judge = judging.Judge.of(lite0)
    assert judge.groups["dogs"] == DOGS
    assert judge.dataset == "ImageNet"


def test_untrained_and_ungrouped_models_cannot_judge(twin: LoadedModel) -> None:
    with pytest.raises(ConfigError, match="random weights"):
        judging.Judge.of(twin)
    names = judging.judge_names(present_only=False)
    assert {"efficientnet_lite0", "resnet50", "resnet18_places365", "googlenet_places365"} <= set(names)
    assert "googlenet_places205" not in names and "inceptionv1_lucent" not in names


def test_a_scene_judge_joins_when_its_weights_are_present(tmp_path) -> None:
    assert judging.default_judges(tmp_path) == ["efficientnet_lite0"]
    assert judging.scene_judge_name(tmp_path) is None
    (tmp_path / "resnet18_places365.pth.tar").write_bytes(b"")
    assert judging.default_judges(tmp_path) == ["efficientnet_lite0", "resnet18_places365"]


def test_every_model_gets_its_twin_once() -> None:
    assert judging.with_controls(["a", "b-untrained", "a"]) == ["a", "a-untrained", "b-untrained"]
    assert judging.is_control("efficientnet_lite0-untrained") and not judging.is_control("efficientnet_lite0")


def test_reading_states_the_effect_and_its_control(study: bias.Study) -> None:
    lines = bias.reading(study.table, "dogs")
    best = bias.summary(study.table).query("not control").sort_values("ratio").iloc[-1]
    assert lines[0].startswith(f"At depth {best['depth']:g} ({best['layer']}), efficientnet_lite0 (ImageNet)'s "
                               "dreams are judged dogs ")
    assert "x as often as the originals" in lines[0] and "its untrained twin's" in lines[0]
    assert any("by depth: 0.2 → " in line for line in lines)
    assert any("From 1 image only" in line for line in lines)
    assert any("The judge, efficientnet_lite0, is also a dreamer" in line for line in lines)
    with pytest.raises(ConfigError, match="no group 'pagodas'"):
        bias.reading(study.table, "pagodas")


def test_depths_sharing_a_layer_dream_the_same_pixels(tmp_path: Path) -> None:
    # the engine makes one item per depth (its id names the depth), so both are dreamed: the same layer,
    # seed and settings give the same pixels
    study, _ = run_plan(tmp_path / "r", models=MODELS[:1], depths=(0.58, 0.6), images=("coffee",),
                        config=preset("quick"), preset="quick", size=64)
    assert set(study.table["layer"]) == {"block10"}
    assert torch.equal(study.dreams[("efficientnet_lite0", 0.58, "coffee")],
                       study.dreams[("efficientnet_lite0", 0.6, "coffee")])


def test_cancel_keeps_whole_dreams_only(tmp_path: Path) -> None:
    config = preset("quick", octaves=1, iterations=2)
    steps: list[int] = []
    plan = Plan(models=MODELS, depths=(0.2, 0.6), noise_seeds=1, config=config, preset="quick", size=64).validate()
    summary = executors.run(plan, tmp_path / "r", batch_size=2,  # a batch: Lite0 at both depths
                            on_step=lambda done, total, _p: steps.append(done),
                            should_cancel=lambda: steps[-1] > 0)  # after Lite0's batch, before the twin's
    result = load_study(tmp_path / "r")
    assert summary.cancelled and result.cancelled and result.done == 2 and result.planned == 4
    assert set(result.table["model"]) == {"efficientnet_lite0"}
    assert steps == [0, 2]


def test_bad_requests_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="Depth 1.5 is out of range"):
        judging.check_depths([0.2, 1.5])
    with pytest.raises(ConfigError, match="at least one depth"):
        judging.check_depths([])


def test_emergent_classes_and_group_shares(study: bias.Study) -> None:
    counts = bias.emergent_counts(study.table)
    assert list(counts.columns) == ["model", "control", "class_name", "dreams"]
    assert set(counts["model"]) <= {"efficientnet_lite0", "efficientnet_lite0-untrained"}
    assert (counts["dreams"] >= 1).all()
    shares = bias.group_shares(study.table, 0.6)
    assert len(shares) == 2 * 10
    assert shares.groupby("model")["share_dream"].sum().sub(1).abs().lt(1e-4).all()


def test_figures_show_the_baseline_and_the_control(study: bias.Study) -> None:
    fig = figures.bias_depth(bias.summary(study.table, "dogs"))
    names = [trace.name for trace in fig.data]
    assert names == ["originals (baseline)", "efficientnet_lite0 (ImageNet)", "efficientnet_lite0-untrained · control"]
    assert list(fig.data[1].x) == [0.2, 0.6] and fig.data[2].line.dash == "dash"
    original = study.table.loc[study.table["group"] == "dogs", "share_original"].iloc[0]
    assert fig.data[0].y[0] == pytest.approx(original * 100)
    groups = figures.bias_groups(bias.group_shares(study.table, 0.6), 0.6)
    assert [t.name for t in groups.data][0] == "originals (baseline)" and len(groups.data[0].y) == 10
    emergent = figures.bias_emergent(bias.emergent_counts(study.table))
    assert sum(len(t.x) for t in emergent.data) == len(bias.emergent_counts(study.table))


def test_gallery_labels_each_dream_with_the_judges_verdict(study: bias.Study) -> None:
    grid = bias.gallery(study, "dogs")
    assert grid.shape == (2, 3)  # a row per model; original, depth 0.2, depth 0.6
    assert grid.col_labels == ["original", "depth 0.2", "depth 0.6"]
    assert grid.cells[1][0] is None  # the original is shown once per image
    assert read_png_metadata(grid.png())["models"] == ["efficientnet_lite0", "efficientnet_lite0-untrained"]


def test_bias_command_writes_the_csv_and_the_reading(tmp_path, capsys) -> None:
    out = tmp_path / "study.csv"
    code = main(["bias", "coffee", "--noise-seeds", "1", "--depths", "0.6", "--size", "64", "--preset", "quick",
                 "--out", str(out), "--json", "--device", "cpu"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["models"] == ["efficientnet_lite0", "efficientnet_lite0-untrained"]
    assert report["images"] == ["coffee", "noise seed 0"]
    (part,) = report["judges"]
    assert part["group"] == "dogs" and part["reading"][0].startswith("At depth 0.6 (block10)")
    table = pd.read_csv(out)
    assert len(table) == 2 * 1 * 2 * 10 and set(table["image_kind"]) == {"sample", "noise"}


def test_bias_command_errors_are_one_line(tmp_path, capsys) -> None:
    assert main(["bias", "--out", str(tmp_path / "s.csv")]) == 2
    assert capsys.readouterr().err.strip().startswith("error: Give at least one IMAGE")
    assert main(["bias", "coffee", "--depths", "0.2,x", "--out", str(tmp_path / "s.csv")]) == 2
    assert "not a list of depths" in capsys.readouterr().err
    assert main(["bias", "coffee", "--judge", "efficientnet_lite0-untrained", "--out", str(tmp_path / "s.csv")]) == 2
    assert "random weights" in capsys.readouterr().err


def test_charts_export_as_one_offline_page(study: bias.Study) -> None:
    lines = bias.reading(study.table)
    page = figures.figures_html("Dataset bias <dogs>", [figures.bias_depth(bias.summary(study.table)),
                                                figures.bias_emergent(bias.emergent_counts(study.table))], lines)
    assert page.count("plotly.js v") == 1  # the library inlined once, so it opens offline
    assert page.count('class="plotly-graph-div"') == 2
    assert "Dataset bias &lt;dogs&gt;" in page and "its untrained twin&#x27;s" in page
