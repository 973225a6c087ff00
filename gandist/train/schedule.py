"""Schedules as pure functions of the step: learning rates, Adam's beta2, the penalty weight.

They decay over the run (trainer.max_steps) or, with trainer.schedule_kimg, over a fixed
number of images and then hold (R3GAN: 20M images for CIFAR-10, counted as its cur_nimg).
Any value at any step follows from the config, the step and the images seen before it, all
of which every checkpoint holds, so a resumed run (on any number of workers) continues the
same schedule; the optimizers' state dicts also carry the current values.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

from gandist.config import TaskConfig, TrainerConfig


def cosine(start: float, end: float, step: int, total: int) -> float:
    """From ``start`` at step 0 to ``end`` at ``total`` on a half cosine (R3GAN's schedules)."""
    progress = min(max(step / max(total, 1), 0.0), 1.0)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))


POLY_POWER = 0.9  # Hung et al.'s (and DeepLab's) poly schedule: (1 - progress)^0.9


def horizon(t: TrainerConfig, step: int, images: int) -> tuple[float, float]:
    """Where the decaying schedules stand before ``step`` (0-based) with ``images`` seen:
    (done, total) in steps of trainer.max_steps, or in images of trainer.schedule_kimg."""
    if t.schedule_kimg is None:
        return float(step), float(t.max_steps)
    return float(images), t.schedule_kimg * 1000.0


def lr_factor(t: TrainerConfig, step: int, images: int = 0, schedule: Optional[str] = None) -> float:
    """Multiplier of the base learning rate for the step about to be taken (0-based), after
    ``images`` images (used with trainer.schedule_kimg), under ``schedule`` (default
    trainer.lr_schedule).

    linear is pix2pix's lambda_rule up to one epoch: junyanz's code (its scheduler stepped at each
    epoch's start) trains epoch E (1-based) of n + d at 1 - max(0, E + 1 - n) / (d + 1), so its
    decay starts in epoch n and its last epoch trains at 0. This line, from 1 at n / (n + d) of
    the run to lr_final at its end, gives each epoch a mean within 1 / (2d) of that rule one epoch
    later, 1 - max(0, E - n) / (d + 1), and within 1.5 / d of the rule itself (at 100 + 100
    epochs: 0.5% and 1.5% of the base rate).
    """
    schedule = t.lr_schedule if schedule is None else schedule
    if schedule == "constant":
        return 1.0
    done, total = horizon(t, step, images)
    if schedule == "poly":  # from the first step, as Hung et al.'s adjust_learning_rate
        return (1.0 - min(done / max(total, 1), 1.0)) ** POLY_POWER
    # linear (pix2pix) and cosine (R3GAN): constant until lr_decay_start of the horizon, then down
    # to lr_final at its end, held after.
    start = int(t.lr_decay_start * total)
    if done < start:
        return 1.0
    if schedule == "cosine":
        return cosine(1.0, t.lr_final, done - start, total - start)
    progress = min((done - start) / max(total - start, 1), 1.0)
    return 1.0 - (1.0 - t.lr_final) * progress


def beta2_at(t: TrainerConfig, step: int, images: int = 0) -> float:
    """Adam's beta2 for ``step``: trainer.beta2, moving to trainer.beta2_final over the horizon if set."""
    return t.beta2 if t.beta2_final is None else cosine(t.beta2, t.beta2_final, *horizon(t, step, images))


def gamma_at(task: TaskConfig, t: TrainerConfig, step: int, images: int = 0) -> float:
    """The gradient penalties' weight for ``step``: task.gamma, decaying to task.gamma_final if set."""
    return task.gamma if task.gamma_final is None else cosine(task.gamma, task.gamma_final, *horizon(t, step, images))


def apply_lr(t: TrainerConfig, step: int, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
             scale: float = 1.0, images: int = 0) -> tuple[float, float]:
    """Set both optimizers' rates (and beta2, when scheduled) for ``step`` after ``images``
    images, times ``scale`` (what collapse rollbacks left); returns G's and D's factors. D follows
    trainer.d_lr_schedule when set, and keeps trainer.d_beta2 when set."""
    factor = lr_factor(t, step, images) * scale
    d_factor = factor if t.d_lr_schedule is None else lr_factor(t, step, images, str(t.d_lr_schedule)) * scale
    beta2 = beta2_at(t, step, images) if t.beta2_final is not None else None
    for opt, base, f, own_beta2 in ((opt_g, t.lr_g, factor, False), (opt_d, t.lr_d, d_factor, t.d_beta2 is not None)):
        for group in opt.param_groups:
            group["lr"] = base * f
            if beta2 is not None and not own_beta2:
                group["betas"] = (group["betas"][0], beta2)
    return factor, d_factor
