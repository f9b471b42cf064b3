"""The Video page: a tiny demo clip dreamed in the background ends as the source and the dream side by side,
an MP4 with the clip's sound, a GIF and a recipe that replays the frames."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

from analysis.video import VideoRecipe, dream_video, probe_video
from dashboard.results import RESULTS_KEY

PAGE = str(Path(__file__).resolve().parents[2] / "pages" / "video.py")
TINY_SETTINGS = {
    "keep.video.demo_frames": 4,
    "keep.video.size": 64,
    "keep.video.preset": "quick",
    "keep.video.detailed": True,
    "keep.video.quick.octaves": 1,
    "keep.video.quick.iterations": 2,
}


def open_page(settings: dict) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for key, value in settings.items():
        at.session_state[key] = value
    return at.run()


def test_a_demo_clip_becomes_a_dream_video_a_gif_and_a_recipe(lite0, tmp_path):
    at = open_page(TINY_SETTINGS)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("4 frames of 192 x 144 px at 12 fps" in c.value for c in at.caption)
    assert any("4 frames: the first takes 2 steps, each other 1; 5 steps in all." in c.value for c in at.caption)

    at.button(key="video.run").click().run()
    deadline = time.monotonic() + 300
    while "video.result" not in at.session_state and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]

    run = at.session_state["video.result"]
    result = run.result
    assert len(result.frames) == 4 and not result.cancelled and result.mean_flicker is not None
    assert len(at.get("video")) == 3, "the source above, then the source and the dream side by side"
    assert [b.label for b in at.get("download_button")] == ["MP4", "GIF", "Recipe"]
    mp4 = tmp_path / "dream.mp4"
    mp4.write_bytes(run.files["mp4"])
    info = probe_video(mp4)
    assert (info.frames, info.fps, info.has_audio, (info.width, info.height)) == (4, 12, True, (64, 48))
    (kept,) = at.session_state[RESULTS_KEY]
    assert kept.kind == "video" and kept.image.size == (64, 48)

    recipe = VideoRecipe.from_json(run.recipe.to_json())  # what the Recipe button downloads
    again = dream_video(lite0, run.source, recipe, tmp_path / "again")
    assert all(np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
               for a, b in zip(result.frames, again.frames, strict=True))


def test_an_impossible_setting_is_one_error_line():
    at = open_page({**TINY_SETTINGS, "keep.video.schedule": "0:block5,x"})
    assert not at.exception
    assert [e.value for e in at.error] == ["Layer schedule entry 'x' is not FRAME:LAYER (e.g. 0:block5,40:block8)."]
