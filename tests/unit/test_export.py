"""Grids, PNG metadata, ZIP bundles and grid recipes: what a user shares must say how it was made and replay."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis.bundles import bundle_zip, load_grid_recipe, replay_grid
from analysis.cli import main
from analysis.drawing import contact_sheet, grid_image, square_thumbnail
from analysis.dream import DreamConfig
from analysis.errors import ConfigError, ImageError
from analysis.grids import ONE_ROW, Grid, GridItem, GridRecipe, arrange
from analysis.images import tensor_to_pil
from analysis.objectives import LayerL2
from analysis.pngmeta import png_bytes, read_png_metadata, save_png
from analysis.provenance import RunRecord
from analysis.recipes import ImageSource, Recipe, run_recipe
from analysis.zoo import load_model

TINY = DreamConfig(octaves=1, iterations=2, jitter=4, seed=7)
COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (64, 64)) -> Image.Image:
    return Image.new("RGB", size, colour)


def box_of(canvas: Image.Image, colour: tuple[int, int, int]) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the pixels of exactly this colour."""
    mask = np.all(np.asarray(canvas) == colour, axis=-1)
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def ink_rows(canvas: Image.Image, left: int, top: int, right: int, bottom: int) -> np.ndarray:
    """Rows of a region that hold dark (text) pixels."""
    region = np.asarray(canvas.convert("L"))[top:bottom, left:right]
    return np.nonzero((region < 128).any(axis=1))[0]


# ---------------------------------------------------------------- grid geometry and labels


def test_grid_cells_are_equal_boxes_in_rows_and_columns():
    cells = [[solid(c) for c in COLOURS[:3]], [solid(c) for c in COLOURS[3:]]]
    canvas = grid_image(cells, ["row A", "row B"], ["one", "two", "three"], "Title", "footnote")
    boxes = [[box_of(canvas, c) for c in COLOURS[:3]], [box_of(canvas, c) for c in COLOURS[3:]]]
    assert {(b[2] - b[0], b[3] - b[1]) for row in boxes for b in row} == {(64, 64)}
    for row in boxes:  # same top within a row, left to right
        assert len({b[1] for b in row}) == 1 and [b[0] for b in row] == sorted(b[0] for b in row)
    for column in zip(*boxes):  # same left within a column, top to bottom
        assert len({b[0] for b in column}) == 1 and column[0][1] < column[1][1]


def test_grid_fits_odd_sizes_into_equal_centred_boxes():
    cells = [[solid(COLOURS[0], (64, 64)), solid(COLOURS[1], (32, 64))]]  # the second is half as wide
    canvas = grid_image(cells)
    wide, narrow = box_of(canvas, COLOURS[0]), box_of(canvas, COLOURS[1])
    assert narrow[3] - narrow[1] == 64 and narrow[2] - narrow[0] == 32
    assert narrow[1] == wide[1]
    assert narrow[0] - wide[2] > 16  # centred in its 64 px box, not pushed against its neighbour


def test_grid_draws_title_column_and_row_labels_outside_the_cells():
    cells = [[solid(COLOURS[0]), solid(COLOURS[1])]]
    canvas = grid_image(cells, ["a row"], ["col 1", "col 2"], "A title", "settings here")
    left, top, _, bottom = box_of(canvas, COLOURS[0])
    assert len(ink_rows(canvas, 0, 0, canvas.width, top)) > 0  # title and column labels above
    assert len(ink_rows(canvas, 0, top, left, bottom)) > 0  # row label on the left
    assert len(ink_rows(canvas, 0, bottom, canvas.width, canvas.height)) > 0  # footnote below
    for colour in COLOURS[:2]:  # no text is drawn over a picture
        x0, y0, x1, y1 = box_of(canvas, colour)
        assert np.all(np.asarray(canvas)[y0:y1, x0:x1] == colour)


def test_grid_text_grows_with_the_cells_and_long_labels_wrap():
    small = grid_image([[solid(COLOURS[0], (64, 64))]], col_labels=["label"], title="Title")
    large = grid_image([[solid(COLOURS[0], (512, 512))]], col_labels=["label"], title="Title")
    small_text = ink_rows(small, 0, 0, small.width, box_of(small, COLOURS[0])[1])
    large_text = ink_rows(large, 0, 0, large.width, box_of(large, COLOURS[0])[1])
    assert large_text.max() - large_text.min() > 2 * (small_text.max() - small_text.min())
    long_name = "efficientnet_lite0-untrained"
    canvas = grid_image([[solid(COLOURS[0])]], row_labels=[long_name])
    left, top, _, bottom = box_of(canvas, COLOURS[0])
    rows = ink_rows(canvas, 0, top, left, bottom)
    assert rows.max() - rows.min() > 20  # broken onto two lines of 12 px text, not cut off


def test_contact_sheet_lays_pictures_in_rows_each_captioned_under_it():
    pictures = [solid(colour, (32, 32)) for colour in COLOURS[:5]]
    sheet = contact_sheet(pictures, [f"#{i}" for i in range(5)], columns=3, title="Sheet")
    boxes = [box_of(sheet, colour) for colour in COLOURS[:5]]
    assert all(right - left == 128 and bottom - top == 128 for left, top, right, bottom in boxes)  # enlarged
    assert boxes[0][1] == boxes[2][1] < boxes[3][1] == boxes[4][1]  # three, then two
    left, _, right, bottom = boxes[0]
    assert len(ink_rows(sheet, left, bottom, right, boxes[3][1])) > 0  # the caption, between the rows
    with pytest.raises(ConfigError, match="5 pictures but 4 captions"):
        contact_sheet(pictures, ["a"] * 4)
    with pytest.raises(ImageError):
        contact_sheet([], [])


def test_square_thumbnail_crops_the_centre():
    picture = Image.new("RGB", (300, 100), COLOURS[0])
    picture.paste(COLOURS[1], (100, 0, 200, 100))  # the middle third: what a centre crop keeps
    thumb = square_thumbnail(picture, 50)
    assert thumb.size == (50, 50) and np.all(np.asarray(thumb)[5:-5, 5:-5] == COLOURS[1])


def meta(model: str, layer: str, seed: int = 0, **extra: object) -> dict:
    return {"model": model, "layers": [layer], "objective_text": f"L2 of {layer}", "seed": seed,
            "config": {**TINY.to_dict(), "seed": seed}, "training_data": "ImageNet", "weights_sha256": "ab" * 32,
            **extra}


def record(model: str, layer: str, seed: int = 0, **extra: object) -> RunRecord:
    """meta() as the run record a result carries (read back as from a result PNG's JSON)."""
    return RunRecord.from_dict(meta(model, layer, seed, **extra))


def test_arrange_reads_labels_from_metadata_models_by_layers():
    items = [GridItem(solid(COLOURS[i]), record(m, layer), title=f"{m}/{layer}")
             for i, (m, layer) in enumerate([("net-a", "low"), ("net-a", "high"), ("net-b", "low"), ("net-b", "high")])]
    grid = arrange(items)
    assert grid.shape == (2, 2)
    assert grid.row_labels == ["net-a", "net-b"] and grid.col_labels == ["low", "high"]
    assert grid.cells[1][0].title == "net-b/low"
    assert grid.title.startswith("Models x layers")
    assert "2 steps per octave" in grid.footnote and "seed 0" in grid.footnote
    transposed = arrange(items, rows_by="layer", cols_by="model")
    assert transposed.row_labels == ["low", "high"] and transposed.cells[0][1].title == "net-b/low"
    one_row = arrange(items, rows_by=ONE_ROW)
    assert one_row.shape == (1, 4) and one_row.col_labels[0] == "net-a · low"


def test_arrange_never_puts_two_results_in_one_cell():
    same = [GridItem(solid(COLOURS[i]), record("net", "low"), title=f"take {i}") for i in range(3)]
    grid = arrange(same)
    assert len(grid.items()) == 3
    settings = [GridItem(solid(COLOURS[i]), record("net", "low", seed=i)) for i in range(2)]
    assert arrange(settings).col_labels == ["seed 0", "seed 1"]
    turns = [GridItem(solid(COLOURS[i]), record("net", "low", animation={"frames": 6, "zoom": 0.05, "rotation": r}))
             for i, r in enumerate([0.0, 3.0])]
    assert arrange(turns).col_labels == ["turn 0°", "turn 3°"]
    still_and_frame = [GridItem(solid(COLOURS[0]), record("net", "low")),
                       GridItem(solid(COLOURS[1]),
                                record("net", "low", animation={"frames": 6, "zoom": 0.05, "rotation": 0}))]
    assert not any("None" in label for label in arrange(still_and_frame).col_labels)  # a still has no motion to name
    with pytest.raises(ConfigError):
        arrange([])
    with pytest.raises(ConfigError):
        arrange(same, rows_by="colour")


# ---------------------------------------------------------------- PNG metadata


def test_png_metadata_round_trip(tmp_path):
    picture = solid(COLOURS[2], (48, 32))
    metadata = meta("net", "low", seed=3, versions={"inceptionism": "0.1.0", "torch": "x"}, title="My grid")
    path = save_png(tmp_path / "out" / "x.png", picture, metadata)
    assert read_png_metadata(path) == json.loads(json.dumps(metadata))
    assert read_png_metadata(path.read_bytes()) == read_png_metadata(path)
    with Image.open(path) as reopened:
        assert np.array_equal(np.asarray(reopened.convert("RGB")), np.asarray(picture))
        assert reopened.text["Title"] == "My grid" and reopened.text["Software"] == "Inceptionism Lab 0.1.0"
    assert read_png_metadata(png_bytes(picture)) == {}
    with pytest.raises(ImageError):
        read_png_metadata(b"not a png")


# ---------------------------------------------------------------- real dreams, bundles and replays


@pytest.fixture(scope="module")
def models(lite0):
    return {lite0.name: lite0, "efficientnet_lite0-untrained": load_model("efficientnet_lite0-untrained", "cpu")}


@pytest.fixture(scope="module")
def dreamed_grid(models) -> Grid:
    """models x layers, 64 px noise, 2 steps each: a grid a user would make and share."""
    items = []
    for name, model in models.items():
        for layer in ("block2", "block9"):
            noise = ImageSource("noise", (64, 64), seed=1)
            recipe = Recipe(name, LayerL2(layer).bind(model).to_dict(), TINY, noise, 64)
            result = run_recipe(recipe, model)
            items.append(GridItem(tensor_to_pil(result.image), result.record, f"{name} {layer}"))
    return arrange(items)


def test_grid_png_carries_models_layers_seeds_weights_and_versions(dreamed_grid, lite0):
    metadata = read_png_metadata(dreamed_grid.png())
    assert metadata["kind"] == "grid"
    assert metadata["models"] == ["efficientnet_lite0", "efficientnet_lite0-untrained"]
    assert metadata["layers"] == ["block2", "block9"] and metadata["seeds"] == [7]
    assert metadata["weights_sha256"]["efficientnet_lite0"] == lite0.weights_sha256
    assert {"inceptionism", "torch", "torchvision", "python"} <= set(metadata["versions"])
    assert metadata["configs"] == [TINY.to_dict()]
    assert GridRecipe.from_dict(metadata["grid_recipe"]).model_names() == list(metadata["models"])


def test_bundle_holds_every_image_the_grid_the_stats_and_the_recipe(dreamed_grid):
    stats = pd.DataFrame({"layer": ["block2", "block9"], "mean": [0.5, 1.5]})
    with zipfile.ZipFile(io.BytesIO(bundle_zip(dreamed_grid, stats))) as archive:
        names = set(archive.namelist())
        images = sorted(n for n in names if n.startswith("images/"))
        assert names == {"grid.png", "stats.csv", "recipe.json", "README.txt", *images}
        assert len(images) == 4 and images[0].startswith("images/r01c01-efficientnet-lite0-block2")
        for name in images:
            assert read_png_metadata(archive.read(name))["recipe"]["model"].startswith("efficientnet_lite0")
        assert pd.read_csv(io.BytesIO(archive.read("stats.csv"))).equals(stats)
        assert GridRecipe.from_json(archive.read("recipe.json")).to_dict() == dreamed_grid.recipe().to_dict()
        assert "python -m analysis grid --recipe" in archive.read("README.txt").decode()


def test_a_bundle_carries_attachments_and_says_what_they_are(dreamed_grid):
    """An animation's contact sheet takes its animation recipe along."""
    attachments = {"dream-zoom.recipe.json": ('{"kind": "animation"}', "the animation recipe: zoom --recipe")}
    with zipfile.ZipFile(io.BytesIO(bundle_zip(dreamed_grid, attachments=attachments))) as archive:
        assert archive.read("dream-zoom.recipe.json") == b'{"kind": "animation"}'
        readme = archive.read("README.txt").decode()
        assert "dream-zoom.recipe.json\n    the animation recipe: zoom --recipe" in readme


def test_replaying_the_bundle_gives_identical_pixels_on_the_cpu(dreamed_grid, models):
    recipe, inputs = load_grid_recipe(bundle_zip(dreamed_grid))
    steps = []
    replayed = replay_grid(recipe, models.__getitem__, inputs, on_step=lambda s, t, _p: steps.append((s, t)))
    assert np.array_equal(np.asarray(replayed.render()), np.asarray(dreamed_grid.render()))
    assert steps[-1] == (recipe.total_steps(), recipe.total_steps()) == (8, 8)
    assert replayed.row_labels == dreamed_grid.row_labels and not replayed.cancelled


def test_cli_grid_from_pngs_then_replay_from_the_bundle(dreamed_grid, tmp_path, capsys):
    paths = []
    for r, c, item in dreamed_grid.items():
        paths.append(str(save_png(tmp_path / f"cell{r}{c}.png", item.image, item.record)))
    assert main(["grid", *paths, "--out", str(tmp_path / "grid.png"), "--bundle", str(tmp_path / "b.zip")]) == 0
    assert "2 x 2 grid" in capsys.readouterr().out
    rows = read_png_metadata(tmp_path / "grid.png")["row_labels"]
    assert rows == ["efficientnet_lite0", "efficientnet_lite0-untrained"]
    assert main(["grid", "--recipe", str(tmp_path / "b.zip"), "--out", str(tmp_path / "again.png"),
                 "--device", "cpu"]) == 0
    with Image.open(tmp_path / "grid.png") as first, Image.open(tmp_path / "again.png") as again:
        assert np.array_equal(np.asarray(first), np.asarray(again))
    capsys.readouterr()
    assert main(["grid", "--out", str(tmp_path / "x.png")]) == 2
    assert capsys.readouterr().err == "error: Give result PNGs to lay out, or --recipe FILE to replay.\n"


def test_uploaded_start_photo_travels_in_the_bundle(lite0, cat_path):
    data = cat_path.read_bytes()
    recipe = Recipe(lite0.name, LayerL2("block3").to_dict(), TINY, ImageSource.upload("my cat.jpg", data), 64)
    result = run_recipe(recipe, lite0)
    grid = arrange([GridItem(tensor_to_pil(result.image), result.record, "cat", input_bytes=data)])
    bundle = bundle_zip(grid)
    with zipfile.ZipFile(io.BytesIO(bundle)) as archive:
        assert any(n.startswith("inputs/") and n.endswith("my-cat.jpg") for n in archive.namelist())
    loaded, inputs = load_grid_recipe(bundle)
    replayed = replay_grid(loaded, {lite0.name: lite0}.__getitem__, inputs)
    assert np.array_equal(np.asarray(replayed.render()), np.asarray(grid.render()))
    with pytest.raises(ImageError, match="my cat.jpg"):
        replay_grid(loaded, {lite0.name: lite0}.__getitem__, {})


def test_a_cancelled_or_recipe_less_result_makes_a_bundle_without_recipe(dreamed_grid):
    first = dreamed_grid.items()[0][2]
    partial = GridItem(first.image, replace(first.record, steps=1), "stopped early")
    bare = GridItem(first.image, RunRecord(), "from elsewhere")
    grid = arrange([partial, bare], rows_by=ONE_ROW, cols_by="title")
    assert grid.recipe() is None
    with zipfile.ZipFile(io.BytesIO(bundle_zip(grid))) as archive:
        assert "recipe.json" not in archive.namelist()
        readme = archive.read("README.txt").decode()
    assert "stopped early: cancelled part-way" in readme and "from elsewhere: made without a recipe" in readme


def test_recipe_files_that_are_not_grids_are_refused_or_wrapped(dreamed_grid):
    single = dreamed_grid.items()[0][2].record.recipe
    assert GridRecipe.from_json(json.dumps(single)).cells[0][0].model == single["model"]
    with pytest.raises(ConfigError):
        load_grid_recipe(b"PK\x03\x04 broken zip")
    with pytest.raises(ConfigError):
        load_grid_recipe(b'{"cells": []}')
    empty = io.BytesIO()
    with zipfile.ZipFile(empty, "w") as archive:
        archive.writestr("grid.png", b"")
    with pytest.raises(ConfigError, match="no recipe.json"):
        load_grid_recipe(empty.getvalue())


def test_an_animation_bundle_says_which_recipe_it_carries_instead_of_replaying_as_a_grid():
    bundle = io.BytesIO()  # what the Animation page's Bundle ZIP holds: frames without a grid recipe, and the zoom's
    with zipfile.ZipFile(bundle, "w") as archive:
        for name in ("grid.png", "images/r01c01-frame-1.png", "dream-zoom.recipe.json", "README.txt"):
            archive.writestr(name, b"")
    with pytest.raises(ConfigError, match=r"carries dream-zoom\.recipe\.json.*zoom --recipe dream-zoom\.recipe\.json"):
        load_grid_recipe(bundle.getvalue())
