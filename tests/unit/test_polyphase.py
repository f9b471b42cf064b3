"""The polyphase stem gradient: the same pixel gradient as autograd's, only where it applies."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from analysis import zoo
from analysis.polyphase import PolyphaseConv2d, eligible, use_polyphase_gradients
from tests.numerics import assert_as_accurate_as_float32

STEMS = [  # (kernel, stride, padding): GoogLeNet/ResNet, AlexNet, lucent's unpadded GoogLeNet, odd ones
    (7, 2, 3), (11, 4, 2), (7, 2, 0), (5, 2, 1), (3, 2, 1), (2, 2, 0), (7, 3, 5), ((7, 3), 2, (3, 1)),
]


def _pixel_gradient(conv: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(conv(x), x, upstream)
    return grad


@pytest.mark.parametrize(("kernel", "stride", "padding"), STEMS)
@pytest.mark.parametrize(("height", "width"), [(32, 32), (33, 20), (17, 31)])
def test_the_pixel_gradient_is_autograds_to_float64_rounding(kernel, stride, padding, height, width):
    """Every pixel, edges and odd sizes included (pixels past the last window get exactly 0)."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 8, kernel, stride, padding).double().requires_grad_(False)
    fast = PolyphaseConv2d(conv)
    x = torch.randn(2, 3, height, width, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(fast(x), conv(x))  # the forward is the very same call
    upstream = torch.randn_like(conv(x))
    torch.testing.assert_close(_pixel_gradient(fast, x, upstream), _pixel_gradient(conv, x, upstream),
                               rtol=0, atol=1e-12)


def test_channels_last_float32_and_bf16_autocast_stay_within_rounding():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 64, 7, 2, 3).requires_grad_(False).to(memory_format=torch.channels_last)
    fast = PolyphaseConv2d(conv)
    x = torch.rand(1, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    upstream = torch.randn(1, 64, 48, 48).contiguous(memory_format=torch.channels_last)
    exact, ours = _pixel_gradient(conv, x, upstream), _pixel_gradient(fast, x, upstream)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    assert float((ours - exact).norm() / exact.norm()) < 1e-6
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = _pixel_gradient(fast, x, upstream)
    assert rounded.dtype == torch.float32  # the image's dtype, as autocast's own backward gives
    assert float((rounded - exact).norm() / exact.norm()) < 2e-2


def test_trainable_weights_take_the_usual_backward():
    """Weight gradients are not the polyphase path's business: a trainable conv is left to autograd."""
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 7, 2, 3)
    fast = PolyphaseConv2d(conv)
    x = torch.randn(1, 3, 20, 20)
    fast(x).square().sum().backward()
    weight_grad = conv.weight.grad.clone()  # the same Parameter: fast shares it
    conv.weight.grad = None
    conv(x).square().sum().backward()
    torch.testing.assert_close(weight_grad, conv.weight.grad)


@pytest.mark.parametrize("conv", [
    nn.Conv2d(3, 8, 3, 1, 1),  # stride 1: nothing to split into phases
    nn.Conv2d(16, 8, 3, 2, 1),  # not a stem: oneDNN's backward is fine with many channels
    nn.Conv2d(4, 8, 3, 2, 1, groups=2),
    nn.Conv2d(3, 8, 3, 2, 1, dilation=2),
    nn.Conv2d(3, 8, 3, 2, 1, padding_mode="reflect"),
    nn.Conv2d(3, 8, 3, (2, 1), 1),
], ids=["stride1", "16-channels", "groups", "dilation", "reflect", "uneven-stride"])
def test_only_plain_strided_stems_are_swapped(conv):
    net = nn.Sequential(conv)
    assert not eligible(conv) and use_polyphase_gradients(net) == [] and net[0] is conv


def test_a_subclass_with_its_own_forward_is_left_alone():
    class SamePadding(nn.Conv2d):  # like EfficientNet's TF-style padding
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(nn.functional.pad(x, (0, 1, 0, 1)))

    assert not eligible(SamePadding(3, 8, 3, 2))


def test_googlenet_loads_with_a_polyphase_stem_and_keeps_the_plain_networks_step():
    """On the CPU load_model swaps the stem; the step's gradient stays the network-as-written's
    as accurately as float32 allows on this CPU, and fast_paths=False leaves the network alone."""
    fast = zoo.load_model("googlenet-untrained", device="cpu")
    plain = zoo.load_model("googlenet-untrained", device="cpu", fast_paths=False)
    assert isinstance(fast.module.get_submodule("conv1.conv"), PolyphaseConv2d)
    assert not any(isinstance(m, PolyphaseConv2d) for m in plain.module.modules())
    layer = fast.layer("inception3b").name
    image = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(0))
    grads = []
    for model, pixels in ((fast, image), (plain, image), (plain.as_float64(), image.double())):
        x = pixels.clone().requires_grad_(True)
        act = model.activations(x, [layer])[layer]
        grads.append(torch.autograd.grad(act.square().mean(), x)[0])
    assert_as_accurate_as_float32(*grads)


def test_every_zoo_stem_that_qualifies_is_found():
    """The 7x7/2 and 11x11/4 stems of the zoo; EfficientNet-Lite's padded 3x3/2 stem and VGG's stride-1 are not."""
    found = {}
    for name in ("googlenet", "alexnet", "resnet50", "vgg16", "efficientnet_lite0"):
        module = zoo.get_spec(name).build()
        found[name] = [(c.kernel_size, c.stride) for c in module.modules() if eligible(c)]
    assert found == {"googlenet": [((7, 7), (2, 2))], "alexnet": [((11, 11), (4, 4))],
                     "resnet50": [((7, 7), (2, 2))], "vgg16": [], "efficientnet_lite0": []}

