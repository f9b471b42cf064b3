"""A network ready to dream with: its truncated forward, its layers, its classes.

The truncated forward stops once the deepest layer asked for has run and lets each image of a
batch leave after its own deepest layer; hooks live only inside one call (count_hooks checks).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from analysis.errors import ConfigError
from analysis.zoo.specs import LOGITS, LayerInfo, ModelSpec, Preprocess, layer_at_depth


class BatchRows(torch.autograd.Function):
    """A batch cut into runs of rows (copies), whose gradient comes back as one tensor in the
    batch's own memory layout. Slicing, selecting or indexing rows each send back a zero-filled
    NCHW tensor, and with channels_last activations every backward op below them mixed layouts:
    GoogLeNet's batched 6-layer sweep ran at 0.72x the sequential one at 512 px (now 1.00x)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, batch: torch.Tensor, sizes: tuple[int, ...]
                ) -> tuple[torch.Tensor, ...]:
        ctx.set_materialize_grads(False)
        ctx.sizes, ctx.layout = sizes, (batch.shape, batch.stride(), batch.dtype, batch.device)
        return tuple(piece.clone() for piece in batch.split(sizes))  # clone keeps each piece's strides

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, *grads: torch.Tensor | None) -> tuple:
        shape, strides, dtype, device = ctx.layout
        whole = torch.empty_strided(shape, strides, dtype=dtype, device=device)
        for piece, grad in zip(whole.split(ctx.sizes), grads):
            piece.zero_() if grad is None else piece.copy_(grad)
        return whole, None


class _StopForward(Exception):
    """Raised by a hook once the deepest needed layer has run: the truncated forward."""


@dataclass
class LoadedModel:
    spec: ModelSpec
    module: nn.Module
    preprocess: Preprocess
    layers: tuple[LayerInfo, ...]
    labels: list[str] | None
    weights_sha256: str
    device: torch.device
    precision: str = "fp32"  # "bf16": the forward under bfloat16 autocast (the default on CUDA)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dtype(self) -> torch.dtype:
        """float32, or float64 for a float64 twin (`as_float64`): the dtype dreams optimise pixels in."""
        return self.preprocess.mean.dtype

    def as_float64(self) -> LoadedModel:
        """A float64 copy: a reference whose rounding is 2**29 times finer, so two float32 paths can
        each be measured against it, and batching logic can be checked free of float32 rounding."""
        return replace(self, module=copy.deepcopy(self.module).double(),
                       preprocess=copy.deepcopy(self.preprocess).double())

    def layer(self, name: str) -> LayerInfo:
        """Look up a layer by module path or alias."""
        for info in self.layers:
            if name in (info.name, info.alias):
                return info
        raise ConfigError(f"{self.name} has no dream-able layer '{name}'. "
                          f"Layers: {', '.join(i.alias for i in self.layers)}")

    def layer_at_depth(self, depth: float) -> LayerInfo:
        """The layer whose relative depth is closest: how layers of two networks are matched."""
        return layer_at_depth(self.layers, depth)

    def layers_spread(self, count: int) -> list[LayerInfo]:
        """count layers evenly spread from low to high (no logits)."""
        candidates = [i for i in self.layers if i.name != LOGITS]
        if not 1 <= count <= len(candidates):
            raise ConfigError(f"Choose 1 to {len(candidates)} layers for {self.name}.")
        if count == 1:
            return [candidates[len(candidates) // 2]]
        picks = [round(i * (len(candidates) - 1) / (count - 1)) for i in range(count)]
        return [candidates[i] for i in picks]

    def activations(self, image01: torch.Tensor, layers: Iterable[str]) -> dict[str, torch.Tensor]:
        """Outputs of the named layers for the whole batch; the forward stops after the deepest one."""
        wanted = tuple(self.layer(n).name for n in layers)
        captured, _ = self._forward(image01, [wanted] * image01.shape[0])
        return {name: captured[name] for name in wanted}

    def sweep_activations(self, image01: torch.Tensor, layers_per_image: Sequence[Iterable[str]]
                          ) -> list[dict[str, torch.Tensor]]:
        """Each image's own layers, in one forward: an image leaves the batch after its deepest
        layer, so a batched layer sweep does the work of separate truncated forwards in bigger batches."""
        needs = [tuple(self.layer(n).name for n in layers) for layers in layers_per_image]
        captured, rows = self._forward(image01, needs)
        per_image = {name: BatchRows.apply(batch, (1,) * len(batch)) for name, batch in captured.items()}
        return [{name: per_image[name][rows[name].index(i)] for name in need} for i, need in enumerate(needs)]

    def _forward(self, image01: torch.Tensor, needs: Sequence[tuple[str, ...]]
                 ) -> tuple[dict[str, torch.Tensor], dict[str, list[int]]]:
        """The truncated forward. Returns each layer's output and which images its rows are.

        A hook captures a layer's output and, returning a slice of it, drops the images that
        need nothing deeper; once none is left it stops the forward. Hooks are added and
        removed here, in try/finally, so none outlive the call.
        """
        if len(needs) != image01.shape[0] or not all(needs):
            raise ConfigError("No layer chosen.")
        order = {info.name: k for k, info in enumerate(self.layers)}
        deepest = [order[max(need, key=order.__getitem__)] for need in needs]
        # deepest first: the images that leave early are always the last rows, so leaving is a
        # slice, whose backward is a plain copy (an index list's was an index_put: 13% of a step)
        alive = sorted(range(len(needs)), key=lambda i: -deepest[i])
        captured: dict[str, torch.Tensor] = {}
        rows: dict[str, list[int]] = {}
        handles = []

        def hook(name: str, out: torch.Tensor) -> torch.Tensor | None:
            captured[name], rows[name] = out, list(alive)
            staying = sum(deepest[i] > order[name] for i in alive)
            if not staying:
                raise _StopForward
            if staying == len(alive):
                return None
            del alive[staying:]
            return BatchRows.apply(out, (staying, len(out) - staying))[0]

        # channels_last: oneDNN's and cuDNN's fast convolutions; bench/ layout: 1.12-1.35x but at GoogLeNet's stem
        if alive != sorted(alive):  # cat, not an index list: its backward is slices, not an index_put
            image01 = torch.cat([image01[i:i + 1] for i in alive])
        x = self.preprocess(image01.to(self.device)).contiguous(memory_format=torch.channels_last)
        try:
            for name in {n for need in needs for n in need} - {LOGITS}:
                handles.append(self.module.get_submodule(name).register_forward_hook(
                    lambda _m, _i, out, name=name: hook(name, out)))
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
                try:
                    captured[LOGITS], rows[LOGITS] = self.module(x), list(alive)
                except _StopForward:
                    pass
        finally:
            for handle in handles:
                handle.remove()
        # bf16 autocast hands back bf16 outputs; objectives sum in float32 (a float64 model stays float64)
        return {name: t if t.dtype == torch.float64 else t.float() for name, t in captured.items()}, rows

    def logits(self, image01: torch.Tensor) -> torch.Tensor:
        return self.activations(image01, [LOGITS])[LOGITS]

    @torch.no_grad()
    def probabilities(self, image01: torch.Tensor) -> torch.Tensor:
        """Class probabilities at 224 px (centre crop of the short side), as the nets were trained."""
        if self.labels is None:
            raise ConfigError(f"{self.name} has no class labels bundled, so it cannot classify.")
        from analysis.images import resize

        batch = image01 if image01.dim() == 4 else image01[None]
        height, width = batch.shape[-2:]
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        crop = resize(batch[..., top:top + side, left:left + side], (224, 224))
        return self.logits(crop).softmax(dim=1)

    def classify(self, image01: torch.Tensor, top: int = 5) -> list[tuple[int, str, float]]:
        if top < 1:
            raise ConfigError(f"Ask for at least one class (top {top}).")
        probs = self.probabilities(image01)[0]
        values, indices = probs.topk(min(top, probs.numel()))
        return [(int(i), self.labels[int(i)], float(v)) for v, i in zip(values, indices)]


def count_hooks(module: nn.Module) -> int:
    """Forward (pre-)hooks on a module tree: must be the same before and after any run."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in module.modules())
