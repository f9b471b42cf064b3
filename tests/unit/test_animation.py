"""The zoom loop, its recipe and its GIF / MP4 writers: frames, sizes, progress, cancel, replay, the command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import pytest
import torch

from analysis.animation import (
    Animation,
    AnimationRecipe,
    ZoomSettings,
    contact_sheet,
    gif_bytes,
    mp4_bytes,
    run_animation_recipe,
    video_bytes,
    write_video,
    zoom_dream,
    zoom_frame,
)
from analysis.cli import main
from analysis.dream import DreamConfig
from analysis.errors import ConfigError
from analysis.images import load_image, noise_image
from analysis.objectives import LayerL2
from analysis.recipes import ImageSource, Recipe

REPO = Path(__file__).resolve().parents[2]

TINY = DreamConfig(octaves=1, iterations=2, jitter=4, seed=5)


def mp4_frames(data: bytes, tmp_path) -> list:
    path = tmp_path / "read.mp4"
    path.write_bytes(data)
    reader = imageio.get_reader(path, format="FFMPEG")
    try:
        return [frame for frame in reader.iter_data()]
    finally:
        reader.close()


def test_zoom_frame_zooms_and_turns_about_the_centre():
    image = torch.rand(3, 64, 64)
    assert torch.allclose(zoom_frame(image, 0.0, 0.0), image, atol=1e-5)
    assert torch.allclose(zoom_frame(image, 0.0, 90.0), torch.rot90(image, 1, dims=(1, 2)), atol=1e-4)
    square = torch.zeros(3, 64, 64)
    square[:, 22:42, 22:42] = 1.0  # 20 px, centred
    zoomed = zoom_frame(square, 0.5)
    side = int((zoomed[0, 32] > 0.5).sum())
    assert 28 <= side <= 32  # 1.5 x as large, still centred
    assert zoomed[0, 32, 32] == 1.0


@pytest.fixture(scope="module")
def animation(lite0) -> tuple[Animation, list]:
    steps = []
    run = zoom_dream(lite0, noise_image(64, 3), LayerL2("block4"), TINY, ZoomSettings(frames=3, zoom=0.1),
                     on_step=lambda s, t, p: steps.append((s, t, p)))
    return run, steps


def test_every_frame_is_dreamed_from_the_last_one_zoomed(animation, lite0):
    run, steps = animation
    assert len(run.frames) == 3 and not run.cancelled
    assert all(frame.shape == (3, 64, 64) for frame in run.frames)
    assert not torch.equal(run.frames[0], run.frames[1])
    assert run.record.extras["animation"]["frames_done"] == 3 and run.record.extras["animation"]["zoom"] == 0.1
    assert run.record.model == lite0.name and run.record.steps == 6
    again = zoom_dream(lite0, noise_image(64, 3), LayerL2("block4"), TINY, ZoomSettings(frames=3, zoom=0.1))
    assert all(torch.equal(a, b) for a, b in zip(run.frames, again.frames))  # reproducible from the settings


def test_progress_counts_every_step_and_previews_each_finished_frame(animation):
    run, steps = animation
    assert [s for s, _, _ in steps] == list(range(1, 7)) and {t for _, t, _ in steps} == {6}
    previews = [p for _, _, p in steps if p is not None]
    assert len(previews) == 3 and torch.equal(previews[-1], run.frames[-1])


def test_cancel_keeps_the_finished_frames(lite0):
    seen = []
    run = zoom_dream(lite0, noise_image(64, 3), LayerL2("block4"), TINY, ZoomSettings(frames=3),
                     on_step=lambda s, t, p: seen.append(p is not None), should_cancel=lambda: any(seen))
    assert run.cancelled and len(run.frames) == 1
    assert run.record.extras["animation"]["frames_done"] == 1
    recipe = AnimationRecipe(Recipe(lite0.name, {"type": "layer", "layer": "block4"}, TINY,
                                    ImageSource("noise", size=(64, 64), seed=3), 64), ZoomSettings(frames=3))
    assert recipe.finished(run).zoom.frames == 1  # the recipe beside a cancelled video replays that video


def test_an_animation_recipe_replays_the_very_frames_from_json(animation, lite0):
    run, _ = animation
    recipe = AnimationRecipe(Recipe(lite0.name, LayerL2("block4").to_dict(), TINY,
                                    ImageSource("noise", size=(64, 64), seed=3), 64), ZoomSettings(frames=3, zoom=0.1))
    again = run_animation_recipe(AnimationRecipe.from_json(recipe.to_json()), lite0)
    assert len(again.frames) == 3 and all(torch.equal(a, b) for a, b in zip(run.frames, again.frames))
    assert again.record.recipe == recipe.dream.to_dict() and again.record.extras["animation"]["zoom"] == 0.1


def test_gif_and_mp4_hold_every_frame_at_full_size(animation, tmp_path):
    run, _ = animation
    gif = iio.imread(io.BytesIO(gif_bytes(run.frames, fps=8)), index=None, extension=".gif")
    assert gif.shape[:3] == (3, 64, 64)
    frames = mp4_frames(mp4_bytes(run.frames, fps=8), tmp_path)
    assert len(frames) == 3 and frames[0].shape == (64, 64, 3)
    odd = [torch.rand(3, 65, 67) for _ in range(3)]
    assert mp4_frames(video_bytes(odd, ".MP4"), tmp_path)[0].shape == (64, 66, 3)  # yuv420p: even sides
    path = write_video(tmp_path / "out" / "z.gif", run.frames)
    assert iio.imread(path, index=None).shape[0] == 3


def test_writers_refuse_nothing_and_unknown_formats():
    with pytest.raises(ConfigError):
        gif_bytes([])
    with pytest.raises(ConfigError):
        video_bytes([torch.rand(3, 8, 8)], ".avi")
    with pytest.raises(ConfigError):
        ZoomSettings(frames=0).validate()


def test_contact_sheet_labels_evenly_spaced_frames(animation):
    run, _ = animation
    sheet = contact_sheet(run, count=2, title="zoom")
    assert sheet.col_labels == ["frame 1", "frame 3"] and sheet.shape == (1, 2)
    assert contact_sheet(run, count=6).col_labels == ["frame 1", "frame 2", "frame 3"]
    assert "zoom 0.1" in sheet.footnote
    assert sheet.recipe() is None and "a frame of an animation" in sheet.unreplayable()[0]


def test_cli_zoom_writes_a_video(tmp_path, capsys):
    out = tmp_path / "dream.gif"
    assert main(["zoom", "--layer", "block4", "--noise", "--size", "64", "--frames", "3", "--octaves", "1",
                 "--iterations", "2", "--zoom", "0.05", "--out", str(out)]) == 0
    assert "3 frames of 64x64 px" in capsys.readouterr().out
    assert iio.imread(out, index=None).shape[:3] == (3, 64, 64)
    assert main(["zoom", "--layer", "block4", "--noise", "--out", str(tmp_path / "dream.avi")]) == 2
    assert capsys.readouterr().err.startswith("error: --out must end in .mp4 or .gif")


def test_cli_zoom_recipe_replays_the_same_frames(tmp_path, capsys):
    recipe = tmp_path / "zoom.json"
    assert main(["zoom", "--layer", "block4", "--image", "cat_chelsea", "--size", "64", "--frames", "3",
                 "--octaves", "1", "--iterations", "2", "--zoom", "0.1", "--rotate", "5", "--fps", "8", "--seed", "4",
                 "--out", str(tmp_path / "a.gif"), "--frames-dir", str(tmp_path / "a"),
                 "--recipe-out", str(recipe)]) == 0
    saved = json.loads(recipe.read_text())
    assert saved["kind"] == "animation" and saved["zoom"] == {"frames": 3, "zoom": 0.1, "rotation": 5.0, "fps": 8}
    assert saved["dream"]["image"]["name"] == "cat_chelsea.jpg" and saved["dream"]["config"]["seed"] == 4
    capsys.readouterr()
    assert main(["zoom", "--recipe", str(recipe), "--out", str(tmp_path / "b.mp4"),
                 "--frames-dir", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "3 frames of 64x" in out and "at 8 fps" in out
    first, again = sorted((tmp_path / "a").glob("*.png")), sorted((tmp_path / "b").glob("*.png"))
    assert len(first) == len(again) == 3
    assert all(torch.equal(load_image(x), load_image(y)) for x, y in zip(first, again))


MALFORMED = [
    ("{not json", "not valid JSON"),
    ('{"model": "efficientnet_lite0"}', "This is a dream recipe, not an animation recipe"),
    ('{"kind": "animation", "zoom": {"frames": 3, "zoom": 0.1}}', "needs 'zoom' and 'dream'"),
    ('{"kind": "animation", "zoom": {"zoom": 0.1}, "dream": {}}', "zoom settings lack 'frames'"),
    ('{"kind": "animation", "zoom": {"frames": "many", "zoom": 0.1}, "dream": {}}', "zoom settings are malformed"),
    ('{"kind": "animation", "zoom": {"frames": 0, "zoom": 0.1}, "dream": {}}', "frames must be 1 to 1000"),
    ('{"kind": "animation", "zoom": {"frames": 3, "zoom": 0.1}, "dream": {"model": "efficientnet_lite0"}}',
     "incomplete or malformed"),
    ('{"kind": "animation", "recipe_version": 99, "zoom": {}, "dream": {}}', "newer version"),
    ('{"kind": "animation", "recipe_version": "one", "zoom": {}, "dream": {}}', "not a whole number"),
    ("[1, 2]", "not an animation recipe"),
]


@pytest.mark.parametrize("text, message", MALFORMED)
def test_a_malformed_animation_recipe_is_one_error(text, message, tmp_path, capsys):
    recipe = tmp_path / "bad.json"
    recipe.write_text(text)
    assert main(["zoom", "--recipe", str(recipe), "--out", str(tmp_path / "o.gif")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines


def test_a_malformed_animation_recipe_is_one_line_and_exit_2_in_a_real_process(tmp_path):
    recipe = tmp_path / "bad.json"
    recipe.write_text('{"kind": "animation", "zoom": {"frames": 3, "zoom": 9}, "dream": {}}')
    done = subprocess.run([sys.executable, "-m", "analysis", "zoom", "--recipe", str(recipe), "--out", "o.mp4"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2 and not (tmp_path / "o.mp4").exists()
    assert done.stderr.strip().splitlines() == ["error: Invalid animation setting: zoom per frame must be 0 to 0.5."]


def test_each_recipe_kind_says_where_it_replays(tmp_path, capsys):
    animation = tmp_path / "zoom.json"
    animation.write_text('{"kind": "animation", "zoom": {}, "dream": {}}')
    assert main(["dream", "--recipe", str(animation), "--out", str(tmp_path / "o.png")]) == 2
    assert "an animation recipe: replay it with 'python -m analysis zoom --recipe'" in capsys.readouterr().err
