"""fit(): the training loop, the same under Ray Train, torchrun and one plain process."""

from __future__ import annotations

import inspect
import logging
import random
import tempfile
import time
from dataclasses import asdict
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gandist import __version__
from gandist.ckpt import CheckpointError, write_checkpoint
from gandist.config import Config, ConfigError
from gandist.data.manifest import Manifest
from gandist.data.plan import Segment
from gandist.data.stream import epoch_loader
from gandist.losses import gan_loss
from gandist.monitor import make_monitor
from gandist.seeding import derive_seed
from gandist.train import accel
from gandist.train.accel import to_device
from gandist.train.context import Context
from gandist.train.divergence import BadStepTracker
from gandist.train.ema import EmaUpdater, ema_beta
from gandist.train.evaluation import Evaluator
from gandist.train.faults import drill_pending, maybe_kill, poisoned
from gandist.train.phases import autocast, build_phases, run_step
from gandist.train.schedule import apply_lr
from gandist.train.state import TrainState, rng_state, set_rng_state
from gandist.train.stats import Stats, check_identical_across_ranks, gather_objects
from gandist.train.tasks import GenerateTask, SegmentTask, Task
from gandist.train.visuals import grid, segment_triplets, to_unit

log = logging.getLogger("gandist.train")

# Keys of the config that decide the shape of the networks: a checkpoint must agree on them.
SHAPE_KEYS = [("task", "name"), ("model", "arch"), ("model", "resolution"), ("model", "z_dim"),
              ("model", "g_width"), ("model", "d_width"), ("model", "d_layers")]


def fit(cfg: Config, ctx: Context) -> TrainState:
    """Train until ``trainer.max_steps``, resuming from the context's latest checkpoint if any."""
    t = cfg.trainer
    manifest = Manifest.load(cfg.data.url)
    classes = check_data_fits(cfg, manifest)
    manifest.check_shards("train")  # a missing shard fails now, not in the middle of an epoch
    num_classes = len(classes) if classes else 0

    state = TrainState.fresh(cfg, num_classes, ctx.device)
    seed_process(derive_seed(t.seed, "rank", ctx.rank))
    payload = ctx.restore()
    resumed_from = None
    if payload is not None:
        check_checkpoint_fits(cfg, payload, classes)
        state.load_state_dict(payload["state"])
        resumed_from = state.step
        rngs = payload.get("rng") or []
        if len(rngs) == ctx.world_size:
            set_rng_state(rngs[ctx.rank])
        if ctx.is_chief:
            log.info("Resumed from checkpoint at step %d (epoch %d, batch %d of the epoch, %d images seen)",
                     state.step, state.epoch, state.batch_in_epoch, state.images_seen)
    elif ctx.is_chief:
        log.info("Starting a new run: no checkpoint found")

    if ctx.is_chief and ctx.world_size != t.num_workers:
        log.info("Training on %d workers (elastic, up to trainer.num_workers=%d); the per-worker batch "
                 "stays data.batch_size=%d, so the global batch is %d", ctx.world_size, t.num_workers,
                 cfg.data.batch_size, cfg.data.batch_size * ctx.world_size)
    adopt_data_layout(state, cfg, ctx)
    gpu_path = accel.prepare(cfg, ctx.device, state.G, state.D, state.G_ema)
    if ctx.is_chief and ctx.device.type == "cuda":
        log.info("GPU path: %s", gpu_path.describe())

    G = wrap_ddp(state.G, ctx, broadcast_buffers=True)
    # D is always in train mode, so its BN running statistics are never used: not broadcasting
    # them lets D run forward twice per step without in-place buffer updates between the two.
    D = wrap_ddp(state.D, ctx, broadcast_buffers=False)
    check_identical_across_ranks(state.G, state.D, state.G_ema)
    state.G.requires_grad_(False)
    state.D.requires_grad_(False)

    task = make_task(cfg, num_classes)
    amp = autocast(ctx.device, gpu_path.amp)
    phases = build_phases(task, gan_loss(cfg.task.loss), G, D, state.opt_g, state.opt_d,
                          state.scaler_g, state.scaler_d, amp)
    update_ema = EmaUpdater(state.G_ema, state.G)
    bad_steps = BadStepTracker(t.max_bad_steps, ctx.rank, ctx.is_chief)
    last_ckpt = resumed_from
    monitor = make_monitor(ctx.log_dir, purge_step=state.step + 1 if payload is not None else None,
                           sync_to=remote_log_root(ctx), sync_interval=cfg.run.log_sync_s)
    monitor.hparams({**cfg.to_dict(), "in_effect": asdict(gpu_path)}, headline_tags(cfg))
    preview = make_preview(cfg, ctx, manifest, task) if ctx.is_chief else None
    stats = Stats(ctx.device)
    evaluator = Evaluator(cfg, manifest, ctx.rank, ctx.world_size, ctx.device, classes)
    global_batch = cfg.data.batch_size * ctx.world_size
    metrics: dict[str, float] = {}

    if state.step >= t.max_steps:
        if ctx.is_chief:
            log.info("Run already finished at step %d (trainer.max_steps=%d)", state.step, t.max_steps)
        metrics.update(evaluator(state.G_ema))
        ctx.report({**metrics, "step": state.step}, None)
        monitor.close()
        return state

    drill = drill_pending(cfg, ctx)
    start_step, start_time = state.step, time.perf_counter()
    last_log_time, last_log_step = start_time, state.step
    while state.step < t.max_steps:
        loader = epoch_loader(
            cfg.data.url, split="train", batch_size=cfg.data.batch_size, rank=ctx.rank,
            world_size=ctx.world_size, num_workers=cfg.data.loader_workers, epoch=state.epoch,
            seed=t.seed, skip_batches=state.batch_in_epoch, shuffle_buffer=cfg.data.shuffle_buffer,
            with_masks=task.name == "segment", max_bad_fraction=cfg.data.max_bad_fraction,
            history=[Segment(**seg) for seg in state.data_history], pin_memory=accel.pin_memory(cfg, ctx.device),
        )
        wait_start = time.perf_counter()
        for batch in loader:
            waited = time.perf_counter() - wait_start
            batch = to_device(batch, ctx.device, gpu_path.channels_last)
            lr = apply_lr(t, state.step, state.opt_g, state.opt_d)
            result = run_step(phases, task, G, batch, state.step, amp, ctx.rank, ctx.world_size,
                              poison=poisoned(cfg, ctx, state.step + 1))
            state.step += 1
            if not bad_steps.record(state.step, result, last_ckpt):  # every rank agrees on a skip
                stats.add({**result.stats, "lr/G": torch.tensor(t.lr_g * lr), "lr/D": torch.tensor(t.lr_d * lr)})
            stats.add({"perf/data_wait_s": torch.tensor(waited)})
            state.batch_in_epoch += 1
            state.images_seen += global_batch
            update_ema(ema_beta(global_batch, state.images_seen, t.ema_kimg, t.ema_rampup))
            done = state.step >= t.max_steps

            if state.step % t.log_every == 0 or done:
                now = time.perf_counter()
                steps = state.step - last_log_step
                if ctx.device.type == "cuda":
                    stats.add({"perf/gpu_mem_peak_gb": torch.tensor(torch.cuda.max_memory_allocated(ctx.device) / 2**30)})
                    torch.cuda.reset_peak_memory_stats(ctx.device)
                values = stats.reduce()  # means over the window's steps and over all ranks
                step_time = (now - last_log_time) / max(steps, 1)
                values["perf/images_per_s"] = global_batch * steps / max(now - last_log_time, 1e-9)
                values["perf/step_time_s"] = step_time
                values["perf/data_wait_frac"] = values.pop("perf/data_wait_s") / max(step_time, 1e-9)
                values["train/skipped_steps"] = float(bad_steps.since_log)
                values["train/images_seen"] = float(state.images_seen)
                last_log_time, last_log_step, bad_steps.since_log = now, state.step, 0
                monitor.scalars(values, state.step)
                metrics.update(values)
                if ctx.is_chief:
                    log_progress(state, t.max_steps, values, start_step, start_time, last_ckpt)
            if state.step % t.image_every == 0 or done:
                if preview is not None:
                    monitor.image("samples", preview(state.G_ema), state.step)
            if state.step % cfg.eval.every == 0 or done:
                scores = evaluator(state.G_ema)
                monitor.scalars(scores, state.step)
                metrics.update(scores)
                if ctx.is_chief and scores:
                    log.info("eval at step %d: %s", state.step, describe_scores(scores))
            if state.step % t.ckpt_every == 0 or done:
                timing = save_checkpoint(cfg, ctx, state, classes, metrics, resumed_from,
                                         asynchronous=t.async_checkpoint and not done)
                monitor.scalars(timing, state.step)
                last_ckpt = state.step
            if drill:
                maybe_kill(cfg, ctx, state.step)
            if done:
                break
            wait_start = time.perf_counter()
        else:
            state.epoch += 1
            state.batch_in_epoch = 0
            state.data_history = []
    monitor.close()
    return state


def remote_log_root(ctx: Context) -> Optional[str]:
    """Where rank 0's logs are copied to: the run directory, when it is not on this machine."""
    if ctx.log_dir is None or ctx.run_dir is None:
        return None
    if "://" not in ctx.run_dir or ctx.run_dir.startswith("file://"):
        return None  # local storage: the logs are written in the run directory itself
    return ctx.run_dir


def headline_tags(cfg: Config) -> list[str]:
    """The scalars shown as metric columns in TensorBoard's HPARAMS view."""
    tags = ["loss/D", "loss/G", "D/real", "D/fake", "perf/images_per_s"]
    if cfg.task.name == "segment":
        return tags + ["loss/G_l1", "eval/miou", "eval/pixel_accuracy"]
    if cfg.eval.features == "inception":
        return tags + ["eval/fid", "eval/kid"]
    return tags + [f"eval/fd_{cfg.eval.features}", f"eval/kd_{cfg.eval.features}"]


def adopt_data_layout(state: TrainState, cfg: Config, ctx: Context) -> None:
    """Resuming with another world size, batch size or loader-worker count mid-epoch: record
    what the old layout read, so the rest of the epoch is split anew and nothing repeats."""
    layout = {"world_size": ctx.world_size, "batch_size": cfg.data.batch_size,
              "num_workers": cfg.data.loader_workers}
    if state.data_layout and state.data_layout != layout and state.batch_in_epoch > 0:
        state.data_history.append({**state.data_layout, "batches": state.batch_in_epoch})
        if ctx.is_chief:
            log.info("Data layout changed from %s to %s: the rest of epoch %d is split anew, "
                     "every sample not yet seen in it still comes once", state.data_layout, layout, state.epoch)
        state.batch_in_epoch = 0
    state.data_layout = layout


def check_data_fits(cfg: Config, manifest: Manifest) -> Optional[list[str]]:
    """Refuse a shard set that cannot train this config; return its classes (segment)."""
    url = cfg.data.url
    if manifest.image_size != cfg.model.resolution:
        raise ConfigError(
            f"data.url={url} holds {manifest.image_size}x{manifest.image_size} images but "
            f"model.resolution={cfg.model.resolution}; set model.resolution={manifest.image_size} "
            f"or write the shards again with --size {cfg.model.resolution}"
        )
    if cfg.task.name == "segment":
        if not manifest.has_masks or not manifest.classes:
            raise ConfigError(
                f"task=segment needs masks, but the shard set at data.url={url} has none "
                f"(it was written from {manifest.source}); shard a source with masks, or use task=generate"
            )
        if cfg.data.classes is not None and list(cfg.data.classes) != list(manifest.classes):
            raise ConfigError(
                f"data.classes={list(cfg.data.classes)} but the shard set at data.url={url} has classes "
                f"{list(manifest.classes)}; fix data.classes, or point data.url at the right shard set"
            )
        return list(manifest.classes)
    return None


def check_checkpoint_fits(cfg: Config, payload: dict[str, Any], classes: Optional[list[str]]) -> None:
    """Say precisely what differs between a checkpoint and the config, instead of a state_dict error."""
    saved = payload.get("config", {})
    diffs = []
    for section, key in SHAPE_KEYS:
        old, new = saved.get(section, {}).get(key), getattr(getattr(cfg, section), key)
        if old != new:
            diffs.append(f"{section}.{key}: checkpoint {old!r}, config {new!r}")
    if payload.get("classes") != classes:
        diffs.append(f"classes: checkpoint {payload.get('classes')}, data {classes}")
    if diffs:
        raise CheckpointError(
            f"the checkpoint of run {cfg.run.name!r} does not fit this config: " + "; ".join(diffs)
            + ". Use the run's original settings, or a new run.name to start afresh."
        )


def make_task(cfg: Config, num_classes: int) -> Task:
    if cfg.task.name == "generate":
        return GenerateTask(cfg.model.z_dim)
    return SegmentTask(num_classes, cfg.task.l1_weight)


def seed_process(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def wrap_ddp(module: nn.Module, ctx: Context, broadcast_buffers: bool) -> nn.Module:
    """G and D each get their own DDP wrapper; one process keeps the plain module."""
    if ctx.world_size == 1:
        return module
    device_ids = [ctx.device] if ctx.device.type == "cuda" else None
    # Newer torch renames broadcast_buffers (buffers are synced at init either way).
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        return DDP(module, device_ids=device_ids, forward_sync_buffers=broadcast_buffers)
    return DDP(module, device_ids=device_ids, broadcast_buffers=broadcast_buffers)


def save_checkpoint(cfg: Config, ctx: Context, state: TrainState, classes: Optional[list[str]],
                    metrics: dict[str, float], resumed_from: Optional[int] = None,
                    asynchronous: bool = False) -> dict[str, float]:
    """Rank 0 writes the complete state into a temporary directory; every rank reports it
    (the context persists and then removes the directory). Returns how long training waited."""
    began = time.perf_counter()
    rngs = gather_objects(rng_state())
    ckpt_dir = None
    if ctx.is_chief:
        ckpt_dir = tempfile.mkdtemp(prefix="gandist-ckpt-")
        payload = {"state": state.state_dict(), "rng": rngs, "config": cfg.to_dict(),
                   "classes": classes, "gandist_version": __version__}
        meta = {"step": state.step, "epoch": state.epoch, "images_seen": state.images_seen,
                "resumed_from": resumed_from,  # the step this process started from (null: fresh)
                "task": cfg.task.name, "arch": cfg.model.arch, "run": cfg.run.name}
        write_checkpoint(ckpt_dir, payload, meta)
    written = time.perf_counter()
    ctx.report({**metrics, "step": state.step}, ckpt_dir, asynchronous=asynchronous)
    ended = time.perf_counter()
    timing = {"ckpt/stall_s": ended - began, "ckpt/write_s": written - began, "ckpt/persist_s": ended - written}
    if ctx.is_chief:
        how = "upload continues in the background" if asynchronous else f"persist {timing['ckpt/persist_s']:.2f} s"
        log.info("Checkpoint at step %d: training waited %.2f s (write %.2f s, %s)",
                 state.step, timing["ckpt/stall_s"], timing["ckpt/write_s"], how)
    return timing


def make_preview(cfg: Config, ctx: Context, manifest: Manifest, task: Task):
    """Rank 0's fixed inputs for image grids, so successive grids compare."""
    if task.name == "generate":
        gen = torch.Generator().manual_seed(derive_seed(cfg.trainer.seed, "preview"))
        z = torch.randn(64, cfg.model.z_dim, generator=gen).to(ctx.device)

        @torch.no_grad()
        def sample_grid(G_ema: nn.Module) -> torch.Tensor:
            return grid(to_unit(G_ema(z)), nrow=8)

        return sample_grid

    split = cfg.data.eval_split if cfg.data.eval_split in manifest.splits else "train"
    count = min(8, manifest.samples(split))
    loader = epoch_loader(cfg.data.url, split=split, batch_size=count, rank=0, world_size=1,
                          num_workers=0, epoch=0, seed=cfg.trainer.seed, shuffle=False)
    fixed = to_device(next(iter(loader)), ctx.device, accel.channels_last(cfg, ctx.device))

    @torch.no_grad()
    def triplets(G_ema: nn.Module) -> torch.Tensor:
        pred = G_ema(fixed["image"]).argmax(dim=1)
        return segment_triplets(fixed["image"], fixed["mask"], pred, manifest.classes)

    return triplets


def describe_scores(scores: dict[str, float]) -> str:
    """One line of the headline evaluation scores, for the console."""
    parts = []
    for key, label in (("eval/miou", "held-out mIoU"), ("eval/pixel_accuracy", "pixel accuracy"),
                       ("eval/fid", "FID"), ("eval/kid", "KID"),
                       ("eval/fd_randconv", "FD(randconv)"), ("eval/kd_randconv", "KD(randconv)")):
        if key in scores:
            parts.append(f"{label} {scores[key]:.4g}")
    parts.append(f"took {scores.get('eval/time_s', 0.0):.1f} s")
    return ", ".join(parts)


def log_progress(state: TrainState, max_steps: int, values: dict[str, float],
                 start_step: int, start_time: float, last_ckpt: Optional[int] = None) -> None:
    elapsed = time.perf_counter() - start_time
    done_steps = state.step - start_step
    eta = elapsed / max(done_steps, 1) * (max_steps - state.step)
    parts = [f"step {state.step}/{max_steps}"]
    for key, label in (("loss/D", "D"), ("loss/G", "G"), ("loss/G_l1", "L1"),
                       ("D/real", "D(real)"), ("D/fake", "D(fake)")):
        if key in values:
            parts.append(f"{label} {values[key]:.3f}")
    parts.append(f"{values['perf/images_per_s']:.1f} img/s")
    parts.append(f"eta {int(eta // 3600)}h{int(eta % 3600 // 60):02d}m" if eta >= 3600
                 else f"eta {int(eta // 60)}m{int(eta % 60):02d}s")
    parts.append(f"ckpt {'-' if last_ckpt is None else last_ckpt}")
    log.info(" | ".join(parts))
