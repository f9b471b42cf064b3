"""Build natural_rfft128.npy: the mean Fourier magnitude of the bundled photos, for MaCo.

MaCo (Fel et al. 2023) fixes the magnitude spectrum of a feature visualisation to that of
natural images and optimises only the phase. Its reference package (horama) downloads its
spectrum at run time; this project derives its own from the photos it ships, offline.

What is averaged: every view of the atlas's default collection (the 7 photos in
assets/samples, each as 26 square crops and their mirrors: 364 views) at 128 x 128 px,
taken into lucent's decorrelated colour space (the space the renderer's phase lives in,
recorrelated to RGB after the inverse FFT), mean removed per channel, under a 2-D Hann window (without it the
photos' borders put a bright cross on the spectrum's axes, which MaCo then draws as a grid of lines).
Stored: |rfft2| averaged over views, shape (3, 128, 65), float32, about 100 KB.

Run from the repository root: .venv/bin/python assets/spectra/make_spectrum.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from analysis.atlas import load_view, sample_collection
from analysis.featviz import color_correlation

SIDE = 128
OUT = Path(__file__).with_name("natural_rfft128.npy")


def main() -> None:
    to_decorrelated = torch.linalg.inv(color_correlation())  # rgb = C x  ->  x = C^-1 rgb
    total = torch.zeros(3, SIDE, SIDE // 2 + 1, dtype=torch.float64)
    views = sample_collection()
    hann = torch.hann_window(SIDE, periodic=False, dtype=torch.float64)
    window = hann[:, None] * hann[None, :]
    for view in views:
        rgb = load_view(view, SIDE).double()
        x = torch.einsum("ij,jhw->ihw", to_decorrelated.double(), rgb)
        x = x - x.mean((1, 2), keepdim=True)
        total += torch.fft.rfft2(x * window).abs()
    magnitude = (total / len(views)).float().numpy()
    np.save(OUT, magnitude)
    print(f"{OUT}: {magnitude.shape}, from {len(views)} views, {OUT.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
