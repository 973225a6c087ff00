"""data.label_fraction: a fixed part of a split's samples, the same for every world size, read
once per epoch; the rest is the unlabeled stream's."""

from __future__ import annotations

import pytest

from gandist.data.manifest import Manifest
from gandist.data.loader import epoch_loader
from gandist.data.subsets import label_split
from gandist.data.shards import write_shard_set


@pytest.fixture(scope="module")
def uneven(tmp_path_factory) -> str:
    """50 samples in shards of 7 (the last holds 1)."""
    dest = str(tmp_path_factory.mktemp("subsets") / "set")
    write_shard_set("builtin:shapes", dest, samples=50, heldout=0, shard_size=7, size=16)
    return dest


def keys_of(manifest: Manifest, subset) -> set[str]:
    """The sample keys a subset names (builtin shapes keys are train_<global index>)."""
    keys, offset = set(), 0
    for shard, kept in zip(manifest.shards("train"), subset):
        keys |= {f"train_{offset + int(i):08d}" for i in kept}
        offset += int(shard["samples"])
    return keys


def test_label_split_is_fixed_disjoint_and_complete(uneven):
    manifest = Manifest.load(uneven)
    labeled, unlabeled = label_split(manifest, "train", 0.25)
    a, b = keys_of(manifest, labeled), keys_of(manifest, unlabeled)
    assert len(a) == round(0.25 * 50) and len(a) + len(b) == 50 and not a & b
    again, _ = label_split(manifest, "train", 0.25)
    assert all((x == y).all() for x, y in zip(labeled, again))
    with pytest.raises(ValueError, match="label fraction 0"):
        label_split(manifest, "train", 0)


@pytest.mark.parametrize("num_workers", [0, 2])
def test_one_and_two_ranks_read_the_same_labeled_samples_once_per_epoch(uneven, num_workers):
    manifest = Manifest.load(uneven)
    labeled, _ = label_split(manifest, "train", 0.5)  # 25 samples
    expected = keys_of(manifest, labeled)

    def read(world_size: int, epoch: int) -> list[str]:
        return [k for rank in range(world_size)
                for batch in epoch_loader(uneven, batch_size=4, rank=rank, world_size=world_size,
                                          num_workers=num_workers, epoch=epoch, subset=labeled)
                for k in batch["key"]]

    one, two = read(1, 0), read(2, 0)
    assert len(one) == len(set(one)) == 24 and len(two) == len(set(two)) == 24  # whole batches of 4 (x 2 ranks)
    assert set(one) <= expected and set(two) <= expected
    assert one != read(1, 1)  # a new order each epoch, from the same samples
    assert set(read(1, 1)) <= expected
