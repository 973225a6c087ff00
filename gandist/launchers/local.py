"""One plain process or torchrun: checkpoints written atomically to a local run directory."""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any, Optional

import torch
import torch.distributed as dist

from gandist.ckpt import (
    CHECKPOINT_PREFIX,
    CheckpointError,
    checkpoint_name,
    checkpoint_step,
    find_latest_checkpoint,
    load_checkpoint,
    read_meta,
    retained_steps,
    score_key,
)
from gandist.collectives import broadcast_object
from gandist.config import Config, ConfigError
from gandist.launchers.common import (
    RunSummary,
    collective_env,
    connect_failure_hint,
    log_dir,
    run_dir,
)
from gandist.credentials import check_credentials, storage_settings
from gandist.ledger import note_launch
from gandist.train import Context, fit
from gandist.urls import is_local, local_path

log = logging.getLogger(__name__)


class LocalContext(Context):
    """Checkpoints go to <run_dir>/checkpoint_<step>, renamed into place once complete."""

    def __init__(self, rank: int, world_size: int, device: torch.device, run_path: str,
                 keep: int, log_path: Optional[str], keep_best: int = 0) -> None:
        super().__init__(rank=rank, world_size=world_size, device=device,
                         log_dir=log_path if rank == 0 else None, run_dir=run_path)
        self.run_path = run_path
        self.keep, self.keep_best = keep, keep_best
        self.last_metrics: dict[str, float] = {}
        self.last_checkpoint: Optional[str] = find_latest_checkpoint(run_path)

    def report(self, metrics: dict[str, float], checkpoint_dir: Optional[str], asynchronous: bool = False) -> None:
        # A local write is quick: asynchronous uploads are for Ray Train's remote storage.
        self.last_metrics = dict(metrics)
        if checkpoint_dir is not None:
            final = os.path.join(self.run_path, checkpoint_name(int(metrics["step"])))
            partial = final + ".partial"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.move(checkpoint_dir, partial)
            if os.path.exists(final):
                shutil.rmtree(final)
            os.rename(partial, final)  # never a half-written directory under the real name
            self.last_checkpoint = final
            self._prune()
        if dist.is_initialized():
            dist.barrier()

    def _prune(self) -> None:
        """Ray Train's retention, on local disk: the newest trainer.keep_checkpoints, or with
        trainer.keep_best the K best by score and the newest (gandist.ckpt.retained_steps)."""
        paths = {checkpoint_step(n): os.path.join(self.run_path, n) for n in os.listdir(self.run_path)
                 if n.startswith(CHECKPOINT_PREFIX) and not n.endswith(".partial")}
        scores = {step: score_key(read_meta(path).get("score")) if self.keep_best else None
                  for step, path in paths.items()}
        keep = retained_steps(list(scores.items()), self.keep_best, self.keep)
        for step, path in paths.items():
            if step not in keep:
                shutil.rmtree(path, ignore_errors=True)

    def restore(self) -> Optional[dict[str, Any]]:
        """Rank 0 chooses the checkpoint and tells the others, so all ranks resume from the same
        one; a rank that cannot read it stops (its run directory is not rank 0's)."""
        latest = find_latest_checkpoint(self.run_path) if self.rank == 0 else None
        name = broadcast_object(os.path.basename(latest) if latest else None)
        latest = os.path.join(self.run_path, name) if name else None
        if latest is None:
            return None
        if self.rank == 0:
            log.info("Resuming from %s", latest)
        try:
            return load_checkpoint(latest)
        except (CheckpointError, FileNotFoundError) as e:
            if self.rank == 0:
                raise
            raise CheckpointError(
                f"rank {self.rank} cannot read {latest}, the checkpoint rank 0 resumes from ({e}): every "
                "torchrun rank needs the run directory on a file system all nodes share (run.storage), or use "
                "launcher.name=ray with run.storage in object storage") from None


def run_local(cfg: Config) -> RunSummary:
    """launcher.name=local (one process) or torchrun (env:// rendezvous set by torchrun)."""
    if not is_local(cfg.run.storage):
        raise ConfigError(
            f"run.storage={cfg.run.storage} is remote; launcher.name={cfg.launcher.name} keeps "
            "checkpoints on a local or shared file system. Use launcher.name=ray for cloud storage."
        )
    os.environ.update(storage_settings(cfg))  # also when called without the CLI
    world_size, rank, local_rank = 1, 0, int(os.environ.get("LOCAL_RANK", 0))
    use_gpu = cfg.trainer.use_gpu if cfg.trainer.use_gpu is not None else torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if use_gpu else torch.device("cpu")
    if use_gpu:  # before the process group: NCCL binds each rank to the current device
        torch.cuda.set_device(device)
    if cfg.launcher.name == "torchrun":
        if "RANK" not in os.environ:
            raise ConfigError("launcher.name=torchrun must run under torchrun, e.g. "
                              "torchrun --nproc_per_node 2 -m gandist.cli train launcher.name=torchrun ...")
        backend = cfg.launcher.backend.value if cfg.launcher.backend != "auto" else ("nccl" if use_gpu else "gloo")
        os.environ.update(collective_env(cfg))
        try:
            dist.init_process_group(backend)
        except Exception as e:
            raise ConfigError(connect_failure_hint(cfg, str(e))) from e
        world_size, rank = dist.get_world_size(), dist.get_rank()
    check_credentials(cfg, f"rank {rank}")
    path = local_path(run_dir(cfg))
    os.makedirs(path, exist_ok=True)
    if rank == 0:
        note_launch(path)
    ctx = LocalContext(rank, world_size, device, path, cfg.trainer.keep_checkpoints, log_dir(cfg),
                       cfg.trainer.keep_best)
    try:
        state = fit(cfg, ctx)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return RunSummary(run_dir=path, log_dir=log_dir(cfg), step=state.step,
                      checkpoint=ctx.last_checkpoint, metrics=ctx.last_metrics, is_chief=rank == 0)
