"""Checkpoint stall: how long a checkpoint makes training wait, with the checkpoints going
to an S3 API server, on the demo model with 2 Ray workers.

Two runs of one config differ only in the upload mode (`trainer.async_checkpoint`), and
give two figures:
- the mean stall per checkpoint (`ckpt/stall_s`, read back from TensorBoard), async against
  sync (target: at most half); the final checkpoint is always synchronous and is left out;
- the async stall as a fraction of the time between the demo's checkpoints (target: under
  5%): 100 steps (the demo's checkpoint interval when these figures were first taken) at the
  steady-state step time of the async run.
  The run itself checkpoints every --every steps (default 10) to measure several stalls in
  a short run; the stall does not depend on the interval as long as each upload ends before
  the next checkpoint, which the printed upload times show.

    .venv/bin/python bench/checkpoint.py [--steps 40] [--every 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from common import DEMO, Row, demo_shards, finish, scalars, start_s3_server, steady


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=10, help="trainer.ckpt_every of the measured runs")
    parser.add_argument("--demo-every", type=int, default=100, help="the interval the fraction is computed for")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    server = start_s3_server()
    import fsspec
    import ray

    from gandist.config import absolutize, compose_config
    from gandist.launchers.ray_launcher import run_ray

    stalls: dict[str, list[float]] = {}
    step_time: dict[str, float] = {}
    size_mb = 0.0
    try:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
        with tempfile.TemporaryDirectory() as tmp:
            data = demo_shards(tmp, samples=512)
            fsspec.filesystem("s3").mkdir("bench-ckpt")
            for mode in ("sync", "async"):
                cfg = absolutize(compose_config(DEMO + [
                    f"data.url={data}", "run.storage=s3://bench-ckpt/runs", f"run.name=bench-ckpt-{mode}",
                    "data.loader_workers=1", "launcher.name=ray", "trainer.num_workers=2",
                    f"trainer.max_steps={args.steps}", f"trainer.ckpt_every={args.every}", "trainer.log_every=10",
                    f"trainer.image_every={args.steps}", f"eval.every={args.steps}",
                    f"trainer.async_checkpoint={mode == 'async'}", "trainer.keep_checkpoints=2"]))
                summary = run_ray(cfg)
                stall = scalars(summary.log_dir, "ckpt/stall_s")
                stalls[mode] = [v for step, v in sorted(stall.items()) if step != args.steps]  # final: sync
                step_time[mode] = steady(summary.log_dir, "perf/step_time_s")
                size_mb = fsspec.filesystem("s3").size(f"{summary.checkpoint}/state.pt") / 2**20
    finally:
        ray.shutdown()
        server.close()

    sync, asyn = statistics.mean(stalls["sync"]), statistics.mean(stalls["async"])
    interval = args.demo_every * step_time["async"]
    print(f"checkpoint: {size_mb:.1f} MB, {len(stalls['sync'])} checkpoints per run measured (every {args.every} "
          f"steps); {args.demo_every} steps take {interval:.1f} s; sync uploads took {sync:.2f} s in all")
    rows = [Row("ckpt: stall per checkpoint, async vs sync", asyn, sync, asyn / sync, "<= 0.50", "s"),
            Row(f"ckpt: async stall / {args.demo_every} steps between ckpts", asyn, interval, asyn / interval,
                "< 0.05", "s")]
    return finish(rows, args.json, sync_stall_s=stalls["sync"], async_stall_s=stalls["async"],
                  step_time_s=step_time, checkpoint_mb=size_mb, every=args.every)


if __name__ == "__main__":
    sys.exit(main())
