"""Load-time folds: eval-mode BatchNorm into the convolution that feeds it, a network's own
input re-normalisation into our preprocessing, and TensorFlow-style "same" padding into the
convolution's own padding where it is symmetric.

A frozen BatchNorm is a per-channel scale and shift, so it can live in the convolution's
weights and bias; every dream step then skips one memory-bound pass forward and one backward
per convolution. bench/ measured 1.11-1.16x on GoogLeNet and 1.40-1.66x on EfficientNet-Lite0
a step at 512 px. The maths is exact (float64 gradients agree to 1e-15); in float32 the rounding moves
a step's gradient by about 1e-3 of its norm, the same order as any change of kernels.

Which BatchNorm follows which convolution is read from a traced forward, not from module
order, and the folded network is checked against the original at every hooked layer: a
network where that check fails is left as it was.
"""

from __future__ import annotations

import copy
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

TOLERANCE = 1e-4  # relative, per layer output, float32


def conv_norm_pairs(module: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(conv, batch norm) names where the norm's only input is the conv's output, both called once."""
    leaves = {name: m for name, m in module.named_modules() if not any(m.children())}
    calls: Counter[str] = Counter()
    made_by: dict[int, str] = {}  # id of a conv's output -> the conv
    used_by: defaultdict[str, list[str]] = defaultdict(list)  # conv -> leaves its output went into
    keep_alive: list[torch.Tensor] = []  # so that no id is reused during the trace
    handles = []

    def before(name: str, inputs: tuple) -> None:
        calls[name] += 1
        for value in inputs:
            if isinstance(value, torch.Tensor) and id(value) in made_by:
                used_by[made_by[id(value)]].append(name)

    def after(name: str, output: object) -> None:
        if isinstance(output, torch.Tensor):
            made_by[id(output)] = name
            keep_alive.append(output)

    try:
        for name, leaf in leaves.items():
            handles.append(leaf.register_forward_pre_hook(lambda _m, inputs, name=name: before(name, inputs)))
            if isinstance(leaf, nn.Conv2d):
                handles.append(leaf.register_forward_hook(lambda _m, _i, out, name=name: after(name, out)))
        with torch.no_grad():
            module(example)
    finally:
        for handle in handles:
            handle.remove()
    pairs = []
    for conv, users in used_by.items():
        if len(users) == 1 and isinstance(leaves[users[0]], nn.BatchNorm2d) and calls[conv] == calls[users[0]] == 1:
            pairs.append((conv, users[0]))
    return pairs


def _layer_outputs(module: nn.Module, example: torch.Tensor, layers: Sequence[str]) -> list[torch.Tensor]:
    outputs: dict[str, torch.Tensor] = {}
    handles = [module.get_submodule(name).register_forward_hook(
        lambda _m, _i, out, name=name: outputs.__setitem__(name, out)) for name in layers]
    try:
        with torch.no_grad():
            final = module(example)
    finally:
        for handle in handles:
            handle.remove()
    found = [outputs[name] for name in layers if name in outputs]
    return found + [final] if isinstance(final, torch.Tensor) else found


def fold_batch_norms(module: nn.Module, example: torch.Tensor, layers: Sequence[str]) -> nn.Module:
    """A copy of the eval-mode module with its BatchNorms folded, or the module itself when
    nothing folds or the folded copy does not reproduce every named layer's output.

    A conv that is itself a named layer keeps its norm: folded, it would output the normalised values."""
    if not any(isinstance(m, nn.BatchNorm2d) for m in module.modules()):
        return module  # VGG, AlexNet, the Caffe and lucent GoogLeNets: nothing to trace
    pairs = [(conv, norm) for conv, norm in conv_norm_pairs(module, example) if conv not in layers]
    if not pairs:
        return module
    folded = copy.deepcopy(module)
    for conv_name, norm_name in pairs:
        conv = folded.get_submodule(conv_name)
        fused = fuse_conv_bn_eval(conv, folded.get_submodule(norm_name))
        conv.weight, conv.bias = fused.weight, fused.bias
        parent, _, child = norm_name.rpartition(".")
        setattr(folded.get_submodule(parent), child, nn.Identity())
    folded.requires_grad_(False)
    for before, after in zip(_layer_outputs(module, example, layers), _layer_outputs(folded, example, layers)):
        if float((after - before).norm()) > TOLERANCE * float(before.norm()) + 1e-12:
            return module
    return folded


def input_affine(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(scale, shift) per channel of the map torchvision's GoogLeNet and Inception v3 apply to
    their input inside forward (transform_input), read off the network itself; None if it has none.

    Folded into our preprocessing's mean and std it costs nothing per step, where in forward it
    slices, scales and concatenates the image every step (bench/: 3 ms of a 25 ms conv1 step at 512 px)."""
    transform = getattr(module, "_transform_input", None)
    if not getattr(module, "transform_input", False) or transform is None:
        return None
    with torch.no_grad():
        shift = transform(torch.zeros(1, 3, 1, 1)).flatten()
        scale = transform(torch.ones(1, 3, 1, 1)).flatten() - shift
        probe = torch.rand(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
        if not torch.allclose(transform(probe), probe * scale.view(1, 3, 1, 1) + shift.view(1, 3, 1, 1), atol=1e-6):
            return None  # not a per-channel affine map: leave it where it is
    return scale, shift


def pad_inside_convolutions(module: nn.Module) -> list[str]:
    """Stride-1 convolutions that pad their input "same" in their own forward (TensorFlow ports:
    EfficientNet-Lite's Conv2dDynamicSamePadding) become plain Conv2d with that padding built in.

    At stride 1 an odd kernel's "same" padding is symmetric, so the numbers are the very same
    (checked on a probe before each swap) without a padded copy of the input every step:
    1.13-1.16x a 512 px EfficientNet-Lite0 step, bit-identical gradients. In place; returns the names."""
    def padded_inside(conv: nn.Module) -> nn.Conv2d | None:
        if not (isinstance(conv, nn.Conv2d) and type(conv) is not nn.Conv2d and conv.padding_mode == "zeros"
                and tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1) and tuple(conv.padding) == (0, 0)
                and all(k % 2 for k in conv.kernel_size)):
            return None
        plain = plain_conv(conv, padding=tuple((k - 1) // 2 for k in conv.kernel_size))
        probe = torch.rand(1, conv.in_channels, 9, 11, generator=torch.Generator().manual_seed(0)).to(conv.weight)
        with torch.no_grad():
            return plain if torch.equal(conv(probe), plain(probe)) else None  # else its forward does more: leave it

    return replace_modules(module, padded_inside)


def plain_conv(conv: nn.Conv2d, padding: tuple[int, ...] | None = None) -> nn.Conv2d:
    """A plain Conv2d sharing conv's weights (built on meta: no weights made, no random numbers drawn)."""
    plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding if padding is None else padding, conv.dilation, conv.groups,
                      bias=conv.bias is not None, device="meta")
    plain.weight, plain.bias = conv.weight, conv.bias
    return plain


def replace_modules(module: nn.Module, replacement: Callable[[nn.Module], nn.Module | None]) -> list[str]:
    """Every submodule for which replacement gives a module is swapped for it, in place. Returns their names."""
    swapped = []
    for name, child in list(module.named_modules()):
        new = replacement(child) if name else None
        if new is not None:
            parent, _, leaf = name.rpartition(".")
            setattr(module.get_submodule(parent), leaf, new)
            swapped.append(name)
    return swapped
