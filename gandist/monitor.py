"""TensorBoard on rank 0; a no-op object on every other rank.

The loop calls the same methods on every rank; only the chief's monitor writes anything.
Logs are written to a local directory; when the run lives in remote storage, a background
thread copies them (and the PNG sample grids) to ``<run dir>/tensorboard`` and
``<run dir>/samples`` so training never waits for the upload.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

SYNCED = ("tensorboard", "samples")  # subdirectories of the local run root that follow the run


class NullMonitor:
    """What non-chief ranks get: accepts everything, writes nothing."""

    def scalars(self, values: dict[str, float], step: int) -> None:
        pass

    def image(self, tag: str, image: Tensor, step: int) -> None:
        pass

    def describe(self, descriptions: dict[str, str]) -> None:
        pass

    def hparams(self, config: dict[str, Any], metric_tags: list[str]) -> None:
        pass

    def close(self) -> None:
        pass


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"trainer": {"lr_g": 2e-4}} -> {"trainer.lr_g": 2e-4}, with values TensorBoard accepts."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        elif isinstance(value, (bool, int, float, str)):
            flat[f"{prefix}{key}"] = value
        else:  # None, lists
            flat[f"{prefix}{key}"] = "null" if value is None else str(value)
    return flat


class LogSync:
    """Copies new and grown files under ``local_root/{tensorboard,samples}`` to the same
    places under ``remote_root``, every ``interval`` seconds in a thread and once on close."""

    def __init__(self, local_root: str, remote_root: str, interval: float) -> None:
        import fsspec

        self.local_root, self.interval = local_root, interval
        self.fs, self.remote_root = fsspec.core.url_to_fs(remote_root.rstrip("/"))
        self.uploaded: dict[str, tuple[int, float]] = {}
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None

    def pull(self) -> int:
        """Before writing: fetch what an earlier attempt (maybe on another machine) uploaded and
        this machine lacks, so the resumed logs continue the same history. Returns files fetched."""
        fetched = 0
        for sub in SYNCED:
            remote = f"{self.remote_root}/{sub}"
            if not self.fs.exists(remote):
                continue
            for path, info in self.fs.find(remote, detail=True).items():
                rel = path[len(self.remote_root) + 1:] if path.startswith(self.remote_root) else None
                if rel is None:
                    continue
                local = os.path.join(self.local_root, rel)
                if not os.path.exists(local) or os.path.getsize(local) < int(info.get("size") or 0):
                    os.makedirs(os.path.dirname(local), exist_ok=True)
                    self.fs.get_file(path, local)
                    fetched += 1
                st = os.stat(local)
                self.uploaded[local] = (st.st_size, st.st_mtime)
        return fetched

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="gandist-log-sync", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self.push()

    def push(self) -> int:
        """Upload every file that is new or changed since its last upload; returns how many."""
        sent = 0
        for sub in SYNCED:
            for dirpath, _, names in os.walk(os.path.join(self.local_root, sub)):
                for name in names:
                    local = os.path.join(dirpath, name)
                    try:
                        st = os.stat(local)
                        if self.uploaded.get(local) == (st.st_size, st.st_mtime):
                            continue
                        rel = os.path.relpath(local, self.local_root).replace(os.sep, "/")
                        self.fs.put_file(local, f"{self.remote_root}/{rel}")
                        self.uploaded[local] = (st.st_size, st.st_mtime)
                        sent += 1
                    except OSError as e:  # storage hiccup: the next round retries
                        log.warning("Could not upload %s to %s: %s (will retry)", local, self.remote_root, e)
        return sent

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        self.push()


def wait_for_a_later_second(log_dir: str) -> None:
    """TensorBoard reads a directory's event files in name order, and a name is
    events.out.tfevents.<10-digit second>.<host>.<pid>.<counter>: a file made in the same
    second as an earlier one of this process can sort before it (counter 10 < 9), and a
    resumed run's purge would then apply to the wrong history. So a new file waits, at
    most a second, until its second is later than every existing file's."""
    latest = 0
    with contextlib.suppress(OSError):
        for name in os.listdir(log_dir):
            parts = name.split(".")
            if name.startswith("events.out.tfevents.") and len(parts) > 3 and parts[3].isdigit():
                latest = max(latest, int(parts[3]))
    while time.time() < latest + 1:
        time.sleep(0.05)


class TensorBoardMonitor(NullMonitor):
    def __init__(self, log_dir: str, purge_step: Optional[int] = None, sync_to: Optional[str] = None,
                 sync_interval: float = 30.0) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.log_dir = log_dir
        root = os.path.dirname(log_dir.rstrip("/"))
        self.samples_dir = os.path.join(root, "samples")
        os.makedirs(self.samples_dir, exist_ok=True)
        self.sync: Optional[LogSync] = None
        if sync_to is not None:
            self.sync = LogSync(root, sync_to, sync_interval)
            fetched = self.sync.pull()
            if fetched:
                log.info("Fetched %d log files of this run from %s", fetched, sync_to)
        # purge_step drops events a previous attempt wrote past the resumed step, so the step
        # axis continues without duplicated or rewound points.
        wait_for_a_later_second(log_dir)
        self.writer = SummaryWriter(log_dir, purge_step=purge_step)
        self.descriptions: dict[str, str] = {}
        self.described: set[str] = set()
        if self.sync is not None:
            self.sync.start()

    def describe(self, descriptions: dict[str, str]) -> None:
        """Descriptions TensorBoard shows beside these tags' charts (written with each tag's
        first point from this writer: TensorBoard reads a tag's metadata from its first event)."""
        self.descriptions.update(descriptions)

    def scalars(self, values: dict[str, float], step: int) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.scalar.metadata import create_summary_metadata

        for tag, value in values.items():
            if tag in self.descriptions and tag not in self.described:
                # Named as the scalars plugin's, as add_scalar's are: readers warn of metadata without a plugin.
                meta = create_summary_metadata(display_name="", description=self.descriptions[tag])
                summary = Summary(value=[Summary.Value(tag=tag, simple_value=float(value), metadata=meta)])
                self.writer.file_writer.add_summary(summary, step)
                self.described.add(tag)
            else:
                self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def image(self, tag: str, image: Tensor, step: int) -> None:
        """A [3, H, W] image in [0, 1]: to TensorBoard, and as a PNG under samples/."""
        from PIL import Image

        self.writer.add_image(tag, image, step)
        self.writer.flush()
        pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
        name = f"{tag.replace('/', '_')}_{step:08d}.png"
        Image.fromarray(np.ascontiguousarray(pixels)).save(os.path.join(self.samples_dir, name))

    def hparams(self, config: dict[str, Any], metric_tags: list[str]) -> None:
        """The run's config in TensorBoard's HPARAMS view, with ``metric_tags`` (scalars this
        run logs) as its metric columns: the view shows their latest values."""
        from torch.utils.tensorboard.summary import hparams

        experiment, start, end = hparams(flatten(config), {tag: float("nan") for tag in metric_tags})
        for summary in (experiment, start, end):
            self.writer.file_writer.add_summary(summary)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
        if self.sync is not None:
            self.sync.close()


def make_monitor(log_dir: Optional[str], purge_step: Optional[int] = None, sync_to: Optional[str] = None,
                 sync_interval: float = 30.0) -> NullMonitor:
    """TensorBoard where a log directory was given (rank 0 only), otherwise the no-op."""
    if log_dir is None:
        return NullMonitor()
    return TensorBoardMonitor(log_dir, purge_step=purge_step, sync_to=sync_to, sync_interval=sync_interval)
