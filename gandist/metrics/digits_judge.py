"""A judge of builtin:digits images: a small convolutional classifier of scikit-learn's
handwritten digits, drawn exactly as `gandist shard builtin:digits` draws them (8x8 upsampled
bilinearly, grey), so a generated image can be read as a digit the way a person reads it.

Like the classifier of Stacked-MNIST studies of GANs, it gives modes: the digit it reads, 1 to
10 (digit + 1), or 0 when it reads none with confidence (its top probability under
CONFIDENT): a blob or a stripe is no digit. Its penultimate features give the precision,
recall and Fréchet distance of ``eval.features=digits`` on features that know what a digit
is, unlike random-conv features.

Trained once per machine (seconds on 2 CPU cores) from its own seed on a seeded 5/6 of the
1,797 digits (shifted by up to 2 pixels, as a generator may place them), tested on the rest,
then cached under ``$GANDIST_CACHE_DIR/judges``.
"""

from __future__ import annotations

import math
import time
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from gandist.metrics import judges
from gandist.seeding import derive_seed

JUDGE_SEED = 20261207
JUDGE_VERSION = 1  # bump when the network, its data or its training change
SIDE = 32  # the judge's input side: images of any size are resized to it
DIGITS = 10
CONFIDENT = 0.9  # top probability under this: no digit read (mode 0)
TEST_FRACTION, STEPS, BATCH, LR, SHIFT = 1 / 6, 1500, 64, 2e-3, 2


def render_digits(side: int = SIDE) -> tuple[Tensor, Tensor]:
    """(images [1797, 3, side, side] in [-1, 1], digits [1797]) as the builtin:digits source draws them."""
    from sklearn.datasets import load_digits

    digits = load_digits()  # ships with scikit-learn: nothing downloads
    grey = (digits.images / 16.0 * 255).astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(g).resize((side, side), Image.BILINEAR)) for g in grey])
    x = torch.from_numpy(big).float().div(127.5).sub(1).unsqueeze(1).expand(-1, 3, -1, -1).contiguous()
    return x, torch.from_numpy(digits.target).long()


class DigitsJudge(nn.Module):
    """Images in [-1, 1] (any size, colour read as its mean) -> features [N, dim] (the extractor
    API); ``describe`` adds the modes."""

    name = "digits"
    dim = 64
    num_modes = 1 + DIGITS

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (SIDE // 8) ** 2, self.dim), nn.ReLU())
        self.classifier = nn.Linear(self.dim, DIGITS)

    def _grey(self, images: Tensor) -> Tensor:
        x = images.float().mean(dim=1, keepdim=True)
        if x.shape[-1] != SIDE or x.shape[-2] != SIDE:
            x = F.interpolate(x, size=(SIDE, SIDE), mode="bilinear", align_corners=False, antialias=True)
        return x

    def logits(self, images: Tensor) -> Tensor:
        return self.classifier(self.body(self._grey(images)))

    def describe(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(features [N, dim], modes [N]: 1 + the digit read, 0 for none) of images in [-1, 1]."""
        with torch.autocast(device_type=images.device.type, enabled=False):
            features = self.body(self._grey(images))
            top, digit = torch.softmax(self.classifier(features), dim=1).max(dim=1)
        return features, torch.where(top >= CONFIDENT, digit + 1, 0)

    def forward(self, images: Tensor) -> Tensor:
        return self.body(self._grey(images))


def shifted(x: Tensor, generator: torch.Generator, shift: int = SHIFT) -> Tensor:
    """Each image moved by its own whole-pixel offset in [-shift, shift] on both axes (zero-padded
    with the background, -1)."""
    padded = F.pad(x, (shift,) * 4, value=-1.0)
    offsets = torch.randint(0, 2 * shift + 1, (x.shape[0], 2), generator=generator)
    side = x.shape[-1]
    return torch.stack([p[:, dy:dy + side, dx:dx + side] for p, (dy, dx) in zip(padded, offsets.tolist())])


def train_judge(steps: int = STEPS, seed: int = JUDGE_SEED) -> tuple[DigitsJudge, dict[str, float]]:
    """A judge trained from ``seed`` by cross-entropy on 5/6 of the digits (learning rate on a
    cosine to 0), and its accuracy on the other 1/6: digits read right, and digits read at all
    (confidently). Leaves the global RNG as it found it."""
    began = time.perf_counter()
    x, y = render_digits()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(derive_seed(seed, "split")))
    n_test = round(len(y) * TEST_FRACTION)
    test, train = order[:n_test], order[n_test:]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(derive_seed(seed, "batches"))
        judge = DigitsJudge()
        opt = torch.optim.Adam(judge.parameters(), lr=LR)
        for step in range(steps):
            for group in opt.param_groups:
                group["lr"] = LR * 0.5 * (1 + math.cos(math.pi * step / steps))
            i = train[torch.randint(0, len(train), (BATCH,), generator=gen)]
            loss = F.cross_entropy(judge.logits(shifted(x[i], gen)), y[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    judge.requires_grad_(False).eval()
    accuracy = judge_accuracy(judge, x[test], y[test])
    accuracy["train_s"] = time.perf_counter() - began
    return judge, accuracy


@torch.no_grad()
def judge_accuracy(judge: DigitsJudge, x: Tensor, digits: Tensor) -> dict[str, float]:
    """Share of ``x`` read as the right digit, and share read as any digit at all."""
    _, modes = judge.describe(x)
    return {"digit": float((modes == digits + 1).float().mean()), "read": float((modes > 0).float().mean())}


def load_judge(device: torch.device, directory: Optional[str] = None) -> DigitsJudge:
    """The judge from this machine's cache, trained and cached first if it is not there."""
    return judges.load_or_train(DigitsJudge(), judge_path(directory), train_judge, "builtin:digits", device)


def judge_path(directory: Optional[str] = None) -> str:
    return judges.judge_path("digits", JUDGE_VERSION, directory)
