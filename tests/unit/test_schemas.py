"""Every file a user hands in goes through one schema layer: a result or one LabError line, never a traceback.

The property test corrupts valid recipe, zoom recipe, bundle and PNG files (numbers swapped for floats,
NaN, infinities, huge or negative numbers, strings, lists; keys dropped or added; deep nesting; wrong
top-level types) and feeds them to the functions the CLI and the pages call.
"""

from __future__ import annotations

import base64
import io
import json
import zipfile
from dataclasses import asdict

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, PngImagePlugin

from analysis import schemas
from analysis.animation import AnimationRecipe, ZoomSettings
from analysis.bundles import bundle_zip, load_grid_recipe
from analysis.cli import main
from analysis.dream import DreamConfig
from analysis.errors import ConfigError, LabError
from analysis.grids import GridItem, arrange
from analysis.pngmeta import METADATA_KEY, read_png_record
from analysis.provenance import RunRecord
from analysis.recipes import Recipe

REPO_SCHEMAS = schemas.__file__.rsplit("/analysis/", 1)[0] + "/docs/schemas"


def _guide_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (120, 30, 200)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


DREAM = {
    "recipe_version": 1, "model": "efficientnet_lite0", "max_side": 48, "precision": "fp32",
    "objective": {"type": "sum", "terms": [
        {"weight": 1.0, "objective": {"type": "channels", "layer": "block3", "channels": [1, 5]}},
        {"weight": 0.5, "objective": {"type": "class", "classes": [207]}},
        {"weight": 0.25, "objective": {"type": "layer", "layer": "_blocks.5"}},
    ]},
    "config": {"octaves": 1, "octave_scale": 1.4, "iterations": 2, "step_size": 0.01, "jitter": 4,
               "normalization": "mean-abs", "clip": True, "seed": 3, "tile_size": 0},
    "image": {"kind": "noise", "size": [48, 40], "seed": 7},
}
GUIDED = {**DREAM, "objective": {"type": "guide", "layer": "block4", "guide_png": _guide_png()},
          "image": {"kind": "sample", "name": "cat_chelsea.png", "sha256": "0" * 64}}
ZOOM = {"recipe_version": 1, "kind": "animation", "zoom": {"frames": 3, "zoom": 0.05, "rotation": 2.0, "fps": 8},
        "dream": DREAM}
GRID = {"grid_recipe_version": 1, "title": "t", "row_labels": ["a"], "col_labels": ["x", "y"], "footnote": "",
        "cell_side": 64, "cells": [[DREAM, None], [GUIDED, DREAM]]}


def _recipe(data: bytes) -> object:
    return Recipe.from_json(data)


def _zoom(data: bytes) -> object:
    return AnimationRecipe.from_json(data)


def _bundle(data: bytes) -> object:
    """As `grid --recipe` reads it: recipe JSON, or a bundle ZIP whose recipe.json is the file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("recipe.json", data)
    load_grid_recipe(data)
    return load_grid_recipe(buffer.getvalue())


def _png(data: bytes) -> object:
    """A dream PNG whose metadata carries the (corrupted) recipe, as `dream --recipe x.png` reads it."""
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, '{"steps": 2, "recipe": ' + data.decode() + "}")  # json.dumps wrote ASCII
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
    return Recipe.from_json(buffer.getvalue())


RUN_RECORD = {"model": "efficientnet_lite0", "training_data": "ImageNet", "layers": ["_blocks.3"],
              "objective_text": "L2 of block3", "seed": 3, "config": DREAM["config"], "steps": 2,
              "weights_sha256": "a" * 64, "versions": {"inceptionism": "0.3.0", "torch": "2"}, "device": "cpu",
              "precision": "fp32", "recipe": DREAM, "animation": {"frames": 4, "zoom": 0.05, "rotation": 1.0}}


def _grid_of_pngs(data: bytes) -> object:
    """Result PNGs laid out as a grid and bundled, as `grid A.png B.png --bundle` and the Export page do."""
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, data.decode())
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    items = [GridItem(Image.new("RGB", (8, 8)), read_png_record(buffer.getvalue()), "a"),
             GridItem(Image.new("RGB", (8, 8), "red"), RunRecord.from_dict({**RUN_RECORD, "seed": 4}), "b")]
    grid = arrange(items)
    return grid.png(), bundle_zip(grid)


READERS = {"recipe": (DREAM, _recipe), "zoom": (ZOOM, _zoom), "bundle": (GRID, _bundle), "png": (DREAM, _png),
           "grid of PNGs": (RUN_RECORD, _grid_of_pngs)}


# ---------------------------------------------------------------- the valid files are read


@pytest.mark.parametrize("kind", sorted(READERS))
def test_the_valid_files_are_read(kind):
    document, read = READERS[kind]
    assert read(json.dumps(document).encode()) is not None


def test_a_guided_recipe_and_a_grid_round_trip():
    grid, _ = load_grid_recipe(json.dumps(GRID).encode())
    assert grid.cells[1][0].objective == GUIDED["objective"] and grid.cells[0][1] is None
    assert json.loads(grid.to_json())["cells"][0][0] == {**DREAM, "config": DREAM["config"]}
    assert AnimationRecipe.from_json(json.dumps(ZOOM)).to_dict() == ZOOM


# ---------------------------------------------------------------- corrupted files: one LabError, never another


DEEP = "\x00deep\x00"
REPLACEMENTS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 2.5, -1.0, 1e308]),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.sampled_from([0, 1, -1, 2**31, 2**63 - 1, 2**63, 2**64, 2**70, 10**40, 100_000]),
    st.text(max_size=12), st.none(), st.booleans(),
    st.lists(st.integers(min_value=-5, max_value=300), max_size=3),
    st.dictionaries(st.sampled_from(["type", "kind", "layer", "x"]), st.integers(), max_size=2),
    st.just([1, 100_000]), st.just(DEEP),
)


def _paths(node: object, prefix: tuple = ()) -> list[tuple]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


def _set(node: object, path: tuple, value: object) -> object:
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = _set(node[path[0]], path[1:], value) if len(path) > 1 else value
    return copy


def _drop(node: object, path: tuple) -> object:
    if len(path) == 1:
        copy = dict(node) if isinstance(node, dict) else list(node)
        del copy[path[0]]
        return copy
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = _drop(node[path[0]], path[1:])
    return copy


@st.composite
def corrupted(draw: st.DrawFn, document: dict) -> bytes:
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(_paths(document)))
        action = draw(st.sampled_from(["replace", "replace", "replace", "drop", "add"]))
        if action == "drop" and path:
            document = _drop(document, path)
        elif action == "add" and isinstance(_get(document, path), dict):
            document = _set(document, path, {**_get(document, path), draw(st.text(max_size=8)): draw(REPLACEMENTS)})
        else:
            document = _set(document, path, draw(REPLACEMENTS))
    text = json.dumps(document, allow_nan=True)
    depth = draw(st.sampled_from([60, 100_000]))
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth).encode()


def _get(node: object, path: tuple) -> object:
    for part in path:
        node = node[part]
    return node


def _is_sound(recipe: Recipe) -> None:
    """What a reader accepts is what the tool would write (strict types, in range) and starts a dream."""
    schemas.validate(schemas.DreamRecipeFile, recipe.to_dict(), "recipe")
    recipe.build_objective()
    if recipe.image.kind == "noise":
        start = recipe.image.load(min(recipe.max_side, 32))
        assert start.dim() == 3 and min(start.shape[1:]) >= 1 and bool(start.isfinite().all())


def _check_result(result: object) -> None:
    if isinstance(result, Recipe):
        _is_sound(result)
    elif isinstance(result, AnimationRecipe):
        schemas.validate(schemas.AnimationRecipeFile, result.to_dict(), "animation recipe")
        _is_sound(result.dream)
    elif isinstance(result[0], bytes):  # a grid of PNGs: it rendered
        assert result[0].startswith(b"\x89PNG")
    else:
        grid, _inputs = result
        schemas.validate(schemas.GridRecipeFile, grid.to_dict(), "grid recipe")
        for _, _, cell in grid.recipes():
            _is_sound(cell)


def _one_line_or_result(read, data: bytes) -> None:
    try:
        result = read(data)
    except LabError as err:
        message = str(err)
        assert message and "\n" not in message and len(message) < 600, message
        assert "Traceback" not in message and "pydantic" not in message and "input_value" not in message, message
    else:
        _check_result(result)


@pytest.mark.parametrize("kind", sorted(READERS))
@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_corrupted_file_is_a_result_or_one_lab_error(kind, data):
    document, read = READERS[kind]
    _one_line_or_result(read, data.draw(corrupted(document)))


@settings(max_examples=60, deadline=None, database=None)
@given(top=st.one_of(st.integers(), st.floats(), st.text(max_size=10), st.none(), st.booleans(),
                     st.lists(st.integers(), max_size=3)))
def test_a_file_of_the_wrong_top_level_type_is_one_lab_error(top):
    text = json.dumps(top, allow_nan=True).encode()
    for _, read in READERS.values():
        with pytest.raises(LabError):
            read(text)


# ---------------------------------------------------------------- what the probe found, one by one


def _with(document: dict, path: tuple, value: object) -> bytes:
    return json.dumps(_set(document, path, value), allow_nan=True).encode()


@pytest.mark.parametrize("path, value, words", [
    (("config", "octaves"), 2.5, "octaves is not a whole number, got 2.5"),
    (("config", "iterations"), 3.0, "iterations is not a whole number, got 3.0"),
    (("config", "jitter"), 1.5, "jitter is not a whole number"),
    (("config", "seed"), 1.0, "seed is not a whole number"),
    (("config", "seed"), 2**70, "seed must be 0 to 9223372036854775807"),
    (("config", "seed"), -1, "seed must be 0 to"),
    (("config", "step_size"), float("nan"), "step_size is not a finite number, got nan"),
    (("config", "octave_scale"), "1.4", "octave_scale is not a number, got '1.4'"),
    (("recipe_version",), float("nan"), "recipe_version is not a whole number, got nan"),
    (("recipe_version",), float("inf"), "recipe_version is not a whole number, got inf"),
    (("max_side",), float("inf"), "max_side is not a whole number, got inf"),
    (("max_side",), 100_000, "max_side must be 16 to 4096 px, got 100000"),
    (("image", "seed"), float("nan"), "image.seed is not a whole number, got nan"),
    (("image", "seed"), 2**64, "image.seed must be 0 to 9223372036854775807"),
    (("image", "size"), [0, 5], "image.size[0] must be 16 to 4096 px, got 0"),
    (("image", "size"), [1, 100_000], "image.size[0] must be 16 to 4096 px, got 1"),
    (("image", "size"), [48, float("inf")], "image.size[1] is not a whole number, got inf"),
    (("image", "size"), [48], "image.size has 1 items; it may have at least 2"),
    (("image", "size"), "big", "image.size is not a list, got 'big'"),
    (("objective", "terms", 0, "objective", "channels", 0), float("inf"),
     "objective is malformed (terms[0].objective.channels[0] is not a whole number, got inf)"),
    (("objective", "terms", 1, "objective", "classes"), [float("nan")], "classes[0] is not a whole number, got nan"),
    (("objective", "terms", 0, "weight"), float("nan"), "terms[0].weight is not a finite number, got nan"),
    (("objective", "terms", 0, "weight"), float("-inf"), "terms[0].weight is not a finite number, got -inf"),
    (("objective", "terms", 0, "weight"), "1", "terms[0].weight is not a number, got '1'"),
    (("objective", "terms", 1, "objective", "classes"), [5000], "Class 5000 does not exist"),
    (("objective", "terms", 0, "objective", "channels"), [99_999], "Channel 99999 does not exist"),
    (("objective", "terms", 0, "objective", "layer"), "block99", "no dream-able layer 'block99'"),
    (("model",), ["efficientnet_lite0"], "model is not text"),
    (("image",), {"kind": "sample", "name": "cat_chelsea.png", "sha256": "xyz"}, "image.sha256 is not a sha256"),
    (("image",), {"kind": "file", "name": "../../etc/passwd", "sha256": "0" * 64},
     "image.name must be a file name without folders"),
    (("image",), {"kind": "film"}, "Unknown image kind 'film' in the"),
    (("objective",), {"kind": "layer", "layer": "block10"}, "gives no objective type: choose layer or"),
    (("precision",), "fp8", "Unknown precision 'fp8' in the"),
    (("colour",), "red", "colour is not a known key"),
])
def test_each_bad_value_the_probe_found_is_one_line_naming_the_field(path, value, words):
    for document, at, read in ((DREAM, path, _recipe), (ZOOM, ("dream", *path), _zoom)):
        with pytest.raises(ConfigError) as caught:
            read(_with(document, at, value))
        assert words in str(caught.value), (at, str(caught.value))


def test_a_nan_or_infinite_weight_is_refused_not_dreamed_black():
    for weight in ("NaN", "Infinity", "-Infinity", "1e999"):
        text = json.dumps(DREAM).replace('"weight": 1.0', f'"weight": {weight}').encode()
        with pytest.raises(ConfigError, match=r"terms\[0\]\.weight is not a finite number"):
            Recipe.from_json(text)


@pytest.mark.parametrize("kind", sorted(READERS))
def test_a_file_nested_100000_deep_is_one_line_not_recursion_error(kind):
    document, read = READERS[kind]
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    for text in (deep, _with(document, ("model",) if "model" in document else ("title",), DEEP)):
        text = text.replace(json.dumps(DEEP).encode(), deep)
        with pytest.raises(LabError, match="nested more than 48 levels deep"):
            read(text)


def test_the_depth_of_raw_json_is_measured_outside_strings():
    assert schemas.json_depth(b'{"a": "[[[[", "b": [{"c": "\\"[["}]}') == 3
    assert schemas.json_depth(b'["\\\\", ["x"]]') == 2  # an escaped backslash does not escape the quote
    assert schemas.json_depth(b"7") == 0


def test_too_large_or_too_many_digits_is_one_line():
    with pytest.raises(ConfigError, match="larger than 16 MB"):
        Recipe.from_json(b" " * (schemas.MAX_JSON_BYTES + 1))
    with pytest.raises(ConfigError, match="not valid JSON"):
        Recipe.from_json(_with(DREAM, ("max_side",), 0).replace(b'"max_side": 0', b'"max_side": ' + b"9" * 5000))


def test_a_zoom_recipe_whose_last_frame_seed_is_out_of_range_is_refused_when_read():
    top = schemas.MAX_SEED
    assert _zoom(_with(ZOOM, ("dream", "config", "seed"), top - 2))  # seeds top - 2 .. top: fits
    with pytest.raises(ConfigError, match=f"seed must be 0 to {top - 2} for 3 frames"):
        _zoom(_with(ZOOM, ("dream", "config", "seed"), top - 1))


def test_cli_zoom_near_the_top_seed_fails_before_the_first_frame(tmp_path, capsys, monkeypatch):
    import analysis.animation

    monkeypatch.setattr(analysis.animation, "dream", lambda *a, **k: pytest.fail("a frame was dreamed"))
    out = tmp_path / "z.gif"
    assert main(["zoom", "--noise", "--size", "32", "--frames", "2", "--octaves", "1", "--iterations", "1",
                 "--seed", str(schemas.MAX_SEED), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: Invalid setting: seed must be 0 to {schemas.MAX_SEED - 1} for 2 "
                                       f"frames (frame i dreams with seed + i, up to {schemas.MAX_SEED}).\n")
    assert not out.exists()


# ---------------------------------------------------------------- one source for ranges and defaults


def test_the_settings_defaults_are_the_dataclasses_defaults():
    assert schemas.DreamSettings().model_dump() == asdict(DreamConfig())
    zoom = ZoomSettings()
    assert schemas.ZoomSettingsSchema(frames=zoom.frames, zoom=zoom.zoom).model_dump() == zoom.to_dict()


def test_settings_made_in_code_are_checked_by_the_same_rules():
    with pytest.raises(ConfigError, match="Invalid setting: octaves is not a whole number, got 2.5"):
        DreamConfig(octaves=2.5).validate()
    with pytest.raises(ConfigError, match="Invalid animation setting: frames per second must be 1 to 60"):
        ZoomSettings(fps=0).validate()
    assert DreamConfig.from_dict({"octaves": 2}) == DreamConfig(octaves=2)


# ---------------------------------------------------------------- the JSON Schemas


@pytest.mark.parametrize("kind", sorted(schemas.SCHEMAS))
def test_each_file_kind_publishes_its_json_schema(kind, capsys):
    assert main(["schema", kind]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == schemas.json_schema(kind)
    assert printed["$schema"].startswith("https://json-schema.org/") and printed["additionalProperties"] is False
    with open(f"{REPO_SCHEMAS}/{kind}.schema.json") as committed:  # the files README links to are current
        assert json.load(committed) == printed


def test_the_published_ranges_are_the_enforced_ones():
    settings_schema = schemas.json_schema("recipe")["$defs"]["DreamSettings"]["properties"]
    assert settings_schema["octaves"]["minimum"] == 1 and settings_schema["octaves"]["maximum"] == 10
    assert settings_schema["seed"]["maximum"] == schemas.MAX_SEED
    with pytest.raises(ConfigError, match="octaves must be 1 to 10"):
        DreamConfig(octaves=settings_schema["octaves"]["maximum"] + 1).validate()


def test_the_schema_command_help_names_every_kind_it_publishes(capsys):
    with pytest.raises(SystemExit):
        main(["schema", "--help"])
    described = " ".join(capsys.readouterr().out.split())
    assert all(f"{kind} (" in described for kind in schemas.SCHEMAS), described
