"""Frame-coherent DeepDream of a video, along the optical flow.

Dreaming each frame on its own makes the picture boil: every frame invents new eyes in new
places. Here the first frame is a full dream and every next frame starts from its source frame
plus the previous dream's detail (dream minus its source) carried along the optical flow, then
takes a short dream (a few steps: the carried detail is most of it). The flow is computed
backward (each new pixel pulls from where it came from); where it cannot be trusted
(occlusions, pixels from outside the frame, cuts: a forward-backward consistency check plus a
colour check) the pixel takes the fresh frame. Moving and static areas carry the detail with
their own weights: a warp blurs a little, so moving areas usually carry less.

Long work behaves: each finished frame is written at once (atomically) as a PNG into a work
folder, a resume continues after the last finished frame, and because each frame carries the
previous frame exactly as its PNG holds it (8 bits), a resumed run gives the very frames of an
uninterrupted one. A cancel keeps the finished frames, which can still be written as a shorter
video. The output is H.264 MP4 (yuv420p) at the source frame rate (divided by the frame step),
with the source's audio for the span dreamed, through imageio-ffmpeg's ffmpeg binary.

Temporal stability is measured on every run: flicker is the mean absolute difference (0-255
levels) between each dreamed frame and the previous dreamed frame warped by the source flow,
over the pixels the flow can be trusted at.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from analysis.dream import DreamConfig, dream, run_record
from analysis.errors import ConfigError, VideoError
from analysis.images import pil_to_tensor, tensor_to_pil
from analysis.objectives import LayerL2, Objective
from analysis.pngmeta import png_bytes, read_png_metadata
from analysis.progress import OnStep, Relay, ShouldCancel
from analysis.provenance import RunRecord
from analysis.recipes import RECIPE_VERSION, ImageSource, Recipe, check_model, read_json
from analysis.zoo import LoadedModel, load_model

MAX_VIDEO_BYTES = 200 * 1024 * 1024
MAX_VIDEO_SECONDS = 60.0
MAX_VIDEO_SIDE = 1920  # the source's longest side, px
MAX_VIDEO_FPS = 120
MAX_FRAME_SIDE = 1024  # the dreamed frames' longest side, px
DEFAULT_FRAME_SIDE = 256
LIMITS_TEXT = (f"videos up to {MAX_VIDEO_SECONDS:g} s, {MAX_VIDEO_SIDE} px on the longest side, "
               f"{MAX_VIDEO_BYTES // 2**20} MB and {MAX_VIDEO_FPS} fps, at a constant frame rate")
FLOWS = ("dis", "farneback", "none")
FRAME_PATTERN = "frame-%06d.png"
RECIPE_FILE = "recipe.json"

# where the flow is trusted: Sundaram et al.'s forward-backward test (also Ruder et al.'s video
# style transfer), plus a colour test that catches cuts, where any flow is nonsense
CONSISTENCY_RELATIVE = 0.01
CONSISTENCY_ABSOLUTE = 0.5  # px^2
COLOUR_TOLERANCE = 0.1  # mean absolute RGB difference in [0, 1] between a pixel and where it came from
MOVING = 0.5  # px: above this flow length a pixel counts as moving


def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# ---------------------------------------------------------------- reading, untrusted


@dataclass(frozen=True)
class VideoInfo:
    """What probe_video learnt about a source: everything later steps rely on was checked."""

    name: str
    sha256: str
    size_bytes: int
    width: int
    height: int
    fps: Fraction
    frames: int
    has_audio: bool
    codec: str

    @property
    def seconds(self) -> float:
        return self.frames / float(self.fps)

    def to_dict(self) -> dict:
        return {"name": self.name, "sha256": self.sha256, "bytes": self.size_bytes, "width": self.width,
                "height": self.height, "fps": str(self.fps), "frames": self.frames,
                "seconds": round(self.seconds, 3), "audio": self.has_audio, "codec": self.codec}


_IMAGE_DEMUXERS = re.compile(r"^(image2|.*_pipe)$")


def _sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _last_ffmpeg_line(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def probe_video(path: Path) -> VideoInfo:
    """Check an untrusted video file and describe it; anything wrong is one VideoError line.

    One ffmpeg pass copies the video packets (no decoding) to list their timestamps: the frame
    count, the frame rate and whether it is constant come from those, not from the container's
    claims. A second, one-frame pass checks ffmpeg can decode the codec.
    """
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"No video file at {path}.")
    size = path.stat().st_size
    if size == 0:
        raise VideoError(f"{path.name} is empty.")
    if size > MAX_VIDEO_BYTES:
        raise VideoError(f"{path.name} is {size / 2**20:.0f} MB, over the limit of {MAX_VIDEO_BYTES // 2**20} MB.")
    try:
        done = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path), "-map", "0:v:0", "-c", "copy",
                               "-f", "framecrc", "-"],
                              check=False, capture_output=True, text=True, errors="replace", timeout=120)
    except subprocess.TimeoutExpired:
        raise VideoError(f"{path.name}: ffmpeg took over 2 minutes just to list its frames.") from None
    header = re.search(r"Input #0, ([^,]+)", done.stderr)
    if header is None:
        raise VideoError(f"{path.name} is not a video ffmpeg can read ({_last_ffmpeg_line(done.stderr)}).")
    if _IMAGE_DEMUXERS.match(header.group(1)):
        raise VideoError(f"{path.name} is a still image, not a video.")
    stream = re.search(r"Stream #0:\d+\S*: Video: (\w+)", done.stderr)
    if stream is None:
        raise VideoError(f"{path.name} has no video stream: there are no frames to dream.")
    has_audio = re.search(r"Stream #0:\d+\S*: Audio:", done.stderr) is not None
    packets = sorted(int(m.group(1)) for m in re.finditer(r"^0,\s*-?\d+,\s*(-?\d+),", done.stdout, re.MULTILINE))
    if not packets:
        raise VideoError(f"{path.name} has no frames.")
    dimensions = re.search(r"^#dimensions 0: (\d+)x(\d+)", done.stdout, re.MULTILINE)
    base = re.search(r"^#tb 0: (\d+)/(\d+)", done.stdout, re.MULTILINE)
    if dimensions is None or base is None:
        raise VideoError(f"{path.name}: ffmpeg could not tell its frame size or time base.")
    width, height = int(dimensions.group(1)), int(dimensions.group(2))
    turn = re.search(r"rotation of (-?[\d.]+) degrees", done.stderr[stream.start():])
    if turn is not None and round(float(turn.group(1))) % 180 == 90:  # a phone's upright video: ffmpeg turns it
        width, height = height, width
    if width < 2 or height < 2:
        raise VideoError(f"{path.name} has frames of {width}x{height} px: too small to dream.")
    if max(width, height) > MAX_VIDEO_SIDE:
        raise VideoError(f"{path.name} is {width}x{height} px, over the limit of {MAX_VIDEO_SIDE} px on the "
                         f"longest side: scale it down first.")
    fps = _constant_rate(path.name, packets, Fraction(int(base.group(1)), int(base.group(2))), done.stderr)
    if not 0 < fps <= MAX_VIDEO_FPS:
        raise VideoError(f"{path.name} runs at {float(fps):.3g} fps, outside 0 to {MAX_VIDEO_FPS} fps.")
    info = VideoInfo(path.name, _sha256(path), size, width, height, fps, len(packets), has_audio, stream.group(1))
    if info.seconds > MAX_VIDEO_SECONDS:
        raise VideoError(f"{path.name} lasts {info.seconds:.1f} s, over the limit of {MAX_VIDEO_SECONDS:g} s: "
                         f"cut it first.")
    decode = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0",
                             "-frames:v", "1", "-f", "null", "-"],
                            check=False, capture_output=True, text=True, errors="replace", timeout=120)
    if decode.returncode != 0:
        raise VideoError(f"{path.name}: ffmpeg cannot decode its video codec ({info.codec}: "
                         f"{_last_ffmpeg_line(decode.stderr)}).")
    return info


def _constant_rate(name: str, pts: list[int], time_base: Fraction, stderr: str) -> Fraction:
    """Frames per second from the packet timestamps; refuses a variable rate.

    A constant rate may still jitter by one tick of the time base (12 fps in a GIF's 1/100 s
    ticks alternates 8 and 9), so a frame may sit one tick plus 1% off the mean interval.
    """
    if len(pts) < 2:
        claimed = re.search(r"Video: .*?, ([\d.]+) fps", stderr)
        return Fraction(claimed.group(1)).limit_denominator(1001) if claimed else Fraction(25)
    gaps = np.diff(np.asarray(pts, dtype=np.float64))
    mean = (pts[-1] - pts[0]) / (len(pts) - 1)
    if mean <= 0 or np.abs(gaps - mean).max() > 1 + 0.01 * mean:
        shortest, longest = (float(g * time_base) for g in (gaps.min(), gaps.max()))
        raise VideoError(f"{name} has a variable frame rate (frames {shortest * 1000:.0f} to {longest * 1000:.0f} ms "
                         f"apart): convert it to a constant rate first, e.g. ffmpeg -i IN -fps_mode cfr -r 25 OUT.mp4.")
    measured = 1 / (Fraction(mean) * time_base)
    for rate in (Fraction(round(measured)), Fraction(round(measured * Fraction(1001, 1000)) * 1000, 1001)):
        expected = pts[0] + np.arange(len(pts)) / float(rate * time_base)  # a GIF's 12 fps is 12, not 11.96
        if rate > 0 and np.abs(np.asarray(pts) - expected).max() <= 1 + 0.01 * mean:
            return rate
    return measured.limit_denominator(1001)


def frame_size(info: VideoInfo, max_side: int) -> tuple[int, int]:
    """(height, width) of the dreamed frames: at most max_side, never enlarged, even sides (for yuv420p)."""
    if not 32 <= max_side <= MAX_FRAME_SIDE:
        raise ConfigError(f"Frame size {max_side} px is out of range (32 to {MAX_FRAME_SIDE}).")
    scale = min(1.0, max_side / max(info.width, info.height))
    return max(2, round(info.height * scale / 2) * 2), max(2, round(info.width * scale / 2) * 2)


def read_frames(path: Path, size: tuple[int, int], indices: range) -> Iterator[tuple[int, torch.Tensor]]:
    """(source index, (3, H, W) frame in [0, 1]) for the chosen frames, decoded and scaled by ffmpeg.

    Every packet becomes one frame (passthrough), so indices mean what probe_video counted.
    """
    height, width = size
    command = [_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0",
               "-fps_mode", "passthrough", "-vf", f"scale={width}:{height}:flags=area", "-pix_fmt", "rgb24",
               "-f", "rawvideo", "-"]
    if not len(indices):
        return
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    frame_bytes = height * width * 3
    try:
        assert process.stdout is not None
        for index in range(indices[-1] + 1):
            raw = process.stdout.read(frame_bytes)
            if len(raw) < frame_bytes:
                stderr = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise VideoError(f"{Path(path).name}: ffmpeg stopped at frame {index} "
                                 f"({_last_ffmpeg_line(stderr)}).")
            if index in indices:
                array = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)
                yield index, torch.from_numpy(array.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()
    finally:
        process.kill()
        process.wait()
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


# ---------------------------------------------------------------- settings and recipe


@dataclass(frozen=True)
class VideoSettings:
    """How the frames are chosen and how each one carries the last: everything a replay needs beside the dream."""

    flow: str = "dis"  # dis | farneback | none (plain blending with the previous dream)
    blend_moving: float = 0.7  # share of the carried detail kept where the content moves
    blend_static: float = 0.9  # ... and where it stands still (and, with flow none, everywhere)
    steps_per_frame: int = 1  # steps per octave for every frame after the first (the carried detail is most of it)
    start: int = 0  # first source frame
    stop: int | None = None  # source frame to stop before (None: the end)
    step: int = 1  # every step-th source frame
    schedule: tuple[tuple[int, str], ...] = ()  # (from source frame, layer); empty: the dream recipe's objective

    def validate(self) -> VideoSettings:
        starts = [start for start, _ in self.schedule]
        checks = [
            (self.flow in FLOWS, f"flow must be one of {', '.join(FLOWS)}"),
            (0 <= self.blend_moving <= 1 and 0 <= self.blend_static <= 1, "blend weights must be 0 to 1"),
            (1 <= self.steps_per_frame <= 500, "steps per frame must be 1 to 500"),
            (self.start >= 0, "the first frame must be 0 or more"),
            (self.stop is None or self.stop > self.start, "the frame range A:B needs B above A"),
            (1 <= self.step <= 1000, "the frame step must be 1 to 1000"),
            (starts == sorted(set(starts)) and all(s >= 0 for s in starts),
             "the layer schedule's frames must rise from 0 or more"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"Invalid video setting: {message}.")
        return self

    def indices(self, frames: int) -> range:
        """The source frames to dream, within a video of `frames` frames."""
        if self.start >= frames:
            raise ConfigError(f"The frame range starts at frame {self.start}, but the video has {frames} frames.")
        return range(self.start, min(frames, self.stop if self.stop is not None else frames), self.step)

    def layer_at(self, index: int) -> str | None:
        """The scheduled layer for source frame `index` (None: the recipe's objective)."""
        chosen = None
        for start, layer in self.schedule:
            if start <= index:
                chosen = layer
        return chosen

    def to_dict(self) -> dict:
        return {"flow": self.flow, "blend_moving": self.blend_moving, "blend_static": self.blend_static,
                "steps_per_frame": self.steps_per_frame, "start": self.start, "stop": self.stop, "step": self.step,
                "schedule": [[start, layer] for start, layer in self.schedule]}

    @classmethod
    def from_dict(cls, data: dict) -> VideoSettings:
        try:
            stop = data.get("stop")
            settings = cls(str(data.get("flow", "dis")), float(data.get("blend_moving", 0.7)),
                           float(data.get("blend_static", 0.9)), int(data.get("steps_per_frame", 1)),
                           int(data.get("start", 0)), None if stop is None else int(stop), int(data.get("step", 1)),
                           tuple((int(start), str(layer)) for start, layer in data.get("schedule", [])))
        except (TypeError, ValueError, OverflowError) as err:
            raise ConfigError(f"The video recipe's settings are malformed ({err}).") from None
        return settings.validate()


def parse_frame_range(text: str) -> tuple[int, int | None]:
    """'A:B' (either side may be empty) as (start, stop): source frames A up to, not including, B."""
    match = re.fullmatch(r"\s*(\d*)\s*:\s*(\d*)\s*", text or "")
    if match is None:
        raise ConfigError(f"Frame range '{text}' is not A:B (e.g. 0:48, 10:, :100).")
    start = int(match.group(1)) if match.group(1) else 0
    stop = int(match.group(2)) if match.group(2) else None
    if stop is not None and stop <= start:
        raise ConfigError(f"Frame range '{text}' is empty: B must be above A.")
    return start, stop


def parse_schedule(text: str) -> tuple[tuple[int, str], ...]:
    """'block5' (one layer) or 'block5,40:block8' (from source frame 40 on, block8): (start, layer) pairs."""
    pairs: list[tuple[int, str]] = []
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            raise ConfigError(f"Layer schedule '{text}' has an empty entry.")
        start, colon, layer = part.rpartition(":")
        if not colon:
            start, layer = "0" if not pairs else "", part
        if not start.strip().isdigit() or not layer.strip():
            raise ConfigError(f"Layer schedule entry '{part}' is not FRAME:LAYER (e.g. 0:block5,40:block8).")
        pairs.append((int(start), layer.strip()))
    if pairs and pairs[0][0] != 0:
        pairs.insert(0, (0, pairs[0][1]))
    return tuple(pairs)


@dataclass
class VideoRecipe:
    """A video dream as plain JSON: the dream (its image source is the video, by sha256) and the video settings."""

    dream: Recipe
    video: VideoSettings

    def to_dict(self) -> dict:
        return {"recipe_version": RECIPE_VERSION, "kind": "video", "video": self.video.to_dict(),
                "dream": self.dream.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: object) -> VideoRecipe:
        if isinstance(data, dict) and "model" in data:
            raise ConfigError("This is a dream recipe, not a video recipe: replay it with "
                              "'python -m analysis dream --recipe'.")
        if isinstance(data, dict) and data.get("kind") == "animation":
            raise ConfigError("This is an animation recipe: replay it with 'python -m analysis zoom --recipe'.")
        if not isinstance(data, dict) or data.get("kind") != "video":
            raise ConfigError("This is not a video recipe (it needs \"kind\": \"video\").")
        version = data.get("recipe_version", RECIPE_VERSION)
        if not isinstance(version, int) or version > RECIPE_VERSION:
            raise ConfigError("This video recipe was written by a newer version of the tool, or is malformed.")
        if not isinstance(data.get("video"), dict) or not isinstance(data.get("dream"), dict):
            raise ConfigError("The video recipe is incomplete: it needs 'video' and 'dream' sections.")
        recipe = cls(Recipe.from_dict(data["dream"]), VideoSettings.from_dict(data["video"]))
        if recipe.dream.image.kind != "file" or not recipe.dream.image.sha256:
            raise ConfigError("The video recipe's source must be a file identified by its sha256.")
        return recipe

    @classmethod
    def from_json(cls, text: str | bytes) -> VideoRecipe:
        return cls.from_dict(read_json(text))

    def finished(self, result: VideoDream) -> VideoRecipe:
        """This recipe cut to the frames a (possibly cancelled) run finished: it replays exactly those."""
        done = len(result.frames)
        if not done:
            return self
        return replace(self, video=replace(self.video, stop=self.video.start + (done - 1) * self.video.step + 1))

    def objective_at(self, index: int) -> Objective:
        layer = self.video.layer_at(index)
        return LayerL2(layer) if layer else self.dream.build_objective()


def video_recipe(model: LoadedModel, info: VideoInfo, objective: Objective, config: DreamConfig,
                 settings: VideoSettings, max_side: int = DEFAULT_FRAME_SIDE) -> VideoRecipe:
    """The recipe of a new video dream; every scheduled layer is checked against the model here."""
    for _, layer in settings.validate().schedule:
        model.layer(layer)
    source = ImageSource("file", name=info.name, sha256=info.sha256)
    return VideoRecipe(Recipe(model.name, objective.bind(model).to_dict(), config.validate(), source, max_side,
                              model.precision), settings)


# ---------------------------------------------------------------- flow, carrying, flicker


@dataclass
class Motion:
    """The source flow between two frames, as numpy (H, W, 2) arrays in pixels."""

    backward: np.ndarray  # at each pixel of the new frame: where it came from in the previous one (offset)
    trusted: np.ndarray  # (H, W) bool: the flow passed the consistency and colour checks
    moving: np.ndarray  # (H, W) bool: the content moved more than MOVING px


def _grey(frame: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray((frame.permute(1, 2, 0).numpy() @ np.float32([0.299, 0.587, 0.114]) * 255)
                                .round().clip(0, 255).astype(np.uint8))


def optical_flow(first: torch.Tensor, second: torch.Tensor, method: str = "dis") -> np.ndarray:
    """Flow from `first` to `second` (OpenCV): first(p) matches second(p + flow(p))."""
    import cv2

    a, b = _grey(first), _grey(second)
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)
    if method == "farneback":
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.2, 0)
    raise ConfigError(f"Unknown flow '{method}': use dis or farneback.")


def _sample_at(array: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """array (H, W[, C]) read at p + flow(p), bilinear, edges repeated."""
    import cv2

    height, width = flow.shape[:2]
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return cv2.remap(np.ascontiguousarray(array, dtype=np.float32), xs + flow[..., 0], ys + flow[..., 1],
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def warp(image: torch.Tensor, backward: np.ndarray) -> torch.Tensor:
    """Move a (3, H, W) picture along the backward flow: each pixel pulls from where it came from."""
    moved = _sample_at(image.permute(1, 2, 0).numpy(), backward)
    return torch.from_numpy(moved.reshape(image.shape[1], image.shape[2], 3)).permute(2, 0, 1).contiguous()


def motion_between(previous: torch.Tensor, current: torch.Tensor, method: str = "dis") -> Motion:
    """Backward flow from `current` to `previous`, and where it can be trusted.

    Untrusted: pixels whose backward and forward flows do not cancel (occlusions and
    disocclusions), that come from outside the frame, or whose colour differs from where they
    came from (a cut, where any flow is a guess).
    """
    backward = optical_flow(current, previous, method)
    forward = optical_flow(previous, current, method)
    forward_there = _sample_at(forward, backward)
    round_trip = ((backward + forward_there) ** 2).sum(-1)
    lengths = (backward ** 2).sum(-1) + (forward_there ** 2).sum(-1)
    consistent = round_trip <= CONSISTENCY_RELATIVE * lengths + CONSISTENCY_ABSOLUTE
    height, width = backward.shape[:2]
    xs, ys = np.meshgrid(np.arange(width), np.arange(height))
    inside = ((xs + backward[..., 0] >= 0) & (xs + backward[..., 0] <= width - 1)
              & (ys + backward[..., 1] >= 0) & (ys + backward[..., 1] <= height - 1))
    colour = (warp(previous, backward) - current).abs().mean(0).numpy()
    trusted = consistent & inside & (colour <= COLOUR_TOLERANCE)
    moving = np.sqrt((backward ** 2).sum(-1)) > MOVING
    return Motion(backward, trusted, moving)


def carry(previous_source: torch.Tensor, previous_dream: torch.Tensor, source: torch.Tensor, motion: Motion,
          settings: VideoSettings) -> torch.Tensor:
    """The start of the next frame's short dream.

    With flow: the source frame plus the previous dream's detail moved along the flow, weighted
    by blend_moving or blend_static, and nothing carried where the flow is not trusted. Without
    (flow none): plain blending, (1 - blend_static) of the frame and blend_static of the previous dream.
    """
    if settings.flow == "none":
        return ((1 - settings.blend_static) * source + settings.blend_static * previous_dream).clamp(0, 1)
    detail = warp(previous_dream - previous_source, motion.backward)
    weight = np.where(motion.moving, settings.blend_moving, settings.blend_static) * motion.trusted
    return (source + torch.from_numpy(weight.astype(np.float32))[None] * detail).clamp(0, 1)


def flicker(dream_now: torch.Tensor, dream_before: torch.Tensor, motion: Motion) -> float:
    """Mean absolute difference (0-255) between a dreamed frame and the previous one moved along the
    source flow, over the trusted pixels: how much the dream itself changed, the content's motion aside."""
    if not motion.trusted.any():
        return 0.0
    difference = (dream_now - warp(dream_before, motion.backward)).abs().mean(0).numpy()
    return float(difference[motion.trusted].mean() * 255)


# ---------------------------------------------------------------- the run


@dataclass
class VideoDream:
    frames: list[Path]  # the finished frames' PNGs, in order
    info: VideoInfo
    recipe: VideoRecipe
    flicker: list[float]  # frame 1 on (each against the one before)
    trusted: list[float]  # share of pixels whose flow is trusted, frame 1 on
    record: RunRecord = field(default_factory=RunRecord)  # extras["video"]: the settings, source and flicker
    cancelled: bool = False
    total_frames: int = 0  # frames the run was asked for

    @property
    def mean_flicker(self) -> float | None:
        return float(np.mean(self.flicker)) if self.flicker else None

    @property
    def fps(self) -> Fraction:
        """The output's rate: the source's, divided by the frame step, so sound and picture stay in step."""
        return self.info.fps / self.recipe.video.step

    def load(self, index: int) -> torch.Tensor:
        return pil_to_tensor(Image.open(self.frames[index]))


def _atomic_write(path: Path, data: bytes) -> None:
    part = path.with_name(f".{path.name}.part")
    part.write_bytes(data)
    os.replace(part, path)


def _quantised(image: torch.Tensor) -> torch.Tensor:
    """The frame as its PNG holds it: carrying this (not the float dream) makes a resume exact."""
    return pil_to_tensor(tensor_to_pil(image))


def _finished_frames(work: Path) -> list[Path]:
    frames = []
    while (work / (FRAME_PATTERN % len(frames))).is_file():
        frames.append(work / (FRAME_PATTERN % len(frames)))
    return frames


def _open_work(work: Path, recipe: VideoRecipe, resume: bool) -> list[Path]:
    """The work folder's finished frames (resume), after checking they are this recipe's."""
    work.mkdir(parents=True, exist_ok=True)
    marker = work / RECIPE_FILE
    frames = _finished_frames(work)
    if marker.is_file():
        try:
            same = json.loads(marker.read_text()) == json.loads(recipe.to_json())
        except (json.JSONDecodeError, UnicodeDecodeError):
            same = False
        if frames and not same:
            raise ConfigError(f"The work folder {work} holds frames of another video dream (other settings or "
                              f"source): pick another folder, or delete it to start over.")
        if frames and not resume:
            raise ConfigError(f"The work folder {work} already holds {len(frames)} finished frames: resume "
                              f"(--resume) to continue after them, or delete the folder to start over.")
    elif frames:
        raise ConfigError(f"The work folder {work} holds frames but no {RECIPE_FILE}: pick an empty folder.")
    _atomic_write(marker, recipe.to_json().encode())
    return frames


def dream_video(model: LoadedModel, source: Path, recipe: VideoRecipe, work: Path, on_step: OnStep | None = None,
                should_cancel: ShouldCancel | None = None, resume: bool = False) -> VideoDream:
    """Dream a video frame by frame into the work folder (one PNG per frame, written as it finishes).

    on_step(step, total, preview) counts steps over all frames; the preview is each finished
    frame. A cancel stops within one step and keeps the finished frames (cancelled=True).
    resume=True continues after the last finished frame, with the same frames as one run.
    """
    check_model(recipe.dream, model)
    info = probe_video(source)
    if info.sha256 != recipe.dream.image.sha256:
        raise VideoError(f"{info.name} is not the video the recipe was made with ({recipe.dream.image.name}, "
                         f"sha256 differs).")
    settings, config = recipe.video.validate(), recipe.dream.config
    indices = settings.indices(info.frames)
    size = frame_size(info, recipe.dream.max_side)
    for index in indices:
        recipe.objective_at(index).bind(model)  # an unknown layer is refused before any work
    work = Path(work)
    frames = _open_work(work, recipe, resume)
    short = replace(config, iterations=settings.steps_per_frame)
    relay = Relay(on_step, config.total_steps + (len(indices) - 1) * short.total_steps)
    flickers, trusted = [], []
    for path in frames[1:]:
        meta = read_png_metadata(path).get("video_frame", {})
        flickers.append(float(meta.get("flicker", 0.0)))
        trusted.append(float(meta.get("trusted", 0.0)))
    method = settings.flow if settings.flow != "none" else "dis"  # flow none still measures flicker along the flow
    started = time.perf_counter()
    cancelled = False
    previous_source = previous_dream = None
    objective = recipe.objective_at(indices[0])
    for position, (index, frame) in enumerate(read_frames(source, size, indices)):
        steps_before = 0 if position == 0 else config.total_steps + (position - 1) * short.total_steps
        if position < len(frames):
            if position == len(frames) - 1:  # the last finished frame: carry it, and count the work done
                previous_source, previous_dream = frame, pil_to_tensor(Image.open(frames[position]))
                relay.report(steps_before + (config if position == 0 else short).total_steps, previous_dream)
            continue
        if should_cancel is not None and should_cancel():
            cancelled = True
            break
        objective = recipe.objective_at(index)
        if position == 0:
            start, motion, frame_config = frame, None, config
        else:
            motion = motion_between(previous_source, frame, method)
            start = carry(previous_source, previous_dream, frame, motion, settings)
            frame_config = replace(short, seed=config.seed + position)
        # the frame's last step is reported below, with the finished frame as the preview
        forward = relay.part(steps_before, frame_config.total_steps, previews=False, last=False)
        result = dream(model, start, objective, frame_config, forward, should_cancel)
        if result.cancelled:
            cancelled = True
            break
        dreamed = _quantised(result.image)
        stats = {"frame": position, "source_frame": index, "layer": result.record.layers,
                 "seed": frame_config.seed, "steps": frame_config.total_steps}
        if motion is not None:
            flickers.append(flicker(dreamed, previous_dream, motion))
            trusted.append(float(motion.trusted.mean()))
            stats.update(flicker=flickers[-1], trusted=trusted[-1])
        path = work / (FRAME_PATTERN % position)
        _atomic_write(path, png_bytes(dreamed, {"video_frame": stats, "video_recipe": recipe.to_dict()}))
        frames.append(path)
        previous_source, previous_dream = frame, dreamed
        relay.report(steps_before + frame_config.total_steps, dreamed)
    steps_done = (config.total_steps + (len(frames) - 1) * short.total_steps) if frames else 0
    record = run_record(model, objective.bind(model), config, time.perf_counter() - started, steps_done)
    result = VideoDream(frames, info, recipe, flickers, trusted, replace(record, recipe=recipe.to_dict()), cancelled,
                        len(indices))
    result.record = result.record.with_extras(video={
        **settings.to_dict(), "source": info.to_dict(), "frames_done": len(frames), "frames_asked": len(indices),
        "size": list(size), "fps": str(result.fps),
        "flicker": None if result.mean_flicker is None else round(result.mean_flicker, 4),
        "seeds": "frame i dreams with seed + i"})
    return result


def run_video_recipe(recipe: VideoRecipe, source: Path, work: Path, model: LoadedModel | None = None,
                     on_step: OnStep | None = None, should_cancel: ShouldCancel | None = None,
                     resume: bool = False) -> VideoDream:
    """Replay a video recipe on its source (checked by sha256). On the CPU the frames equal the original run's."""
    model = check_model(recipe.dream, model or load_model(recipe.dream.model, precision=recipe.dream.precision))
    return dream_video(model, source, recipe, work, on_step, should_cancel, resume)


# ---------------------------------------------------------------- a clip to try it on


def pan_clip(out: Path, photo: Path, frames: int = 24, shift: int = 2, size: tuple[int, int] = (192, 144),
             fps: int = 12, tone_hz: float | None = 440.0) -> Path:
    """A demo clip with known motion: a (width, height) window sliding `shift` px a frame to the right
    across a photo (so the content moves left), as H.264 with a sine tone for its sound.

    For a page or a test that has no video at hand; the flow should find `shift` everywhere.
    """
    if not (2 <= frames <= 600 and 0 <= shift <= 16 and 1 <= fps <= 60 and min(size) >= 16):
        raise ConfigError("Demo clip: 2 to 600 frames, a shift of 0 to 16 px, 1 to 60 fps, sides of 16 px or more.")
    width, height = (side // 2 * 2 for side in size)
    picture = Image.open(photo).convert("RGB")
    factor = max((16 + frames * shift + width) / picture.width, (16 + height) / picture.height)
    canvas = np.asarray(picture.resize((round(picture.width * factor), round(picture.height * factor)),
                                       Image.Resampling.LANCZOS))
    raw = b"".join(np.ascontiguousarray(canvas[8:8 + height, 8 + i * shift:8 + i * shift + width]).tobytes()
                   for i in range(frames))
    command = [_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{width}x{height}", "-r", str(fps), "-i", "-"]
    if tone_hz:
        command += ["-f", "lavfi", "-i", f"sine=frequency={tone_hz}:sample_rate=22050:duration={frames / fps}",
                    "-c:a", "aac"]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(out)
    command += ["-c:v", "libx264", "-crf", "12", "-pix_fmt", "yuv420p", "-shortest", "-f", "mp4", str(part)]
    try:
        done = subprocess.run(command, input=raw, check=False, capture_output=True, timeout=600)
        if done.returncode != 0:
            raise VideoError(f"ffmpeg could not write the demo clip ({_last_ffmpeg_line(done.stderr.decode())}).")
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------- writing


def _part_path(out: Path) -> Path:
    return out.with_name(f".{out.name}.part")


def write_mp4(out: Path, result: VideoDream, source: Path | None = None) -> Path:
    """H.264 MP4 (yuv420p) of the finished frames at result.fps, with the source's audio for the
    span they cover. Written to a hidden part file and moved into place only when complete."""
    if not result.frames:
        raise ConfigError("There are no frames to write (it was cancelled before the first frame finished).")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(out)
    fps = result.fps
    command = [_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-y",
               "-framerate", f"{fps.numerator}/{fps.denominator}", "-start_number", "0",
               "-i", str(result.frames[0].parent / FRAME_PATTERN)]
    audio = source is not None and result.info.has_audio
    if audio:
        start = result.recipe.video.start / result.info.fps
        span = len(result.frames) / fps
        command += ["-ss", f"{float(start):.6f}", "-t", f"{float(span):.6f}", "-i", str(source),
                    "-map", "0:v:0", "-map", "1:a:0", "-c:a", "aac", "-b:a", "160k"]
    command += ["-frames:v", str(len(result.frames)), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18",
                "-movflags", "+faststart", "-f", "mp4", str(part)]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, errors="replace", timeout=1800)
        if done.returncode != 0:
            raise VideoError(f"ffmpeg could not write {out.name} ({_last_ffmpeg_line(done.stderr)}).")
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    return out


def write_gif(out: Path, result: VideoDream) -> Path:
    """An endlessly looping GIF of the finished frames, moved into place only when complete."""
    from analysis.animation import gif_bytes

    if not result.frames:
        raise ConfigError("There are no frames to write (it was cancelled before the first frame finished).")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = gif_bytes([result.load(i) for i in range(len(result.frames))], float(result.fps))
    _atomic_write(out, data)
    return out
