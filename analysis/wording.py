"""How models and numbers read in text: one spelling for charts, readings, grids and the dashboard.

A reader comparing a chart's legend with the sentence under it should meet the same words and
the same rounding in both, so every module that writes a model's name, a ratio or a share
writes it through here.
"""

from __future__ import annotations


def model_label(name: str, training_data: str) -> str:
    """'resnet50 (ImageNet)'; a name that already says its data ('resnet50_places365',
    'ResNet-50 (Places365)', an untrained twin) as it is, so no label says it twice."""
    return name if training_data.lower() in name.lower() else f"{name} ({training_data})"


def times(ratio: float) -> str:
    """A ratio as '47x', '2.3x' or '0.25x': whole numbers from 10, two significant digits below 1."""
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2g}x" if ratio < 1 else f"{ratio:.1f}x"


def percent(share: float) -> str:
    """A share in [0, 1] as a percentage with two significant digits: '3.1%', '0.052%'."""
    return f"{share * 100:.2g}%"
