"""The run record: what a result is and how it was made, typed, until a file is written.

Every dream (and every animation and video built from dreams) carries a RunRecord: the model and
its training data, the layers and objective, the settings and seed, the weights' sha256, the
library versions, where it ran (device, precision, CPU kind), how long and how many steps, and the
recipe that replays it. Footnotes, grid labels, replay checks, pages and the CLI read its attributes;
it becomes JSON (to_dict) only when a file is written, and from_dict reads back the JSON of any
result PNG this tool wrote, older ones included (the keys have not changed).

This module imports nothing else from analysis, so anything may import it.
"""

from __future__ import annotations

import dataclasses
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch


def library_versions() -> dict[str, str]:
    """The versions that decide a dream's float rounding: a replay is pixel-identical only with the same ones."""
    import torchvision

    from analysis import __version__

    return {"inceptionism": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "python": platform.python_version()}


_KINDS: dict[str, tuple[type, ...]] = {
    "model": (str,), "training_data": (str,), "layers": (list,), "objective": (dict,),
    "objective_text": (str,), "config": (dict,), "seed": (int,), "weights_sha256": (str,),
    "weights_layout": (str,), "input": (dict,), "versions": (dict,), "device": (str,), "cpu": (str,),
    "precision": (str,), "seconds": (int, float), "steps": (int,), "batch_size": (int,), "recipe": (dict,),
}
"""The JSON type of each typed field. A key whose value is of another type (a comparison grid's list of
training data, a grid's weights per model) is not a run's value: it stays in extras under its name."""


@dataclass(frozen=True)
class RunRecord:
    """One run's provenance. Every field may be unknown (None) in a record read from an older or a foreign PNG."""

    model: str | None = None  # registry name, e.g. "efficientnet_lite0"
    training_data: str | None = None  # "ImageNet", "Places365", "none (untrained)"
    layers: list[str] = field(default_factory=list)  # the objective's layers, by the names the user sees (aliases)
    objective: dict | None = None  # Objective.to_dict() of the bound objective
    objective_text: str | None = None  # the objective in words
    config: dict | None = None  # the settings (DreamConfig.to_dict() for a dream)
    seed: int | None = None
    weights_sha256: str | None = None
    weights_layout: str | None = None  # the checkpoint layout recognised from its keys, when there are several
    input: dict | None = None  # what the network was fed: channel order, scale, mean, std
    versions: dict[str, str | None] = field(default_factory=dict)  # library_versions()
    device: str | None = None  # "cpu", "cuda:0", "mps"
    cpu: str | None = None  # the CPU's name and kernel width (models.cpu_kind())
    precision: str | None = None  # "fp32" or "bf16"
    seconds: float | None = None
    steps: int | None = None  # steps done (fewer than planned when cancelled)
    batch_size: int | None = None  # 1: the very pixels its recipe replays to
    recipe: dict | None = None  # Recipe.to_dict() of the recipe that replays it; None when none does
    extras: Mapping[str, Any] = field(default_factory=dict)  # what a kind of run adds: "animation", "video", ...

    def with_extras(self, **extras: Any) -> RunRecord:
        """The same record with more extras (the image's title, a frame number, a study item)."""
        return dataclasses.replace(self, extras={**self.extras, **extras})

    def to_dict(self) -> dict:
        """The record as the JSON object a result file carries: known values, then the extras, at the top level."""
        out: dict[str, Any] = {}
        for name in _KINDS:
            value = getattr(self, name)
            if value is None or (name in ("layers", "versions") and not value):
                continue
            out[name] = value
        return {**out, **self.extras}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """A record from a result file's JSON object, as read_png_metadata returns it (checked by
        schemas.ResultMetadata); a key the record does not type, or a value of another type, goes to extras."""
        typed: dict[str, Any] = {}
        extras: dict[str, Any] = {}
        for key, value in data.items():
            kinds = _KINDS.get(key)
            if kinds is not None and value is None:  # null: not known, as a field left at its default
                continue
            fits = kinds is not None and isinstance(value, kinds) and not (
                isinstance(value, bool) and bool not in kinds)  # True is an int to Python, not a seed
            if key == "layers" and fits:
                fits = all(isinstance(layer, str) for layer in value)
            if fits:
                typed[key] = list(value) if key == "layers" else value
            else:
                extras[key] = value
        return cls(**typed, extras=extras)

    @property
    def machine(self) -> str:
        """Where it ran, in words: what must match for a replay to give the same pixels."""
        versions = self.versions or {}
        return (f"{self.device or '?'} {self.precision or 'fp32'}, CPU {self.cpu or 'not recorded'}, "
                f"torch {versions.get('torch') or '?'}, inceptionism {versions.get('inceptionism') or '?'}")
