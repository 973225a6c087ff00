"""What every launcher shares: where a run's files go, logging, the summary a run returns.
The dispatch to one launcher is ``gandist.launchers.launch``, above them all."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Optional

from gandist.ckpt import find_latest_checkpoint, read_meta
from gandist.config import Config
from gandist.urls import cache_dir, is_local, local_path

log = logging.getLogger("gandist.launchers")


def run_dir(cfg: Config) -> str:
    """<run.storage>/<run.name>: checkpoints, TensorBoard logs and sample grids of one run."""
    return f"{cfg.run.storage.rstrip('/')}/{cfg.run.name}"


def log_dir(cfg: Config) -> str:
    """Rank 0's local TensorBoard directory.

    Remote storage: TensorBoard writes on rank 0's machine, under a directory named after the
    run and its storage, and the monitor copies the logs to the run directory in the background.
    """
    if is_local(cfg.run.storage):
        return os.path.join(local_path(run_dir(cfg)), "tensorboard")
    tag = hashlib.sha256(run_dir(cfg).encode()).hexdigest()[:8]
    return os.path.join(cache_dir(), "runs", f"{cfg.run.name}-{tag}", "tensorboard")


def collective_env(cfg: Config) -> dict[str, str]:
    """launcher.socket_ifname as the variables gloo and NCCL read, for every worker process."""
    if not cfg.launcher.socket_ifname:
        return {}
    return {"GLOO_SOCKET_IFNAME": cfg.launcher.socket_ifname, "NCCL_SOCKET_IFNAME": cfg.launcher.socket_ifname}


def explain_connect_failure(error: BaseException, cfg: Config) -> Optional[str]:
    """A hint when workers on different nodes could not connect their collectives."""
    text = str(error)
    cause = error.__cause__ or error.__context__
    while cause is not None:
        text += str(cause)
        cause = cause.__cause__ or cause.__context__
    # Only failures while the process group is set up: later ones (a worker died) are not this.
    if not any(mark in text for mark in ("connectFullMesh", "_setup_torch_process_group", "init_process_group")):
        return None
    return connect_failure_hint(cfg, text)


def connect_failure_hint(cfg: Config, text: str) -> str:
    """What to do when setting up the process group failed with ``text``."""
    if cfg.launcher.socket_ifname:
        return (f"the workers could not connect their collectives over launcher.socket_ifname="
                f"{cfg.launcher.socket_ifname}: check that every node has that interface and that the nodes reach "
                "each other on it (see the worker errors above)")
    loopback = " (they tried 127.0.0.1)" if "127.0.0.1" in text else ""
    return ("the workers could not connect their collectives to each other" + loopback + ". Without "
            "launcher.socket_ifname gloo binds to the address this node's hostname resolves to, often 127.0.0.1, which "
            "other nodes cannot reach: set launcher.socket_ifname to the interface the nodes share, e.g. "
            "launcher.socket_ifname=eth0")


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time of each message (it may be replaced after
    the handler is made, e.g. by a test's capture), never to a stream closed since."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """gandist's loggers print to stderr (forwarded to the driver under Ray)."""
    logger = logging.getLogger("gandist")
    if not any(isinstance(h, StderrHandler) for h in logger.handlers):
        logger.addHandler(StderrHandler())
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


def already_finished(cfg: Config) -> Optional[RunSummary]:
    """The run's summary when its newest checkpoint is at trainer.max_steps or beyond, else None.
    Every torchrun rank reads the same checkpoint, so all of them return here alike."""
    latest = find_latest_checkpoint(run_dir(cfg))
    if latest is None:
        return None
    meta = read_meta(latest)
    if meta["step"] < cfg.trainer.max_steps:
        return None
    log.info("Run %r already finished at step %d (trainer.max_steps=%d): nothing to train, no workers started "
             "(raise trainer.max_steps to train on)", cfg.run.name, meta["step"], cfg.trainer.max_steps)
    score = meta.get("score")  # None, or the record train/checkpoints.py writes
    metrics = {score["metric"]: float(score["value"])} if score else {}
    return RunSummary(run_dir=run_dir(cfg), log_dir=log_dir(cfg), step=int(meta["step"]), checkpoint=latest,
                      metrics=metrics, is_chief=int(os.environ.get("RANK", 0)) == 0)
