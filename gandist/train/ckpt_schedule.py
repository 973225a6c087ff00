"""When to checkpoint: every ``trainer.ckpt_every`` steps, or (``auto``) at the Young-Daly
interval sqrt(2 x checkpoint stall x mean time between failures), the optimum that balances
the time lost to checkpoints against the work lost to a failure (Young 1974, Daly 2006).

The run's MTBF is one worker's (``trainer.mtbf_hours``) divided by the number of workers: any
worker's failure stops all of them. The stall and the step time are measured as the run goes
and reduced over ranks, so every rank makes the same decision (a checkpoint is a collective).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Optional, Union

log = logging.getLogger("gandist.train")

AUTO = "auto"


def young_daly_s(stall_s: float, mtbf_s: float) -> float:
    """Seconds of training between checkpoints that minimise the expected time lost."""
    return math.sqrt(2.0 * max(stall_s, 0.0) * mtbf_s)


class CheckpointSchedule:
    def __init__(self, every: Union[int, str], mtbf_hours: float, world_size: int, first_log: int,
                 last_ckpt: int = 0, saved: Optional[dict[str, Any]] = None) -> None:
        self.auto = every == AUTO
        self.every = None if self.auto else int(every)
        self.mtbf_s = mtbf_hours * 3600.0 / max(world_size, 1)
        self.world_size = world_size
        self.last_ckpt = last_ckpt
        self.stalls: list[float] = list((saved or {}).get("stalls", []))[-20:]
        self.step_time_s: Optional[float] = None
        # Until the step time is known, the first checkpoint comes at the first log: it also
        # measures the stall the interval needs.
        self.interval: Optional[int] = None
        self.next_due = last_ckpt + first_log

    def due(self, step: int) -> bool:
        if not self.auto:
            return step % self.every == 0
        return step >= self.next_due

    def observe_step_time(self, step_time_s: float) -> None:
        """The last log window's seconds per step (the same on every rank)."""
        if self.auto and step_time_s > 0:
            self.step_time_s = step_time_s
            self._plan()

    def checkpointed(self, step: int, stall_s: float) -> None:
        """A checkpoint was taken at ``step`` and training waited ``stall_s`` (the same on every rank)."""
        self.last_ckpt = step
        if self.auto:
            self.stalls = (self.stalls + [stall_s])[-20:]
            self._plan()

    def _plan(self) -> None:
        if not self.stalls or self.step_time_s is None:
            return
        stall = sum(self.stalls) / len(self.stalls)
        seconds = young_daly_s(stall, self.mtbf_s)
        interval = max(1, round(seconds / self.step_time_s))
        if self.interval is None or abs(interval - self.interval) > 0.1 * self.interval:
            log.info("Checkpoint interval (trainer.ckpt_every=auto): every %d steps = %.0f s, from a %.2f s stall and "
                     "an MTBF of %.1f h (trainer.mtbf_hours / %d workers) at %.3f s per step", interval, seconds,
                     stall, self.mtbf_s / 3600, self.world_size, self.step_time_s)
        self.interval = interval
        self.next_due = self.last_ckpt + interval

    def values(self) -> dict[str, float]:
        """The interval in effect, for TensorBoard."""
        return {"ckpt/interval_steps": float(self.interval)} if self.auto and self.interval else {}

    def state_dict(self) -> dict[str, Any]:
        return {"stalls": list(self.stalls)}
