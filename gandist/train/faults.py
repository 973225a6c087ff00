"""Fault drills: a rank kills its own process at a chosen step, once per run; or a rank's
losses turn NaN for some steps (the divergence drill, see ``train.divergence``); or D's
weights turn NaN (the collapse drill, see ``train.collapse``).

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
from typing import TYPE_CHECKING, Callable, Optional

import fsspec
import torch
import torch.distributed as dist

from gandist.config import Config
from gandist.train.context import Context

if TYPE_CHECKING:
    from gandist.train.state import TrainState

log = logging.getLogger(__name__)
MARKER = "fault_drill_done.json"


def drill_pending(cfg: Config, ctx: Context) -> bool:
    """Whether this run still has a fault drill to perform (read once, at start)."""
    if cfg.faults.kill_rank is None or ctx.run_dir is None:
        return False
    fs, path = fsspec.core.url_to_fs(ctx.run_dir)
    return not fs.exists(f"{path.rstrip('/')}/{MARKER}")


def maybe_kill(cfg: Config, ctx: Context, step: int, before_kill: Optional[Callable[[], None]] = None) -> None:
    """At faults.at_step: rank 0 records the drill (and ``before_kill``: brings the goodput
    ledger up to this step, so the drill's steps lost are exact), then rank faults.kill_rank
    dies by SIGKILL."""
    if step != cfg.faults.at_step:
        return
    if ctx.is_chief:
        if before_kill is not None:
            before_kill()
        fs, path = fsspec.core.url_to_fs(ctx.run_dir)
        fs.makedirs(path, exist_ok=True)
        with fs.open(f"{path.rstrip('/')}/{MARKER}", "w") as f:
            json.dump({"rank": cfg.faults.kill_rank, "step": step}, f)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # the record exists before anyone dies
    if ctx.rank == cfg.faults.kill_rank:
        log.warning("Fault drill: rank %d kills its own process after step %d", ctx.rank, step)
        os.kill(os.getpid(), signal.SIGKILL)


def install(cfg: Config, ctx: Context, state: "TrainState",
            before_kill: Optional[Callable[[], None]] = None) -> Optional[Callable[[int], None]]:
    """Set up the drills that ``faults.*`` asks for; return the hook the loop calls after each
    step, or None when no drill is configured (the loop then carries no drill code at all).

    The divergence drill is a forward hook on this rank's G that turns its output NaN for
    steps faults.nan_at_step .. +nan_steps-1 (1-based), as a real divergence would; the
    collapse drill poisons D once (``poison_d``).
    """
    f = cfg.faults
    if f.nan_rank is not None and f.nan_rank == ctx.rank:
        def poison(module, inputs, output):
            step = state.step + 1  # the step being taken
            return output * float("nan") if f.nan_at_step <= step < f.nan_at_step + f.nan_steps else None

        state.G.register_forward_hook(poison)
    hooks: list[Callable[[int], None]] = []
    if f.collapse_at_step is not None:
        hooks.append(lambda step: poison_d(state) if step == f.collapse_at_step else None)
    if drill_pending(cfg, ctx):
        hooks.append(lambda step: maybe_kill(cfg, ctx, step, before_kill))
    if not hooks:
        return None

    def after_step(step: int) -> None:
        for hook in hooks:
            hook(step)

    return after_step


def poison_d(state: "TrainState") -> None:
    """The collapse drill: D's weights become NaN on every rank, as a corrupted update would
    leave them. The steps after it are non-finite until trainer.max_bad_steps stops the run or,
    with trainer.max_rollbacks, a rollback heals it. The step count only grows, so it happens
    once per run (and again, identically, in a replay from an earlier checkpoint)."""
    log.warning("Collapse drill: D's weights become NaN after step %d", state.step)
    with torch.no_grad():
        for p in state.D.parameters():
            p.fill_(float("nan"))
