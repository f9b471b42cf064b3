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
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from analysis import labels, schemas
from analysis.dream import DreamConfig, DreamResult, dream_batch
from analysis.errors import ConfigError, ImageError
from analysis.images import check_side, file_sha256, load_image, noise_image, read_verified
from analysis.objectives import Objective, objective_from_dict
from analysis.pngmeta import read_png_metadata, read_png_record
from analysis.progress import OnStep, ShouldCancel
from analysis.provenance import RunRecord
from analysis.zoo import LOGITS, LoadedModel, get_spec, layer_table, load_model

RECIPE_VERSION = schemas.RECIPE_VERSION


@dataclass
class ImageSource:
    """Where a dream's starting image comes from."""

    kind: str  # "sample" | "noise" | "file"
    name: str = ""  # sample file name or original file name
    size: tuple[int, int] = (224, 224)  # noise size (height, width)
    seed: int = 0  # noise seed
    sha256: str = ""  # of the file's bytes, to check a replay uses the same picture
    data: bytes | None = field(default=None, repr=False)  # uploaded bytes, kept in memory only
    path: Path | None = field(default=None, repr=False, compare=False)  # a file on disk, checked when loaded

    def to_dict(self) -> dict:
        out = {"kind": self.kind}
        if self.kind == "noise":
            out.update(size=list(self.size), seed=self.seed)
        else:
            out.update(name=self.name, sha256=self.sha256)
        return out

    @classmethod
    def from_dict(cls, data: object) -> ImageSource:
        return cls.from_schema(schemas.validate(schemas.StartImage, data, "recipe", section=("image",)))

    @classmethod
    def from_schema(cls, image: schemas.NoiseImage | schemas.SampleImage | schemas.FileImage) -> ImageSource:
        if isinstance(image, schemas.NoiseImage):
            return cls("noise", size=(image.size[0], image.size[1]), seed=image.seed)
        return cls(image.kind, name=image.name, sha256=image.sha256)

    @classmethod
    def sample(cls, name: str) -> ImageSource:
        path = _sample_path(name)
        return cls("sample", name=path.name, sha256=file_sha256(path))

    @classmethod
    def upload(cls, name: str, data: bytes) -> ImageSource:
        return cls("file", name=name, sha256=hashlib.sha256(data).hexdigest(), data=data)

    @classmethod
    def file(cls, path: Path) -> ImageSource:
        """A photo on disk, named in a recipe by its base name and sha256 (hashed while streaming)."""
        path = Path(path)
        return cls("file", name=path.name, sha256=file_sha256(path), path=path)

    def at(self, path: Path | None) -> ImageSource:
        """A recipe's photo found at path (a replay's --image): checked against the sha256 when loaded.
        Only a 'file' source reads a file; the others come back as they are."""
        return replace(self, path=Path(path)) if self.kind == "file" and path is not None else self

    def load(self, max_side: int) -> torch.Tensor:
        """The start image at most max_side px; a 'file' comes from its data or its path, checked by sha256."""
        check_side(max_side)
        if self.kind == "noise":
            height, width = self.size
            scale = min(1.0, max_side / max(height, width))
            return noise_image((max(1, round(height * scale)), max(1, round(width * scale))), self.seed)
        if self.kind == "sample":
            raw = read_verified(_sample_path(self.name), self.sha256, self.name)
        elif self.data is not None:
            raw = self.data
            if self.sha256 and hashlib.sha256(raw).hexdigest() != self.sha256:
                raise ImageError(f"The image is not the one the recipe was made with ({self.name}, sha256 differs).")
        elif self.path is not None:
            raw = read_verified(self.path, self.sha256, self.name)
        else:
            raise ImageError(f"This recipe dreams the file '{self.name}': give it with --image.")
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


def read_json(text: str | bytes, label: str = "recipe") -> object:
    """Parse an untrusted recipe file: too large, too deep or not JSON is one clear error."""
    return schemas.parse_json(text, label)


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
        if isinstance(data, dict) and "cells" in data and "model" not in data:  # an analysis.grids.GridRecipe
            raise ConfigError("This is a grid recipe (a bundle's recipe.json): replay it with "
                              "'python -m analysis grid --recipe' or on the dashboard's Export page.")
        if not isinstance(data, dict) or "model" not in data:
            raise ConfigError("This is not a dream recipe (no 'model').")
        return cls.from_schema(schemas.validate(schemas.DreamRecipeFile, data, "recipe"))

    @classmethod
    def from_schema(cls, data: schemas.DreamRecipeFile, label: str = "recipe") -> Recipe:
        """From a validated recipe: the model must exist and its objective fit it, checked before any run."""
        recipe = cls(model=data.model, objective=data.objective.model_dump(),
                     config=DreamConfig.from_schema(data.config), image=ImageSource.from_schema(data.image),
                     max_side=data.max_side, precision=data.precision)
        check_objective_fits(recipe.model, recipe.objective, label)
        recipe.build_objective()  # a malformed objective (a guide that is no image) is refused here, not halfway
        return recipe

    @classmethod
    def from_json(cls, text: str | bytes) -> Recipe:
        """From recipe JSON, or from a result PNG, which carries its recipe in its metadata."""
        if isinstance(text, bytes) and text.startswith(PNG_SIGNATURE):
            metadata = read_png_metadata(text, check=False)  # what it is first, then whether it is well-formed
            if "animation" in metadata:
                raise ConfigError("This is a frame of an animation: replay the animation from its recipe "
                                  "(the Recipe beside its video) with 'python -m analysis zoom --recipe'.")
            if "grid_recipe" in metadata:
                raise ConfigError("This is a grid: replay it with 'python -m analysis grid --recipe' "
                                  "(its bundle ZIP) or on the dashboard's Export page.")
            if not isinstance(metadata.get("recipe"), dict):
                raise ConfigError("This PNG carries no recipe (only dreams made by this tool on one image do).")
            schemas.validate(schemas.ResultMetadata, metadata, "PNG's metadata", worded=False)
            record = RunRecord.from_dict(metadata)
            recipe = cls.from_dict(record.recipe)
            steps = record.steps
            if steps not in (None, recipe.config.total_steps):
                raise ConfigError(f"This dream was stopped after {steps} of "
                                  f"{recipe.config.total_steps} steps: its recipe would dream all of them.")
            return recipe
        return cls.from_dict(read_json(text))

    def build_objective(self) -> Objective:
        return objective_from_dict(self.objective)


REPLAY_OBSTACLES = {"animation": "a frame of an animation (its settings are in the PNG metadata)",
                    "no recipe": "made without a recipe", "stopped": "cancelled part-way"}
"""Why a result does not replay from its own recipe, in words, for each replay_obstacle()."""


def replay_obstacle(record: RunRecord) -> str | None:
    """Why a result's recipe would not give the result's pixels: "animation" (a frame: its recipe is the
    animation's first dream), "no recipe", "stopped" (cancelled part-way), or None when it replays."""
    recipe = record.recipe
    if "animation" in record.extras or "video" in record.extras:  # a frame: its recipe is the whole run's
        return "animation"
    if recipe is None:
        return "no recipe"
    config = recipe.get("config") if isinstance(recipe.get("config"), dict) else {}
    octaves, iterations = config.get("octaves"), config.get("iterations")
    total = octaves * iterations if isinstance(octaves, int) and isinstance(iterations, int) else None
    return "stopped" if record.steps not in (None, total) else None


def check_objective_fits(model: str, objective: dict, label: str = "recipe") -> None:
    """The objective's layers, channels and classes exist in the model (known from its architecture, without
    loading weights): a recipe for another model is refused when it is read, not when its run starts."""
    spec = get_spec(model)
    layers = layer_table(spec)
    counts = {name: info.shape[0] for info in layers for name in (info.name, info.alias)}
    todo = [objective]
    while todo:
        part = todo.pop()
        if part["type"] == "sum":
            todo += [term["objective"] for term in part["terms"]]
            continue
        if part["type"] == "class":
            count = counts.get(LOGITS)
            if count is None:
                raise ConfigError(f"{model} has no class labels, so the {label}'s class objective cannot run.")
            layer, indices, what = LOGITS, part["classes"], ("Class", "classes")
        else:
            layer, indices, what = part["layer"], part.get("channels", []), ("Channel", "channels")
            if layer not in counts:
                raise ConfigError(f"{model} has no dream-able layer '{layer}' (in the {label}'s objective). "
                                  f"Layers: {', '.join(i.alias for i in layers if i.name != LOGITS)}")
        bad = [i for i in indices if i >= counts[layer]]
        if bad:
            where = "." if layer == LOGITS else f" at {layer}."
            raise ConfigError(f"{what[0]} {bad[0]} does not exist (in the {label}'s objective): "
                              f"{model} has {what[1]} 0 to {counts[layer] - 1}{where}")


def check_model(recipe: Recipe, model: LoadedModel) -> LoadedModel:
    """The model a replay runs on must be the recipe's, at the recipe's precision, or the pixels differ."""
    if model.name != recipe.model:
        raise ConfigError(f"The recipe is for {recipe.model}, not {model.name}.")
    if model.precision != recipe.precision:
        raise ConfigError(f"This recipe was dreamed in {recipe.precision}, not {model.precision}: replay it in "
                          f"{recipe.precision} (--precision {recipe.precision}, or the sidebar's Precision).")
    return model


def run_recipe(recipe: Recipe, model: LoadedModel | None = None, on_step: OnStep | None = None,
               should_cancel: ShouldCancel | None = None) -> DreamResult:
    """Dream a recipe (a new dream or a replay: the same thing): its result carries the recipe, which gives
    these very pixels again where the module docstring says they hold. Every dream of the CLI and the
    dashboard runs through here or run_recipes."""
    return run_recipes([recipe], model, on_step, should_cancel)[0]


def run_recipes(recipes: Sequence[Recipe], model: LoadedModel | None = None, on_step: OnStep | None = None,
                should_cancel: ShouldCancel | None = None) -> list[DreamResult]:
    """Dream recipes that differ only in their objective (a layer sweep, one model's row of a comparison) on
    one start image, as one dream_batch call; each result is created with its record.

    A result dreamed on its own (batch size 1: one recipe, or a sweep on the CPU) carries its recipe, which
    replays to its very pixels; a batched sweep (a GPU's) is not pixel-identical to single dreams, so its
    results carry none."""
    if not recipes:
        raise ConfigError("Give at least one recipe to dream.")
    first = recipes[0]
    shared = (first.model, first.config, first.image.to_dict(), first.max_side, first.precision)
    if any((r.model, r.config, r.image.to_dict(), r.max_side, r.precision) != shared for r in recipes[1:]):
        raise ConfigError("Recipes dreamed together must share the model, settings, start image, size and precision.")
    model = check_model(first, model or load_model(first.model, precision=first.precision))
    image = first.image.load(first.max_side)
    results = dream_batch(model, image[None].repeat(len(recipes), 1, 1, 1), [r.build_objective() for r in recipes],
                          first.config, on_step, should_cancel)
    for recipe, result in zip(recipes, results):
        if result.record.batch_size == 1:
            result.record = replace(result.record, recipe=recipe.to_dict())
    return results


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
        same = ("the same machine kind and versions" if self.recorded == self.here
                else f"{self.recorded}; here {self.here}")
        return f"{what} from the original (made on {same})"


def check_replay(original_png: bytes, replayed: DreamResult) -> ReplayCheck:
    """Compare a replay with the PNG whose recipe it ran, and say where each was made."""
    import numpy as np
    from PIL import Image

    from analysis.images import tensor_to_pil

    with Image.open(io.BytesIO(original_png)) as picture:
        before = np.asarray(picture.convert("RGB"), dtype=np.int16)
    after = np.asarray(tensor_to_pil(replayed.image), dtype=np.int16)
    largest = int(np.abs(before - after).max()) if before.shape == after.shape else None
    return ReplayCheck(largest, read_png_record(original_png).machine, replayed.record.machine)
