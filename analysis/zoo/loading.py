"""Loading a model: the device, the precision, the weights (or a seeded initialisation), the fast paths.

Device: CUDA, then MPS, then CPU, overridable. Precision: bf16 autocast on CUDA where the GPU has
it, float32 elsewhere; bf16 on a CPU only where it is native (pick_precision says why).
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch
import torch.nn as nn

from analysis import allocator
from analysis.errors import ConfigError, WeightsMissingError
from analysis.fusion import fold_batch_norms, input_affine, pad_inside_convolutions
from analysis.polyphase import use_polyphase_gradients
from analysis.zoo.loaded import LoadedModel
from analysis.zoo.specs import LOGITS, UNTRAINED_SUFFIX, Preprocess, class_labels, get_spec, layer_table
from analysis.zoo.weights.checkpoint import adapt_to_layout, fit_state_dict, load_state, read_checkpoint
from analysis.zoo.weights.locate import file_sha256, locate_weights, missing_weights_message


def pick_device(preference: str | None = None) -> torch.device:
    """CUDA, then MPS, then CPU; or the user's choice, checked."""
    if preference in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if preference not in ("cpu", "cuda", "mps") and not preference.startswith("cuda:"):
        raise ConfigError(f"Unknown device '{preference}': choose auto, cpu, cuda or mps.")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("CUDA was asked for but no CUDA GPU is available here.")
    if preference == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("MPS was asked for but is not available here.")
    return torch.device(preference)


PRECISIONS = ("fp32", "bf16")


@functools.cache
def _cpu_flags_and_name() -> tuple[frozenset[str], str]:
    flags: set[str] = set()
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags" and not flags:
                flags = set(value.split())
            elif key.strip() == "model name":
                name = value.strip()
    except OSError:  # not Linux: the name platform gives, and no flags to read
        pass
    return frozenset(flags), name


def cpu_kind() -> str:
    """The CPU's name and the widest kernels torch dispatches to on it (AVX512, AVX2, ...).

    Recorded with every result: oneDNN picks different kernels per CPU kind, so float32 pixels
    replay identically only on the same kind of CPU with the same library versions."""
    return f"{_cpu_flags_and_name()[1]} ({torch.backends.cpu.get_cpu_capability()})"


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 runs in hardware: CUDA GPUs that support it, CPUs with AMX or AVX512-BF16.
    Elsewhere oneDNN emulates it (bench --only speed on an AVX2 EPYC: 20-40x slower than float32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        flags = _cpu_flags_and_name()[0]
        return bool(flags & {"amx_bf16", "avx512_bf16"}) if flags else torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def precision_note(precision: str, device: torch.device) -> str:
    """What the chosen precision costs on this machine, in one line; empty when nothing to say."""
    if precision != "bf16" or device.type == "cuda":
        return ""
    if native_bf16(device):
        return ("bf16 is native on this CPU (AMX/AVX512-BF16): faster on GoogLeNet-like nets, slower on "
                "EfficientNet's depthwise layers; dreams differ a little from float32's.")
    return (f"this {device.type.upper()} has no native bf16 ({torch.backends.cpu.get_cpu_capability()}): "
            "expect it to run 20-40x slower than float32 here.")


def pick_precision(preference: str | None, device: torch.device) -> str:
    """bf16 autocast on CUDA (tensor cores) where the GPU has bf16, float32 elsewhere; or the user's choice,
    checked. auto never picks a slow path: bf16 without hardware support is emulated."""
    if preference in (None, "", "auto"):
        return "bf16" if device.type == "cuda" and native_bf16(device) else "fp32"
    if preference not in PRECISIONS:
        raise ConfigError(f"Unknown precision '{preference}': choose auto, {' or '.join(PRECISIONS)}.")
    return preference


def he_initialise(module: nn.Module) -> nn.Module:
    """Random weights that keep activations alive through depth (He, fan-in: BN is frozen at identity).

    PyTorch's default conv init shrinks the signal by about 3x per layer: an untrained twin built
    with it has activations near 1e-8 at its top layers and its dreams drown in rounding.
    """
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d):
            nn.init.kaiming_normal_(sub.weight, mode="fan_in", nonlinearity="relu")
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, std=0.01)
            nn.init.zeros_(sub.bias)
    return module


def load_model(name: str, device: str | torch.device | None = None, folder: Path | None = None,
               checkpoint: Path | None = None, precision: str | None = None,
               fast_paths: bool = True) -> LoadedModel:
    """Build, load weights safely, freeze, and move to the device.

    checkpoint overrides where the file is looked for (a file brought from outside);
    precision is "fp32", "bf16" or None for the device's default (see pick_precision);
    fast_paths=False keeps the network as its authors wrote it (the plain path, for comparisons);
    by default a network's own input re-normalisation joins our preprocessing, BatchNorms are
    folded into convolutions, symmetric "same" padding moves inside them and, on the CPU, the
    stem's pixel gradient comes from a polyphase convolution (analysis/fusion.py, analysis/polyphase.py).
    """
    spec = get_spec(name)
    target = device if isinstance(device, torch.device) else pick_device(device)
    chosen_precision = pick_precision(precision, target)
    if target.type == "cpu":
        allocator.keep_freed_buffers()
    if spec.weights.format == "random":
        if checkpoint is not None:
            raise ConfigError(f"{name} is an untrained twin (seeded random weights) and takes no weights file: "
                              f"leave the file out, or use it with {name.removesuffix(UNTRAINED_SUFFIX)}.")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.weights.seed)
            module = he_initialise(spec.build())
        sha = f"untrained-seed-{spec.weights.seed}"
    else:
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise WeightsMissingError(f"No checkpoint file at {checkpoint}.")
        path = checkpoint or locate_weights(spec, folder)
        if path is None or not Path(path).is_file():
            raise WeightsMissingError(missing_weights_message(spec, folder))
        path = Path(path)
        spec, state = adapt_to_layout(spec, fit_state_dict(spec, read_checkpoint(path, spec)), path.name)
        module = spec.build()
        load_state(module, state, path.name)
        sha = file_sha256(path)
    module.eval().requires_grad_(False)
    preprocess, layers = Preprocess(spec.convention), layer_table(spec)
    if fast_paths:
        if (affine := input_affine(module)) is not None:
            module.transform_input, preprocess = False, preprocess.followed_by(*affine)
        example = preprocess(torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)))
        module = fold_batch_norms(module, example, [info.name for info in layers if info.name != LOGITS])
        pad_inside_convolutions(module)
        if target.type == "cpu":
            use_polyphase_gradients(module)
    module = module.to(target, memory_format=torch.channels_last)
    return LoadedModel(
        spec=spec, module=module, preprocess=preprocess.to(target),
        layers=layers, labels=class_labels(spec.labels), weights_sha256=sha, device=target,
        precision=chosen_precision,
    )
