"""Non-finite losses and gradients: skipped steps are counted, too many in a row stop the run.

``phases.run_step`` detects them and has every rank skip the step together; this module
decides when skipping is no longer enough and says so precisely.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

import torch

from gandist.train.phases import StepResult

log = logging.getLogger(__name__)


MIN_LOSS_SCALE = 2.0 ** -10  # below this, fp16 training has effectively stalled


class DivergenceError(RuntimeError):
    """Training produced non-finite values for trainer.max_bad_steps steps in a row."""


class BadStepTracker:
    def __init__(self, max_bad_steps: int, rank: int, is_chief: bool) -> None:
        self.max_bad_steps = max_bad_steps
        self.rank = rank
        self.is_chief = is_chief
        self.in_a_row = 0
        self.since_log = 0  # skipped steps since the last scalar log
        self.total = 0
        self.overflows = 0  # fp16 steps the grad scaler skipped

    def loss_scales(self, **scalers: torch.amp.GradScaler) -> dict[str, float]:
        """The fp16 loss scales (per network), for the log; a warning when one collapses,
        since its network then barely learns (every step overflows even unscaled)."""
        values = {}
        for name, scaler in scalers.items():
            if scaler.is_enabled():
                values[f"amp/loss_scale_{name}"] = scale = scaler.get_scale()
                if scale < MIN_LOSS_SCALE and self.is_chief:
                    log.warning("The fp16 loss scale of %s fell to %.3g (%d steps overflowed so far): its "
                                "gradients overflow fp16 even unscaled. Use trainer.amp=bf16 (or off), or lower "
                                "the learning rates", name, scale, self.overflows)
        return values

    def pop_since_log(self) -> int:
        """Skipped steps since the last call (one call per scalar log)."""
        count, self.since_log = self.since_log, 0
        return count

    def record(self, step: int, result: StepResult, last_checkpoint: Optional[int]) -> bool:
        """Account for ``step`` (1-based, just taken); True if it was skipped. Raises after
        ``max_bad_steps`` skipped steps in a row."""
        if result.overflowed:  # the fp16 grad scaler skipped it: counted, not divergence
            self.since_log += 1
            self.overflows += 1
        if not result.skipped:
            self.in_a_row = 0
            return False
        self.in_a_row += 1
        self.since_log += 1
        self.total += 1
        where = "; ".join(f"{phase} on rank {', '.join(map(str, ranks))}" for phase, ranks in result.skipped.items())
        values = ", ".join(f"{k}={v.item():.4g}" for k, v in sorted(result.stats.items())
                           if k.startswith(("loss/", "grad/")) and not math.isfinite(v.item()))
        mine = f"; rank {self.rank} saw {values}" if values else ""
        if self.in_a_row >= self.max_bad_steps:
            first = step - self.in_a_row + 1
            raise DivergenceError(
                f"training diverged: steps {first}-{step} ({self.in_a_row} in a row, trainer.max_bad_steps="
                f"{self.max_bad_steps}) had non-finite losses or gradients ({where}{mine}). "
                f"The last checkpoint is at step {last_checkpoint}; resume from it with lower "
                "trainer.lr_g / trainer.lr_d, or trainer.amp=off, or check the data. Under Ray with "
                "trainer.max_failures > 0 the workers restart from that checkpoint first."
            )
        if self.is_chief or values:
            log.warning("Step %d skipped on every rank: non-finite values in %s%s (%d in a row, stop at %d)",
                        step, where, mine, self.in_a_row, self.max_bad_steps)
        return True
