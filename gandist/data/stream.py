"""Reading a shard set for DDP training: disjoint, complete, equal per rank, resumable.

For epoch ``e`` the shards are put in a seeded order and their samples concatenated into
one global sequence; its first ``usable`` samples (a multiple of world_size x batch_size,
so every rank gets the same number of batches and DDP never waits on a rank that ran dry)
are cut into one contiguous range per rank. A rank's batches are split into contiguous
blocks, one per DataLoader worker; each worker reads only the shards its block overlaps and
shuffles inside it with a seeded buffer. The DataLoader takes batches from its workers in
turn, so the rank's batch order is a pure function of the plan, and resuming after
``skip_batches`` batches reproduces the rest of the epoch exactly. When the epoch was
partly read under other layouts (``history``), the plan covers only the samples those
left unread (see ``gandist.data.plan``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import tarfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence

import fsspec
import numpy as np
import torch
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.tariterators import group_by_keys, tar_file_iterator

from gandist.data.manifest import Manifest, ShardSetError, join
from gandist.data.plan import (
    Positions,
    Segment,
    buffer_rng,
    buffer_shuffle,
    layout,
    remaining_positions,
    resume_assignment,
)
from gandist.data.subsets import Subset, shard_counts
from gandist.seeding import derive_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Piece:
    """Samples [start, stop) of one shard, in the shard's own order (only ``keep`` if given)."""

    url: str
    start: int
    stop: int
    bytes: int = 0  # the whole shard's size, from the manifest
    keep: Optional[frozenset] = None  # indices within [start, stop) to read; None = all


def batches_per_epoch(manifest: Manifest, split: str, world_size: int, batch_size: int,
                      subset: Optional[Subset] = None) -> int:
    """Batches every rank yields per epoch; raises when there are too few samples."""
    total = sum(shard_counts(manifest, split, subset))
    n = total // (world_size * batch_size)
    if n == 0:
        part = "" if subset is None else " (in the part this stream reads)"
        raise ShardSetError(
            f"split {split!r} of {manifest.url} has {total} samples{part}, fewer than world size "
            f"{world_size} x batch size {batch_size}; lower data.batch_size or trainer.num_workers, "
            "or write more samples"
        )
    return n


def covering_batch_size(samples: int, world_size: int, cap: int) -> int:
    """The batch size, at most ``cap``, whose whole batches (all a stream yields) read the most
    of ``samples`` split over ``world_size`` ranks, the largest of those: every sample when
    some size can (90 held-out images at a cap of 32: 30, not 32, which would leave 26 out)."""
    sizes = range(1, max(1, min(cap, samples // max(1, world_size))) + 1)
    return max(sizes, key=lambda b: (samples // (world_size * b) * b, b))


def shard_order(manifest: Manifest, split: str, epoch: int, seed: int, shuffle: bool) -> np.ndarray:
    return epoch_order(len(manifest.shards(split)), epoch, seed, shuffle)


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool) -> np.ndarray:
    """The order of a split's ``n`` shards (manifest indices) in ``epoch``."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng(derive_seed(seed, "shards", epoch)).permutation(n)


@dataclass(frozen=True)
class ShardIndex:
    """One split's shards for one epoch, compact: what a loader worker needs to find its
    block's pieces. At 1M shards a manifest holds 381 MiB of Python dicts and walking them
    took 3-4 s in every loader worker; this is 39 MiB of arrays (names as bytes), so a
    stream neither keeps the dicts nor walks every shard: a block's shards are a binary
    search (13 ms, bench/plan.py)."""

    root: str  # the shard set's URL
    names: np.ndarray  # manifest order, UTF-8 bytes
    sizes: np.ndarray  # bytes of each shard, manifest order (0 when the manifest has none)
    order: np.ndarray  # manifest indices in the epoch's order
    ends: np.ndarray  # end of each shard's positions, epoch order: order[k] holds [ends[k-1], ends[k])

    @classmethod
    def build(cls, manifest: Manifest, split: str, order: np.ndarray, counts: Sequence[int]) -> "ShardIndex":
        shards = manifest.shards(split)
        names = np.array([s["name"].encode() for s in shards], dtype=np.bytes_)
        sizes = np.fromiter((int(s.get("bytes", 0)) for s in shards), dtype=np.int64, count=len(shards))
        ends = np.cumsum(np.asarray(counts, dtype=np.int64)[order])
        return cls(manifest.url, names, sizes, np.asarray(order, dtype=np.int64), ends)

    def url(self, shard: int) -> str:
        return join(self.root, self.names[shard].decode())


def pieces_for_positions(shards: ShardIndex, positions: Positions,
                         subset: Optional[Subset] = None) -> list[Piece]:
    """The shard pieces holding ``positions`` of the epoch's global sequence (of ``subset``'s
    samples only, when given), in sequence order: one per shard touched, ``keep`` naming
    its samples only where the positions leave holes in it."""
    runs: list[tuple[int, list[tuple[int, int]]]] = []  # (epoch-order shard, local [lo, hi) runs)
    ends = shards.ends
    for a, b in positions.runs().tolist():
        for k in range(int(np.searchsorted(ends, a, "right")), int(np.searchsorted(ends, b - 1, "right")) + 1):
            start = int(ends[k - 1]) if k else 0
            lo, hi = max(a, start) - start, min(b, int(ends[k])) - start
            if lo >= hi:
                continue
            if runs and runs[-1][0] == k:
                runs[-1][1].append((lo, hi))
            else:
                runs.append((k, [(lo, hi)]))
    pieces = []
    for k, local in runs:
        i = int(shards.order[k])
        if subset is None and len(local) == 1:  # the common case: one contiguous piece
            (lo, hi), = local
            pieces.append(Piece(shards.url(i), lo, hi, int(shards.sizes[i])))
            continue
        indices = np.concatenate([np.arange(lo, hi) if subset is None else np.asarray(subset[i][lo:hi])
                                  for lo, hi in local]).tolist()
        first, last = indices[0], indices[-1]
        keep = None if last - first + 1 == len(indices) else frozenset(indices)
        pieces.append(Piece(shards.url(i), first, last + 1, int(shards.sizes[i]), keep))
    return pieces


# Errors worth another try: connections cut, timeouts, throttling and 5xx (s3fs raises OSError).
RETRIES, BACKOFF_S = 5, 0.5
# Shards up to this size are downloaded whole while the previous one is being read
# (read-ahead); larger ones are streamed.
PREFETCH_MAX_BYTES = 256 << 20


def _samples_of(piece: Piece, first: int, data: Optional[bytes] = None) -> Iterator[tuple[int, dict[str, Any]]]:
    index = 0
    source = contextlib.nullcontext(io.BytesIO(data)) if data is not None else fsspec.open(piece.url, "rb")
    with source as f:
        files = ({**item, "__url__": piece.url} for item in tar_file_iterator(f))
        for sample in group_by_keys(files):
            if index >= piece.stop:
                return
            if index >= first and (piece.keep is None or index in piece.keep):
                yield index, sample
            index += 1
    if index < piece.stop:
        raise ShardSetError(f"shard {piece.url} holds {index} samples but the manifest says at least "
                            f"{piece.stop}; the shard set is damaged, write it again")


def fetch(url: str) -> bytes:
    """A whole shard in one request (from an object store one GET; opening it as a file would
    ask for its size first)."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs.cat_file(path)


def read_piece(piece: Piece, prefetched: Optional[Future] = None, retries: int = RETRIES,
               backoff_s: float = BACKOFF_S) -> Iterator[dict[str, Any]]:
    """Raw samples (bytes, undecoded) of one shard piece, reopening it after transient errors."""
    next_index, attempt = piece.start, 0
    while True:
        try:
            data = prefetched.result() if prefetched is not None else None
            prefetched = None  # a retry streams the shard afresh
            for index, sample in _samples_of(piece, next_index, data):
                yield sample
                next_index = index + 1
            return
        except (FileNotFoundError, PermissionError) as e:
            raise ShardSetError(f"cannot read shard {piece.url}: {e}") from e
        except tarfile.TarError as e:
            raise ShardSetError(f"shard {piece.url} is not a readable tar file ({e}); "
                                "write the shard set again") from e
        except OSError as e:
            attempt += 1
            if attempt > retries:
                raise ShardSetError(f"reading shard {piece.url} failed {attempt} times: {e}") from e
            delay = backoff_s * 2 ** (attempt - 1)
            log.warning("reading %s failed (%s); retry %d of %d in %.1f s", piece.url, e, attempt, retries, delay)
            time.sleep(delay)


def read_pieces(pieces: list[Piece]) -> Iterator[dict[str, Any]]:
    """The samples of consecutive pieces, downloading the next shard while this one is read."""
    with ThreadPoolExecutor(max_workers=1) as pool:

        def ahead(i: int) -> Optional[Future]:
            if i >= len(pieces) or pieces[i].bytes > PREFETCH_MAX_BYTES:
                return None
            return pool.submit(fetch, pieces[i].url)

        upcoming = ahead(0)
        for i, piece in enumerate(pieces):
            current, upcoming = upcoming, ahead(i + 1)
            yield from read_piece(piece, current)


def decode(sample: dict, with_masks: bool) -> dict[str, Any]:
    image = np.asarray(Image.open(io.BytesIO(sample["image.png"])).convert("RGB"))
    out: dict[str, Any] = {"key": sample["__key__"],
                           "image": torch.from_numpy(image.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)}
    if with_masks and "mask.png" in sample:
        out["mask"] = torch.from_numpy(np.asarray(Image.open(io.BytesIO(sample["mask.png"]))).astype(np.int64))
    if "cls" in sample:
        out["label"] = torch.tensor(int(sample["cls"]))
    if "target.png" in sample:  # image B of a translation pair, [C, H, W] in [-1, 1] like the image
        target = np.asarray(Image.open(io.BytesIO(sample["target.png"])))
        target = target[..., None] if target.ndim == 2 else target
        out["target"] = torch.from_numpy(target.copy()).permute(2, 0, 1).float().div_(127.5).sub_(1.0)
    return out


def collate(samples: list[dict[str, Any]]) -> dict[str, Any]:
    batch: dict[str, Any] = {"key": [s["key"] for s in samples]}
    for name in ("image", "mask", "label", "target"):
        if name in samples[0]:
            batch[name] = torch.stack([s[name] for s in samples])
    return batch


@dataclass(frozen=True)
class EpochPlan:
    """One rank's share of one epoch: its loader workers' blocks, the shards in the epoch's
    order, and which block each worker reads after how many of its batches."""

    epoch: int
    segment: int  # earlier layouts of this epoch (len(history)): the shuffle buffer's seed changes with it
    n_batches: int
    block_positions: list[Positions]
    shards: ShardIndex
    assignment: list[tuple[Optional[int], int]]


class ShardStream(IterableDataset):
    """One rank's batches of one epoch per pass (see the module docstring for the plan).

    A pass reads the epoch last given to ``set_epoch`` (``epoch`` at first): that first epoch
    after ``skip_batches`` batches and what ``history`` records, any later one from its start.
    The epoch sits in shared memory, so loader workers that persist across epochs (each with
    its storage client) read each pass's epoch from there and plan it themselves."""

    def __init__(self, url: str, *, split: str = "train", batch_size: int, rank: int = 0,
                 world_size: int = 1, num_workers: int = 0, epoch: int = 0, seed: int = 0,
                 skip_batches: int = 0, shuffle_buffer: int = 256, with_masks: bool = True,
                 shuffle: bool = True, max_bad_fraction: float = 0.01,
                 history: Sequence[Segment] = (), subset: Optional[Subset] = None,
                 manifest: Optional[Manifest] = None) -> None:
        super().__init__()
        self.max_bad_fraction = max_bad_fraction
        manifest = manifest if manifest is not None else Manifest.load(url)  # not kept: see ShardIndex
        self.split, self.batch_size, self.rank = split, batch_size, rank
        self.world_size, self.num_workers = world_size, num_workers
        self.seed, self.shuffle = seed, shuffle
        self.shuffle_buffer = shuffle_buffer if shuffle else 0
        self.with_masks = with_masks
        self.start_epoch, self.skip_batches, self.history = epoch, skip_batches, list(history)
        self.subset = subset
        self.counts = np.asarray(shard_counts(manifest, split, subset), dtype=np.int64)
        if not self.history:
            batches_per_epoch(manifest, split, world_size, batch_size, subset)  # too few samples: say so
        # The epoch-independent part of the index (names, sizes); each epoch adds its order.
        self._table = ShardIndex.build(manifest, split, np.arange(len(self.counts)), self.counts)
        self._epoch = torch.tensor(epoch, dtype=torch.int64).share_memory_()
        self._plan: Optional[EpochPlan] = None
        self.plan(epoch)  # a bad start (skip_batches out of range) fails here, not in a worker

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next pass reads: set it before the DataLoader's next ``iter()``."""
        if epoch < self.start_epoch:
            raise ValueError(f"epoch {epoch} comes before this stream's first epoch {self.start_epoch}")
        self._epoch.fill_(epoch)

    def plan(self, epoch: int) -> EpochPlan:
        """This rank's plan of ``epoch`` (kept until another epoch is asked for)."""
        if self._plan is not None and self._plan.epoch == epoch:
            return self._plan
        first = epoch == self.start_epoch
        skip, history = (self.skip_batches, self.history) if first else (0, [])
        total = int(self.counts.sum())
        if history:  # the epoch was partly read under other layouts: split the rest
            base = remaining_positions(total, history, epoch=epoch, seed=self.seed, shuffle_buffer=self.shuffle_buffer)
        else:
            base = Positions.whole(total)
        n_batches, ranks = layout(base, self.world_size, self.batch_size, self.num_workers)
        if not 0 <= skip <= n_batches:
            raise ValueError(f"skip_batches={skip} is outside 0..{n_batches} for this epoch")
        blocks = ranks[self.rank]
        order = epoch_order(len(self.counts), epoch, self.seed, self.shuffle)
        shards = dataclasses.replace(self._table, order=order, ends=np.cumsum(self.counts[order]))
        assignment = resume_assignment([len(b) // self.batch_size for b in blocks], skip, self.num_workers)
        self._plan = EpochPlan(epoch, len(history), n_batches, blocks, shards, assignment)
        return self._plan

    @property
    def n_batches(self) -> int:
        """Batches every rank yields in the current epoch (before any skip)."""
        return self.plan(self.epoch).n_batches

    def __len__(self) -> int:
        plan = self.plan(self.epoch)
        return sum(len(plan.block_positions[b]) // self.batch_size - skip
                   for b, skip in plan.assignment if b is not None)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        plan = self.plan(self.epoch)  # read when the DataLoader starts a pass
        info = get_worker_info()
        block, skip = plan.assignment[info.id if info else 0]
        return iter(()) if block is None else self._read(plan, block, skip)

    def _read(self, plan: EpochPlan, block: int, skip: int) -> Iterator[dict[str, Any]]:
        positions = plan.block_positions[block]
        count = len(positions) // self.batch_size
        raw = read_pieces(pieces_for_positions(plan.shards, positions, self.subset))
        rng = buffer_rng(self.seed, plan.epoch, self.rank, block, plan.segment)
        shuffled = buffer_shuffle(raw, self.shuffle_buffer, rng)
        for _ in range(skip * self.batch_size):  # skipped before decoding: cheap
            next(shuffled)
        yield from self._batches(shuffled, count - skip, count * self.batch_size)

    def _batches(self, samples: Iterator[dict], n_batches: int, block_samples: int) -> Iterator[dict[str, Any]]:
        """Exactly ``n_batches`` batches: corrupt samples are skipped and counted, and the last
        batches are filled up with repeats so every rank keeps the same batch count."""
        chunk: list[dict] = []
        last: list[dict] = []
        bad = 0
        for sample in samples:
            if n_batches == 0:
                return
            try:
                chunk.append(decode(sample, self.with_masks))
            except Exception as e:  # whatever the decoder raised, this sample is unusable
                bad += 1
                log.warning("skipping corrupt sample %s in %s: %s", sample.get("__key__"), sample.get("__url__"), e)
                if bad > self.max_bad_fraction * block_samples:
                    raise ShardSetError(
                        f"{bad} corrupt samples in {block_samples} read from {sample.get('__url__')} and "
                        f"the shards before it, more than data.max_bad_fraction={self.max_bad_fraction}; "
                        "check the shard set with gandist inspect --verify"
                    ) from e
                continue
            if len(chunk) == self.batch_size:
                yield collate(chunk)
                n_batches -= 1
                last, chunk = chunk, []
        while n_batches > 0:
            pool = chunk + last
            if not pool:
                raise ShardSetError("every sample of this loader worker's block was corrupt")
            chunk = [pool[i % len(pool)] for i in range(self.batch_size)]
            yield collate(chunk)
            n_batches -= 1
