"""Unit atlas: top-k examples and crops on a hand-built network, the measured receptive field,
concept counts, resuming an interrupted pass, and the MaCo parameterisation."""

from __future__ import annotations

import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models import resnet18

from analysis import atlas, featviz
from analysis.errors import Cancelled, ConfigError
from analysis.labels import class_groups
from analysis.studies.judging import Judge, default_judges
from analysis.zoo import (
    InputConvention,
    LayerInfo,
    LoadedModel,
    ModelSpec,
    Preprocess,
    WeightsSource,
    count_hooks,
    load_model,
)

SIDE = 32
BOX = 5  # the detector's box filter: its receptive field


def wrap(module: nn.Module, layers: list[tuple[str, str, tuple[int, ...]]],
         labels: list[str] | None = None) -> LoadedModel:
    module = module.eval().requires_grad_(False)
    spec = ModelSpec(name="hand-built", title="Hand-built", architecture="hand-built", training_data="hand-made",
                     labels=None, convention=InputConvention(), weights=WeightsSource(format="random"),
                     build=lambda: module, layer_names=lambda m: [(n, a) for n, a, _ in layers])
    infos = tuple(LayerInfo(n, a, s, i / max(1, len(layers) - 1)) for i, (n, a, s) in enumerate(layers))
    return LoadedModel(spec=spec, module=module, preprocess=Preprocess(spec.convention), layers=infos, labels=labels,
                       weights_sha256="hand-made", device=torch.device("cpu"))


def colour_detectors() -> LoadedModel:
    """Unit c fires on colour c (red, green, blue): a 1x1 convolution x_c - mean of the other two,
    a ReLU, then a 5x5 box mean per unit (stride 1, padding 2). On a black picture with a 5x5
    square of pure colour c at intensity v, unit c peaks at exactly v, at the square's centre."""
    colour = nn.Conv2d(3, 3, 1, bias=False)
    box = nn.Conv2d(3, 3, BOX, padding=BOX // 2, groups=3, bias=False)
    with torch.no_grad():
        colour.weight.copy_((torch.eye(3) * 1.5 - 0.5).view(3, 3, 1, 1))
        box.weight.fill_(1 / BOX**2)
    return wrap(nn.Sequential(colour, nn.ReLU(), box), [("2", "box", (3, SIDE, SIDE))])


def square_picture(path, channel: int, value: float, centre: tuple[int, int]) -> None:
    pixels = np.zeros((SIDE, SIDE, 3), np.uint8)
    y, x = centre
    pixels[y - 2:y + 3, x - 2:x + 3, channel] = round(value * 255)
    Image.fromarray(pixels).save(path)


# (file, colour, intensity, centre): red squares at three strengths, green ones, one blue
PICTURES = [
    ("a.png", 0, 0.6, (6, 6)), ("b.png", 1, 1.0, (20, 9)), ("c.png", 0, 1.0, (25, 17)),
    ("d.png", 2, 0.8, (16, 16)), ("e.png", 0, 0.8, (9, 26)), ("f.png", 1, 0.4, (12, 12)),
]


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for name, channel, value, centre in PICTURES:
        square_picture(folder / name, channel, value, centre)
    return folder


def test_top_examples_and_receptive_field_crops_find_the_known_squares(pictures, tmp_path):
    model = colour_detectors()
    views = atlas.folder_collection(pictures)
    report = atlas.run_pass(model, "box", views, tmp_path / "out", atlas.AtlasSettings(side=SIDE, batch=4))
    assert report.complete and not report.skipped
    found = atlas.load_atlas(tmp_path / "out")
    assert found.field == atlas.ReceptiveField(BOX, BOX, SIDE)

    red = found.top_examples(0, k=3)
    assert [found.views[e.view].name for e in red] == ["c.png", "e.png", "a.png"]  # strongest red first
    for example, (name, _, value, centre) in zip(red, sorted((p for p in PICTURES if p[1] == 0), key=lambda p: -p[2])):
        assert example.activation == pytest.approx(round(value * 255) / 255, abs=1e-5)
        assert (example.row, example.col) == centre
        top, left, size = found.example_box(example)
        assert (top, left, size) == (centre[0] - 2, centre[1] - 2, BOX)
        whole, crop = found.example_images(example)
        assert crop.shape == (3, BOX, BOX)
        # the crop is exactly the square: all of the view's red is inside it
        assert float(crop[0].sum()) == pytest.approx(float(whole[0].sum()), rel=1e-6) and crop[0].min() > 0.5
    assert [found.views[e.view].name for e in found.top_examples(1, k=2)] == ["b.png", "f.png"]
    assert found.views[found.top_examples(2, k=1)[0].view].name == "d.png"

    table = found.unit_table()
    assert table.loc[0, "peak"] == pytest.approx(1.0, abs=1e-5)
    assert found.views[int(table.loc[2, "best_view"])].name == "d.png"
    histogram = found.histogram(0, bins=4)
    assert histogram["views"].sum() == len(PICTURES)
    with pytest.raises(ConfigError, match="Unit 3 does not exist"):
        found.top_examples(3)


def conv_stack(kernels_strides: list[tuple[int, int]], channels: int = 8, seed: int = 0) -> nn.Sequential:
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = []
    before = 3
    for kernel, stride in kernels_strides:
        conv = nn.Conv2d(before, channels, kernel, stride=stride, padding=kernel // 2)
        with torch.no_grad():
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
            conv.bias.zero_()
        layers += [conv, nn.ReLU()]
        before = channels
    return nn.Sequential(*layers)


@pytest.mark.parametrize("stack", [
    [(3, 1), (3, 2), (3, 1), (3, 2)],  # 1 + 2*1 + 2*1 + 2*2 + 2*2 = 13
    [(7, 2), (3, 2), (5, 1)],  # 1 + 6*1 + 2*2 + 4*4 = 27
])
def test_the_receptive_field_of_a_known_conv_stack_is_the_textbook_one(stack):
    expected, jump = 1, 1
    for kernel, stride in stack:
        expected, jump = expected + (kernel - 1) * jump, jump * stride
    module = conv_stack(stack)
    last = str(2 * len(stack) - 1)
    model = wrap(module, [(last, "top", (8, 16, 16))])
    before = count_hooks(model.module)
    assert atlas.receptive_field(model, "top", side=64) == atlas.ReceptiveField(expected, expected, 64)
    assert count_hooks(model.module) == before
    # a field bigger than every input tried is reported as a lower bound
    wide = atlas.receptive_field(model, "top", side=8, largest=8)
    assert wide.clipped and wide.side <= 8


def test_an_interrupted_pass_resumes_to_the_same_result_without_redoing_batches(pictures, tmp_path, monkeypatch):
    model = colour_detectors()
    views = atlas.folder_collection(pictures)
    settings = atlas.AtlasSettings(side=SIDE, batch=2)
    atlas.run_pass(model, "box", views, tmp_path / "whole", settings)

    calls = []
    real = atlas.unit_stats
    monkeypatch.setattr(atlas, "unit_stats", lambda *a: calls.append(a[2].shape[0]) or real(*a))
    steps = []
    first = atlas.run_pass(model, "box", views, tmp_path / "part", settings, on_step=lambda d, t, p: steps.append(d),
                           should_cancel=lambda: len(steps) >= 2)
    assert first.cancelled and first.batches_done == 2 and calls == [2, 2]
    partial = atlas.load_atlas(tmp_path / "part")
    assert partial.views_done == 4 and np.isnan(partial.maximum[4:]).all()
    second = atlas.run_pass(model, "box", views, tmp_path / "part", settings)
    assert second.complete and calls == [2, 2, 2]  # only the missing batch ran
    whole, resumed = atlas.load_atlas(tmp_path / "whole"), atlas.load_atlas(tmp_path / "part")
    for name in ("maximum", "mean", "row", "col"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(resumed, name))
    assert sorted(p.name for p in (tmp_path / "part" / atlas.BATCHES).iterdir()) == ["b000000.npz", "b000001.npz",
                                                                                      "b000002.npz"]
    # the same folder for another pass is refused, not mixed
    with pytest.raises(ConfigError, match="holds another atlas"):
        atlas.run_pass(model, "box", views[:3], tmp_path / "part", settings)


KILLED_PASS = """
import os, signal, sys
from pathlib import Path
from analysis import atlas
from analysis.zoo import load_model

def die_after_two_batches(done, total, _preview):
    if done >= 4:  # two batches of two views are stored: SIGKILL, no cleanup of any kind
        os.kill(os.getpid(), signal.SIGKILL)

views = atlas.folder_collection(Path(sys.argv[1]))
atlas.run_pass(load_model("efficientnet_lite0", device="cpu"), "block2", views, Path(sys.argv[2]),
               atlas.AtlasSettings(side=48, batch=2), on_step=die_after_two_batches, threads=1)
"""


def test_a_pass_killed_mid_way_resumes_to_the_same_result(lite0, pictures, tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    folder = tmp_path / "killed"
    root = Path(__file__).resolve().parents[2]
    driver = subprocess.run([sys.executable, "-c", KILLED_PASS, str(pictures), str(folder)], cwd=root,
                            capture_output=True, timeout=300)
    assert driver.returncode == -signal.SIGKILL, driver.stderr.decode()[-2000:]
    kept = sorted(p.name for p in (folder / atlas.BATCHES).iterdir())
    assert kept == ["b000000.npz", "b000001.npz"]  # no temporary file left as a batch
    written = [(folder / atlas.BATCHES / name).stat().st_mtime_ns for name in kept]
    views, settings = atlas.folder_collection(pictures), atlas.AtlasSettings(side=48, batch=2)
    steps = []
    resumed = atlas.run_pass(lite0, "block2", views, folder, settings, on_step=lambda d, t, p: steps.append((d, t)),
                             threads=1)
    assert resumed.complete and steps == [(6, 6)]  # only the third batch ran
    assert [(folder / atlas.BATCHES / name).stat().st_mtime_ns for name in kept] == written  # nothing written twice
    atlas.run_pass(lite0, "block2", views, tmp_path / "whole", settings, threads=1)
    whole, after = atlas.load_atlas(tmp_path / "whole"), atlas.load_atlas(folder)
    for name in ("maximum", "mean", "row", "col"):
        np.testing.assert_array_equal(getattr(whole, name), getattr(after, name))
    assert whole.grid == after.grid and whole.manifest == after.manifest


def test_unreadable_files_are_skipped_and_named(pictures, tmp_path):
    (pictures / "broken.png").write_bytes(b"not a picture")
    views = atlas.folder_collection(pictures)
    report = atlas.run_pass(colour_detectors(), "box", views, tmp_path / "out", atlas.AtlasSettings(side=SIDE, batch=4))
    assert report.skipped == ["broken.png"] and report.complete
    found = atlas.load_atlas(tmp_path / "out")
    assert all(found.views[e.view].name != "broken.png" for e in found.top_examples(0, k=len(views)))
    assert len(atlas.stored_readings(found, ColourJudge(), k=2)) == 3  # a pass with a skipped file is finished


def test_bad_inputs_give_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no images"):
        atlas.folder_collection(tmp_path)
    with pytest.raises(ConfigError, match="not a folder"):
        atlas.folder_collection(tmp_path / "missing")
    with pytest.raises(ConfigError, match="holds no atlas"):
        atlas.load_atlas(tmp_path)
    with pytest.raises(ConfigError, match="View size"):
        atlas.AtlasSettings(side=8).validate()


def test_the_default_collection_is_a_few_hundred_views_of_the_bundled_photos():
    views = atlas.sample_collection()
    assert len(views) == 7 * 2 * (1 + 9 + 16)
    assert len(set(views)) == len(views)
    picture = atlas.load_view(views[1], 64)
    assert picture.shape == (3, 64, 64) and 0 <= picture.min() and picture.max() <= 1
    np.testing.assert_allclose(picture.numpy(), atlas.load_view(views[0], 64).flip(-1).numpy(), atol=1e-6)


class ColourJudge:
    """A stand-in judge with three classes in two groups: its verdict is the crop's brightest colour."""

    def __init__(self) -> None:
        self.name, self.dataset = "colour-judge", "colours"
        self.groups = {"warm": [0], "cool": [1, 2]}
        self.model = SimpleNamespace(labels=["red", "green", "blue"])

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean((2, 3)).softmax(1)


def test_concept_readings_vote_over_the_top_crops(pictures, tmp_path):
    model = colour_detectors()
    atlas.run_pass(model, "box", atlas.folder_collection(pictures), tmp_path / "out", atlas.AtlasSettings(side=SIDE))
    found = atlas.load_atlas(tmp_path / "out")
    readings = atlas.concept_readings(found, ColourJudge(), k=2, threshold=0.75)
    # red unit: two red crops -> warm, 2/2; green unit: two green crops -> cool; blue unit: one
    # blue crop then a black one (the judge calls black red, its first class): 1/2, under 0.75
    assert readings[["unit", "group", "share", "concept", "top_class"]].values.tolist() == [
        [0, "warm", 1.0, "warm", "red"], [1, "cool", 1.0, "cool", "green"],
        [2, "cool", 0.5, atlas.NO_CONCEPT, "blue"],
    ]
    with pytest.raises(Cancelled):
        atlas.concept_readings(found, ColourJudge(), k=2, should_cancel=lambda: True)
    stored = atlas.stored_readings(found, ColourJudge(), k=2, threshold=0.75)
    assert atlas.readings_path(found, "colour-judge", 2, 0.75).is_file()
    pd.testing.assert_frame_equal(stored, atlas.stored_readings(found, ColourJudge(), k=2, threshold=0.75))


def test_units_per_group_from_a_fixed_table():
    readings = pd.DataFrame({
        "model": ["A"] * 5 + ["B"] * 4,
        "layer": ["l1"] * 5 + ["l9"] * 4,
        "concept": ["dogs", "dogs", "food", atlas.NO_CONCEPT, "dogs", "food", "food", "buildings", atlas.NO_CONCEPT],
    })
    counts = atlas.units_per_group(readings, ["dogs", "food", "buildings"])
    table = counts.pivot(index="group", columns="model", values="units")
    assert table.loc[["dogs", "food", "buildings", atlas.NO_CONCEPT], "A"].tolist() == [3, 1, 0, 1]
    assert table.loc[["dogs", "food", "buildings", atlas.NO_CONCEPT], "B"].tolist() == [0, 2, 1, 1]
    assert counts.groupby("model")["share"].sum().tolist() == pytest.approx([1.0, 1.0])
    assert counts[counts.model == "A"]["group"].tolist() == ["dogs", "food", "buildings", atlas.NO_CONCEPT]
    with pytest.raises(ConfigError, match="not among the groups"):
        atlas.units_per_group(readings, ["dogs"])


# ---------------------------------------------------------------- MaCo


def test_maco_pictures_have_the_natural_magnitude_exactly():
    image = featviz.MacoImage(48, [1, 2], torch.device("cpu"))
    image.phase = image.phase.detach().double().requires_grad_(True)  # float64: the check is to rounding
    image.magnitude, image.colours = image.magnitude.double(), image.colours.double()
    spectrum = torch.fft.rfft2(image.raw()).abs()
    np.testing.assert_allclose(spectrum.detach().numpy(), image.magnitude.expand_as(spectrum).numpy(),
                               rtol=1e-9, atol=1e-9 * float(image.magnitude.max()))
    # the stored spectrum is a natural one: power falls with frequency (about 1 / f)
    magnitude = featviz.natural_magnitude(64)
    assert magnitude[:, 1, 1].min() > 4 * magnitude[:, 16, 16].max()
    picture = image()
    assert picture.shape == (2, 3, 48, 48) and 0 < picture.min() and picture.max() < 1


def test_maco_changes_only_the_phase_and_raises_the_objective(lite0, monkeypatch):
    made: list[tuple[featviz.MacoImage, torch.Tensor]] = []

    class Recorded(featviz.MacoImage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append((self, self.phase.detach().clone()))

    monkeypatch.setattr(featviz, "MacoImage", Recorded)
    config = featviz.FeatvizConfig(size=64, steps=12, seed=1, parameterisation="maco")
    before = count_hooks(lite0.module)
    result = featviz.render_channels(lite0, "block3", [0, 5], config)
    assert count_hooks(lite0.module) == before
    (image, start), = made
    assert (image.phase.detach() - start).abs().max() > 0.1  # the phase moved
    # the magnitude did not move
    np.testing.assert_array_equal(image.magnitude.numpy(), featviz.natural_magnitude(64).numpy())
    kept = torch.fft.rfft2(image.raw().detach().double()).abs()
    # the tolerance: float32 FFTs
    assert float(((kept - image.magnitude.double()).abs() / image.magnitude.double().max()).max()) < 1e-5
    for render in result.renders:
        assert np.mean(render.trace[-3:]) > render.trace[0] + 0.5, render.trace
        assert render.attribution.shape == (64, 64) and float(render.attribution.max()) == 1.0
    # a different picture from the FFT renderer's, under its own cache key
    fft = featviz.render_key(lite0, "block3", 0, featviz.FeatvizConfig(size=64, steps=12, seed=1))
    assert featviz.render_key(lite0, "block3", 0, config) != fft


def test_maco_renders_and_their_attribution_come_back_from_the_cache(lite0, tmp_path):
    cache = featviz.RenderCache(tmp_path / "cache")
    config = featviz.FeatvizConfig(size=32, steps=2, parameterisation="maco")
    fresh = featviz.render_channels(lite0, "block3", [2], config, cache=cache).renders[0]
    again = featviz.render_channels(lite0, "block3", [2], config, cache=cache).renders[0]
    assert again.cached and torch.equal(again.image, fresh.image)
    assert (again.attribution - fresh.attribution).abs().max() <= 0.5 / 255 + 1e-6
    assert len(cache.files()) == 1 and cache.clear() == 1 and not list((tmp_path / "cache").iterdir())
    with pytest.raises(ConfigError, match="parameterisation"):
        featviz.FeatvizConfig(parameterisation="pixels").validate()


def test_the_atlas_command_runs_two_models_at_the_same_depth_and_reports(lite0, pictures, tmp_path, capsys):
    from analysis.cli import main

    out = tmp_path / "atlas"
    argv = ["atlas", "--model", "efficientnet_lite0", "--model", "efficientnet_lite0-untrained", "--layer", "block3",
            "--images", str(pictures), "--size", "64", "--top-k", "3", "--device", "cpu", "--out", str(out)]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == ["efficientnet_lite0-untrained__block3__64px",
                                                      "efficientnet_lite0__block3__64px"]
    stored = sorted(out.glob("*/batches/*.npz")) + sorted(out.glob("*/concepts_*.csv"))
    written = [p.stat().st_mtime_ns for p in stored]
    assert main(argv) == 0  # again: resumed, nothing redone or rewritten
    assert [p.stat().st_mtime_ns for p in stored] == written
    capsys.readouterr()
    assert main(["atlas", "report", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Units per concept" in printed and "dogs" in printed
    assert not re.search(r"\d\.\d{5}", printed)  # shares and peaks read at 3 figures, not pandas' 6 decimals
    counts = pd.read_csv(out / "units_per_group.csv")
    assert set(counts["model"]) == {"efficientnet_lite0", "efficientnet_lite0-untrained"}
    assert counts.groupby("model")["units"].sum().tolist() == [40, 40]  # block3 has 40 units, each counted once
    assert main(["atlas", "report", str(tmp_path / "nowhere")]) == 2
    assert "holds no atlas" in capsys.readouterr().err
    assert main(["atlas", "--layer", "block3"]) == 2


def test_the_units_per_concept_figure_shows_each_model_side_by_side():
    from analysis import figures

    readings = pd.DataFrame({"model": ["A", "A", "A", "B", "B", "B"], "layer": ["l4"] * 3 + ["l7"] * 3,
                             "concept": ["dogs", "dogs", "food", "food", atlas.NO_CONCEPT, "food"]})
    fig = figures.units_per_concept(atlas.units_per_group(readings, ["dogs", "food"]))
    assert [t.name for t in fig.data] == ["A · l4", "B · l7"]
    assert list(fig.data[0].x) == ["dogs", "food", atlas.NO_CONCEPT]
    assert list(fig.data[0].y) == [2, 1, 0] and list(fig.data[1].y) == [0, 2, 1]
    histogram = pd.DataFrame({"left": [0.0, 1.0], "right": [1.0, 2.0], "views": [3, 5]})
    bars = figures.unit_histogram(histogram, "unit 0").data[0]
    assert list(bars.x) == [0.5, 1.5] and list(bars.y) == [3, 5] and list(bars.width) == [1.0, 1.0]


def test_a_places365_judge_reads_units_as_scene_groups_when_its_weights_are_present(pictures, tmp_path, monkeypatch):
    """A Places365 checkpoint in the weights folder (CSAIL's file layout; random weights here) judges with
    Places365's own groups (indoor, outdoor natural, outdoor man-made), so the Network Dissection
    comparison can be read in scenes as well as in ImageNet's groups."""
    weights = tmp_path / "weights"
    weights.mkdir()
    torch.manual_seed(0)
    state = {f"module.{k}": v for k, v in resnet18(num_classes=365).state_dict().items()}
    torch.save({"epoch": 90, "arch": "resnet18", "state_dict": state}, weights / "resnet18_places365.pth.tar")
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(weights))
    assert default_judges() == ["efficientnet_lite0", "resnet18_places365"]

    judge = Judge.of(load_model("resnet18_places365", device="cpu"))
    assert judge.dataset == "Places365" and set(judge.groups) == set(class_groups("Places365"))
    atlas.run_pass(colour_detectors(), "box", atlas.folder_collection(pictures), tmp_path / "out",
                   atlas.AtlasSettings(side=SIDE))
    found = atlas.load_atlas(tmp_path / "out")
    readings = atlas.concept_readings(found, judge, k=2, threshold=0.5)
    group_of = {i: name for name, indices in judge.groups.items() for i in indices}
    labels = list(judge.model.labels)
    assert len(readings) == found.channels
    for row in readings.itertuples():
        assert row.group in judge.groups and row.crops == 2 and row.top_class in labels
        assert row.share >= 0.5 and row.concept == row.group  # two crops: the commonest group holds at least one
        assert group_of[labels.index(row.top_class)] == row.group or row.share == 0.5
