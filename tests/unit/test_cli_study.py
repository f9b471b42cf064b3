"""The `stats`, `compare` (and `atlas --ray`) commands as a user runs them: files written, JSON, one-line errors."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from PIL import Image

from analysis.cli import EXIT_USER_ERROR, main
from analysis.labels import sample_images
from analysis.pngmeta import read_png_metadata
from analysis.stats import COLUMNS

FAST = ["--octaves", "1", "--iterations", "2", "--size", "64"]


def test_stats_of_two_models_over_a_sample_and_a_folder(tmp_path, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    for sample in sample_images()[:2]:
        shutil.copy(sample.path, folder / sample.path.name)
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "stats.csv"
    code = main(["stats", "--model", "efficientnet_lite0", "--model", "efficientnet_lite0-untrained",
                 "cat_chelsea", str(folder), "--size", "64", "--out", str(out), "--top", "2", "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["images"]) == 3 and report["models"] == ["efficientnet_lite0", "efficientnet_lite0-untrained"]
    frame = pd.read_csv(out)
    assert list(frame.columns) == list(COLUMNS)
    assert set(frame["training_data"]) == {"ImageNet", "untrained"}
    layers = {(row["model"], row["layer"]) for row in report["layers"]}
    assert ("efficientnet_lite0", "block9") in layers and ("efficientnet_lite0-untrained", "head") in layers
    top = [row for row in report["top_channels"] if row["model"] == "efficientnet_lite0" and row["layer"] == "head"]
    assert [row["rank"] for row in top] == [1, 2] and top[0]["mean"] >= top[1]["mean"]


def test_stats_prints_a_table_per_model(tmp_path, capsys):
    assert main(["stats", "cat_chelsea", "--size", "64", "--out", str(tmp_path / "s.csv")]) == 0
    text = capsys.readouterr().out
    assert "efficientnet_lite0 · 1 image(s) at 64 px" in text and "block15" in text and "wrote" in text


@pytest.mark.parametrize("args, message", [
    (["stats", "no_such_photo", "--out", "x.csv"], "No image file at no_such_photo"),
    (["stats", "--model", "nope", "cat_chelsea", "--out", "x.csv"], "Unknown model 'nope'"),
    (["stats", "--model", "resnet50_places365", "cat_chelsea", "--out", "x.csv"], "resnet50_places365.pth.tar"),
    (["compare", "--model", "efficientnet_lite0", "--image", "cat_chelsea", "--out", "g.png"], "exactly two models"),
    (["compare", "--image", "cat_chelsea", "--depths", "0.2,1.4", "--out", "g.png"], "Depth 1.4 is out of range"),
    (["compare", "--image", "cat_chelsea", "--layers-a", "block1,block2", "--layers-b", "block3", "--out", "g.png"],
     "as many layers for B"),
    (["atlas", "--layer", "block3", "--ray", "127.0.0.1:9", "--out", "a"], "No Ray cluster answers at 127.0.0.1:9"),
    (["atlas", "--layer", "block3", "--ray", "nowhere", "--out", "a"], "is not a Ray address"),
])
def test_user_errors_are_one_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert main(args) == EXIT_USER_ERROR
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_empty_folder_is_a_clear_error(tmp_path, capsys):
    assert main(["stats", str(tmp_path), "--out", str(tmp_path / "s.csv")]) == EXIT_USER_ERROR
    assert "No PNG, JPEG or WebP images in the folder" in capsys.readouterr().err


def test_compare_writes_a_labelled_grid_with_both_models_in_its_metadata(tmp_path, capsys):
    out = tmp_path / "grid.png"
    code = main(["compare", "--model", "efficientnet_lite0", "--model", "efficientnet_lite0-untrained",
                 "--image", "cat_chelsea", "--depths", "0.3,0.7", "--seed", "5", "--out", str(out), "--json", *FAST])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    meta = read_png_metadata(out)
    assert meta == json.loads(json.dumps(printed))
    assert meta["models"] == ["efficientnet_lite0", "efficientnet_lite0-untrained"]
    assert meta["seed"] == 5 and meta["config"]["seed"] == 5
    assert [c["depth"] for c in meta["columns"]] == [0.3, 0.7]
    assert len(meta["top_classes"]["efficientnet_lite0"]) == 2
    with Image.open(out) as grid:
        assert grid.width > 3 * 64 and grid.height > 2 * 64  # original + 2 columns, 2 rows
