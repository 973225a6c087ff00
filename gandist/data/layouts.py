"""Which source reads a SOURCE: ``builtin:shapes``, ``builtin:digits``, or a folder in a --layout.
Above both ``gandist.data.sources`` and ``gandist.data.pairs``, so it can pick any of them."""

from __future__ import annotations

import textwrap
from typing import Optional

import fsspec

from gandist.data.pairs import DIRECTIONS, PAIRS, PairFolderSource, Pix2PixSource
from gandist.data.sources import (ClassFolderSource, ClassList, DigitsSource, FolderSource, MaskFolderSource,
                                  ShapesSource, Source)

LAYOUTS = ("auto", "images", "classes", "masks", "pix2pix", "pairs")

# What SOURCE may be, for `gandist shard --help`: keep it beside the code it describes.
SOURCES_HELP = textwrap.dedent("""\
    SOURCE is one of:
      builtin:shapes   procedural shapes (circle, square, triangle) with per-pixel masks
      builtin:digits   scikit-learn's 8x8 digits, upsampled, with digit masks
      PATH             a folder (local path or fsspec URL), read by --layout:
         images        images (jpg, png, webp) at any depth, for generation
         classes       PATH/<class>/... ; the class is kept as each sample's label
         masks         PATH/images/<name>.* and PATH/masks/<name>.png (greyscale or
                       palette PNGs of class ids, or colour masks), matched by name;
                       needs --classes
         pix2pix       files holding A and B side by side (A left); with --direction
                       AtoB, A is the input image and B a colour mask, mapped to class
                       ids by the nearest colour in --classes (lines `name R G B`);
                       with --pairs image, B stays an image (task=translate)
         pairs         PATH/A/<name>.* and PATH/B/<name>.*, matched by name: image
                       pairs for task=translate (--direction BtoA swaps them)
         auto          masks when PATH has images/ and masks/, pairs when it has
                       A/ and B/, else images (default)
    builtin:shapes --pairs image writes label-map/photo pairs for task=translate: A is
    the mask drawn as a coloured label map (background black, circle red, square green,
    triangle yellow), B the photo; the mask is kept, for eval.segmenter.
    Every image is scaled so its short side is --size, then centre-cropped (masks with
    nearest neighbour). An unusable input file is named, skipped and counted, or stops
    the ingest with --strict. Shards are written in parallel; manifest.json comes last.
    """)


def open_source(spec: str, *, size: int = 64, seed: int = 0, layout: str = "auto",
                classes: Optional[ClassList | list[str]] = None, direction: str = "AtoB",
                strict: bool = False, pairs: Optional[str] = None, target_mode: str = "RGB") -> Source:
    """``builtin:shapes``, ``builtin:digits``, or a folder (path or fsspec URL) in a ``layout``.

    Layouts: images (any depth, generation), classes (root/<class>/...), masks (images/ and
    masks/ matched by stem), pix2pix (A|B pairs in one file; B a colour mask, or with
    ``pairs="image"`` an image), pairs (A/ and B/ matched by stem, B an image); auto picks masks
    when images/ and masks/ exist, pairs when A/ and B/ do, else images. ``pairs="image"`` on
    builtin:shapes gives label-map/photo pairs.
    """
    if isinstance(classes, list):
        classes = ClassList(classes)
    if size < 8:
        raise ValueError(f"--size {size} is too small; use 8 or more (e.g. 32 or 64)")
    if layout not in LAYOUTS:
        raise ValueError(f"--layout {layout!r} is not one of {', '.join(LAYOUTS)}")
    if pairs is not None and pairs not in PAIRS:
        raise ValueError(f"--pairs {pairs!r} is not one of {', '.join(PAIRS)}")
    if spec == "builtin:shapes":
        if direction not in DIRECTIONS:
            raise ValueError(f"--direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
        return ShapesSource(size, seed, pairs, direction)
    if spec == "builtin:digits":
        if pairs is not None:
            raise ValueError("--pairs does not apply to builtin:digits; use builtin:shapes --pairs image")
        return DigitsSource(size, seed)
    if spec.startswith("builtin:"):
        raise ValueError(f"unknown builtin source {spec!r}; use builtin:shapes or builtin:digits")
    if layout == "auto":
        fs, root = fsspec.core.url_to_fs(spec)
        layout = ("masks" if fs.isdir(f"{root}/images") and fs.isdir(f"{root}/masks") else
                  "pairs" if fs.isdir(f"{root}/A") and fs.isdir(f"{root}/B") else "images")
    if pairs is not None and layout not in ("pix2pix", "pairs"):
        raise ValueError(f"--pairs {pairs} is for --layout pix2pix or pairs (or builtin:shapes), not {layout}")
    if layout == "masks":
        return MaskFolderSource(spec, size, seed, classes, strict)
    if layout == "classes":
        return ClassFolderSource(spec, size, seed, strict)
    if layout == "pix2pix":
        return Pix2PixSource(spec, size, seed, classes, direction, strict, pairs or "mask", target_mode)
    if layout == "pairs":
        if pairs == "mask":
            raise ValueError("--layout pairs keeps B as an image (task=translate); for masks use --layout masks "
                             "(images/ and masks/)")
        return PairFolderSource(spec, size, seed, direction, strict, target_mode)
    return FolderSource(spec, size, seed, strict)
