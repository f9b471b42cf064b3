"""Recipes: a dream as plain JSON, replayable to the same pixels.

Identical pixels hold on the same device and precision, the same kind of CPU (oneDNN picks
other kernels on other CPUs, which round float32 differently) and the same library versions;
every result records all four, and a replayed PNG is compared with its own pixels (ReplayCheck).

A recipe names the model, the objective, the settings and where the image came from
(a bundled sample, noise with a seed, or a file identified by its sha256).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from analysis import labels
from analysis.dream import DreamConfig, DreamResult, OnStep, ShouldCancel, dream
from analysis.errors import ConfigError, ImageError
from analysis.images import MAX_DREAM_SIDE, check_side, load_image, noise_image
from analysis.models import PRECISIONS, LoadedModel, load_model
from analysis.objectives import Objective, objective_from_dict

RECIPE_VERSION = 1


@dataclass
class ImageSource:
    """Where a dream's starting image comes from."""

    kind: str  # "sample" | "noise" | "file"
    name: str = ""  # sample file name or original file name
    size: tuple[int, int] = (224, 224)  # noise size (height, width)
    seed: int = 0  # noise seed
    sha256: str = ""  # of the file's bytes, to check a replay uses the same picture
    data: bytes | None = field(default=None, repr=False)  # uploaded bytes, kept in memory only

    def to_dict(self) -> dict:
        out = {"kind": self.kind}
        if self.kind == "noise":
            out.update(size=list(self.size), seed=self.seed)
        else:
            out.update(name=self.name, sha256=self.sha256)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ImageSource:
        kind = data.get("kind")
        if kind == "noise":
            return cls("noise", size=tuple(data.get("size", (224, 224))), seed=int(data.get("seed", 0)))
        if kind in ("sample", "file"):
            return cls(kind, name=str(data.get("name", "")), sha256=str(data.get("sha256", "")))
        raise ConfigError(f"Unknown image kind '{kind}' in the recipe.")

    @classmethod
    def sample(cls, name: str) -> ImageSource:
        path = _sample_path(name)
        return cls("sample", name=path.name, sha256=hashlib.sha256(path.read_bytes()).hexdigest())

    @classmethod
    def upload(cls, name: str, data: bytes) -> ImageSource:
        return cls("file", name=name, sha256=hashlib.sha256(data).hexdigest(), data=data)

    def load(self, max_side: int, file: Path | None = None) -> torch.Tensor:
        """The start image at most max_side px. For 'file', pass the file (or keep data)."""
        check_side(max_side)
        if self.kind == "noise":
            height, width = self.size
            scale = min(1.0, max_side / max(height, width))
            return noise_image((round(height * scale), round(width * scale)), self.seed)
        if self.kind == "sample":
            raw = _sample_path(self.name).read_bytes()
        elif self.data is not None:
            raw = self.data
        elif file is not None:
            raw = Path(file).read_bytes() if Path(file).is_file() else b""
            if not raw:
                raise ImageError(f"No image file at {file}.")
        else:
            raise ImageError(f"This recipe dreams the file '{self.name}': give it with --image.")
        if self.sha256 and hashlib.sha256(raw).hexdigest() != self.sha256:
            raise ImageError(f"The image is not the one the recipe was made with ({self.name}, sha256 differs).")
        named = io.BytesIO(raw)
        named.name = self.name or "the image"  # errors name the user's file, not "the upload"
        return load_image(named, max_side)


def _sample_path(name: str) -> Path:
    for sample in labels.sample_images():
        if name in (sample.path.name, sample.path.stem, sample.title):
            return sample.path
    known = ", ".join(s.path.name for s in labels.sample_images())
    raise ImageError(f"No bundled sample '{name}'. Samples: {known}.")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_json(text: str | bytes) -> object:
    """Parse an untrusted recipe file: anything that is not JSON is one clear error."""
    try:
        return json.loads(text)
    except UnicodeDecodeError:
        raise ConfigError("The recipe is not a text file (a recipe is JSON; is this an image or a ZIP?).") from None
    except json.JSONDecodeError as err:
        raise ConfigError(f"The recipe is not valid JSON ({err.__class__.__name__}).") from None


@dataclass
class Recipe:
    model: str
    objective: dict
    config: DreamConfig
    image: ImageSource
    max_side: int = 512
    precision: str = "fp32"  # replays give the same pixels only at the same precision

    def to_dict(self) -> dict:
        return {"recipe_version": RECIPE_VERSION, "model": self.model, "objective": self.objective,
                "config": self.config.to_dict(), "image": self.image.to_dict(), "max_side": self.max_side,
                "precision": self.precision}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> Recipe:
        if isinstance(data, dict) and data.get("kind") == "animation":  # an analysis.animation.AnimationRecipe
            raise ConfigError("This is an animation recipe: replay it with 'python -m analysis zoom --recipe'.")
        if isinstance(data, dict) and data.get("kind") == "video":  # an analysis.video.VideoRecipe
            raise ConfigError("This is a video recipe: replay it with 'python -m analysis video --in VIDEO --recipe'.")
        if isinstance(data, dict) and "cells" in data and "model" not in data:  # an analysis.export.GridRecipe
            raise ConfigError("This is a grid recipe (a bundle's recipe.json): replay it with "
                              "'python -m analysis grid --recipe' or on the dashboard's Export page.")
        if not isinstance(data, dict) or "model" not in data:
            raise ConfigError("This is not a dream recipe (no 'model').")
        try:
            version, max_side = int(data.get("recipe_version", RECIPE_VERSION)), int(data.get("max_side", 512))
            if version > RECIPE_VERSION:
                raise ConfigError("This recipe was written by a newer version of the tool.")
            if not 16 <= max_side <= MAX_DREAM_SIDE:
                raise ConfigError(f"Recipe size {max_side} px is out of range (16 to {MAX_DREAM_SIDE}).")
            precision = str(data.get("precision", "fp32"))
            if precision not in PRECISIONS:
                raise ConfigError(f"Unknown precision '{precision}' in the recipe.")
            recipe = cls(model=str(data["model"]), objective=dict(data["objective"]),
                         config=DreamConfig.from_dict(dict(data.get("config", {}))),
                         image=ImageSource.from_dict(dict(data["image"])), max_side=max_side, precision=precision)
        except (KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"The recipe is incomplete or malformed ({err}).") from None
        recipe.build_objective()  # a malformed objective is refused here, not halfway through a run
        return recipe

    @classmethod
    def from_json(cls, text: str | bytes) -> Recipe:
        """From recipe JSON, or from a result PNG, which carries its recipe in its metadata."""
        if isinstance(text, bytes) and text.startswith(PNG_SIGNATURE):
            from analysis.export import read_png_metadata  # export builds on recipes: imported here, not above

            metadata = read_png_metadata(text)
            obstacle = replay_obstacle(metadata)
            if obstacle == "animation":
                raise ConfigError("This is a frame of an animation: replay the animation from its recipe "
                                  "(the Recipe beside its video) with 'python -m analysis zoom --recipe'.")
            if "grid_recipe" in metadata:
                raise ConfigError("This is a grid: replay it with 'python -m analysis grid --recipe' "
                                  "(its bundle ZIP) or on the dashboard's Export page.")
            if obstacle == "no recipe":
                raise ConfigError("This PNG carries no recipe (only dreams made by this tool on one image do).")
            recipe = cls.from_dict(metadata["recipe"])
            if obstacle == "stopped":
                raise ConfigError(f"This dream was stopped after {metadata['steps']} of "
                                  f"{recipe.config.total_steps} steps: its recipe would dream all of them.")
            return recipe
        return cls.from_dict(read_json(text))

    def build_objective(self) -> Objective:
        return objective_from_dict(self.objective)


REPLAY_OBSTACLES = {"animation": "a frame of an animation (its settings are in the PNG metadata)",
                    "no recipe": "made without a recipe", "stopped": "cancelled part-way"}
"""Why a result does not replay from its own recipe, in words, for each replay_obstacle()."""


def replay_obstacle(metadata: dict) -> str | None:
    """Why a result's recipe would not give the result's pixels: "animation" (a frame: its recipe is the
    animation's first dream), "no recipe", "stopped" (cancelled part-way), or None when it replays."""
    recipe = metadata.get("recipe")
    if "animation" in metadata or "video" in metadata:  # a frame: its recipe is the whole animation's or video's
        return "animation"
    if not isinstance(recipe, dict):
        return "no recipe"
    config = recipe.get("config") or {}
    total = config["octaves"] * config["iterations"] if "octaves" in config and "iterations" in config else None
    return "stopped" if metadata.get("steps") not in (None, total) else None


def check_model(recipe: Recipe, model: LoadedModel) -> LoadedModel:
    """The model a replay runs on must be the recipe's, at the recipe's precision, or the pixels differ."""
    if model.name != recipe.model:
        raise ConfigError(f"The recipe is for {recipe.model}, not {model.name}.")
    if model.precision != recipe.precision:
        raise ConfigError(f"This recipe was dreamed in {recipe.precision}, not {model.precision}: replay it in "
                          f"{recipe.precision} (--precision {recipe.precision}, or the sidebar's Precision).")
    return model


def run_recipe(recipe: Recipe, model: LoadedModel | None = None, image_file: Path | None = None,
               on_step: OnStep | None = None, should_cancel: ShouldCancel | None = None) -> DreamResult:
    """Replay a recipe: the original run's pixels where the module docstring says they hold."""
    model = check_model(recipe, model or load_model(recipe.model, precision=recipe.precision))
    image = recipe.image.load(recipe.max_side, image_file)
    result = dream(model, image, recipe.build_objective(), recipe.config, on_step, should_cancel)
    result.metadata["recipe"] = recipe.to_dict()
    return result


@dataclass(frozen=True)
class ReplayCheck:
    """A replayed dream against the PNG it came from."""

    largest_difference: int | None  # in 8-bit levels: 0 is identical; None when the sizes differ
    recorded: str  # where the original ran
    here: str  # where the replay ran

    @property
    def identical(self) -> bool:
        return self.largest_difference == 0

    def describe(self) -> str:
        if self.identical:
            return "identical pixels to the original"
        what = ("a different size" if self.largest_difference is None
                else f"pixels up to {self.largest_difference}/255 away")
        same = "the same machine kind and versions" if self.recorded == self.here else f"{self.recorded}; here {self.here}"
        return f"{what} from the original (made on {same})"


def _machine(metadata: dict) -> str:
    versions = metadata.get("versions") or {}
    return (f"{metadata.get('device', '?')} {metadata.get('precision', 'fp32')}, CPU {metadata.get('cpu', 'not recorded')}, "
            f"torch {versions.get('torch', '?')}, inceptionism {versions.get('inceptionism', '?')}")


def check_replay(original_png: bytes, replayed: DreamResult) -> ReplayCheck:
    """Compare a replay with the PNG whose recipe it ran, and say where each was made."""
    import numpy as np
    from PIL import Image

    from analysis.export import read_png_metadata  # export builds on recipes: imported here, not above
    from analysis.images import tensor_to_pil

    with Image.open(io.BytesIO(original_png)) as picture:
        before = np.asarray(picture.convert("RGB"), dtype=np.int16)
    after = np.asarray(tensor_to_pil(replayed.image), dtype=np.int16)
    largest = int(np.abs(before - after).max()) if before.shape == after.shape else None
    return ReplayCheck(largest, _machine(read_png_metadata(original_png)), _machine(replayed.metadata))
