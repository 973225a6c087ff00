"""Per-window performance (images/s, step time, the share of it spent waiting for data) and the
progress line rank 0 prints every ``trainer.log_every`` steps."""

from __future__ import annotations

import logging
import time
from typing import Iterable, Iterator, Optional, TypeVar

import torch

from gandist.tags import PROGRESS, describe
from gandist.train.stats import Stats

log = logging.getLogger("gandist.train")
T = TypeVar("T")


class Throughput:
    """Times the loader's waits and the steps between two logs; all ranks reduce together."""

    def __init__(self, stats: Stats, global_batch: int, step: int, device: torch.device) -> None:
        self.stats, self.global_batch, self.device = stats, global_batch, device
        self.start_step, self.start_time = step, time.perf_counter()
        self.window_step, self.window_time = step, self.start_time

    def timed(self, batches: Iterable[T]) -> Iterator[T]:
        """``batches``, recording how long each one was waited for."""
        wait_start = time.perf_counter()
        for batch in batches:
            self.stats.add_host({"perf/data_wait_s": time.perf_counter() - wait_start})
            yield batch
            wait_start = time.perf_counter()

    def reduce(self, step: int) -> dict[str, float]:
        """The window's statistics, averaged over its steps and all ranks, with the perf/ figures."""
        now = time.perf_counter()
        steps = step - self.window_step
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device) / 2**30
            self.stats.add_host({"perf/gpu_mem_peak_gb": peak})
            torch.cuda.reset_peak_memory_stats(self.device)
        values = self.stats.reduce()
        step_time = (now - self.window_time) / max(steps, 1)
        values["perf/images_per_s"] = self.global_batch * steps / max(now - self.window_time, 1e-9)
        values["perf/step_time_s"] = step_time
        values["perf/data_wait_frac"] = values.pop("perf/data_wait_s") / max(step_time, 1e-9)
        self.window_step, self.window_time = step, now
        return values

    def eta_s(self, step: int, max_steps: int) -> float:
        elapsed = time.perf_counter() - self.start_time
        return elapsed / max(step - self.start_step, 1) * (max_steps - step)


def log_progress(step: int, max_steps: int, values: dict[str, float], eta: float,
                 last_ckpt: Optional[int] = None) -> None:
    parts = [f"step {step}/{max_steps}", *describe(values, PROGRESS), f"{values['perf/images_per_s']:.1f} img/s"]
    parts.append(f"eta {int(eta // 3600)}h{int(eta % 3600 // 60):02d}m" if eta >= 3600
                 else f"eta {int(eta // 60)}m{int(eta % 60):02d}s")
    parts.append(f"ckpt {'-' if last_ckpt is None else last_ckpt}")
    log.info(" | ".join(parts))
