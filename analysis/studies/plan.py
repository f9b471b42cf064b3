"""A study plan: what to dream, declared once, saved as JSON beside its results.

models (with their untrained twins) x layers (by name or relative depth) x images (folders, globs,
files, bundled samples, noise seeds) x seeds, with one objective, one set of dream settings, one
image size and the judges. expand() turns it into independent work items, one dream each, whose
id is a hash of everything that makes the dream what it is: the same plan always gives the same
ids, so a results folder knows which items are done and a resumed run redoes only the others.

A plan declares its workload: bias (each dream judged: the dataset-bias study), sweep (every image
dreamed at each layer, no judge) or gallery (every channel of each layer rendered by feature
visualisation from noise: one item per model x layer x channel x seed, no images).
"""

from __future__ import annotations

import glob
import hashlib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from analysis import schemas, zoo
from analysis.dream import DreamConfig
from analysis.errors import ConfigError, ImageError
from analysis.featviz import FeatvizConfig
from analysis.images import check_side, noise_image
from analysis.labels import sample_images
from analysis.recipes import ImageSource
from analysis.studies.judging import DEFAULT_JUDGE, check_depths, check_judge_name
from analysis.zoo import LayerInfo

PLAN_VERSION = schemas.PLAN_VERSION
OBJECTIVES = ("layer-l2",)
"""Google's whole-layer L2: the objective the bias study measures. Others join with their row fields."""
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
ALL_SAMPLES = "samples"
"""In plan.images: every bundled photo (unless a file or folder of that name exists)."""
MAX_NOISE_SEEDS = 10_000
WORKLOADS = ("bias", "sweep", "gallery")
"""bias: dreams, each judged. sweep: dreams, no judge. gallery: feature visualisations of channels."""
GALLERY_SETTINGS = ("steps", "learning_rate", "transforms", "parameterisation")
"""The FeatvizConfig fields a gallery plan keeps; its size is the plan's, its seeds the plan's seeds."""


def default_threads() -> int:
    """Torch threads per item: this machine's, fixed in the plan so every executor gives the same pixels."""
    return max(1, torch.get_num_threads())


@dataclass(frozen=True)
class ImageRef:
    """One start image: a file (by path), a bundled sample or a noise seed. name is what rows call it."""

    kind: str  # "file" | "sample" | "noise"
    name: str
    path: str = ""
    seed: int = 0

    def key(self) -> dict:
        """What identifies the image in an item id: not the absolute path, so a moved folder resumes."""
        return {"kind": self.kind, "name": self.name} | ({"seed": self.seed} if self.kind == "noise" else {})

    def source(self) -> tuple[ImageSource, bytes | None]:
        """The recipe's image source, and a file's bytes (read once: its sha256 goes in the recipe)."""
        if self.kind == "noise":
            return ImageSource("noise", seed=self.seed), None
        if self.kind == "sample":
            return ImageSource.sample(self.name), None
        try:
            data = Path(self.path).read_bytes()
        except OSError as err:
            raise ImageError(f"{self.name} cannot be read ({err.strerror or type(err).__name__}).") from None
        return ImageSource.upload(self.name, data), data

    def load(self, size: int) -> tuple[torch.Tensor, ImageSource]:
        """(3, H, W) in [0, 1] at most size px, and its source. ImageError when the file is unreadable."""
        if self.kind == "noise":
            return noise_image(size, self.seed), ImageSource("noise", size=(size, size), seed=self.seed)
        source, _ = self.source()
        return source.load(size), source


@dataclass(frozen=True)
class Item:
    """One dream: a model at a layer on an image with a seed. id is stable across runs and machines."""

    id: str
    model: str
    layer: str  # module name
    layer_alias: str
    layer_depth: float
    depth: float  # the depth asked for (a layer by name: its own depth)
    image: ImageRef
    seed: int

    @property
    def units(self) -> int:
        """One dream: what progress counts."""
        return 1


@dataclass(frozen=True)
class ChannelItem:
    """One feature visualisation (a gallery's item): a model's channel at a layer, from noise of a seed."""

    id: str
    model: str
    layer: str  # module name
    layer_alias: str
    layer_depth: float
    depth: float
    channel: int
    seed: int

    @property
    def units(self) -> int:
        return 1


@dataclass(frozen=True)
class Plan:
    models: tuple[str, ...]
    depths: tuple[float, ...] = ()
    layers: tuple[str, ...] = ()
    images: tuple[str, ...] = ()
    noise_seeds: int = 0
    seeds: tuple[int, ...] = (0,)
    objective: str = OBJECTIVES[0]
    config: DreamConfig = field(default_factory=DreamConfig)
    preset: str = ""
    size: int = 224
    judges: tuple[str, ...] = (DEFAULT_JUDGE,)
    precision: str = "fp32"
    threads: int = field(default_factory=default_threads)
    version: int = PLAN_VERSION
    workload: str = WORKLOADS[0]
    channels: tuple[int, ...] = ()  # gallery: the channels rendered (none: every channel of each layer)
    featviz: FeatvizConfig = field(default_factory=FeatvizConfig)  # gallery: see GALLERY_SETTINGS

    def validate(self) -> Plan:
        """Every field checked without loading a weight: a bad plan fails before its first dream."""
        if self.workload not in WORKLOADS:
            raise ConfigError(f"Unknown workload '{self.workload}': choose {', '.join(WORKLOADS)}.")
        if not self.models:
            raise ConfigError("Choose at least one model to dream with.")
        for name in self.models:
            zoo.get_spec(name)
        if not self.depths and not self.layers:
            raise ConfigError("Choose depths (0 = first layer, 1 = last) or layers by name.")
        if self.depths:
            check_depths(self.depths)
        if self.workload == "gallery":
            self._validate_gallery()
        elif not self.images and not self.noise_seeds:
            raise ConfigError("Choose images (a folder, a glob, files, sample names) or noise seeds.")
        if self.channels and self.workload != "gallery":
            raise ConfigError("Channels belong to a gallery plan (workload gallery).")
        if not 0 <= self.noise_seeds <= MAX_NOISE_SEEDS:
            raise ConfigError(f"Choose 0 to {MAX_NOISE_SEEDS} noise seeds.")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError("Seeds must be distinct non-negative integers (at least one).")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"Unknown objective '{self.objective}'. Objectives: {', '.join(OBJECTIVES)}.")
        self.config.validate()
        check_side(self.size)
        if self.workload == "bias" and not self.judges:
            raise ConfigError("Choose at least one judge.")
        if self.workload != "bias" and self.judges:
            raise ConfigError(f"A {self.workload} has no judge: leave out the judges (the bias workload judges).")
        for judge in self.judges:
            check_judge_name(judge)
        if self.precision not in zoo.PRECISIONS:
            raise ConfigError(f"Unknown precision '{self.precision}': choose {' or '.join(zoo.PRECISIONS)}.")
        if not 1 <= self.threads <= 256:
            raise ConfigError("Threads per item must be 1 to 256.")
        if self.version > PLAN_VERSION:
            raise ConfigError("This plan was written by a newer version of the tool.")
        return self

    def _validate_gallery(self) -> None:
        if self.images or self.noise_seeds:
            raise ConfigError("A gallery renders channels from noise: it takes no images or noise seeds.")
        if len(set(self.channels)) != len(self.channels) or (self.channels and min(self.channels) < 0):
            raise ConfigError("Channels must be distinct non-negative integers.")
        self.featviz_config(0).validate()

    def featviz_config(self, seed: int, batch: int = 1) -> FeatvizConfig:
        """A gallery item's renderer settings: the plan's featviz settings at its size and the item's seed."""
        return replace(self.featviz, size=self.size, seed=seed, batch=batch)

    # -- JSON
    def to_dict(self) -> dict:
        data = {"version": self.version, "models": list(self.models), "depths": list(self.depths),
                "layers": list(self.layers), "images": list(self.images), "noise_seeds": self.noise_seeds,
                "seeds": list(self.seeds), "objective": self.objective, "config": self.config.to_dict(),
                "preset": self.preset, "size": self.size, "judges": list(self.judges),
                "precision": self.precision, "threads": self.threads, "workload": self.workload}
        if self.workload == "gallery":
            data["channels"] = list(self.channels)
            data["featviz"] = {name: getattr(self.featviz, name) for name in GALLERY_SETTINGS}
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: object) -> Plan:
        if not isinstance(data, dict) or "models" not in data:
            raise ConfigError("This is not a study plan (no 'models'): make one with 'study plan ... --out PLAN.json'.")
        known = {"version", "models", "depths", "layers", "images", "noise_seeds", "seeds", "objective", "config",
                 "preset", "size", "judges", "precision", "threads", "workload", "channels", "featviz"}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"Unknown plan field(s): {', '.join(sorted(unknown))}.")
        schemas.validate(schemas.StudyPlanFile, data, "plan")  # strict: 100.5 px is refused, not cut to 100
        workload = str(data.get("workload", WORKLOADS[0]))
        try:
            plan = cls(models=tuple(str(m) for m in data["models"]),
                       depths=tuple(float(d) for d in data.get("depths", ())),
                       layers=tuple(str(x) for x in data.get("layers", ())),
                       images=tuple(str(x) for x in data.get("images", ())),
                       noise_seeds=int(data.get("noise_seeds", 0)),
                       seeds=tuple(int(s) for s in data.get("seeds", (0,))),
                       objective=str(data.get("objective", OBJECTIVES[0])),
                       config=DreamConfig.from_dict(dict(data.get("config", {}))),
                       preset=str(data.get("preset", "")), size=int(data.get("size", 224)),
                       judges=tuple(str(j) for j in data.get("judges", (DEFAULT_JUDGE,) if workload == "bias"
                                                             else ())),
                       precision=str(data.get("precision", "fp32")),
                       threads=int(data.get("threads", default_threads())),
                       version=int(data.get("version", PLAN_VERSION)), workload=workload,
                       channels=tuple(int(c) for c in data.get("channels", ())),
                       featviz=FeatvizConfig(**dict(data.get("featviz") or {})))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"The plan is malformed ({err}).") from None
        return plan.validate()

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        try:
            return cls.from_dict(json.loads(text))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ConfigError("The plan is not valid JSON (make one with 'study plan ... --out PLAN.json').") from None

    @classmethod
    def load(cls, path: Path) -> Plan:
        if not Path(path).is_file():
            raise ConfigError(f"No plan file at {path}.")
        return cls.from_json(Path(path).read_bytes())

    def settings_key(self) -> str:
        """The hash of everything every item shares: a changed setting gives every item a new id."""
        shared = {k: v for k, v in self.to_dict().items()
                  if k in ("objective", "size", "judges", "precision", "threads", "version")}
        shared["config"] = {k: v for k, v in self.config.to_dict().items() if k != "seed"}
        if self.workload != "bias":  # (a bias plan's ids stay what they were before workloads)
            shared["workload"] = self.workload
        if self.workload == "gallery":
            shared["featviz"] = {name: getattr(self.featviz, name) for name in GALLERY_SETTINGS}
        return _digest(shared)

    def item_config(self, item: Item) -> DreamConfig:
        return replace(self.config, seed=item.seed)


def _digest(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


# ---------------------------------------------------------------- expansion


def _files_in(folder: Path) -> list[ImageRef]:
    found = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not found:
        raise ImageError(f"No PNG, JPEG or WebP images in the folder {folder}.")
    return [ImageRef("file", p.relative_to(folder).as_posix(), str(p.resolve())) for p in found]


def resolve_images(sources: tuple[str, ...]) -> list[ImageRef]:
    """Folders (recursively), globs, files and bundled sample names, in the order given, each once."""
    out: list[ImageRef] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            out += _files_in(path)
        elif path.is_file():
            out.append(ImageRef("file", path.name, str(path.resolve())))
        elif any(ch in source for ch in "*?["):
            matches = sorted(Path(m) for m in glob.glob(source, recursive=True) if Path(m).is_file())
            if not matches:
                raise ImageError(f"No file matches {source}.")
            out += [ImageRef("file", m.name, str(m.resolve())) for m in matches]
        elif source == ALL_SAMPLES:
            out += [ImageRef("sample", s.path.stem) for s in sample_images()]
        else:
            out.append(ImageRef("sample", Path(ImageSource.sample(source).name).stem))
    return _unique(out)


def _unique(refs: list[ImageRef]) -> list[ImageRef]:
    """The same file given twice is one image; two different files of one name get (2), (3)."""
    seen_paths: set[tuple[str, str, str]] = set()
    count: dict[str, int] = {}
    out = []
    for ref in refs:
        identity = (ref.kind, ref.name, ref.path)
        if identity in seen_paths:
            continue
        seen_paths.add(identity)
        count[ref.name] = count.get(ref.name, 0) + 1
        out.append(ref if count[ref.name] == 1 else replace(ref, name=f"{ref.name} ({count[ref.name]})"))
    return out


def _layers_of(plan: Plan, model: str) -> list[tuple[float, LayerInfo]]:
    table = zoo.layer_table(zoo.get_spec(model))
    picked = [(depth, zoo.layer_at_depth(table, depth)) for depth in check_depths(plan.depths)] \
        if plan.depths else []
    for name in plan.layers:
        info = next((i for i in table if name in (i.name, i.alias)), None)
        if info is None:
            raise ConfigError(f"{model} has no dream-able layer '{name}'. Layers: {', '.join(i.alias for i in table)}")
        picked.append((info.depth, info))
    return picked


def expand(plan: Plan) -> list[Item] | list[ChannelItem]:
    """Every item of the plan, each with its stable id, image by image (then seed, model, layer): a study
    stopped part-way has every model on the images it reached, and each original is judged once."""
    plan.validate()
    if plan.workload == "gallery":
        return _expand_gallery(plan)
    images = resolve_images(plan.images) + [ImageRef("noise", f"noise seed {s}", seed=s)
                                            for s in range(plan.noise_seeds)]
    settings = plan.settings_key()
    layers = {model: _layers_of(plan, model) for model in plan.models}
    items: list[Item] = []
    seen: set[str] = set()
    for image in images:
        for seed in plan.seeds:
            for model in plan.models:
                for depth, layer in layers[model]:
                    item_id = _digest({"settings": settings, "model": model, "layer": layer.name, "depth": depth,
                                       "image": image.key(), "seed": seed})[:20]
                    if item_id not in seen:
                        seen.add(item_id)
                        items.append(Item(item_id, model, layer.name, layer.alias, layer.depth, depth, image, seed))
    return items



def _expand_gallery(plan: Plan) -> list[ChannelItem]:
    """Model by model, layer by layer, seed by seed, channel by channel: a batch of consecutive items is
    one batched optimisation."""
    settings = plan.settings_key()
    items: list[ChannelItem] = []
    seen: set[str] = set()
    for model in plan.models:
        for depth, layer in _layers_of(plan, model):
            count = layer.shape[0]
            channels = plan.channels or tuple(range(count))
            if max(channels) >= count:
                raise ConfigError(f"{model} {layer.alias} has channels 0 to {count - 1}, not {max(channels)}.")
            for seed in plan.seeds:
                for channel in channels:
                    item_id = _digest({"settings": settings, "model": model, "layer": layer.name, "depth": depth,
                                       "channel": channel, "seed": seed})[:20]
                    if item_id not in seen:
                        seen.add(item_id)
                        items.append(ChannelItem(item_id, model, layer.name, layer.alias, layer.depth, depth,
                                                 channel, seed))
    return items
