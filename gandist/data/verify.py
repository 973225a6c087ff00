"""`gandist inspect` and `gandist shard`: what a shard set holds, and whether every shard is intact."""

from __future__ import annotations

import hashlib
from typing import Callable, Optional

import fsspec

from gandist.data.manifest import Manifest


def summary(manifest: Manifest) -> list[str]:
    """Human-readable lines: task, classes, size, samples, shards, bytes per split."""
    lines = [
        f"shard set : {manifest.url}",
        f"source    : {manifest.source} (seed {manifest.seed}, written {manifest.created})",
        f"tasks     : {', '.join(manifest.tasks)}",
        f"classes   : {', '.join(manifest.classes) if manifest.classes else '(none)'}",
        f"labels    : {', '.join(manifest.labels) if manifest.labels else '(none)'}",
        f"image size: {manifest.image_size} x {manifest.image_size}",
    ]
    if manifest.target_mode:
        lines.append(f"B images  : {manifest.target_mode} ({len(manifest.target_mode)} channels), A is the input")
    for split, info in manifest.splits.items():
        size = sum(int(s["bytes"]) for s in info["shards"])
        lines.append(f"{split:<10}: {info['samples']} samples in {len(info['shards'])} shards, {size / 1e6:.1f} MB")
    return lines


def written(manifest: Manifest, dest: str) -> list[str]:
    """What `gandist shard` says of the shard set it wrote to ``dest``, ending with how to train on it."""
    dest = dest.rstrip("/")
    lines = []
    for split, info in manifest.splits.items():
        size = sum(s["bytes"] for s in info["shards"])
        lines.append(f"{split}: {info['samples']} samples in {len(info['shards'])} shards, {size / 1e6:.1f} MB")
    lines.append(f"classes: {manifest.classes or '(none)'}; labels: {manifest.labels or '(none)'}; "
                 f"image size {manifest.image_size}; tasks: {', '.join(manifest.tasks)}")
    lines.append(f"manifest: {dest}/manifest.json")
    if manifest.target_mode:
        lines.append(f"B images: {manifest.target_mode}")
    task = next(t for t in ("segment", "translate", "generate") if t in manifest.tasks)
    lines.append(f"train on it: gandist train task={task} data.url={dest} model.resolution={manifest.image_size}")
    return lines


def verify(manifest: Manifest, progress: Optional[Callable[[int, int], None]] = None) -> list[str]:
    """Check every shard's presence, size and sha256; one line per bad shard (empty when intact)."""
    entries = [entry for info in manifest.splits.values() for entry in info["shards"]]
    problems = []
    for done, entry in enumerate(entries, 1):
        problem = _check(f"{manifest.url.rstrip('/')}/{entry['name']}", entry)
        if problem:
            problems.append(problem)
        if progress:
            progress(done, len(entries))
    return problems


def _check(url: str, entry: dict) -> Optional[str]:
    sha, size = hashlib.sha256(), 0
    try:
        with fsspec.open(url, "rb") as f:
            while chunk := f.read(1 << 20):
                sha.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        return f"{url}: missing"
    if size != int(entry["bytes"]):
        return f"{url}: {size} bytes, the manifest says {entry['bytes']}"
    if sha.hexdigest() != entry["sha256"]:
        return f"{url}: sha256 {sha.hexdigest()[:16]}..., the manifest says {entry['sha256'][:16]}..."
    return None
