"""Writing a shard set: WebDataset tar shards, then manifest.json last.

Each shard is written under a temporary name and moved into place when complete, and the
manifest comes last, so a crashed or re-run ingest never leaves a manifest that points at
missing or half-written shards. An existing shard set is never touched.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Optional

import fsspec
import webdataset as wds
from PIL import Image

from gandist.data.manifest import MANIFEST, Manifest, ShardSetError, join
from gandist.data.layouts import open_source
from gandist.data.sources import ClassList, Sample

log = logging.getLogger(__name__)


class _HashingWriter:
    """Passes bytes through to a file while counting them and computing their sha256."""

    def __init__(self, f) -> None:
        self.f, self.sha, self.bytes = f, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.bytes += len(data)
        return self.f.write(data)


def png_bytes(array, mode: Optional[str] = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def encode(sample: Sample) -> dict:
    record = {"__key__": sample.key, "image.png": png_bytes(sample.image)}
    if sample.mask is not None:
        record["mask.png"] = png_bytes(sample.mask)
    if sample.label is not None:
        record["cls"] = str(sample.label).encode()
    if sample.target is not None:
        record["target.png"] = png_bytes(sample.target)
    return record


def write_shard(fs, dest: str, name: str, samples: list[Sample]) -> dict:
    """One tar shard, moved into place once complete; returns its manifest entry."""
    final = join(dest, name)
    partial = final + ".partial"
    with fs.open(partial, "wb") as f:
        hashing = _HashingWriter(f)
        writer = wds.TarWriter(hashing, mtime=0)  # fixed mtime: same input, same bytes
        for sample in samples:
            writer.write(encode(sample))
        writer.close()
    fs.mv(partial, final)
    return {"name": name, "samples": len(samples), "bytes": hashing.bytes, "sha256": hashing.sha.hexdigest()}


def existing_shard_set(dest: str) -> Optional[Manifest]:
    """The complete shard set already at ``dest`` (its manifest is written last), or None."""
    fs, root = fsspec.core.url_to_fs(dest)
    return Manifest.load(dest) if fs.exists(join(root, MANIFEST)) else None


def write_shard_set(source_spec: str, dest: str, *, samples: Optional[int] = None,
                    heldout: Optional[int] = None, shard_size: int = 1000, size: int = 64,
                    seed: int = 0, layout: str = "auto", classes: Optional[ClassList] = None,
                    direction: str = "AtoB", strict: bool = False, workers: Optional[int] = None,
                    pairs: Optional[str] = None, target_mode: str = "RGB",
                    progress: Optional[Callable[[int, int], None]] = None) -> Manifest:
    """Write ``source_spec`` as shards under ``dest`` (local path or fsspec URL).

    Shards are written by ``workers`` threads (image decoding, resizing and PNG encoding
    release the GIL); each shard's content depends only on its planned items, so the result
    is the same whatever the number of threads.
    """
    if shard_size < 1:
        raise ValueError(f"--shard-size {shard_size} must be at least 1")
    for name, value in (("--samples", samples), ("--heldout", heldout)):
        if value is not None and value < 0:
            raise ValueError(f"{name} {value} must be >= 0")
    fs, root = fsspec.core.url_to_fs(dest)
    if fs.exists(join(root, MANIFEST)):
        raise ShardSetError(f"{dest} already holds a shard set ({MANIFEST} exists); "
                            "choose another DEST or delete that one first")
    source = open_source(source_spec, size=size, seed=seed, layout=layout, classes=classes,
                         direction=direction, strict=strict, pairs=pairs, target_mode=target_mode)
    plan = source.plan(samples, heldout)
    if not plan["train"]:
        raise ValueError(f"{source_spec} gives no training samples; ask for --samples of 1 or more")
    fs.makedirs(root, exist_ok=True)
    jobs = [(split, i, items[start:start + shard_size], start)
            for split, items in plan.items()
            for i, start in enumerate(range(0, len(items), shard_size))]
    total, done, lock = sum(len(items) for items in plan.values()), 0, threading.Lock()

    def write(job) -> dict:
        nonlocal done
        split, i, items, start = job
        entry = write_shard(fs, root, f"{split}-{i:06d}.tar", list(source.samples(split, items, start)))
        with lock:
            done += len(items)
            if progress:
                progress(done, total)
        return entry

    with ThreadPoolExecutor(max_workers=workers or min(8, (os.cpu_count() or 1) * 2)) as pool:
        entries = list(pool.map(write, jobs))  # in job order, whatever finished first
    splits: dict[str, dict] = {}
    for (split, *_), entry in zip(jobs, entries):
        info = splits.setdefault(split, {"samples": 0, "shards": []})
        info["samples"] += entry["samples"]
        info["shards"].append(entry)
    if source.skipped:
        log.warning("skipped %d unusable input file(s); --strict stops at the first instead", source.skipped)
    info = source.info
    manifest = Manifest(source=info.name, image_size=size, classes=info.classes, has_masks=info.has_masks,
                        tasks=info.tasks, splits=splits, seed=seed, labels=info.labels, target_mode=info.target_mode,
                        url=dest)
    manifest.save(dest)
    return manifest
