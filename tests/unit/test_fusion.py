"""Load-time folds (norms into convolutions, an input transform into the preprocessing, padding into
convolutions): never change what a network computes."""

from __future__ import annotations

import torch
import torch.nn as nn

from analysis import zoo
from analysis.fusion import conv_norm_pairs, fold_batch_norms, input_affine, pad_inside_convolutions
from tests.numerics import assert_as_accurate_as_float32


def _frozen_norm(channels: int, seed: int) -> nn.BatchNorm2d:
    """A norm with non-trivial running statistics, as a trained network has."""
    generator = torch.Generator().manual_seed(seed)
    norm = nn.BatchNorm2d(channels)
    norm.running_mean = torch.randn(channels, generator=generator)
    norm.running_var = torch.rand(channels, generator=generator) + 0.5
    norm.weight.data = torch.randn(channels, generator=generator)
    norm.bias.data = torch.randn(channels, generator=generator)
    return norm.eval()


class Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.norm = _frozen_norm(8, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.norm(self.conv(x))))


class Residual(nn.Module):
    """The conv's output feeds the norm and, outside any module, a skip connection: folding would change the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.norm = _frozen_norm(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.norm(y) + y


def test_a_norm_after_a_conv_is_folded_and_outputs_stay_the_same():
    torch.manual_seed(0)
    net, x = Plain().eval().requires_grad_(False), torch.randn(2, 3, 16, 16)
    assert conv_norm_pairs(net, x) == [("conv", "norm")]
    folded = fold_batch_norms(net, x, ["norm", "head"])
    assert isinstance(folded.norm, nn.Identity) and isinstance(net.norm, nn.BatchNorm2d)  # the original is untouched
    torch.testing.assert_close(folded(x), net(x), rtol=1e-5, atol=1e-5)
    assert fold_batch_norms(net, x, ["conv", "head"]) is net  # a dream at the raw conv needs its own output


def test_a_conv_output_also_used_elsewhere_is_left_alone():
    torch.manual_seed(0)
    net, x = Residual().eval().requires_grad_(False), torch.randn(1, 3, 16, 16)
    assert fold_batch_norms(net, x, ["conv", "norm"]) is net


def test_torchvisions_own_input_transform_joins_the_preprocessing():
    """GoogLeNet re-normalises its input in forward (transform_input); folded into our mean and
    std, the network's outputs stay the same and the per-step slicing and concatenation go."""
    fast = zoo.load_model("googlenet-untrained", device="cpu")
    plain = zoo.load_model("googlenet-untrained", device="cpu", fast_paths=False)
    assert plain.module.transform_input and not fast.module.transform_input
    image = torch.rand(1, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    layer = fast.layer("inception3a").name
    with torch.no_grad():
        ours, theirs = fast.activations(image, [layer])[layer], plain.activations(image, [layer])[layer]
        exact = plain.as_float64().activations(image.double(), [layer])[layer]
    assert_as_accurate_as_float32(ours, theirs, exact)
    assert input_affine(nn.Sequential(nn.Conv2d(3, 3, 1))) is None


class _SquaresItsInput(nn.Module):
    transform_input = True

    def _transform_input(self, x: torch.Tensor) -> torch.Tensor:
        return x.square()


def test_an_input_transform_that_is_not_per_channel_affine_stays_in_the_network():
    assert input_affine(_SquaresItsInput()) is None


class _SamePadding(nn.Conv2d):
    """TensorFlow's "same" padding in forward, as EfficientNet-Lite's Conv2dDynamicSamePadding does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h, pad_w = (max((-(-size // s) - 1) * s + k - size, 0)
                        for size, s, k in zip(x.shape[-2:], self.stride, self.kernel_size))
        x = nn.functional.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return super().forward(x)


def test_symmetric_same_padding_moves_inside_the_convolution_and_nothing_else_does():
    torch.manual_seed(0)
    net = nn.Sequential(_SamePadding(4, 4, 3, groups=4), _SamePadding(4, 6, 5), _SamePadding(6, 6, 3, stride=2),
                        _SamePadding(6, 6, 1))
    x = torch.randn(2, 4, 13, 10)
    with torch.no_grad():
        before = net(x)
    assert pad_inside_convolutions(net) == ["0", "1", "3"]  # stride 2 pads unevenly: it stays
    assert [type(m) for m in net] == [nn.Conv2d, nn.Conv2d, _SamePadding, nn.Conv2d]
    with torch.no_grad():
        assert torch.equal(net(x), before)  # the very same numbers, so replays do not move
