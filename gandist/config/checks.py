"""What types cannot express: ranges, and rules between keys. One check per section, then the
rules that span sections; each error names the value and says how to fix it.

Choice fields need no check here: they are enums, rejected when the config is built.
"""

from __future__ import annotations

import re
from typing import Callable, Optional
from urllib.parse import urlparse

from gandist.config.choices import (ADA_AUGMENT_OPS, AUGMENT_OPS, DIFFAUGMENT_OPS, Arch, DArch, Features, LauncherName,
                                    LossName, Semi, TaskName)
from gandist.config.schema import Config, TaskConfig
from gandist.config.scores import check_score_fits, score_order


class ConfigError(ValueError):
    """A configuration value is wrong; the message names it and says how to fix it."""


# The architectures each task trains; the first is its default (configs/task/<task>.yaml).
ARCHS_FOR_TASK = {TaskName.generate: (Arch.dcgan, Arch.r3gan), TaskName.segment: (Arch.unet, Arch.pix2pix),
                  TaskName.translate: (Arch.pix2pix, Arch.unet)}
SEGMENTERS = ARCHS_FOR_TASK[TaskName.segment]


def _positive(section: object, prefix: str, *names: str, allow_zero: bool = False) -> None:
    for name in names:
        value = getattr(section, name)
        if value < 0 or (value == 0 and not allow_zero):
            raise ConfigError(f"{prefix}.{name}={value} must be {'>= 0' if allow_zero else '> 0'}")


def _fraction(key: str, value: float, closed: bool = False) -> None:
    """``value`` in [0, 1) (or [0, 1] when ``closed``)."""
    if not (0 <= value <= 1 if closed else 0 <= value < 1):
        raise ConfigError(f"{key}={value} must be in [0, {'1]' if closed else '1)'}")


def check_augment_families(t: TaskConfig, ops: list) -> None:
    """One family of ops per list, and one rule for p. The ramp and the colour multiplier do nothing
    without ops to act on, and are allowed then: `task.augment=[]` alone turns a preset's
    augmentation (model=r3gan's) off."""
    diffaugment_only = [op for op in ops if op in DIFFAUGMENT_OPS and op not in ADA_AUGMENT_OPS and op != "cutout"]
    ada = [op for op in ops if op in ADA_AUGMENT_OPS]
    if diffaugment_only and ada:
        raise ConfigError(f"task.augment={ops} mixes DiffAugment's {', '.join(diffaugment_only)} with ADA's "
                          f"{', '.join(ada)}; use one family, e.g. task.augment=[color,translation,cutout] "
                          "(DiffAugment) or task.augment=[bgc,cutout] (ADA's pipeline, as R3GAN)")
    if t.augment_p_kimg is not None:
        if t.augment_p_kimg <= 0:
            raise ConfigError(f"task.augment_p_kimg={t.augment_p_kimg} must be > 0 (or null for a constant p)")
        if t.ada_target is not None:
            raise ConfigError(f"task.augment_p_kimg={t.augment_p_kimg} (a fixed ramp, R3GAN) and task.ada_target="
                              f"{t.ada_target} (ADA's controller) both set p; keep one, the other null")
    if t.augment_color_p < 0:
        raise ConfigError(f"task.augment_color_p={t.augment_color_p} must be >= 0")


def check_task(cfg: Config) -> None:
    t = cfg.task
    _positive(t, "task", "seg_weight", "adv_weight", "l1_weight", "semi_weight", "adv_unlabeled_weight", "gamma", allow_zero=True)
    _positive(t, "task", "penalty_every", "ada_kimg", "ada_interval", "d_loss_scale")
    _fraction("task.semi_start", t.semi_start)
    if t.semi_threshold is not None:
        _fraction("task.semi_threshold", t.semi_threshold)
    if t.semi == Semi.adversarial and t.adv_weight == 0:
        raise ConfigError("task.semi=adversarial takes pseudo-labels from D's confidence map, but task.adv_weight=0 "
                          "trains no D; set task.adv_weight>0 (e.g. 0.01) or use task.semi=self_training")
    if t.gamma_final is not None and t.gamma_final < 0:
        raise ConfigError(f"task.gamma_final={t.gamma_final} must be >= 0 (or null for a constant task.gamma)")
    ops = list(t.augment)
    unknown = [op for op in ops if op not in AUGMENT_OPS]
    if unknown:
        raise ConfigError(f"task.augment={ops}: unknown augmentation {', '.join(map(str, unknown))}; choose from "
                          f"{', '.join(AUGMENT_OPS)}, as a list: task.augment=[color,translation,cutout] (DiffAugment) or "
                          "task.augment=[bgc,cutout] (ADA's pipeline)")
    if ops and t.name != TaskName.generate:
        raise ConfigError(f"task.augment={t.augment} augments what a generation D sees; task={t.name} has "
                          "data.flips and data.crop_scale (the same for image and mask) instead")
    if t.augment_p is not None:
        _fraction("task.augment_p", t.augment_p, closed=True)
    check_augment_families(t, ops)
    if t.ada_target is not None:
        if not ops:
            raise ConfigError(f"task.ada_target={t.ada_target} adapts the augmentation probability, but "
                              "task.augment is empty; set task.augment=[color,translation,cutout] or task.ada_target=null")
        if not -1 < t.ada_target < 1:
            raise ConfigError(f"task.ada_target={t.ada_target} must be in (-1, 1): r_t is a mean of signs "
                              "(StyleGAN2-ADA uses 0.6)")
    if t.loss == LossName.rpgan and t.name == TaskName.segment:
        raise ConfigError("task.loss=rpgan pairs each real image with a generated one (task=generate or translate); "
                          "task=segment uses task.loss=nonsat, hinge or lsgan")
    if not 0 < t.scaling_tau <= 1:
        raise ConfigError(f"task.scaling_tau={t.scaling_tau} must be in (0, 1]")
    if t.name == TaskName.segment and t.seg_weight == 0 and t.adv_weight == 0:
        raise ConfigError("task.seg_weight=0 and task.adv_weight=0 leave G nothing to learn from; "
                          "set task.seg_weight=1 (supervised) and/or task.adv_weight>0 (adversarial)")
    if t.name != TaskName.translate and t.l1_weight != TaskConfig().l1_weight:
        raise ConfigError(f"task.l1_weight={t.l1_weight} weighs translate's L1 term; task={t.name} does not use it"
                          + (" (segment's L1 loss is task.seg_loss=l1 with task.seg_weight)" if t.name == TaskName.segment
                             else ""))
    if t.name == TaskName.translate and t.l1_weight == 0 and t.adv_weight == 0:
        raise ConfigError("task.l1_weight=0 and task.adv_weight=0 leave G nothing to learn from; set "
                          "task.l1_weight=100 (pix2pix) and/or task.adv_weight>0")


def check_model(cfg: Config) -> None:
    m = cfg.model
    _positive(m, "model", "z_dim", "g_width", "d_width", "d_layers")
    _positive(m, "model", "g_refine", allow_zero=True)
    _fraction("model.dropout", m.dropout)
    if m.arch == Arch.dcgan and m.resolution not in (32, 64):
        raise ConfigError(f"model.resolution={m.resolution}: dcgan supports 32 or 64")
    if m.arch == Arch.pix2pix and (m.resolution < 16 or m.resolution & (m.resolution - 1)):
        raise ConfigError(f"model.resolution={m.resolution}: pix2pix needs a power of two >= 16")
    if m.arch == Arch.unet and m.resolution % 16:
        raise ConfigError(f"model.resolution={m.resolution}: unet max-pools 4 times and needs a multiple of 16")
    if m.arch == Arch.r3gan:
        check_r3gan(cfg)
    if m.conditional and cfg.task.name != TaskName.generate:
        raise ConfigError(f"model.conditional=true conditions a generator on image labels (task=generate); "
                          f"task={cfg.task.name} is conditioned on its input image already: set model.conditional=false")
    if m.d_arch == DArch.pixel:
        if m.arch not in SEGMENTERS:
            raise ConfigError(f"model.d_arch=pixel is a segmentation D (model.arch=unet or pix2pix); "
                              f"model.arch={m.arch} has its own D: set model.d_arch=patch")
        if m.d_stride is not None:
            top = 2 ** (m.d_layers + 2)
            if m.d_stride < 1 or m.d_stride & (m.d_stride - 1) or m.d_stride > min(top, m.resolution):
                raise ConfigError(f"model.d_stride={m.d_stride} must be a power of two up to "
                                  f"{min(top, m.resolution)} (model.d_layers={m.d_layers} gives D "
                                  f"{m.d_layers + 2} layers, model.resolution={m.resolution}); or null to follow "
                                  "the resolution")
    elif m.d_stride is not None:
        raise ConfigError(f"model.d_stride={m.d_stride} is the pixel D's output stride; set model.d_arch=pixel "
                          "or model.d_stride=null")


# A semi-supervised D's confidence map must say which pixels to trust, not which images.
MIN_CONFIDENCE_MAP = 8


def pixel_d_stride(resolution: int, d_layers: int, d_stride: Optional[int]) -> int:
    """The pixel D's output stride: ``d_stride``, or Hung et al.'s 32 (their D's 5 stride-2
    layers) where the map keeps MIN_CONFIDENCE_MAP cells a side, else the largest power of two
    that does (resolution / 8), at most 2^(d_layers + 2) (D's layers)."""
    if d_stride is not None:
        return d_stride
    stride = min(32, 2 ** (d_layers + 2), max(1, resolution // MIN_CONFIDENCE_MAP))
    return 1 << (stride.bit_length() - 1)


def d_map_side(cfg: Config) -> int:
    """Cells per side of a segmentation D's map before it is upsampled (pixel D) or averaged (PatchGAN)."""
    m = cfg.model
    if m.d_arch == DArch.pixel:
        return m.resolution // pixel_d_stride(m.resolution, m.d_layers, m.d_stride)
    # PatchGAN: d_layers halvings, then two 4x4 stride-1 convs that each take one cell off.
    return m.resolution // 2 ** m.d_layers - 2


def check_r3gan(cfg: Config) -> None:
    m = cfg.model
    _positive(m, "model", "blocks", "expansion", "group_channels")
    if m.resolution not in (32, 64, 128, 256):
        raise ConfigError(f"model.resolution={m.resolution}: r3gan supports 32, 64, 128 or 256")
    stages = m.resolution.bit_length() - 2
    if m.stage_widths is not None and len(m.stage_widths) != stages:
        raise ConfigError(f"model.stage_widths={list(m.stage_widths)} has {len(m.stage_widths)} entries; "
                          f"model.resolution={m.resolution} has {stages} stages (4x4 up to {m.resolution}): "
                          f"give {stages} widths, lowest resolution first")
    widths = list(m.stage_widths) if m.stage_widths is not None else [m.g_width, m.d_width]
    for w in widths:
        if w <= 0 or (w * m.expansion) % m.group_channels:
            raise ConfigError(f"r3gan width {w} x model.expansion={m.expansion} must be a positive multiple of "
                              f"model.group_channels={m.group_channels} (the grouped conv's group size); "
                              "change the width or model.group_channels")


def check_data(cfg: Config) -> None:
    _positive(cfg.data, "data", "batch_size")
    _positive(cfg.data, "data", "loader_workers", "shuffle_buffer", allow_zero=True)
    _fraction("data.max_bad_fraction", cfg.data.max_bad_fraction, closed=True)
    if not 0 < cfg.data.crop_scale <= 1:
        raise ConfigError(f"data.crop_scale={cfg.data.crop_scale} must be in (0, 1] (1 = no crops)")
    if not 1 <= cfg.data.load_scale <= 2:
        raise ConfigError(f"data.load_scale={cfg.data.load_scale} must be in [1, 2] (1 = no resize-and-crop; "
                          "pix2pix: 1.1171875)")
    if not 0 < cfg.data.label_fraction <= 1:
        raise ConfigError(f"data.label_fraction={cfg.data.label_fraction} must be in (0, 1] (1 = every mask)")


def check_trainer(cfg: Config) -> None:
    t = cfg.trainer
    _positive(t, "trainer", "num_workers", "max_steps", "keep_checkpoints", "log_every",
              "image_every", "lr_g", "lr_d", "max_bad_steps", "mtbf_hours")
    if t.ckpt_every != "auto" and (isinstance(t.ckpt_every, str) or t.ckpt_every <= 0):
        raise ConfigError(f"trainer.ckpt_every={t.ckpt_every!r} must be a number of steps > 0, or auto (the "
                          "Young-Daly interval from the measured checkpoint stall and trainer.mtbf_hours)")
    _positive(t, "trainer", "ema_kimg", "ema_rampup", "max_failures", "keep_best", allow_zero=True)
    if t.best_metric is not None:
        try:
            score_order(t.best_metric)
            check_score_fits(cfg, t.best_metric)
        except ValueError as e:
            raise ConfigError(f"trainer.best_metric={t.best_metric}: {e}") from None
    _fraction("trainer.lr_decay_start", t.lr_decay_start)
    if t.schedule_kimg is not None and t.schedule_kimg <= 0:
        raise ConfigError(f"trainer.schedule_kimg={t.schedule_kimg} must be a number of thousands of images > 0 "
                          "(R3GAN's CIFAR-10: 20000), or null to decay the schedules over trainer.max_steps")
    _fraction("trainer.beta1", t.beta1)
    _fraction("trainer.beta2", t.beta2)
    if t.beta2_final is not None:
        _fraction("trainer.beta2_final", t.beta2_final)
    for key in ("d_beta1", "d_beta2"):
        if getattr(t, key) is not None:
            _fraction(f"trainer.{key}", getattr(t, key))
    _fraction("trainer.lr_final", t.lr_final, closed=True)
    if t.min_workers is not None and not 1 <= t.min_workers <= t.num_workers:
        raise ConfigError(f"trainer.min_workers={t.min_workers} must be between 1 and "
                          f"trainer.num_workers={t.num_workers} (or null for a fixed worker count)")


def check_eval(cfg: Config) -> None:
    _positive(cfg.eval, "eval", "every", "samples")
    _positive(cfg.eval, "eval", "batches", "bn_batches", allow_zero=True)
    if cfg.eval.g_mode == "train_mode" and cfg.task.name == TaskName.generate:
        raise ConfigError("eval.g_mode=train_mode is pix2pix's test mode (segment, translate: one image at a time, "
                          "batch statistics, dropout on); task=generate scores EMA G: set eval.g_mode=ema")
    if cfg.eval.features == Features.inception and not cfg.eval.inception_weights:
        raise ConfigError("eval.features=inception needs eval.inception_weights=PATH to the FID Inception weights "
                          "(pt_inception-2015-12-05-6726825d.pth, copied to the machine; gandist downloads "
                          "nothing), or use eval.features=randconv")
    if cfg.eval.segmenter and cfg.task.name != TaskName.translate:
        raise ConfigError(f"eval.segmenter={cfg.eval.segmenter} scores translated images (task=translate); "
                          f"task={cfg.task.name} has its own scores: set eval.segmenter=null")


def check_run(cfg: Config) -> None:
    _positive(cfg.run, "run", "log_sync_s")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", cfg.run.name):
        raise ConfigError(
            f"run.name={cfg.run.name!r} must start with a letter or digit and use only letters, "
            "digits, '_', '.', '-' (it names a directory)"
        )


def _password(url: Optional[str]) -> Optional[str]:
    """The password a URL carries in its user-info part (scheme://user:password@host), if any."""
    if not url or "://" not in url:
        return None
    try:
        return urlparse(url).password
    except ValueError:
        return None


def check_no_secrets(cfg: Config) -> None:
    """A config travels to every worker, into checkpoints, TensorBoard and logs: no URL in it
    may carry a password (the message shows the key, never the URL)."""
    for key, url in (("data.url", cfg.data.url), ("data.unlabeled_url", cfg.data.unlabeled_url),
                     ("run.storage", cfg.run.storage),
                     ("storage.endpoint_url", cfg.storage.endpoint_url),
                     ("launcher.ray_address", cfg.launcher.ray_address)):
        if _password(url):
            raise ConfigError(f"{key} carries a password (user:password@ in the URL); gandist would copy it into "
                              "the config, checkpoints and logs. Remove it and give credentials through each "
                              "process's environment or a profile (docs/data.md: Credentials)")


def check_faults(cfg: Config) -> None:
    f, workers = cfg.faults, cfg.trainer.num_workers
    for key, rank in (("faults.kill_rank", f.kill_rank), ("faults.nan_rank", f.nan_rank)):
        if rank is not None and not 0 <= rank < workers:
            raise ConfigError(f"{key}={rank} is not a rank of trainer.num_workers={workers} workers "
                              f"(0..{workers - 1})")
    if f.kill_rank is not None and f.at_step < 1:
        raise ConfigError(f"faults.at_step={f.at_step} must be a step >= 1 for the fault drill")
    if f.nan_rank is not None and (f.nan_at_step < 1 or f.nan_steps < 1):
        raise ConfigError(f"faults.nan_at_step={f.nan_at_step} and faults.nan_steps={f.nan_steps} "
                          "must both be >= 1 for the divergence drill")
    if f.collapse_at_step is not None and f.collapse_at_step < 1:
        raise ConfigError(f"faults.collapse_at_step={f.collapse_at_step} must be a step >= 1 for the collapse drill")


def check_collapse(cfg: Config) -> None:
    c = cfg.collapse
    _positive(c, "collapse", "gap_limit", "window", "patience", "lr_factor", "gamma_factor")
    if c.rt_limit is not None and not 0 < c.rt_limit <= 1:
        raise ConfigError(f"collapse.rt_limit={c.rt_limit} must be in (0, 1] (r_t is a mean of signs), or null")
    _positive(c, "collapse", "metric_margin", allow_zero=True)
    _positive(cfg.trainer, "trainer", "max_rollbacks", allow_zero=True)
    if c.lr_factor > 1:
        raise ConfigError(f"collapse.lr_factor={c.lr_factor} would raise the learning rates at a rollback; use a "
                          "factor in (0, 1], e.g. 0.5")
    if c.gamma_factor < 1:
        raise ConfigError(f"collapse.gamma_factor={c.gamma_factor} would lower the gradient penalty at a rollback; "
                          "use 1 (keep it) or more, e.g. 2")


def check_arch_fits_task(cfg: Config) -> None:
    """First: a model preset for another task (model=r3gan under task=segment) brings keys of that
    task, and the mismatch of the two is the error worth naming."""
    fits = ARCHS_FOR_TASK[cfg.task.name]
    if cfg.model.arch not in fits:
        other = next(task for task, archs in ARCHS_FOR_TASK.items() if cfg.model.arch in archs)
        raise ConfigError(f"model.arch={cfg.model.arch.value!r} does not fit task.name={cfg.task.name.value!r}; "
                          f"use model={' or model='.join(map(str, fits))} (or task={other})")


def check_across_sections(cfg: Config) -> None:
    if cfg.task.g_draw != "shared" and cfg.task.name != TaskName.generate:
        raise ConfigError(f"task.g_draw={cfg.task.g_draw} draws G's noise anew for its phase (task=generate); "
                          f"task={cfg.task.name} feeds G an image: set task.g_draw=shared")
    check_unlabeled_data(cfg)
    if cfg.task.semi == Semi.adversarial and d_map_side(cfg) < MIN_CONFIDENCE_MAP:
        side = d_map_side(cfg)
        raise ConfigError(f"task.semi=adversarial reads D's confidence map per pixel, but model.d_arch="
                          f"{cfg.model.d_arch} at model.resolution={cfg.model.resolution} gives a {side}x{side} map, "
                          f"coarser than {MIN_CONFIDENCE_MAP}x{MIN_CONFIDENCE_MAP}: whole image regions would pass "
                          "or fail together. Set model.d_arch=pixel with model.d_stride=null (the stride then "
                          f"follows the resolution) or a model.d_stride of at most "
                          f"{max(1, cfg.model.resolution // MIN_CONFIDENCE_MAP)}")
    launcher, t = cfg.launcher.name, cfg.trainer
    if t.min_workers is not None and launcher != LauncherName.ray:
        raise ConfigError(f"trainer.min_workers={t.min_workers} needs launcher.name=ray (elastic training "
                          f"is Ray Train's); set trainer.min_workers=null for launcher.name={launcher}")
    if launcher == LauncherName.local and t.num_workers != 1:
        raise ConfigError(f"launcher.name=local runs one process, but trainer.num_workers={t.num_workers}; "
                          "set trainer.num_workers=1 or use launcher.name=ray")


def check_unlabeled_data(cfg: Config) -> None:
    """task.semi needs unlabeled images, and unlabeled images need task.semi."""
    d, semi = cfg.data, cfg.task.semi
    if (semi != Semi.none or d.unlabeled_url or d.label_fraction < 1) and cfg.task.name != TaskName.segment:
        raise ConfigError("task.semi, data.unlabeled_url and data.label_fraction are for task=segment; "
                          f"task={cfg.task.name} uses every image as it is")
    if semi != Semi.none and not d.unlabeled_url and d.label_fraction == 1:
        raise ConfigError(f"task.semi={semi} learns from unlabeled images, but there are none: set "
                          "data.unlabeled_url=<shard set> or data.label_fraction<1 (e.g. 0.125)")
    if d.unlabeled_url and semi == Semi.none:
        raise ConfigError(f"data.unlabeled_url={d.unlabeled_url} is read only by semi-supervised training; set "
                          "task.semi=adversarial or task.semi=self_training, or data.unlabeled_url=null")
    if d.unlabeled_url and d.label_fraction < 1:
        raise ConfigError(f"data.unlabeled_url and data.label_fraction={d.label_fraction} both name the "
                          "unlabeled images; use one (set data.label_fraction=1 or data.unlabeled_url=null)")


CHECKS: list[Callable[[Config], None]] = [check_arch_fits_task, check_task, check_model, check_data, check_trainer, check_eval,
                                          check_run, check_no_secrets, check_faults, check_collapse,
                                          check_across_sections]


def validate(cfg: Config) -> Config:
    """Run every section's check, then the rules between sections; return ``cfg`` unchanged."""
    for check in CHECKS:
        check(cfg)
    return cfg
