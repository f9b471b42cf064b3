"""Files named on the command line: outputs checked before the work, inputs hashed while streaming,
image files closed on every path."""

from __future__ import annotations

import gc
import hashlib
import json
import os
import stat
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import pytest
from PIL import Image

from analysis.cli import main
from analysis.cli.grid import _inputs_beside
from analysis.dream import DreamConfig
from analysis.errors import ImageError, LabError
from analysis.grids import GridRecipe
from analysis.images import load_image
from analysis.pngmeta import save_png, write_file
from analysis.recipes import ImageSource, Recipe

REPO = Path(__file__).resolve().parents[2]
FAST = ["--octaves", "1", "--iterations", "1", "--size", "32"]


# ---------------------------------------------------------------- a file a recipe names: size, then streaming hash


def _photo_recipe(name: str, sha256: str) -> Recipe:
    return Recipe("efficientnet_lite0", {"type": "layer", "layer": "block3"}, DreamConfig(),
                  ImageSource("file", name=name, sha256=sha256), 64)


def _peak_bytes(work) -> int:
    tracemalloc.start()
    try:
        work()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_wrong_file_a_recipe_names_is_never_read_whole(tmp_path):
    """A 32 MB file that is not the recipe's photo: refused, with no more than a few MB ever held."""
    big = tmp_path / "photo.png"
    big.write_bytes(b"\x89PNG" + bytes(32 * 2**20))
    recipe = _photo_recipe("photo.png", hashlib.sha256(b"another picture").hexdigest())
    grid = GridRecipe([[recipe]])

    def beside() -> None:
        assert _inputs_beside(grid, tmp_path) == {}

    def given() -> None:
        with pytest.raises(ImageError, match=r"not the one the recipe was made with \(photo.png, sha256 differs\)"):
            recipe.image.at(big).load(64)

    assert _peak_bytes(beside) < 4 * 2**20
    assert _peak_bytes(given) < 4 * 2**20


def test_the_right_file_is_found_and_a_file_over_the_limit_is_refused_unread(tmp_path, monkeypatch, cat_path):
    import analysis.images

    data = cat_path.read_bytes()
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / "01-cat.jpg").write_bytes(data)
    recipe = _photo_recipe("cat.jpg", hashlib.sha256(data).hexdigest())
    assert _inputs_beside(GridRecipe([[recipe]]), tmp_path) == {recipe.image.sha256: data}
    monkeypatch.setattr(analysis.images, "MAX_IMAGE_FILE_BYTES", len(data) - 1)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read"))
    with pytest.raises(ImageError, match="the limit for an image file is"):
        _inputs_beside(GridRecipe([[recipe]]), tmp_path)
    with pytest.raises(ImageError, match="the limit for an image file is"):
        recipe.image.at(tmp_path / "inputs" / "01-cat.jpg").load(64)


# ---------------------------------------------------------------- outputs checked before the work starts


def _no_work(monkeypatch) -> None:
    """Any model load fails the test: the destination must be refused before the work starts."""
    import analysis.zoo

    monkeypatch.setattr(analysis.zoo, "load_model", lambda *a, **k: pytest.fail("the work started"))


@pytest.mark.parametrize("command", [
    ["dream", "--noise", *FAST, "--out", "{folder}"],
    ["dream", "--noise", *FAST, "--out", "ok.png", "--recipe-out", "{folder}"],
    ["dream", "--noise", *FAST, "--out", "{file}/x.png"],
    ["zoom", "--noise", *FAST, "--frames", "2", "--out", "{file}/z.gif"],
    ["zoom", "--noise", *FAST, "--frames", "2", "--out", "z.gif", "--recipe-out", "{folder}"],
    ["zoom", "--noise", *FAST, "--frames", "2", "--out", "z.gif", "--frames-dir", "{file}"],
    ["grid", "{png}", "--out", "{folder}"],
    ["grid", "{png}", "--out", "g.png", "--bundle", "{file}/b.zip"],
    ["compare", "--image", "cat_chelsea", "--out", "{folder}"],
    ["stats", "cat_chelsea", "--out", "{folder}"],
    ["bias", "cat_chelsea", "--out", "{file}/deep/b.csv"],
    ["featviz", "--layer", "block3", "--out", "{file}"],
    ["schema", "recipe", "--out", "{folder}"],
    ["video", "--in", "{png}", "--out", "{file}/v.mp4"],
    ["video", "--in", "{png}", "--out", "v.mp4", "--recipe-out", "{folder}"],
    ["video", "--in", "{png}", "--out", "v.mp4", "--work", "{file}"],
    ["atlas", "--layer", "block3", "--out", "{file}"],
])
def test_an_output_that_cannot_be_written_is_one_line_before_the_work(command, tmp_path, monkeypatch, capsys):
    _no_work(monkeypatch)
    folder, file = tmp_path / "a folder", tmp_path / "a file"
    folder.mkdir()
    file.write_text("x")
    png = save_png(tmp_path / "r.png", Image.new("RGB", (8, 8)), {"model": "m"})
    monkeypatch.chdir(tmp_path)
    args = [part.format(folder=folder, file=file, png=png) for part in command]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --"), err
    assert "is a folder" in err or "is a file" in err, err


@pytest.mark.parametrize("command", [["stats", "cat_chelsea"], ["dream", "--noise", *FAST], ["schema", "recipe"]])
def test_an_output_onto_a_pipe_or_device_is_refused_not_replaced(command, tmp_path, monkeypatch, capsys):
    """Results are written beside --out and renamed onto it: onto /dev/full (as root) that replaced the device."""
    _no_work(monkeypatch)
    pipe = tmp_path / "a pipe"
    os.mkfifo(pipe)
    assert main([*command, "--out", str(pipe)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: --out") and "not a regular file" in err, err
    assert stat.S_ISFIFO(pipe.stat().st_mode)


def test_a_write_that_fails_leaves_no_half_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    import analysis.pngmeta

    out = tmp_path / "result.png"
    out.write_bytes(b"the previous result")

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(analysis.pngmeta.os, "replace", full_disk)
    with pytest.raises(LabError, match="Could not write .*result.png \\(No space left on device\\)"):
        write_file(out, b"new")
    assert out.read_bytes() == b"the previous result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["result.png"]  # no .part file left behind


def test_a_recipe_out_is_written_whole(tmp_path):
    recipe = tmp_path / "deep" / "r.json"
    assert main(["dream", "--noise", *FAST, "--layer", "block3", "--out", str(tmp_path / "d.png"),
                 "--recipe-out", str(recipe)]) == 0
    assert Recipe.from_json(recipe.read_bytes()).max_side == 32
    assert sorted(p.name for p in recipe.parent.iterdir()) == ["r.json"]


# ---------------------------------------------------------------- image files closed on every path


def _truncated(folder: Path) -> Path:
    whole = folder / "whole.png"
    Image.effect_noise((64, 64), 40).convert("RGB").save(whole)
    cut = folder / "truncated.png"
    cut.write_bytes(whole.read_bytes()[:400])
    return cut


def _over_limit(folder: Path) -> Path:
    path = folder / "huge.png"
    Image.new("1", (9000, 9000)).save(path)  # 81 megapixels: over the 64 MP limit, under Pillow's bomb check
    return path


def _bomb(folder: Path) -> Path:
    path = folder / "bomb.png"
    Image.new("1", (10000, 10000)).save(path)  # over Pillow's decompression-bomb threshold
    return path


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("make, words", [(_truncated, "not a readable image"), (_over_limit, "megapixels"),
                                         (_bomb, "too large to decode safely")])
def test_a_bad_image_file_is_closed_on_every_path(make, words, tmp_path):
    path = make(tmp_path)
    unraisable = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ImageError, match=words):
                load_image(path)
            gc.collect()
    finally:
        sys.unraisablehook = hook
    assert not unraisable, [str(u.exc_value) for u in unraisable]


@pytest.mark.parametrize("command", [["classify", "{truncated}"], ["stats", "{huge}", "--out", "s.csv"]])
def test_classify_and_stats_on_a_bad_image_print_one_line_even_with_warnings_as_errors(command, tmp_path):
    names = {"truncated": _truncated(tmp_path), "huge": _over_limit(tmp_path)}
    args = [part.format(**names) for part in command]
    done = subprocess.run([sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-m", "analysis", *args],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, check=False)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), done.stderr


def test_the_schema_written_by_the_cli_is_json(tmp_path, capsys):
    out = tmp_path / "schemas" / "zoom.json"
    assert main(["schema", "zoom", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["properties"]["kind"]["const"] == "animation"


def test_a_written_result_has_the_users_usual_permissions(tmp_path):
    """Results go through a private temporary file; the file that lands is readable as the umask says."""
    umask = os.umask(0o022)
    os.umask(umask)
    written = write_file(tmp_path / "result.json", "{}")
    assert written.stat().st_mode & 0o777 == 0o666 & ~umask
