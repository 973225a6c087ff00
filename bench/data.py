"""Data benchmark: streaming shards from an S3 API server versus the same tars on local disk.

Both read the same shard set with the same loader-worker count, alternating within one run;
the figure is the ratio of decoded samples per second (target: at least 0.8). The data
wait of training (under 5% of step time) is measured by bench/distributed.py.

    .venv/bin/python bench/data.py [--samples 8192] [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

from common import Row, finish, start_s3_server

from gandist.data import epoch_loader, write_shard_set


def samples_per_second(url: str, batch_size: int, workers: int) -> float:
    began, count = time.perf_counter(), 0
    for batch in epoch_loader(url, batch_size=batch_size, num_workers=workers, epoch=0):
        count += len(batch["key"])
    return count / (time.perf_counter() - began)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8192,
                        help="more samples make the per-epoch start-up of S3 clients matter less")
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
            rates: dict[str, list[float]] = {"local": [], "s3": []}
            for _ in range(args.rounds):  # alternate, so drift on a shared machine hits both
                for name, url in (("local", local), ("s3", remote)):
                    rates[name].append(samples_per_second(url, args.batch_size, args.workers))
    finally:
        server.close()

    local_rate, s3_rate = statistics.median(rates["local"]), statistics.median(rates["s3"])
    rows = [Row("data: S3 vs local disk (decoded samples/s)", s3_rate, local_rate, s3_rate / local_rate, ">= 0.80")]
    return finish(rows, args.json, s3_samples_per_s=rates["s3"], local_samples_per_s=rates["local"],
                  workers=args.workers, samples=args.samples)


if __name__ == "__main__":
    sys.exit(main())
