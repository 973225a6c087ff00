"""Exponential moving average of the generator, defined by a half-life in images.

A half-life in images (stylegan2-ada) keeps the average's time scale independent of the
batch size and the number of workers; the ramp-up keeps it short early in training: capped
by a fraction of the images seen (stylegan2-ada), or rising from 0 on a half cosine over the
schedules' horizon (R3GAN).
"""

from __future__ import annotations

import torch
from torch import nn

from gandist.config import TrainerConfig
from gandist.train.schedule import cosine, horizon


def ema_beta(batch_images: int, images_seen: int, halflife_kimg: float, rampup: float) -> float:
    """Decay per step for a global batch of ``batch_images`` after ``images_seen`` images."""
    halflife = halflife_kimg * 1000.0
    if rampup > 0:
        halflife = min(halflife, images_seen * rampup)
    if halflife <= 0:
        return 0.0
    return 0.5 ** (batch_images / halflife)


def cosine_ema_beta(batch_images: int, halflife_kimg: float, done: float, total: float) -> float:
    """R3GAN's decay per step: the half-life rises from 0 to ``halflife_kimg`` on a half cosine
    as the schedules' horizon goes from 0 to ``total`` (``done`` before this step), then holds;
    a half-life of 0 copies G."""
    halflife = cosine(0.0, halflife_kimg * 1000.0, done, total)
    return 0.5 ** (batch_images / halflife) if halflife > 0 else 0.0


def ema_beta_at(t: TrainerConfig, batch_images: int, step: int, images: int) -> float:
    """trainer.ema_*'s decay for step ``step`` (0-based), a global batch of ``batch_images``
    taken after ``images`` images."""
    if t.ema_ramp == "cosine":
        return cosine_ema_beta(batch_images, t.ema_kimg, *horizon(t, step, images))
    return ema_beta(batch_images, images + batch_images, t.ema_kimg, t.ema_rampup)


class EmaUpdater:
    """ema = beta * ema + (1 - beta) * model for parameters; buffers (BN statistics) are copied.

    The tensors are listed once: walking a U-Net's module tree costs more than the update.
    """

    def __init__(self, ema: nn.Module, model: nn.Module) -> None:
        self.ema_params, self.params = list(ema.parameters()), [p.detach() for p in model.parameters()]
        self.ema_buffers, self.buffers = list(ema.buffers()), list(model.buffers())

    @torch.no_grad()
    def __call__(self, beta: float) -> None:
        # One fused in-place pass over all parameters (no temporaries): ema += (1 - beta) * (p - ema).
        torch._foreach_lerp_(self.ema_params, self.params, 1.0 - beta)
        if self.buffers:
            torch._foreach_copy_(self.ema_buffers, self.buffers)  # one call, not one copy_ per buffer
