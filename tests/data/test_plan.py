"""gandist.data.plan's compact plan against the plan as first written, one integer per sample
(tests/helpers.py's ref_*): the same positions, batch order and shard pieces, over random
layouts and histories."""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest

from gandist.data.manifest import Manifest
from gandist.data.plan import (
    Positions,
    Segment,
    buffer_shuffle,
    consumed_per_block,
    layout,
    left_unread,
    remaining_positions,
    resume_assignment,
)
from gandist.data.stream import ShardIndex, pieces_for_positions, shard_order
from gandist.data.subsets import shard_counts
from helpers import ref_assignment, ref_consumed, ref_layout, ref_pieces, ref_remaining


def random_history(rnd: random.Random, total: int) -> list[Segment]:
    history = []
    for _ in range(rnd.randint(1, 3)):
        world_size, batch_size = rnd.randint(1, 6), rnd.randint(1, 9)
        most = max(0, total // (world_size * batch_size))
        history.append(Segment(world_size, batch_size, rnd.randint(0, 4), rnd.randint(0, most // 2 + 1)))
    return history


@pytest.mark.parametrize("trial", range(40))
def test_remaining_positions_match_the_per_sample_reference(trial):
    rnd = random.Random(trial)
    total = rnd.choice([rnd.randint(1, 60), rnd.randint(100, 3000)])
    history = random_history(rnd, total)
    shuffle_buffer = rnd.choice([0, 1, 2, 7, 64, 256])
    kwargs = dict(epoch=rnd.randint(0, 3), seed=rnd.randint(0, 5), shuffle_buffer=shuffle_buffer)
    expected = ref_remaining(total, history, **kwargs)
    got = remaining_positions(total, history, **kwargs)
    assert len(got) == len(expected) and got.array().tolist() == expected
    # The next layout's blocks are the same slices of it.
    world_size, batch_size, num_workers = rnd.randint(1, 4), rnd.randint(1, 5), rnd.randint(0, 3)
    n, ranks = layout(got, world_size, batch_size, num_workers)
    ref_n, ref_ranks = ref_layout(expected, world_size, batch_size, num_workers)
    assert n == ref_n
    assert [[b.array().tolist() for b in blocks] for blocks in ranks] == ref_ranks


def test_no_history_is_the_whole_epoch():
    got = remaining_positions(1000, [], epoch=0, seed=0, shuffle_buffer=256)
    assert len(got) == 1000 and got.runs().tolist() == [[0, 1000]]


@pytest.mark.parametrize("size", [0, 1, 2, 3, 16, 256])
def test_left_unread_is_what_buffer_shuffle_has_not_yielded(size, monkeypatch):
    from gandist.data import plan

    monkeypatch.setattr(plan, "DRAW_CHUNK", 5)  # the draws replayed in several chunks too
    rnd = random.Random(size)
    for _ in range(200):
        length = rnd.randint(0, 3 * size + 20)
        k = rnd.randint(0, length)
        yielded = set(itertools.islice(buffer_shuffle(iter(range(length)), size, np.random.default_rng(k)), k))
        left, rest = left_unread(length, k, size, np.random.default_rng(k))
        assert left.tolist() + list(range(rest, length)) == [i for i in range(length) if i not in yielded]


def test_batch_order_in_closed_form_matches_the_dataloader_model():
    rnd = random.Random(0)
    for _ in range(500):
        counts = [rnd.randint(0, 6) for _ in range(rnd.randint(1, 5))]
        for skip in range(sum(counts) + 2):
            assert consumed_per_block(counts, skip) == ref_consumed(counts, skip)
            for workers in (len(counts), len(counts) + 1):
                assert resume_assignment(counts, skip, workers) == ref_assignment(counts, skip, workers)


def random_positions(rnd: random.Random, total: int) -> tuple[Positions, list[int]]:
    """Positions of 0..total-1 with some left out, built from runs, and the same as a list."""
    kept = sorted(rnd.sample(range(total), rnd.randint(0, total)))
    runs = np.array([[p, p + 1] for p in kept] + [[total, total]], dtype=np.int64)  # and an empty one
    return Positions.of_runs(runs), kept


def test_positions_slice_take_select_and_runs():
    rnd = random.Random(1)
    for _ in range(300):
        base, kept = random_positions(rnd, rnd.randint(0, 80))
        assert len(base) == len(kept) and base.array().tolist() == kept
        assert all(stop < start for (_, stop), (start, _) in zip(base.runs().tolist(), base.runs().tolist()[1:]))
        a, b = sorted(rnd.randint(0, len(kept)) for _ in range(2))
        view = base[a:b]
        assert len(view) == b - a and view.array().tolist() == kept[a:b]
        assert view.take(np.arange(len(view))).tolist() == kept[a:b]
        assert view[1:][:-1].array().tolist() == kept[a:b][1:][:-1]
        cuts = sorted(rnd.sample(range(len(view) + 1), min((len(view) + 1) // 2, rnd.randint(0, 4)) * 2))
        spans = np.array(cuts, dtype=np.int64).reshape(-1, 2)
        chosen = [kept[a + i] for lo, hi in spans.tolist() for i in range(lo, hi)]
        assert [p for lo, hi in view.select(spans).tolist() for p in range(lo, hi)] == chosen
    assert len(Positions.whole(0)) == 0 and Positions.whole(0).runs().shape == (0, 2)


def synthetic_manifest(rnd: random.Random) -> Manifest:
    shards = [{"name": f"train-{i:06d}.tar", "samples": rnd.randint(0, 9), "bytes": rnd.randint(1, 10**6)}
              for i in range(rnd.randint(1, 12))]
    return Manifest(source="synthetic", image_size=8, classes=None, has_masks=False, tasks=["generate"],
                    splits={"train": {"samples": sum(s["samples"] for s in shards), "shards": shards}},
                    url="memory://plan-test")


@pytest.mark.parametrize("with_subset", [False, True])
def test_pieces_match_the_per_sample_reference(with_subset):
    rnd = random.Random(int(with_subset))
    for trial in range(150):
        manifest = synthetic_manifest(rnd)
        subset = None
        if with_subset:
            subset = [np.array(sorted(rnd.sample(range(s["samples"]), rnd.randint(0, s["samples"]))), dtype=np.int64)
                      for s in manifest.shards("train")]
        counts = shard_counts(manifest, "train", subset)
        total = sum(counts)
        base, _ = random_positions(rnd, total)
        a, b = sorted(rnd.randint(0, len(base)) for _ in range(2))
        view = base[a:b]
        order = shard_order(manifest, "train", epoch=trial, seed=0, shuffle=trial % 3 > 0)
        got = pieces_for_positions(ShardIndex.build(manifest, "train", order, counts), view, subset)
        assert got == ref_pieces(manifest, "train", order.tolist(), view.array().tolist(), subset)


def test_shard_urls_come_from_the_manifest():
    manifest = synthetic_manifest(random.Random(3))
    shards = manifest.shards("train")
    index = ShardIndex.build(manifest, "train", np.arange(len(shards)), shard_counts(manifest, "train"))
    assert [index.url(i) for i in range(len(shards))] == manifest.shard_urls("train")
