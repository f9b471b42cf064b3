"""The pixel gradient of a strided stem convolution, as one ordinary convolution.

Every dream step needs d(objective)/d(pixels), so it runs the network's first convolution
backward to its 3 input channels. oneDNN does that as a strided transposed convolution with
3 output channels, which vectorises badly: GoogLeNet's 7x7/2 stem took 19 ms of a 174 ms
inception5b step at 512 px (60 GFLOP/s). Split the image into its s*s phases (the pixels at
y % s == dy, x % s == dx): each phase's gradient is a stride-1 correlation of the output
gradient with a sub-kernel, so all of them are one stride-1 convolution with C*s*s output
channels, put back in place by pixel_shuffle: 7 ms for the same stem (the op alone; whole steps
in bench/'s layout section, column polyphase_stem).

The same sums in another order: equal in real arithmetic, within float32 rounding (1e-7
relative) in practice. Only the input gradient changes; the forward is the same call.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from analysis.fusion import plain_conv, replace_modules

MAX_IN_CHANNELS = 4  # a stem: RGB (or grey, or RGBA) in


def _phase_taps(kernel: int, stride: int, padding: int) -> tuple[list[list[int]], int, int]:
    """For each phase d and tap t of the stride-1 correlation, the kernel index it reads (-1: none).

    Pixel s*i + d gets gradient from outputs p with s*p - padding + k = s*i + d, i.e. from
    p = i - a with k = s*a + d + padding; a runs from a_low to a_high over all phases, and the
    correlation's tap t reads p = i - a_high + t.
    """
    a_low, a_high = -((stride - 1 + padding) // stride), (kernel - 1 - padding) // stride
    taps = a_high - a_low + 1
    table = [[k if 0 <= (k := stride * (a_high - t) + d + padding) < kernel else -1 for t in range(taps)]
             for d in range(stride)]
    return table, a_low, a_high


class PolyphaseConv2d(nn.Conv2d):
    """A Conv2d whose input gradient comes from the polyphase convolution; forward unchanged."""

    def __init__(self, conv: nn.Conv2d) -> None:
        if not eligible(conv):
            raise ValueError("not a strided, ungrouped, undilated, zero-padded convolution on a few channels")
        super().__init__(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                         bias=conv.bias is not None, device="meta")  # no weights made (nor random numbers drawn)
        self.weight, self.bias = conv.weight, conv.bias
        stride = self.stride[0]
        rows, self._low_y, self._high_y = _phase_taps(self.kernel_size[0], stride, self.padding[0])
        cols, self._low_x, self._high_x = _phase_taps(self.kernel_size[1], stride, self.padding[1])
        kh, kw = self.kernel_size
        nowhere = self.in_channels * kh * kw  # the index of an appended zero
        # phase channel order (c, dy, dx) is what pixel_shuffle puts back at (c, s*i + dy, s*j + dx)
        index = [[[[c * kh * kw + ky * kw + kx if ky >= 0 and kx >= 0 else nowhere for kx in cols[dx]]
                   for ky in rows[dy]] for dy in range(stride) for dx in range(stride)]
                 for c in range(self.in_channels)]
        self.register_buffer("_taps", torch.tensor(index, device=conv.weight.device).flatten(), persistent=False)

    def phase_weight(self, dtype: torch.dtype) -> torch.Tensor:
        """(C*s*s, out_channels, taps_y, taps_x): read from the weight each call, so it is never stale."""
        flat = F.pad(self.weight.detach().flatten(1), (0, 1))  # (out, C*kh*kw + 1), the last a zero
        taps_y, taps_x = self._high_y - self._low_y + 1, self._high_x - self._low_x + 1
        phases = flat[:, self._taps].view(self.out_channels, -1, taps_y, taps_x).transpose(0, 1)
        return phases.to(dtype).contiguous(memory_format=torch.channels_last)

    def input_gradient(self, grad_output: torch.Tensor, size: torch.Size) -> torch.Tensor:
        stride, (height, width) = self.stride[0], size
        rows, cols = -(-height // stride), -(-width // stride)
        out_rows, out_cols = grad_output.shape[-2:]
        # pixel row i reads output rows i - high .. i - low: pad for the first and the last pixel row
        pad_y = max(self._high_y, rows - out_rows - self._low_y, 0)
        pad_x = max(self._high_x, cols - out_cols - self._low_x, 0)
        top, left = pad_y - self._high_y, pad_x - self._high_x
        phases = F.conv2d(grad_output, self.phase_weight(grad_output.dtype), padding=(pad_y, pad_x))
        phases = phases[:, :, top:top + rows, left:left + cols]
        return F.pixel_shuffle(phases, stride)[:, :, :height, :width]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight.requires_grad or (self.bias is not None and self.bias.requires_grad) or x.dim() != 4:
            return super().forward(x)  # training or an unbatched call: the usual backward
        return _PolyphaseGradient.apply(x, self)


class _PolyphaseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor, conv: PolyphaseConv2d) -> torch.Tensor:
        ctx.conv, ctx.size, ctx.dtype = conv, x.shape[-2:], x.dtype
        return F.conv2d(x, conv.weight, conv.bias, conv.stride, conv.padding)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_output: torch.Tensor) -> tuple:
        return ctx.conv.input_gradient(grad_output, ctx.size).to(ctx.dtype), None


def eligible(conv: nn.Module) -> bool:
    """Exactly nn.Conv2d (a subclass may pad or scale in its own forward), stride s >= 2 in both
    directions, one group, no dilation, zeros padding given in pixels, at most 4 input channels."""
    return (type(conv) is nn.Conv2d and conv.groups == 1 and conv.dilation == (1, 1)
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and conv.stride[0] == conv.stride[1] >= 2 and conv.in_channels <= MAX_IN_CHANNELS)


def use_polyphase_gradients(module: nn.Module) -> list[str]:
    """Swap every eligible convolution for its PolyphaseConv2d, in place. Returns their names.

    For the CPU: measured on oneDNN, where the stem's own backward is slow; cuDNN is left as it is."""
    return replace_modules(module, lambda m: PolyphaseConv2d(m) if eligible(m) else None)


def use_native_gradients(module: nn.Module) -> list[str]:
    """The reverse, in place: plain Conv2d again, sharing the weights (the bench's comparison)."""
    return replace_modules(module, lambda m: plain_conv(m) if isinstance(m, PolyphaseConv2d) else None)
