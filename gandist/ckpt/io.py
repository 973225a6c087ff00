"""A checkpoint directory: ``state.pt`` (the complete training state) and ``meta.json``.

``meta.json`` is written last and records the size and SHA-256 of ``state.pt``. A directory
without it, or whose ``state.pt`` has another size (an upload that copied ``meta.json``
first and was cut off: object stores and Ray's uploader keep no order), is an interrupted
write and is never resumed from or exported; a ``state.pt`` whose hash differs is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import time
from typing import Any, Optional, Sequence

import fsspec

from gandist import __version__

log = logging.getLogger(__name__)

CHECKPOINT_PREFIX = "checkpoint_"
STATE_FILE = "state.pt"
META_FILE = "meta.json"
# trainer.keep_best: the reported metric Ray Train ranks checkpoints by (higher is better), and the
# value of a checkpoint taken without an evaluation (finite: Ray's saved state holds no infinities).
SCORE_ATTRIBUTE = "ckpt/score"
NO_SCORE = -1e300
_NAME_RE = re.compile(rf"^{CHECKPOINT_PREFIX}(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or does not fit; the message says which and why."""


def checkpoint_name(step: int) -> str:
    """Directory name of the checkpoint taken after ``step`` steps; sorts by step."""
    return f"{CHECKPOINT_PREFIX}{step:08d}"


def checkpoint_step(path: str) -> int:
    """The step in a checkpoint directory's name (checkpoint_00000300 -> 300), or -1."""
    match = _NAME_RE.match(path.rstrip("/").rsplit("/", 1)[-1])
    return int(match.group(1)) if match else -1


def write_checkpoint(directory: str, payload: dict[str, Any], meta: dict[str, Any]) -> None:
    """Write ``payload`` (torch-serialisable) and then ``meta.json`` into a local directory."""
    import torch  # here, not at the top: the CLI's --help, inspect, report and submit never need it

    os.makedirs(directory, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getbuffer()
    with open(os.path.join(directory, STATE_FILE), "wb") as f:
        f.write(data)
    meta = {**meta, "gandist_version": __version__, "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "files": {STATE_FILE: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}}
    tmp = os.path.join(directory, META_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(meta, f, indent=2)
    os.replace(tmp, os.path.join(directory, META_FILE))


def read_meta(url: str) -> dict[str, Any]:
    """The ``meta.json`` of a checkpoint directory (local path or fsspec URL)."""
    fs, path = fsspec.core.url_to_fs(url)
    meta_path = f"{path.rstrip('/')}/{META_FILE}"
    if not fs.exists(meta_path):
        raise CheckpointError(
            f"{url} is not a complete gandist checkpoint (no {META_FILE}); "
            "give a run directory or one of its checkpoint_* directories"
        )
    with fs.open(meta_path, "r") as f:
        return json.load(f)


def load_checkpoint(url: str, map_location: Any = "cpu") -> dict[str, Any]:
    """Load the training-state payload of a complete checkpoint directory (``map_location`` as
    torch.load takes it)."""
    import torch

    meta = read_meta(url)  # refuses interrupted writes
    fs, path = fsspec.core.url_to_fs(url)
    with fs.open(f"{path.rstrip('/')}/{STATE_FILE}", "rb") as f:
        data = f.read()
    expected = meta.get("files", {}).get(STATE_FILE)
    if expected and (len(data) != expected["bytes"] or hashlib.sha256(data).hexdigest() != expected["sha256"]):
        raise CheckpointError(
            f"{url}/{STATE_FILE} does not match its {META_FILE} ({len(data)} bytes, expected "
            f"{expected['bytes']} with sha256 {expected['sha256'][:12]}...): the checkpoint is damaged. "
            "Move it aside and the run resumes from the checkpoint before it."
        )
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=False)


def is_complete(fs: fsspec.AbstractFileSystem, path: str) -> bool:
    """meta.json present and state.pt of the size it records (older checkpoints: present)."""
    path = path.rstrip("/")
    try:
        with fs.open(f"{path}/{META_FILE}", "r") as f:
            meta = json.load(f)
        size = fs.size(f"{path}/{STATE_FILE}")
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    expected = meta.get("files", {}).get(STATE_FILE)
    return expected is None or size == expected["bytes"]


def list_checkpoints(run_url: str) -> tuple[fsspec.AbstractFileSystem, str, list[tuple[int, str]]]:
    """(fs, URL prefix, [(step, path)] newest first) of the checkpoint directories under a run."""
    fs, path = fsspec.core.url_to_fs(run_url)
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    if not fs.exists(path):
        return fs, prefix, []
    candidates = []
    for entry in fs.ls(path, detail=False):
        match = _NAME_RE.match(entry.rstrip("/").rsplit("/", 1)[-1])
        if match:
            candidates.append((int(match.group(1)), entry.rstrip("/")))
    return fs, prefix, sorted(candidates, reverse=True)


def find_latest_checkpoint(run_url: str) -> Optional[str]:
    """The complete checkpoint with the highest step directly under a run directory, or None."""
    fs, prefix, candidates = list_checkpoints(run_url)
    for step, entry in candidates:
        if is_complete(fs, entry):
            return prefix + entry
        log.warning("Skipping %s: an interrupted checkpoint write (incomplete meta.json/state.pt)", entry)
    return None


def score_key(score: Optional[dict[str, Any]]) -> Optional[float]:
    """A checkpoint's evaluation score record (meta.json's "score") as "higher is better", or
    None when it has none."""
    if not score or score.get("value") is None:
        return None
    return float(score["value"]) if score.get("order") == "max" else -float(score["value"])


def retained_steps(checkpoints: Sequence[tuple[int, Optional[float]]], keep_best: int, keep_recent: int) -> set[int]:
    """Which of a run's checkpoints, (step, score_key or None), to keep: with ``keep_best`` the
    K best by score (unscored ones rank last, the newer of equals first) and the newest one,
    Ray Train's rule for a checkpoint score attribute; otherwise the ``keep_recent`` newest."""
    if not checkpoints:
        return set()
    newest = max(step for step, _ in checkpoints)
    if not keep_best:
        return {step for step, _ in sorted(checkpoints, reverse=True)[:keep_recent]}
    ranked = sorted(checkpoints, key=lambda c: (NO_SCORE if c[1] is None else c[1], c[0]), reverse=True)
    return {step for step, _ in ranked[:keep_best]} | {newest}


def scored_checkpoints(run_url: str) -> list[tuple[int, str, Optional[dict[str, Any]]]]:
    """(step, path, score record or None) of each complete checkpoint under a run, newest first."""
    fs, prefix, candidates = list_checkpoints(run_url)
    return [(step, prefix + entry, read_meta(prefix + entry).get("score"))
            for step, entry in candidates if is_complete(fs, entry)]


def find_best_checkpoint(run_url: str) -> str:
    """The complete checkpoint of a run with the best evaluation score in its meta.json (the
    newer of equals); a clear error when none has one."""
    scored = [(score_key(score), step, path, score) for step, path, score in scored_checkpoints(run_url)
              if score_key(score) is not None]
    if not scored:
        raise CheckpointError(
            f"no complete checkpoint under {run_url} has an evaluation score: only checkpoints taken at an "
            "evaluation have one (trainer.keep_best=K takes one at each evaluation and keeps the K best); "
            "drop --best to use the latest")
    key, step, best, score = max(scored)
    log.info("Best checkpoint: %s (%s %.4g at step %d, of %d scored)", best, score["metric"], score["value"], step,
             len(scored))
    return best


def resolve_checkpoint(source: str, best: bool = False) -> str:
    """A checkpoint directory itself, or the latest (``best``: best-scored) complete checkpoint
    of a run directory."""
    if best:
        if checkpoint_step(source) >= 0:
            raise CheckpointError(f"--best picks among a run's checkpoints, but {source} is one checkpoint: pass "
                                  "its run directory (the folder above it), or drop --best")
        return find_best_checkpoint(source)
    latest = find_latest_checkpoint(source)
    if latest is not None:
        return latest
    read_meta(source)  # raises with a clear message when it is not a checkpoint either
    return source
