"""Tolerances from float arithmetic, never from what one CPU happened to give.

oneDNN picks different kernels on different CPU kinds (AVX-512 and AMX on some machines, AVX2 on
others), so float32 results differ in their last bits, and a ReLU gate whose input lies within
rounding of its edge can flip and move a gradient by far more than an ulp (2.8e-3 of its norm
between two float32 paths on an EPYC, 1e-6 on a Xeon). So a test either checks logic in float64,
where rounding is 2**29 times finer, or measures two float32 paths against a float64 reference
and asks the new path to be as accurate as the path as written is on this very CPU.
"""

from __future__ import annotations

import math

import torch

# Half of float64's digits: batching, slicing and layout logic checked in float64 agree far
# tighter than this unless the logic is wrong (then they differ by O(1)).
FLOAT64_RTOL = math.sqrt(torch.finfo(torch.float64).eps)

# Half of float32's digits: the floor under a float32 path's measured error, so that a path as
# written that happens to flip no gate on this input does not set an impossible bar.
FLOAT32_FLOOR = math.sqrt(torch.finfo(torch.float32).eps)


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.detach().double()
    return float((value.detach().double() - reference).norm() / reference.norm())


def assert_as_accurate_as_float32(value: torch.Tensor, baseline: torch.Tensor, reference64: torch.Tensor,
                                  slack: float = 4.0) -> None:
    """value (a new float32 path) is within slack times the error of baseline (the float32 path as
    written) against reference64 (the path as written in float64), floored at FLOAT32_FLOOR."""
    error, allowed = relative_error(value, reference64), slack * max(relative_error(baseline, reference64),
                                                                     FLOAT32_FLOOR)
    assert error <= allowed, f"relative error {error:.3g} against float64; float32 as written allows {allowed:.3g}"
