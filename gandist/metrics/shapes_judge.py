"""A judge of builtin:shapes images: a small U-Net trained, reproducibly and offline, to
segment the procedural shapes themselves (their generator is known), whose predicted mask
tells which shape classes an image shows and how many shapes are visible. (An image
classifier trained on those answers alone, at the same cost, stayed near chance: per-pixel
masks teach far more per image.)

Like Stacked-MNIST's classifier for GANs, it gives modes: a mode is (the set of classes
present, 1 of 7) x (the number of visible shapes, 1 to 4 or more), 28 in all, and one more
for an image with no shape (``mask_labels`` says how a mask is read). Mode coverage
counts how many modes the generated images reach, and the KL divergence of the real images'
mode histogram from the generated ones' says how evenly. Its features, trained on this data, also give a Fréchet distance that knows what these images are made of
(``eval.features=shapes``), unlike random-conv features.

The judge is trained once per machine (about 2 minutes on 2 CPU cores) from its own seed,
then cached under ``$GANDIST_CACHE_DIR/judges``; the same torch on the same kind of CPU trains
the same weights.
"""

from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import Tensor, nn

from gandist.data.shapes import CLASSES, render_shapes
from gandist.metrics import judges
from gandist.models.unet import LEVELS, UNet
from gandist.seeding import derive_seed

JUDGE_SEED = 20261202
JUDGE_VERSION = 1  # bump when the network, its data or its training change
SIDE = 32  # the judge's input side: images of any size are resized to it
SHAPE_CLASSES = len(CLASSES) - 1
MAX_COUNT = 4  # 4 or more visible shapes are one count
NUM_MODES = 1 + (2 ** SHAPE_CLASSES - 1) * MAX_COUNT
TRAIN_IMAGES, TEST_IMAGES, STEPS, BATCH, LR = 8192, 1024, 2400, 32, 3e-3


MIN_PIXELS = 6  # a blob smaller than this (at 32 px) is a sliver or a speck: not a shape


def mask_labels(mask: np.ndarray, min_pixels: int = MIN_PIXELS) -> tuple[np.ndarray, int]:
    """(which shape classes are visible [3] of 0/1, how many shapes) of a class-id mask: each
    connected blob of foreground of at least ``min_pixels`` is one shape, of its pixels'
    majority class; the count is capped at MAX_COUNT.

    Blobs rather than each class's parts: a segmenter's mistakes are mostly a few pixels of
    the wrong class inside a shape, which would count as a second shape of another class
    (held-out mode accuracy 0.62 that way, 0.82 by blobs). Shapes that overlap are one blob,
    for the real images and the generated ones alike."""
    blobs, n = ndimage.label(mask > 0)
    present = np.zeros(SHAPE_CLASSES, np.float32)
    count = 0
    for blob in range(1, n + 1):
        pixels = mask[blobs == blob]
        if pixels.size >= min_pixels:
            present[np.bincount(pixels, minlength=len(CLASSES))[1:].argmax()] = 1
            count += 1
    return present, int(min(max(count, 1), MAX_COUNT))


def mode_ids(present: Tensor, count: Tensor) -> Tensor:
    """Mode index in [0, NUM_MODES) of presence bits [N, 3] (0/1) and counts [N] (1..MAX_COUNT):
    0 is no visible shape at all (never a real image; a generator's failure), then one mode per
    (non-empty set of classes, count)."""
    bits = (present.long() * (2 ** torch.arange(SHAPE_CLASSES, device=present.device))).sum(dim=1)
    return torch.where(bits == 0, 0, 1 + (bits - 1) * MAX_COUNT + (count.long() - 1))


class ShapesJudge(nn.Module):
    """A small U-Net segmenter of the shapes (width 8), whose predicted mask says which
    classes an image shows and how many shapes (``mask_labels``): images in [-1, 1] ->
    features (the extractor API): the bottleneck's mean, the last decoder features' mean and
    max, and each class's share of the pixels."""

    name = "shapes"
    num_modes = NUM_MODES
    width = 8
    dim = width * 2 ** LEVELS + 2 * width + len(CLASSES)

    def __init__(self) -> None:
        super().__init__()
        self.unet = UNet(3, len(CLASSES), SIDE, self.width)

    def _resize(self, images: Tensor) -> Tensor:
        x = images.float()
        if x.shape[-1] != SIDE or x.shape[-2] != SIDE:
            x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)
        return x

    def describe(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(features [N, dim], mode ids [N]) of images in [-1, 1]."""
        with torch.autocast(device_type=images.device.type, enabled=False):
            bottleneck, last, logits = self.unet.trace(self._resize(images))
            masks = logits.argmax(dim=1)
            shares = F.one_hot(masks, len(CLASSES)).float().mean(dim=(1, 2))
            features = torch.cat([bottleneck.mean(dim=(2, 3)), last.mean(dim=(2, 3)), last.amax(dim=(2, 3)), shares], 1)
        labels = [mask_labels(m) for m in masks.cpu().numpy().astype(np.uint8)]
        present = torch.from_numpy(np.stack([p for p, _ in labels]))
        counts = torch.tensor([c for _, c in labels])
        return features, mode_ids(present, counts)

    def forward(self, images: Tensor) -> Tensor:
        return self.describe(images)[0]


def render_set(count: int, seed: int) -> tuple[Tensor, Tensor]:
    """(images [N, 3, SIDE, SIDE] in [-1, 1], masks [N, SIDE, SIDE]) of fresh shapes."""
    pairs = [render_shapes(i, seed, SIDE) for i in range(count)]
    x = torch.from_numpy(np.stack([image for image, _ in pairs])).permute(0, 3, 1, 2).float() / 127.5 - 1
    return x, torch.from_numpy(np.stack([mask for _, mask in pairs])).long()


def train_judge(train_images: int = TRAIN_IMAGES, test_images: int = TEST_IMAGES, steps: int = STEPS,
                seed: int = JUDGE_SEED) -> tuple[ShapesJudge, dict[str, float]]:
    """A judge trained from ``seed`` on fresh shapes (never a shard set's: its own seeds) by
    cross-entropy on their masks, the learning rate on a cosine to 0; and its accuracy on
    other fresh shapes: pixels, presence (all three classes right), count, and the mode.
    Leaves the global RNG as it found it."""
    began = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        x, masks = render_set(train_images, derive_seed(seed, "train"))
        judge = ShapesJudge()
        opt = torch.optim.Adam(judge.parameters(), lr=LR)
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = LR * 0.5 * (1 + math.cos(math.pi * step / steps))
            i = torch.randint(0, train_images, (BATCH,))
            loss = F.cross_entropy(judge.unet(x[i]), masks[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    judge.requires_grad_(False).eval()
    accuracy = judge_accuracy(judge, *render_set(test_images, derive_seed(seed, "test")))
    accuracy["train_s"] = time.perf_counter() - began
    return judge, accuracy


@torch.no_grad()
def judge_accuracy(judge: ShapesJudge, x: Tensor, masks: Tensor) -> dict[str, float]:
    predicted = torch.cat([judge.unet(chunk).argmax(dim=1) for chunk in x.split(256)])
    right_presence = right_count = right_mode = 0
    for said, true in zip(predicted.numpy().astype(np.uint8), masks.numpy().astype(np.uint8)):
        (p_said, c_said), (p_true, c_true) = mask_labels(said), mask_labels(true)
        presence, count = bool((p_said == p_true).all()), c_said == c_true
        right_presence, right_count, right_mode = right_presence + presence, right_count + count, \
            right_mode + (presence and count)
    n = len(x)
    return {"pixels": float((predicted == masks).float().mean()), "presence": right_presence / n,
            "count": right_count / n, "mode": right_mode / n}


def load_judge(device: torch.device, directory: Optional[str] = None) -> ShapesJudge:
    """The judge from this machine's cache, trained and cached first (about 2 minutes on 2 CPU
    cores) if it is not there."""
    return judges.load_or_train(ShapesJudge(), judge_path(directory), train_judge, "builtin:shapes", device)


def judge_path(directory: Optional[str] = None) -> str:
    return judges.judge_path("shapes", JUDGE_VERSION, directory)
