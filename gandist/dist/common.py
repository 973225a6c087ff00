"""What every launcher shares: where a run's files go, logging, and the dispatch."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

from gandist.config import Config


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def local_path(url: str) -> str:
    return url[len("file://"):] if url.startswith("file://") else url


def run_dir(cfg: Config) -> str:
    """<run.storage>/<run.name>: checkpoints, TensorBoard logs and sample grids of one run."""
    return f"{cfg.run.storage.rstrip('/')}/{cfg.run.name}"


def cache_dir() -> str:
    """Local scratch space: $GANDIST_CACHE_DIR, else ~/.cache/gandist."""
    return os.environ.get("GANDIST_CACHE_DIR") or os.path.expanduser("~/.cache/gandist")


def log_dir(cfg: Config) -> str:
    """Rank 0's local TensorBoard directory.

    Remote storage: TensorBoard writes on rank 0's machine, under a directory named after the
    run and its storage, and the monitor copies the logs to the run directory in the background.
    """
    if is_local(cfg.run.storage):
        return os.path.join(local_path(run_dir(cfg)), "tensorboard")
    tag = hashlib.sha256(run_dir(cfg).encode()).hexdigest()[:8]
    return os.path.join(cache_dir(), "runs", f"{cfg.run.name}-{tag}", "tensorboard")


def storage_env(cfg: Config) -> dict[str, str]:
    """Object-store settings for worker processes: the driver's AWS_* variables, and
    storage.endpoint_url / storage.profile as AWS_ENDPOINT_URL / AWS_PROFILE (which s3fs
    and pyarrow honour)."""
    env = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    if cfg.storage.endpoint_url:
        env["AWS_ENDPOINT_URL"] = cfg.storage.endpoint_url
    if cfg.storage.profile:
        env["AWS_PROFILE"] = cfg.storage.profile
    return env


def configure_logging(level: int = logging.INFO) -> None:
    """gandist's loggers print to stderr (forwarded to the driver under Ray)."""
    logger = logging.getLogger("gandist")
    if not any(getattr(h, "_gandist", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        handler._gandist = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


@dataclass
class RunSummary:
    """What a finished run leaves behind, for the CLI to print."""

    run_dir: str
    log_dir: str
    step: int
    checkpoint: Optional[str]
    metrics: dict[str, float] = field(default_factory=dict)
    is_chief: bool = True  # under torchrun every rank returns one; only rank 0's is printed


def launch(cfg: Config) -> RunSummary:
    """Train with the configured launcher and return where everything is."""
    if cfg.dist.launcher == "ray":
        from gandist.dist.ray_launcher import run_ray

        return run_ray(cfg)
    from gandist.dist.local import run_local

    return run_local(cfg)
