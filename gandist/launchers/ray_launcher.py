"""Ray Train launcher: TorchTrainer workers, checkpoints through Ray Train's own mechanism.

Ray Train owns persistence: rank 0 hands a checkpoint directory to ``ray.train.report``,
Ray copies it to ``<run.storage>/<run.name>/checkpoint_<step>`` and keeps
``trainer.keep_checkpoints`` of them (or, with ``trainer.keep_best``, the best by the reported
score and the newest); ``ray.train.get_checkpoint`` gives the latest back
after a worker-group restart or when the same run name is submitted again.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any, Optional

import ray
import ray.train
import ray.train.torch
import torch
from ray.train import Checkpoint, CheckpointConfig, CheckpointUploadMode, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from gandist.ckpt import SCORE_ATTRIBUTE, checkpoint_name, checkpoint_step, find_latest_checkpoint, load_checkpoint, read_meta
from gandist.config import Config, ConfigError, from_dict
from gandist.launchers.common import (
    RunSummary,
    collective_env,
    configure_logging,
    explain_connect_failure,
    log_dir,
    run_dir,
)
from gandist.credentials import check_credentials, storage_settings
from gandist.ledger import note_launch
from gandist.train import Context, fit
from gandist.urls import is_local, local_path

log = logging.getLogger(__name__)


class RayContext(Context):
    def report(self, metrics: dict[str, float], checkpoint_dir: Optional[str], asynchronous: bool = False) -> None:
        checkpoint = Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        # Ray deletes the local directory after uploading it (in its own thread when ASYNC).
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=checkpoint_name(int(metrics["step"])),
                         checkpoint_upload_mode=CheckpointUploadMode.ASYNC if asynchronous else CheckpointUploadMode.SYNC,
                         delete_local_checkpoint_after_upload=True)

    def restore(self) -> Optional[dict[str, Any]]:
        """Ray's latest registered checkpoint, or a newer complete one in the run directory.

        Ray registers a reported checkpoint when its controller next polls the workers; if the
        worker group dies before that, the checkpoint is in storage, complete (meta.json is
        written last), but unknown to Ray, and the restart would go back further than needed.
        """
        checkpoint = ray.train.get_checkpoint()
        ray_step = checkpoint_step(checkpoint.path) if checkpoint is not None else -1
        newest = find_latest_checkpoint(self.run_dir) if self.run_dir else None
        if newest is not None and read_meta(newest)["step"] > ray_step:
            if self.is_chief:
                log.info("Resuming from %s (newer than Ray's last registered checkpoint)", newest)
            return load_checkpoint(newest)
        if checkpoint is None:
            return None
        if self.is_chief:
            log.info("Resuming from %s", checkpoint.path)
        with checkpoint.as_directory() as directory:
            return load_checkpoint(directory)


def quiet_ray_train_reports() -> None:
    """Ray Train logs every report with all its metrics at INFO; gandist prints its own progress."""
    logging.getLogger("ray.train").setLevel(logging.WARNING)
    try:  # this one logger is named by its file path, not its module
        from ray.train.v2._internal.execution import context as execution_context

        logging.getLogger(execution_context.__file__).setLevel(logging.WARNING)
    except ImportError:
        pass


def train_loop_per_worker(config: dict) -> None:
    """Entry point of every Ray Train worker: rebuild the config, make the context, fit."""
    configure_logging()
    quiet_ray_train_reports()
    cfg = from_dict(config)
    context = ray.train.get_context()
    rank = context.get_world_rank()
    ctx = RayContext(
        rank=rank,
        world_size=context.get_world_size(),
        device=ray.train.torch.get_device(),
        log_dir=log_dir(cfg) if rank == 0 else None,
        run_dir=run_dir(cfg),
    )
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "1"))))
    check_credentials(cfg, f"Ray Train worker rank {rank} on {socket.gethostname()}")
    fit(cfg, ctx)


def init_ray(cfg: Config) -> None:
    """Join the configured (or RAY_ADDRESS) cluster, or start a local one sized for the run."""
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    address = cfg.launcher.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)
        return
    # A new local cluster: enough CPUs for every worker, even on a 2-core machine.
    cpus = max(os.cpu_count() or 1, cfg.trainer.num_workers)
    ray.init(num_cpus=cpus)


def gandist_env() -> dict[str, str]:
    """GANDIST_* settings of the driver (e.g. GANDIST_CACHE_DIR), for the workers too."""
    return {k: v for k, v in os.environ.items() if k.startswith("GANDIST_")}


def ray_storage(cfg: Config) -> tuple[str, Optional[Any]]:
    """Ray Train's storage path, and a pyarrow filesystem where Ray's own URL handling is not
    enough: S3-compatible stores at AWS_ENDPOINT_URL / storage.endpoint_url (e.g. MinIO).

    The filesystem is given the endpoint and region only: Ray pickles it to its controller and
    workers, and each finds its own credentials there (the AWS SDK's usual places)."""
    url = cfg.run.storage
    if is_local(url):
        return os.path.abspath(local_path(url)), None
    settings = storage_settings(cfg)
    endpoint = settings.get("AWS_ENDPOINT_URL")
    if url.startswith("s3://") and endpoint:
        import pyarrow.fs
        from urllib.parse import urlparse

        parsed = urlparse(endpoint)
        # Patient timeouts and retries: the AWS SDK's defaults (a 1 s connect, 3 attempts) let one
        # slow moment of the endpoint fail Ray Train's controller, and with it the whole run.
        fs = pyarrow.fs.S3FileSystem(
            endpoint_override=parsed.netloc, scheme=parsed.scheme or "https",
            region=settings.get("AWS_DEFAULT_REGION", settings.get("AWS_REGION", "us-east-1")),
            connect_timeout=10, request_timeout=60,
            retry_strategy=pyarrow.fs.AwsStandardS3RetryStrategy(max_attempts=10),
        )
        return url[len("s3://"):].rstrip("/"), fs
    return url, None


def ray_num_workers(cfg: Config) -> int | tuple[int, int]:
    """A fixed worker count, or (min, max) for Ray Train's elastic scaling."""
    t = cfg.trainer
    return t.num_workers if t.min_workers is None else (t.min_workers, t.num_workers)


def checkpoint_config(cfg: Config) -> CheckpointConfig:
    """Which checkpoints Ray Train keeps: the newest few, or the K best by the score the loop
    reports (higher is better whatever the metric) and always the newest."""
    t = cfg.trainer
    if not t.keep_best:
        return CheckpointConfig(num_to_keep=t.keep_checkpoints)
    return CheckpointConfig(num_to_keep=t.keep_best, checkpoint_score_attribute=SCORE_ATTRIBUTE,
                            checkpoint_score_order="max")


def run_ray(cfg: Config) -> RunSummary:
    init_ray(cfg)
    use_gpu = cfg.trainer.use_gpu
    if use_gpu is None:
        use_gpu = ray.cluster_resources().get("GPU", 0) >= 1
    backend = cfg.launcher.backend.value if cfg.launcher.backend != "auto" else ("nccl" if use_gpu else "gloo")
    storage, storage_fs = ray_storage(cfg)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=cfg.to_dict(),
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(num_workers=ray_num_workers(cfg), use_gpu=use_gpu),
        run_config=RunConfig(
            name=cfg.run.name,
            storage_path=storage,
            storage_filesystem=storage_fs,
            checkpoint_config=checkpoint_config(cfg),
            failure_config=FailureConfig(max_failures=cfg.trainer.max_failures),
            # Settings only: Ray logs runtime environments. Credentials stay in each process's own
            # environment (a cluster gandist starts inherits the driver's), see gandist.credentials.
            worker_runtime_env={"env_vars": {**storage_settings(cfg), **gandist_env(), **collective_env(cfg)}},
        ),
    )
    note_launch(run_dir(cfg))
    try:
        result = trainer.fit()
    except Exception as e:
        hint = explain_connect_failure(e, cfg)
        if hint is None:
            raise
        raise ConfigError(hint) from e
    metrics = dict(result.metrics or {})
    checkpoint = result.checkpoint.path if result.checkpoint is not None else None
    if checkpoint and cfg.run.storage.startswith("s3://") and is_local(checkpoint):
        checkpoint = f"s3://{checkpoint}"  # Ray gives paths within its pyarrow filesystem
    return RunSummary(run_dir=run_dir(cfg), log_dir=log_dir(cfg), step=int(metrics.get("step", 0)),
                      checkpoint=checkpoint, metrics=metrics)
