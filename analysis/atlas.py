"""Unit atlas: what every channel of a layer responds to, over a whole collection of images.

After OpenAI Microscope (top examples per unit) and Network Dissection (a concept per unit,
units counted per concept and compared across networks). For a model, a layer and a
collection of views (a folder of photos, or by default the bundled samples each taken at
several crops and flips), one gradient-free pass truncated at the layer records, for every
view and channel, the channel's maximum, its mean and where the maximum sits. Everything
else is a pure function of those arrays: each unit's top-k views, the crop around its
strongest position sized to the unit's receptive field, its activation distribution, its
concept reading.

Why per-view statistics rather than a running top-k: they are small (views x channels), so
the top-k of any k, exact histograms and resuming are free, and a batch is an independent
piece of work: the pass is a study-engine workload (AtlasWorkload: one item per batch of
views, computed by ``unit_stats``), run in this process or on Ray actors that each load the
model once, with the same numbers either way. Batches are written to the output folder as they
finish (atomic renames); a later run with the same folder skips the finished ones, so a crash
or a cancel loses at most one batch and nothing is written twice.

The receptive field is measured from the network itself: the support of the gradient of one
output position (all channels) with respect to the input, on random inputs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from analysis import labels as label_files
from analysis.errors import Cancelled, ConfigError, ImageError
from analysis.images import load_image, resize
from analysis.progress import OnStep, ShouldCancel
from analysis.studies import executors as engine
from analysis.studies.executors import Executor
from analysis.zoo import LOGITS, LoadedModel, count_hooks, load_model

ATLAS_VERSION = 1
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
DEFAULT_SIDE = 224  # the side the networks were trained at
DEFAULT_TOP_K = 9
DEFAULT_BATCH = 16
CONCEPT_THRESHOLD = 0.5
"""A unit stands for a group when at least half of its top-k crops are judged to be in that group."""
NO_CONCEPT = "(none)"
HISTOGRAM_BINS = 40
DEFAULT_SCALES: tuple[tuple[float, int], ...] = ((1.0, 1), (0.7, 3), (0.5, 4))
"""(crop side as a share of the photo's short side, crops per row and column): 1 + 9 + 16 squares,
each also mirrored, so the 7 bundled photos give 364 views."""
MANIFEST, BATCHES = "manifest.json", "batches"


# ---------------------------------------------------------------- the collection


@dataclass(frozen=True)
class View:
    """One square picture the pass looks at: a crop of a photo, perhaps mirrored.

    top, left and side are fractions of the photo's short side, so a view is the same
    picture whatever size the photo is decoded at.
    """

    source: str  # file path
    top: float = 0.0
    left: float = 0.0
    side: float = 1.0
    flip: bool = False

    @property
    def name(self) -> str:
        stem = Path(self.source).name
        if (self.top, self.left, self.side) == (0.0, 0.0, 1.0) and not self.flip:
            return stem
        crop = f" crop {self.side:.2f} at ({self.top:.2f}, {self.left:.2f})" if self.side < 1 else ""
        return f"{stem}{crop}{' mirrored' if self.flip else ''}"


def square_crops(source: str, scales: Sequence[tuple[float, int]] = DEFAULT_SCALES, flips: bool = True) -> list[View]:
    """A photo's centred short-side square, plus overlapping squares on a grid at each scale."""
    views = []
    for scale, per_row in scales:
        if not 0 < scale <= 1 or per_row < 1:
            raise ConfigError(f"A crop scale must be in (0, 1] with at least one crop per row, not {scale}, {per_row}.")
        room = 1.0 - scale
        steps = [room / 2] if per_row == 1 else [room * i / (per_row - 1) for i in range(per_row)]
        for top in steps:
            for left in steps:
                for flip in (False, True) if flips else (False,):
                    views.append(View(source, round(top, 4), round(left, 4), scale, flip))
    return views


def sample_collection(scales: Sequence[tuple[float, int]] = DEFAULT_SCALES) -> list[View]:
    """The bundled photos, each at several crops and mirrored: a few hundred views offline."""
    return [v for sample in label_files.sample_images() for v in square_crops(str(sample.path), scales)]


def folder_collection(folder: Path, crops: bool = False) -> list[View]:
    """Every image file in a folder (not recursive, sorted by name): its centred square, or with
    crops=True the same crops and mirrors as the default collection."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder of images.")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConfigError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}).")
    if crops:
        return [v for path in files for v in square_crops(str(path))]
    return [View(str(path)) for path in files]


@functools.lru_cache(maxsize=32)  # the default collection decodes 7 photos at 3 sizes
def _photo(source: str, longest: int) -> torch.Tensor:
    return load_image(Path(source), longest)


def load_view(view: View, side: int) -> torch.Tensor:
    """The view as (3, side, side) in [0, 1]. The photo is decoded at a size that leaves the crop
    at least `side` px, so small crops are not upsampled from a thumbnail."""
    photo = _photo(view.source, max(side, int(np.ceil(side / view.side * 2))))
    height, width = photo.shape[-2:]
    short = min(height, width)
    crop = max(1, round(view.side * short))
    top = (height - short) // 2 + round(view.top * short)
    left = (width - short) // 2 + round(view.left * short)
    pixels = photo[:, top:top + crop, left:left + crop]
    if view.flip:
        pixels = pixels.flip(-1)
    return resize(pixels[None], (side, side))[0].clamp(0, 1)


# ---------------------------------------------------------------- the receptive field


@dataclass(frozen=True)
class ReceptiveField:
    """How many input pixels one position of the layer sees, measured at an input of `measured_at` px.

    clipped: the support reached the border of the largest input tried, so the true field is
    at least this big (deep layers of modern networks see more than the whole picture)."""

    height: int
    width: int
    measured_at: int
    clipped: bool = False

    @property
    def side(self) -> int:
        return max(self.height, self.width)


def receptive_field(model: LoadedModel, layer: str, side: int = DEFAULT_SIDE, largest: int = 1024,
                    seeds: int = 2) -> ReceptiveField:
    """The input region whose pixels change the layer's centre position, from the gradient.

    The gradient of the sum of all channels at the centre position, over `seeds` random
    inputs (a ReLU that is off for one input is on for another), is non-zero exactly on the
    pixels that position sees. If that support touches the border the input is doubled, up
    to `largest` px.
    """
    info = model.layer(layer)
    if info.name == LOGITS or len(info.shape) != 3:
        raise ConfigError(f"{info.alias} has no spatial map, so its units have no receptive field: "
                          "they see the whole image.")
    hooks_before = count_hooks(model.module)
    size = side
    while True:
        support = torch.zeros(size, size, dtype=torch.bool)
        for seed in range(seeds):
            generator = torch.Generator().manual_seed(seed)
            x = torch.rand(1, 3, size, size, generator=generator).to(model.device).requires_grad_(True)
            with torch.enable_grad():
                act = model.activations(x, [info.name])[info.name]
                h, w = act.shape[-2:]
                act[0, :, h // 2, w // 2].sum().backward()
            support |= (x.grad[0].abs().sum(0) > 0).cpu()
        if count_hooks(model.module) != hooks_before:
            raise RuntimeError("A forward hook outlived the receptive-field measurement: this is a bug.")
        rows = torch.nonzero(support.any(1)).flatten()
        cols = torch.nonzero(support.any(0)).flatten()
        if rows.numel() == 0:
            raise ConfigError(f"{info.alias}: no input pixel reaches the centre unit (a dead layer), "
                              "so there is no receptive field.")
        touches = bool(rows[0] == 0 or cols[0] == 0 or rows[-1] == size - 1 or cols[-1] == size - 1)
        if not touches or size * 2 > largest:
            return ReceptiveField(int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1), size, clipped=touches)
        size *= 2


def crop_box(y: int, x: int, grid: tuple[int, int], side: int, field_side: int) -> tuple[int, int, int]:
    """(top, left, size) in a side x side view of the square around grid position (y, x), sized to
    the receptive field (at most the view), moved inside the view rather than cut at its border.

    The position's centre in pixels is (index + 0.5) x side / grid: a layer's map tiles its input."""
    size = int(min(side, max(1, field_side)))
    centre_y = (y + 0.5) * side / grid[0]
    centre_x = (x + 0.5) * side / grid[1]
    top = round(min(max(centre_y - size / 2, 0), side - size))
    left = round(min(max(centre_x - size / 2, 0), side - size))
    return top, left, size


# ---------------------------------------------------------------- the pass


@dataclass
class BatchStats:
    """Per view and channel: the maximum over positions, the mean, and the row and column of the maximum."""

    maximum: np.ndarray  # (B, C) float32
    mean: np.ndarray  # (B, C) float32
    row: np.ndarray  # (B, C) int16
    col: np.ndarray  # (B, C) int16
    grid: tuple[int, int]  # the layer's (h, w); (1, 1) for a layer without a spatial map


@torch.no_grad()
def unit_stats(model: LoadedModel, layer: str, images: torch.Tensor) -> BatchStats:
    """The atlas's unit of work: one truncated, gradient-free forward of a batch of (B, 3, S, S) views."""
    name = model.layer(layer).name
    act = model.activations(images, [name])[name].float()
    if act.dim() == 2:
        values = act.cpu().numpy().astype(np.float32)
        zeros = np.zeros(values.shape, np.int16)
        return BatchStats(values, values.copy(), zeros, zeros.copy(), (1, 1))
    batch, channels, height, width = act.shape
    flat = act.reshape(batch, channels, height * width)
    maximum, where = flat.max(2)
    return BatchStats(maximum.cpu().numpy().astype(np.float32), flat.mean(2).cpu().numpy().astype(np.float32),
                      (where // width).cpu().numpy().astype(np.int16), (where % width).cpu().numpy().astype(np.int16),
                      (height, width))


@dataclass(frozen=True)
class AtlasSettings:
    side: int = DEFAULT_SIDE
    batch: int = DEFAULT_BATCH

    def validate(self) -> AtlasSettings:
        if not 32 <= self.side <= 1024:
            raise ConfigError(f"View size {self.side} px is out of range: choose 32 to 1024 px.")
        if not 1 <= self.batch <= 512:
            raise ConfigError(f"Batch {self.batch} is out of range: choose 1 to 512 views.")
        return self


def _views_digest(views: Sequence[View]) -> str:
    return hashlib.sha256(json.dumps([asdict(v) for v in views]).encode()).hexdigest()[:16]


def _write_atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _batch_path(out: Path, index: int) -> Path:
    return out / BATCHES / f"b{index:06d}.npz"


def _manifest(model: LoadedModel, layer: str, views: Sequence[View], settings: AtlasSettings,
              field_: ReceptiveField | None) -> dict:
    info = model.layer(layer)
    return {
        "version": ATLAS_VERSION, "model": model.name, "training_data": model.spec.training_data,
        "weights_sha256": model.weights_sha256, "precision": model.precision,
        "layer": info.alias, "layer_module": info.name, "layer_depth": info.depth,
        "channels": info.shape[0], "side": settings.side, "batch": settings.batch,
        "views": [asdict(v) for v in views], "views_digest": _views_digest(views),
        "receptive_field": asdict(field_) if field_ is not None else None,
    }


def _same_run(old: dict, new: dict) -> bool:
    keys = ("version", "model", "weights_sha256", "precision", "layer_module", "side", "batch", "views_digest")
    return all(old.get(k) == new.get(k) for k in keys)


@dataclass
class PassReport:
    out: Path
    views: int
    batches_done: int
    batches_total: int
    skipped: list[str] = field(default_factory=list)  # views whose photo could not be read
    cancelled: bool = False
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.batches_done == self.batches_total


@dataclass(frozen=True)
class AtlasBatch:
    """The atlas's work item: one batch of views (index-th of the collection), stored as one file."""

    index: int
    views: tuple[View, ...]

    @property
    def id(self) -> str:
        return f"b{self.index:06d}"

    @property
    def units(self) -> int:
        return len(self.views)


@dataclass
class BatchResult:
    """A computed batch: its statistics (NaN rows for unreadable views) and the views it had to leave out."""

    index: int
    arrays: dict[str, np.ndarray] = field(repr=False)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (view name, why)

    @property
    def id(self) -> str:
        return f"b{self.index:06d}"

    def skips(self) -> list[tuple[str, str]]:
        return list(self.unreadable)


class AtlasRunner:
    """Computes atlas batches with one model, loaded once (per process, or per Ray actor)."""

    def __init__(self, work: AtlasWorkload, device: str | None = None,
                 load: Callable[[str], LoadedModel] | None = None):
        self.work = work
        self.load = load or (lambda name: load_model(name, device=device, precision=work.precision))
        self._model: LoadedModel | None = None

    def model(self) -> LoadedModel:
        if self._model is None:
            self._model = self.load(self.work.model)
        return self._model

    def prepare(self) -> str:
        """Load the model now: a worker without its weights says so before the first batch."""
        self.model()
        return platform.node()

    def run_batch(self, items: list[AtlasBatch]) -> list[BatchResult]:
        """At the workload's thread count (oneDNN's reductions depend on it), the process's own restored after."""
        before = torch.get_num_threads()
        torch.set_num_threads(self.work.threads)
        try:
            return [self._run(item) for item in items]
        finally:
            torch.set_num_threads(before)

    def _run(self, item: AtlasBatch) -> BatchResult:
        side = self.work.settings.side
        pixels, readable, unreadable = [], [], []
        for view in item.views:
            try:
                pixels.append(load_view(view, side))
                readable.append(True)
            except ImageError as err:
                readable.append(False)
                unreadable.append((view.name, str(err)))
        shape = (len(item.views), self.work.channels)
        maximum = np.full(shape, np.nan, np.float32)
        mean = maximum.copy()
        row = np.zeros(shape, np.int16)
        col = row.copy()
        grid = np.array([1, 1])
        if pixels:
            model = self.model()
            stats = unit_stats(model, self.work.layer, torch.stack(pixels).to(model.device))
            rows = np.flatnonzero(readable)
            maximum[rows], mean[rows], row[rows], col[rows] = stats.maximum, stats.mean, stats.row, stats.col
            grid = np.array(stats.grid)
        return BatchResult(item.index, {"maximum": maximum, "mean": mean, "row": row, "col": col, "grid": grid},
                           unreadable)


class AtlasStore:
    """An atlas folder as the engine's store: its manifest (written by run_pass) and one .npz per batch,
    each renamed into place whole, so a finished batch is never written twice nor half."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        (self.folder / BATCHES).mkdir(parents=True, exist_ok=True)
        self.done = {p.stem for p in (self.folder / BATCHES).glob("b*.npz")}

    def commit(self, results: list[BatchResult]) -> int:
        fresh = [r for r in results if r.id not in self.done]
        for result in fresh:
            _write_atomic(_batch_path(self.folder, result.index), _npz_bytes(**result.arrays))
            self.done.add(result.id)
        return len(fresh)

    def close(self) -> None:
        """Nothing held: every batch is already on disk."""


@dataclass(frozen=True)
class AtlasWorkload:
    """The example pass as a study-engine workload: a model (by registry name, so a Ray actor loads
    its own) at one layer over a collection, one work item per batch of views."""

    model: str
    layer: str  # module name
    channels: int
    views: tuple[View, ...]
    settings: AtlasSettings
    precision: str = "fp32"
    threads: int = 1
    kind: str = "atlas"

    def items(self) -> list[AtlasBatch]:
        size = self.settings.batch
        return [AtlasBatch(k // size, self.views[k:k + size]) for k in range(0, len(self.views), size)]

    def runner(self, device: str | None = None, load: Callable[[str], LoadedModel] | None = None) -> AtlasRunner:
        return AtlasRunner(self, device, load)

    def store(self, folder: Path, planned: int, resume: bool) -> AtlasStore:
        """An atlas folder always resumes (run_pass has checked it holds this very pass)."""
        return AtlasStore(folder)


def run_pass(model: LoadedModel, layer: str, views: Sequence[View], out: Path,
             settings: AtlasSettings = AtlasSettings(), on_step: OnStep | None = None,
             should_cancel: ShouldCancel | None = None, executor: Executor | None = None,
             threads: int | None = None) -> PassReport:
    """The example pass over a collection, batch by batch, each stored as it finishes.

    A folder that already holds this very pass (same model, weights, layer, views, size and
    batch) is resumed: finished batches are not run again. A folder holding another atlas is
    refused rather than mixed. on_step(views done, views total, None) after each stored batch; a
    cancel stops between batches and keeps what is stored.

    executor: the study engine's (default in-process, with this very model); a RayExecutor's
    actors each load the model by its name once. threads: torch threads per batch (default this
    process's), fixed so every executor gives the same numbers.
    """
    settings.validate()
    if not views:
        raise ConfigError("The collection is empty: give a folder with images.")
    info = model.layer(layer)
    out = Path(out)
    threads = threads or torch.get_num_threads()
    if not 1 <= threads <= 256:
        raise ConfigError("Threads per batch must be 1 to 256.")
    started = time.perf_counter()
    wanted = _manifest(model, info.name, views, settings, None)
    manifest_path = out / MANIFEST
    if manifest_path.is_file():
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            raise ConfigError(f"{manifest_path} is unreadable: choose another output folder.") from None
        if not _same_run(old, wanted):
            raise ConfigError(f"{out} holds another atlas ({old.get('model')}, {old.get('layer')}, "
                              f"{len(old.get('views', []))} views): choose another output folder.")
    else:
        spatial = len(info.shape) == 3 and info.name != LOGITS
        # a field clipped at twice the view is at least the view: its crops are the whole view either way
        field_ = receptive_field(model, info.name, settings.side, largest=2 * settings.side) if spatial else None
        wanted = _manifest(model, info.name, views, settings, field_) | {"threads": threads}
        out.mkdir(parents=True, exist_ok=True)
        _write_atomic(manifest_path, json.dumps(wanted, indent=1).encode())
    work = AtlasWorkload(model.name, info.name, info.shape[0], tuple(views), settings, model.precision, threads)
    before = len(views)

    def progress(done: int, total: int, _preview: object) -> None:
        if on_step is not None and done:  # after each stored batch, as views done of the whole collection
            on_step(before - total + done, len(views), None)

    summary = engine.run_workload(work, out, executor or engine.InProcess(load=lambda _name: model), resume=True,
                                  batch_size=1, on_step=progress, should_cancel=should_cancel)
    return PassReport(out, len(views), summary.done, summary.planned, list(summary.skipped), summary.cancelled,
                      round(time.perf_counter() - started, 3))


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


# ---------------------------------------------------------------- reading a stored pass


@dataclass
class Example:
    unit: int
    rank: int  # 1 = strongest
    view: int  # index into Atlas.views
    activation: float
    row: int
    col: int


@dataclass
class Atlas:
    """A stored pass, loaded: the per-view statistics and everything computed from them."""

    folder: Path
    manifest: dict
    views: list[View]
    maximum: np.ndarray  # (N, C); NaN for views that could not be read or are not done yet
    mean: np.ndarray
    row: np.ndarray
    col: np.ndarray
    grid: tuple[int, int]

    @property
    def model(self) -> str:
        return self.manifest["model"]

    @property
    def layer(self) -> str:
        return self.manifest["layer"]

    @property
    def channels(self) -> int:
        return self.maximum.shape[1]

    @property
    def side(self) -> int:
        return int(self.manifest["side"])

    @property
    def field(self) -> ReceptiveField | None:
        data = self.manifest.get("receptive_field")
        return ReceptiveField(**data) if data else None

    @property
    def views_done(self) -> int:
        return int(np.isfinite(self.maximum[:, 0]).sum()) if self.channels else 0

    def _check_unit(self, unit: int) -> int:
        if not 0 <= int(unit) < self.channels:
            raise ConfigError(f"Unit {unit} does not exist: {self.layer} has units 0 to {self.channels - 1}.")
        return int(unit)

    def top_examples(self, unit: int, k: int = DEFAULT_TOP_K) -> list[Example]:
        """The k views that drive the unit hardest (by its maximum), strongest first; ties by view order."""
        unit = self._check_unit(unit)
        if k < 1:
            raise ConfigError("Ask for at least one example.")
        values = self.maximum[:, unit]
        finite = np.flatnonzero(np.isfinite(values))
        order = finite[np.argsort(-values[finite], kind="stable")][:k]
        return [Example(unit, rank + 1, int(v), float(values[v]), int(self.row[v, unit]), int(self.col[v, unit]))
                for rank, v in enumerate(order)]

    def example_box(self, example: Example) -> tuple[int, int, int]:
        """(top, left, size) of the example's receptive-field crop in its view; the whole view for a
        layer without a spatial map."""
        field_ = self.field
        if field_ is None:
            return 0, 0, self.side
        return crop_box(example.row, example.col, self.grid, self.side, field_.side)

    def example_images(self, example: Example) -> tuple[torch.Tensor, torch.Tensor]:
        """(the whole view, the crop around the strongest position), each (3, h, w) in [0, 1]."""
        whole = load_view(self.views[example.view], self.side)
        top, left, size = self.example_box(example)
        return whole, whole[:, top:top + size, left:left + size]

    def histogram(self, unit: int, statistic: str = "maximum", bins: int = HISTOGRAM_BINS) -> pd.DataFrame:
        """The unit's distribution over the collection: each view's maximum (or mean) in equal bins."""
        unit = self._check_unit(unit)
        if statistic not in ("maximum", "mean"):
            raise ConfigError(f"Unknown statistic '{statistic}': choose maximum or mean.")
        values = getattr(self, statistic)[:, unit]
        values = values[np.isfinite(values)]
        if values.size == 0:
            return pd.DataFrame({"left": [], "right": [], "views": []})
        counts, edges = np.histogram(values, bins=bins)
        return pd.DataFrame({"left": edges[:-1], "right": edges[1:], "views": counts})

    def unit_table(self) -> pd.DataFrame:
        """One row per unit: its peak, typical maximum, mean, how selective it is, and its best view."""
        finite = np.isfinite(self.maximum[:, 0])
        maximum, mean = self.maximum[finite], self.mean[finite]
        if maximum.shape[0] == 0:
            raise ConfigError(f"{self.folder} holds no finished batch yet.")
        peak = maximum.max(0)
        best = np.flatnonzero(finite)[maximum.argmax(0)]
        median = np.median(maximum, 0)
        return pd.DataFrame({
            "unit": np.arange(self.channels), "peak": peak, "median_max": median, "mean": mean.mean(0),
            # how far the best view stands out from the typical one: high for selective units
            "selectivity": (peak - median) / (np.abs(peak) + np.abs(median) + 1e-12),
            "active_share": (maximum > 0).mean(0), "best_view": best,
        })


def load_atlas(folder: Path) -> Atlas:
    """A pass stored by run_pass, finished or not (views not done yet are NaN)."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        views = [View(**v) for v in manifest["views"]]
        channels, batch = int(manifest["channels"]), int(manifest["batch"])
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"{folder} holds no atlas (no readable {MANIFEST}): "
                          f"run 'atlas --out {folder}' first.") from None
    shape = (len(views), channels)
    maximum, mean = np.full(shape, np.nan, np.float32), np.full(shape, np.nan, np.float32)
    row, col = np.zeros(shape, np.int16), np.zeros(shape, np.int16)
    grid = (1, 1)
    for path in sorted((folder / BATCHES).glob("b*.npz")):
        try:
            index = int(path.stem[1:])
            with np.load(path) as data:
                start = index * batch
                rows = slice(start, start + data["maximum"].shape[0])
                maximum[rows], mean[rows] = data["maximum"], data["mean"]
                row[rows], col[rows] = data["row"], data["col"]
                if np.isfinite(data["maximum"]).any():
                    grid = (int(data["grid"][0]), int(data["grid"][1]))
        except (OSError, ValueError, KeyError):
            raise ConfigError(f"{path} is damaged: delete it and run the pass again to redo that batch.") from None
    return Atlas(folder, manifest, views, maximum, mean, row, col, grid)


# ---------------------------------------------------------------- concepts


def concept_readings(atlas: Atlas, judge: object, k: int = DEFAULT_TOP_K, threshold: float = CONCEPT_THRESHOLD,
                     units: Sequence[int] | None = None, batch: int = 32, on_step: OnStep | None = None,
                     should_cancel: ShouldCancel | None = None) -> pd.DataFrame:
    """Each unit's concept: a judge classifies its top-k receptive-field crops, each crop's top class
    falls in one class group, and the group with most crops is the unit's when its share reaches
    the threshold (else NO_CONCEPT).

    judge: an analysis.studies.judging.Judge (its model and class groups). Crops shared by several units
    are classified once. Columns: unit, group, share, concept, crops, top_class, threshold.
    """
    if not 0 < threshold <= 1:
        raise ConfigError(f"The concept threshold {threshold} must be above 0 and at most 1.")
    chosen = range(atlas.channels) if units is None else [atlas._check_unit(u) for u in units]
    group_of = {i: name for name, indices in judge.groups.items() for i in indices}
    examples = {u: atlas.top_examples(u, k) for u in chosen}
    keys = list(dict.fromkeys((e.view, atlas.example_box(e)) for ex in examples.values() for e in ex))
    top_class: dict[tuple, int] = {}
    for start in range(0, len(keys), batch):
        if should_cancel is not None and should_cancel():
            raise Cancelled("Concept reading cancelled: nothing was stored.")
        part = keys[start:start + batch]
        crops = []
        for view, (top, left, size) in part:
            whole = load_view(atlas.views[view], atlas.side)
            crops.append(resize(whole[None, :, top:top + size, left:left + size], (DEFAULT_SIDE, DEFAULT_SIDE))[0])
        probs = judge.probabilities(torch.stack(crops))
        for key, p in zip(part, probs):
            top_class[key] = int(p.argmax())
        if on_step is not None:
            on_step(min(len(keys), start + batch), len(keys), None)
    rows = []
    for unit, exs in examples.items():
        classes = [top_class[(e.view, atlas.example_box(e))] for e in exs]
        # most_common keeps first-seen order among ties: a tie goes to the group of the stronger crops
        best, votes = Counter(group_of[c] for c in classes).most_common(1)[0] if classes else (NO_CONCEPT, 0)
        share = votes / len(classes) if classes else 0.0
        common = Counter(classes).most_common(1)[0][0] if classes else None
        rows.append({"unit": unit, "group": best, "share": share,
                     "concept": best if share >= threshold else NO_CONCEPT, "crops": len(classes),
                     "top_class": judge.model.labels[common] if common is not None else "", "threshold": threshold})
    return pd.DataFrame(rows, columns=["unit", "group", "share", "concept", "crops", "top_class", "threshold"])


def units_per_group(readings: pd.DataFrame, groups: Sequence[str]) -> pd.DataFrame:
    """Units per concept for each (model, layer) in a readings table (with model and layer columns):
    one row per model x layer x group, every group listed (zeros included) plus NO_CONCEPT, in the
    given group order. The Network Dissection comparison."""
    missing = {"model", "layer", "concept"} - set(readings.columns)
    if missing:
        raise ConfigError(f"A readings table needs the columns {sorted(missing)}.")
    order = [*groups, NO_CONCEPT]
    unknown = set(readings["concept"]) - set(order)
    if unknown:
        raise ConfigError(f"Concepts {sorted(unknown)} are not among the groups {list(groups)}.")
    rows = []
    for (model, layer), part in readings.groupby(["model", "layer"], sort=False):
        counts = part["concept"].value_counts()
        total = len(part)
        for group in order:
            units = int(counts.get(group, 0))
            rows.append({"model": model, "layer": layer, "group": group, "units": units,
                         "share": units / total if total else 0.0, "of": total})
    return pd.DataFrame(rows, columns=["model", "layer", "group", "units", "share", "of"])


def readings_path(atlas: Atlas, judge_name: str, k: int, threshold: float) -> Path:
    return atlas.folder / f"concepts_{judge_name}_k{k}_t{threshold:g}.csv"


def load_readings(atlas: Atlas, judge_name: str, k: int = DEFAULT_TOP_K,
                  threshold: float = CONCEPT_THRESHOLD) -> pd.DataFrame | None:
    """The readings stored_readings wrote for this judge, k and threshold, or None."""
    path = readings_path(atlas, judge_name, k, threshold)
    return pd.read_csv(path) if path.is_file() else None


def stored_readings(atlas: Atlas, judge: object, k: int = DEFAULT_TOP_K, threshold: float = CONCEPT_THRESHOLD,
                    on_step: OnStep | None = None, should_cancel: ShouldCancel | None = None) -> pd.DataFrame:
    """concept_readings for every unit, stored beside the pass and read back next time. Only a
    complete pass is read (a partial one would change its top-k as it grows)."""
    if not is_complete(atlas.folder):  # by its batches: a view whose photo was unreadable stays NaN for good
        raise ConfigError(f"{atlas.folder}: the pass is not finished ({atlas.views_done} of {len(atlas.views)} views); "
                          "run it again to finish before reading concepts.")
    stored = load_readings(atlas, judge.name, k, threshold)
    if stored is not None:
        return stored
    table = concept_readings(atlas, judge, k, threshold, on_step=on_step, should_cancel=should_cancel)
    table.insert(0, "layer", atlas.layer)
    table.insert(0, "model", atlas.model)
    table["judge"], table["judge_data"] = judge.name, judge.dataset
    _write_atomic(readings_path(atlas, judge.name, k, threshold), table.to_csv(index=False).encode())
    return table


# ---------------------------------------------------------------- several models, one folder


def run_folder(root: Path, model: str, layer_alias: str, side: int) -> Path:
    """Where one model's layer, at one view size, lives under a root folder."""
    return Path(root) / f"{model}__{layer_alias}__{side}px".replace("/", "-")


def atlas_root() -> Path:
    """Where the dashboard keeps atlases: ~/.cache/inceptionism/atlas, or atlas/ under $INCEPTIONISM_CACHE_DIR."""
    root = os.environ.get("INCEPTIONISM_CACHE_DIR") or Path.home() / ".cache" / "inceptionism"
    return Path(root) / "atlas"


def is_complete(folder: Path) -> bool:
    """A pass whose every batch is stored (without loading the arrays)."""
    try:
        manifest = json.loads((Path(folder) / MANIFEST).read_text())
        total = -(-len(manifest["views"]) // int(manifest["batch"]))
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return all(_batch_path(Path(folder), i).is_file() for i in range(total))


SORT_KEYS = ("peak", "selectivity", "share", "unit")


def unit_overview(found: Atlas, readings: pd.DataFrame | None) -> pd.DataFrame:
    """The unit table with each unit's concept reading (concept, share, top_class) when there is one."""
    table = found.unit_table()
    if readings is None:
        return table.assign(concept=NO_CONCEPT, share=float("nan"), top_class="")
    return table.merge(readings[["unit", "concept", "share", "top_class"]], on="unit", how="left")


def choose_units(overview: pd.DataFrame, concepts: Sequence[str] | None = None, sort: str = "peak",
                 min_selectivity: float = 0.0) -> list[int]:
    """The units to show: in the given concepts, at least this selective, strongest (or by unit) first."""
    if sort not in SORT_KEYS:
        raise ConfigError(f"Unknown order '{sort}': choose {', '.join(SORT_KEYS)}.")
    rows = overview
    if concepts is not None:
        rows = rows[rows["concept"].isin(list(concepts))]
    rows = rows[rows["selectivity"] >= min_selectivity]
    rows = rows.sort_values(sort, ascending=sort == "unit", kind="stable")
    return [int(u) for u in rows["unit"]]


def atlas_folders(root: Path) -> list[Path]:
    """The atlases under a root: the root itself when it holds one, else its sub-folders that do."""
    root = Path(root)
    if (root / MANIFEST).is_file():
        return [root]
    found = sorted(p for p in root.iterdir() if (p / MANIFEST).is_file()) if root.is_dir() else []
    if not found:
        raise ConfigError(f"{root} holds no atlas: run 'atlas --model M --layer L --out {root}' first.")
    return found


def stored_readings_of(folder: Path) -> pd.DataFrame:
    """Every concept reading stored in an atlas folder (any judge, k and threshold)."""
    frames = [pd.read_csv(p) for p in sorted(Path(folder).glob("concepts_*.csv"))]
    if not frames:
        raise ConfigError(f"{folder} has no concept readings yet: run the atlas command on it again with a judge.")
    return pd.concat(frames, ignore_index=True)


def top_units(readings: pd.DataFrame, tables: dict[tuple[str, str], pd.DataFrame], per_group: int = 5) -> pd.DataFrame:
    """For each model, layer and concept, its clearest units: highest share, then highest peak."""
    rows = []
    for (model, layer), part in readings[readings["concept"] != NO_CONCEPT].groupby(["model", "layer"], sort=False):
        merged = part.merge(tables[(model, layer)][["unit", "peak"]], on="unit")
        for concept, units in merged.groupby("concept", sort=False):
            best = units.sort_values(["share", "peak"], ascending=False).head(per_group)
            rows += [{"model": model, "layer": layer, "concept": concept, "unit": int(r.unit), "share": r.share,
                      "peak": r.peak, "top_class": r.top_class} for r in best.itertuples()]
    return pd.DataFrame(rows, columns=["model", "layer", "concept", "unit", "share", "peak", "top_class"])
