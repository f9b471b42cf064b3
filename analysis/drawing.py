"""Drawing: labelled grids of pictures, captioned cells and contact sheets, as PIL images.

Only PIL (and the library's error types): every module that shows pictures side by side
(compare, stats, bias, featviz, animation, grids, the dashboard) draws through here, so text
sizes, wrapping and fonts are the same everywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from analysis.errors import ConfigError, ImageError

MIN_TEXT_WIDTH_EMS = 24
"""A grid is at least this many text heights wide, so its title and footnote stay readable."""


def load_font(size: int) -> "ImageFont.FreeTypeFont | ImageFont.ImageFont":
    """Pillow's own font at `size` px: nothing to install, and the same text on every machine."""
    try:
        return ImageFont.load_default(size=size)  # scalable (Pillow >= 10.1 with FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def _split_word(draw: "ImageDraw.ImageDraw", word: str, font: object, width: int) -> list[str]:
    """A word wider than the column, broken after - _ / . where possible, else between letters."""
    if draw.textlength(word, font=font) <= width:
        return [word]
    pieces, current = [], ""
    for token in re.findall(r"[^-_/.]*[-_/.]|[^-_/.]+", word):
        if current and draw.textlength(current + token, font=font) > width:
            pieces.append(current)
            current = ""
        for char in token:  # a token that alone is too wide: break between letters
            if current and draw.textlength(current + char, font=font) > width:
                pieces.append(current)
                current = ""
            current += char
    return pieces + ([current] if current else [])


def _wrap(draw: "ImageDraw.ImageDraw", text: str, font: object, width: int) -> list[str]:
    """Greedy word wrap to a pixel width; explicit newlines are kept; long words are broken."""
    lines: list[str] = []
    for paragraph in str(text).split("\n"):
        words = [piece for word in paragraph.split(" ") for piece in _split_word(draw, word, font, width)]
        line = ""
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

    if not cells or not any(cells):
        raise ImageError("A grid needs at least one picture.")
    columns = max(len(row) for row in cells)
    pictures = [c for row in cells for c in row if c is not None]
    if not pictures:
        raise ImageError("A grid needs at least one picture.")
    if cell_side is not None and not 16 <= cell_side <= 4096:
        raise ConfigError(f"Cell size {cell_side} px is out of range: choose 16 to 4096 px.")
    if cell_side is not None:
        fits = [cell_side / max(p.size) for p in pictures]
        box_w = max(round(p.width * f) for p, f in zip(pictures, fits))
        box_h = max(round(p.height * f) for p, f in zip(pictures, fits))
    else:
        box_w, box_h = max(p.width for p in pictures), max(p.height for p in pictures)
    gap = max(4, box_w // 40)
    text_px = max(12, min(box_w, box_h) // 12)
    font, title_font = load_font(text_px), load_font(round(text_px * 1.35))
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
    natural = label_w + columns * box_w + (columns - 1) * gap
    # a narrow grid (one small cell) still gets lines long enough for the title and footnote
    width = margin * 2 + max(natural, MIN_TEXT_WIDTH_EMS * text_px)
    grid_left = margin + (width - 2 * margin - natural) // 2
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
    left = grid_left + label_w
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
                draw.text((grid_left, ly + i * line_h), line, font=font, fill=ink)
        for c, pic in enumerate(row):
            if pic is None:
                continue
            pic = pic.convert("RGB")
            s = min(box_w / pic.width, box_h / pic.height)
            if abs(s - 1.0) > 1e-6:
                scaled = (max(1, round(pic.width * s)), max(1, round(pic.height * s)))
                pic = pic.resize(scaled, Image.Resampling.LANCZOS)
            x0 = left + c * (box_w + gap)
            canvas.paste(pic, (x0 + (box_w - pic.width) // 2, y0 + (box_h - pic.height) // 2))
    y = grid_top + grid_h + gap
    for line in foot_lines:
        draw.text((margin, y), line, font=font, fill=(90, 90, 90))
        y += line_h
    return canvas


def caption_cell(picture: Image.Image, lines: Sequence[str], ink: tuple[int, int, int] = (20, 20, 20),
                 background: tuple[int, int, int] = (255, 255, 255), centred: bool = False) -> Image.Image:
    """A picture with short text lines under it (e.g. its top classes), for a grid cell.

    Exactly len(lines) text rows, each cut to the picture's width with an ellipsis, so cells
    with the same number of lines have the same height and line up in grid_image. Text
    scales with the picture, as grid_image's labels do. centred: each line centred under the
    picture (a short name such as a channel number), else flush left (a list to read).
    """

    picture = picture.convert("RGB")
    text_px = max(12, picture.width // 14)
    font, line_h, gap = load_font(text_px), round(text_px * 1.25), max(4, picture.width // 40)
    canvas = Image.new("RGB", (picture.width, picture.height + gap + len(lines) * line_h), background)
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for i, line in enumerate(lines):
        text = str(line)
        while text and draw.textlength(text, font=font) > picture.width:
            text = text[:-2] + "…" if len(text) > 1 else ""
        x = (picture.width - draw.textlength(text, font=font)) / 2 if centred else 0
        draw.text((x, picture.height + gap + i * line_h), text, font=font, fill=ink)
    return canvas


def contact_sheet(pictures: Sequence[Image.Image], captions: Sequence[str], columns: int | None = None,
                  title: str | None = None, footnote: str | None = None, min_side: int = 128) -> Image.Image:
    """Many pictures on one page, each with its caption centred under it, in rows of `columns`.

    columns: by default a near-square sheet of at most 8 columns. Pictures smaller than
    min_side are enlarged first, so their captions stay readable.
    """
    if not pictures:
        raise ImageError("A contact sheet needs at least one picture.")
    if len(captions) != len(pictures):
        raise ConfigError(f"{len(pictures)} pictures but {len(captions)} captions.")
    columns = columns or min(8, math.ceil(math.sqrt(len(pictures))))
    cells = []
    for picture, caption in zip(pictures, captions):
        if max(picture.size) < min_side:
            scale = min_side / max(picture.size)
            picture = picture.resize((round(picture.width * scale), round(picture.height * scale)),
                                     Image.Resampling.LANCZOS)
        cells.append(caption_cell(picture, [caption], centred=True))
    rows: list[list[Image.Image | None]] = [list(cells[i:i + columns]) for i in range(0, len(cells), columns)]
    return grid_image(rows, title=title, footnote=footnote)


def square_thumbnail(picture: Image.Image, side: int = 160) -> Image.Image:
    """A centre-cropped square of `side` px, so a row of photos of any shape lines up."""
    picture = picture.convert("RGB")
    crop = min(picture.size)
    left, top = (picture.width - crop) // 2, (picture.height - crop) // 2
    return picture.crop((left, top, left + crop, top + crop)).resize((side, side), Image.Resampling.LANCZOS)

