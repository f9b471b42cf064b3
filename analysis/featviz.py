"""Feature visualisation: what each channel of a layer wants to see, rendered from noise.

After OpenAI Microscope and lucid/lucent. The image is lucent's parameterisation (an FFT
spectrum with decorrelated colour, squashed to [0, 1] by a sigmoid) and every step passes
through lucent's standard transforms (pad, jitter, scale, rotate) and is scored with
lucent's channel objective. The loop is our own, not lucent's ``render_vis``, because that
leaves forward hooks on the model at every call; ours goes through
``LoadedModel.activations`` (truncated forward, hooks removed in finally), so each model's
own preprocessing and layer names apply, and it renders many channels in one batched
optimisation: batch element i maximises channel c_i.

A render is reproducible from (model, weights sha256, layer, channel, settings): each
channel's starting spectrum is drawn from its own seeded generator and the transform
sequence from the run's seed, so a channel looks the same whichever batch it was rendered
in. Finished renders go into a disk cache under that key, so a layer browsed once browses
instantly afterwards.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import logging
import math
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from analysis import __version__, drawing
from analysis.errors import ConfigError, ImageError
from analysis.images import load_image, tensor_to_pil
from analysis.objectives import check_channels
from analysis.pngmeta import png_bytes, read_png_record
from analysis.progress import OnStep, Relay, ShouldCancel
from analysis.provenance import RunRecord, library_versions
from analysis.zoo import LayerInfo, LoadedModel, count_hooks

FEATVIZ_VERSION = 1
"""Part of every cache key: bump it when the algorithm changes what a render looks like."""

SORT_ORDERS = ("channel index", "excitation")
PARAMETERISATIONS = ("fft", "maco")
"""fft: lucent's (free Fourier coefficients, decorrelated colour); maco: Fel et al. 2023, only the
Fourier phase is optimised, under the fixed magnitude spectrum of natural photos."""
SPECTRUM_FILE = Path(__file__).resolve().parent.parent / "assets" / "spectra" / "natural_rfft128.npy"
MACO_STEP_SCALE = 20.0
"""MaCo's phase is in radians: its NAdam step is this times the learning rate (1.0 at the default
0.05, the step of MaCo's reference implementation, horama)."""

log = logging.getLogger("inceptionism.featviz")
ATTRIBUTION_SUFFIX = ".attribution.png"


@dataclass(frozen=True)
class FeatvizConfig:
    """How a channel is rendered. Everything but `batch` is part of the cache key."""

    size: int = 128  # px, square
    steps: int = 256
    learning_rate: float = 0.05  # Adam, as in lucent
    seed: int = 0
    transforms: bool = True  # lucent's standard_transforms: pad 12, jitter, scale, rotate
    batch: int = 16  # channels per batched optimisation (memory vs speed, not the picture)
    parameterisation: str = "fft"  # see PARAMETERISATIONS

    def validate(self) -> FeatvizConfig:
        checks = [
            (self.parameterisation in PARAMETERISATIONS,
             f"parameterisation must be {' or '.join(PARAMETERISATIONS)}, not '{self.parameterisation}'"),
            (32 <= self.size <= 512, "size must be 32 to 512 px"),
            (1 <= self.steps <= 4096, "steps must be 1 to 4096"),
            (0 < self.learning_rate <= 1, "learning rate must be above 0 and at most 1"),
            (0 <= self.seed < 2**63, "seed must be a non-negative integer"),
            (1 <= self.batch <= 256, "batch must be 1 to 256 channels"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"Invalid feature-visualisation setting: {message}.")
        return self

    def key_dict(self) -> dict:
        """The settings that change the picture (batch size does not)."""
        settings = asdict(self)
        del settings["batch"]
        if settings["parameterisation"] == "fft":  # the original renderer: its cached renders keep their keys
            del settings["parameterisation"]
        return settings


@dataclass
class ChannelRender:
    channel: int
    image: torch.Tensor  # (3, size, size) on the CPU, 8-bit values, so a cache hit is identical
    trace: list[float]  # the channel's mean activation at every step; empty when from the cache
    activation: float  # the channel's mean activation on the finished picture
    # (S, S) in [0, 1]: where the objective's gradient fell (MaCo's transparency)
    attribution: torch.Tensor | None = None
    cached: bool = False
    complete: bool = True  # False: cut short by a cancel (never cached)
    record: RunRecord = field(default_factory=RunRecord)  # extras: kind "featviz", channel, layer_module, activation


@dataclass
class FeatvizResult:
    model: str
    layer: str  # alias
    renders: list[ChannelRender]
    config: FeatvizConfig
    cancelled: bool = False
    seconds: float = 0.0

    def by_channel(self) -> dict[int, ChannelRender]:
        return {r.channel: r for r in self.renders}


# ---------------------------------------------------------------- the disk cache


def cache_dir() -> Path:
    """~/.cache/inceptionism/featviz, or featviz/ under $INCEPTIONISM_CACHE_DIR."""
    root = os.environ.get("INCEPTIONISM_CACHE_DIR") or Path.home() / ".cache" / "inceptionism"
    return Path(root) / "featviz"


def _lucent_version() -> str:
    try:
        return package_metadata.version("torch-lucent")
    except package_metadata.PackageNotFoundError:
        return "unknown"


def render_key(model: LoadedModel, layer: str, channel: int, config: FeatvizConfig) -> str:
    """What makes a render the same render: model, weights, layer, channel, settings, algorithm."""
    identity = {
        "model": model.name, "weights_sha256": model.weights_sha256, "layer": model.layer(layer).name,
        "channel": int(channel), "settings": config.key_dict(), "version": FEATVIZ_VERSION,
        "lucent": _lucent_version(), "inceptionism": __version__,  # a release may move float rounding
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:40]


class RenderCache:
    """Renders as PNG files (with their metadata) named by key, least recently used evicted first.

    A hit touches the file's mtime, which is the LRU clock; writes go through a temporary
    file and an atomic rename, so two processes sharing the folder never read half a file.
    """

    def __init__(self, folder: Path | None = None, max_bytes: int = 256 * 2**20):
        self.folder = Path(folder) if folder is not None else cache_dir()
        self.max_bytes = max_bytes

    def _path(self, key: str) -> Path:
        return self.folder / f"{key}.png"

    def _attribution_path(self, key: str) -> Path:
        return self.folder / f"{key}{ATTRIBUTION_SUFFIX}"

    def get_attribution(self, key: str) -> torch.Tensor | None:
        """The render's attribution map (S, S) in [0, 1], or None (an older render, or evicted)."""
        try:
            with Image.open(self._attribution_path(key)) as picture:
                return torch.from_numpy(np.asarray(picture.convert("L"), dtype=np.float32) / 255.0)
        except (OSError, ValueError, SyntaxError):
            return None

    def get(self, key: str) -> tuple[torch.Tensor, RunRecord] | None:
        """(image, run record) for a key, or None. A damaged file counts as a miss and is removed."""
        path = self._path(key)
        try:
            data = path.read_bytes()
            os.utime(path)
        except OSError:
            return None
        try:
            return load_image(data), read_png_record(data)
        except (ImageError, ValueError):
            log.warning("featviz cache: dropping unreadable %s", path)
            path.unlink(missing_ok=True)
            return None

    def put(self, key: str, image: torch.Tensor, record: RunRecord, attribution: torch.Tensor | None = None) -> bool:
        """Store a render (and its attribution map, as an 8-bit grey PNG beside it); False when the
        folder is not writable (the render still stands, uncached)."""
        target = self._path(key)
        temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if attribution is not None:
                grey = Image.fromarray((attribution.clamp(0, 1) * 255).round().byte().numpy(), "L")
                buffer = io.BytesIO()
                grey.save(buffer, format="PNG")
                temporary.write_bytes(buffer.getvalue())
                os.replace(temporary, self._attribution_path(key))
            temporary.write_bytes(png_bytes(image, record))
            os.replace(temporary, target)
        except OSError as err:
            log.warning("featviz cache: cannot write %s (%s)", target, err)
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)
            return False
        self.evict()
        return True

    def files(self) -> list[Path]:
        """The renders (not their attribution maps)."""
        return [p for p in self._all_files() if not p.name.endswith(ATTRIBUTION_SUFFIX)]

    def _all_files(self) -> list[Path]:
        return sorted(self.folder.glob("*.png")) if self.folder.is_dir() else []

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._all_files() if p.exists())

    def evict(self) -> int:
        """Delete least recently used renders until the folder fits max_bytes; returns how many."""
        entries = []
        for path in self._all_files():
            try:
                stat = path.stat()
            except FileNotFoundError:  # another process evicted it first
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed = 0
        for _, size, path in sorted(entries):
            if total <= self.max_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size
            removed += 1
        return removed

    def clear(self) -> int:
        """Delete every render (and attribution map); returns how many renders."""
        renders = len(self.files())
        for path in self._all_files():
            path.unlink(missing_ok=True)
        return renders


# ---------------------------------------------------------------- the optimisation


def _lucent() -> tuple[object, object, object]:
    """lucent's param, transform and objectives modules (kornia warns about torch.jit on import)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from lucent.optvis import objectives, param, transform
    return param, transform, objectives


def _channel_seed(seed: int, channel: int) -> int:
    return int.from_bytes(hashlib.sha256(f"featviz:{seed}:{channel}".encode()).digest()[:8], "big") >> 1


class _NumpyStream:
    """A private numpy random stream lent to lucent's transforms, which draw from np.random.

    The global state is swapped in only around each transform call and restored after, so
    the render is seeded without disturbing anyone else's numpy randomness for longer.
    """

    def __init__(self, seed: int):
        self.state = np.random.RandomState(seed % 2**32).get_state()

    def __enter__(self) -> None:
        self.saved = np.random.get_state()
        np.random.set_state(self.state)

    def __exit__(self, *_: object) -> None:
        self.state = np.random.get_state()
        np.random.set_state(self.saved)


def _preview(images: torch.Tensor) -> torch.Tensor:
    """The batch so far as one contact sheet (up to 16 cells) for the progress panel."""
    from torchvision.utils import make_grid

    shown = images[:16].detach().float().clamp(0, 1).cpu()
    return make_grid(shown, nrow=math.ceil(math.sqrt(shown.shape[0])), padding=2, pad_value=1.0)


def color_correlation() -> torch.Tensor:
    """lucent's colour matrix (the square root of ImageNet's colour covariance, normalised):
    rgb = C @ x takes a picture from the decorrelated space both parameterisations optimise in."""
    from lucent.optvis.param.color import color_correlation_normalized

    return torch.tensor(color_correlation_normalized)


@functools.lru_cache(maxsize=1)
def _stored_spectrum() -> torch.Tensor:
    try:
        return torch.from_numpy(np.load(SPECTRUM_FILE).astype(np.float32))
    except (OSError, ValueError) as err:
        raise ConfigError(f"MaCo's magnitude spectrum {SPECTRUM_FILE} is unreadable ({err}): rebuild it with "
                          "assets/spectra/make_spectrum.py.") from None


def natural_magnitude(size: int) -> torch.Tensor:
    """The photos' mean Fourier magnitude at size x size, as an rfft2 half (3, size, size // 2 + 1).

    The stored 128 px spectrum is completed to the full plane, resampled in relative frequency
    (cycles per pixel: natural images look alike at any scale), and symmetrised (M(k) = M(-k)),
    so it is the magnitude of a real picture; the mean (DC) is zero, the picture is standardised anyway.
    """
    half = _stored_spectrum()
    n = half.shape[1]
    flipped = (-torch.arange(n)) % n
    full = torch.cat([half, half[:, flipped][:, :, 1:n - n // 2].flip(-1)], dim=2)  # M[k, l] = M[-k, n - l]
    centred = torch.fft.fftshift(full, dim=(1, 2))
    resampled = torch.nn.functional.interpolate(centred[None], size=(size, size), mode="bilinear",
                                                align_corners=False)[0]
    plane = torch.fft.ifftshift(resampled, dim=(1, 2))
    rows, cols = (-torch.arange(size)) % size, (-torch.arange(size)) % size
    plane = (plane + plane[:, rows][:, :, cols]) / 2
    plane[:, 0, 0] = 0
    return plane[:, :, : size // 2 + 1].contiguous()


class MacoImage:
    """MaCo (Fel et al. 2023): pictures whose Fourier magnitude is fixed to natural photos' and
    whose phase alone is optimised. Calling it gives (N, 3, S, S) in [0, 1].

    A free phase tensor need not be the phase of a real picture (the spectrum of a real picture
    is Hermitian), and the inverse FFT would then quietly change the magnitude; the phase used
    is that of the real picture the free phase makes, so the magnitude is kept exactly.
    """

    def __init__(self, size: int, seeds: Sequence[int], device: torch.device):
        self.size = size
        self.magnitude = natural_magnitude(size).to(device)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        phases = [torch.rand(self.magnitude.shape, generator=g) * 2 * math.pi - math.pi for g in generators]
        self.phase = torch.stack(phases).to(device).requires_grad_(True)
        self.colours = color_correlation().to(device)

    def spectrum(self) -> torch.Tensor:
        """(N, 3, S, S // 2 + 1) complex: the fixed magnitude with the (made consistent) phase."""
        unit = torch.polar(torch.ones_like(self.phase), self.phase)
        real = torch.fft.rfft2(torch.fft.irfft2(unit, s=(self.size, self.size)))
        # complex times real: a complex-by-complex multiply or divide is several times slower on the CPU
        return real * (self.magnitude / real.abs().clamp_min(1e-20))

    def raw(self) -> torch.Tensor:
        """The picture before standardising and colouring: its rfft2 magnitude is self.magnitude."""
        return torch.fft.irfft2(self.spectrum(), s=(self.size, self.size))

    def __call__(self) -> torch.Tensor:
        x = self.raw()
        # one scale per picture keeps the colour channels' relative power, as in the spectrum
        x = (x - x.mean((1, 2, 3), keepdim=True)) / x.std((1, 2, 3), keepdim=True).clamp_min(1e-12)
        return torch.sigmoid(torch.einsum("ij,njhw->nihw", self.colours, x))


def _fft_image(size: int, channels: Sequence[int], seed: int) -> tuple[list[torch.Tensor], Callable[[], torch.Tensor]]:
    """lucent's FFT parameterisation, each channel's spectrum drawn from its own seeded generator."""
    param, _, _ = _lucent()
    # lucent puts its tensors on CUDA when there is one, whatever the model's device: the
    # picture is made there and moved to the model explicitly before every forward.
    with torch.random.fork_rng(devices=[]):
        params, image_f = param.image(size, batch=len(channels), decorrelate=True, fft=True)
    spectrum = params[0]
    with torch.no_grad():
        for i, channel in enumerate(channels):
            generator = torch.Generator().manual_seed(_channel_seed(seed, channel))
            spectrum[i].copy_(torch.randn(spectrum.shape[1:], generator=generator) * 0.01)
    return params, image_f


@dataclass
class BatchRender:
    images: torch.Tensor  # (N, 3, S, S) in [0, 1] on the CPU, 8-bit values
    trace: torch.Tensor  # (steps done, N): each channel's objective at every step
    attribution: torch.Tensor  # (N, S, S) in [0, 1]: the objective's gradient on the picture, summed over steps
    cancelled: bool


def optimise_channels(
    model: LoadedModel,
    layer: str,
    channels: Sequence[int],
    config: FeatvizConfig,
    on_step: OnStep | None = None,
    should_cancel: ShouldCancel | None = None,
    preview_every: int = 8,
) -> BatchRender:
    """One batched optimisation: image i maximises channel channels[i], in either parameterisation.

    on_step(step, config.steps, preview) is called after each step of this batch. The attribution map is
    MaCo's transparency: the absolute gradient of the objective on the picture, accumulated
    over the steps (where the picture matters to the unit).
    """
    _, transform, objectives = _lucent()
    info = model.layer(layer)
    channels = check_channels(channels, info.shape[0], info.alias)
    hooks_before = count_hooks(model.module)
    size, count = config.size, len(channels)
    if config.parameterisation == "maco":
        maco = MacoImage(size, [_channel_seed(config.seed, c) for c in channels], model.device)
        image_f: Callable[[], torch.Tensor] = maco
        optimiser: torch.optim.Optimizer = torch.optim.NAdam([maco.phase], lr=config.learning_rate * MACO_STEP_SCALE)
    else:
        params, image_f = _fft_image(size, channels, config.seed)
        optimiser = torch.optim.Adam(params, lr=config.learning_rate)
    jitter = transform.compose(transform.standard_transforms) if config.transforms else None
    terms = [objectives.channel(info.name, c, batch=i) for i, c in enumerate(channels)]
    randomness = _NumpyStream(config.seed)
    trace: list[torch.Tensor] = []
    attribution = torch.zeros(count, size, size)
    cancelled = False
    for step in range(1, config.steps + 1):
        if should_cancel is not None and should_cancel():
            cancelled = True
            break
        optimiser.zero_grad(set_to_none=True)
        picture = image_f()
        picture.retain_grad()
        shown = picture
        if jitter is not None:
            with randomness:
                shown = jitter(picture)
        acts = model.activations(shown.to(model.device), [info.name])
        scores = torch.stack([-term(acts.__getitem__) for term in terms])
        (-scores.sum()).backward()
        attribution += picture.grad.detach().abs().sum(1).float().cpu()
        optimiser.step()
        trace.append(scores.detach().float().cpu())
        if on_step is not None:
            show = step % preview_every == 0 or step == config.steps
            on_step(step, config.steps, _preview(image_f()) if show else None)
    if count_hooks(model.module) != hooks_before:
        raise RuntimeError("A forward hook outlived the feature visualisation: this is a bug.")
    with torch.no_grad():
        images = _quantise(image_f().detach().float().cpu())
    history = torch.stack(trace) if trace else torch.zeros(0, count)
    return BatchRender(images, history, _normalise_map(attribution), cancelled)


def _normalise_map(maps: torch.Tensor) -> torch.Tensor:
    """Each map to [0, 1], its 99th percentile at 1 (a few hot pixels must not make the rest black)."""
    top = maps.flatten(1).quantile(0.99, dim=1).clamp_min(1e-20).view(-1, 1, 1)
    return (maps / top).clamp(0, 1)


def _quantise(images: torch.Tensor) -> torch.Tensor:
    """Round to 8-bit values: what a PNG holds, so a fresh render equals its cached copy."""
    return (images.clamp(0, 1) * 255).round() / 255


@torch.no_grad()
def _render_activations(model: LoadedModel, layer: str, channels: Sequence[int], images: torch.Tensor) -> list[float]:
    act = model.activations(images, [layer])[layer]
    means = act.flatten(2).mean(2) if act.dim() > 2 else act
    return [float(means[i, c]) for i, c in enumerate(channels)]


def lookup(model: LoadedModel, layer: str, channels: Iterable[int], config: FeatvizConfig,
           cache: RenderCache) -> dict[int, ChannelRender]:
    """The channels already in the cache, without optimising anything: what a browser shows at once."""
    info = model.layer(layer)
    found = {}
    for channel in check_channels(channels, info.shape[0], info.alias):
        key = render_key(model, info.name, channel, config)
        hit = cache.get(key)
        if hit is not None:
            image, record = hit
            found[channel] = ChannelRender(channel, image, [], float(record.extras.get("activation", math.nan)),
                                           attribution=cache.get_attribution(key), cached=True, record=record)
    return found


def render_channels(
    model: LoadedModel,
    layer: str,
    channels: Iterable[int],
    config: FeatvizConfig = FeatvizConfig(),
    cache: RenderCache | None = None,
    on_step: OnStep | None = None,
    should_cancel: ShouldCancel | None = None,
) -> FeatvizResult:
    """Render channels of a layer, reusing cached renders; the rest in batches of config.batch.

    on_step(step, total, preview) counts optimisation steps over all batches (cache hits
    take none). A cancel stops within one step and returns what is done: cached and finished
    channels complete, the interrupted batch with complete=False (and not cached).
    """
    config.validate()
    info = model.layer(layer)
    channels = check_channels(channels, info.shape[0], info.alias)
    started = time.perf_counter()
    renders = lookup(model, info.name, channels, config, cache) if cache is not None else {}
    missing = [c for c in channels if c not in renders]
    batches = [missing[i:i + config.batch] for i in range(0, len(missing), config.batch)]
    relay = Relay(on_step, len(batches) * config.steps)
    cancelled = False
    for number, batch in enumerate(batches):
        done = optimise_channels(model, info.name, batch, config, relay.nth(number, config.steps), should_cancel)
        cancelled = done.cancelled
        if done.trace.shape[0] == 0:  # cancelled before its first step: nothing worth showing
            break
        activations = _render_activations(model, info.name, batch, done.images)
        for i, channel in enumerate(batch):
            record = render_record(model, info, channel, config, activations[i], steps_done=done.trace.shape[0])
            render = ChannelRender(channel, done.images[i], done.trace[:, i].tolist(), activations[i],
                                   attribution=done.attribution[i], complete=not cancelled, record=record)
            renders[channel] = render
            if cache is not None and not cancelled:
                # MaCo's attribution is part of its result; the FFT renderer's cache stays one file per render
                attribution = render.attribution if config.parameterisation == "maco" else None
                cache.put(render_key(model, info.name, channel, config), render.image, record, attribution)
        if cancelled:
            break
    return FeatvizResult(model.name, info.alias, [renders[c] for c in channels if c in renders], config,
                         cancelled=cancelled, seconds=round(time.perf_counter() - started, 3))


def render_record(model: LoadedModel, info: LayerInfo, channel: int, config: FeatvizConfig, activation: float,
                  steps_done: int) -> RunRecord:
    """The run record of one channel's render: the cache and the study engine's gallery write the same."""
    return RunRecord(
        model=model.name, training_data=model.spec.training_data, layers=[info.alias],
        objective_text=f"channel {channel} of {info.alias}, from noise", config=config.key_dict(), seed=config.seed,
        weights_sha256=model.weights_sha256, steps=steps_done,
        versions={**library_versions(), "lucent": _lucent_version()},
        extras={"kind": "featviz", "layer_module": info.name, "channel": channel, "activation": round(activation, 6)})


# ---------------------------------------------------------------- the channels on a real image


@torch.no_grad()
def layer_activations(model: LoadedModel, layer: str, image: torch.Tensor) -> torch.Tensor:
    """The layer's output on one (3, H, W) image, on the CPU: (C, h, w), or (C,) for logits."""
    name = model.layer(layer).name
    return model.activations(image[None] if image.dim() == 3 else image, [name])[name][0].cpu()


def channel_means(model: LoadedModel, layer: str, image: torch.Tensor) -> torch.Tensor:
    """Mean activation of every channel of the layer on one (3, H, W) image: (C,)."""
    acts = layer_activations(model, layer, image)
    return acts.flatten(1).mean(1) if acts.dim() > 1 else acts


def map_frame(acts: torch.Tensor, channel: int) -> pd.DataFrame:
    """Where on the image a channel fires, from layer_activations: a tidy frame of row, col, activation."""
    if acts.dim() != 3:
        raise ConfigError("This layer has no spatial map: it holds one value per channel.")
    if not 0 <= channel < acts.shape[0]:
        raise ConfigError(f"Channel {channel} does not exist: the layer has channels 0 to {acts.shape[0] - 1}.")
    grid = acts[channel].float()
    height, width = grid.shape
    rows, cols = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return pd.DataFrame({"row": rows.flatten().numpy(), "col": cols.flatten().numpy(),
                         "activation": grid.flatten().numpy()})


def channel_table(model: LoadedModel, layer: str, images: Mapping[str, torch.Tensor],
                  on_step: OnStep | None = None) -> pd.DataFrame:
    """Tidy frame (image, channel, activation): every channel's mean activation on each image."""
    frames = []
    for number, (name, image) in enumerate(images.items(), start=1):
        means = channel_means(model, layer, image)
        frames.append(pd.DataFrame({"image": name, "channel": np.arange(means.numel()), "activation": means.numpy()}))
        if on_step is not None:
            on_step(number, len(images), None)
    if not frames:
        return pd.DataFrame({"image": pd.Series(dtype=str), "channel": pd.Series(dtype=int),
                             "activation": pd.Series(dtype=float)})
    return pd.concat(frames, ignore_index=True)


def top_images(table: pd.DataFrame, channel: int, k: int = 5) -> pd.DataFrame:
    """The k images that excite a channel most, strongest first (image, activation, rank)."""
    rows = table[table["channel"] == channel].sort_values("activation", ascending=False).head(k)
    return rows[["image", "activation"]].reset_index(drop=True).assign(rank=lambda f: f.index + 1)


def channel_order(means: torch.Tensor | None, by: str, count: int) -> list[int]:
    """Channel indices in browsing order: by index, or most excited by the image first."""
    if by not in SORT_ORDERS:
        raise ConfigError(f"Unknown order '{by}': choose {' or '.join(SORT_ORDERS)}.")
    if by == "channel index" or means is None:
        return list(range(count))
    return [int(i) for i in torch.argsort(means, descending=True, stable=True)]


def page(order: Sequence[int], number: int, per_page: int) -> list[int]:
    """The channels on page `number` (0-based) of a browsing order."""
    if per_page < 1:
        raise ConfigError("A page needs at least one channel.")
    pages = max(1, math.ceil(len(order) / per_page))
    if not 0 <= number < pages:
        raise ConfigError(f"Page {number + 1} does not exist: there are {pages}.")
    return list(order[number * per_page:(number + 1) * per_page])



# ---------------------------------------------------------------- export


def contact_sheet(result: FeatvizResult, columns: int | None = None) -> Image.Image:
    """All renders of a result on one page, each captioned with its channel number."""
    if not result.renders:
        raise ConfigError("Nothing was rendered, so there is no contact sheet.")
    settings = result.config
    title = (f"{result.model} · {result.layer} · {settings.size} px, {settings.steps} steps, "
             f"seed {settings.seed}")
    footnote = "Cancelled: some renders are unfinished." if result.cancelled else None
    return drawing.contact_sheet([tensor_to_pil(render.image) for render in result.renders],
                                 [f"#{render.channel}" for render in result.renders], columns, title, footnote)
