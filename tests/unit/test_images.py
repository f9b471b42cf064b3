"""Untrusted images: odd modes, EXIF rotation, corrupt and huge files all end well."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from analysis.errors import ImageError
from analysis.images import MAX_INPUT_PIXELS, load_image, noise_image, tensor_to_pil


def _encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA", "L", "P", "I;16", "CMYK", "1", "F"])
def test_every_mode_becomes_rgb_in_unit_range(mode):
    base = Image.new("RGB", (40, 30), (200, 30, 90))
    image = base.convert(mode) if mode not in ("I;16", "F") else Image.new(mode, (40, 30), 1000)
    fmt = "JPEG" if mode == "CMYK" else "TIFF" if mode == "F" else "PNG"
    tensor = load_image(_encode(image, fmt))
    assert tensor.shape == (3, 30, 40) and tensor.dtype == torch.float32
    assert 0 <= tensor.min() and tensor.max() <= 1


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 0))
    assert torch.allclose(load_image(_encode(image)), torch.ones(3, 8, 8))


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (60, 20), (10, 200, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    tensor = load_image(_encode(image, "JPEG", exif=exif.tobytes()))
    assert tensor.shape[1:] == (60, 20)


def test_max_side_shrinks_but_never_enlarges():
    data = _encode(Image.new("RGB", (400, 100)))
    assert load_image(data, 200).shape[1:] == (50, 200)
    assert load_image(data, 1000).shape[1:] == (100, 400)


@pytest.mark.parametrize("payload", [b"", b"not an image at all", _encode(Image.new("RGB", (50, 50)))[:60]])
def test_corrupt_files_give_one_line_errors(payload):
    with pytest.raises(ImageError, match="not a readable image") as err:
        load_image(payload)
    assert "\n" not in str(err.value)


def test_decompression_bomb_is_refused():
    side = int(MAX_INPUT_PIXELS ** 0.5) + 100
    data = _encode(Image.new("1", (side, side)))  # tiny file, huge picture
    with pytest.raises(ImageError, match="megapixels|too large"):
        load_image(data)


def test_missing_file_and_bad_size_are_clear(tmp_path):
    with pytest.raises(ImageError, match="No image file"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="out of range"):
        load_image(_encode(Image.new("RGB", (50, 50))), 5)


def test_noise_is_seeded_and_round_trips_through_pil():
    a, b = noise_image(32, seed=1), noise_image(32, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, noise_image(32, seed=2))
    back = load_image(_encode(tensor_to_pil(a)))
    assert (back - a).abs().max() <= 1 / 255
