"""Class names, class groups and the bundled sample photos.

Reads the data files under ``assets/`` (see ``assets/labels/README.md`` and
``assets/samples/LICENSES.md`` for where each file came from):

* ImageNet-1k: 1000 class names in index order, and 10 coarse groups of them
  ("dogs" is exactly indices 151..268, the 118 dog breeds).
* Places365: 365 scene categories, returned as plain names such as
  ``"airfield"`` or ``"apartment building/outdoor"``, and 3 groups (indoor,
  outdoor natural, outdoor man-made).
* Places205: 205 scene categories, used by the GoogLeNet-Places205 model.
* The sample photos with their title, subject and licence.

It also reads a picture's top classes (top_classes): the one top-k that comparisons and the
dashboard share.

Files are read once and cached. Public functions return fresh lists and
dicts, so a caller that changes them does not change the cache.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from analysis.errors import ConfigError

if TYPE_CHECKING:
    import torch

ASSETS_DIR: Path = Path(__file__).resolve().parent.parent / "assets"
"""The repository's ``assets/`` folder (label files and sample photos)."""

LABELS_DIR: Path = ASSETS_DIR / "labels"
SAMPLES_DIR: Path = ASSETS_DIR / "samples"

_GROUP_FILES: dict[str, str] = {
    "imagenet": "imagenet_groups.json",
    "places365": "places365_groups.json",
}
_DATASET_NAMES: dict[str, str] = {"imagenet": "ImageNet", "places365": "Places365"}
DOGS = "dogs"
"""ImageNet's group of the 118 dog breeds: the group a bias study reads unless asked otherwise."""


TopK = list[tuple[int, str, float]]
"""A picture's most probable classes: (index, name, probability), most probable first."""


class Classifier(Protocol):
    """What top_classes needs of a model (analysis.zoo.LoadedModel is one), named here so that
    this module, which models reads, does not import models back."""

    @property
    def labels(self) -> object: ...

    def classify(self, image01: torch.Tensor, top: int = 5) -> TopK: ...


def top_classes(model: Classifier, image01: torch.Tensor, k: int = 5) -> TopK | None:
    """The model's top k classes for a picture, or None for a model without class labels."""
    return model.classify(image01, k) if model.labels is not None else None


@dataclass(frozen=True)
class SampleImage:
    """A bundled photo under ``assets/samples``."""

    path: Path
    title: str
    subject: str
    licence: str


@lru_cache(maxsize=None)
def _lines(filename: str) -> tuple[str, ...]:
    text = (LABELS_DIR / filename).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def _csail_names(filename: str) -> tuple[str, ...]:
    """Turn CSAIL lines such as ``/a/apartment_building/outdoor 8`` into readable names."""
    names = []
    for expected, line in enumerate(_lines(filename)):
        path, index = line.rsplit(" ", 1)
        if int(index) != expected:
            raise ValueError(f"{filename}: line {expected + 1} has index {index}")
        # "/a/apartment_building/outdoor" -> "apartment building/outdoor"
        names.append(path.split("/", 2)[2].replace("_", " "))
    return tuple(names)


@lru_cache(maxsize=None)
def _places365() -> tuple[str, ...]:
    return _csail_names("categories_places365.txt")


@lru_cache(maxsize=None)
def _places205() -> tuple[str, ...]:
    return _csail_names("categoryIndex_places205.csv")


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet-1k class names in index order (torchvision's names)."""
    return list(_lines("imagenet_classes.txt"))


def places365_classes() -> list[str]:
    """The 365 Places365 categories in index order, e.g. ``"apartment building/outdoor"``."""
    return list(_places365())


def places205_classes() -> list[str]:
    """The 205 Places205 categories in index order, e.g. ``"abbey"``."""
    return list(_places205())


def _dataset_key(dataset: str) -> str:
    key = dataset.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in _GROUP_FILES:
        known = ", ".join(_DATASET_NAMES.values())
        raise ConfigError(f"No class groups for dataset {dataset!r}; choose one of: {known}.")
    return key


@lru_cache(maxsize=None)
def _groups(key: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    data = json.loads((LABELS_DIR / _GROUP_FILES[key]).read_text(encoding="utf-8"))
    return tuple((name, tuple(indices)) for name, indices in data["groups"].items())


def class_groups(dataset: str) -> dict[str, list[int]]:
    """Group name -> class indices for ``"ImageNet"`` or ``"Places365"`` (case-insensitive).

    Every class index is in exactly one group. Raises ``ConfigError`` for any
    other dataset name.
    """
    return {name: list(indices) for name, indices in _groups(_dataset_key(dataset))}


@lru_cache(maxsize=None)
def _group_of(key: str) -> tuple[str, ...]:
    pairs = [(i, name) for name, indices in _groups(key) for i in indices]
    pairs.sort()
    return tuple(name for _, name in pairs)


def group_of(dataset: str) -> list[str]:
    """The group name of each class, indexed by class index (1000 or 365 entries)."""
    return list(_group_of(_dataset_key(dataset)))


@lru_cache(maxsize=None)
def _samples() -> tuple[SampleImage, ...]:
    entries = json.loads((SAMPLES_DIR / "samples.json").read_text(encoding="utf-8"))
    return tuple(
        SampleImage(
            path=SAMPLES_DIR / entry["file"],
            title=entry["title"],
            subject=entry["subject"],
            licence=entry["licence"],
        )
        for entry in entries
    )


def sample_images() -> list[SampleImage]:
    """The bundled sample photos, in the order given in ``assets/samples/samples.json``."""
    return list(_samples())
