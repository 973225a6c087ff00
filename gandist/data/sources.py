"""Readers of user data. Every source yields the same ``Sample`` for the shard writer.
``gandist.data.layouts`` picks the source for a SOURCE and --layout; the paired-file sources
(``gandist.data.pairs``) build on the folder source here.

A source first plans which items go to which split (a cheap list: indices or file paths),
then loads items one at a time, so nothing holds the whole dataset in memory.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import fsspec
import numpy as np
from PIL import Image

from gandist.data.shapes import CLASSES as SHAPE_CLASSES
from gandist.data.shapes import LABEL_COLOURS, dominant_shape, render_shapes
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
    target: Optional[np.ndarray] = None  # uint8 [H, W] or [H, W, C]: image B of a translation pair


@dataclass
class SourceInfo:
    name: str
    classes: Optional[list[str]]
    has_masks: bool
    tasks: list[str]  # what a shard set of this source can train: "generate", "segment", "translate"
    labels: Optional[list[str]] = None  # names of the whole-image classes its samples carry, if any
    target_mode: Optional[str] = None  # translation pairs: B's PIL mode (RGB, L, RGBA); None: no B images


def default_heldout(total: int) -> int:
    return max(1, min(HELDOUT_MAX, round(total * HELDOUT_FRACTION)))


def fit_square(image: Image.Image, size: int, resample: int = Image.BICUBIC) -> Image.Image:
    """The stated resize rule: scale the short side to ``size``, then centre-crop to size x size."""
    w, h = image.size
    scale = size / min(w, h)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((nw, nh), resample)
    left, top = (nw - size) // 2, (nh - size) // 2
    return image.crop((left, top, left + size, top + size))


class Source:
    info: SourceInfo

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.skipped = 0  # unreadable inputs, reported by the writer
        self._lock = threading.Lock()  # shards are written from several threads

    def plan(self, samples: Optional[int], heldout: Optional[int]) -> dict[str, list[Any]]:
        """Items per split ("train", "heldout"), disjoint."""
        raise NotImplementedError

    def load(self, split: str, index: int, item: Any) -> Optional[Sample]:
        """The sample for one planned item, or None when the input cannot be read (counted)."""
        raise NotImplementedError

    def samples(self, split: str, items: list[Any], first_index: int = 0) -> Iterator[Sample]:
        """Samples for ``items``, the first being item number ``first_index`` of the split."""
        for i, item in enumerate(items, first_index):
            sample = self.load(split, i, item)
            if sample is not None:
                yield sample


class ShapesSource(Source):
    """builtin:shapes. With ``pairs="image"``, translation pairs: A is the mask drawn as a
    coloured label map (``LABEL_COLOURS``), B the photo (``direction="BtoA"``: the other way);
    the mask and label are kept, for scores such as segmenting the translated images."""

    def __init__(self, size: int, seed: int, pairs: Optional[str] = None, direction: str = "AtoB") -> None:
        super().__init__(size, seed)
        if pairs not in (None, "image"):
            raise ValueError(f"--pairs {pairs} does not apply to builtin:shapes, which has masks already; "
                             "use --pairs image for label-map/photo pairs, or leave --pairs out")
        self.pairs, self.direction = pairs, direction
        classes, labels = list(SHAPE_CLASSES), list(SHAPE_CLASSES[1:])
        self.info = (SourceInfo("builtin:shapes", classes, True, ["translate"], labels=labels, target_mode="RGB")
                     if pairs else SourceInfo("builtin:shapes", classes, True, ["generate", "segment"], labels=labels))

    def plan(self, samples, heldout):
        n = SHAPES_DEFAULT_SAMPLES if samples is None else samples
        h = default_heldout(n) if heldout is None else heldout
        return {"train": list(range(n)), "heldout": list(range(h))}

    def load(self, split, index, item):
        # Held-out samples come from their own seed, so they never repeat a training sample.
        seed = self.seed if split == "train" else derive_seed(self.seed, "heldout")
        image, mask = render_shapes(item, seed, self.size)
        sample = Sample(key=f"{split}_{index:08d}", image=image, mask=mask, label=dominant_shape(mask))
        if self.pairs:
            label_map = LABEL_COLOURS[mask]
            sample.image, sample.target = (label_map, image) if self.direction == "AtoB" else (image, label_map)
        return sample


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
                      ["generate", "segment"], labels=[str(d) for d in range(10)])

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


class SourceError(ValueError):
    """An input file cannot be used and --strict was given (or the source itself is wrong)."""


class FolderSource(Source):
    """A folder of images at any depth (local path or fsspec URL), for generation.

    Subclasses change what an item is and what a sample carries besides the image.
    """

    def __init__(self, url: str, size: int, seed: int, strict: bool = False) -> None:
        super().__init__(size, seed)
        self.url, self.strict = url, strict
        self.fs, self.root = fsspec.core.url_to_fs(url)
        if not self.fs.isdir(self.root):
            raise ValueError(f"source {url!r} is not a folder, builtin:shapes or builtin:digits")
        self.items = self.find_items()
        if not self.items:
            raise ValueError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) under {url}")
        self.info = SourceInfo(url, None, False, ["generate"])

    def images_under(self, root: str) -> list[str]:
        return sorted(p for p in self.fs.find(root) if p.lower().endswith(IMAGE_EXTENSIONS))

    def find_items(self) -> list[Any]:
        return self.images_under(self.root)

    def match_by_stem(self, inputs: str, partners: str, unmatched_are: str) -> list[tuple[str, str]]:
        """(file under root/``inputs``, the file of the same stem under root/``partners``) pairs;
        inputs without a partner are left out, counted in one warning."""
        found = {file_stem(p): p for p in self.images_under(f"{self.root}/{partners}")}
        pairs, unmatched = [], []
        for path in self.images_under(f"{self.root}/{inputs}"):
            if file_stem(path) in found:
                pairs.append((path, found[file_stem(path)]))
            else:
                unmatched.append(path)
        if unmatched:
            log.warning("%d %s of the same name are left out, e.g. %s", len(unmatched), unmatched_are, unmatched[0])
        return pairs

    def plan(self, samples, heldout):
        return _split_finite(self, self.items, samples, heldout)

    def read(self, path: str) -> Image.Image:
        with self.fs.open(path, "rb") as f:
            image = Image.open(io.BytesIO(f.read()))
            image.load()
        return image

    def make(self, key: str, item: Any) -> Sample:
        return Sample(key=key, image=np.asarray(fit_square(self.read(item).convert("RGB"), self.size)))

    def load(self, split, index, item):
        try:
            return self.make(f"{split}_{index:08d}", item)
        except Exception as e:  # any decoder or content error makes this one input unusable
            if self.strict:
                raise SourceError(f"cannot use {item}: {e} (without --strict it would be skipped)") from e
            with self._lock:
                self.skipped += 1
            log.warning("skipping %s: %s", item, e)
            return None


class ClassFolderSource(FolderSource):
    """root/<class>/**/image: the class is the first folder under the root, kept as the label."""

    def __init__(self, url: str, size: int, seed: int, strict: bool = False) -> None:
        super().__init__(url, size, seed, strict)
        self.classes = sorted({label for _, label in self.items})
        self.items = [(path, self.classes.index(label)) for path, label in self.items]
        self.info = SourceInfo(url, self.classes, False, ["generate"], labels=self.classes)

    def find_items(self) -> list[Any]:
        items = []
        for path in self.images_under(self.root):
            parts = path[len(self.root.rstrip("/")) + 1:].split("/")
            if len(parts) < 2:
                raise ValueError(f"{path} is not inside a class folder; --layout classes expects "
                                 f"{self.url}/<class>/<image>")
            items.append((path, parts[0]))
        return items

    def make(self, key, item):
        sample = super().make(key, item[0])
        sample.label = item[1]
        return sample


class MaskFolderSource(FolderSource):
    """root/images/<name>.* with root/masks/<name>.png: class-id masks matched by file stem.

    Masks are greyscale or palette PNGs whose pixel values are class ids; the image and its
    mask are resized and cropped by the same rule (the mask with nearest neighbour).
    """

    def __init__(self, url: str, size: int, seed: int, classes: Optional[ClassList],
                 strict: bool = False) -> None:
        if not classes or not classes.names:
            raise ValueError(f"{url} has images/ and masks/: name the classes with --classes "
                             "(comma-separated names, or a file with one name per line, class 0 first)")
        self.classes = classes
        super().__init__(url, size, seed, strict)
        self.info = SourceInfo(url, classes.names, True, ["generate", "segment"])

    def find_items(self) -> list[Any]:
        return self.match_by_stem("images", "masks", "image(s) without a mask")

    def make(self, key, item):
        image = self.read(item[0]).convert("RGB")
        mask = self.read(item[1])
        if mask.size != image.size:
            raise ValueError(f"mask {item[1]} is {mask.size}, its image {item[0]} is {image.size}")
        if mask.mode in ("L", "P"):
            ids = np.asarray(fit_square(mask, self.size, Image.NEAREST))
        elif mask.mode in ("RGB", "RGBA") and self.classes.colours is not None:
            ids = self.classes.ids_from_colours(np.asarray(fit_square(mask.convert("RGB"), self.size, Image.NEAREST)))
        else:
            raise ValueError(f"mask {item[1]} is mode {mask.mode}; masks must be greyscale or palette PNGs "
                             "of class ids, or colour masks with a colour per class in --classes")
        if ids.max() >= len(self.classes.names):
            raise ValueError(f"mask {item[1]} holds class id {ids.max()}, but --classes names only "
                             f"{len(self.classes.names)} classes")
        return Sample(key=key, image=np.asarray(fit_square(image, self.size)), mask=ids.astype(np.uint8))


def file_stem(path: str) -> str:
    return path.rsplit("/", 1)[-1].rsplit(".", 1)[0]


@dataclass
class ClassList:
    """Class names, class 0 first, and optionally the RGB colour that marks each in colour masks."""

    names: list[str]
    colours: Optional[np.ndarray] = None  # [C, 3] int

    def ids_from_colours(self, rgb: np.ndarray) -> np.ndarray:
        """Class id of every pixel by its nearest class colour (robust to JPEG noise)."""
        assert self.colours is not None
        distance = ((rgb[:, :, None, :].astype(np.int32) - self.colours[None, None]) ** 2).sum(axis=-1)
        return distance.argmin(axis=-1).astype(np.uint8)


def parse_classes(value: Optional[str]) -> Optional[ClassList]:
    """--classes: comma-separated names, or a file with one class per line: `name` or `name R G B`."""
    if not value:
        return None
    lines = [name.strip() for name in value.split(",")]
    if "," not in value:
        fs, path = fsspec.core.url_to_fs(value)
        if fs.isfile(path):
            with fs.open(path, "r") as f:
                lines = [line.strip() for line in f]
    lines = [line for line in lines if line and not line.startswith("#")]
    names, colours = [], []
    for line in lines:
        parts = line.split()
        if len(parts) == 4 and all(p.isdigit() for p in parts[1:]):
            names.append(parts[0])
            colours.append([int(p) for p in parts[1:]])
        else:
            names.append(line)
    if colours and len(colours) != len(names):
        raise ValueError("--classes gives a colour (name R G B) for some classes but not all; give all or none")
    return ClassList(names, np.array(colours) if colours else None)
