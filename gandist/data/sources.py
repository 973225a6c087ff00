"""Readers of user data. Every source yields the same ``Sample`` for the shard writer.

A source first plans which items go to which split (a cheap list: indices or file paths),
then loads items one at a time, so nothing holds the whole dataset in memory.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import fsspec
import numpy as np
from PIL import Image

from gandist.data.shapes import CLASSES as SHAPE_CLASSES
from gandist.data.shapes import render_shapes
from gandist.seeding import derive_seed

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
SHAPES_DEFAULT_SAMPLES = 4096
HELDOUT_FRACTION, HELDOUT_MAX = 0.05, 500


@dataclass
class Sample:
    key: str  # unique within the shard set, safe as a tar key (no dots)
    image: np.ndarray  # uint8 [H, W, 3]
    mask: Optional[np.ndarray] = None  # uint8 [H, W] class ids
    label: Optional[int] = None  # whole-image class


@dataclass
class SourceInfo:
    name: str
    classes: Optional[list[str]]
    has_masks: bool
    tasks: list[str]  # what a shard set of this source can train: "generate", "segment"


def default_heldout(total: int) -> int:
    return max(1, min(HELDOUT_MAX, round(total * HELDOUT_FRACTION)))


def fit_square(image: Image.Image, size: int) -> Image.Image:
    """The stated resize rule: scale the short side to ``size``, then centre-crop to size x size."""
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), Image.BICUBIC)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


class Source:
    info: SourceInfo

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.skipped = 0  # unreadable inputs, reported by the writer

    def plan(self, samples: Optional[int], heldout: Optional[int]) -> dict[str, list[Any]]:
        """Items per split ("train", "heldout"), disjoint."""
        raise NotImplementedError

    def load(self, split: str, index: int, item: Any) -> Optional[Sample]:
        """The sample for one planned item, or None when the input cannot be read (counted)."""
        raise NotImplementedError

    def samples(self, split: str, items: list[Any]) -> Iterator[Sample]:
        for i, item in enumerate(items):
            sample = self.load(split, i, item)
            if sample is not None:
                yield sample


class ShapesSource(Source):
    info = SourceInfo("builtin:shapes", list(SHAPE_CLASSES), True, ["generate", "segment"])

    def plan(self, samples, heldout):
        n = SHAPES_DEFAULT_SAMPLES if samples is None else samples
        h = default_heldout(n) if heldout is None else heldout
        return {"train": list(range(n)), "heldout": list(range(h))}

    def load(self, split, index, item):
        # Held-out samples come from their own seed, so they never repeat a training sample.
        seed = self.seed if split == "train" else derive_seed(self.seed, "heldout")
        image, mask = render_shapes(item, seed, self.size)
        return Sample(key=f"{split}_{index:08d}", image=image, mask=mask)


def _split_finite(source: Source, items: list[Any], samples: Optional[int],
                  heldout: Optional[int]) -> dict[str, list[Any]]:
    """A seeded permutation: held-out first, then training, disjoint."""
    total = len(items)
    h = default_heldout(total) if heldout is None else heldout
    if total and h >= total:
        raise ValueError(f"--heldout {h} leaves no training samples out of {total}; use a smaller --heldout")
    available = total - h
    n = available if samples is None else samples
    if n > available:
        raise ValueError(f"--samples {n} asks for more than the {available} training samples "
                         f"{source.info.name} has ({total} in all, {h} held out)")
    order = np.random.default_rng(derive_seed(source.seed, "split")).permutation(total)
    return {"train": [items[i] for i in sorted(order[h:h + n])],
            "heldout": [items[i] for i in sorted(order[:h])]}


class DigitsSource(Source):
    """scikit-learn's bundled 8x8 digits, upsampled; mask = digit class + 1 on the strokes."""

    info = SourceInfo("builtin:digits", ["background"] + [str(d) for d in range(10)], True,
                      ["generate", "segment"])

    def __init__(self, size: int, seed: int) -> None:
        super().__init__(size, seed)
        from sklearn.datasets import load_digits

        digits = load_digits()  # ships with scikit-learn: nothing downloads
        self.images, self.labels = digits.images, digits.target

    def plan(self, samples, heldout):
        return _split_finite(self, list(range(len(self.labels))), samples, heldout)

    def load(self, split, index, item):
        grey = (self.images[item] / 16.0 * 255).astype(np.uint8)
        big = np.asarray(Image.fromarray(grey).resize((self.size, self.size), Image.BILINEAR))
        label = int(self.labels[item])
        mask = np.where(big > 96, label + 1, 0).astype(np.uint8)
        return Sample(key=f"{split}_{index:08d}", image=np.stack([big] * 3, axis=-1), mask=mask, label=label)


class FolderSource(Source):
    """A folder of images at any depth (local path or fsspec URL), for generation."""

    def __init__(self, url: str, size: int, seed: int) -> None:
        super().__init__(size, seed)
        self.fs, root = fsspec.core.url_to_fs(url)
        if not self.fs.isdir(root):
            raise ValueError(f"source {url!r} is not a folder, builtin:shapes or builtin:digits")
        self.files = sorted(p for p in self.fs.find(root) if p.lower().endswith(IMAGE_EXTENSIONS))
        if not self.files:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {url}")
        self.info = SourceInfo(url, None, False, ["generate"])

    def plan(self, samples, heldout):
        return _split_finite(self, self.files, samples, heldout)

    def load(self, split, index, item):
        try:
            with self.fs.open(item, "rb") as f:
                image = Image.open(io.BytesIO(f.read()))
                image.load()
            image = fit_square(image.convert("RGB"), self.size)
        except Exception as e:  # any decoder error means this one file is unusable
            self.skipped += 1
            log.warning("skipping unreadable image %s: %s", item, e)
            return None
        return Sample(key=f"{split}_{index:08d}", image=np.asarray(image))


def open_source(spec: str, *, size: int = 64, seed: int = 0) -> Source:
    """``builtin:shapes``, ``builtin:digits``, or a folder of images (path or fsspec URL)."""
    if size < 8:
        raise ValueError(f"--size {size} is too small; use 8 or more (e.g. 32 or 64)")
    if spec == "builtin:shapes":
        return ShapesSource(size, seed)
    if spec == "builtin:digits":
        return DigitsSource(size, seed)
    if spec.startswith("builtin:"):
        raise ValueError(f"unknown builtin source {spec!r}; use builtin:shapes or builtin:digits")
    return FolderSource(spec, size, seed)
