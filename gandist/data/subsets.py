"""Which samples of a split a stream reads, when it reads only some: the labeled part of a
shard set (``data.label_fraction``) and the rest, read as unlabeled images.

A subset is, per shard in manifest order, the ascending indices of the samples it keeps. It
is a pure function of the manifest's counts and the fraction: the same samples on every
machine, world size, loader layout and seed, so runs and resumes agree on which masks exist.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from gandist.data.manifest import Manifest
from gandist.seeding import derive_seed

Subset = Sequence[np.ndarray]  # per shard (manifest order): the kept sample indices, ascending

# Not the run's seed: the labeled samples stay the same whatever trainer.seed is, as a
# benchmark's fixed 1/8 split does, so seeds vary the training, not the data.
LABELS_SEED = derive_seed(0, "label_fraction")


def label_split(manifest: Manifest, split: str, fraction: float) -> tuple[Subset, Subset]:
    """(labeled, unlabeled) subsets of ``split``: round(fraction x samples) chosen at random
    (fixed seed), and the rest."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction {fraction} must be in (0, 1]")
    counts = [int(s["samples"]) for s in manifest.shards(split)]
    total = sum(counts)
    chosen = np.zeros(total, dtype=bool)
    chosen[np.random.default_rng(LABELS_SEED).permutation(total)[:round(fraction * total)]] = True
    labeled, unlabeled, offset = [], [], 0
    for count in counts:
        part = chosen[offset:offset + count]
        labeled.append(np.flatnonzero(part))
        unlabeled.append(np.flatnonzero(~part))
        offset += count
    return labeled, unlabeled


def shard_counts(manifest: Manifest, split: str, subset: Optional[Subset] = None) -> list[int]:
    """Samples each shard (manifest order) contributes to the stream."""
    if subset is None:
        return [int(s["samples"]) for s in manifest.shards(split)]
    return [len(kept) for kept in subset]
