"""Video dreams on clips made here: a photo panned by a known shift per frame, with a sine tone."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from analysis import video
from analysis.cli import main
from analysis.dream import preset
from analysis.errors import ConfigError, VideoError
from analysis.objectives import LayerL2
from analysis.pngmeta import read_png_metadata
from analysis.video import (
    VideoRecipe,
    VideoSettings,
    carry,
    dream_video,
    motion_between,
    probe_video,
    read_frames,
    video_recipe,
    write_gif,
    write_mp4,
)

SAMPLES = Path(__file__).resolve().parents[2] / "assets" / "samples"
SHIFT, FPS, FRAMES, SIZE = 2, 12, 6, (64, 48)
CONFIG = preset("quick", iterations=3)  # 2 octaves x 3 steps for the first frame, 2 x 1 for the others
FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


def make_clip(path: Path, frames: int = FRAMES, shift: int = SHIFT, audio: bool = True,
              cut_at: int | None = None) -> list[np.ndarray]:
    """A window moving right by `shift` px a frame over the astronaut (the content moves left), as H.264;
    from frame `cut_at` on the window is over another photo (a cut). Returns the frames written."""
    width, height = SIZE
    photos = []
    for name in ("astronaut.jpg", "coffee.jpg"):
        picture = Image.open(SAMPLES / name).convert("RGB")
        factor = max((16 + frames * shift + width) / picture.width, (16 + height) / picture.height)
        photos.append(np.asarray(picture.resize((round(picture.width * factor), round(picture.height * factor)))))
    raw = [np.ascontiguousarray(photos[int(cut_at is not None and i >= cut_at)]
                                [8:8 + height, 8 + i * shift:8 + i * shift + width]) for i in range(frames)]
    command = [FFMPEG, "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
               "-r", str(FPS), "-i", "-"]
    if audio:
        command += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=22050:duration={frames / FPS}", "-c:a", "aac"]
    command += ["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-shortest", str(path)]
    subprocess.run(command, input=b"".join(frame.tobytes() for frame in raw), check=True)
    return raw


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "pan.mp4"
    make_clip(path)
    return path


def recipe_for(model, clip: Path, **settings) -> VideoRecipe:
    return video_recipe(model, probe_video(clip), LayerL2("block5"), CONFIG, VideoSettings(**settings), 64)


@pytest.fixture(scope="module")
def flow_run(lite0, clip, tmp_path_factory):
    """One uninterrupted run with the optical flow: the reference the other tests compare with."""
    return dream_video(lite0, clip, recipe_for(lite0, clip), tmp_path_factory.mktemp("flow"))


def frames_of(result) -> list[np.ndarray]:
    return [np.asarray(Image.open(path)) for path in result.frames]


def test_probe_describes_the_clip(clip):
    info = probe_video(clip)
    assert (info.frames, info.fps, info.width, info.height, info.has_audio) == (FRAMES, FPS, 64, 48, True)


def test_a_phone_video_turned_by_its_display_matrix_is_read_upright(clip, tmp_path):
    turned = tmp_path / "turned.mp4"
    subprocess.run([FFMPEG, "-v", "error", "-display_rotation", "90", "-i", str(clip), "-c", "copy", str(turned)],
                   check=True)
    info = probe_video(turned)
    assert (info.width, info.height) == (48, 64)
    (_, upright), = read_frames(turned, (64, 48), range(1))
    (_, plain), = read_frames(clip, (48, 64), range(1))
    # the same pixels turned a quarter (which way is the decoder's); chroma siting may differ by a level or two
    differences = sorted(float((upright - plain.transpose(1, 2).flip(d)).abs().mean()) for d in (1, 2))
    assert differences[0] < 2 / 255 < differences[1]


@pytest.mark.parametrize("method", ["dis", "farneback"])
def test_the_flow_recovers_the_shift(clip, method):
    (_, first), (_, second) = read_frames(clip, (48, 64), range(2))
    motion = motion_between(first, second, method)
    # each new pixel came from SHIFT px to its right in the previous frame
    assert np.median(motion.backward[..., 0]) == pytest.approx(SHIFT, abs=0.25)
    assert np.median(motion.backward[..., 1]) == pytest.approx(0, abs=0.25)
    assert motion.trusted.mean() > 0.8
    assert not motion.trusted[:, -SHIFT:].any()  # those pixels came from outside the previous frame
    assert motion.moving.mean() > 0.9


def test_the_carried_detail_moves_with_the_content(clip):
    (_, first), (_, second) = read_frames(clip, (48, 64), range(2))
    motion = motion_between(first, second)
    detail = 0.05 * torch.randn(3, 48, 64, generator=torch.Generator().manual_seed(0))
    dreamed = first + detail  # a dream whose detail is known
    start = carry(first, dreamed, second, motion, VideoSettings(blend_moving=1.0, blend_static=1.0))
    carried = (start - second)[:, 4:-4, 4:-8]
    moved = detail.roll(-SHIFT, dims=2)[:, 4:-4, 4:-8]  # where the content went

    def correlation(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1])

    assert correlation(carried, moved) > 0.8
    assert correlation(carried, detail[:, 4:-4, 4:-8]) < 0.2  # not left where it was


def test_flicker_with_flow_is_well_below_per_frame_dreaming(lite0, clip, flow_run, tmp_path):
    per_frame = dream_video(lite0, clip, recipe_for(lite0, clip, blend_moving=0.0, blend_static=0.0,
                                                   steps_per_frame=CONFIG.iterations), tmp_path)
    assert len(flow_run.flicker) == len(per_frame.flicker) == FRAMES - 1
    assert flow_run.mean_flicker < 0.6 * per_frame.mean_flicker
    assert flow_run.record.extras["video"]["flicker"] == pytest.approx(flow_run.mean_flicker, abs=1e-4)


def test_the_mp4_keeps_the_audio_the_frame_count_and_the_rate(flow_run, clip, tmp_path):
    out = write_mp4(tmp_path / "dream.mp4", flow_run, clip)
    info = probe_video(out)
    assert (info.frames, info.fps, info.has_audio, info.codec) == (FRAMES, FPS, True, "h264")
    assert (info.width, info.height) == (64, 48)
    gif = probe_video(write_gif(tmp_path / "dream.gif", flow_run))
    assert (gif.frames, gif.fps) == (FRAMES, FPS)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dream.gif", "dream.mp4"]  # no part file left


def test_a_frame_step_halves_the_rate_and_keeps_sound_in_step(lite0, clip, tmp_path):
    result = dream_video(lite0, clip, recipe_for(lite0, clip, start=1, step=2), tmp_path / "work")
    assert [read_png_metadata(p)["video_frame"]["source_frame"] for p in result.frames] == [1, 3, 5]
    info = probe_video(write_mp4(tmp_path / "half.mp4", result, clip))
    assert (info.frames, info.fps, info.has_audio) == (3, FPS // 2, True)


def test_cancel_then_resume_gives_the_frames_of_one_run(lite0, clip, flow_run, tmp_path):
    recipe, finished = recipe_for(lite0, clip), []

    def stop_after_two_frames() -> bool:
        return len(finished) >= 2

    def on_step(_step: int, _total: int, preview) -> None:
        if preview is not None:
            finished.append(preview)

    work = tmp_path / "work"
    stopped = dream_video(lite0, clip, recipe, work, on_step, stop_after_two_frames)
    assert stopped.cancelled and len(stopped.frames) == 2
    shorter = probe_video(write_mp4(tmp_path / "short.mp4", stopped, clip))  # what is done still makes a video
    assert (shorter.frames, shorter.has_audio) == (2, True)
    with pytest.raises(ConfigError, match="resume"):
        dream_video(lite0, clip, recipe, work)
    resumed = dream_video(lite0, clip, recipe, work, resume=True)
    assert not resumed.cancelled and len(resumed.frames) == FRAMES
    assert all(np.array_equal(a, b) for a, b in zip(frames_of(resumed), frames_of(flow_run), strict=True))
    assert resumed.flicker == pytest.approx(flow_run.flicker, abs=0)
    with pytest.raises(ConfigError, match="another video dream"):
        dream_video(lite0, clip, recipe_for(lite0, clip, flow="none"), work, resume=True)


def test_a_cut_is_caught_by_the_mask(tmp_path):
    path = tmp_path / "cut.mp4"
    make_clip(path, frames=4, cut_at=2, audio=False)
    frames = [frame for _, frame in read_frames(path, (48, 64), range(4))]
    assert motion_between(frames[0], frames[1]).trusted.mean() > 0.8
    assert motion_between(frames[1], frames[2]).trusted.mean() < 0.2  # the cut


def test_the_recipe_round_trips_and_names_the_source(lite0, clip):
    recipe = recipe_for(lite0, clip, flow="farneback", start=1, stop=5, schedule=((0, "block3"), (3, "block5")))
    again = VideoRecipe.from_json(recipe.to_json())
    assert again == recipe and again.dream.image.sha256 == probe_video(clip).sha256
    assert [again.objective_at(i).layers for i in (1, 2, 3, 4)] == [("block3",)] * 2 + [("block5",)] * 2
    with pytest.raises(ConfigError, match="dream recipe"):
        VideoRecipe.from_json(json.dumps(recipe.dream.to_dict()))


def test_a_recipe_refuses_another_video(lite0, clip, tmp_path):
    other = tmp_path / "other.mp4"
    make_clip(other, frames=3, shift=1, audio=False)
    with pytest.raises(VideoError, match="sha256"):
        dream_video(lite0, other, recipe_for(lite0, clip), tmp_path / "work")
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("text, expected", [("0:48", (0, 48)), ("10:", (10, None)), (":5", (0, 5)), (":", (0, None))])
def test_frame_ranges(text, expected):
    assert video.parse_frame_range(text) == expected


@pytest.mark.parametrize("text", ["5", "4:2", "a:b", "3:3"])
def test_bad_frame_ranges(text):
    with pytest.raises(ConfigError):
        video.parse_frame_range(text)


def test_layer_schedules():
    assert video.parse_schedule("block5") == ((0, "block5"),)
    assert video.parse_schedule("block3,40:block8") == ((0, "block3"), (40, "block8"))
    assert video.parse_schedule("10:block3") == ((0, "block3"), (10, "block3"))
    with pytest.raises(ConfigError):
        video.parse_schedule("block3,,block5")


# ---------------------------------------------------------------- bad input: one line, no output


def _ffmpeg(*args: str) -> None:
    subprocess.run([FFMPEG, "-v", "error", "-y", *args], check=True)


def _vfr(path: Path) -> None:
    """12 fps then 3 fps in one file: a variable frame rate."""
    first, second, listing = path.with_name("a.mkv"), path.with_name("b.mkv"), path.with_name("list.txt")
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=12", "-t", "0.5", "-c:v", "libx264", str(first))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=3", "-t", "1", "-c:v", "libx264", str(second))
    listing.write_text(f"file '{first}'\nfile '{second}'\n")
    _ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(path))


def _unknown_codec(path: Path) -> None:
    """A clip whose codec tag is one ffmpeg has no decoder for."""
    make_clip(path, frames=3, audio=False)
    path.write_bytes(path.read_bytes().replace(b"avc1\x00", b"zzzz\x00"))


def _frameless(path: Path) -> None:
    """A Matroska file cut before its first cluster: a video track, and no frames."""
    _ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=12", "-t", "0.5", "-c:v", "libx264", str(path))
    data = path.read_bytes()
    path.write_bytes(data[:data.index(bytes.fromhex("1f43b675"))])  # the Cluster element's ID


BAD_INPUTS = {
    "frameless.mkv": (_frameless, "not a video ffmpeg can read"),
    "text.mp4": (lambda p: p.write_text("not a video"), "not a video"),
    "empty.mp4": (lambda p: p.write_bytes(b""), "empty"),
    "photo.mp4": (lambda p: Image.new("RGB", (64, 48)).save(p, "PNG"), "still image"),
    "sound.mp4": (lambda p: _ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(p)), "no video stream"),
    "vfr.mkv": (_vfr, "variable frame rate"),
    "wide.mp4": (lambda p: _ffmpeg("-f", "lavfi", "-i", "testsrc=size=1960x16:rate=2", "-t", "1", "-c:v", "libx264",
                                   str(p)), "over the limit of 1920 px"),
    "long.mp4": (lambda p: _ffmpeg("-f", "lavfi", "-i", "testsrc=size=16x16:rate=1", "-t", "61", "-c:v", "libx264",
                                   str(p)), "over the limit of 60 s"),
    "codec.mp4": (_unknown_codec, "cannot decode"),
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_each_bad_input_is_one_line_and_no_output(name, tmp_path, capsys):
    make, message = BAD_INPUTS[name]
    source = tmp_path / name
    make(source)
    out = tmp_path / "out" / "dream.mp4"
    assert main(["video", "--in", str(source), "--out", str(out), "--gif", str(tmp_path / "out" / "d.gif")]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "\n" not in error and message in error
    assert not (tmp_path / "out").exists()


def test_a_file_over_the_size_limit_is_refused(clip, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(video, "MAX_VIDEO_BYTES", 1000)
    assert main(["video", "--in", str(clip), "--out", str(tmp_path / "d.mp4")]) == 2
    assert "over the limit of" in capsys.readouterr().err and not list(tmp_path.iterdir())


def test_no_audio_needs_no_message(lite0, tmp_path):
    path = tmp_path / "silent.mp4"
    make_clip(path, frames=3, audio=False)
    result = dream_video(lite0, path, recipe_for(lite0, path), tmp_path / "work")
    info = probe_video(write_mp4(tmp_path / "out.mp4", result, path))
    assert (info.frames, info.has_audio) == (3, False)


# ---------------------------------------------------------------- the command


FAST = ["--size", "64", "--layer", "block5", "--preset", "quick", "--iterations", "3"]


def test_the_command_writes_video_gif_and_a_recipe_that_replays(clip, tmp_path, capsys):
    out, gif, recipe = tmp_path / "dream.mp4", tmp_path / "dream.gif", tmp_path / "video.json"
    assert main(["video", "--in", str(clip), "--out", str(out), "--gif", str(gif), "--recipe-out", str(recipe),
                 "--frames", "0:4", "--keep-frames", *FAST]) == 0
    said = capsys.readouterr().out
    assert "4 frames of 64x48 px at 12 fps" in said and "flicker" in said and "audio kept" in said
    info = probe_video(out)
    assert (info.frames, info.fps, info.has_audio) == (4, FPS, True)
    assert probe_video(gif).frames == 4
    data = json.loads(recipe.read_text())
    assert data["kind"] == "video" and data["dream"]["image"]["sha256"] == probe_video(clip).sha256
    again = tmp_path / "again.mp4"
    assert main(["video", "--in", str(clip), "--out", str(again), "--recipe", str(recipe), "--keep-frames"]) == 0
    first, second = sorted((tmp_path / "dream.frames").glob("frame-*.png")), \
        sorted((tmp_path / "again.frames").glob("frame-*.png"))
    assert len(first) == len(second) == 4
    assert all(np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b))) for a, b in zip(first, second))


def test_the_command_cleans_up_its_frames_after_a_complete_run(clip, tmp_path, capsys):
    out = tmp_path / "dream.mp4"
    assert main(["video", "--in", str(clip), "--out", str(out), "--frames", "2:4", "--flow", "none", *FAST]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dream.mp4"]


def test_the_command_refuses_bad_settings(clip, tmp_path, capsys):
    for args, message in [(["--out", str(tmp_path / "d.avi")], ".mp4"),
                          (["--out", str(tmp_path / "d.mp4"), "--blend-moving", "2"], "blend"),
                          (["--out", str(tmp_path / "d.mp4"), "--frames", "9:"], "has 6 frames"),
                          (["--out", str(tmp_path / "d.mp4"), "--layer", "0:block5,3:nope"], "nope")]:
        assert main(["video", "--in", str(clip), *args, "--size", "64"]) == 2
        error = capsys.readouterr().err.strip()
        assert error.startswith("error: ") and "\n" not in error and message in error, error
    assert not list(tmp_path.iterdir())
