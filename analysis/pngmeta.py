"""Result files: PNGs that carry their run's metadata, and writes that never leave half a file.

Metadata goes into PNG text chunks (one JSON chunk 'inceptionism', plus readable 'Software' and
'Description'), so any result PNG says how it was made. This module sits below recipes and
grids (it imports neither), so both read PNGs through it without an import cycle.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

import torch
from PIL import Image, PngImagePlugin

from analysis import schemas
from analysis.errors import ConfigError, ImageError
from analysis.images import tensor_to_pil
from analysis.provenance import RunRecord

METADATA_KEY = "inceptionism"
_UMASK = os.umask(0o022)  # read once at import (os.umask can only be read by setting it), then put back
os.umask(_UMASK)


def png_bytes(image: torch.Tensor | Image.Image, metadata: RunRecord | dict | None = None) -> bytes:
    """Encode a picture as PNG with a run's record (or a grid's metadata) in text chunks, as JSON."""
    picture = tensor_to_pil(image) if isinstance(image, torch.Tensor) else image
    if isinstance(metadata, RunRecord):
        metadata = metadata.to_dict()
    info = PngImagePlugin.PngInfo()
    if metadata:
        info.add_text(METADATA_KEY, json.dumps(metadata, default=str))
        version = (metadata.get("versions") or {}).get("inceptionism", "")
        info.add_text("Software", f"Inceptionism Lab {version}".strip())
        if metadata.get("title"):
            info.add_text("Title", str(metadata["title"]))
        if "objective_text" in metadata:
            info.add_text("Description",
                          f"{metadata.get('model')}: {metadata['objective_text']}, seed {metadata.get('seed')}")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def save_png(path: Path, image: torch.Tensor | Image.Image, metadata: RunRecord | dict | None = None) -> Path:
    return write_file(path, png_bytes(image, metadata))


def write_file(path: Path, data: bytes | str) -> Path:
    """Write a result: to a temporary file beside the destination, then renamed onto it, so a failed write
    never leaves half a file where the user expects a result (nor destroys the one that was there)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=path.parent, prefix=f".{path.name}.", suffix=".part",
                                         delete=False) as part:
            part.write(data.encode() if isinstance(data, str) else data)
        os.chmod(part.name, 0o666 & ~_UMASK)  # a temporary file is private (0600); a result is not
        os.replace(part.name, path)
    except OSError as err:
        if "part" in locals():
            Path(part.name).unlink(missing_ok=True)
        raise ConfigError(f"Could not write {path} ({err.strerror or type(err).__name__}).") from None
    return path


def read_png_metadata(source: Path | bytes, check: bool = True) -> dict:
    """The metadata a result PNG carries ({} when it has none). check: the values the tool reads are of the
    types it writes (schemas.ResultMetadata); a caller that looks at the record first checks it itself."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as picture:
            text = picture.info.get(METADATA_KEY)  # text chunks before the pixels: no need to decode the image
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
        raise ImageError(f"Not a readable PNG ({type(err).__name__}).") from None
    if not text:
        return {}
    metadata = schemas.parse_json(text, "PNG's metadata")
    if not isinstance(metadata, dict):
        raise ImageError("The PNG's metadata is not what this tool writes.")
    if check:
        schemas.validate(schemas.ResultMetadata, metadata, "PNG's metadata", worded=False)
    return metadata


def read_png_record(source: Path | bytes) -> RunRecord:
    """The run record a result PNG carries, checked (an empty record when it carries none)."""
    return RunRecord.from_dict(read_png_metadata(source))
