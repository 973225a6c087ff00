"""Data benchmark: streaming shards from an S3 API server versus the same tars on local disk.

Both read the same shard set with the same loader-worker count, alternating within one run;
the figure is the ratio of decoded samples per second (target: at least 0.8). It also
reports the fraction of step time the demo run spent waiting for data (target: under 5%),
read back from that run's TensorBoard events.

    .venv/bin/python bench/data.py [--samples 8192] [--rounds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from s3server import start_s3_server

from gandist.data import epoch_loader, write_shard_set


def samples_per_second(url: str, batch_size: int, workers: int) -> float:
    began, count = time.perf_counter(), 0
    for batch in epoch_loader(url, batch_size=batch_size, num_workers=workers, epoch=0):
        count += len(batch["key"])
    return count / (time.perf_counter() - began)


def demo_data_wait(run_dir: str) -> float | None:
    """Mean perf/data_wait_frac logged by a finished run, or None if there is no such run."""
    log_dir = os.path.join(run_dir, "tensorboard")
    if not os.path.isdir(log_dir):
        return None
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    if "perf/data_wait_frac" not in acc.Tags()["scalars"]:
        return None
    return statistics.mean(e.value for e in acc.Scalars("perf/data_wait_frac"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8192,
                        help="more samples make the per-epoch start-up of S3 clients matter less")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for both readers")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--demo-run", default="runs/store/demo", help="run whose data wait is reported")
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
        server.stop()

    local_rate, s3_rate = statistics.median(rates["local"]), statistics.median(rates["s3"])
    ratio = s3_rate / local_rate
    wait = demo_data_wait(args.demo_run)
    rows = [("data: S3 vs local disk (decoded samples/s)", f"{s3_rate:.0f}", f"{local_rate:.0f}",
             f"{ratio:.2f}", ">= 0.80"),
            ("data: wait fraction of step time (demo)", "-" if wait is None else f"{wait:.3f}", "-",
             "-" if wait is None else f"{wait:.3f}", "< 0.05")]
    print(f"{'benchmark':<46} {'ours':>8} {'reference':>10} {'ratio':>7} {'target':>8}")
    for row in rows:
        print(f"{row[0]:<46} {row[1]:>8} {row[2]:>10} {row[3]:>7} {row[4]:>8}")
    if wait is None:
        print(f"(no data-wait figure: run `make demo` first, or give --demo-run; looked in {args.demo_run})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"s3_samples_per_s": rates["s3"], "local_samples_per_s": rates["local"],
                       "ratio": ratio, "demo_data_wait_frac": wait, "workers": args.workers,
                       "samples": args.samples}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
