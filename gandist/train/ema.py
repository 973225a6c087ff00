"""Exponential moving average of the generator, defined by a half-life in images.

A half-life in images (stylegan2-ada) keeps the average's time scale independent of the
batch size and the number of workers; the ramp-up keeps it short early in training.
"""

from __future__ import annotations

import torch
from torch import nn


def ema_beta(batch_images: int, images_seen: int, halflife_kimg: float, rampup: float) -> float:
    """Decay per step for a global batch of ``batch_images`` after ``images_seen`` images."""
    halflife = halflife_kimg * 1000.0
    if rampup > 0:
        halflife = min(halflife, images_seen * rampup)
    if halflife <= 0:
        return 0.0
    return 0.5 ** (batch_images / halflife)


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, beta: float) -> None:
    """ema = beta * ema + (1 - beta) * model for parameters; buffers (BN statistics) are copied."""
    # One fused in-place pass over all parameters (no temporaries): ema += (1 - beta) * (p - ema).
    torch._foreach_lerp_(list(ema.parameters()), [p.detach() for p in model.parameters()], 1.0 - beta)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)
