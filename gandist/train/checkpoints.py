"""Checkpoints in and out of the training loop: what a checkpoint holds and how it is
reported (rank 0 writes it, the launcher's context persists it), the score that ranks it
(trainer.keep_best), and resuming from one with a clear error when it does not fit."""

from __future__ import annotations

import logging
import tempfile
import time
from typing import Any, Optional

from gandist import __version__
from gandist.ckpt import NO_SCORE, SCORE_ATTRIBUTE, CheckpointError, score_key, write_checkpoint
from gandist.collectives import gather_objects
from gandist.config import Config, ConfigError, from_dict
from gandist.config.scores import NOT_SCORES
from gandist.seeding import rng_state, set_rng_state
from gandist.train.ckpt_schedule import CheckpointSchedule
from gandist.train.context import Context
from gandist.train.goodput import GoodputClock
from gandist.train.state import TrainState

log = logging.getLogger("gandist.train")

# Keys of the config a checkpoint must agree on: the networks' shapes, and the labeled subset
# the data cursors count in. (A shard set may move, so its URL is not one of them.)
CHECKPOINT_KEYS = [("task", "name"), ("model", "arch"), ("model", "resolution"), ("model", "z_dim"),
                   ("model", "g_width"), ("model", "g_refine"), ("model", "d_width"), ("model", "d_layers"),
                   ("model", "d_arch"), ("model", "d_stride"), ("model", "conditional"), ("task", "d_input"),
                   ("task", "d_image"), ("task", "d_map_range"), ("data", "label_fraction")]


def resume(cfg: Config, ctx: Context, state: TrainState, classes: Optional[list[str]]
           ) -> tuple[Optional[int], dict[str, Any]]:
    """Load the context's latest checkpoint into ``state`` (and this rank's RNGs, when the world
    size is unchanged); return the step it resumed from (None for a fresh run) and the records
    it carries beside the training state (the goodput ledger, the checkpoint schedule's)."""
    payload = ctx.restore()
    if payload is None:
        if ctx.is_chief:
            log.info("Starting a new run: no checkpoint found")
        return None, {}
    check_checkpoint_fits(cfg, payload, classes)
    state.load_state_dict(payload["state"])
    rngs = payload.get("rng") or []
    if len(rngs) == ctx.world_size:
        set_rng_state(rngs[ctx.rank])
    if ctx.is_chief:
        log.info("Resumed from checkpoint at step %d (epoch %d, batch %d of the epoch, %d images seen)",
                 state.step, state.data.epoch, state.data.batch_in_epoch, state.images_seen)
    return state.step, {key: payload.get(key) for key in ("ledger", "ckpt_schedule")}


def check_checkpoint_fits(cfg: Config, payload: dict[str, Any], classes: Optional[list[str]]) -> None:
    """Say precisely what differs between a checkpoint and the config, instead of a state_dict error.

    The saved config is rebuilt through the schema first: keys added since it was written
    take their defaults, which are what such a checkpoint was trained with."""
    saved = from_dict(payload["config"]).to_dict() if payload.get("config") else {}
    current = cfg.to_dict()
    diffs = []
    for section, key in CHECKPOINT_KEYS:
        old, new = saved.get(section, {}).get(key), current[section][key]
        if old != new:
            diffs.append(f"{section}.{key}: checkpoint {old!r}, config {new!r}")
    if payload.get("classes") != classes:
        diffs.append(f"classes: checkpoint {payload.get('classes')}, data {classes}")
    if diffs:
        raise CheckpointError(
            f"the checkpoint of run {cfg.run.name!r} does not fit this config: " + "; ".join(diffs)
            + ". Use the run's original settings, or a new run.name to start afresh."
        )


def checkpoint_score(scores: dict[str, float], tag: str, order: str, required: bool) -> Optional[dict[str, Any]]:
    """The record that ranks a checkpoint taken after this evaluation, or None without a score.
    A score this run never produces is a config mistake when it was asked for (``required``):
    refused with the ones it has."""
    if not scores or (tag not in scores and not required):
        return None
    if tag not in scores:
        have = sorted(k for k in scores if k.startswith("eval/") and k not in NOT_SCORES)
        raise ConfigError(f"trainer.best_metric={tag} is not among this run's evaluation scores ({', '.join(have)}); "
                          "set trainer.best_metric to one of them")
    value = float(scores[tag])
    return None if value != value else {"metric": tag, "order": order, "value": value}  # NaN ranks nothing


def save_checkpoint(cfg: Config, ctx: Context, state: TrainState, classes: Optional[list[str]],
                    metrics: dict[str, float], resumed_from: Optional[int] = None,
                    clock: Optional[GoodputClock] = None, schedule: Optional[CheckpointSchedule] = None,
                    score: Optional[dict[str, Any]] = None, asynchronous: bool = False) -> dict[str, float]:
    """Rank 0 writes the complete state into a temporary directory; every rank reports it
    (the context persists and then removes the directory). ``score``: the evaluation at this
    step that ranks the checkpoint (trainer.keep_best, --best). Returns how long training waited."""
    began = time.perf_counter()
    rngs = gather_objects(rng_state())
    ckpt_dir = None
    if ctx.is_chief:
        ckpt_dir = tempfile.mkdtemp(prefix="gandist-ckpt-")
        payload = {"state": state.state_dict(), "rng": rngs, "config": cfg.to_dict(),
                   "classes": classes, "gandist_version": __version__,
                   "ledger": clock.state_dict() if clock is not None else None,
                   "ckpt_schedule": schedule.state_dict() if schedule is not None else None}
        meta = {"step": state.step, "epoch": state.epoch, "images_seen": state.images_seen,
                "resumed_from": resumed_from,  # the step this process started from (null: fresh)
                "task": cfg.task.name, "arch": cfg.model.arch, "run": cfg.run.name, "score": score}
        write_checkpoint(ckpt_dir, payload, meta)
    written = time.perf_counter()
    reported = {**metrics, "step": state.step}
    if cfg.trainer.keep_best:  # what Ray Train ranks checkpoints by: higher is better
        reported[SCORE_ATTRIBUTE] = NO_SCORE if score is None else score_key(score)
    ctx.report(reported, ckpt_dir, asynchronous=asynchronous)
    ended = time.perf_counter()
    timing = {"ckpt/stall_s": ended - began, "ckpt/write_s": written - began, "ckpt/persist_s": ended - written}
    if ctx.is_chief:
        how = "upload continues in the background" if asynchronous else f"persist {timing['ckpt/persist_s']:.2f} s"
        log.info("Checkpoint at step %d: training waited %.2f s (write %.2f s, %s)",
                 state.step, timing["ckpt/stall_s"], timing["ckpt/write_s"], how)
    return timing
