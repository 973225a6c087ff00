"""What a training run is made of: ``Run`` holds everything the loop works with, and
``start`` builds it, in the one order a bitwise resume depends on (the process seed before
the checkpoint's RNG states, the networks' layout before DDP, every rank's collectives in
the same order)."""

from __future__ import annotations

import contextlib
import inspect
import logging
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from gandist.collectives import check_identical_across_ranks
from gandist.config import Config, Flips, PenaltyKind, TaskName
from gandist.config.scores import best_metric
from gandist.data.checks import check_data_fits, check_unlabeled_fits
from gandist.data.loader import epoch_loader
from gandist.data.manifest import Manifest
from gandist.inference.evaluator import Evaluator
from gandist.inference.grids import class_grid, grid, segment_triplets, to_unit, translate_triplets
from gandist.losses import gan_loss
from gandist.monitor import NullMonitor, make_monitor
from gandist.seeding import derive_seed, seed_process
from gandist.tags import descriptions as tag_descriptions
from gandist.tags import headline_tags
from gandist.train import accel, faults
from gandist.train.accel import to_device
from gandist.train.checkpoints import resume
from gandist.train.ckpt_schedule import CheckpointSchedule
from gandist.train.collapse import CollapseWatch
from gandist.train.context import Context
from gandist.train.diffaugment import AdaController, Augmenter
from gandist.train.divergence import BadStepTracker
from gandist.train.ema import EmaUpdater
from gandist.train.goodput import GoodputClock, read_drill_record
from gandist.train.phases import Penalty, Phase, autocast, build_phases
from gandist.train.progress import Throughput
from gandist.train.schedule import gamma_at
from gandist.train.state import Healing, TrainState
from gandist.train.stats import Stats
from gandist.train.streams import adopt_layout
from gandist.train.tasks import SEMI_THRESHOLDS, GenerateTask, SegmentTask, Task, TranslateTask
from gandist.urls import is_local

log = logging.getLogger("gandist.train")


@dataclass
class Run:
    """One attempt at training a config on this rank: its state and what acts on it."""

    cfg: Config
    ctx: Context
    clock: GoodputClock  # rank 0's goodput ledger
    manifest: Manifest  # the training shard set
    classes: Optional[list[str]]
    state: TrainState  # everything a checkpoint holds
    resumed_from: Optional[int]  # the checkpoint's step; None for a fresh run
    schedule: CheckpointSchedule  # when to checkpoint
    gpu_path: accel.GPUPath
    G: nn.Module  # state.G and state.D in their DDP wrappers (one process: themselves)
    D: nn.Module
    augmenter: Optional[Augmenter]  # task.augment on D's inputs
    ada: Optional[AdaController]  # ADA's control of the augmenter's p
    task: Task
    amp: Callable[[], contextlib.AbstractContextManager]
    penalty: Optional[Penalty]
    phases: list[Phase]  # one step's D and G updates
    update_ema: EmaUpdater
    bad_steps: BadStepTracker  # non-finite steps
    watch: CollapseWatch  # collapses, rolled back
    monitor: NullMonitor  # TensorBoard on rank 0
    preview: Optional[Callable[[nn.Module], torch.Tensor]]  # rank 0's sample grid
    evaluator: Evaluator
    after_step: Optional[Callable[[int], None]]  # a faults.* drill's hook
    stats: Stats  # the window's statistics
    throughput: Throughput  # the window's perf/ figures
    global_batch: int
    augments: bool  # data.flips, crop_scale or load_scale: the batch is augmented on the device
    score_metric: tuple[str, str]  # the score that ranks checkpoints and its order
    last_ckpt: Optional[int] = None
    metrics: dict[str, float] = field(default_factory=dict)  # the latest logged values and scores


def start(cfg: Config, ctx: Context, clock: GoodputClock) -> Run:
    """Open the data, build or resume the state, and build the rest of the run around it."""
    t = cfg.trainer
    manifest, classes = open_data(cfg)
    state = TrainState.fresh(cfg, len(classes or []), ctx.device)
    seed_process(derive_seed(t.seed, "rank", ctx.rank))
    resumed_from, saved = resume(cfg, ctx, state, classes)
    clock.begin(resumed_from, saved.get("ledger"), ctx.world_size, read_drill_record(ctx.run_dir, faults.MARKER))
    schedule = CheckpointSchedule(t.ckpt_every, t.mtbf_hours, ctx.world_size, t.log_every, last_ckpt=state.step,
                                  saved=saved.get("ckpt_schedule"))
    adopt_data_layout(state, cfg, ctx)
    gpu_path = accel.prepare(cfg, ctx.device, state.G, state.D, uncompiled=(state.G_ema,))
    accel.match_optimizer_layout(state.opt_g, state.opt_d)  # resumed moments follow the new layout
    if ctx.is_chief and ctx.device.type == "cuda":
        log.info("GPU path: %s", gpu_path.describe())
    G, D = wrap_networks(state, ctx)
    augmenter, ada = make_augmentation(cfg, ctx, state)
    task = make_task(cfg, len(classes or []), augmenter)
    amp = autocast(ctx.device, gpu_path.amp)
    penalty = make_penalty(cfg, state.healing, images=lambda: state.images_seen)
    watch = CollapseWatch(cfg, state.healing, ctx)
    phases = build_phases(task, gan_loss(cfg.task.loss, cfg.task.d_loss_scale), G, D, state.opt_g, state.opt_d,
                          state.scaler_g, state.scaler_d, amp, penalty, bool(cfg.task.g_first))
    update_ema = EmaUpdater(state.G_ema, state.G)
    bad_steps = BadStepTracker(t.max_bad_steps, ctx.rank, ctx.is_chief)
    monitor = make_monitor(ctx.log_dir, purge_step=None if resumed_from is None else state.step + 1,
                           sync_to=remote_log_root(ctx), sync_interval=cfg.run.log_sync_s)
    monitor.hparams({**cfg.to_dict(), "in_effect": asdict(gpu_path)}, headline_tags(cfg))
    monitor.describe(tag_descriptions(cfg))
    preview = make_preview(cfg, ctx, manifest, task) if ctx.is_chief else None
    evaluator = Evaluator(cfg, manifest, ctx.rank, ctx.world_size, ctx.device, classes)
    after_step = faults.install(cfg, ctx, state, clock.flush)  # None unless a faults.* drill is configured
    global_batch = cfg.data.batch_size * ctx.world_size
    stats = Stats(ctx.device)
    augments = cfg.data.flips != Flips.none or cfg.data.crop_scale < 1 or cfg.data.load_scale > 1
    return Run(cfg, ctx, clock, manifest, classes, state, resumed_from, schedule, gpu_path, G, D, augmenter, ada,
               task, amp, penalty, phases, update_ema, bad_steps, watch, monitor, preview, evaluator, after_step,
               stats, Throughput(stats, global_batch, state.step, ctx.device), global_batch, augments,
               best_metric(cfg), last_ckpt=resumed_from)


def open_data(cfg: Config) -> tuple[Manifest, Optional[list[str]]]:
    """The training shard set's manifest and classes, refused now (with the fix) if it cannot
    train this config or shards are missing, not in the middle of an epoch; likewise the
    unlabeled set."""
    manifest = Manifest.load(cfg.data.url)
    classes = check_data_fits(cfg, manifest)
    manifest.check_shards("train")
    if cfg.data.unlabeled_url:
        unlabeled = Manifest.load(cfg.data.unlabeled_url)
        check_unlabeled_fits(cfg, unlabeled)
        unlabeled.check_shards("train")
    return manifest, classes


def adopt_data_layout(state: TrainState, cfg: Config, ctx: Context) -> None:
    """This run's layout of the data (world size, batch size, loader workers), for each stream."""
    t = cfg.trainer
    if ctx.is_chief and ctx.world_size != t.num_workers:
        log.info("Training on %d workers (elastic, up to trainer.num_workers=%d); the per-worker batch "
                 "stays data.batch_size=%d, so the global batch is %d", ctx.world_size, t.num_workers,
                 cfg.data.batch_size, cfg.data.batch_size * ctx.world_size)
    adopt_layout(cfg, state.data, state.unlabeled, ctx.world_size, ctx.is_chief)


def wrap_networks(state: TrainState, ctx: Context) -> tuple[nn.Module, nn.Module]:
    """G and D, each in its own DDP wrapper; every rank checked to hold the same weights; both
    frozen until a phase switches its own network on."""
    G = wrap_ddp(state.G, ctx, broadcast_buffers=True)
    # D is always in train mode, so its BN running statistics are never used: not broadcasting
    # them lets D run forward twice per step without in-place buffer updates between the two.
    D = wrap_ddp(state.D, ctx, broadcast_buffers=False)
    check_identical_across_ranks(state.G, state.D, state.G_ema)
    state.G.requires_grad_(False)
    state.D.requires_grad_(False)
    return G, D


def wrap_ddp(module: nn.Module, ctx: Context, broadcast_buffers: bool) -> nn.Module:
    """G and D each get their own DDP wrapper; one process keeps the plain module."""
    if ctx.world_size == 1:
        return module
    device_ids = [ctx.device] if ctx.device.type == "cuda" else None
    # Newer torch renames broadcast_buffers (buffers are synced at init either way).
    if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters:
        return DDP(module, device_ids=device_ids, forward_sync_buffers=broadcast_buffers)
    return DDP(module, device_ids=device_ids, broadcast_buffers=broadcast_buffers)


def make_penalty(cfg: Config, healing: Optional[Healing] = None,
                 images: Callable[[], int] = lambda: 0) -> Optional[Penalty]:
    """The gradient penalties task.gamma asks for (times what collapse rollbacks left), or None
    when they are off for the whole run. ``images``: the images seen before the step being
    taken (trainer.schedule_kimg counts its horizon in them)."""
    t = cfg.task
    if t.gamma == 0 and not t.gamma_final:
        return None
    healing = healing or Healing()
    return Penalty(gamma=lambda step: gamma_at(t, cfg.trainer, step, images()) * healing.gamma_scale,
                   every=t.penalty_every,
                   r2=t.penalty == PenaltyKind.r1_r2)


def make_augmentation(cfg: Config, ctx: Context, state: TrainState
                      ) -> tuple[Optional[Augmenter], Optional[AdaController]]:
    """task.augment's transforms of D's inputs and, with task.ada_target, ADA's controller of
    their probability (carried on from a resumed checkpoint)."""
    t = cfg.task
    if not t.augment:
        return None, None
    if t.ada_target is None:
        return Augmenter(list(t.augment), 1.0 if t.augment_p is None else t.augment_p, t.augment_color_p,
                         t.augment_p_kimg), None
    augmenter = Augmenter(list(t.augment), 0.0 if t.augment_p is None else t.augment_p, t.augment_color_p)
    ada = AdaController(augmenter, t.ada_target, t.ada_kimg, t.ada_interval, cfg.data.batch_size * ctx.world_size,
                        ctx.device)
    if state.ada:
        ada.load_state_dict(state.ada, ctx.rank)
    return augmenter, ada


def make_task(cfg: Config, num_classes: int, augmenter: Optional[Augmenter] = None) -> Task:
    if cfg.task.name == TaskName.generate:
        return GenerateTask(cfg.model.z_dim, augmenter, conditional=cfg.model.conditional, g_draw=str(cfg.task.g_draw))
    t = cfg.task
    if t.name == TaskName.translate:
        return TranslateTask(l1_weight=t.l1_weight, adv_weight=t.adv_weight)
    semi = str(t.semi)
    threshold = t.semi_threshold if t.semi_threshold is not None else SEMI_THRESHOLDS.get(semi, 0.0)
    return SegmentTask(num_classes, seg_loss=str(t.seg_loss), seg_weight=t.seg_weight, adv_weight=t.adv_weight,
                       d_input=str(t.d_input), d_image=t.d_image, scaling_tau=t.scaling_tau, semi=semi,
                       semi_weight=t.semi_weight, semi_start=round(t.semi_start * cfg.trainer.max_steps),
                       semi_threshold=threshold, adv_unlabeled_weight=t.adv_unlabeled_weight,
                       d_map_range=str(t.d_map_range), d_unlabeled=t.d_unlabeled)


def remote_log_root(ctx: Context) -> Optional[str]:
    """Where rank 0's logs are copied to: the run directory, when it is not on this machine."""
    if ctx.log_dir is None or ctx.run_dir is None:
        return None
    if is_local(ctx.run_dir):
        return None  # local storage: the logs are written in the run directory itself
    return ctx.run_dir


def make_preview(cfg: Config, ctx: Context, manifest: Manifest, task: Task) -> Callable[[nn.Module], torch.Tensor]:
    """Rank 0's fixed inputs for image grids, so successive grids compare."""
    if task.name == TaskName.generate:
        gen = torch.Generator().manual_seed(derive_seed(cfg.trainer.seed, "preview"))
        conditional = cfg.model.conditional
        z = torch.randn(8 if conditional else 64, cfg.model.z_dim, generator=gen).to(ctx.device)

        @torch.no_grad()
        def sample_grid(G_ema: nn.Module) -> torch.Tensor:
            if conditional:
                return class_grid(G_ema, z, manifest.labels or [])
            return grid(to_unit(G_ema(z)), nrow=8)

        return sample_grid

    split = cfg.data.eval_split if cfg.data.eval_split in manifest.splits else "train"
    count = min(8, manifest.samples(split))
    loader = epoch_loader(cfg.data.url, split=split, batch_size=count, rank=0, world_size=1,
                          num_workers=0, epoch=0, seed=cfg.trainer.seed, shuffle=False)
    fixed = to_device(next(iter(loader)), ctx.device, accel.channels_last(cfg, ctx.device))

    @torch.no_grad()
    def triplets(G_ema: nn.Module) -> torch.Tensor:
        if task.name == TaskName.translate:
            return translate_triplets(fixed["image"], fixed["target"], G_ema(fixed["image"]))
        pred = G_ema(fixed["image"]).argmax(dim=1)
        return segment_triplets(fixed["image"], fixed["mask"], pred, manifest.classes)

    return triplets
