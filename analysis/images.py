"""Image input: every image is untrusted.

Opens uploads, sample files and bytes, applies the EXIF orientation, converts any mode
(palette, alpha, 16-bit, CMYK, greyscale) to RGB, refuses corrupt and oversized files
with one clear line, and returns float tensors (3, H, W) in [0, 1].
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from analysis.errors import ImageError

MAX_INPUT_PIXELS = 64_000_000
"""Refuse files that decode to more than this many pixels (decompression bombs)."""

MAX_DREAM_SIDE = 4096
"""The longest side a dream may have; tiling keeps memory bounded up to it."""

ImageSource = str | Path | bytes | BinaryIO


def _open(source: ImageSource) -> Image.Image:
    name = str(source) if isinstance(source, (str, Path)) else getattr(source, "name", "the upload")
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise ImageError(f"No image file at {source}.")
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            if image.width * image.height > MAX_INPUT_PIXELS:
                raise ImageError(
                    f"{name} is {image.width}x{image.height} pixels; the limit is "
                    f"{MAX_INPUT_PIXELS // 1_000_000} megapixels."
                )
            image.load()
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} is too large to decode safely.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{name} is not a readable image ({type(err).__name__}).") from None
    return image


def to_rgb(image: Image.Image) -> Image.Image:
    """EXIF-rotate and flatten any mode to RGB (transparent areas become white)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        span = max(float(array.max() - array.min()), 1.0)
        image = Image.fromarray(((array - array.min()) / span * 255).astype(np.uint8))
    if image.mode == "F":
        image = image.convert("L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    return image.convert("RGB")


def load_image(source: ImageSource, max_side: int | None = None) -> torch.Tensor:
    """Open an untrusted image as a (3, H, W) float tensor in [0, 1], longest side <= max_side."""
    image = to_rgb(_open(source))
    if max_side is not None:
        image = fit_pil(image, max_side)
    return pil_to_tensor(image)


def fit_pil(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink (never enlarge) so the longest side is at most max_side."""
    check_side(max_side)
    scale = max_side / max(image.size)
    if scale >= 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def check_side(side: int) -> None:
    if not 16 <= side <= MAX_DREAM_SIDE:
        raise ImageError(f"Image size {side} px is out of range: choose 16 to {MAX_DREAM_SIDE} px.")


def noise_image(size: int | tuple[int, int], seed: int = 0) -> torch.Tensor:
    """Grey noise around mid-grey, the classic start for a dream from nothing."""
    height, width = (size, size) if isinstance(size, int) else size
    check_side(max(height, width))
    generator = torch.Generator().manual_seed(seed)
    return (0.5 + 0.1 * torch.randn(3, height, width, generator=generator)).clamp(0, 1)


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    """(3, H, W) or (1, 3, H, W) in [0, 1] to an 8-bit RGB picture."""
    if image.dim() == 4:
        image = image[0]
    array = (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of a (N, 3, H, W) or (3, H, W) tensor to (height, width)."""
    batched = image if image.dim() == 4 else image[None]
    out = F.interpolate(batched, size=size, mode="bilinear", align_corners=False, antialias=True)
    return out if image.dim() == 4 else out[0]


def fit_tensor(image: torch.Tensor, max_side: int) -> torch.Tensor:
    """Shrink a (3, H, W) tensor so its longest side is at most max_side."""
    check_side(max_side)
    height, width = image.shape[-2:]
    scale = max_side / max(height, width)
    if scale >= 1:
        return image
    return resize(image, (max(1, round(height * scale)), max(1, round(width * scale))))
