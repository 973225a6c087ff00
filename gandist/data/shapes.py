"""builtin:shapes: procedural RGB images of shapes with per-pixel class masks.

Every sample is a pure function of (seed, index), so any part of the set can be made
independently, in any order, on any machine.
"""

from __future__ import annotations

import numpy as np

from gandist.seeding import derive_seed

CLASSES = ("background", "circle", "square", "triangle")
# The colour of each class in a label map (--pairs image): black background, then the first
# colours of gandist's grid palette.
LABEL_COLOURS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25]], dtype=np.uint8)


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency colour waves plus pixel noise: texture that colour alone cannot separate."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    image = np.empty((size, size, 3), np.float32)
    base = rng.uniform(0.2, 0.8, 3)
    for c in range(3):
        fx, fy = rng.uniform(0.5, 4.0, 2)
        phase = rng.uniform(0, 2 * np.pi)
        image[..., c] = base[c] + 0.25 * np.sin(2 * np.pi * (fx * x + fy * y) + phase)
    image += rng.normal(0, 0.06, image.shape)
    return image


def _shape_mask(rng: np.random.Generator, kind: int, size: int) -> np.ndarray:
    """Boolean mask of one shape of class ``kind`` at a random place, size and rotation."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    radius = rng.uniform(0.12, 0.28) * size
    cx, cy = rng.uniform(radius * 0.6, size - radius * 0.6, 2)
    dx, dy = x - cx, y - cy
    if kind == 1:  # circle
        return dx * dx + dy * dy <= radius * radius
    angle = rng.uniform(0, 2 * np.pi)
    cos, sin = np.cos(angle), np.sin(angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    if kind == 2:  # square, half side = radius * 0.85
        half = radius * 0.85
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # triangle: equilateral, three half-planes at inradius 0.7 * radius (area close to the square's)
    inside = np.ones_like(u, dtype=bool)
    for k in range(3):
        theta = 2 * np.pi * k / 3
        inside &= np.cos(theta) * u + np.sin(theta) * v <= radius * 0.7
    return inside


def render_shapes(index: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(image uint8 [size, size, 3], mask uint8 [size, size]) for sample ``index`` of ``seed``."""
    rng = np.random.default_rng(derive_seed(seed, "shapes", index))
    image = _background(rng, size)
    mask = np.zeros((size, size), np.uint8)
    for _ in range(rng.integers(1, 5)):
        kind = int(rng.integers(1, len(CLASSES)))
        inside = _shape_mask(rng, kind, size)
        colour = rng.uniform(0, 1, 3)
        shade = colour + rng.normal(0, 0.04, (size, size, 3))  # a little texture on the shape too
        image[inside] = shade[inside]
        mask[inside] = kind  # later shapes occlude earlier ones, in the image and the mask
    return (np.clip(image, 0, 1) * 255).round().astype(np.uint8), mask


def dominant_shape(mask: np.ndarray) -> int:
    """The image's label: the shape class (0 circle, 1 square, 2 triangle) covering the most
    visible pixels, ties to the lower id; an image always holds at least one shape."""
    counts = np.bincount(mask.ravel(), minlength=len(CLASSES))[1:]
    return int(counts.argmax())
