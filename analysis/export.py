"""Exports: PNG files that carry their run's metadata, and more (grids, bundles, animations).

Metadata goes into PNG text chunks (one JSON chunk 'inceptionism', plus readable
'Software' and 'Description'), so any result PNG says how it was made.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch
from PIL import Image, PngImagePlugin

from analysis.errors import ImageError
from analysis.images import tensor_to_pil

METADATA_KEY = "inceptionism"


def png_bytes(image: torch.Tensor | Image.Image, metadata: dict | None = None) -> bytes:
    """Encode a picture as PNG with the metadata in text chunks."""
    picture = tensor_to_pil(image) if isinstance(image, torch.Tensor) else image
    info = PngImagePlugin.PngInfo()
    if metadata:
        info.add_text(METADATA_KEY, json.dumps(metadata, default=str))
        info.add_text("Software", f"Inceptionism Lab {metadata.get('versions', {}).get('inceptionism', '')}".strip())
        if "objective_text" in metadata:
            info.add_text("Description", f"{metadata.get('model')}: {metadata['objective_text']}, seed {metadata.get('seed')}")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def save_png(path: Path, image: torch.Tensor | Image.Image, metadata: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(image, metadata))
    return path


def read_png_metadata(source: Path | bytes) -> dict:
    """The metadata a result PNG carries ({} when it has none)."""
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as picture:
            text = picture.text.get(METADATA_KEY) if hasattr(picture, "text") else None
    except (OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"Not a readable PNG ({type(err).__name__}).") from None
    return json.loads(text) if text else {}


# ---------------------------------------------------------------- grids


def _font(size: int) -> "ImageFont.FreeTypeFont | ImageFont.ImageFont":
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # scalable (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _wrap(draw: "ImageDraw.ImageDraw", text: str, font: object, width: int) -> list[str]:
    """Greedy word wrap to a pixel width; explicit newlines are kept."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        words, line = paragraph.split(" "), ""
        for word in words:
            candidate = f"{line} {word}".strip()
            if not line or draw.textlength(candidate, font=font) <= width:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def grid_image(
    cells: list[list[Image.Image | None]],
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    title: str | None = None,
    footnote: str | None = None,
    cell_side: int | None = None,
    background: tuple[int, int, int] = (255, 255, 255),
    ink: tuple[int, int, int] = (20, 20, 20),
) -> Image.Image:
    """A labelled grid of pictures (rows x columns) as one RGB image.

    Every cell is fitted into a box of the largest cell's size (or cell_side for the longest
    side) and centred; None leaves a cell empty. Text scales with the cells, so labels stay
    readable at any size; long labels wrap. Row labels go on the left, column labels on top,
    the title above everything and the footnote below.
    """
    from PIL import ImageDraw

    if not cells or not any(cells):
        raise ImageError("A grid needs at least one picture.")
    columns = max(len(row) for row in cells)
    pictures = [c for row in cells for c in row if c is not None]
    if not pictures:
        raise ImageError("A grid needs at least one picture.")
    if cell_side:
        fits = [cell_side / max(p.size) for p in pictures]
        box_w = max(round(p.width * f) for p, f in zip(pictures, fits))
        box_h = max(round(p.height * f) for p, f in zip(pictures, fits))
    else:
        box_w, box_h = max(p.width for p in pictures), max(p.height for p in pictures)
    gap = max(4, box_w // 40)
    text_px = max(12, min(box_w, box_h) // 12)
    font, title_font = _font(text_px), _font(round(text_px * 1.35))
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = round(text_px * 1.25)
    title_h = round(text_px * 1.35 * 1.3)

    col_lines = [_wrap(probe, label, font, box_w) for label in (col_labels or [])]
    header_h = (max((len(lines) for lines in col_lines), default=0) * line_h + gap) if col_labels else 0
    label_w = 0
    if row_labels:
        longest_word = max((probe.textlength(w, font=font) for label in row_labels for w in label.split()), default=0)
        label_w = int(min(max(box_w, 8 * text_px), max(longest_word + 2 * gap, 6 * text_px)))
    margin = 2 * gap
    width = margin * 2 + label_w + columns * box_w + (columns - 1) * gap
    title_lines = _wrap(probe, title, title_font, width - 2 * margin) if title else []
    foot_lines = _wrap(probe, footnote, font, width - 2 * margin) if footnote else []
    top = margin + len(title_lines) * title_h + (gap if title_lines else 0)
    grid_top = top + header_h
    grid_h = len(cells) * box_h + (len(cells) - 1) * gap
    height = grid_top + grid_h + (gap + len(foot_lines) * line_h if foot_lines else 0) + margin

    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    y = margin
    for line in title_lines:
        draw.text((margin, y), line, font=title_font, fill=ink)
        y += title_h
    left = margin + label_w
    for c, lines in enumerate(col_lines):
        x0 = left + c * (box_w + gap)
        for i, line in enumerate(lines):
            x = x0 + max(0, (box_w - probe.textlength(line, font=font)) / 2)
            draw.text((x, top + i * line_h), line, font=font, fill=ink)
    for r, row in enumerate(cells):
        y0 = grid_top + r * (box_h + gap)
        if row_labels and r < len(row_labels):
            lines = _wrap(probe, row_labels[r], font, label_w - gap)
            ly = y0 + max(0, (box_h - len(lines) * line_h) / 2)
            for i, line in enumerate(lines):
                draw.text((margin, ly + i * line_h), line, font=font, fill=ink)
        for c, pic in enumerate(row):
            if pic is None:
                continue
            pic = pic.convert("RGB")
            s = min(box_w / pic.width, box_h / pic.height)
            if abs(s - 1.0) > 1e-6:
                pic = pic.resize((max(1, round(pic.width * s)), max(1, round(pic.height * s))), Image.Resampling.LANCZOS)
            x0 = left + c * (box_w + gap)
            canvas.paste(pic, (x0 + (box_w - pic.width) // 2, y0 + (box_h - pic.height) // 2))
    y = grid_top + grid_h + gap
    for line in foot_lines:
        draw.text((margin, y), line, font=font, fill=(90, 90, 90))
        y += line_h
    return canvas
