"""Small widget groups. Each `*_ui()` draws its widgets and returns the chosen values only.

Keys that start with 'keep.' survive page switches (see state.keep_widget_values); those
widgets are seeded with state.default() and never pass index=/value= themselves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import streamlit as st
import torch
from PIL import Image

from analysis import labels as label_files
from analysis import wording, zoo
from analysis.drawing import square_thumbnail
from analysis.dream import PRESETS, DreamConfig, preset
from analysis.errors import ConfigError, ImageError
from analysis.images import load_image, tensor_to_pil, to_rgb
from analysis.labels import SampleImage
from analysis.objectives import DEFAULT_DEPTH, Channels, ClassLogit, Guide, LayerL2, Objective, parse_channels
from analysis.recipes import ImageSource
from analysis.zoo import LOGITS, LayerInfo, ModelSpec
from dashboard import progress, state
from dashboard.readings import depth_sentence

UPLOAD_TYPES = ["png", "jpg", "jpeg", "webp"]
UPLOAD_LIMIT_MB = 20  # also server.maxUploadSize in .streamlit/config.toml
HIGH_DEPTH = 0.65  # from here on (parts, objects) a small image or a light preset leaves only texture


# ---------------------------------------------------------------- model and layer


@dataclass(frozen=True)
class ModelChoice:
    name: str  # registry name; '<name>-untrained' for the twin
    spec: ModelSpec
    runnable: bool
    reason: str | None = None  # why it cannot run

    @property
    def title(self) -> str:
        return self.spec.title


def run_button(label: str, key: str, icon: str, choice: ModelChoice, slot: str, image: ImageChoice | None = None
               ) -> bool:
    """The page's primary button: says why the model cannot run, and is off while the slot's job runs
    or while the start image is unreadable (the uploader already says why, once).

    True only on a click that may start a job (the extra check covers a job started by this very rerun).
    """
    if not choice.runnable:
        state.show_error(choice.reason)
    unreadable = image is not None and image.unreadable
    clicked = st.button(label, type="primary", key=key, icon=icon, width="stretch",
                        disabled=progress.running(slot) or not choice.runnable or unreadable)
    return clicked and not progress.running(slot)


def model_label(spec: ModelSpec, present: bool) -> str:
    """'EfficientNet-Lite0 (ImageNet)'; '✗ ' in front when its weight file is missing."""
    return ("" if present else "✗ ") + wording.model_label(spec.title, spec.training_data)


def model_ui() -> ModelChoice:
    """Sidebar: every model in the zoo; ones without weights are listed but not runnable."""
    names = zoo.model_names()
    specs = {n: zoo.get_spec(n) for n in names}
    present = {n: zoo.weights_present(s) for n, s in specs.items()}
    state.default("keep.model", zoo.DEFAULT_MODEL, names)
    runs_untrained = bool(st.session_state.get("keep.twin"))  # the toggle below: every twin runs, no ✗
    name = st.sidebar.selectbox(
        "Model", names, key="keep.model", format_func=lambda n: model_label(specs[n], present[n] or runs_untrained),
        help="✗ = no weight file on this machine yet: the Models page says which file and where to put it. "
             "Every model's untrained twin runs without one.")
    twin = st.sidebar.toggle(
        "Untrained twin (random weights)", key="keep.twin",
        help="The same architecture with seeded random weights: the control that shows which patterns "
             "come from the training data and which from the architecture alone.")
    if twin:
        spec = specs[name].untrained()
        return ModelChoice(spec.name, spec, runnable=True)
    if not present[name]:
        st.sidebar.caption(":orange[:material/warning: No weight file for this model here: it cannot dream. "
                           "Turn on the untrained twin, or see the Models page.]")
        return ModelChoice(name, specs[name], runnable=False, reason=zoo.missing_weights_message(specs[name]))
    return ModelChoice(name, specs[name], runnable=True)


def choose_model(name: str, twin: bool = False, layer: str | None = None) -> None:
    """Put a model (and one of its layers, by module name) into the sidebar's pickers before they are drawn:
    what a shared link opens."""
    st.session_state["keep.model"], st.session_state["keep.twin"] = name, twin
    if layer is not None:
        st.session_state[f"keep.layer.{name}"] = layer


def dreamable_layers(spec: ModelSpec) -> list[LayerInfo]:
    """Layers a layer objective can use (the class-score pseudo-layer is left out)."""
    return [info for info in zoo.layer_table(spec) if info.name != LOGITS]


def layer_label(info: LayerInfo) -> str:
    """'block10 · 112x14x14 · 0.59': alias, output shape at 224 px, relative depth (short for the sidebar)."""
    return f"{info.alias} · {'x'.join(map(str, info.shape))} · {info.depth:.2f}"


def layer_ui(choice: ModelChoice) -> LayerInfo:
    """Sidebar: the dream-able layers of the model, with output shape and relative depth."""
    base = choice.spec.base
    layers = dreamable_layers(zoo.get_spec(base))
    by_name = {info.name: info for info in layers}
    key = f"keep.layer.{base}"
    state.default(key, zoo.layer_at_depth(layers, DEFAULT_DEPTH).name, list(by_name))
    name = st.sidebar.selectbox(
        "Layer", list(by_name), key=key,
        format_func=lambda n: layer_label(by_name[n]),
        help="Output channels x height x width at 224 px, and depth from 0 (first layer) to 1 (last). "
             "Low layers amplify strokes and edges, high layers parts and objects.")
    info = by_name[name]
    coarse = f" It sees the picture at {info.shape[-2]}x{info.shape[-1]} per 224 px: give it 384 px or more and " \
             "the Deep preset, or it stays texture." if info.depth >= HIGH_DEPTH and len(info.shape) == 3 else ""
    st.sidebar.caption(f"At depth {info.depth:.2f} a dream shows {depth_sentence(info.depth)}.{coarse}")
    return info


PRECISION_CHOICES = ["auto", *zoo.PRECISIONS]


def device_ui() -> str:
    """Sidebar: the device and precision choices; returns the device in use ('cpu', 'cuda', 'mps')."""
    state.default(state.DEVICE_KEY, "auto", state.available_devices())
    st.sidebar.selectbox("Device", state.available_devices(), key=state.DEVICE_KEY,
                         help="auto = CUDA GPU, then Apple MPS, then the CPU.")
    state.default(state.PRECISION_KEY, "auto", PRECISION_CHOICES)
    device = state.current_device()
    native = zoo.native_bf16(torch.device(device))
    st.sidebar.selectbox("Precision", PRECISION_CHOICES, key=state.PRECISION_KEY,
                         help=f"auto = bf16 autocast on a CUDA GPU with bf16, float32 elsewhere. bf16 on this "
                              f"{device.upper()}: {'native' if native else 'emulated, far slower than float32'}. "
                              "Its dreams differ a little from float32's.")
    precision = state.current_precision()
    st.sidebar.caption(f"Running on **{device}** in {precision}"
                       + (" · small sizes are quickest" if device == "cpu" else ""))
    if note := zoo.precision_note(precision, torch.device(device)):
        (st.sidebar.caption if native else st.sidebar.warning)(note)
    return device


def kept_multiselect(label: str, options: list, key: str, default: list, **kwargs) -> list:
    """A multiselect whose kept value ('keep.*') drops the options that have gone since (a weights file
    removed, a judge no longer offered), which Streamlit would otherwise refuse as the widget's value."""
    state.default(key, list(default))
    st.session_state[key] = [value for value in st.session_state[key] if value in options]
    return st.multiselect(label, options, key=key, **kwargs)


def count_slider(label: str, top: int, key: str, default: int, **kwargs) -> int:
    """A count from 1 to `top`, whose kept value is cut to `top` (another model has fewer layers); 1, and no
    slider, when `top` is 1."""
    state.default(key, min(default, top))
    st.session_state[key] = min(st.session_state[key], top)
    return int(st.slider(label, 1, top, key=key, **kwargs)) if top > 1 else 1


def forget(*keys: str) -> None:
    """Drop widgets' values, so the next run draws them at their defaults (a new result's own view)."""
    for key in keys:
        st.session_state.pop(key, None)


def stored_upload(prefix: str) -> tuple[str, bytes] | None:
    """The file image_ui(prefix) last received (name, bytes), even while another start image is chosen."""
    return st.session_state.get(f"{prefix}.upload_data")


# ---------------------------------------------------------------- images


@dataclass(frozen=True)
class ImageChoice:
    kind: str  # "sample" | "file" | "noise"
    title: str
    sample: SampleImage | None = None
    name: str = ""
    data: bytes | None = field(default=None, repr=False)
    seed: int = 0
    unreadable: bool = False  # an upload that is not an image: the uploader shows why

    @property
    def upload(self) -> bytes | None:
        """The uploaded file's bytes, which a bundle carries so its recipe can replay; None otherwise."""
        return self.data if self.kind == "file" else None

    def source(self, side: int) -> ImageSource:
        if self.kind == "sample":
            return ImageSource.sample(self.sample.path.name)
        if self.kind == "file":
            if not self.data:
                raise ImageError("No image uploaded yet: drop a PNG, JPEG or WebP file on the uploader.")
            return ImageSource.upload(self.name, self.data)
        return ImageSource("noise", size=(side, side), seed=self.seed)

    def load(self, side: int) -> torch.Tensor:
        """The start image, longest side at most `side` px (raises ImageError for a bad upload)."""
        try:
            return self.source(side).load(side)
        except ImageError as err:
            raise named(err, self.name) from None


def named(err: ImageError, name: str) -> ImageError:
    """analysis.images calls raw bytes 'the upload': say the file's name instead."""
    return ImageError(str(err).replace("the upload", name, 1)) if name else err


@functools.lru_cache(maxsize=32)
def thumbnail(path: Path, side: int = 160) -> Image.Image:
    """A bundled photo's square thumbnail, read once (the row of samples is drawn on every rerun)."""
    with Image.open(path) as image:
        return square_thumbnail(to_rgb(image), side)


def sample_name(sample: SampleImage) -> str:
    """A one-word name for a button: 'Cat', 'Coffee', 'Astronaut'."""
    return sample.path.stem.split("_")[0].capitalize()


def _pick(key: str, value: str) -> None:
    st.session_state[key] = value


def remembered_upload(prefix: str, label: str, types: list[str], max_mb: int, help: str | None = None
                      ) -> tuple[str, bytes] | None:
    """A file uploader whose file (name, bytes) is kept in the session from the moment it arrives, so a
    rerun that does not draw the uploader (another start image chosen, a page switch) still has it."""
    st.file_uploader(label, type=types, key=f"{prefix}.upload", on_change=_remember_upload,
                     args=(f"{prefix}.upload", f"{prefix}.upload_data"), max_upload_size=max_mb, help=help)
    return stored_upload(prefix)


def _remember_upload(uploader_key: str, store_key: str) -> None:
    upload = st.session_state.get(uploader_key)
    st.session_state[store_key] = (upload.name, upload.getvalue()) if upload is not None else None


def sample_picker(prefix: str, key: str, default_file: str = "cat_chelsea.jpg", per_row: int = 4) -> SampleImage:
    """Bundled photos as thumbnails; a click on a thumbnail's button chooses it (fewer per row
    in a narrow column, so the names under them are not cut short)."""
    samples = label_files.sample_images()
    files = [s.path.name for s in samples]
    state.default(key, default_file if default_file in files else files[0], files)
    chosen = st.session_state[key]
    for start in range(0, len(samples), per_row):
        columns = st.columns(per_row)
        for column, sample in zip(columns, samples[start:start + per_row]):
            with column:
                picked = sample.path.name == chosen
                st.image(thumbnail(sample.path), width="stretch")
                st.button(("✓ " if picked else "") + sample_name(sample), key=f"{prefix}.pick.{sample.path.stem}",
                          on_click=_pick, args=(key, sample.path.name), type="primary" if picked else "secondary",
                          width="stretch", help=sample.title)
    sample = samples[files.index(chosen)]
    st.caption(f"**{sample.title}** · {sample.licence}")
    return sample


def _upload_preview(cache_key: str, name: str, data: bytes) -> tuple[Image.Image | None, str | None]:
    """A small picture of the upload, or the one-line reason it cannot be read.

    Decoded once per upload (cached in Session State against the very bytes object), not on
    every rerun.
    """
    cached = st.session_state.get(cache_key)
    if cached is None or cached[0] is not data:
        try:
            picture = tensor_to_pil(load_image(data, max_side=320))
            cached = (data, picture, None)
        except ImageError as err:
            cached = (data, None, str(named(err, name)))
        st.session_state[cache_key] = cached
    return cached[1], cached[2]


def image_ui(prefix: str, allow_noise: bool = True, per_row: int = 4) -> ImageChoice:
    """Start image: a bundled sample (thumbnails), an upload (png/jpg/webp, size limit), or noise."""
    kinds = ["Sample photo", "My image"] + (["Noise"] if allow_noise else [])
    kind_key = f"keep.{prefix}.image_kind"
    state.default(kind_key, kinds[0], kinds)
    kind = st.radio("Start from", kinds, key=kind_key, horizontal=True, label_visibility="collapsed")
    if kind == "Sample photo":
        sample = sample_picker(prefix, f"keep.{prefix}.sample", per_row=per_row)
        return ImageChoice("sample", sample.title, sample=sample)
    if kind == "My image":
        stored = remembered_upload(prefix, f"PNG, JPEG or WebP, up to {UPLOAD_LIMIT_MB} MB (EXIF rotation is applied)",
                                   UPLOAD_TYPES, UPLOAD_LIMIT_MB)
        if not stored:
            return ImageChoice("file", "your image")
        name, data = stored
        picture, message = _upload_preview(f"{prefix}.upload_data.preview", name, data)
        if message:
            state.show_error(message)
        else:
            st.image(picture, caption=name, width=240)
        return ImageChoice("file", name, name=name, data=data, unreadable=bool(message))
    seed_key = f"keep.{prefix}.noise_seed"
    state.default(seed_key, 0)
    seed = st.number_input("Noise seed", min_value=0, max_value=2**31 - 1, step=1, key=seed_key,
                           help="Grey noise: the dream shows what the layer draws from nothing.")
    return ImageChoice("noise", f"noise (seed {int(seed)})", seed=int(seed))


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class SettingsChoice:
    preset: str
    size: int
    overrides: dict = field(default_factory=dict)

    def config(self) -> DreamConfig:
        """The DreamConfig; raises ConfigError for an impossible combination."""
        return preset(self.preset, **self.overrides)


def settings_ui(prefix: str, default_preset: str = "google", default_size: int = 384,
                max_size: int = 1024) -> SettingsChoice:
    """Image size, a preset with its description, or the detailed settings."""
    size_key, preset_key, detail_key = f"keep.{prefix}.size", f"keep.{prefix}.preset", f"keep.{prefix}.detailed"
    state.default(size_key, default_size)
    state.default(preset_key, default_preset, list(PRESETS))
    size = st.slider("Image size (longest side, px)", 64, max_size, step=32, key=size_key,
                     help="Larger is slower: the time grows with the number of pixels.")
    name = st.selectbox("Preset", list(PRESETS), key=preset_key, format_func=str.capitalize)
    st.caption(PRESETS[name].description)
    if not st.toggle("Detailed settings", key=detail_key):
        return SettingsChoice(name, int(size))
    base = PRESETS[name].config
    k = f"keep.{prefix}.{name}."
    for field_name, value in (("octaves", base.octaves), ("octave_scale", base.octave_scale),
                              ("iterations", base.iterations), ("step255", round(base.step_size * 255, 3)),
                              ("jitter", base.jitter), ("normalization", base.normalization),
                              ("seed", base.seed), ("tile_size", base.tile_size)):
        state.default(k + field_name, value)
    left, right = st.columns(2)
    octaves = left.number_input("Octaves", 1, 10, step=1, key=k + "octaves", help="Scales, smallest first.")
    scale = right.number_input("Octave scale", 1.05, 3.0, step=0.05, key=k + "octave_scale",
                               help="Size ratio between octaves.")
    iterations = left.number_input("Steps per octave", 1, 500, step=1, key=k + "iterations")
    step255 = right.number_input("Step size (/255 per step)", 0.01, 127.0, step=0.1, key=k + "step255",
                                 help="How far pixels move per step, in 1/255 units.")
    jitter = left.number_input("Jitter (px)", 0, 256, step=1, key=k + "jitter",
                               help="Random shift before each step; hides the network's grid.")
    norm = right.selectbox("Gradient normalisation", ["mean-abs", "std", "laplacian"], key=k + "normalization",
                           help="laplacian: every scale of detail gets an equal say (crisper).")
    seed = left.number_input("Seed", 0, 2**31 - 1, step=1, key=k + "seed")
    tile = right.number_input("Tile size (px, 0 = off)", 0, 4096, step=64, key=k + "tile_size",
                              help="Dream big images tile by tile to bound memory: 0 or 64 to 4096.")
    overrides = {"octaves": int(octaves), "octave_scale": float(scale), "iterations": int(iterations),
                 "step_size": float(step255) / 255, "jitter": int(jitter), "normalization": norm,
                 "seed": int(seed), "tile_size": int(tile)}
    return SettingsChoice(name, int(size), overrides)


# ---------------------------------------------------------------- objectives

OBJECTIVES = ("Whole layer", "Channels", "Class", "Guide image")
MAX_CHANNELS = 64  # more channels of one layer dream much like the whole layer, only slower to type


@dataclass(frozen=True)
class ObjectiveChoice:
    kind: str  # one of OBJECTIVES
    channels_text: str = ""
    classes: tuple[int, ...] = ()
    guide: ImageChoice | None = None

    def build(self, layer: LayerInfo, side: int = 224) -> Objective:
        """The objective for `layer`; raises ConfigError / ImageError with a clear line."""
        if self.kind == "Whole layer":
            return LayerL2(layer.alias)
        if self.kind == "Channels":
            return Channels(layer.alias, parse_channels(self.channels_text, layer.shape[0], layer.alias,
                                                            most=MAX_CHANNELS))
        if self.kind == "Class":
            if not self.classes:
                raise ConfigError("Choose at least one class to dream towards.")
            return ClassLogit(list(self.classes))
        if self.guide is None or (self.guide.kind == "file" and not self.guide.data):
            raise ImageError("Choose a guide image first.")
        return Guide(layer.alias, self.guide.load(min(side, 512)))

    def describe(self, layer: LayerInfo, labels: list[str] | None) -> str:
        if self.kind == "Class" and labels:
            return "class " + ", ".join(labels[c] for c in self.classes if 0 <= c < len(labels))
        if self.kind == "Channels":
            return f"channels {self.channels_text.strip()} of {layer.alias}"
        if self.kind == "Guide image" and self.guide is not None:
            return f"{layer.alias} guided by {self.guide.title}"
        return LayerL2(layer.alias).describe()  # the words its results and replays carry


def objective_ui(prefix: str, choice: ModelChoice, layer: LayerInfo) -> ObjectiveChoice:
    """What to amplify: the whole layer (Google's L2), some channels, a class, or a guide image."""
    kind_key = f"keep.{prefix}.objective"
    state.default(kind_key, OBJECTIVES[0], OBJECTIVES)
    kind = st.radio("What to amplify", OBJECTIVES, key=kind_key, horizontal=True, label_visibility="collapsed",
                    captions=["everything the layer sees", "chosen feature detectors", "make it more <class>",
                              "features of another picture"])
    if kind == "Channels":
        channels_key = f"keep.{prefix}.channels"
        state.default(channels_key, "0")
        text = st.text_input(f"Channels of {layer.alias} (0 to {layer.shape[0] - 1})", key=channels_key,
                             help="Comma-separated numbers or ranges, e.g. 3, 17, 40-42.")
        return ObjectiveChoice(kind, channels_text=text)
    if kind == "Class":
        names = zoo.class_labels(choice.spec.labels)
        if not names:
            st.info(f"{choice.title} has no class labels here, so it has no class objective.")
            return ObjectiveChoice(kind)
        classes_key = f"keep.{prefix}.classes.{choice.spec.labels}"
        state.default(classes_key, [])
        picked = st.multiselect(f"{choice.spec.labels} classes", list(range(len(names))), key=classes_key,
                                format_func=lambda i: f"{names[i]} ({i})", max_selections=8,
                                placeholder="Type to search, e.g. golden retriever")
        return ObjectiveChoice(kind, classes=tuple(picked))
    if kind == "Guide image":
        samples = label_files.sample_images()
        files = [s.path.name for s in samples]
        guide_key = f"keep.{prefix}.guide"
        state.default(guide_key, "coffee.jpg" if "coffee.jpg" in files else files[0], files)
        name = st.selectbox("Guide: a bundled photo", files, key=guide_key,
                            format_func=lambda f: samples[files.index(f)].title)
        st.file_uploader("…or your own guide image", type=UPLOAD_TYPES, key=f"{prefix}.guide_upload",
                         on_change=_remember_upload, args=(f"{prefix}.guide_upload", f"{prefix}.guide_data"),
                         max_upload_size=UPLOAD_LIMIT_MB)
        stored = st.session_state.get(f"{prefix}.guide_data")
        if stored:
            return ObjectiveChoice(kind, guide=ImageChoice("file", stored[0], name=stored[0], data=stored[1]))
        sample = samples[files.index(name)]
        return ObjectiveChoice(kind, guide=ImageChoice("sample", sample.title, sample=sample))
    return ObjectiveChoice(kind)
