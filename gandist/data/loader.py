"""DataLoaders over a rank's ``ShardStream``: one for a whole training stream, whose worker
processes (and their storage clients) last from epoch to epoch, or one for a single epoch."""

from __future__ import annotations

from typing import Any, Iterator, Optional, Sequence

import torch
from torch.utils.data import DataLoader

from gandist.data.manifest import Manifest
from gandist.data.plan import Segment
from gandist.data.stream import ShardStream
from gandist.data.subsets import Subset
from gandist.seeding import derive_seed


class StreamLoader:
    """One rank's batches of a stream, epoch after epoch, from one DataLoader whose workers
    persist.

    A DataLoader per epoch forks its workers anew every epoch, and each new worker builds its
    storage client again (for S3 an aiobotocore session, its service model, its connections)
    before its first shard. Persistent workers keep theirs and take each epoch from the
    stream's shared epoch. Every epoch is one pass of the DataLoader, whose turn-taking over
    the workers starts afresh at worker 0, so its batches are exactly a fresh loader's."""

    def __init__(self, url: str, *, split: str = "train", batch_size: int, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, epoch: int = 0, seed: int = 0, skip_batches: int = 0,
                 shuffle_buffer: int = 256, with_masks: bool = True, shuffle: bool = True,
                 max_bad_fraction: float = 0.01, history: Sequence[Segment] = (),
                 pin_memory: bool = False, subset: Optional[Subset] = None,
                 manifest: Optional[Manifest] = None, persistent: bool = True) -> None:
        self.stream = ShardStream(url, split=split, batch_size=batch_size, rank=rank, world_size=world_size,
                                  num_workers=num_workers, epoch=epoch, seed=seed, skip_batches=skip_batches,
                                  shuffle_buffer=shuffle_buffer, with_masks=with_masks, shuffle=shuffle,
                                  max_bad_fraction=max_bad_fraction, history=history, subset=subset,
                                  manifest=manifest)
        # Its own generator: a DataLoader otherwise draws its base seed from the global torch RNG,
        # which would shift the training RNG stream by when loaders happen to be created.
        generator = torch.Generator().manual_seed(derive_seed(seed, "loader", split, epoch, rank))
        self.loader = DataLoader(self.stream, batch_size=None, num_workers=num_workers, pin_memory=pin_memory,
                                 generator=generator, persistent_workers=persistent and num_workers > 0)

    def epoch(self, epoch: int) -> Iterator[dict[str, Any]]:
        """The batches of ``epoch`` (the first epoch's: those after ``skip_batches``). Read an
        epoch to its end, or leave it, before asking for the next."""
        self.stream.set_epoch(epoch)
        return iter(self.loader)


def epoch_loader(url: str, *, split: str = "train", batch_size: int, rank: int = 0, world_size: int = 1,
                 num_workers: int = 0, epoch: int = 0, seed: int = 0, skip_batches: int = 0,
                 shuffle_buffer: int = 256, with_masks: bool = True, shuffle: bool = True,
                 max_bad_fraction: float = 0.01, history: Sequence[Segment] = (),
                 pin_memory: bool = False, subset: Optional[Subset] = None,
                 manifest: Optional[Manifest] = None) -> DataLoader:
    """A DataLoader over one rank's batches of one epoch, after ``skip_batches`` of them (of
    ``subset``'s samples only, when given); its workers end with it. ``manifest``: ``url``'s,
    if loaded already (a 1M-shard one takes 2 s to load)."""
    return StreamLoader(url, split=split, batch_size=batch_size, rank=rank, world_size=world_size,
                        num_workers=num_workers, epoch=epoch, seed=seed, skip_batches=skip_batches,
                        shuffle_buffer=shuffle_buffer, with_masks=with_masks, shuffle=shuffle,
                        max_bad_fraction=max_bad_fraction, history=history, pin_memory=pin_memory,
                        subset=subset, manifest=manifest, persistent=False).loader
