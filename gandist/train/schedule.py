"""Learning-rate schedules as pure functions of the step.

The learning rate at any step follows from the config and the step alone, both of which
every checkpoint holds, so a resumed run (on any number of workers) continues the same
schedule; the optimizers' state dicts also carry the current rate.
"""

from __future__ import annotations

import torch

from gandist.config import TrainerConfig


def lr_factor(t: TrainerConfig, step: int) -> float:
    """Multiplier of the base learning rate for the step about to be taken (0-based)."""
    if t.lr_schedule == "constant":
        return 1.0
    # linear (pix2pix): constant until lr_decay_start of the run, then linearly to 0 at max_steps.
    start = int(t.lr_decay_start * t.max_steps)
    if step < start:
        return 1.0
    return max(0.0, (t.max_steps - step) / max(t.max_steps - start, 1))


def apply_lr(t: TrainerConfig, step: int, opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer) -> float:
    """Set both optimizers' rates for ``step``; returns the factor applied."""
    factor = lr_factor(t, step)
    for opt, base in ((opt_g, t.lr_g), (opt_d, t.lr_d)):
        for group in opt.param_groups:
            group["lr"] = base * factor
    return factor
