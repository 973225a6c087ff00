"""The training batches: the labeled stream and, for semi-supervised segmentation, an
unlabeled one, each read epoch after epoch with its own cursor.

A cursor is where a stream is: its epoch, the batches every rank took of it, the layout
(world size, batch size, loader workers) they were taken under and the earlier layouts of the
same epoch. Both cursors are in the checkpoint, so a resume, also with another world size,
continues each stream exactly and each sample still comes once per epoch of its stream.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Optional

from gandist.config import Config, Semi, TaskName
from gandist.data.manifest import Manifest
from gandist.data.plan import Segment
from gandist.data.loader import StreamLoader
from gandist.data.subsets import Subset, label_split
from gandist.seeding import derive_seed

log = logging.getLogger("gandist.train")
Batch = dict


@dataclass
class Cursor:
    """One stream's place in its data."""

    epoch: int = 0
    batch_in_epoch: int = 0  # batches each rank has taken in `epoch`...
    layout: dict = field(default_factory=dict)  # ...under this layout (world/batch size, loader workers)
    history: list = field(default_factory=list)  # earlier layouts of this epoch (data.plan.Segment dicts)

    def adopt(self, layout: dict) -> bool:
        """Read on under ``layout``. Mid-epoch under another layout: record what the old one read,
        so the rest of the epoch is split anew and nothing repeats; returns True then."""
        changed = bool(self.layout) and self.layout != layout and self.batch_in_epoch > 0
        if changed:
            self.history.append({**self.layout, "batches": self.batch_in_epoch})
            self.batch_in_epoch = 0
        self.layout = dict(layout)
        return changed

    def next_epoch(self) -> None:
        self.epoch += 1
        self.batch_in_epoch = 0
        self.history = []

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # deep copies: the checkpoint does not share the live lists

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Cursor":
        return cls(d["epoch"], d["batch_in_epoch"], dict(d.get("layout", {})), list(d.get("history", [])))


def stream_batches(url: str, cursor: Cursor, cfg: Config, *, rank: int, world_size: int, seed: int,
                   with_masks: bool, pin_memory: bool, subset: Optional[Subset] = None,
                   manifest: Optional[Manifest] = None) -> Iterator[Batch]:
    """Batches of the training split, epoch after epoch from the cursor on; the cursor counts
    each batch as it is taken. ``manifest``: ``url``'s, when the caller has it already."""
    d = cfg.data
    # One loader for the whole stream: its workers, and their storage clients, last across epochs.
    loader = StreamLoader(url, split="train", batch_size=d.batch_size, rank=rank, world_size=world_size,
                          num_workers=d.loader_workers, epoch=cursor.epoch, seed=seed,
                          skip_batches=cursor.batch_in_epoch, shuffle_buffer=d.shuffle_buffer,
                          with_masks=with_masks, max_bad_fraction=d.max_bad_fraction,
                          history=[Segment(**s) for s in cursor.history], pin_memory=pin_memory, subset=subset,
                          manifest=manifest)
    while True:
        for batch in loader.epoch(cursor.epoch):
            cursor.batch_in_epoch += 1
            yield batch
        cursor.next_epoch()


def as_unlabeled(batch: Batch) -> Batch:
    """An unlabeled batch: its images, and its masks (when the data has them) only as
    ``known_mask``, which feeds statistics and never a loss."""
    out = {"image": batch["image"]}
    if "mask" in batch:
        out["known_mask"] = batch["mask"]
    return out


def with_unlabeled(labeled: Iterator[Batch], unlabeled_batches: Iterator[Batch]) -> Iterator[Batch]:
    for batch in labeled:
        yield {**batch, "unlabeled": as_unlabeled(next(unlabeled_batches))}


def with_g_real(batches: Iterator[Batch]) -> Iterator[Batch]:
    """Batches in pairs: D's, carrying G's as ``g_real`` (the cursor counts both)."""
    for batch in batches:
        yield {**batch, "g_real": next(batches)}


def training_batches(cfg: Config, data: Cursor, unlabeled: Cursor, manifest: Manifest, *, rank: int,
                     world_size: int, pin_memory: bool) -> Iterator[Batch]:
    """This rank's training batches; with task.semi each carries an ``unlabeled`` batch too, with
    task.g_draw=batch a second real batch for G's phase (``g_real``)."""
    d, seed, segment = cfg.data, cfg.trainer.seed, cfg.task.name == TaskName.segment
    labeled_part = unlabeled_part = None
    if d.label_fraction < 1:
        labeled_part, unlabeled_part = label_split(manifest, "train", d.label_fraction)
    common = dict(rank=rank, world_size=world_size, pin_memory=pin_memory)
    batches = stream_batches(d.url, data, cfg, seed=seed, with_masks=segment, subset=labeled_part,
                             manifest=manifest, **common)
    if cfg.task.g_draw == "batch":
        return with_g_real(batches)
    if cfg.task.semi == Semi.none:
        return batches
    url = d.unlabeled_url or d.url
    # Masks of the unlabeled images only feed statistics, and only when they mean the same classes.
    known = url == d.url or Manifest.load(url).classes == manifest.classes
    # Its own seed: the unlabeled stream's order is not the labeled one's.
    unlabeled_batches = stream_batches(url, unlabeled, cfg, seed=derive_seed(seed, "unlabeled"), with_masks=known,
                                       subset=unlabeled_part, **common)
    return with_unlabeled(batches, unlabeled_batches)


def adopt_layout(cfg: Config, data: Cursor, unlabeled: Cursor, world_size: int, is_chief: bool) -> None:
    """This run's layout of the data for both streams (see ``Cursor.adopt``)."""
    layout = {"world_size": world_size, "batch_size": cfg.data.batch_size, "num_workers": cfg.data.loader_workers}
    old = dict(data.layout)
    if data.adopt(layout) and is_chief:
        log.info("Data layout changed from %s to %s: the rest of epoch %d is split anew, "
                 "every sample not yet seen in it still comes once", old, layout, data.epoch)
    if cfg.task.semi != Semi.none:
        unlabeled.adopt(layout)
