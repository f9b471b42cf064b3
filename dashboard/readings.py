"""What a depth means: the one-line reading shown beside each layer."""

from __future__ import annotations

DEPTH_READINGS: tuple[tuple[float, str, str], ...] = (  # limits between the tenths the pages offer, so a
    (0.25, "strokes and edges", "lines, colour blobs and edges, laid over the whole picture"),  # chosen depth
    (0.45, "textures", "small repeated motifs: fur, grain, mesh"),  # (0.6) and its nearest layer (0.59)
    (0.65, "patterns", "ornaments, honeycombs, spirals and eye-like spots"),  # read the same
    (0.85, "parts", "eyes, snouts, legs, wheels, windows"),
    (1.01, "objects", "whole animals, buildings and things the network was trained on"),
)


def depth_reading(depth: float) -> str:
    """A few words: 'strokes and edges', 'textures', 'patterns', 'parts' or 'objects'."""
    return next(short for limit, short, _ in DEPTH_READINGS if depth < limit)


def depth_parts(depth: float) -> tuple[str, str]:
    """('textures', 'small repeated motifs: fur, grain, mesh')."""
    return next((short, long) for limit, short, long in DEPTH_READINGS if depth < limit)


def depth_sentence(depth: float) -> str:
    """One line: 'textures: small repeated motifs: fur, grain, mesh'."""
    return ": ".join(depth_parts(depth))
