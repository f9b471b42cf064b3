"""The judge of a study: a classifier whose classes are grouped (ImageNet or Places365), and who may judge.

A judge scores the original and the dream; each class group's share of its probability is what a
study measures. The judge is itself trained on a dataset, so it is never trusted alone: the
originals' share is the baseline and each model's untrained twin is the control.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from analysis import labels as label_files
from analysis import zoo
from analysis.errors import ConfigError
from analysis.zoo import UNTRAINED_SUFFIX, LoadedModel

DEFAULT_JUDGE = zoo.DEFAULT_MODEL
EMERGENT_COUNT = 3
EMERGENT_MIN_GAIN = 0.01
"""A class 'emerged' when the dream raised its probability by at least one percentage point."""
JUDGED_DATASETS = (zoo.ImageNet, zoo.Places365)
DEFAULT_GROUP = {zoo.ImageNet: label_files.DOGS, zoo.Places365: "outdoor man-made"}
"""What the reading is about unless asked otherwise: dogs for ImageNet, buildings and the like for Places."""


@dataclass(frozen=True)
class Judge:
    """A classifier whose classes are grouped (ImageNet or Places365)."""

    model: LoadedModel
    dataset: str
    groups: dict[str, list[int]]

    @classmethod
    def of(cls, model: LoadedModel) -> Judge:
        dataset = model.spec.labels
        if model.spec.training_data == zoo.Untrained:
            raise ConfigError(f"{model.name} has random weights: its verdicts mean nothing, so it cannot judge.")
        if dataset not in JUDGED_DATASETS or model.labels is None:
            raise ConfigError(f"{model.name} cannot judge: only ImageNet and Places365 classifiers have class "
                              f"groups here. Judges: {', '.join(judge_names(present_only=False))}.")
        return cls(model, dataset, label_files.class_groups(dataset))

    @property
    def name(self) -> str:
        return self.model.name

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, classes) on the CPU, for (N, 3, H, W) or (3, H, W) in [0, 1]."""
        return self.model.probabilities(images).float().cpu()

    def shares(self, probs: torch.Tensor) -> dict[str, float]:
        """Each group's share of one image's probability (the groups cover every class once)."""
        return {group: float(probs[indices].sum()) for group, indices in self.groups.items()}

    def top_label(self, probs: torch.Tensor) -> tuple[str, float]:
        index = int(probs.argmax())
        return self.model.labels[index], float(probs[index])

    def emergent(self, original: torch.Tensor, dream: torch.Tensor) -> str:
        """The classes the dream gained most probability on (at least EMERGENT_MIN_GAIN), '; '-joined."""
        gains, indices = (dream - original).topk(EMERGENT_COUNT)
        return "; ".join(self.model.labels[int(i)] for g, i in zip(gains, indices) if g >= EMERGENT_MIN_GAIN)


def check_judge_name(name: str) -> str:
    """Refuse a judge by name before any weights load: untrained twins and ungrouped classifiers."""
    spec = zoo.get_spec(name)
    if spec.training_data == zoo.Untrained:
        raise ConfigError(f"{name} has random weights: its verdicts mean nothing, so it cannot judge.")
    if spec.labels not in JUDGED_DATASETS:
        raise ConfigError(f"{name} cannot judge: only ImageNet and Places365 classifiers have class "
                          f"groups here. Judges: {', '.join(judge_names(present_only=False))}.")
    return name


def judge_names(present_only: bool = True, folder: Path | None = None) -> list[str]:
    """Zoo classifiers that can judge (grouped labels), optionally only those with weights here."""
    names = [n for n in zoo.model_names() if zoo.get_spec(n).labels in JUDGED_DATASETS]
    return [n for n in names if zoo.weights_present(zoo.get_spec(n), folder)] if present_only else names


def scene_judge_name(folder: Path | None = None) -> str | None:
    """The first Places365 classifier whose weights are on this machine, else None."""
    return next((n for n in judge_names(True, folder) if zoo.get_spec(n).labels == zoo.Places365), None)


def default_judges(folder: Path | None = None) -> list[str]:
    """The embedded ImageNet judge, plus a scene judge when a Places365 checkpoint is present."""
    scene = scene_judge_name(folder)
    return [DEFAULT_JUDGE] + ([scene] if scene else [])


def is_control(name: str) -> bool:
    return name.endswith(UNTRAINED_SUFFIX)


def twin_of(name: str) -> str:
    """The untrained twin of a trained model: its control."""
    return name if is_control(name) else name + UNTRAINED_SUFFIX


def with_controls(names: Sequence[str]) -> list[str]:
    """Each trained model followed by its untrained twin (once), so every result has its control."""
    out: list[str] = []
    for name in names:
        for item in (name, twin_of(name)):
            if item not in out:
                out.append(item)
    return out


def check_depths(depths: Sequence[float]) -> list[float]:
    out = sorted(dict.fromkeys(round(float(d), 3) for d in depths))
    if not out:
        raise ConfigError("Choose at least one depth (0 = first layer, 1 = last).")
    bad = [d for d in out if not 0 <= d <= 1]
    if bad:
        raise ConfigError(f"Depth {bad[0]:g} is out of range: depths go from 0 (first layer) to 1 (last).")
    return out
