"""Data benchmark: streaming shards from an S3 API server versus the same tars on local disk.

Each round reads several epochs from each, as a training stream does: one loader per reader,
its start-up (manifest, worker processes, storage clients) in its first epoch. The readers
take turns epoch by epoch, the order reversed every epoch, so drift on a shared machine hits
all; a round's figure is the ratio of decoded samples per second, and the result is the
median round's. The target (at least 0.9) is on the epochs after the first: the streaming
rate a run has after its first seconds. The ratio with the start-up is reported beside it
(over 4 short epochs the start-up is a large share; in a training run it comes once). A
third reader takes a new loader every epoch (new worker processes, new S3 clients: how
training read before its loader persisted). The data wait of training (under 5% of step
time) is measured by bench/distributed.py.

    .venv/bin/python bench/data.py [--samples 4096] [--epochs 4] [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from common import Row, finish, start_s3_server

from gandist.data.loader import StreamLoader
from gandist.data.shards import write_shard_set


class Reader:
    """One stream's epochs, one after the other, each timed (the first with the loader's start-up)."""

    def __init__(self, url: str, batch_size: int, workers: int, per_epoch: bool = False) -> None:
        self.url, self.batch_size, self.workers = url, batch_size, workers
        self.per_epoch = per_epoch  # the way before: a new loader (new workers, new clients) every epoch
        self.loader: StreamLoader | None = None
        self.timed: list[tuple[int, float]] = []  # (samples, seconds) of each epoch

    def read_epoch(self) -> None:
        began, samples, epoch = time.perf_counter(), 0, len(self.timed)
        if self.loader is None or self.per_epoch:
            self.loader = StreamLoader(self.url, batch_size=self.batch_size, num_workers=self.workers,
                                       epoch=epoch, persistent=not self.per_epoch)
        for batch in self.loader.epoch(epoch):
            samples += len(batch["key"])
        self.timed.append((samples, time.perf_counter() - began))

    def rate(self, first: int = 0) -> float:
        """Samples/s over the epochs from ``first`` on."""
        return sum(n for n, _ in self.timed[first:]) / sum(t for _, t in self.timed[first:])


def one_round(local: str, remote: str, batch_size: int, workers: int, epochs: int) -> dict[str, float]:
    """Samples/s of ``epochs`` epochs from local disk, from S3, and from S3 with a loader per
    epoch, taken in turns (the order reversed every epoch): over the epochs after the first,
    and (``*_with_startup``) over all of them."""
    readers = {"local": Reader(local, batch_size, workers), "s3": Reader(remote, batch_size, workers),
               "s3_per_epoch": Reader(remote, batch_size, workers, per_epoch=True)}
    for epoch in range(epochs):
        for reader in list(readers.values())[::1 if epoch % 2 == 0 else -1]:
            reader.read_epoch()
    return {**{name: r.rate(1) for name, r in readers.items()},
            **{f"{name}_with_startup": r.rate(0) for name, r in readers.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=4096, help="samples per epoch")
    parser.add_argument("--epochs", type=int, default=4, help="epochs per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for both readers")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    server = start_s3_server()
    import fsspec

    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = os.path.join(tmp, "shapes")
            write_shard_set("builtin:shapes", local, samples=args.samples, heldout=0, shard_size=256)
            s3 = fsspec.filesystem("s3")
            s3.mkdir("bench")
            s3.put(local, "bench/", recursive=True)
            remote = "s3://bench/shapes"
            rates: dict[str, list[float]] = {}
            for _ in range(args.rounds):
                for name, rate in one_round(local, remote, args.batch_size, args.workers, args.epochs).items():
                    rates.setdefault(name, []).append(rate)
    finally:
        server.close()

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(rates[a], rates[b]))

    median = {name: statistics.median(values) for name, values in rates.items()}
    rows = [Row("data: S3 vs local disk (decoded samples/s)", median["s3"], median["local"], ratio("s3", "local"),
                ">= 0.90"),
            Row("data: S3 vs local, first epoch's start-up included", median["s3_with_startup"],
                median["local_with_startup"], ratio("s3_with_startup", "local_with_startup"), "report"),
            Row("data: S3, a loader per epoch vs local disk", median["s3_per_epoch"], median["local"],
                ratio("s3_per_epoch", "local"), "report")]
    return finish(rows, args.json, samples_per_s=rates, workers=args.workers, samples=args.samples,
                  epochs=args.epochs)


if __name__ == "__main__":
    sys.exit(main())
