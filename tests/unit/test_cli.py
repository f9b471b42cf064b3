"""python -m analysis as a user runs it: real processes, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analysis.cli import main
from analysis.images import load_image
from analysis.pngmeta import read_png_metadata

REPO = Path(__file__).resolve().parents[2]
FAST = ["--octaves", "1", "--iterations", "2", "--size", "64"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "analysis", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def test_help_lists_the_commands():
    out = run_cli("--help")
    assert out.returncode == 0
    for command in ("models", "layers", "classify", "dream"):
        assert command in out.stdout


def test_models_json_says_which_weights_are_present(capsys):
    assert main(["models", "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["efficientnet_lite0"]["weights_present"] is True
    assert rows["efficientnet_lite0"]["training_data"] == "ImageNet"
    assert rows["resnet50_places365"]["training_data"] == "Places365"
    assert {"googlenet", "vgg16", "resnet50", "alexnet", "googlenet_places205", "inceptionv1_lucent"} <= set(rows)


def test_layers_lists_shapes_and_depth(capsys):
    assert main(["layers", "googlenet_places365", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)
    assert any(layer["alias"] == "inception_4c/output" and layer["shape"] == [512, 14, 14] for layer in layers)


def test_classify_the_cat(capsys):
    assert main(["classify", "cat_chelsea", "--top", "3", "--json"]) == 0
    top = json.loads(capsys.readouterr().out)[0]["top"]
    assert 281 <= top[0]["index"] <= 285


def test_dream_writes_png_with_metadata_and_recipe_replays_identically(tmp_path):
    out, recipe = tmp_path / "dream.png", tmp_path / "recipe.json"
    done = run_cli("dream", "--layer", "block5", "--image", "cat_chelsea", "--out", str(out),
                   "--recipe-out", str(recipe), "--seed", "7", *FAST)
    assert done.returncode == 0, done.stderr
    meta = read_png_metadata(out)
    assert meta["model"] == "efficientnet_lite0" and meta["seed"] == 7 and meta["layers"] == ["block5"]
    assert json.loads(recipe.read_text())["image"]["name"] == "cat_chelsea.jpg"
    replay = tmp_path / "replay.png"
    assert main(["dream", "--recipe", str(recipe), "--out", str(replay)]) == 0
    assert np.array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(replay)))


def test_dream_from_noise_with_a_class_objective(tmp_path):
    out = tmp_path / "noise.png"
    assert main(["dream", "--noise", "--class", "207", "--out", str(out), *FAST]) == 0
    assert load_image(out).shape == (3, 64, 64)


def test_dream_a_user_file_and_replay_needs_the_same_file(tmp_path, cat_path):
    picture = tmp_path / "mine.png"
    Image.open(cat_path).resize((80, 60)).save(picture)
    out, recipe = tmp_path / "a.png", tmp_path / "r.json"
    assert main(["dream", "--layer", "block3", "--image", str(picture), "--out", str(out),
                 "--recipe-out", str(recipe), *FAST]) == 0
    other = tmp_path / "other.png"
    Image.new("RGB", (80, 60), "red").save(other)
    assert main(["dream", "--recipe", str(recipe), "--image", str(other), "--out", str(tmp_path / "b.png")]) == 2


def test_a_dream_png_replays_from_the_recipe_it_carries(tmp_path, capsys):
    """The PNG is enough: its metadata holds the recipe; a PNG without one is a one-line error."""
    first, again = tmp_path / "first.png", tmp_path / "again.png"
    assert main(["dream", "--layer", "block4", "--image", "cat_chelsea", "--out", str(first), *FAST]) == 0
    capsys.readouterr()
    assert main(["dream", "--recipe", str(first), "--out", str(again)]) == 0
    assert np.array_equal(np.asarray(Image.open(first)), np.asarray(Image.open(again)))
    assert "replay: identical pixels to the original" in capsys.readouterr().out
    plain = tmp_path / "plain.png"
    Image.new("RGB", (32, 32), "red").save(plain)
    capsys.readouterr()
    assert main(["dream", "--recipe", str(plain), "--out", str(tmp_path / "x.png")]) == 2
    assert "carries no recipe" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["dream", "--layer", "block5", "--image", "no/such.png", "--out", "x.png"], "No image file"),
    (["dream", "--layer", "nolayer", "--noise", "--out", "x.png"], "no dream-able layer"),
    (["dream", "--layer", "block5", "--noise", "--octaves", "0", "--out", "x.png"], "Invalid setting"),
    (["dream", "--model", "resnet50_places365", "--layer", "layer3.0", "--noise", "--out", "x.png"], "not found"),
    (["dream", "--layer", "block5", "--channel", "9999", "--noise", "--out", "x.png"], "does not exist"),
    (["classify", "--model", "nonet", "cat_chelsea"], "Unknown model"),
])
def test_bad_input_is_one_line_on_stderr_and_nonzero(args, message, tmp_path):
    done = subprocess.run([sys.executable, "-m", "analysis", *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=600, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], done.stderr
    assert "Traceback" not in done.stderr


def test_corrupt_image_and_malformed_recipe(tmp_path, capsys):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    assert main(["dream", "--layer", "block5", "--image", str(bad), "--out", str(tmp_path / "o.png")]) == 2
    recipe = tmp_path / "r.json"
    recipe.write_text("{not json")
    assert main(["dream", "--recipe", str(recipe), "--out", str(tmp_path / "o.png")]) == 2
    err = capsys.readouterr().err
    assert "not a readable image" in err and "not valid JSON" in err


def test_impossible_numbers_and_bad_checkpoints_are_one_error_line(tmp_path, capsys):
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    out = str(tmp_path / "o.png")
    cases = [
        (["dream", "--layer", "block5", "--noise", "--size", "0", "--out", out], "Image size 0 px"),
        (["classify", "cat_chelsea", "--top", "-2"], "at least one class"),
        (["classify", "cat_chelsea", "--weights", str(text)],
         "notes.pth is not a PyTorch checkpoint: it is a text file"),
        (["classify", "cat_chelsea", "--weights", str(tmp_path / "gone.pth")], "No checkpoint file at"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("error:") and message in lines[-1], (args, lines)


def test_dream_without_a_layer_uses_the_default_depth(tmp_path):
    out = tmp_path / "default.png"
    assert main(["dream", "--image", "cat_chelsea", "--out", str(out), *FAST]) == 0
    assert read_png_metadata(out)["layers"] == ["block10"]  # depth 0.59, the nearest to 0.6


def test_a_picture_given_as_recipe_and_a_zero_cell_are_clear(tmp_path, cat_path, capsys):
    assert main(["dream", "--recipe", str(cat_path), "--out", str(tmp_path / "o.png")]) == 2
    out = tmp_path / "d.png"
    assert main(["dream", "--noise", "--out", str(out), *FAST]) == 0
    assert main(["grid", str(out), "--cell", "0", "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert "not a text file" in err and "Cell size 0 px is out of range" in err


def test_weights_for_an_untrained_twin_is_refused_not_ignored(tmp_path):
    checkpoint = tmp_path / "some.pth"
    checkpoint.write_bytes(b"any file: the twin is refused before it is read")
    done = subprocess.run([sys.executable, "-m", "analysis", "dream", "--model", "efficientnet_lite0-untrained",
                           "--weights", str(checkpoint), "--noise", "--out", "x.png", *FAST], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and not (tmp_path / "x.png").exists()
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("error: efficientnet_lite0-untrained is an untrained twin") and "no weights file" in line


def test_models_says_where_to_get_each_missing_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INCEPTIONISM_WEIGHTS_DIR", str(tmp_path))  # an empty weights folder: all files missing
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "Missing weights" in out
    assert "googlenet-1378be20.pth" in out and "https://download.pytorch.org/models/googlenet-1378be20.pth" in out
