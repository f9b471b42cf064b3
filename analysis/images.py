"""Image input: every image is untrusted.

Opens uploads, sample files and bytes, applies the EXIF orientation, converts any mode
(palette, alpha, 16-bit, CMYK, greyscale) to RGB, refuses corrupt and oversized files
with one clear line, and returns float tensors (3, H, W) in [0, 1].
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from analysis.errors import ImageError

MAX_INPUT_PIXELS = 64_000_000
"""Refuse files that decode to more than this many pixels (decompression bombs)."""

MAX_IMAGE_FILE_BYTES = 256 * 2**20
"""Refuse image files larger than this before reading them (a 64-megapixel PNG is well under it)."""

MAX_DREAM_SIDE = 4096
"""The longest side a dream may have; tiling keeps memory bounded up to it."""

ImageInput = str | Path | bytes | BinaryIO
"""What load_image opens: a path, raw bytes or an open binary file (recipes.ImageSource says where a dream's
start image comes from, and loads it through here)."""


@contextmanager
def opened(source: ImageInput) -> Iterator[Image.Image]:
    """An untrusted image, decoded, for the with-block; the picture and its file are closed on every path
    (a truncated or oversized file once left its file open: a ResourceWarning after the error line)."""
    if isinstance(source, (str, Path)):
        check_file(Path(source))
        with open(source, "rb") as stream, _decoded(stream, str(source)) as image:
            yield image
        return
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    with _decoded(stream, getattr(source, "name", "the upload")) as image:
        yield image


@contextmanager
def _decoded(stream: BinaryIO, name: str) -> Iterator[Image.Image]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"{name} is too large to decode safely.") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as err:
        raise ImageError(f"{name} is not a readable image ({type(err).__name__}).") from None
    with image:
        if image.width * image.height > MAX_INPUT_PIXELS:
            raise ImageError(f"{name} is {image.width}x{image.height} pixels; the limit is "
                             f"{MAX_INPUT_PIXELS // 1_000_000} megapixels.")
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise ImageError(f"{name} is not a readable image ({type(err).__name__}).") from None
        yield image


def check_file(path: Path, limit: int | None = None) -> int:
    """The size of an image file, once it is known to be one within the limit (checked before it is read)."""
    limit = MAX_IMAGE_FILE_BYTES if limit is None else limit
    if not path.is_file():
        raise ImageError(f"No image file at {path}.")
    size = path.stat().st_size
    if size > limit:
        raise ImageError(f"{path} is {size / 2**20:.0f} MB; the limit for an image file is {limit // 2**20} MB.")
    return size


def file_sha256(path: Path) -> str:
    """The sha256 of an image file within the size limit, hashed while streaming (never held whole in memory)."""
    check_file(path)
    with open(path, "rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def read_verified(path: Path, sha256: str, name: str) -> bytes:
    """A file a recipe names: its size checked, then its sha256 while streaming, and only then its bytes.

    A wrong file (or one too large) is refused without ever being read into memory whole.
    """
    if sha256 and file_sha256(path) != sha256:
        raise ImageError(f"The image is not the one the recipe was made with ({name}, sha256 differs).")
    check_file(path)
    raw = path.read_bytes()
    if sha256 and hashlib.sha256(raw).hexdigest() != sha256:  # it changed between the two reads
        raise ImageError(f"The image is not the one the recipe was made with ({name}, sha256 differs).")
    return raw


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


def load_image(source: ImageInput, max_side: int | None = None) -> torch.Tensor:
    """Open an untrusted image as a (3, H, W) float tensor in [0, 1], longest side <= max_side."""
    with opened(source) as picture:
        image = to_rgb(picture)  # a new picture: independent of the file closed below
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
