"""Schedules as pure functions of the step: learning rates, Adam's beta2, the penalty weight.

Any value at any step follows from the config and the step alone, both of which every
checkpoint holds, so a resumed run (on any number of workers) continues the same schedule;
the optimizers' state dicts also carry the current values.
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


POLY_POWER = 0.9  # Hung et al.'s (and DeepLab's) poly schedule: (1 - step / max_steps)^0.9


def lr_factor(t: TrainerConfig, step: int, schedule: Optional[str] = None) -> float:
    """Multiplier of the base learning rate for the step about to be taken (0-based), under
    ``schedule`` (default trainer.lr_schedule)."""
    schedule = t.lr_schedule if schedule is None else schedule
    if schedule == "constant":
        return 1.0
    if schedule == "poly":  # from the first step, as Hung et al.'s adjust_learning_rate
        return (1.0 - min(step / max(t.max_steps, 1), 1.0)) ** POLY_POWER
    # linear (pix2pix) and cosine (R3GAN): constant until lr_decay_start of the run, then down to
    # lr_final at max_steps.
    start = int(t.lr_decay_start * t.max_steps)
    if step < start:
        return 1.0
    if schedule == "cosine":
        return cosine(1.0, t.lr_final, step - start, t.max_steps - start)
    progress = min((step - start) / max(t.max_steps - start, 1), 1.0)
    return 1.0 - (1.0 - t.lr_final) * progress


def beta2_at(t: TrainerConfig, step: int) -> float:
    """Adam's beta2 for ``step``: trainer.beta2, moving to trainer.beta2_final over the run if set."""
    return t.beta2 if t.beta2_final is None else cosine(t.beta2, t.beta2_final, step, t.max_steps)


def gamma_at(task: TaskConfig, max_steps: int, step: int) -> float:
    """The gradient penalties' weight for ``step``: task.gamma, decaying to task.gamma_final if set."""
    return task.gamma if task.gamma_final is None else cosine(task.gamma, task.gamma_final, step, max_steps)


def apply_lr(t: TrainerConfig, step: int, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer,
             scale: float = 1.0) -> tuple[float, float]:
    """Set both optimizers' rates (and beta2, when scheduled) for ``step``, times ``scale`` (what
    collapse rollbacks left); returns G's and D's factors. D follows trainer.d_lr_schedule when set, and
    keeps trainer.d_beta2 when set."""
    factor = lr_factor(t, step) * scale
    d_factor = factor if t.d_lr_schedule is None else lr_factor(t, step, str(t.d_lr_schedule)) * scale
    beta2 = beta2_at(t, step) if t.beta2_final is not None else None
    for opt, base, f, own_beta2 in ((opt_g, t.lr_g, factor, False), (opt_d, t.lr_d, d_factor, t.d_beta2 is not None)):
        for group in opt.param_groups:
            group["lr"] = base * f
            if beta2 is not None and not own_beta2:
                group["betas"] = (group["betas"][0], beta2)
    return factor, d_factor
