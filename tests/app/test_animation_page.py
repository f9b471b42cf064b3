"""The Animation page: a tiny zoom from noise runs in the background and ends as a video, a GIF, a replayable
recipe and a result."""

from __future__ import annotations

import io
import time
from pathlib import Path

import imageio.v3 as iio
import torch
from streamlit.testing.v1 import AppTest

from analysis.animation import AnimationRecipe, run_animation_recipe
from dashboard.results import RESULTS_KEY

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "animation.py")
TINY_SETTINGS = {
    "keep.animation.image_kind": "Noise",
    "keep.animation.frames": 3,
    "keep.animation.size": 64,
    "keep.animation.preset": "quick",
    "keep.animation.detailed": True,
    "keep.animation.quick.octaves": 1,
    "keep.animation.quick.iterations": 2,
}


def test_a_tiny_zoom_becomes_a_video_a_gif_a_recipe_and_a_session_result(lite0):
    at = AppTest.from_file(PAGE, default_timeout=120)
    for key, value in TINY_SETTINGS.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception and not at.error
    assert any("Each frame takes 2 steps; 3 frames take 6 steps." in c.value for c in at.caption)

    at.button(key="animation.run").click().run()
    deadline = time.monotonic() + 240
    while "animation.result" not in at.session_state and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.error

    run = at.session_state["animation.result"]
    gif = iio.imread(io.BytesIO(run.videos[".gif"]), index=None, extension=".gif")
    assert gif.shape[:3] == (3, 64, 64)
    assert at.get("video"), "the MP4 is shown as a video"
    assert [b.label for b in at.get("download_button")] == ["MP4", "GIF", "Recipe", "Grid PNG", "Bundle ZIP"]
    assert any("3 frames of 64 x 64 px" in c.value for c in at.caption)
    (result,) = at.session_state[RESULTS_KEY]
    assert result.kind == "animation" and result.image.size == (64, 64)
    assert result.title == "noise (seed 0) · L2 of block10 · zoom frame 3"  # what tells it apart comes first
    notes = [c.value for c in at.caption]
    assert any("Recipe** beside the video, also in the bundle, replays the whole animation" in n for n in notes)
    assert not any("cannot be replayed" in n for n in notes)  # the sheet's stills do not contradict the Recipe

    recipe = AnimationRecipe.from_json(run.recipe.to_json())  # what the Recipe button downloads
    assert recipe.zoom.frames == 3 and recipe.dream.image.kind == "noise"
    again = run_animation_recipe(recipe, lite0)
    assert len(again.frames) == 3
    assert all(torch.equal(a, b) for a, b in zip(run.animation.frames, again.frames))


def test_an_impossible_setting_is_one_error_line():
    at = AppTest.from_file(PAGE, default_timeout=120)
    for key, value in {**TINY_SETTINGS, "keep.animation.quick.tile_size": 32}.items():
        at.session_state[key] = value
    at.run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Invalid setting: tile size must be 0 (off) or 64 to 4096 px."]
