"""The configuration schema: dataclasses whose fields each carry a default and a one-line doc.

Hydra (in ``cli.py``) composes YAML from ``configs/`` and command-line overrides on top of
this schema, which rejects unknown keys and ill-typed values. ``validate`` then checks what
types cannot express. Workers receive a plain dict and rebuild the dataclass with
``from_dict``, so nothing below ``cli.py`` and ``dist/`` touches Hydra.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional, Sequence

TASKS = ("generate", "segment")
ARCH_FOR_TASK = {"generate": "dcgan", "segment": "pix2pix"}
LOSSES = ("nonsat", "hinge", "lsgan")
LAUNCHERS = ("ray", "torchrun", "local")
AMP_MODES = ("auto", "off", "bf16", "fp16")
LR_SCHEDULES = ("constant", "linear")
FEATURES = ("randconv", "inception")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names it and says how to fix it."""


def doc(default: Any, help: str) -> Any:
    """A dataclass field with a default and its one-line documentation."""
    return field(default=default, metadata={"help": help})


@dataclass
class TaskConfig:
    name: str = doc("generate", "what to train: generate (noise to image) | segment (image to mask, pix2pix)")
    loss: str = doc("nonsat", "adversarial loss: nonsat (non-saturating) | hinge | lsgan (least squares)")
    l1_weight: float = doc(100.0, "segment: weight of the L1 loss between predicted and true masks")


@dataclass
class ModelConfig:
    arch: str = doc("dcgan", "network pair: dcgan (generate) | pix2pix (U-Net G + PatchGAN D, segment)")
    resolution: int = doc(64, "image side in pixels; must equal the shard set's image_size")
    z_dim: int = doc(128, "generate: length of the noise vector")
    g_width: int = doc(64, "generator base channel count")
    d_width: int = doc(64, "discriminator base channel count")
    dropout: float = doc(0.5, "pix2pix: dropout in the three innermost U-Net decoder blocks")
    d_layers: int = doc(3, "pix2pix: PatchGAN stride-2 layers (3 gives the 70x70 PatchGAN)")


@dataclass
class DataConfig:
    url: str = doc("runs/data/shapes", "shard set written by `gandist shard` (local path or fsspec URL)")
    batch_size: int = doc(32, "samples per worker per step (global batch = this x trainer.num_workers)")
    loader_workers: int = doc(2, "DataLoader processes per training worker (0 reads in the training process)")
    shuffle_buffer: int = doc(256, "samples held by each loader worker's shuffle buffer")
    eval_split: str = doc("heldout", "shard-set split used for evaluation")
    classes: Optional[list[str]] = doc(None, "segment: the classes the shard set must have, in order (null = any)")
    max_bad_fraction: float = doc(0.01, "corrupt samples a loader worker skips (fraction of its part) before failing")
    pin_memory: Optional[bool] = doc(None, "batches in pinned host memory, copied to the GPU without blocking; "
                                     "null = on GPU")


@dataclass
class TrainerConfig:
    num_workers: int = doc(2, "DDP training workers (processes); one per GPU on GPU nodes")
    min_workers: Optional[int] = doc(None, "ray: elastic, start with as few as this many workers when no more "
                                     "fit, up to trainer.num_workers; null = exactly trainer.num_workers")
    use_gpu: Optional[bool] = doc(None, "train on GPUs; null = use them when the cluster has any")
    max_steps: int = doc(2000, "optimisation steps to train for (one step = D update + G update)")
    ckpt_every: int = doc(500, "steps between checkpoints (a checkpoint is also written at the end)")
    keep_checkpoints: int = doc(3, "how many recent checkpoints to keep")
    log_every: int = doc(20, "steps between scalar logs (losses, throughput)")
    image_every: int = doc(250, "steps between image grids in TensorBoard")
    lr_g: float = doc(2e-4, "generator Adam learning rate")
    lr_d: float = doc(2e-4, "discriminator Adam learning rate")
    lr_schedule: str = doc("constant", "constant | linear (pix2pix: constant, then linear decay to 0 at max_steps)")
    lr_decay_start: float = doc(0.5, "linear schedule: fraction of trainer.max_steps after which the decay begins")
    beta1: float = doc(0.5, "Adam beta1 (pix2pix/DCGAN use 0.5)")
    beta2: float = doc(0.999, "Adam beta2")
    ema_kimg: float = doc(10.0, "half-life of the generator EMA, in thousands of images")
    ema_rampup: float = doc(0.05, "EMA half-life is at most this fraction of images seen (0 = off)")
    seed: int = doc(0, "the one seed; every other seed is derived from it")
    max_failures: int = doc(0, "worker-group restarts Ray Train may make after a failure")
    amp: str = doc("auto", "mixed precision: auto (bf16 on GPUs that support it, else off) | off | bf16 (autocast) "
                   "| fp16 (autocast + one grad scaler per network)")
    channels_last: Optional[bool] = doc(None, "channels-last (NHWC) networks and batches; null = on GPU")
    cudnn_benchmark: bool = doc(True, "GPU: let cuDNN time and pick the fastest convolution algorithms")
    fused_adam: bool = doc(True, "Adam's update as one fused kernel per network (torch's fused=True, CPU and GPU); "
                           "false = torch's default implementation")
    compile: bool = doc(False, "torch.compile G and D (faster steps after minutes of compiling at the start)")
    max_bad_steps: int = doc(5, "non-finite loss or gradient: skip the step on every rank; stop after this many in a row")
    async_checkpoint: bool = doc(False, "ray: upload checkpoints in the background instead of waiting for the upload")


@dataclass
class EvalConfig:
    every: int = doc(250, "steps between evaluations of EMA G (also at the end), split across all workers")
    batches: int = doc(16, "segment: held-out batches evaluated per worker (0 = the whole split)")
    samples: int = doc(1024, "generate: images generated per evaluation, compared with as many real held-out images")
    features: str = doc("randconv", "generate: feature extractor for the distances: randconv (offline, fixed random "
                        "conv net: tags eval/fd_randconv, eval/kd_randconv) | inception (FID/KID, needs "
                        "eval.inception_weights)")
    inception_weights: Optional[str] = doc(None, "path or URL of pt_inception-2015-12-05-6726825d.pth (the standard "
                                           "FID Inception weights; never downloaded)")


@dataclass
class StorageConfig:
    endpoint_url: Optional[str] = doc(None, "S3-compatible endpoint (e.g. MinIO); null = AWS or local files")
    profile: Optional[str] = doc(None, "AWS credentials profile (~/.aws/credentials); null = AWS_* variables")


@dataclass
class RunConfig:
    name: str = doc("gandist", "run name; running again with the same name resumes from its checkpoints")
    storage: str = doc("runs/store", "where runs live: <storage>/<name> holds checkpoints and TensorBoard logs")
    log_sync_s: float = doc(30.0, "remote run.storage: seconds between background uploads of TensorBoard logs "
                            "and sample grids (also uploaded at the end)")


@dataclass
class DistConfig:
    launcher: str = doc("ray", "ray (Ray Train workers) | torchrun (one process per rank) | local (one process)")
    ray_address: Optional[str] = doc(None, "Ray cluster to join; null = RAY_ADDRESS, else a new local cluster")
    backend: str = doc("auto", "collective backend: auto (nccl on GPU, gloo on CPU) | gloo | nccl")
    socket_ifname: Optional[str] = doc(None, "network interface every worker's collectives bind to (sets "
                                       "GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME), e.g. eth0; needed across "
                                       "nodes whose hostname resolves to 127.0.0.1; null = gloo/NCCL choose")


@dataclass
class FaultsConfig:
    kill_rank: Optional[int] = doc(None, "fault drill: this rank SIGKILLs its own process (once per run); null = off")
    at_step: int = doc(0, "fault drill: the step after which trainer rank faults.kill_rank dies")
    nan_rank: Optional[int] = doc(None, "divergence drill: this rank's losses become NaN; null = off")
    nan_at_step: int = doc(0, "divergence drill: the first step (1-based) with NaN losses on faults.nan_rank")
    nan_steps: int = doc(1, "divergence drill: how many steps in a row have NaN losses")


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    run: RunConfig = field(default_factory=RunConfig)
    dist: DistConfig = field(default_factory=DistConfig)
    faults: FaultsConfig = field(default_factory=FaultsConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# Keys that moved, old -> new: configs saved in older checkpoints and exports still load,
# and the CLI names the new key for an old override.
RENAMED = {"trainer.eval_every": "eval.every", "trainer.eval_batches": "eval.batches"}


def upgrade(data: dict) -> dict:
    """A config dict from an older gandist, with renamed keys moved to their new place."""
    data = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for old, new in RENAMED.items():
        (old_sec, old_key), (new_sec, new_key) = old.split("."), new.split(".")
        if isinstance(data.get(old_sec), dict) and old_key in data[old_sec]:
            data.setdefault(new_sec, {})[new_key] = data[old_sec].pop(old_key)
    return data


def from_dict(data: dict, cls: type = Config, path: str = "") -> Any:
    """Rebuild a config dataclass from a plain dict, rejecting keys the schema lacks."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or 'config'} must be a mapping, got {data!r}")
    if cls is Config:
        data = upgrade(data)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        where = f"{path}." if path else ""
        raise ConfigError(
            f"unknown config key {where}{unknown[0]}; valid keys here: {', '.join(sorted(known))}"
        )
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = from_dict(value, hint, f"{path}.{name}" if path else name)
        values[name] = value
    return cls(**values)


def iter_fields(cls: type = Config, prefix: str = "") -> Iterator[tuple[str, str, Any, str]]:
    """(dotted key, type name, default, doc) for every leaf field, for `--help`."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint):
            yield from iter_fields(hint, key + ".")
        else:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            if typing.get_origin(hint) is typing.Union and len(args) == 1:
                type_name = f"{getattr(args[0], '__name__', str(args[0]))} or null"  # Optional[X]
            else:
                type_name = hint.__name__
            yield key, type_name, f.default, f.metadata.get("help", "")


def check_override_keys(overrides: Sequence[str], groups: Sequence[str]) -> None:
    """Name an unknown key (and the nearest valid ones) before Hydra's generic message."""
    keys = [k for k, *_ in iter_fields()]
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value, e.g. trainer.max_steps=200")
        key = item.split("=", 1)[0].lstrip("+~")
        if "." not in key:
            if key not in groups:
                raise ConfigError(f"unknown config group {key!r}; groups are {', '.join(groups)} "
                                  "(other settings are section.key=value, see gandist train --help)")
            continue
        if key in RENAMED:
            raise ConfigError(f"config key {key!r} is now {RENAMED[key]!r}; write {RENAMED[key]}={item.split('=', 1)[1]}")
        if key not in keys:
            close = difflib.get_close_matches(key, keys, n=3)
            hint = f"; did you mean {' or '.join(close)}?" if close else "; see gandist train --help"
            raise ConfigError(f"unknown config key {key!r}{hint}")


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}; set {key}=<one of those>")


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{key}={value} must be {bound}")


def validate(cfg: Config) -> Config:
    """Check what types cannot express; raise ConfigError naming the value and the fix."""
    _choice("task.name", cfg.task.name, TASKS)
    _choice("task.loss", cfg.task.loss, LOSSES)
    _choice("dist.launcher", cfg.dist.launcher, LAUNCHERS)
    _choice("dist.backend", cfg.dist.backend, ("auto", "gloo", "nccl"))
    _choice("trainer.amp", cfg.trainer.amp, AMP_MODES)
    _choice("trainer.lr_schedule", cfg.trainer.lr_schedule, LR_SCHEDULES)
    _choice("eval.features", cfg.eval.features, FEATURES)
    if cfg.eval.features == "inception" and not cfg.eval.inception_weights:
        raise ConfigError("eval.features=inception needs eval.inception_weights=PATH to the FID Inception weights "
                          "(pt_inception-2015-12-05-6726825d.pth, copied to the machine; gandist downloads "
                          "nothing), or use eval.features=randconv")
    want = ARCH_FOR_TASK[cfg.task.name]
    if cfg.model.arch != want:
        raise ConfigError(
            f"model.arch={cfg.model.arch!r} does not fit task.name={cfg.task.name!r}; "
            f"use model={want} (or task={'generate' if want == 'pix2pix' else 'segment'})"
        )
    if cfg.model.arch == "dcgan" and cfg.model.resolution not in (32, 64):
        raise ConfigError(f"model.resolution={cfg.model.resolution}: dcgan supports 32 or 64")
    res = cfg.model.resolution
    if cfg.model.arch == "pix2pix" and (res < 16 or res & (res - 1)):
        raise ConfigError(f"model.resolution={res}: pix2pix needs a power of two >= 16")
    for key in ("model.z_dim", "model.g_width", "model.d_width", "model.d_layers",
                "data.batch_size", "trainer.num_workers", "trainer.max_steps",
                "trainer.ckpt_every", "trainer.keep_checkpoints", "trainer.log_every",
                "trainer.image_every", "eval.every", "eval.samples", "trainer.lr_g", "trainer.lr_d",
                "run.log_sync_s"):
        section, name = key.split(".")
        _positive(key, getattr(getattr(cfg, section), name))
    if not 0 <= cfg.trainer.lr_decay_start < 1:
        raise ConfigError(f"trainer.lr_decay_start={cfg.trainer.lr_decay_start} must be in [0, 1)")
    _positive("trainer.max_bad_steps", cfg.trainer.max_bad_steps)
    t = cfg.trainer
    if t.min_workers is not None and not 1 <= t.min_workers <= t.num_workers:
        raise ConfigError(f"trainer.min_workers={t.min_workers} must be between 1 and "
                          f"trainer.num_workers={t.num_workers} (or null for a fixed worker count)")
    if t.min_workers is not None and cfg.dist.launcher != "ray":
        raise ConfigError(f"trainer.min_workers={t.min_workers} needs dist.launcher=ray (elastic training "
                          f"is Ray Train's); set trainer.min_workers=null for dist.launcher={cfg.dist.launcher}")
    if not 0 <= cfg.data.max_bad_fraction <= 1:
        raise ConfigError(f"data.max_bad_fraction={cfg.data.max_bad_fraction} must be in [0, 1]")
    for key in ("data.loader_workers", "data.shuffle_buffer", "eval.batches",
                "trainer.ema_kimg", "trainer.ema_rampup", "trainer.max_failures", "task.l1_weight"):
        section, name = key.split(".")
        _positive(key, getattr(getattr(cfg, section), name), allow_zero=True)
    if not 0 <= cfg.model.dropout < 1:
        raise ConfigError(f"model.dropout={cfg.model.dropout} must be in [0, 1)")
    for key, beta in (("trainer.beta1", cfg.trainer.beta1), ("trainer.beta2", cfg.trainer.beta2)):
        if not 0 <= beta < 1:
            raise ConfigError(f"{key}={beta} must be in [0, 1)")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", cfg.run.name):
        raise ConfigError(
            f"run.name={cfg.run.name!r} must start with a letter or digit and use only letters, "
            "digits, '_', '.', '-' (it names a directory)"
        )
    if cfg.faults.kill_rank is not None and not 0 <= cfg.faults.kill_rank < cfg.trainer.num_workers:
        raise ConfigError(f"faults.kill_rank={cfg.faults.kill_rank} is not a rank of "
                          f"trainer.num_workers={cfg.trainer.num_workers} workers (0..{cfg.trainer.num_workers - 1})")
    if cfg.faults.kill_rank is not None and cfg.faults.at_step < 1:
        raise ConfigError(f"faults.at_step={cfg.faults.at_step} must be a step >= 1 for the fault drill")
    f = cfg.faults
    if f.nan_rank is not None and not 0 <= f.nan_rank < cfg.trainer.num_workers:
        raise ConfigError(f"faults.nan_rank={f.nan_rank} is not a rank of "
                          f"trainer.num_workers={cfg.trainer.num_workers} workers (0..{cfg.trainer.num_workers - 1})")
    if f.nan_rank is not None and (f.nan_at_step < 1 or f.nan_steps < 1):
        raise ConfigError(f"faults.nan_at_step={f.nan_at_step} and faults.nan_steps={f.nan_steps} "
                          "must both be >= 1 for the divergence drill")
    if cfg.dist.launcher == "local" and cfg.trainer.num_workers != 1:
        raise ConfigError(
            f"dist.launcher=local runs one process, but trainer.num_workers={cfg.trainer.num_workers}; "
            "set trainer.num_workers=1 or use dist.launcher=ray"
        )
    return cfg
