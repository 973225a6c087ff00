"""A collapse caught and rolled back.

GANs fail in their own way: BigGAN's large models all collapse eventually, and the published
practice is to take the model from before the collapse. The watch reads signals the loop
already has, identical on every rank (reduced across ranks, or broadcast), so every rank
decides the same:

- D's logit gap D(real) - D(fake) at or above ``collapse.gap_limit`` for ``collapse.window``
  logs in a row (D wins outright; G's gradient is worth nothing);
- r_t = E[sign D(real)] at or above ``collapse.rt_limit`` (when set) for the same window (D is
  sure of the real images: it has overfitted them);
- the evaluation score worse than the run's best by ``collapse.metric_margin`` (relative) for
  ``collapse.patience`` evaluations in a row;
- non-finite losses ``trainer.max_bad_steps`` steps in a row (which otherwise stops the run).

A rollback (at most ``trainer.max_rollbacks``) puts G, D, EMA G, both optimizers, the loss
scalers and ADA back to a checkpoint from before the trouble began: the best-scored one among
those, else the newest. The learning rates are then multiplied by ``collapse.lr_factor`` and the
gradient penalty by ``collapse.gamma_factor``. The step count, the data stream and the
schedules go on, so TensorBoard's curves and the checkpoint names stay in order and nothing
already written is overwritten; the goodput ledger moves the steps thrown away from
productive to rollback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Optional

from gandist.ckpt import load_checkpoint, score_key, scored_checkpoints
from gandist.collectives import broadcast_object
from gandist.config import Config
from gandist.train.context import Context
from gandist.train.divergence import BadStepTracker, DivergenceError
from gandist.train.state import Healing, TrainState

if TYPE_CHECKING:
    from gandist.train.goodput import GoodputClock

log = logging.getLogger("gandist.train")


@dataclass
class Trouble:
    reason: str
    good_before: int  # roll back to a checkpoint at or before this step


class CollapseWatch:
    def __init__(self, cfg: Config, healing: Healing, ctx: Context) -> None:
        self.c, self.max_rollbacks, self.h, self.ctx = cfg.collapse, cfg.trainer.max_rollbacks, healing, ctx

    def observe_log(self, step: int, values: dict[str, float]) -> Optional[Trouble]:
        """The logged means of one window: D's logit gap and r_t."""
        c, h = self.c, self.h
        trouble = None
        if "D/real" in values and "D/fake" in values:
            gap = values["D/real"] - values["D/fake"]
            h.gap_logs, h.gap_since = self._streak(h.gap_logs, h.gap_since, gap >= c.gap_limit)
            if h.gap_logs >= c.window:
                trouble = Trouble(f"D's logit gap D(real) - D(fake) has been at least collapse.gap_limit="
                                  f"{c.gap_limit:g} for {h.gap_logs} logs (now {gap:.3g})", h.gap_since)
        if c.rt_limit is not None and "D/real_sign" in values:
            rt = values["D/real_sign"]
            h.rt_logs, h.rt_since = self._streak(h.rt_logs, h.rt_since, rt >= c.rt_limit)
            if trouble is None and h.rt_logs >= c.window:
                trouble = Trouble(f"r_t = E[sign D(real)] has been at least collapse.rt_limit={c.rt_limit:g} for "
                                  f"{h.rt_logs} logs (now {rt:.3g}): D has overfitted the real images", h.rt_since)
        h.last_log = step
        return trouble

    def _streak(self, logs: int, since: Optional[int], at_limit: bool) -> tuple[int, Optional[int]]:
        """(logs in a row at the limit, the last log step before the streak) after this log."""
        if not at_limit:
            return 0, None
        return logs + 1, self.h.last_log if since is None else since

    def observe_eval(self, step: int, score: Optional[dict[str, Any]]) -> Optional[Trouble]:
        """An evaluation's score record (``loop.checkpoint_score``)."""
        h, c = self.h, self.c
        key = score_key(score)
        if key is None:
            return None
        if h.best is None or key >= h.best:
            h.best, h.best_step, h.worse_evals = key, step, 0
            return None
        h.worse_evals = h.worse_evals + 1 if key < h.best - c.metric_margin * abs(h.best) else 0
        if h.worse_evals < c.patience:
            return None
        best = h.best if score["order"] == "max" else -h.best
        return Trouble(f"{score['metric']} has been worse than the run's best ({best:.4g} at step {h.best_step}) by "
                       f"more than collapse.metric_margin={c.metric_margin:g} for {h.worse_evals} evaluations "
                       f"(now {score['value']:.4g})", h.best_step)

    def can_roll_back(self) -> bool:
        return self.h.rollbacks < self.max_rollbacks

    def record_step(self, bad_steps: BadStepTracker, state: TrainState, result: Any, last_ckpt: Optional[int],
                    clock: "GoodputClock", ada: Any = None) -> bool:
        """``bad_steps.record`` for the step just taken (True if it was skipped), except that too
        many non-finite steps in a row roll back, while a rollback is left, instead of stopping."""
        try:
            return bad_steps.record(state.step, result, last_ckpt)
        except DivergenceError:
            first_bad = state.step - bad_steps.in_a_row + 1
            trouble = Trouble(f"{bad_steps.in_a_row} steps in a row (from step {first_bad}) had non-finite losses "
                              "or gradients (trainer.max_bad_steps)", first_bad - 1)
            if self.roll_back(trouble, state, clock, ada) is None:
                raise
            bad_steps.in_a_row = 0
            return True

    def heal(self, trouble: Optional[Trouble], state: TrainState, clock: "GoodputClock", ada: Any = None) -> bool:
        """Roll back on a collapse, or warn when no rollback is left; True when it rolled back."""
        if trouble is None:
            return False
        if self.roll_back(trouble, state, clock, ada) is not None:
            return True
        self.warn(state.step, trouble)
        return False

    def warn(self, step: int, trouble: Trouble) -> None:
        """A collapse the run may not roll back: said once per episode, training goes on."""
        if self.ctx.is_chief and not self.h.warned:
            spent = (f"trainer.max_rollbacks={self.max_rollbacks} spent" if self.max_rollbacks
                     else "trainer.max_rollbacks=K rolls back automatically")
            log.warning("The run may be collapsing at step %d: %s (%s)", step, trouble.reason, spent)
        self.h.warned = True

    def roll_back(self, trouble: Trouble, state: TrainState, clock: "GoodputClock",
                  ada: Any = None) -> Optional[int]:
        """Every rank together: put the networks back to a checkpoint from before the trouble;
        the step it came from, or None when the run has no such checkpoint (or no rollbacks left)."""
        if not self.can_roll_back():
            return None
        choice = broadcast_object(pick_checkpoint(self.ctx.run_dir, trouble.good_before) if self.ctx.is_chief else None)
        if choice is None:
            if self.ctx.is_chief:
                log.warning("Cannot roll back at step %d: no complete checkpoint at or before step %d is left in %s "
                            "(%s)", state.step, trouble.good_before, self.ctx.run_dir, trouble.reason)
            return None
        path, to_step = choice
        payload = load_checkpoint(path, map_location=self.ctx.device)
        state.load_networks(payload["state"])
        if ada is not None and state.ada:
            ada.load_state_dict(state.ada, self.ctx.rank)
        h, c = self.h, self.c
        h.rollbacks += 1
        h.lr_scale *= c.lr_factor
        h.gamma_scale *= c.gamma_factor
        h.gap_logs = h.rt_logs = h.worse_evals = 0
        h.gap_since = h.rt_since = None
        h.warned = False
        h.events.append({"at": state.step, "to": to_step, "reason": trouble.reason})
        clock.rolled_back(state.step - to_step)
        if self.ctx.is_chief:
            log.warning("Rollback %d of %d at step %d: %s. G, D, EMA G and the optimizers are back at the checkpoint "
                        "of step %d; learning rates now x%.3g, gradient penalty x%.3g; the step count and the data "
                        "go on", h.rollbacks, self.max_rollbacks, state.step, trouble.reason, to_step, h.lr_scale,
                        h.gamma_scale)
        return to_step


def pick_checkpoint(run_dir: Optional[str], good_before: int) -> Optional[tuple[str, int]]:
    """(path, step) of the checkpoint to roll back to: among the run's complete checkpoints at or
    before ``good_before``, the best-scored one, else the newest."""
    if run_dir is None:
        return None
    ranked = [(float("-inf") if score_key(score) is None else score_key(score), step, path)
              for step, path, score in scored_checkpoints(run_dir) if step <= good_before]
    if not ranked:
        return None
    _, step, path = max(ranked)
    return path, step

