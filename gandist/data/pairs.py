"""Sources of paired files: pix2pix's A|B images (B a colour mask or an image) and A/ + B/
folders of translation pairs. They build on the folder source of ``gandist.data.sources``."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from PIL import Image

from gandist.data.sources import ClassList, FolderSource, Sample, SourceInfo, fit_square

DIRECTIONS = ("AtoB", "BtoA")
PAIRS = ("mask", "image")  # what B of a pair becomes: class ids (segment) or an image (translate)
TARGET_MODES = ("RGB", "L", "RGBA")  # B's channels when it stays an image


def check_pairs(pairs: str, direction: str, target_mode: str) -> None:
    if pairs not in PAIRS:
        raise ValueError(f"--pairs {pairs!r} is not one of {', '.join(PAIRS)}")
    if direction not in DIRECTIONS:
        raise ValueError(f"--direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    if target_mode not in TARGET_MODES:
        raise ValueError(f"--target-mode {target_mode!r} is not one of {', '.join(TARGET_MODES)}")


class Pix2PixSource(FolderSource):
    """pix2pix paired files: A and B side by side (A left). The input side stays an image; the
    other is, with ``pairs="mask"``, a colour-coded mask turned into class ids by the nearest
    --classes colour (segment), or with ``pairs="image"`` an image in ``target_mode`` (translate)."""

    def __init__(self, url: str, size: int, seed: int, classes: Optional[ClassList], direction: str,
                 strict: bool = False, pairs: str = "mask", target_mode: str = "RGB") -> None:
        check_pairs(pairs, direction, target_mode)
        if pairs == "mask" and (classes is None or classes.colours is None):
            raise ValueError("--layout pix2pix turns the mask half into class ids by colour: give --classes "
                             "a file with one line `name R G B` per class, class 0 first; or keep B as an "
                             "image with --pairs image (task=translate)")
        self.classes, self.direction, self.pairs, self.target_mode = classes, direction, pairs, target_mode
        super().__init__(url, size, seed, strict)
        self.info = (SourceInfo(url, None, False, ["translate"], target_mode=target_mode) if pairs == "image"
                     else SourceInfo(url, classes.names, True, ["generate", "segment"]))

    def make(self, key, item):
        pair = self.read(item).convert("RGB")
        w, h = pair.size
        if w < 2 or w % 2:
            raise ValueError(f"{item} is {w} px wide; a pix2pix pair must be two equal halves side by side")
        a, b = pair.crop((0, 0, w // 2, h)), pair.crop((w // 2, 0, w, h))
        image, target = (a, b) if self.direction == "AtoB" else (b, a)
        if self.pairs == "image":
            return pair_sample(key, image, target, self.size, self.target_mode)
        mask = self.classes.ids_from_colours(np.asarray(fit_square(target, self.size, Image.NEAREST)))
        return Sample(key=key, image=np.asarray(fit_square(image, self.size)), mask=mask)


def pair_sample(key: str, image: Image.Image, target: Image.Image, size: int, target_mode: str) -> Sample:
    """A translation pair, A as RGB and B in ``target_mode``, each resized by the stated rule."""
    return Sample(key=key, image=np.asarray(fit_square(image.convert("RGB"), size)),
                  target=np.asarray(fit_square(target.convert(target_mode), size)))


class PairFolderSource(FolderSource):
    """root/A/<name>.* with root/B/<name>.*: translation pairs matched by file stem (--direction
    BtoA reads B as the input). The two images of a pair may differ in size: each is resized."""

    def __init__(self, url: str, size: int, seed: int, direction: str, strict: bool = False,
                 target_mode: str = "RGB") -> None:
        check_pairs("image", direction, target_mode)
        self.direction, self.target_mode = direction, target_mode
        super().__init__(url, size, seed, strict)
        self.info = SourceInfo(url, None, False, ["translate"], target_mode=target_mode)

    def find_items(self) -> list[Any]:
        pairs = self.match_by_stem("A", "B", "A image(s) without a B image")
        if not pairs and not self.fs.isdir(f"{self.root}/A"):
            raise ValueError(f"--layout pairs reads {self.url}/A/<name> and {self.url}/B/<name>; {self.url} "
                             "has no A/ folder")
        return pairs

    def make(self, key, item):
        a, b = self.read(item[0]), self.read(item[1])
        image, target = (a, b) if self.direction == "AtoB" else (b, a)
        return pair_sample(key, image, target, self.size, self.target_mode)
