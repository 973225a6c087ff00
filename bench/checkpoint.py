"""Checkpoint benchmark: how long a checkpoint makes training wait, synchronous versus
`trainer.async_checkpoint=true`, with the checkpoints going to an S3 API server.

Both runs use the same config on a local Ray cluster (2 workers) and differ only in the
upload mode; the figure is the ratio of the mean per-checkpoint stall (`ckpt/stall_s`, read
back from each run's TensorBoard events; the final checkpoint is always synchronous and is
left out). Target: the async stall at most half the synchronous one.

    .venv/bin/python bench/checkpoint.py [--steps 12] [--every 2] [--resolution 64]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile

from s3server import start_s3_server


def scalars(log_dir: str, tag: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir, size_guidance={"scalars": 0})
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars(tag)} if tag in acc.Tags()["scalars"] else {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--every", type=int, default=2, help="trainer.ckpt_every")
    parser.add_argument("--resolution", type=int, default=64, help="model.resolution (sets checkpoint size)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    server = start_s3_server()
    import fsspec
    import ray

    from gandist.cli import absolutize, compose_config
    from gandist.data import write_shard_set
    from gandist.dist.ray_launcher import run_ray

    stalls: dict[str, list[float]] = {}
    size_mb = 0.0
    try:
        ray.init(num_cpus=4, include_dashboard=False, logging_level="ERROR")
        with tempfile.TemporaryDirectory() as tmp:
            data = os.path.join(tmp, "shapes")
            write_shard_set("builtin:shapes", data, samples=512, heldout=64, shard_size=128)
            fsspec.filesystem("s3").mkdir("bench-ckpt")
            for mode in ("sync", "async"):
                cfg = absolutize(compose_config([
                    f"data.url={data}", "run.storage=s3://bench-ckpt/runs", f"run.name=bench-ckpt-{mode}",
                    f"model.resolution={args.resolution}", "data.batch_size=8", "data.loader_workers=0",
                    "dist.launcher=ray", "trainer.num_workers=2", f"trainer.max_steps={args.steps}",
                    f"trainer.ckpt_every={args.every}", "trainer.log_every=1", "eval.every=1000",
                    f"trainer.async_checkpoint={mode == 'async'}", "trainer.keep_checkpoints=2"]))
                summary = run_ray(cfg)
                stall = scalars(summary.log_dir, "ckpt/stall_s")
                stalls[mode] = [v for step, v in sorted(stall.items()) if step != summary.step]
                size_mb = fsspec.filesystem("s3").size(f"{summary.checkpoint}/state.pt") / 2**20
    finally:
        ray.shutdown()
        server.stop()

    sync, asyn = statistics.mean(stalls["sync"]), statistics.mean(stalls["async"])
    ratio = asyn / sync
    print(f"checkpoint: {size_mb:.1f} MB, {len(stalls['sync'])} checkpoints per run measured")
    print(f"{'benchmark':<46} {'ours':>8} {'reference':>10} {'ratio':>7} {'target':>8}")
    print(f"{'ckpt: stall per checkpoint, async vs sync (s)':<46} {asyn:>8.3f} {sync:>10.3f} "
          f"{ratio:>7.2f} {'<= 0.50':>8}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"sync_stall_s": stalls["sync"], "async_stall_s": stalls["async"], "ratio": ratio,
                       "checkpoint_mb": size_mb}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
