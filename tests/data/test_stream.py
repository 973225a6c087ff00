import itertools

import pytest
import torch

from gandist.data.manifest import ShardSetError
from gandist.data.shards import write_shard_set
from gandist.data.plan import rank_batch_order
from gandist.data.loader import epoch_loader
from gandist.data.stream import batches_per_epoch, covering_batch_size
from gandist.data.manifest import Manifest


@pytest.fixture(scope="module")
def uneven(tmp_path_factory) -> str:
    """50 samples in shards of 7 (the last holds 1): shard sizes do not divide anything."""
    dest = str(tmp_path_factory.mktemp("stream") / "set")
    write_shard_set("builtin:shapes", dest, samples=50, heldout=0, shard_size=7, size=16)
    return dest


def epoch_keys(url, *, world_size, batch_size, num_workers, epoch=0, seed=0, skip=0, rank=0):
    loader = epoch_loader(url, batch_size=batch_size, rank=rank, world_size=world_size,
                          num_workers=num_workers, epoch=epoch, seed=seed, skip_batches=skip)
    return [batch["key"] for batch in loader]


@pytest.mark.parametrize("world_size, num_workers", list(itertools.product([1, 2, 3], [0, 1, 2])))
def test_ranks_are_disjoint_complete_and_equal(uneven, world_size, num_workers):
    batch_size = 4
    per_rank = [epoch_keys(uneven, world_size=world_size, batch_size=batch_size,
                           num_workers=num_workers, rank=r) for r in range(world_size)]
    expected_batches = 50 // (world_size * batch_size)
    assert [len(b) for b in per_rank] == [expected_batches] * world_size
    assert all(len(batch) == batch_size for batches in per_rank for batch in batches)
    keys = [k for batches in per_rank for batch in batches for k in batch]
    assert len(keys) == len(set(keys)) == expected_batches * world_size * batch_size
    # Every rank x worker split of the same epoch covers the same usable samples.
    reference = set(k for r in range(world_size) for b in epoch_keys(
        uneven, world_size=world_size, batch_size=batch_size, num_workers=0, rank=r) for k in b)
    assert set(keys) == reference


def test_complete_when_sizes_divide(uneven):
    keys = {k for r in range(2) for b in epoch_keys(uneven, world_size=2, batch_size=5, num_workers=2, rank=r)
            for k in b}
    assert keys == {f"train_{i:08d}" for i in range(50)}


@pytest.mark.parametrize("world_size, cap, want", [(1, 32, 25), (2, 32, 25), (1, 8, 5), (3, 8, 8)])
def test_the_covering_batch_size_reads_every_sample_it_can(uneven, world_size, cap, want):
    """What evaluation reads every held-out image with: whole batches (the stream drops a
    remainder) of 25 or 5 cover all 50 samples, where 32 or 8 would read 32 or 48; three ranks
    cannot share 50 evenly, and 8 reads the most they can (48)."""
    size = covering_batch_size(50, world_size, cap)
    assert size == want
    keys = {k for r in range(world_size)
            for b in epoch_keys(uneven, world_size=world_size, batch_size=size, num_workers=0, rank=r) for k in b}
    best = max(50 // (world_size * b) * world_size * b for b in range(1, cap + 1))
    assert len(keys) == best == (50 if world_size < 3 else 48)


def test_order_is_seeded_per_epoch(uneven):
    a = epoch_keys(uneven, world_size=1, batch_size=5, num_workers=1, epoch=0)
    assert a == epoch_keys(uneven, world_size=1, batch_size=5, num_workers=1, epoch=0)
    assert a != epoch_keys(uneven, world_size=1, batch_size=5, num_workers=1, epoch=1)
    assert a != epoch_keys(uneven, world_size=1, batch_size=5, num_workers=1, epoch=0, seed=1)


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 loader workers on 2 cores
@pytest.mark.parametrize("world_size, batch_size, num_workers", [(1, 7, 2), (1, 5, 3), (2, 4, 0), (2, 3, 2)])
def test_resume_continues_the_epoch_exactly(uneven, world_size, batch_size, num_workers):
    rank = world_size - 1
    full = epoch_keys(uneven, world_size=world_size, batch_size=batch_size, num_workers=num_workers,
                      epoch=2, rank=rank)
    for skip in range(len(full) + 1):
        resumed = epoch_keys(uneven, world_size=world_size, batch_size=batch_size,
                             num_workers=num_workers, epoch=2, rank=rank, skip=skip)
        assert resumed == full[skip:], f"skip={skip}"


def test_resumed_tensors_match(uneven):
    def batches(skip):
        return list(epoch_loader(uneven, batch_size=4, num_workers=2, epoch=1, skip_batches=skip))
    full, resumed = batches(0), batches(5)
    for a, b in zip(full[5:], resumed):
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
    assert len(resumed) == len(full) - 5


def test_batch_contents(uneven):
    batch = next(iter(epoch_loader(uneven, batch_size=3)))
    assert batch["image"].shape == (3, 3, 16, 16) and batch["image"].dtype == torch.float32
    assert -1.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["mask"].shape == (3, 16, 16) and batch["mask"].dtype == torch.int64
    assert "mask" not in next(iter(epoch_loader(uneven, batch_size=3, with_masks=False)))


def test_too_few_samples_is_a_clear_error(uneven):
    with pytest.raises(ShardSetError, match="50 samples, fewer than world size 4 x batch size 16"):
        batches_per_epoch(Manifest.load(uneven), "train", 4, 16)


def test_dataloader_order_model():
    # Workers with 3, 3 and 2 batches: turn by turn, an exhausted worker drops out.
    assert rank_batch_order([3, 3, 2]) == [(0, 0), (1, 0), (2, 0), (0, 1), (1, 1), (2, 1), (0, 2), (1, 2)]


def corrupt_one_sample(url: str, shard: str, key: str) -> None:
    """Rewrite a shard with one sample's image replaced by bytes no decoder accepts."""
    import io
    import os
    import tarfile

    path = os.path.join(url, shard)
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(path, "w") as tar:
        for member, data in members:
            if member.name == f"{key}.image.png":
                data = b"\x89PNG but not really"
                member.size = len(data)
            tar.addfile(member, io.BytesIO(data))


def test_corrupt_sample_is_skipped_counted_and_stops_past_the_limit(tmp_path, caplog):
    url = str(tmp_path / "set")
    write_shard_set("builtin:shapes", url, samples=16, heldout=0, shard_size=8, size=16)
    corrupt_one_sample(url, "train-000000.tar", "train_00000003")
    batches = list(epoch_loader(url, batch_size=4, max_bad_fraction=0.1))
    assert len(batches) == 4 and all(len(b["key"]) == 4 for b in batches)  # same count: DDP-safe
    keys = [k for b in batches for k in b["key"]]
    assert "train_00000003" not in keys and len(set(keys)) == 15  # one repeat fills the gap
    assert "skipping corrupt sample train_00000003" in caplog.text
    with pytest.raises(ShardSetError, match="1 corrupt samples in 16.*train-000000.tar.*max_bad_fraction=0.0"):
        list(epoch_loader(url, batch_size=4, max_bad_fraction=0.0))


def test_truncated_shard_is_named(tmp_path):
    url = str(tmp_path / "set")
    write_shard_set("builtin:shapes", url, samples=8, heldout=0, shard_size=8, size=16)
    shard = tmp_path / "set" / "train-000000.tar"
    shard.write_bytes(shard.read_bytes()[:3000])
    with pytest.raises(ShardSetError, match="train-000000.tar"):
        list(epoch_loader(url, batch_size=4))


def test_streamed_and_read_ahead_shards_give_the_same_batches(uneven, monkeypatch):
    from gandist.data import stream

    read_ahead = epoch_keys(uneven, world_size=1, batch_size=5, num_workers=1, epoch=3)
    monkeypatch.setattr(stream, "PREFETCH_MAX_BYTES", 0)  # every shard streamed instead
    assert epoch_keys(uneven, world_size=1, batch_size=5, num_workers=0, epoch=3) == read_ahead


def first_batches(url, k, *, world_size, batch_size, num_workers, rank, epoch, history=(), skip=0):
    loader = epoch_loader(url, batch_size=batch_size, rank=rank, world_size=world_size,
                          num_workers=num_workers, epoch=epoch, history=history, skip_batches=skip)
    return [b["key"] for b in itertools.islice(loader, k)]


@pytest.mark.parametrize("old, new", [((2, 4, 2), (3, 2, 1)), ((1, 5, 0), (2, 3, 2)), ((3, 2, 1), (1, 4, 2))])
def test_a_new_layout_mid_epoch_sees_every_unseen_sample_once(uneven, old, new):
    from gandist.data.plan import Segment

    (w0, b0, l0), (w1, b1, l1) = old, new
    seen = [k for r in range(w0) for batch in first_batches(
        uneven, 2, world_size=w0, batch_size=b0, num_workers=l0, rank=r, epoch=1) for k in batch]
    history = [Segment(w0, b0, l0, batches=2)]
    after_per_rank = [first_batches(uneven, 10**6, world_size=w1, batch_size=b1, num_workers=l1, rank=r,
                                    epoch=1, history=history) for r in range(w1)]
    assert len({len(batches) for batches in after_per_rank}) == 1  # equal batch counts: DDP-safe
    after = [k for batches in after_per_rank for batch in batches for k in batch]
    assert len(seen + after) == len(set(seen + after))  # nothing read twice in the epoch
    missing = {f"train_{i:08d}" for i in range(50)} - set(seen) - set(after)
    assert len(missing) < w1 * b1  # only the new layout's remainder is left out

    # Resuming inside the new layout continues it exactly, and a second change of layout
    # still never repeats a sample.
    full = after_per_rank[0]
    resumed = first_batches(uneven, 10**6, world_size=w1, batch_size=b1, num_workers=l1, rank=0,
                            epoch=1, history=history, skip=1)
    assert resumed == full[1:]
    history2 = history + [Segment(w1, b1, l1, batches=1)]
    seen2 = seen + [k for batches in after_per_rank for k in batches[0]]
    rest = [k for r in range(2) for batch in first_batches(
        uneven, 10**6, world_size=2, batch_size=2, num_workers=1, rank=r, epoch=1, history=history2)
        for k in batch]
    assert not set(rest) & set(seen2) and len(rest) == len(set(rest))


@pytest.mark.filterwarnings("ignore:This DataLoader will create")  # 3 loader workers on 2 cores
@pytest.mark.parametrize("world_size, batch_size, num_workers, skip, history",
                         [(1, 5, 2, 0, 0), (1, 7, 3, 2, 0), (2, 3, 2, 4, 0), (2, 4, 0, 3, 0), (2, 3, 2, 1, 2)])
def test_one_loader_across_epochs_reads_what_a_fresh_loader_per_epoch_reads(
        uneven, world_size, batch_size, num_workers, skip, history):
    from gandist.data.plan import Segment
    from gandist.data.loader import StreamLoader

    # Resumed mid-epoch 2 (after layouts of its own when `history`), then whole epochs 3 and 4.
    earlier = [Segment(1, 4, 1, batches=history)] if history else []
    rank = world_size - 1
    options = dict(batch_size=batch_size, rank=rank, world_size=world_size, num_workers=num_workers)
    loader = StreamLoader(uneven, epoch=2, skip_batches=skip, history=earlier, **options)
    for epoch in (2, 3, 4):
        got = list(loader.epoch(epoch))
        first = epoch == 2
        fresh = list(epoch_loader(uneven, epoch=epoch, skip_batches=skip if first else 0,
                                  history=earlier if first else (), **options))
        assert [b["key"] for b in got] == [b["key"] for b in fresh], f"epoch {epoch}"
        assert all(torch.equal(a["image"], b["image"]) for a, b in zip(got, fresh))
    # The same epoch again is the same pass again.
    assert [b["key"] for b in loader.epoch(4)] == [b["key"] for b in fresh]
    with pytest.raises(ValueError, match="before this stream's first epoch 2"):
        loader.epoch(1)


def test_loader_workers_persist_across_epochs(uneven, monkeypatch):
    import os

    from gandist.data import stream
    from gandist.data.loader import StreamLoader

    # Each batch says which process made it (the workers are forked with this patch in place).
    collate = stream.collate
    monkeypatch.setattr(stream, "collate", lambda samples: {**collate(samples), "pid": os.getpid()})
    loader = StreamLoader(uneven, batch_size=4, num_workers=2, epoch=0)
    pids = [{b["pid"] for b in loader.epoch(epoch)} for epoch in range(3)]
    assert pids[0] == pids[1] == pids[2] and len(pids[0]) == 2 and os.getpid() not in pids[0]
