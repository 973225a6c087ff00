"""fit(): the training loop, the same under Ray Train, torchrun and one plain process.

``train`` reads top to bottom: the run built (``run.start``: what a run is made of), then
per step the step itself, the log window, the sample grid, the evaluation and the
checkpoint, each due at its own interval. Host work that need not happen every step waits
for the log interval: the window's statistics are summed as they come (``Stats``) and read
once per window.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from gandist.collectives import all_reduce_max
from gandist.config import Config
from gandist.tags import SCORES, describe
from gandist.train import accel
from gandist.train.accel import to_device
from gandist.train.augment import augment
from gandist.train.checkpoints import checkpoint_score, save_checkpoint
from gandist.train.context import Context
from gandist.train.diffaugment import AdaController, Augmenter
from gandist.train.ema import ema_beta_at
from gandist.train.goodput import GoodputClock
from gandist.train.phases import Penalty, run_step
from gandist.train.progress import log_progress
from gandist.train.run import Run, start
from gandist.train.schedule import apply_lr, beta2_at
from gandist.train.state import TrainState
from gandist.train.streams import training_batches

log = logging.getLogger("gandist.train")


def fit(cfg: Config, ctx: Context) -> TrainState:
    """Train until ``trainer.max_steps``, resuming from the context's latest checkpoint if any."""
    clock = GoodputClock(ctx.run_dir, ctx.is_chief)  # this attempt's time, from now
    try:
        return train(cfg, ctx, clock)
    except BaseException as e:
        clock.finish(f"stopped by {type(e).__name__}: {e}"[:300])
        raise


def train(cfg: Config, ctx: Context, clock: GoodputClock) -> TrainState:
    run = start(cfg, ctx, clock)
    state, t = run.state, cfg.trainer
    if state.step >= t.max_steps:
        return finish_without_training(run)
    batches = training_batches(cfg, state.data, state.unlabeled, run.manifest, rank=ctx.rank,
                               world_size=ctx.world_size, pin_memory=accel.pin_memory(cfg, ctx.device))
    for batch in clock.timed(run.throughput.timed(batches)):
        take_step(run, batch)
        done = state.step >= t.max_steps
        clock.step_done(state.step)
        if state.step % t.log_every == 0 or done:
            log_window(run)
        if run.preview is not None and (state.step % t.image_every == 0 or done):
            run.monitor.image("samples", run.preview(state.G_ema), state.step)
        clock.charge("other")
        score = evaluate(run) if state.step % cfg.eval.every == 0 or done else None
        if run.schedule.due(state.step) or done or (t.keep_best and score is not None):
            checkpoint(run, score, asynchronous=t.async_checkpoint and not done)
        if run.after_step is not None:
            run.after_step(state.step)
        if done:
            break
    run.monitor.close()
    clock.finish()
    return state


def take_step(run: Run, batch: dict) -> None:
    """One training step on every rank: the batch on the device (augmented), the schedules
    for this step, D's and G's updates, ADA's window, the step's statistics (unless it was
    skipped), EMA G."""
    cfg, ctx, state, t = run.cfg, run.ctx, run.state, run.cfg.trainer
    batch = to_device(batch, ctx.device, run.gpu_path.channels_last)
    if run.augments:
        batch = augment(batch, cfg.data.flips, cfg.data.crop_scale, cfg.data.load_scale)
        if "g_real" in batch:  # task.g_draw=batch: G's real batch, with its own draws
            batch["g_real"] = augment(batch["g_real"], cfg.data.flips, cfg.data.crop_scale, cfg.data.load_scale)
    lr = apply_lr(t, state.step, state.opt_g, state.opt_d, state.healing.lr_scale, state.images_seen)
    if run.augmenter is not None:
        run.augmenter.follow(state.images_seen)  # task.augment_p_kimg's ramp (R3GAN)
    result = run_step(run.phases, run.task, run.G, {**batch, "step": state.step}, run.amp, ctx.rank, ctx.world_size)
    state.step += 1
    if run.ada is not None:
        run.ada.observe(result.stats["D/real_sign"])
        run.ada.maybe_adjust(state.step)
    if not run.watch.record_step(run.bad_steps, state, result, run.last_ckpt, run.clock, run.ada):  # all ranks agree
        run.stats.add(result.stats)
        run.stats.add_host(schedule_stats(cfg, state.step - 1, state.images_seen, lr, run.penalty))
    run.update_ema(ema_beta_at(t, run.global_batch, state.step - 1, state.images_seen))
    state.images_seen += run.global_batch


def log_window(run: Run) -> None:
    """Every trainer.log_every steps and at the end: the window's means over its steps and the
    ranks (one all-reduce), with the perf/, goodput/ and checkpoint-schedule figures, to
    TensorBoard and rank 0's progress line; the collapse watch reads them."""
    ctx, state, clock, schedule, t = run.ctx, run.state, run.clock, run.schedule, run.cfg.trainer
    values = run.throughput.reduce(state.step)
    if schedule.auto:  # every rank must plan the same checkpoints: the slowest rank's step time
        schedule.observe_step_time(all_reduce_max([values["perf/step_time_s"]], ctx.device)[0])
        clock.ledger.ckpt_interval = schedule.interval
    values = {**values, **augment_values(run.augmenter, run.ada), **clock.values(), **schedule.values(),
              "train/skipped_steps": float(run.bad_steps.pop_since_log()),
              "train/images_seen": float(state.images_seen),
              "train/rollbacks": float(state.healing.rollbacks),
              **run.bad_steps.loss_scales(G=state.scaler_g, D=state.scaler_d)}
    run.monitor.scalars(values, state.step)
    run.metrics.update(values)
    if ctx.is_chief:
        log_progress(state.step, t.max_steps, values, run.throughput.eta_s(state.step, t.max_steps), run.last_ckpt)
    clock.heartbeat()
    run.watch.heal(run.watch.observe_log(state.step, values), state, clock, run.ada)


def evaluate(run: Run) -> Optional[dict[str, Any]]:
    """Score EMA G on every rank together (rank 0 logs the headline scores) and let the collapse
    watch see the score; returns the record that ranks the checkpoint taken now, or None."""
    state, t = run.state, run.cfg.trainer
    scores = run.evaluator(state.G_ema, state.G)
    run.monitor.scalars(scores, state.step)
    if run.ctx.is_chief and scores:
        log.info("eval at step %d: %s", state.step, ", ".join(
            describe(scores, SCORES) + [f"took {scores.get('eval/time_s', 0.0):.1f} s"]))
    run.metrics.update(scores)
    score = checkpoint_score(scores, *run.score_metric, required=bool(t.keep_best or t.best_metric))
    run.clock.charge("evaluation")
    if run.watch.heal(run.watch.observe_eval(state.step, score), state, run.clock, run.ada):
        return None  # the score was the collapsed networks'; the ones now in place have none yet
    return score


def checkpoint(run: Run, score: Optional[dict[str, Any]], asynchronous: bool) -> None:
    """Every rank together: the state saved (ADA's open window summed over the ranks first),
    the stall it cost logged and told to the checkpoint schedule."""
    ctx, state, clock, schedule = run.ctx, run.state, run.clock, run.schedule
    if run.ada is not None:
        state.ada = run.ada.state_dict()  # a collective: the open window summed over ranks
    clock.ledger.checkpoints += 1
    timing = save_checkpoint(run.cfg, ctx, state, run.classes, run.metrics, run.resumed_from, clock, schedule, score,
                             asynchronous=asynchronous)
    run.monitor.scalars(timing, state.step)
    stall = timing["ckpt/stall_s"]
    schedule.checkpointed(state.step, all_reduce_max([stall], ctx.device)[0] if schedule.auto else stall)
    run.last_ckpt = state.step
    clock.charge("checkpoint")
    clock.heartbeat(force=True)


def finish_without_training(run: Run) -> TrainState:
    """The run had already reached trainer.max_steps: evaluate and report, nothing more."""
    state, clock = run.state, run.clock
    if run.ctx.is_chief:
        log.info("Run already finished at step %d (trainer.max_steps=%d)", state.step, run.cfg.trainer.max_steps)
    clock.charge("startup")
    metrics = run.evaluator(state.G_ema, state.G)
    clock.charge("evaluation")
    run.ctx.report({**metrics, "step": state.step}, None)
    run.monitor.close()
    clock.finish()
    return state


def schedule_stats(cfg: Config, step: int, images: int, lr_factors: tuple[float, float],
                   penalty: Optional[Penalty]) -> dict[str, float]:
    """The scheduled values in effect at ``step`` (taken after ``images`` images), to log beside the losses."""
    t = cfg.trainer
    values = {"lr/G": t.lr_g * lr_factors[0], "lr/D": t.lr_d * lr_factors[1]}
    if t.beta2_final is not None:
        values["adam/beta2"] = beta2_at(t, step, images)
    if penalty is not None:
        values["train/gamma"] = penalty.gamma(step)
    return values


def augment_values(augmenter: Optional[Augmenter], ada: Optional[AdaController]) -> dict[str, float]:
    """The augmentation probability (and ADA's last r_t) to log."""
    values = {} if augmenter is None else {"augment/p": augmenter.p}
    if ada is not None:
        values["augment/rt"] = ada.rt
    return values
