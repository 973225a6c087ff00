"""Which samples of an epoch each rank and loader worker reads, and in what order.

Pure functions of the manifest's counts, the seed and the layout (world size, batch size,
loader workers): no I/O. Positions are indices into the epoch's global sequence (the
shards in the epoch's seeded order, their samples concatenated).

An epoch may be read under several layouts when a run resumes with a different number of
workers or batch size: each earlier layout is a ``Segment`` recording how many batches
every rank consumed under it. The samples those batches held are worked out again here
(the shuffle buffer's choices depend only on positions and seeds, not on content), and
the rest of the epoch is split afresh, so every sample not yet seen in the epoch is still
seen exactly once (up to the usual remainder of fewer than world size x batch size).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterator, Optional, Sequence

import numpy as np

from gandist.seeding import derive_seed


@dataclass(frozen=True)
class Segment:
    """Part of an epoch read under one layout."""

    world_size: int
    batch_size: int
    num_workers: int
    batches: int  # batches every rank consumed under this layout

    def to_dict(self) -> dict:
        return asdict(self)


def worker_blocks(n_batches: int, num_workers: int) -> list[tuple[int, int]]:
    """(first batch, batch count) of each loader worker's contiguous block, as even as possible."""
    workers = max(1, num_workers)
    base, extra = divmod(n_batches, workers)
    blocks, first = [], 0
    for w in range(workers):
        count = base + (1 if w < extra else 0)
        blocks.append((first, count))
        first += count
    return blocks


def rank_batch_order(counts: list[int]) -> list[tuple[int, int]]:
    """(block, index in block) in the order the DataLoader yields them.

    The DataLoader asks its workers in turn and drops a worker once it is exhausted, so the
    k-th batch of every worker comes before the (k+1)-th of any: order by (k, worker).
    """
    return sorted(((w, k) for w, c in enumerate(counts) for k in range(c)), key=lambda wk: (wk[1], wk[0]))


def consumed_per_block(counts: list[int], skip: int) -> list[int]:
    consumed = [0] * len(counts)
    for w, _ in rank_batch_order(counts)[:skip]:
        consumed[w] += 1
    return consumed


def resume_assignment(counts: list[int], skip: int, num_workers: int) -> list[tuple[Optional[int], int]]:
    """For each loader worker of a resumed epoch: (block it reads, batches of it to skip).

    Blocks are handed to loader workers in the order their next batch was due, so the resumed
    DataLoader's turn-taking continues the interrupted order exactly.
    """
    consumed = consumed_per_block(counts, skip)
    due: list[int] = []
    for w, _ in rank_batch_order(counts)[skip:]:
        if w not in due:
            due.append(w)
    workers = max(1, num_workers)
    return [(due[i], consumed[due[i]]) if i < len(due) else (None, 0) for i in range(workers)]


def buffer_shuffle(items: Iterator, size: int, rng: np.random.Generator) -> Iterator:
    """Seeded shuffle within a window of ``size`` items (size 0 or 1 keeps the order)."""
    if size <= 1:
        yield from items
        return
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(len(buffer)))
        buffer[j], item = item, buffer[j]
        yield item
    for j in rng.permutation(len(buffer)):
        yield buffer[int(j)]


def buffer_rng(seed: int, epoch: int, rank: int, block: int, segment: int) -> np.random.Generator:
    parts: tuple = ("buffer", epoch, rank, block) + (("segment", segment) if segment else ())
    return np.random.default_rng(derive_seed(seed, *parts))


def layout(base: Sequence[int], world_size: int, batch_size: int,
           num_workers: int) -> tuple[int, list[list[Sequence[int]]]]:
    """(batches per rank, positions of every loader worker's block, per rank) over ``base``."""
    n = len(base) // (world_size * batch_size)
    ranks = []
    for r in range(world_size):
        rank_pos = base[r * n * batch_size:(r + 1) * n * batch_size]
        ranks.append([rank_pos[first * batch_size:(first + count) * batch_size]
                      for first, count in worker_blocks(n, num_workers)])
    return n, ranks


def remaining_positions(total: int, history: Sequence[Segment], *, epoch: int, seed: int,
                        shuffle_buffer: int) -> Sequence[int]:
    """Positions of the epoch not read by the batches ``history`` records, in sequence order."""
    remaining: Sequence[int] = range(total)
    for index, seg in enumerate(history):
        seen: set[int] = set()
        _, ranks = layout(remaining, seg.world_size, seg.batch_size, seg.num_workers)
        for rank, blocks in enumerate(ranks):
            consumed = consumed_per_block([len(b) // seg.batch_size for b in blocks], seg.batches)
            for w, block in enumerate(blocks):
                order = buffer_shuffle(iter(range(len(block))), shuffle_buffer,
                                       buffer_rng(seed, epoch, rank, w, index))
                for _ in range(consumed[w] * seg.batch_size):
                    seen.add(block[next(order)])
        remaining = [p for p in remaining if p not in seen]
    return remaining
