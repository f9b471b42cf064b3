"""Dream animations: the "endless stream" zoom, and writers for GIF and MP4.

Each frame is dreamed from the previous one after zooming it a little about the centre (and
optionally turning it), so the network keeps hallucinating into the detail it just added,
as in Google's 2015 notebook. Frame i dreams with seed + i, so a run is reproducible from
its AnimationRecipe (the first frame's dream recipe plus the zoom settings, as JSON). A cancel
keeps every finished frame.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from analysis import schemas
from analysis.dream import DreamConfig, dream, run_record
from analysis.errors import ConfigError
from analysis.grids import Grid, GridItem, settings_footnote
from analysis.images import tensor_to_pil
from analysis.objectives import Objective
from analysis.pngmeta import write_file
from analysis.progress import OnStep, Relay, ShouldCancel
from analysis.provenance import RunRecord
from analysis.recipes import RECIPE_VERSION, Recipe, check_model, read_json
from analysis.zoo import LoadedModel, load_model

VIDEO_FORMATS = (".mp4", ".gif")


@dataclass(frozen=True)
class ZoomSettings:
    frames: int = 24
    zoom: float = 0.05  # per frame: 0.05 = 5 % closer each frame
    rotation: float = 0.0  # degrees per frame, counter-clockwise
    fps: int = 12

    def validate(self) -> ZoomSettings:
        """Every value of the right type and in range (the ranges live in analysis.schemas.ZoomSettingsSchema)."""
        schemas.validate(schemas.ZoomSettingsSchema, self.to_dict(), "animation settings", section=("zoom",))
        return self

    def to_dict(self) -> dict:
        return {"frames": self.frames, "zoom": self.zoom, "rotation": self.rotation, "fps": self.fps}

    @classmethod
    def from_dict(cls, data: object) -> ZoomSettings:
        """From a recipe's 'zoom': every value checked, anything else one clear ConfigError."""
        return cls.from_schema(schemas.validate(schemas.ZoomSettingsSchema, data, "animation recipe", ("zoom",)))

    @classmethod
    def from_schema(cls, settings: schemas.ZoomSettingsSchema) -> ZoomSettings:
        return cls(**settings.model_dump())


@dataclass
class Animation:
    frames: list[torch.Tensor]  # each (3, H, W) on the CPU, in [0, 1]
    record: RunRecord  # extras["animation"]: the zoom settings and the frames done
    cancelled: bool = False


def zoom_frame(image: torch.Tensor, zoom: float, rotation: float = 0.0) -> torch.Tensor:
    """Zoom a (3, H, W) picture by 1 + zoom about its centre and turn it by `rotation` degrees.

    Corners uncovered by a rotation are filled by reflection, so no black wedges appear.
    """
    height, width = image.shape[-2:]
    scale = 1.0 + zoom
    angle = math.radians(rotation)
    cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
    # affine_grid works in [-1, 1] per axis: correct for the aspect ratio so turns stay rigid
    theta = torch.tensor([[cos, -sin * height / width, 0.0], [sin * width / height, cos, 0.0]], dtype=image.dtype)
    grid = F.affine_grid(theta[None], [1, 3, height, width], align_corners=False)
    out = F.grid_sample(image[None], grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out[0].clamp(0, 1)


def zoom_dream(model: LoadedModel, start: torch.Tensor, objective: Objective, config: DreamConfig,
               settings: ZoomSettings, on_step: OnStep | None = None,
               should_cancel: ShouldCancel | None = None) -> Animation:
    """Dream `settings.frames` frames, each from the previous one zoomed about the centre.

    on_step(step, total, preview) counts steps over all frames; the preview is each finished
    frame. A cancel stops within one step and keeps the finished frames (cancelled=True).
    """
    settings.validate()
    config.validate()
    schemas.check_seed_range(config.seed, settings.frames)  # before the first frame, not at the one that fails
    per_frame = config.total_steps
    relay = Relay(on_step, settings.frames * per_frame)
    started = time.perf_counter()
    frames: list[torch.Tensor] = []
    frame = start.detach().float().cpu()
    cancelled = False
    for index in range(settings.frames):
        if index:
            frame = zoom_frame(frame, settings.zoom, settings.rotation)
        # the frame's last step is reported below, with the finished frame as the preview
        forward = relay.nth(index, per_frame, previews=False, last=False)
        result = dream(model, frame, objective, replace(config, seed=config.seed + index), forward, should_cancel)
        if result.cancelled:
            cancelled = True
            break
        frame = result.image
        frames.append(frame)
        relay.report((index + 1) * per_frame, frame)
    record = run_record(model, objective.bind(model), config, time.perf_counter() - started,
                        steps_done=len(frames) * per_frame)
    record = record.with_extras(animation={**settings.to_dict(), "frames_done": len(frames),
                                           "seeds": "frame i dreams with seed + i"})
    return Animation(frames, record, cancelled)


@dataclass
class AnimationRecipe:
    """An animation as plain JSON: the first frame's dream recipe (frame i dreams with seed + i) and the zoom."""

    dream: Recipe
    zoom: ZoomSettings

    def __post_init__(self) -> None:
        schemas.check_seed_range(self.dream.config.seed, self.zoom.frames)

    def to_dict(self) -> dict:
        return {"recipe_version": RECIPE_VERSION, "kind": "animation", "zoom": self.zoom.to_dict(),
                "dream": self.dream.to_dict()}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: object) -> AnimationRecipe:
        if isinstance(data, dict) and "model" in data:
            raise ConfigError("This is a dream recipe, not an animation recipe: replay it with "
                              "'python -m analysis dream --recipe'.")
        if not isinstance(data, dict) or data.get("kind") != "animation":
            raise ConfigError("This is not an animation recipe (it needs \"kind\": \"animation\").")
        if not isinstance(data.get("zoom"), dict) or not isinstance(data.get("dream"), dict):
            raise ConfigError("The animation recipe is incomplete: it needs 'zoom' and 'dream' sections.")
        recipe = schemas.validate(schemas.AnimationRecipeFile, data, "animation recipe")
        return cls(Recipe.from_schema(recipe.dream, "animation recipe"), ZoomSettings.from_schema(recipe.zoom))

    @classmethod
    def from_json(cls, text: str | bytes) -> AnimationRecipe:
        return cls.from_dict(read_json(text))

    def finished(self, animation: Animation) -> AnimationRecipe:
        """This recipe cut to the frames a (possibly cancelled) run finished: it replays exactly those."""
        return replace(self, zoom=replace(self.zoom, frames=len(animation.frames)))


def run_animation_recipe(recipe: AnimationRecipe, model: LoadedModel | None = None, on_step: OnStep | None = None,
                         should_cancel: ShouldCancel | None = None) -> Animation:
    """Dream an animation recipe. On the CPU a replay's frames equal the original run's."""
    model = check_model(recipe.dream, model or load_model(recipe.dream.model, precision=recipe.dream.precision))
    start = recipe.dream.image.load(recipe.dream.max_side)
    animation = zoom_dream(model, start, recipe.dream.build_objective(), recipe.dream.config, recipe.zoom,
                           on_step, should_cancel)
    animation.record = replace(animation.record, recipe=recipe.dream.to_dict())
    return animation


def contact_sheet(animation: Animation, count: int = 6, title: str = "") -> Grid:
    """Evenly spaced frames in one labelled row: the animation as a still picture to share."""
    if not animation.frames:
        raise ConfigError("There are no frames yet (it was cancelled before the first frame finished).")
    last, shown = len(animation.frames) - 1, min(count, len(animation.frames))
    picks = sorted({round(i * last / max(1, shown - 1)) for i in range(shown)})
    items = [GridItem(tensor_to_pil(animation.frames[i]), animation.record.with_extras(frame=i + 1), f"frame {i + 1}")
             for i in picks]
    zoom = animation.record.extras.get("animation", {})
    motion = (f"zoom {zoom.get('zoom', 0):g} and rotation {zoom.get('rotation', 0):g} degrees per frame, "
              f"frame i dreams with seed + i")
    return Grid([items], [], [item.title for item in items], title,
                f"{motion} · {settings_footnote([animation.record])}")


# ---------------------------------------------------------------- writers


def _arrays(frames: list[torch.Tensor]) -> list[np.ndarray]:
    if not frames:
        raise ConfigError("There are no frames to write (it was cancelled before the first frame finished).")
    return [np.asarray(tensor_to_pil(frame)) for frame in frames]


def gif_bytes(frames: list[torch.Tensor], fps: float = 12) -> bytes:
    """An endlessly looping GIF (each frame gets its own 256-colour palette).

    GIF delays are whole hundredths of a second, so frame i lasts from round(100 i / fps) to
    round(100 (i + 1) / fps): 12 fps alternates 8 and 9, and the whole keeps the rate (and a
    video's sound) where one rounded delay for all would drift.
    """
    import imageio.v3 as iio

    arrays = _arrays(frames)
    ticks = [round(100 * i / fps) for i in range(len(arrays) + 1)]
    buffer = io.BytesIO()
    durations = [10 * (b - a) for a, b in itertools.pairwise(ticks)]
    iio.imwrite(buffer, np.stack(arrays), extension=".gif", duration=durations, loop=0)
    return buffer.getvalue()


def mp4_bytes(frames: list[torch.Tensor], fps: int = 12) -> bytes:
    """H.264 MP4 (yuv420p, plays everywhere) through imageio-ffmpeg's bundled ffmpeg.

    yuv420p needs even sides, so an odd last row or column is dropped rather than rescaling.
    """
    import imageio.v2 as imageio

    arrays = _arrays(frames)
    height, width = (arrays[0].shape[0] // 2) * 2, (arrays[0].shape[1] // 2) * 2
    if height < 2 or width < 2:
        raise ConfigError("Frames must be at least 2 x 2 px for an MP4.")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dream.mp4"
        writer = imageio.get_writer(path, format="FFMPEG", mode="I", fps=fps, codec="libx264", quality=8,
                                    pixelformat="yuv420p", macro_block_size=1, ffmpeg_log_level="error")
        try:
            for array in arrays:
                writer.append_data(np.ascontiguousarray(array[:height, :width]))
        finally:
            writer.close()
        return path.read_bytes()


def video_bytes(frames: list[torch.Tensor], suffix: str, fps: int = 12) -> bytes:
    suffix = suffix.lower()
    if suffix == ".gif":
        return gif_bytes(frames, fps)
    if suffix == ".mp4":
        return mp4_bytes(frames, fps)
    raise ConfigError(f"Unknown video format '{suffix}': use {' or '.join(VIDEO_FORMATS)}.")


def write_video(path: Path, frames: list[torch.Tensor], fps: int = 12) -> Path:
    """Write frames as .gif or .mp4, chosen by the file name."""
    path = Path(path)
    return write_file(path, video_bytes(frames, path.suffix, fps))
