"""Recipes from untrusted files: every malformed one is one clear error, and a replay is refused
where it could not give the original pixels (another precision, a frame, a stopped dream)."""

from __future__ import annotations

import io
import json
from dataclasses import replace

import pytest
from PIL import Image, PngImagePlugin

from analysis import zoo
from analysis.dream import DreamConfig
from analysis.errors import LabError
from analysis.pngmeta import METADATA_KEY, png_bytes
from analysis.recipes import ImageSource, Recipe, check_replay, run_recipe
from analysis.zoo import load_model

TINY = DreamConfig(octaves=1, iterations=2, jitter=0)


def _recipe(precision: str = "fp32") -> Recipe:
    return Recipe("efficientnet_lite0", {"type": "layer", "layer": "_blocks.3"}, TINY,
                  ImageSource("noise", size=(48, 48), seed=1), 48, precision)


def _png_with_text(text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, text)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


@pytest.mark.parametrize("content, message", [
    (_png_with_text("{not json"), "metadata is not valid JSON"),
    (_png_with_text("[1, 2]"), "not what this tool writes"),
    (_png_with_text(json.dumps({"recipe": "nope"})), "carries no recipe"),
    (json.dumps({**_recipe().to_dict(), "recipe_version": "x"}).encode(), "malformed"),
    (json.dumps({**_recipe().to_dict(), "max_side": None}).encode(), "malformed"),
    (json.dumps({**_recipe().to_dict(), "precision": "fp8"}).encode(), "Unknown precision"),
])
def test_a_malformed_recipe_or_png_is_one_clear_error(content, message):
    with pytest.raises(LabError, match=message):
        Recipe.from_json(content)


def test_a_png_replays_only_what_its_recipe_would_give(cat_small):
    recipe = _recipe()
    whole = {"recipe": recipe.to_dict(), "steps": TINY.total_steps}
    assert Recipe.from_json(png_bytes(cat_small, whole)) == recipe
    with pytest.raises(LabError, match="stopped after 1 of 2 steps"):
        Recipe.from_json(png_bytes(cat_small, {**whole, "steps": 1}))
    with pytest.raises(LabError, match="frame of an animation"):
        Recipe.from_json(png_bytes(cat_small, {**whole, "animation": {"frames": 4}}))


def test_a_recipe_replays_at_its_own_precision(lite0):
    """Loaded for the recipe, the model takes its precision; given one at another, the replay is refused."""
    half = _recipe("bf16")
    assert Recipe.from_json(half.to_json()).precision == "bf16"
    assert run_recipe(half).record.precision == "bf16"
    with pytest.raises(LabError, match="dreamed in bf16, not fp32"):
        run_recipe(half, lite0)
    assert load_model("efficientnet_lite0", device="cpu").precision == "fp32"


def test_a_replayed_png_says_how_far_its_pixels_are_and_where_each_ran(lite0):
    """Identical pixels hold on the same device, precision, CPU kind and versions: the result records
    the CPU kind, and a replay of a PNG is compared with that PNG's own pixels."""
    recipe = _recipe()
    first = run_recipe(recipe, lite0)
    assert first.record.cpu == zoo.cpu_kind() and "(" in first.record.cpu
    original = png_bytes(first.image, first.record)
    again = run_recipe(recipe, lite0)
    check = check_replay(original, again)
    assert check.identical and check.recorded == check.here and "identical" in check.describe()
    again.image[:, 0, 0] = (again.image[:, 0, 0] + 3 / 255).clamp(0, 1) if again.image[0, 0, 0] < 0.5 else (
        again.image[:, 0, 0] - 3 / 255)
    moved = check_replay(original, again)
    assert moved.largest_difference == 3 and "3/255" in moved.describe()
    elsewhere = replace(first.record, cpu="Another CPU (AVX2)")
    assert "Another CPU (AVX2)" in check_replay(png_bytes(first.image, elsewhere), again).describe()
