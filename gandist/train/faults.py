"""Fault drills: a rank kills its own process at a chosen step, once per run; or a rank's
losses turn NaN for some steps (the divergence drill, see ``train.divergence``).

Users rehearse recovery on their cluster with ``faults.kill_rank=R faults.at_step=S``;
the tests prove recovery with it. Rank 0 records the drill in the run directory before
the kill, so the restarted run, which replays from an earlier checkpoint, does not kill
itself again.
"""

from __future__ import annotations

import json
import logging
import os
import signal

import fsspec
import torch.distributed as dist

from gandist.config import Config
from gandist.train.context import Context

log = logging.getLogger(__name__)
MARKER = "fault_drill_done.json"


def drill_pending(cfg: Config, ctx: Context) -> bool:
    """Whether this run still has a fault drill to perform (read once, at start)."""
    if cfg.faults.kill_rank is None or ctx.run_dir is None:
        return False
    fs, path = fsspec.core.url_to_fs(ctx.run_dir)
    return not fs.exists(f"{path.rstrip('/')}/{MARKER}")


def maybe_kill(cfg: Config, ctx: Context, step: int) -> None:
    """At faults.at_step: rank 0 records the drill, then rank faults.kill_rank dies by SIGKILL."""
    if step != cfg.faults.at_step:
        return
    if ctx.is_chief:
        fs, path = fsspec.core.url_to_fs(ctx.run_dir)
        fs.makedirs(path, exist_ok=True)
        with fs.open(f"{path.rstrip('/')}/{MARKER}", "w") as f:
            json.dump({"rank": cfg.faults.kill_rank, "step": step}, f)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # the record exists before anyone dies
    if ctx.rank == cfg.faults.kill_rank:
        log.warning("Fault drill: rank %d kills its own process after step %d", ctx.rank, step)
        os.kill(os.getpid(), signal.SIGKILL)


def poisoned(cfg: Config, ctx: Context, step: int) -> bool:
    """Whether the divergence drill makes this rank's step ``step`` (1-based) non-finite."""
    f = cfg.faults
    return f.nan_rank == ctx.rank and f.nan_at_step <= step < f.nan_at_step + f.nan_steps
