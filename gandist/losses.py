"""GAN and reconstruction losses: pure functions of logits, each returning a scalar mean.

D's loss stays split into its real and fake terms: the training loop backpropagates them
separately.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F
from torch import Tensor


# Non-saturating (Goodfellow et al. 2014): BCE with logits; G maximises log D(fake) rather
# than minimising log(1 - D(fake)), which keeps its gradient alive while D wins.
def nonsat_d_real(real: Tensor) -> Tensor:
    return F.softplus(-real).mean()  # -log(sigmoid(r))


def nonsat_d_fake(fake: Tensor) -> Tensor:
    return F.softplus(fake).mean()  # -log(1 - sigmoid(f))


def nonsat_g(fake: Tensor) -> Tensor:
    return F.softplus(-fake).mean()  # -log(sigmoid(f))


# Hinge (Lim & Ye 2017; SAGAN, BigGAN): D stops pushing logits once they clear the margin.
def hinge_d_real(real: Tensor) -> Tensor:
    return F.relu(1 - real).mean()


def hinge_d_fake(fake: Tensor) -> Tensor:
    return F.relu(1 + fake).mean()


def hinge_g(fake: Tensor) -> Tensor:
    return -fake.mean()


# Least squares (Mao et al. 2017), targets 1 for real and 0 for fake.
def lsgan_d_real(real: Tensor) -> Tensor:
    return 0.5 * ((real - 1) ** 2).mean()


def lsgan_d_fake(fake: Tensor) -> Tensor:
    return 0.5 * (fake**2).mean()


def lsgan_g(fake: Tensor) -> Tensor:
    return 0.5 * ((fake - 1) ** 2).mean()


@dataclass(frozen=True)
class GANLoss:
    d_real: Callable[[Tensor], Tensor]  # D loss term on real logits
    d_fake: Callable[[Tensor], Tensor]  # D loss term on fake logits
    g: Callable[[Tensor], Tensor]  # G adversarial loss on fake logits


GAN_LOSSES: dict[str, GANLoss] = {
    "nonsat": GANLoss(nonsat_d_real, nonsat_d_fake, nonsat_g),
    "hinge": GANLoss(hinge_d_real, hinge_d_fake, hinge_g),
    "lsgan": GANLoss(lsgan_d_real, lsgan_d_fake, lsgan_g),
}


def gan_loss(kind: str) -> GANLoss:
    """The loss triple for ``kind``: one of ``GAN_LOSSES``."""
    try:
        return GAN_LOSSES[kind]
    except KeyError:
        raise ValueError(f"unknown GAN loss {kind!r}; valid choices: {', '.join(GAN_LOSSES)}") from None


def l1(pred: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error (pix2pix's reconstruction term); shapes must match, not broadcast."""
    if pred.shape != target.shape:
        raise ValueError(f"l1: pred shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    return F.l1_loss(pred, target)


def cross_entropy(logits: Tensor, mask: Tensor) -> Tensor:
    """Per-pixel cross-entropy of class logits [N, C, H, W] against integer masks [N, H, W]."""
    return F.cross_entropy(logits.float(), mask)


def dice(probs: Tensor, onehot: Tensor, eps: float = 1.0) -> Tensor:
    """Soft Dice loss, 1 - mean over the classes present in the batch of 2|P∩T| / (|P| + |T|).

    Classes absent from the batch's masks are left out of the mean: their Dice would only
    reward predicting nothing of them. ``eps`` keeps the ratio finite and smooth.
    """
    if probs.shape != onehot.shape:
        raise ValueError(f"dice: probs shape {tuple(probs.shape)} != target shape {tuple(onehot.shape)}")
    dims = (0, 2, 3)
    inter = (probs * onehot).sum(dims)
    sizes = probs.sum(dims) + onehot.sum(dims)
    present = onehot.sum(dims) > 0
    score = (2 * inter + eps) / (sizes + eps)
    return 1 - score[present].mean() if present.any() else probs.sum() * 0
