"""Plan benchmark: what an elastic resume and a large manifest cost every process.

remaining_positions (gandist.data.plan) against the plan as first written, one Python
integer per sample (tests/helpers.py's ref_remaining), at 1M samples with the same history,
then the compact plan alone at 100M (the old one would take minutes there: its figure is
extrapolated linearly from 1M). World size 64, batch 32, 4 loader workers, the config's
default shuffle buffer; the history is two earlier layouts (64 ranks, then 32) that read 8%
of the epoch (early) or 90% (late). Time is measured untraced, peak memory in a second run
under tracemalloc (numpy reports to it).

Then a synthetic manifest of 1M shards (manifest.json as Manifest.save writes it):
Manifest.load's time and memory, and what a stream does per epoch (ShardIndex) and per
loader worker (its block's pieces), against the per-shard loop that was there before.

    .venv/bin/python bench/plan.py [--samples 100000000] [--shards 1000000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
import tracemalloc
from typing import Any, Callable

from common import Row, finish
from helpers import ref_pieces, ref_remaining

from gandist.config.schema import DataConfig
from gandist.data.manifest import FORMAT, MANIFEST, Manifest
from gandist.data.plan import Segment, layout, remaining_positions
from gandist.data.stream import ShardIndex, pieces_for_positions, shard_order
from gandist.data.subsets import shard_counts

WORLD, BATCH, WORKERS = 64, 32, 4
MIB = 2 ** 20


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    began = time.perf_counter()
    out = fn()
    return time.perf_counter() - began, out


def peak_mib(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(peak MiB while ``fn`` ran, MiB its result still holds, the result)."""
    gc.collect()
    tracemalloc.start()
    try:
        out = fn()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / MIB, held / MIB, out


# Two earlier layouts (64 ranks, then 32), as the fraction of the epoch each read: early in
# the epoch (2,930 and 1,953 batches per rank at 100M) and late (90% read in all).
HISTORIES = {"early": (0.06, 0.02), "late": (0.5, 0.4)}


def history_for(samples: int, read: tuple[float, float]) -> list[Segment]:
    per_rank = samples // (WORLD * BATCH)
    return [Segment(WORLD, BATCH, WORKERS, batches=round(read[0] * per_rank)),
            Segment(WORLD // 2, BATCH, WORKERS, batches=round(2 * read[1] * per_rank))]  # half the ranks


def write_manifest(root: str, shards: int, per_shard: int = 100) -> str:
    """manifest.json of ``shards`` shards, laid out as Manifest.save writes it (indent 1)."""
    entries = ",\n".join(
        f'    {{\n     "name": "train-{i:07d}.tar",\n     "samples": {per_shard},\n     "bytes": {10_000_000 + i},'
        f'\n     "sha256": "{i:064x}"\n    }}' for i in range(shards))
    head = {"source": "synthetic", "image_size": 64, "classes": None, "has_masks": False, "tasks": ["generate"],
            "seed": 0, "labels": None, "format": FORMAT, "version": 1, "created": "", "gandist_version": ""}
    text = json.dumps(head, indent=1)[:-2] + (
        f',\n "splits": {{\n  "train": {{\n   "samples": {shards * per_shard},\n   "shards": [\n{entries}\n   ]\n  }}\n }}\n}}')
    with open(os.path.join(root, MANIFEST), "w") as f:
        f.write(text)
    return root


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000_000, help="the compact plan's large run")
    parser.add_argument("--compare-samples", type=int, default=1_000_000, help="where both plans run")
    parser.add_argument("--shards", type=int, default=1_000_000)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    buffer = DataConfig().shuffle_buffer
    details: dict[str, Any] = {"world_size": WORLD, "batch_size": BATCH, "loader_workers": WORKERS,
                               "shuffle_buffer": buffer}

    small, large = args.compare_samples, args.samples
    scale = large / small
    rows = []
    for name, read in HISTORIES.items():
        def plan(samples: int, old: bool = False, read: tuple[float, float] = read) -> Callable[[], Any]:
            fn = ref_remaining if old else remaining_positions
            return lambda: fn(samples, history_for(samples, read), epoch=3, seed=0, shuffle_buffer=buffer)

        old_s, old_out = timed(plan(small, old=True))
        new_s, new_out = timed(plan(small))
        assert new_out.array().tolist() == old_out, "the compact plan differs from the reference"
        del old_out
        old_mib, _, _ = peak_mib(plan(small, old=True))
        new_mib, _, _ = peak_mib(plan(small))
        large_s, remaining = timed(plan(large))
        seen, runs = large - len(remaining), len(remaining.starts)
        del remaining
        large_mib, large_held, _ = peak_mib(plan(large))
        details[name] = dict(
            history=[s.to_dict() for s in history_for(large, read)], read_at_large=seen, runs_at_large=runs,
            compare_samples=small, old_s=old_s, new_s=new_s, old_peak_mib=old_mib, new_peak_mib=new_mib,
            large_samples=large, large_s=large_s, large_peak_mib=large_mib, large_held_mib=large_held,
            old_extrapolated_s=old_s * scale, old_extrapolated_mib=old_mib * scale)
        part = f"{sum(read):.0%} read"
        rows += [
            Row(f"plan: resume, {part}, {small / 1e6:g}M samples, new vs old", new_s, old_s, new_s / old_s,
                "report", "s"),
            Row("plan: the same, peak memory", new_mib, old_mib, new_mib / old_mib, "report", "MiB"),
            Row(f"plan: resume, {part}, {large / 1e6:g}M (old: ~{old_s * scale:.0f} s)", large_s, None, large_s,
                "< 5", "s"),
            Row(f"plan: the same, peak memory (old: ~{old_mib * scale:.0f})", large_mib, None, large_mib,
                "< 500", "MiB"),
        ]

    with tempfile.TemporaryDirectory() as tmp:
        url = write_manifest(tmp, args.shards)
        load_s, _ = timed(lambda: Manifest.load(url))
        load_peak, load_held, manifest = peak_mib(lambda: Manifest.load(url))
        counts = shard_counts(manifest, "train")
        order = shard_order(manifest, "train", epoch=0, seed=0, shuffle=True)
        index_s, index = timed(lambda: ShardIndex.build(manifest, "train", order, counts))
        index_mib = sum(a.nbytes for a in (index.names, index.sizes, index.order, index.ends)) / MIB
        # One loader worker's block of an epoch with 64 ranks and 4 workers each.
        _, ranks = layout(remaining_positions(sum(counts), [], epoch=0, seed=0, shuffle_buffer=buffer),
                          WORLD, BATCH, WORKERS)
        block = ranks[WORLD // 2][1]
        new_pieces_s, pieces = timed(lambda: pieces_for_positions(index, block))
        order_list = order.tolist()
        old_pieces_s, old_pieces = timed(lambda: ref_pieces(manifest, "train", order_list, range(
            int(block.take([0])[0]), int(block.take([len(block) - 1])[0]) + 1)))
        assert pieces == old_pieces, "the pieces differ from the reference"
        details.update(shards=args.shards, manifest_mib_on_disk=os.path.getsize(os.path.join(tmp, MANIFEST)) / MIB,
                       load_s=load_s, load_peak_mib=load_peak, load_held_mib=load_held, shard_index_s=index_s,
                       shard_index_mib=index_mib, pieces_new_s=new_pieces_s, pieces_old_s=old_pieces_s,
                       pieces=len(pieces))

    rows += [
        Row(f"manifest: Manifest.load at {args.shards / 1e6:g}M shards", load_s, None, load_s, "report", "s"),
        Row(f"manifest: held after load at {args.shards / 1e6:g}M shards", load_held, None, load_held, "report", "MiB"),
        Row(f"stream: shard index per epoch, {args.shards / 1e6:g}M shards", index_s, None, index_s, "report", "s"),
        Row("stream: a loader worker's pieces, new vs old", new_pieces_s, old_pieces_s,
            new_pieces_s / old_pieces_s, "<= 0.10", "s"),
    ]
    return finish(rows, args.json, **details)


if __name__ == "__main__":
    sys.exit(main())
