"""One schema layer for every file a user hands in: dream recipes, animation (zoom) recipes, grid recipes.

Files are untrusted. Each kind of file has one pydantic model here with strict types (no float
where an integer belongs, no string for a number), finite numbers only, ranges, and limits on
string and list lengths; the raw JSON is refused before parsing when it is too large or nested
too deeply (Python's JSON parser recurses, so a 100,000-deep file would end in RecursionError).
A failed validation is one ConfigError line that names the field, never a traceback.

The same models publish each file's JSON Schema (SCHEMAS, `python -m analysis schema KIND`).
A new kind of file is one more entry in SCHEMAS.

The library's own settings dataclasses (DreamConfig, ZoomSettings) validate through the same
models, so every range is written once, here.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from analysis.errors import ConfigError
from analysis.images import MAX_DREAM_SIDE
from analysis.zoo import PRECISIONS

MAX_JSON_BYTES = 16 * 2**20
"""A recipe file (or a PNG's metadata, or a bundle's recipe.json) larger than this is refused unread."""

MAX_JSON_DEPTH = 48
"""Deepest nesting of lists and objects a file may have; the deepest the tool writes is about 12."""

MAX_SEED = 2**63 - 1
"""Largest seed: torch.Generator.manual_seed takes 64-bit seeds; the tool keeps to the signed range."""

RECIPE_VERSION = 1
GRID_RECIPE_VERSION = 1
NORMALISATIONS = ("mean-abs", "std", "laplacian")
MAX_CHANNEL = 100_000
"""No dream-able layer has this many channels, and no model this many classes; the model's own count is
checked once the model is known."""
MAX_GRID_SIDE = 64
"""Rows (and cells per row) a grid recipe may have."""


# ---------------------------------------------------------------- building blocks


class _Strict(BaseModel):
    """Strict types, finite floats, unknown keys refused, frozen."""

    model_config = ConfigDict(strict=True, allow_inf_nan=False, extra="forbid", frozen=True)


def _rule(title: str, rule: str, ok: Callable[[Any], bool], schema: dict) -> Any:
    """A range check whose error says the rule in words ("octaves must be 1 to 10"), published in the schema."""

    def check(value: Any) -> Any:
        if not ok(value):
            raise PydanticCustomError("out_of_range", "{title} {rule}", {"title": title, "rule": rule})
        return value

    return [AfterValidator(check), Field(title=title, description=rule, json_schema_extra=schema)]


def bounded(kind: type, low: float, high: float, title: str, unit: str = "") -> Any:
    """kind (int or float) from low to high inclusive."""
    rule = f"must be {low:g} to {high:g}{' ' + unit if unit else ''}"
    if kind is int and high >= 2**53:  # :g would round a 64-bit bound
        rule = f"must be {low} to {high}"
    return Annotated[kind, *_rule(title, rule, lambda v: low <= v <= high, {"minimum": low, "maximum": high})]


def _text(max_length: int, min_length: int = 0) -> Any:
    return Annotated[str, Field(min_length=min_length, max_length=max_length)]


def _version(current: int, label: str) -> Any:
    def check(value: int) -> int:
        if value > current:
            raise PydanticCustomError("sentence", f"This {label} was written by a newer version of the tool.")
        if value < 1:
            raise PydanticCustomError("out_of_range", "{title} {rule}",
                                      {"title": "version", "rule": "must be 1 or more"})
        return value

    return Annotated[int, AfterValidator(check), Field(json_schema_extra={"minimum": 1, "maximum": current})]


def _sha256(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise PydanticCustomError("sha256", "is not a sha256 (64 lower-case hex digits)")
    return value


def _file_name(value: str) -> str:
    """A recipe names its photo by its base name: it is looked up beside the recipe, never elsewhere."""
    if value in (".", "..") or any(c in value for c in "/\\\0"):
        raise PydanticCustomError("file_name", "must be a file name without folders")
    return value


FileName = Annotated[str, Field(max_length=255), AfterValidator(_file_name)]
Sha256 = Annotated[str, AfterValidator(_sha256), Field(json_schema_extra={"pattern": "^[0-9a-f]{64}$"})]
Seed = bounded(int, 0, MAX_SEED, "seed")
Side = bounded(int, 16, MAX_DREAM_SIDE, "size", "px")
ModelName = _text(120, 1)
LayerName = _text(200, 1)


def _tagged(key: str, choices: tuple[str, ...]) -> Discriminator:
    """A union chosen by data[key]; its members are tagged "key=value" so error paths can drop the tag."""
    def tag(data: object) -> str | None:  # a dict when validating, a model when serialising
        if isinstance(data, dict):
            return f"{key}={data.get(key)}"
        return f"{key}={getattr(data, key)}" if isinstance(data, BaseModel) else None

    return Discriminator(tag,
                         custom_error_type="unknown_kind", custom_error_message=key,
                         custom_error_context={"key": key, "expected": " or ".join(choices)})


# ---------------------------------------------------------------- dream settings


class DreamSettings(_Strict):
    """DreamConfig. The defaults are DreamConfig's (a test keeps them equal)."""

    octaves: bounded(int, 1, 10, "octaves") = 4
    octave_scale: bounded(float, 1.05, 3.0, "octave scale") = 1.4
    iterations: bounded(int, 1, 500, "iterations per octave") = 10
    step_size: Annotated[float, *_rule("step size", "must be above 0 and at most 0.5", lambda v: 0 < v <= 0.5,
                                       {"exclusiveMinimum": 0, "maximum": 0.5})] = 1.5 / 255
    jitter: bounded(int, 0, 256, "jitter", "px") = 32
    normalization: Literal[NORMALISATIONS] = "mean-abs"
    clip: bool = True
    seed: Seed = 0
    tile_size: Annotated[int, *_rule("tile size", "must be 0 (off) or 64 to 4096 px",
                                     lambda v: v == 0 or 64 <= v <= MAX_DREAM_SIDE,
                                     {"minimum": 0, "maximum": MAX_DREAM_SIDE})] = 0


class ZoomSettingsSchema(_Strict):
    """ZoomSettings: frame i dreams with seed + i."""

    frames: bounded(int, 1, 1000, "frames")
    zoom: bounded(float, 0, 0.5, "zoom per frame")
    rotation: bounded(float, -45, 45, "rotation per frame", "degrees") = 0.0
    fps: bounded(int, 1, 60, "frames per second") = 12


def _seed_range_rule(seed: int, count: int) -> str | None:
    """A run of `count` dreams uses seeds seed .. seed + count - 1: all of them must be valid seeds, or a
    zoom fails on a later frame after the first ones were dreamed. The rule broken, or None."""
    if 0 <= seed <= MAX_SEED - count + 1:
        return None
    return f"must be 0 to {MAX_SEED - count + 1} for {count} frames (frame i dreams with seed + i, up to {MAX_SEED})"


def check_seed_range(seed: int, count: int) -> None:
    """Before a run of `count` dreams starts (frame i uses seed + i): one ConfigError if a seed is out of range."""
    rule = _seed_range_rule(seed, count)
    if rule:
        raise ConfigError(f"Invalid setting: seed {rule}.")


# ---------------------------------------------------------------- objectives


class LayerObjective(_Strict):
    type: Literal["layer"]
    layer: LayerName


class ChannelsObjective(_Strict):
    type: Literal["channels"]
    layer: LayerName
    channels: Annotated[list[bounded(int, 0, MAX_CHANNEL, "channel")], Field(min_length=1, max_length=4096)]


class ClassObjective(_Strict):
    type: Literal["class"]
    classes: Annotated[list[bounded(int, 0, MAX_CHANNEL, "class")], Field(min_length=1, max_length=4096)]


class GuideObjective(_Strict):
    type: Literal["guide"]
    layer: LayerName
    guide_png: _text(MAX_JSON_BYTES, 1)  # base64 of a PNG; decoded and read as an untrusted image


class Term(_Strict):
    weight: bounded(float, -1e6, 1e6, "weight")
    objective: Objective


class SumObjective(_Strict):
    type: Literal["sum"]
    terms: Annotated[list[Term], Field(min_length=1, max_length=64)]


Objective = Annotated[
    Annotated[LayerObjective, Tag("type=layer")] | Annotated[ChannelsObjective, Tag("type=channels")]
    | Annotated[ClassObjective, Tag("type=class")] | Annotated[GuideObjective, Tag("type=guide")]
    | Annotated[SumObjective, Tag("type=sum")],
    _tagged("type", ("layer", "channels", "class", "guide", "sum"))]
Term.model_rebuild()


# ---------------------------------------------------------------- start images


class NoiseImage(_Strict):
    kind: Literal["noise"]
    size: Annotated[list[Side], Field(min_length=2, max_length=2, description="height, width")] = [224, 224]
    seed: Seed = 0


class SampleImage(_Strict):
    kind: Literal["sample"]
    name: Annotated[FileName, Field(min_length=1)]
    sha256: Annotated[str, AfterValidator(lambda v: v and _sha256(v)),
                      Field(json_schema_extra={"pattern": "^([0-9a-f]{64})?$"})] = ""  # "": not checked


class FileImage(_Strict):
    kind: Literal["file"]
    name: FileName
    sha256: Sha256


StartImage = Annotated[
    Annotated[NoiseImage, Tag("kind=noise")] | Annotated[SampleImage, Tag("kind=sample")]
    | Annotated[FileImage, Tag("kind=file")],
    _tagged("kind", ("noise", "sample", "file"))]


# ---------------------------------------------------------------- files


class DreamRecipeFile(_Strict):
    """A dream recipe (`dream --recipe`, the Dream page): replays to the same pixels on the CPU."""

    recipe_version: _version(RECIPE_VERSION, "recipe") = RECIPE_VERSION
    model: ModelName
    objective: Objective
    config: DreamSettings = DreamSettings()
    image: StartImage
    max_side: bounded(int, 16, MAX_DREAM_SIDE, "max_side", "px") = 512
    precision: Literal[PRECISIONS] = "fp32"


class AnimationRecipeFile(_Strict):
    """A zoom animation (`zoom --recipe`, the Animation page): the first frame's dream and the zoom."""

    recipe_version: _version(RECIPE_VERSION, "animation recipe") = RECIPE_VERSION
    kind: Literal["animation"]
    zoom: ZoomSettingsSchema
    dream: DreamRecipeFile

    @model_validator(mode="after")
    def _seeds_in_range(self) -> AnimationRecipeFile:
        rule = _seed_range_rule(self.dream.config.seed, self.zoom.frames)
        if rule:
            raise PydanticCustomError("out_of_range", "{title} {rule}",
                                      {"title": "seed", "rule": rule, "at": "dream.config.seed"})
        return self


class GridRecipeFile(_Strict):
    """A grid recipe (a bundle's recipe.json; `grid --recipe`, the Export page): one dream recipe per cell."""

    grid_recipe_version: _version(GRID_RECIPE_VERSION, "grid recipe") = GRID_RECIPE_VERSION
    title: _text(1000) | None = ""
    row_labels: Annotated[list[_text(500)], Field(max_length=MAX_GRID_SIDE)] = []
    col_labels: Annotated[list[_text(500)], Field(max_length=MAX_GRID_SIDE)] = []
    footnote: _text(10_000) | None = ""
    cell_side: bounded(int, 16, MAX_DREAM_SIDE, "cell_side", "px") | None = None
    cells: Annotated[list[Annotated[list[DreamRecipeFile | None], Field(min_length=1, max_length=MAX_GRID_SIDE)]],
                     Field(min_length=1, max_length=MAX_GRID_SIDE)]

    @model_validator(mode="after")
    def _something_to_dream(self) -> GridRecipeFile:
        if not any(cell for row in self.cells for cell in row):
            raise PydanticCustomError("sentence", "The grid recipe has no cells to dream.")
        return self


PLAN_VERSION = 1


class GallerySettings(_Strict):
    """A gallery plan's feature-visualisation settings (FeatvizConfig's; size and seed are the plan's)."""

    steps: bounded(int, 1, 4096, "steps") = 256
    learning_rate: bounded(float, 1e-6, 1.0, "learning rate") = 0.05
    transforms: bool = True
    parameterisation: Literal["fft", "maco"] = "fft"


class StudyPlanFile(_Strict):
    """A study plan (`study plan ... --out PLAN.json`): models x layers x images x seeds, one dream each."""

    version: _version(PLAN_VERSION, "plan") = PLAN_VERSION
    models: Annotated[list[ModelName], Field(min_length=1, max_length=64)]
    depths: Annotated[list[bounded(float, 0, 1, "depth")], Field(max_length=64)] = []
    layers: Annotated[list[LayerName], Field(max_length=64)] = []
    images: Annotated[list[_text(4096, 1)], Field(max_length=100_000)] = []
    noise_seeds: bounded(int, 0, 10_000, "noise seeds") = 0
    seeds: Annotated[list[Seed], Field(min_length=1, max_length=1000)] = [0]
    objective: Literal["layer-l2"] = "layer-l2"
    config: DreamSettings = DreamSettings()
    preset: _text(40) = ""
    size: Side = 224
    judges: Annotated[list[ModelName], Field(max_length=8)] | None = None
    precision: Literal[PRECISIONS] = "fp32"
    threads: bounded(int, 1, 256, "threads per item") | None = None
    workload: Literal["bias", "sweep", "gallery"] = "bias"
    channels: Annotated[list[bounded(int, 0, 100_000, "channel")], Field(max_length=100_000)] = []
    featviz: GallerySettings | None = None


class _Open(BaseModel):
    """Typed where the tool reads a value, free elsewhere: a result's metadata is a run record that grows."""

    model_config = ConfigDict(strict=True, extra="allow")


class _RecordedSettings(_Open):
    octave_scale: float | None = None
    step_size: float | None = None
    zoom: float | None = None
    rotation: float | None = None


class _RecordedMotion(_Open):
    frames: int | None = None
    zoom: float | None = None
    rotation: float | None = None


class _RecordedRecipe(_Open):
    image: dict | None = None
    max_side: int | None = None


class ResultMetadata(_Open):
    """What the tool reads from a result PNG's metadata (a grid labels its cells with it, a replay takes its
    recipe): each of these of the type the tool writes, so a hostile PNG is one line, not a traceback."""

    model: str | None = None
    training_data: str | list[str] | None = None  # a comparison grid carries both models'
    layers: list[str] | None = None
    objective_text: str | None = None
    seed: int | None = None
    config: _RecordedSettings | None = None
    animation: _RecordedMotion | None = None
    recipe: _RecordedRecipe | None = None
    steps: Annotated[int, Field(ge=0)] | None = None
    versions: dict[str, str | None] | None = None
    device: str | None = None


SCHEMAS: dict[str, type[BaseModel]] = {
    "recipe": DreamRecipeFile,
    "zoom": AnimationRecipeFile,
    "bundle": GridRecipeFile,
    "plan": StudyPlanFile,
}
"""Every file kind a user hands in, by the name `python -m analysis schema NAME` takes."""


def json_schema(kind: str) -> dict:
    """The JSON Schema (draft 2020-12) of one file kind."""
    if kind not in SCHEMAS:
        raise ConfigError(f"Unknown file kind '{kind}': choose {', '.join(SCHEMAS)}.")
    schema = SCHEMAS[kind].model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


# ---------------------------------------------------------------- parsing


def parse_json(text: str | bytes, label: str) -> object:
    """Untrusted JSON text to Python values: too large, not text, not JSON, too deep: one ConfigError."""
    raw = text.encode() if isinstance(text, str) else bytes(text)
    if len(raw) > MAX_JSON_BYTES:
        raise ConfigError(f"The {label} is larger than {MAX_JSON_BYTES // 2**20} MB.")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"The {label} is not a text file (a {label} is JSON; is this an image or a ZIP?).") from None
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ConfigError(f"The {label} is nested more than {MAX_JSON_DEPTH} levels deep.")
    try:
        return json.loads(raw)
    except json.JSONDecodeError as err:
        raise ConfigError(f"The {label} is not valid JSON ({err.__class__.__name__}).") from None
    except ValueError as err:  # e.g. an integer of more than 4300 digits
        raise ConfigError(f"The {label} is not valid JSON ({str(err).split(':')[0]}).") from None


def json_depth(raw: bytes) -> int:
    """Deepest nesting of [ and { outside strings, in linear time and without recursion.

    Escaped backslash pairs go first, then escaped quotes, so the quotes left delimit strings; the
    text between every other quote is outside strings. Exact for valid JSON; for invalid JSON the
    parser gives its own error.
    """
    unescaped = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    outside = b"".join(unescaped.split(b'"')[::2])
    brackets = np.frombuffer(outside.translate(None, bytes(set(range(256)) - set(b"[]{}"))), dtype=np.uint8)
    if not len(brackets):
        return 0
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps, dtype=np.int32).max())


def _depth_of(data: object) -> int:
    """Nesting depth of parsed values, without recursion (stops counting past the limit)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > MAX_JSON_DEPTH:
                return deepest
            stack += [(child, depth + 1) for child in (item.values() if isinstance(item, dict) else item)]
    return deepest


Model = TypeVar("Model")


_ADAPTERS: dict[int, tuple[object, TypeAdapter]] = {}


def _adapter(schema: object) -> TypeAdapter:
    """One TypeAdapter per schema (by identity: Annotated types with dicts inside are not hashable)."""
    if id(schema) not in _ADAPTERS:
        _ADAPTERS[id(schema)] = (schema, TypeAdapter(schema))
    return _ADAPTERS[id(schema)][1]


def validate(schema: type[Model], data: object, label: str, section: tuple[str, ...] = (), worded: bool = True
             ) -> Model:
    """data checked against schema (a model, or a type such as StartImage); the first problem becomes one
    ConfigError line naming the field.

    section: where data sits in a file (("config",) for a DreamConfig), for the wording of errors;
    worded=False: plain wording (path: problem) for files that are not recipes, such as a PNG's run record.
    """
    if _depth_of(data) > MAX_JSON_DEPTH:
        raise ConfigError(f"The {label} is nested more than {MAX_JSON_DEPTH} levels deep.")
    try:
        return _adapter(schema).validate_python(data)
    except ValidationError as err:
        first = err.errors(include_url=False)[0]
        raise ConfigError(describe(first, label, section, worded)) from None


# ---------------------------------------------------------------- one line per problem


def _shown(value: object) -> str:
    text = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__.replace("dict", "an object")
    text = {"list": "a list"}.get(text, text)
    return text if len(text) <= 40 else text[:37] + "..."


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_PROBLEMS = {
    "int_type": "is not a whole number", "float_type": "is not a number", "finite_number": "is not a finite number",
    "string_type": "is not text", "bool_type": "is not true or false", "list_type": "is not a list",
    "model_type": "is not an object", "dict_type": "is not an object", "none_required": "must be null",
}


def _problem(error: ErrorDetails) -> str:
    kind, ctx, got = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "is missing"
    if kind == "extra_forbidden":
        return "is not a known key"
    if kind in _PROBLEMS:
        return f"{_PROBLEMS[kind]}, got {_shown(got)}"
    if kind in ("too_long", "too_short"):
        limit = f"at most {ctx.get('max_length')}" if kind == "too_long" else f"at least {ctx.get('min_length')}"
        return f"has {ctx.get('actual_length')} items; it may have {limit}"
    if kind in ("string_too_long", "string_too_short"):
        limit = f"at most {ctx.get('max_length')}" if kind == "string_too_long" else f"at least {ctx.get('min_length')}"
        return f"must be {limit} characters long"
    if kind in ("out_of_range", "file_name"):
        return f"{ctx.get('rule', error['msg'])}, got {_shown(got)}"
    if kind == "literal_error":
        return f"must be {ctx.get('expected')}, got {_shown(got)}"
    return f"{error['msg'][:1].lower()}{error['msg'][1:]}"


def describe(error: ErrorDetails, label: str, section: tuple[str, ...] = (), worded: bool = True) -> str:
    """One line for one validation error, worded for where it is in a recipe (worded) or plainly."""
    kind, ctx = error["type"], error.get("ctx") or {}
    at = tuple(ctx["at"].split(".")) if ctx.get("at") else ()  # a check on the whole file names its field
    loc = (*section, *(part for part in error["loc"] if not (isinstance(part, str) and "=" in part)), *at)
    if kind == "sentence":
        return error["msg"]
    if kind == "unknown_kind" and not isinstance(error["input"], dict):
        return (f"The {label} is incomplete or malformed: {_path(loc) or 'it'} is not an object, "
                f"got {_shown(error['input'])}.")
    if kind in ("literal_error", "unknown_kind") and "config" not in loc:
        key = ctx.get("key") or (loc[-1] if loc else "value")
        field = {"type": "objective type", "kind": "image kind"}.get(str(key), str(key))
        got = error["input"].get(key) if kind == "unknown_kind" and isinstance(error["input"], dict) else error["input"]
        choices = ctx.get("expected") or ""
        if kind == "unknown_kind" and got is None:  # the key itself is missing: "Unknown ... None" misled
            return f"The {label} gives no {field}" + (f": choose {choices}." if choices else ".")
        return f"Unknown {field} {_shown(got)} in the {label}" + (f": choose {choices}." if choices else ".")
    where = _path(loc)
    if not worded:
        return f"The {label} is malformed: {where or 'it'} {_problem(error)}."
    if "objective" in loc[:-1]:  # inside the objective (a missing objective is a missing key below)
        at = loc.index("objective")
        inner, outer = loc[at + 1:], _path(loc[:at])
        # a missing key keeps the wording the Dream page has always shown ("... malformed (KeyError: 'layer').")
        detail = f"KeyError: '{inner[-1]}'" if kind == "missing" else f"{_path(inner) or 'it'} {_problem(error)}"
        return f"The {label}'s {outer + ' ' if outer else ''}objective is malformed ({detail})."
    if loc[:1] == ("zoom",) and len(loc) > 1:  # an animation's zoom section
        key = _path(loc[1:])
        if kind == "out_of_range":
            return f"Invalid animation setting: {error['msg']}."
        if kind == "missing":
            return f"The {label}'s zoom settings lack '{key}'."
        return f"The {label}'s zoom settings are malformed ({key} {_problem(error)})."
    if "config" in loc:
        at = loc.index("config")
        key, outer = _path(loc[at + 1:]), _path(loc[:at])
        place = f" (in {outer})" if outer else ""
        if kind == "out_of_range":
            return f"Invalid setting: {error['msg']}{place}."
        return f"Invalid setting: {key or 'the settings'} {_problem(error)}{place}."
    if kind == "out_of_range":
        return f"The {label} is malformed: {where} {_problem(error)}."
    return f"The {label} is incomplete or malformed: {where or 'it'} {_problem(error)}."
