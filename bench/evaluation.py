"""Evaluation benchmark: training throughput with evaluation on, against the same run with
evaluation only at the end.

Two runs of one config (generate, 64x64 DCGAN on builtin shapes, one process) differ only in
`eval.every`; throughput is the images trained per second of training-loop time read back
from TensorBoard (`perf/step_time_s` per log window, which includes any evaluation that ran
in the window; the final evaluation after the last window counts for neither). Target: with
evaluation on, at least 0.9 of the throughput without. Also prints the mean evaluation time
and the run's FD(randconv) curve, the quality record of generation on the builtin data.

    .venv/bin/python bench/evaluation.py [--steps 750] [--every 250] [--samples 1024] [--resolution 64]

(`make bench` runs it at --resolution 32 --steps 500, to keep the suite within 10 minutes.)
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

from common import Row, finish, scalars


def throughput(log_dir: str, batch_size: int) -> float:
    """Images per second of loop time over all log windows."""
    step_time = scalars(log_dir, "perf/step_time_s")
    steps = sorted(step_time)
    seconds = sum(step_time[s] * (s - prev) for prev, s in zip([0] + steps, steps))
    return batch_size * steps[-1] / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=750)
    parser.add_argument("--every", type=int, default=250, help="eval.every of the run with evaluation on")
    parser.add_argument("--samples", type=int, default=1024, help="eval.samples")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--resolution", type=int, default=64, choices=(32, 64))
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()

    from gandist.config import absolutize, compose_config
    from gandist.data.shards import write_shard_set
    from gandist.launchers.common import configure_logging
    from gandist.launchers.local import run_local

    configure_logging()
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "shapes")
        write_shard_set("builtin:shapes", data, samples=4096, heldout=args.samples, shard_size=512,
                        size=args.resolution)
        eval_time: list[float] = []
        for name, every in (("off", args.steps), ("on", args.every)):
            cfg = absolutize(compose_config([
                "task=generate", f"model.resolution={args.resolution}", f"data.url={data}",
                f"run.storage={tmp}/runs", f"run.name={name}",
                "launcher.name=local", "trainer.num_workers=1", f"trainer.max_steps={args.steps}",
                f"trainer.ckpt_every={args.steps}", "trainer.log_every=25", f"trainer.image_every={args.steps}",
                f"data.batch_size={args.batch_size}", "data.loader_workers=1",
                f"eval.every={every}", f"eval.samples={args.samples}"]))
            summary = run_local(cfg)
            figures[name] = throughput(summary.log_dir, args.batch_size)
            if name == "on":
                times = scalars(summary.log_dir, "eval/time_s")
                eval_time = [v for step, v in times.items() if step != args.steps]
                curve = scalars(summary.log_dir, "eval/fd_randconv")
    ratio = figures["on"] / figures["off"]
    print(f"eval.every={args.every}, eval.samples={args.samples}, {args.steps} steps of batch {args.batch_size}; "
          f"evaluation took {statistics.mean(eval_time):.2f} s on average ({len(eval_time)} in the measured windows)")
    print("quality: FD(randconv) of EMA G by step: " + ", ".join(f"{v:.1f} @ {k}" for k, v in sorted(curve.items())))
    rows = [Row("eval: images/s with evaluation vs without", figures["on"], figures["off"], ratio, ">= 0.90")]
    return finish(rows, args.json, **figures, eval_time_s=eval_time, fd_randconv=curve, every=args.every,
                  samples=args.samples, resolution=args.resolution)


if __name__ == "__main__":
    sys.exit(main())
