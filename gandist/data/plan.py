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

Every process of a resumed run works this out for every rank, so nothing here holds or
loops over one entry per sample of the epoch (that took 4.7 s and 51 MiB per million
samples): the unread part is a ``Positions``, runs of consecutive positions; what a block's
batches read comes from replaying its shuffle buffer's draws, vectorised; the DataLoader's
turn-taking is counted in rounds, not batches. Time grows with the batches read and the
blocks, memory with the blocks: 0.5 s and 7 MiB at 100M samples (bench/plan.py).
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


class Positions:
    """Ascending epoch positions kept as runs of consecutive ones, ``[starts[r], stops[r])``,
    viewed from item ``start`` to item ``stop`` of their concatenation.

    Reading a block leaves its first positions read and at most one shuffle buffer of them
    unread, so each earlier layout adds at most (buffer + 1) runs per block, however many
    batches it took: the epoch's unread part costs memory by blocks, not by samples. Slicing
    gives a view on the same runs, so a layout's blocks cost nothing per sample either.
    """

    __slots__ = ("starts", "stops", "_before", "start", "stop")

    def __init__(self, starts: np.ndarray, stops: np.ndarray, start: int = 0, stop: Optional[int] = None,
                 _before: Optional[np.ndarray] = None) -> None:
        self.starts, self.stops = starts, stops
        # _before[r]: items in the runs before run r (one more entry: all of them).
        self._before = np.concatenate(([0], np.cumsum(stops - starts))) if _before is None else _before
        self.start = start
        self.stop = int(self._before[-1]) if stop is None else stop

    @classmethod
    def whole(cls, total: int) -> "Positions":
        """0, 1, ..., total - 1."""
        return cls.of_runs(np.array([[0, total]], dtype=np.int64))

    @classmethod
    def of_runs(cls, runs: np.ndarray) -> "Positions":
        """From ascending (first, stop) pairs; empty runs dropped, touching ones joined."""
        runs = runs[runs[:, 0] < runs[:, 1]]
        joined = np.ones(len(runs), bool)
        joined[1:] = runs[1:, 0] != runs[:-1, 1]  # a run that starts where the last stopped goes on it
        starts = runs[joined, 0]
        stops = runs[np.concatenate((joined[1:], [True])), 1] if len(runs) else runs[:, 1]
        return cls(starts.copy(), stops.copy())

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, key: slice) -> "Positions":
        if not isinstance(key, slice):
            raise TypeError("Positions are sliced (positions[a:b]) or read with take()")
        start, stop, step = key.indices(len(self))
        if step != 1:
            raise ValueError("Positions slices have step 1")
        return Positions(self.starts, self.stops, self.start + start, self.start + max(start, stop), self._before)

    def take(self, indices: np.ndarray) -> np.ndarray:
        """The positions at ``indices`` (into this view)."""
        i = np.asarray(indices, dtype=np.int64) + self.start
        r = np.searchsorted(self._before, i, side="right") - 1
        return self.starts[r] + (i - self._before[r])

    def select(self, spans: np.ndarray) -> np.ndarray:
        """The position runs of the items in ``spans``, ascending (first, stop) item ranges of
        this view: each span is cut where the runs it covers break."""
        spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
        spans = spans[spans[:, 0] < spans[:, 1]] + self.start
        if not len(spans):
            return np.empty((0, 2), np.int64)
        first = np.searchsorted(self._before, spans[:, 0], side="right") - 1
        last = np.searchsorted(self._before, spans[:, 1] - 1, side="right") - 1
        count = last - first + 1  # runs each span touches: one piece in each
        span = np.repeat(np.arange(len(spans)), count)
        run = first[span] + np.arange(len(span)) - np.repeat(np.cumsum(count) - count, count)
        lo = np.maximum(spans[span, 0], self._before[run]) - self._before[run]
        hi = np.minimum(spans[span, 1], self._before[run + 1]) - self._before[run]
        return np.stack((self.starts[run] + lo, self.starts[run] + hi), axis=1)

    def runs(self) -> np.ndarray:
        """(first, stop) of each run of consecutive positions in this view, in order."""
        return self.select(np.array([[0, len(self)]]))

    def array(self) -> np.ndarray:
        """Every position, one entry each: for small views and tests."""
        runs = self.runs()
        return np.concatenate([np.arange(a, b) for a, b in runs]) if len(runs) else np.empty(0, np.int64)

    def __iter__(self) -> Iterator[int]:
        return iter(self.array().tolist())


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
    One entry per batch: the model the functions below compute in closed form.
    """
    return sorted(((w, k) for w, c in enumerate(counts) for k in range(c)), key=lambda wk: (wk[1], wk[0]))


def _round_now(counts: Sequence[int], skip: int) -> tuple[int, list[int], list[int]]:
    """Where the first ``skip`` batches of ``rank_batch_order(counts)`` (fewer than all) end:
    the whole rounds taken, then the workers of the next round that had their turn in it and
    those still waiting, each in order. Rounds before r hold sum(min(c, r)) batches: a binary
    search over rounds, not a walk over batches."""
    lo, hi = 0, max(counts)  # all batches lie before round max(counts), and skip is fewer
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if sum(min(c, mid) for c in counts) <= skip:
            lo = mid
        else:
            hi = mid - 1
    in_round = [w for w, c in enumerate(counts) if c > lo]
    taken = skip - sum(min(c, lo) for c in counts)
    return lo, in_round[:taken], in_round[taken:]


def consumed_per_block(counts: Sequence[int], skip: int) -> list[int]:
    """Batches of each block among the first ``skip`` the DataLoader yields."""
    if skip >= sum(counts):
        return list(counts)
    rounds, had_turn, _ = _round_now(counts, skip)
    return [min(c, rounds) + (w in had_turn) for w, c in enumerate(counts)]


def resume_assignment(counts: Sequence[int], skip: int, num_workers: int) -> list[tuple[Optional[int], int]]:
    """For each loader worker of a resumed epoch: (block it reads, batches of it to skip).

    Blocks are handed to loader workers in the order their next batch was due, so the resumed
    DataLoader's turn-taking continues the interrupted order exactly.
    """
    consumed = consumed_per_block(counts, skip)
    due: list[int] = []
    if skip < sum(counts):
        rounds, had_turn, waiting = _round_now(counts, skip)
        # The rest of this round, then those that had their turn in it and have a next one.
        due = waiting + [w for w in had_turn if counts[w] > rounds + 1]
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


# Draws replayed at a time: bounds the memory of replaying a long block.
DRAW_CHUNK = 1 << 20


def left_unread(length: int, k: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Which items of ``range(length)`` are not among the first ``k`` that ``buffer_shuffle``
    yields from the same ``rng``: (those below ``rest``, ascending; ``rest``), all from
    ``rest`` on being unread too. O(k) vectorised work and O(size) memory, not a loop.

    While items arrive, step t draws slot j_t, yields what it holds and puts item size + t
    there; after k steps the items [0, size + k) have come in, k have gone out, and each
    slot holds the last item put in it (or its first). ``rng.integers(n, size=m)`` gives the
    numbers m calls of ``rng.integers(n)`` give (tests/data/test_plan.py checks this against
    the loop). Past the arrivals, the buffer's seeded permutation gives out the rest.
    """
    if size <= 1 or k == 0:
        return np.empty(0, np.int64), k
    fill = min(size, length)  # the buffer's items; the rest arrive one per step
    steps = length - fill
    last = np.full(fill, -1, np.int64)  # the last step that drew each slot
    for t in range(0, min(k, steps), DRAW_CHUNK):
        draws = rng.integers(fill, size=min(DRAW_CHUNK, min(k, steps) - t))
        np.maximum.at(last, draws, np.arange(t, t + len(draws)))
    buffer = np.where(last >= 0, fill + last, np.arange(fill))
    if k <= steps:
        return np.sort(buffer), fill + k
    return np.sort(buffer[rng.permutation(fill)][k - steps:]), length


def buffer_rng(seed: int, epoch: int, rank: int, block: int, segment: int) -> np.random.Generator:
    parts: tuple = ("buffer", epoch, rank, block) + (("segment", segment) if segment else ())
    return np.random.default_rng(derive_seed(seed, *parts))


def layout(base: Positions, world_size: int, batch_size: int,
           num_workers: int) -> tuple[int, list[list[Positions]]]:
    """(batches per rank, positions of every loader worker's block, per rank) over ``base``."""
    n = len(base) // (world_size * batch_size)
    ranks = []
    for r in range(world_size):
        rank_pos = base[r * n * batch_size:(r + 1) * n * batch_size]
        ranks.append([rank_pos[first * batch_size:(first + count) * batch_size]
                      for first, count in worker_blocks(n, num_workers)])
    return n, ranks


def remaining_positions(total: int, history: Sequence[Segment], *, epoch: int, seed: int,
                        shuffle_buffer: int) -> Positions:
    """Positions of the epoch not read by the batches ``history`` records, in sequence order."""
    remaining = Positions.whole(total)
    for index, seg in enumerate(history):
        n, ranks = layout(remaining, seg.world_size, seg.batch_size, seg.num_workers)
        kept = []  # item spans of ``remaining`` still unread, ascending
        for rank, blocks in enumerate(ranks):
            consumed = consumed_per_block([len(b) // seg.batch_size for b in blocks], seg.batches)
            for w, block in enumerate(blocks):
                left, rest = left_unread(len(block), consumed[w] * seg.batch_size, shuffle_buffer,
                                         buffer_rng(seed, epoch, rank, w, index))
                kept += [np.stack((left, left + 1), axis=1) + block.start, [[block.start + rest, block.stop]]]
        kept.append([[n * seg.world_size * seg.batch_size, len(remaining)]])  # the remainder no rank read
        remaining = Positions.of_runs(remaining.select(np.concatenate(kept)))
    return remaining
