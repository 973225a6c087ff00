"""GAN losses, gradient penalties and supervised losses: pure functions of logits (and, for the
penalties, of D's inputs), each returning a scalar mean.

A separable loss keeps D's real and fake terms apart (they are logged apart); a relativistic
one scores real and fake logits in pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import torch
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


# Relativistic pairing (Jolicoeur-Martineau 2019; R3GAN's RpGAN): each real logit is paired with
# a fake one, and D is asked only that the real score higher; G, that the fake does. Not separable
# into real and fake terms, and G's loss needs D(real).
def rpgan_d(real: Tensor, fake: Tensor) -> Tensor:
    return F.softplus(-(real - fake)).mean()


def rpgan_g(fake: Tensor, real: Tensor) -> Tensor:
    return F.softplus(-(fake - real)).mean()


@dataclass(frozen=True)
class GANLoss:
    """A GAN loss: separable (``d_real``, ``d_fake``, ``g_fake``) or relativistic (``pair_d``,
    ``pair_g``, over paired real and fake logits)."""

    d_real: Optional[Callable[[Tensor], Tensor]] = None  # D's term on real logits
    d_fake: Optional[Callable[[Tensor], Tensor]] = None  # D's term on fake logits
    g_fake: Optional[Callable[[Tensor], Tensor]] = None  # G's adversarial loss on fake logits
    pair_d: Optional[Callable[[Tensor, Tensor], Tensor]] = None  # D's loss on (real, fake) pairs
    pair_g: Optional[Callable[[Tensor, Tensor], Tensor]] = None  # G's loss on (fake, real) pairs
    d_scale: float = 1.0  # D's loss times this (pix2pix: 0.5); its logged real and fake parts are not scaled

    @property
    def relativistic(self) -> bool:
        """G's loss needs D's logits on real samples too."""
        return self.pair_g is not None

    def d(self, real: Tensor, fake: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """D's loss, and its real and fake parts where the loss has them (to log)."""
        if self.pair_d is not None:
            return self.d_scale * self.pair_d(real, fake), {}
        loss_real, loss_fake = self.d_real(real), self.d_fake(fake)
        return (self.d_scale * (loss_real + loss_fake),
                {"loss/D_real": loss_real.detach(), "loss/D_fake": loss_fake.detach()})

    def g(self, fake: Tensor, real: Optional[Tensor] = None) -> Tensor:
        """G's adversarial loss; ``real`` (D's logits on the paired real samples) only when relativistic."""
        if self.pair_g is not None:
            if real is None:
                raise ValueError("a relativistic loss needs D's logits on real samples for G's loss")
            return self.pair_g(fake, real)
        return self.g_fake(fake)


GAN_LOSSES: dict[str, GANLoss] = {
    "nonsat": GANLoss(nonsat_d_real, nonsat_d_fake, nonsat_g),
    "hinge": GANLoss(hinge_d_real, hinge_d_fake, hinge_g),
    "lsgan": GANLoss(lsgan_d_real, lsgan_d_fake, lsgan_g),
    "rpgan": GANLoss(pair_d=rpgan_d, pair_g=rpgan_g),
}


def gan_loss(kind: str, d_scale: float = 1.0) -> GANLoss:
    """The loss for ``kind``: one of ``GAN_LOSSES``; D's loss times ``d_scale`` (the gradient
    penalties, added by the D phase, are not)."""
    try:
        loss = GAN_LOSSES[kind]
    except KeyError:
        raise ValueError(f"unknown GAN loss {kind!r}; valid choices: {', '.join(GAN_LOSSES)}") from None
    return loss if d_scale == 1.0 else replace(loss, d_scale=d_scale)


def _at_least_fp32(x: Tensor) -> Tensor:
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def gradient_penalty(logits: Tensor, inputs: Tensor, scale: Optional[Tensor] = None) -> Tensor:
    """Zero-centred gradient penalty (R1 on real inputs, R2 on fake ones; Mescheder et al. 2018):
    the mean over samples of |d sum(logits) / d input|^2. ``inputs`` must require grad and
    ``logits`` come from them; the graph is kept so the penalty trains D (double backward).

    ``scale``: the fp16 grad scaler's loss scale, applied before and removed after, so the
    input gradients do not underflow in half precision (PyTorch's AMP gradient-penalty recipe).
    """
    total = _at_least_fp32(logits).sum()
    if scale is not None:
        total = total * scale
    (grad,) = torch.autograd.grad(total, inputs, create_graph=True)
    grad = _at_least_fp32(grad)
    if scale is not None:
        grad = grad / scale
    return grad.square().flatten(1).sum(dim=1).mean()


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
